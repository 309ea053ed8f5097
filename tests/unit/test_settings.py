"""settings.py: one frozen object from the environment; every bad value names its variable."""

from __future__ import annotations

import ipaddress
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest

from qiwi_gw.errors import ConfigError
from qiwi_gw.settings import Settings, mask_dsn, mask_url

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# Most tests here are about other variables: they ask for the embedded database, as
# `make run` does, so that "no database configured" is not the error they see.
EMBEDDED = {"QIWI_EMBEDDED_DB": "true"}


def from_env(env: dict[str, str]) -> Settings:
    return Settings.from_env({**EMBEDDED, **env})


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        from_env(env)
    return caught.value


# --- defaults ---------------------------------------------------------------------


def test_defaults_with_the_embedded_database_asked_for() -> None:
    settings = from_env({})
    assert settings.database.dsn is None
    assert settings.database.direct_dsn is None
    assert settings.database.embedded
    assert settings.database.schema == "public"
    assert settings.database.data_dir == Path(".qiwi-gw")
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert settings.port == 8080
    assert settings.check_url is None
    assert settings.webhook.url is None
    assert settings.webhook.secret is None
    assert settings.auth_username is None
    assert settings.auth_password is None
    assert not settings.auth_required
    assert settings.allowed_networks == ()
    assert settings.trusted_proxies == ()
    assert settings.account_pattern is None
    assert settings.min_sum is None
    assert settings.max_sum is None
    assert settings.timezone == ZoneInfo("UTC")
    assert settings.debug is False
    assert settings.log_format == "text"


ALL_EMPTY = [
    "DATABASE_URL",
    "PG_HOST",
    "PG_REAL_HOST",
    "PG_PORT",
    "PG_USER",
    "PG_PASSWORD",
    "PG_DATABASE",
    "PG_SCHEMA",
    "PORT",
    "HOST",
    "QIWI_CHECK_URL",
    "QIWI_WEBHOOK_URL",
    "QIWI_WEBHOOK_SECRET",
    "HTTP_AUTH_USERNAME",
    "HTTP_AUTH_PASSWORD",
    "QIWI_ALLOWED_IPS",
    "QIWI_TRUSTED_PROXIES",
    "QIWI_ACCOUNT_REGEX",
    "QIWI_MIN_SUM",
    "QIWI_MAX_SUM",
    "MS_TIMEZONE",
    "DEBUG",
    "LOG_FORMAT",
]


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_strings_count_as_unset(blank: str) -> None:
    assert from_env(dict.fromkeys(ALL_EMPTY, blank)) == from_env({})


def test_values_are_read() -> None:
    settings = from_env(
        {
            "PORT": "9000",
            "HOST": "127.0.0.1",
            "QIWI_CHECK_URL": "https://backend.example/check?key=1",
            "QIWI_WEBHOOK_URL": "http://backend:8000/hook",
            "QIWI_WEBHOOK_SECRET": SECRET,
            "HTTP_AUTH_USERNAME": "qiwi",
            "HTTP_AUTH_PASSWORD": "s3cret",
            "QIWI_ALLOWED_IPS": "79.142.16.0/20, 91.232.230.0/23,,10.0.0.1",
            "QIWI_ACCOUNT_REGEX": "[0-9]{10}",
            "QIWI_MIN_SUM": "10.00",
            "QIWI_MAX_SUM": "15000",
            "MS_TIMEZONE": "Europe/Moscow",
            "DEBUG": "TRUE",
            "LOG_FORMAT": "json",
            "PG_SCHEMA": "qiwi_2",
        }
    )
    assert settings.port == 9000
    assert settings.host == "127.0.0.1"
    assert settings.check_url == "https://backend.example/check?key=1"
    assert settings.webhook.url == "http://backend:8000/hook"
    assert settings.webhook.secret == SECRET
    assert settings.auth_username == "qiwi"
    assert settings.auth_password == "s3cret"
    assert settings.auth_required
    assert settings.allowed_networks == (
        ipaddress.ip_network("79.142.16.0/20"),
        ipaddress.ip_network("91.232.230.0/23"),
        ipaddress.ip_network("10.0.0.1/32"),
    )
    assert settings.account_pattern is not None
    assert settings.account_pattern.pattern == "[0-9]{10}"
    assert settings.min_sum == Decimal("10.00")
    assert settings.max_sum == Decimal("15000")
    assert settings.timezone == ZoneInfo("Europe/Moscow")
    assert settings.debug is True
    assert settings.log_format == "json"
    assert settings.database.schema == "qiwi_2"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("NO", False),
        ("off", False),
    ],
)
def test_debug_values(raw: str, expected: bool) -> None:
    assert from_env({"DEBUG": raw}).debug is expected


def test_host_bits_in_a_network_are_allowed() -> None:
    settings = from_env({"QIWI_TRUSTED_PROXIES": "10.1.2.3/8"})
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)


def test_secrets_are_not_in_repr() -> None:
    settings = from_env(
        {"HTTP_AUTH_USERNAME": "u", "HTTP_AUTH_PASSWORD": "pw-xyzzy", "QIWI_WEBHOOK_SECRET": SECRET}
    )
    assert "pw-xyzzy" not in repr(settings)
    assert SECRET not in repr(settings)


# --- database ---------------------------------------------------------------------


def test_database_url_is_used() -> None:
    url = "postgresql://gw:pw@db.internal:6432/qiwi?sslmode=require"
    settings = from_env({"DATABASE_URL": url})
    assert settings.database.dsn == url
    assert settings.database.direct_dsn == url
    assert not settings.database.embedded


def test_postgres_scheme_is_accepted() -> None:
    assert from_env({"DATABASE_URL": "postgres://h/db"}).database.dsn == "postgres://h/db"


def test_database_url_wins_over_pg_host() -> None:
    settings = from_env({"DATABASE_URL": "postgresql://a/db", "PG_HOST": "b"})
    assert settings.database.dsn == "postgresql://a/db"


def test_pg_parts_build_a_dsn() -> None:
    settings = from_env(
        {
            "PG_HOST": "db",
            "PG_PORT": "5433",
            "PG_USER": "gw",
            "PG_PASSWORD": "pw",
            "PG_DATABASE": "qiwi",
        }
    )
    assert settings.database.dsn == "postgresql://gw:pw@db:5433/qiwi"
    assert settings.database.direct_dsn == settings.database.dsn


def test_pg_parts_defaults() -> None:
    settings = from_env({"PG_HOST": "db"})
    assert settings.database.dsn == "postgresql://postgres@db:5432/postgres"


def test_pg_database_defaults_to_the_user() -> None:
    settings = from_env({"PG_HOST": "db", "PG_USER": "merchant"})
    assert settings.database.dsn == "postgresql://merchant@db:5432/merchant"


@pytest.mark.parametrize("password", ["p@ss:w/rd", "a%20b", "?#[]&=+ ;", "пароль"])
def test_pg_password_with_special_characters_is_quoted(password: str) -> None:
    settings = from_env(
        {"PG_HOST": "db", "PG_USER": "us@er", "PG_PASSWORD": password, "PG_DATABASE": "d/b"}
    )
    dsn = settings.database.dsn
    assert dsn is not None
    parts = urlsplit(dsn)
    assert parts.hostname == "db"
    assert parts.port == 5432
    assert parts.password is not None
    assert unquote(parts.password) == password
    assert parts.username is not None
    assert unquote(parts.username) == "us@er"
    assert unquote(parts.path) == "/d/b"
    assert parts.query == ""
    assert parts.fragment == ""


def test_ipv6_pg_host_is_bracketed() -> None:
    settings = from_env({"PG_HOST": "::1"})
    dsn = settings.database.dsn
    assert dsn == "postgresql://postgres@[::1]:5432/postgres"
    assert urlsplit(dsn).hostname == "::1"


def test_pg_real_host_gives_direct_dsn_with_that_host() -> None:
    settings = from_env(
        {
            "PG_HOST": "pgbouncer",
            "PG_REAL_HOST": "postgres-primary",
            "PG_PORT": "6432",
            "PG_USER": "gw",
            "PG_PASSWORD": "p@ss",
            "PG_DATABASE": "qiwi",
        }
    )
    assert settings.database.dsn == "postgresql://gw:p%40ss@pgbouncer:6432/qiwi"
    assert settings.database.direct_dsn == "postgresql://gw:p%40ss@postgres-primary:6432/qiwi"


def test_pg_real_host_with_database_url() -> None:
    settings = from_env(
        {"DATABASE_URL": "postgresql://u:p@bouncer:6432/db?sslmode=require", "PG_REAL_HOST": "real"}
    )
    assert settings.database.dsn == "postgresql://u:p@bouncer:6432/db?sslmode=require"
    assert settings.database.direct_dsn == "postgresql://u:p@real:6432/db?sslmode=require"


def test_pg_real_port_points_the_listener_past_pgbouncer() -> None:
    settings = from_env(
        {"PG_HOST": "db", "PG_PORT": "6432", "PG_REAL_HOST": "db", "PG_REAL_PORT": "5432"}
    )
    assert settings.database.dsn == "postgresql://postgres@db:6432/postgres"
    assert settings.database.direct_dsn == "postgresql://postgres@db:5432/postgres"


def test_pg_real_host_ipv6() -> None:
    settings = from_env({"PG_HOST": "bouncer", "PG_REAL_HOST": "fd00::5"})
    listen = settings.database.direct_dsn
    assert listen is not None
    assert urlsplit(listen).hostname == "fd00::5"
    assert urlsplit(listen).port == 5432


def test_pg_slaves_are_the_primary_dsn_on_other_hosts() -> None:
    settings = from_env(
        {
            "PG_HOST": "primary",
            "PG_PORT": "6432",
            "PG_USER": "gw",
            "PG_PASSWORD": "p@ss",
            "PG_DATABASE": "qiwi",
            "PG_SLAVES": " replica-1, replica-2:5433 ,[fd00::7]:5434,fd00::8,",
        }
    )
    assert settings.database.replica_dsns == (
        "postgresql://gw:p%40ss@replica-1:6432/qiwi",
        "postgresql://gw:p%40ss@replica-2:5433/qiwi",
        "postgresql://gw:p%40ss@[fd00::7]:5434/qiwi",
        "postgresql://gw:p%40ss@[fd00::8]:6432/qiwi",
    )
    assert "p@ss" not in repr(settings)
    assert "p%40ss" not in repr(settings)


def test_pg_slaves_without_a_port_take_pg_real_port_past_pgbouncer() -> None:
    """Behind PgBouncer PG_PORT is PgBouncer's; replicas are PostgreSQL servers, like
    PG_REAL_HOST's."""
    settings = from_env(
        {
            "PG_HOST": "bouncer",
            "PG_PORT": "6432",
            "PG_REAL_HOST": "db",
            "PG_REAL_PORT": "5433",
            "PG_SLAVES": "replica-1,replica-2:5434",
        }
    )
    assert settings.database.replica_dsns == (
        "postgresql://postgres@replica-1:5433/postgres",
        "postgresql://postgres@replica-2:5434/postgres",
    )


def test_pg_slaves_keep_the_database_urls_options() -> None:
    settings = from_env(
        {"DATABASE_URL": "postgresql://u:p@db:5432/q?sslmode=require", "PG_SLAVES": "ro"}
    )
    assert settings.database.replica_dsns == ("postgresql://u:p@ro:5432/q?sslmode=require",)


def test_no_pg_slaves_no_replicas() -> None:
    assert from_env({"PG_HOST": "db"}).database.replica_dsns == ()


@pytest.mark.parametrize("raw", ["false", "0", "no", "off", "", "  ", None])
def test_embedded_database_refused_unless_asked_for_names_what_to_set(raw: str | None) -> None:
    """Unset or empty too: compose passes ${QIWI_EMBEDDED_DB:-} as an empty string, and a
    misspelt PG_HOST must not give a gateway that keeps real payments in a throwaway database."""
    env = {"PGHOST": "db.internal"} if raw is None else {"QIWI_EMBEDDED_DB": raw}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == "PG_HOST"
    assert str(caught.value) == (
        "PG_HOST: is not set (nor DATABASE_URL) and QIWI_EMBEDDED_DB is false: set PG_HOST "
        "(or DATABASE_URL) to the database, or QIWI_EMBEDDED_DB=true for a throwaway one"
    )


def test_embedded_database_when_asked_for_and_irrelevant_with_a_database() -> None:
    assert Settings.from_env({"QIWI_EMBEDDED_DB": "true"}).database.embedded
    settings = Settings.from_env({"PG_HOST": "db"})
    assert not settings.database.embedded
    assert not settings.database.embedded_allowed


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:p%zzsecret@db:5432/q",
        "postgresql://postgres:secret%@db:5432/q",
        "postgresql://postgres:secret@db:5432/q%4",
        "postgresql://postgres:secret@db:5432/q?options=%zz",
    ],
)
def test_a_bad_percent_escape_in_database_url_is_named_without_the_url(url: str) -> None:
    """libpq refuses such a URL and quotes the bad part, the password maybe, in its error."""
    error = config_error({"DATABASE_URL": url})
    assert error.variable == "DATABASE_URL"
    assert "%25" in error.problem
    assert "secret" not in str(error)
    assert "db:5432" not in str(error)


# --- every bad value names its variable --------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"PORT": "0"}, "PORT"),
        ({"PORT": "-1"}, "PORT"),
        ({"PORT": "80.5"}, "PORT"),
        ({"PORT": "\u0668\u0660"}, "PORT"),
        ({"PG_HOST": "db", "PG_PORT": "x"}, "PG_PORT"),
        ({"QIWI_MIN_SUM": "abc"}, "QIWI_MIN_SUM"),
        ({"QIWI_MIN_SUM": "-1"}, "QIWI_MIN_SUM"),
        ({"QIWI_MIN_SUM": "0"}, "QIWI_MIN_SUM"),
        ({"QIWI_MIN_SUM": "NaN"}, "QIWI_MIN_SUM"),
        ({"QIWI_MAX_SUM": "Infinity"}, "QIWI_MAX_SUM"),
        ({"QIWI_MIN_SUM": "100", "QIWI_MAX_SUM": "99.99"}, "QIWI_MAX_SUM"),
        ({"QIWI_ALLOWED_IPS": "999.1.1.1/8"}, "QIWI_ALLOWED_IPS"),
        ({"QIWI_ALLOWED_IPS": "10.0.0.0/8, nonsense"}, "QIWI_ALLOWED_IPS"),
        ({"QIWI_TRUSTED_PROXIES": "1.2.3.4/33"}, "QIWI_TRUSTED_PROXIES"),
        ({"QIWI_ACCOUNT_REGEX": "("}, "QIWI_ACCOUNT_REGEX"),
        ({"QIWI_ACCOUNT_REGEX": "[0-9"}, "QIWI_ACCOUNT_REGEX"),
        ({"QIWI_ACCOUNT_REGEX": "a{99999999999}"}, "QIWI_ACCOUNT_REGEX"),
        ({"MS_TIMEZONE": "Mars/Base"}, "MS_TIMEZONE"),
        ({"MS_TIMEZONE": "../../etc/passwd"}, "MS_TIMEZONE"),
        ({"QIWI_CHECK_URL": "ftp://x"}, "QIWI_CHECK_URL"),
        ({"QIWI_CHECK_URL": "not a url"}, "QIWI_CHECK_URL"),
        ({"QIWI_CHECK_URL": "http://"}, "QIWI_CHECK_URL"),
        ({"QIWI_CHECK_URL": "http://host:99999/"}, "QIWI_CHECK_URL"),
        ({"QIWI_WEBHOOK_URL": "backend:8000/hook"}, "QIWI_WEBHOOK_URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql:///db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://h:port/db"}, "DATABASE_URL"),
        ({"HTTP_AUTH_USERNAME": "qiwi"}, "HTTP_AUTH_PASSWORD"),
        ({"HTTP_AUTH_PASSWORD": "secret"}, "HTTP_AUTH_USERNAME"),
        ({"QIWI_WEBHOOK_SECRET": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, "QIWI_WEBHOOK_SECRET"),
        ({"QIWI_WEBHOOK_SECRET": "whsec_not base64!"}, "QIWI_WEBHOOK_SECRET"),
        ({"QIWI_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "QIWI_WEBHOOK_SECRET"),
        ({"QIWI_WEBHOOK_TIMEOUT": "0"}, "QIWI_WEBHOOK_TIMEOUT"),
        ({"QIWI_WEBHOOK_TIMEOUT": "inf"}, "QIWI_WEBHOOK_TIMEOUT"),
        ({"QIWI_WEBHOOK_RETRY_MIN": "10", "QIWI_WEBHOOK_RETRY_MAX": "5"}, "QIWI_WEBHOOK_RETRY_MAX"),
        ({"QIWI_WEBHOOK_CONCURRENCY": "many"}, "QIWI_WEBHOOK_CONCURRENCY"),
        # The lease covers two of the recorder's 500-outcome batches, no more.
        ({"QIWI_WEBHOOK_CONCURRENCY": "501"}, "QIWI_WEBHOOK_CONCURRENCY"),
        ({"QIWI_DB_POOL_SIZE": "0"}, "QIWI_DB_POOL_SIZE"),
        ({"PG_SCHEMA": "bad-name"}, "PG_SCHEMA"),
        ({"PG_SCHEMA": "Public"}, "PG_SCHEMA"),
        ({"PG_SCHEMA": "1abc"}, "PG_SCHEMA"),
        ({"PG_SCHEMA": "a" * 64}, "PG_SCHEMA"),
        ({"PG_REAL_HOST": "db"}, "PG_REAL_HOST"),
        ({"PG_HOST": "db", "PG_REAL_HOST": "db", "PG_REAL_PORT": "x"}, "PG_REAL_PORT"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"PG_SLAVES": "replica"}, "PG_SLAVES"),
        ({"PG_HOST": "db", "PG_SLAVES": "replica:port"}, "PG_SLAVES"),
        ({"PG_HOST": "db", "PG_SLAVES": "replica:70000"}, "PG_SLAVES"),
        ({"PG_HOST": "db", "PG_SLAVES": "user@replica"}, "PG_SLAVES"),
        ({"PG_HOST": "db", "PG_SLAVES": "replica one"}, "PG_SLAVES"),
        ({"QIWI_EMBEDDED_DB": "perhaps"}, "QIWI_EMBEDDED_DB"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(
    env: dict[str, str], variable: str
) -> None:
    error = config_error(env)
    assert error.variable == variable
    assert str(error).startswith(f"{variable}: ")


def test_url_error_does_not_echo_credentials() -> None:
    error = config_error({"QIWI_CHECK_URL": "ftp://user:hunter2@host/path?token=abc"})
    assert "hunter2" not in str(error)
    assert "token=abc" not in str(error)


def test_max_sum_equal_to_min_sum_is_fine() -> None:
    settings = from_env({"QIWI_MIN_SUM": "10", "QIWI_MAX_SUM": "10.00"})
    assert settings.min_sum == settings.max_sum == Decimal(10)


# --- masking -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://gw:hunter2@db:5432/qiwi", "postgresql://gw:***@db:5432/qiwi"),
        (
            "postgresql://gw:p%40ss%3Aw@db/qiwi?sslmode=require",
            "postgresql://gw:***@db/qiwi?sslmode=require",
        ),
        ("postgresql://gw:a@b@db/qiwi", "postgresql://gw:***@db/qiwi"),
        ("postgresql://gw:pw@[::1]:5432/qiwi", "postgresql://gw:***@[::1]:5432/qiwi"),
        ("postgresql://gw@db/qiwi", "postgresql://gw@db/qiwi"),
        ("postgresql://db/qiwi", "postgresql://db/qiwi"),
        (
            "postgresql:///qiwi?host=/run/pg&password=hunter2",
            "postgresql:///qiwi?host=/run/pg&password=***",
        ),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert mask_dsn(dsn) == masked


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://user:pw@backend:8443/check?token=abc#frag", "https://backend:8443/check"),
        ("http://backend/hook?secret=1", "http://backend/hook"),
        ("http://u@backend/hook", "http://backend/hook"),
        ("http://backend/hook", "http://backend/hook"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_webhook_secret_may_omit_base64_padding() -> None:
    unpadded = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwAA"
    assert from_env({"QIWI_WEBHOOK_SECRET": unpadded}).webhook.secret == unpadded


# --- the operator listener (console and /metrics) ----------------------------------


def test_console_defaults_to_loopback_8081_without_login() -> None:
    console = from_env({}).console
    assert (console.host, console.port) == ("127.0.0.1", 8081)
    assert console.enabled
    assert not console.login_required


def test_console_port_zero_turns_it_off() -> None:
    assert not from_env({"QIWI_CONSOLE_PORT": "0"}).console.enabled


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "gateway.example"])  # noqa: S104
def test_console_off_loopback_without_credentials_is_an_error(host: str) -> None:
    error = config_error({"QIWI_CONSOLE_HOST": host})
    assert error.variable == "QIWI_CONSOLE_HOST"
    assert "QIWI_CONSOLE_USERNAME" in str(error)
    assert "QIWI_CONSOLE_PASSWORD" in str(error)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_console_on_loopback_needs_no_credentials(host: str) -> None:
    assert from_env({"QIWI_CONSOLE_HOST": host}).console.host == host


def test_console_off_loopback_with_credentials() -> None:
    console = from_env(
        {
            "QIWI_CONSOLE_HOST": "0.0.0.0",  # noqa: S104
            "QIWI_CONSOLE_USERNAME": "ops",
            "QIWI_CONSOLE_PASSWORD": "pw",
        }
    ).console
    assert console.login_required
    assert "pw" not in repr(console)


def test_console_off_loopback_but_port_zero_is_fine() -> None:
    settings = from_env({"QIWI_CONSOLE_HOST": "0.0.0.0", "QIWI_CONSOLE_PORT": "0"})  # noqa: S104
    assert not settings.console.enabled


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"QIWI_CONSOLE_USERNAME": "ops"}, "QIWI_CONSOLE_PASSWORD"),
        ({"QIWI_CONSOLE_PASSWORD": "pw"}, "QIWI_CONSOLE_USERNAME"),
        ({"QIWI_CONSOLE_PORT": "70000"}, "QIWI_CONSOLE_PORT"),
        ({"QIWI_CONSOLE_PORT": "-1"}, "QIWI_CONSOLE_PORT"),
    ],
)
def test_bad_console_settings_name_their_variable(env: dict[str, str], variable: str) -> None:
    assert config_error(env).variable == variable


# --- QIWI_CHECK_ON_PAY and PG_SCHEMA's length (issue 10) ---


def test_check_on_pay_is_off_by_default_and_needs_the_check_url() -> None:
    assert from_env({}).check_on_pay is False
    on = from_env({"QIWI_CHECK_URL": "http://shop/check", "QIWI_CHECK_ON_PAY": "true"})
    assert on.check_on_pay is True
    error = config_error({"QIWI_CHECK_ON_PAY": "true"})
    assert error.variable == "QIWI_CHECK_ON_PAY"
    assert "QIWI_CHECK_URL" in str(error)
    assert config_error({"QIWI_CHECK_ON_PAY": "maybe"}).variable == "QIWI_CHECK_ON_PAY"


@pytest.mark.parametrize("length", [1, 55, 56, 63])
def test_every_schema_length_postgresql_keeps_is_accepted(length: int) -> None:
    schema = "s" * length
    assert from_env({"PG_SCHEMA": schema}).database.schema == schema


def test_a_schema_postgresql_would_truncate_is_refused() -> None:
    assert config_error({"PG_SCHEMA": "s" * 64}).variable == "PG_SCHEMA"


# --- QIWI's listener: timeouts, connection caps, refused-request log rate (issue 18) ---

LIMITS = {
    "QIWI_READ_TIMEOUT": ("2.5", "read_timeout", 2.5),
    "QIWI_KEEPALIVE_TIMEOUT": ("4", "keepalive_timeout", 4.0),
    "QIWI_MAX_CONNECTIONS": ("300", "max_connections", 300),
    "QIWI_MAX_CONNECTIONS_PER_IP": ("20", "max_connections_per_ip", 20),
    "QIWI_REFUSED_LOG_RATE": ("0.5", "refused_log_rate", 0.5),
}


def test_listener_limits_default_to_what_docs_security_md_says() -> None:
    limits = from_env({}).limits
    assert limits.read_timeout == 10.0
    assert limits.keepalive_timeout == 15.0
    assert limits.max_connections == 1000
    assert limits.max_connections_per_ip == 100
    assert limits.refused_log_rate == 5.0


@pytest.mark.parametrize("variable", sorted(LIMITS))
def test_each_listener_limit_is_read(variable: str) -> None:
    raw, attribute, value = LIMITS[variable]
    assert getattr(from_env({variable: raw}).limits, attribute) == value


@pytest.mark.parametrize("variable", sorted(LIMITS))
@pytest.mark.parametrize("bad", ["0", "-1", "ten"])
def test_a_bad_listener_limit_names_its_variable(variable: str, bad: str) -> None:
    assert config_error({variable: bad}).variable == variable

"""Every setting, read once from the environment into one frozen object.

Names are the original image's where it had one (``PG_*``, ``HTTP_AUTH_*``,
``QIWI_CHECK_URL``, ``QIWI_WEBHOOK_URL``, ``MS_TIMEZONE``, ``DEBUG``), so an
operator switches images without touching the configuration. An empty value
counts as unset: compose files often write ``VAR=`` for "no value".

Each variable is declared once, in ``VARIABLES`` (name, default, parser, meaning, group):
the dataclasses' defaults, ``Settings.from_env``, ``qiwi-gw serve --help`` and
docs/configuration.md (``python -m qiwi_gw.settings > docs/configuration.md``) all read it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from qiwi_gw.errors import ConfigError

T = TypeVar("T")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# PostgreSQL truncates identifiers past 63 bytes; a plain lower-case name of 1-63.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
_BAD_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _postgres_url(raw: str) -> str:
    # Never the URL itself in these messages: it carries the password.
    parts = urlsplit(raw)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("must start with postgresql:// or postgres://")
    if _BAD_PERCENT_ESCAPE.search(raw):
        # libpq refuses the URL and quotes the offending part (the password, maybe) in its
        # error; say it here, without the value.
        raise ValueError(
            "has a % not followed by two hexadecimal digits (write a % in a password or "
            "a name as %25)"
        )
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError:
        raise ValueError("has a port that is not a number from 0 to 65535") from None
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("names no host")
    return raw


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{mask_url(raw)!r} is not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018
    except ValueError:
        raise ValueError("has a port that is not a number from 0 to 65535") from None
    return raw


def _port(raw: str) -> int:
    port = _positive_int(raw)
    if port > 65535:
        raise ValueError(f"{raw!r} is not a port number (1-65535)")
    return port


def _port_or_zero(raw: str) -> int:
    return 0 if raw == "0" else _port(raw)


def _host_list(raw: str) -> tuple[str, ...]:
    """``host[:port]`` items separated by commas (without a port: see _database_settings)."""
    hosts = tuple(item.strip() for item in raw.split(",") if item.strip())
    for host in hosts:
        if any(character.isspace() or character in "/@?#" for character in host):
            raise ValueError(f"{host!r} is not a host name")
        _split_port(host)  # a bad port is this variable's error, raised here
    return hosts


def _split_port(item: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, _port(rest[1:]) if rest.startswith(":") else None
    if item.count(":") == 1:
        host, _, port = item.partition(":")
        return host, _port(port)
    return item, None


def _concurrency(raw: str) -> int:
    # The lease covers two batches of the outcome recorder (500 outcomes each); more
    # deliveries in flight than one batch would break that arithmetic.
    value = _positive_int(raw)
    if value > 500:
        raise ValueError(f"{raw!r} is more than 500 deliveries at once")
    return value


def _positive_int(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
        raise ValueError(f"{raw!r} is not a positive whole number")
    return int(raw)


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{raw!r} is not a positive finite number")
    return value


def _positive_decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a decimal number like 10.00") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{raw!r} is not a positive amount")
    return value


def _networks(raw: str) -> tuple[IpNetwork, ...]:
    networks = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _regex(raw: str) -> re.Pattern[str]:
    try:
        return re.compile(raw)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"is not a valid regular expression ({exc})") from None


def _zone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{raw!r} is not a known time zone (e.g. Europe/Moscow)") from None


def _boolean(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is neither true nor false")


def _webhook_secret(raw: str) -> str:
    if not raw.startswith(_WEBHOOK_SECRET_PREFIX):
        raise ValueError("must be written whsec_<base64>")
    try:
        encoded = raw[len(_WEBHOOK_SECRET_PREFIX) :]
        # Padding is optional, as in the standardwebhooks verifier.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "must be written whsec_<base64>; the part after whsec_ is not base64"
        ) from None
    if len(key) < 16:
        raise ValueError("is shorter than 16 bytes once decoded")
    return raw


def _text(raw: str) -> str:
    return raw


def _schema(raw: str) -> str:
    if not _SCHEMA_NAME.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a plain lower-case identifier")
    return raw


def _log_format(raw: str) -> str:
    if raw not in ("text", "json"):
        raise ValueError(f"{raw!r} is neither 'text' nor 'json'")
    return raw


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: the only place its default, parser and meaning are written.

    ``shown`` replaces the default in help and docs where the real default is derived from
    another variable (``PG_DATABASE`` defaults to ``PG_USER``).
    """

    name: str
    default: T
    parse: Callable[[str], T]
    help: str
    group: str
    shown: str | None = None

    @property
    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        value: object = self.default
        if value is None or value == ():
            return _UNSET
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, ZoneInfo):
            return value.key
        return str(value)


_UNSET = "\N{EN DASH}"  # how an unset default is shown
_NO_NETWORKS: tuple[IpNetwork, ...] = ()
_NO_HOSTS: tuple[str, ...] = ()

SERVER = "QIWI's port"
DATABASE = "Database"
PAYMENTS = "Payments"
WEBHOOK = "Webhooks"
CONSOLE = "Operator console"
LIMITS = "Limits on QIWI's port"
LOGGING = "Logging"

HOST = Variable(
    "HOST",
    "0.0.0.0",  # noqa: S104 - a server in a container listens on every address
    _text,
    "address to listen on",
    SERVER,
)
PORT = Variable("PORT", 8080, _port, "port to listen on (the image sets `80`)", SERVER)
HTTP_AUTH_USERNAME = Variable(
    "HTTP_AUTH_USERNAME",
    None,
    _text,
    "with `HTTP_AUTH_PASSWORD` (both, or neither): `/payment` requires this Basic auth, else 401",
    SERVER,
)
HTTP_AUTH_PASSWORD = Variable(
    "HTTP_AUTH_PASSWORD", None, _text, "the password of `HTTP_AUTH_USERNAME`", SERVER
)
QIWI_ALLOWED_IPS = Variable(
    "QIWI_ALLOWED_IPS",
    _NO_NETWORKS,
    _networks,
    "comma-separated CIDRs allowed to call `/payment` (QIWI's: `79.142.16.0/20,"
    "91.232.230.0/23,195.189.100.0/22,91.213.51.0/24`); others get 403",
    SERVER,
)
QIWI_TRUSTED_PROXIES = Variable(
    "QIWI_TRUSTED_PROXIES",
    _NO_NETWORKS,
    _networks,
    "CIDRs of proxies whose `X-Forwarded-For` is believed",
    SERVER,
)

DATABASE_URL = Variable(
    "DATABASE_URL",
    None,
    _postgres_url,
    "`postgresql://user:pass@host:port/db`; wins over `PG_*`",
    DATABASE,
)
PG_HOST = Variable(
    "PG_HOST",
    None,
    _text,
    "database host (the original image's way); with neither this nor `DATABASE_URL`, "
    "the gateway stops unless `QIWI_EMBEDDED_DB=true`",
    DATABASE,
)
PG_PORT = Variable("PG_PORT", 5432, _port, "database port", DATABASE)
PG_DATABASE = Variable(
    "PG_DATABASE",
    None,
    _text,
    "database name; created at start when missing (the role needs `CREATEDB`)",
    DATABASE,
    shown="PG_USER",
)
PG_USER = Variable("PG_USER", "postgres", _text, "database user", DATABASE)
PG_PASSWORD = Variable(
    "PG_PASSWORD",
    None,
    _text,
    "database password (never logged: DSNs are logged with `***`)",
    DATABASE,
)
PG_SCHEMA = Variable(
    "PG_SCHEMA",
    "public",
    _schema,
    "schema holding the tables (created if missing): a lower-case name of 1-63 characters",
    DATABASE,
)
PG_REAL_HOST = Variable(
    "PG_REAL_HOST",
    None,
    _text,
    "the database itself when `PG_HOST` is a PgBouncer (transaction mode): LISTEN and "
    "migrations need a direct connection. When set, pooled connections use no "
    "prepared-statement cache, and PgBouncer must ignore the `search_path` start-up "
    "parameter, so `PG_SCHEMA` must be the role's default schema there",
    DATABASE,
)
# PgBouncer often listens on another port than the database behind it.
PG_REAL_PORT = Variable(
    "PG_REAL_PORT",
    None,
    _port,
    "the database's port when it differs from PgBouncer's",
    DATABASE,
    shown="PG_PORT",
)
PG_SLAVES = Variable(
    "PG_SLAVES",
    _NO_HOSTS,
    _host_list,
    "read replicas, `host[:port]` comma-separated, for the read-only operator commands; "
    "an item without a port takes `PG_REAL_PORT`'s, else `PG_PORT`'s",
    DATABASE,
)
QIWI_EMBEDDED_DB = Variable(
    "QIWI_EMBEDDED_DB",
    False,
    _boolean,
    "`true`: start the embedded database when neither `PG_HOST` nor `DATABASE_URL` is set "
    "(`make run` and `make migrate` set it); otherwise stop with exit 2",
    DATABASE,
)
QIWI_DATA_DIR = Variable(
    "QIWI_DATA_DIR", Path(".qiwi-gw"), Path, "where the embedded database keeps its data", DATABASE
)
QIWI_DB_POOL_SIZE = Variable(
    "QIWI_DB_POOL_SIZE",
    20,
    _positive_int,
    "most database connections for requests (QIWI needs 10-15 concurrent)",
    DATABASE,
)
QIWI_DB_TIMEOUT = Variable(
    "QIWI_DB_TIMEOUT",
    5.0,
    _positive_float,
    "seconds to connect, or to run one statement, before answering `1`",
    DATABASE,
)

QIWI_ACCOUNT_REGEX = Variable(
    "QIWI_ACCOUNT_REGEX", None, _regex, "an account must match it entirely, else code 4", PAYMENTS
)
QIWI_MIN_SUM = Variable(
    "QIWI_MIN_SUM", None, _positive_decimal, "sums below it get code 241", PAYMENTS
)
QIWI_MAX_SUM = Variable(
    "QIWI_MAX_SUM", None, _positive_decimal, "sums above it get code 242", PAYMENTS
)
QIWI_CHECK_URL = Variable(
    "QIWI_CHECK_URL",
    None,
    _http_url,
    "the merchant's account check, `GET <url>?account=…` (appended to the URL's own query)",
    PAYMENTS,
)
QIWI_CHECK_TIMEOUT = Variable(
    "QIWI_CHECK_TIMEOUT",
    10.0,
    _positive_float,
    "seconds for the check call; no answer in time: code 1",
    PAYMENTS,
)
QIWI_CHECK_ON_PAY = Variable(
    "QIWI_CHECK_ON_PAY",
    False,
    _boolean,
    "`true`: a `pay` whose `txn_id` is not stored yet asks `QIWI_CHECK_URL` first (200: "
    "stored; any other answer: 5, nothing stored; no answer: 1). A stored `txn_id` never "
    "asks. Needs `QIWI_CHECK_URL`",
    PAYMENTS,
)
MS_TIMEZONE = Variable(
    "MS_TIMEZONE", ZoneInfo("UTC"), _zone, "time zone of the webhook's `created_at`", PAYMENTS
)

QIWI_WEBHOOK_URL = Variable(
    "QIWI_WEBHOOK_URL",
    None,
    _http_url,
    "where payments are POSTed; unset: payments are stored completed and nothing is sent",
    WEBHOOK,
)
QIWI_WEBHOOK_SECRET = Variable(
    "QIWI_WEBHOOK_SECRET",
    None,
    _webhook_secret,
    "`whsec_<base64>` (at least 16 bytes): sign webhooks (Standard Webhooks)",
    WEBHOOK,
)
QIWI_WEBHOOK_TIMEOUT = Variable(
    "QIWI_WEBHOOK_TIMEOUT", 15.0, _positive_float, "seconds per delivery attempt", WEBHOOK
)
QIWI_WEBHOOK_RETRY_MIN = Variable(
    "QIWI_WEBHOOK_RETRY_MIN", 1.0, _positive_float, "first retry delay, seconds", WEBHOOK
)
QIWI_WEBHOOK_RETRY_MAX = Variable(
    "QIWI_WEBHOOK_RETRY_MAX", 600.0, _positive_float, "longest retry delay, seconds", WEBHOOK
)
QIWI_WEBHOOK_CONCURRENCY = Variable(
    "QIWI_WEBHOOK_CONCURRENCY",
    16,
    _concurrency,
    "deliveries in flight at once (at most 500); also the probe size during an outage",
    WEBHOOK,
)
QIWI_SWEEP_INTERVAL = Variable(
    "QIWI_SWEEP_INTERVAL",
    5.0,
    _positive_float,
    "seconds between sweeps for due rows (NOTIFY normally wakes the dispatcher first)",
    WEBHOOK,
)
QIWI_ATTEMPT_RETENTION_DAYS = Variable(
    "QIWI_ATTEMPT_RETENTION_DAYS",
    30,
    _positive_int,
    "attempts of delivered payments older than this are pruned",
    WEBHOOK,
)

QIWI_CONSOLE_HOST = Variable(
    "QIWI_CONSOLE_HOST",
    "127.0.0.1",
    _text,
    "the operator listener (console and `/metrics`); anything but loopback requires "
    "`QIWI_CONSOLE_USERNAME` and `QIWI_CONSOLE_PASSWORD`, else the gateway refuses to start",
    CONSOLE,
)
QIWI_CONSOLE_PORT = Variable(
    "QIWI_CONSOLE_PORT", 8081, _port_or_zero, "its port; `0` turns it off", CONSOLE
)
QIWI_CONSOLE_USERNAME = Variable(
    "QIWI_CONSOLE_USERNAME",
    None,
    _text,
    "with `QIWI_CONSOLE_PASSWORD` (both, or neither): the console asks for this login",
    CONSOLE,
)
QIWI_CONSOLE_PASSWORD = Variable(
    "QIWI_CONSOLE_PASSWORD", None, _text, "the password of `QIWI_CONSOLE_USERNAME`", CONSOLE
)

QIWI_READ_TIMEOUT = Variable(
    "QIWI_READ_TIMEOUT",
    10.0,
    _positive_float,
    "seconds from a request's first byte to its last (headers and body) on QIWI's port; "
    "later, the connection is closed",
    LIMITS,
)
QIWI_KEEPALIVE_TIMEOUT = Variable(
    "QIWI_KEEPALIVE_TIMEOUT",
    15.0,
    _positive_float,
    "seconds an idle connection to QIWI's port stays open",
    LIMITS,
)
QIWI_MAX_CONNECTIONS = Variable(
    "QIWI_MAX_CONNECTIONS",
    1000,
    _positive_int,
    "open connections to QIWI's port in all (also capped by the descriptor limit; a tenth "
    "kept for `QIWI_ALLOWED_IPS`)",
    LIMITS,
)
QIWI_MAX_CONNECTIONS_PER_IP = Variable(
    "QIWI_MAX_CONNECTIONS_PER_IP",
    100,
    _positive_int,
    "open connections from one address (a trusted proxy is exempt)",
    LIMITS,
)
QIWI_REFUSED_LOG_RATE = Variable(
    "QIWI_REFUSED_LOG_RATE",
    5.0,
    _positive_float,
    "refused requests (allow-list, auth) written to `qiwi_http_log` per second per "
    "address; the rest are counted in `qiwi_refused_unlogged_total`",
    LIMITS,
)

DEBUG = Variable("DEBUG", False, _boolean, "`true` for debug logs", LOGGING)
LOG_FORMAT = Variable(
    "LOG_FORMAT", "text", _log_format, "`json` for one JSON object per line", LOGGING
)

VARIABLES: tuple[Variable[Any], ...] = (
    HOST,
    PORT,
    HTTP_AUTH_USERNAME,
    HTTP_AUTH_PASSWORD,
    QIWI_ALLOWED_IPS,
    QIWI_TRUSTED_PROXIES,
    DATABASE_URL,
    PG_HOST,
    PG_PORT,
    PG_DATABASE,
    PG_USER,
    PG_PASSWORD,
    PG_SCHEMA,
    PG_REAL_HOST,
    PG_REAL_PORT,
    PG_SLAVES,
    QIWI_EMBEDDED_DB,
    QIWI_DATA_DIR,
    QIWI_DB_POOL_SIZE,
    QIWI_DB_TIMEOUT,
    QIWI_ACCOUNT_REGEX,
    QIWI_MIN_SUM,
    QIWI_MAX_SUM,
    QIWI_CHECK_URL,
    QIWI_CHECK_TIMEOUT,
    QIWI_CHECK_ON_PAY,
    MS_TIMEZONE,
    QIWI_WEBHOOK_URL,
    QIWI_WEBHOOK_SECRET,
    QIWI_WEBHOOK_TIMEOUT,
    QIWI_WEBHOOK_RETRY_MIN,
    QIWI_WEBHOOK_RETRY_MAX,
    QIWI_WEBHOOK_CONCURRENCY,
    QIWI_SWEEP_INTERVAL,
    QIWI_ATTEMPT_RETENTION_DAYS,
    QIWI_CONSOLE_HOST,
    QIWI_CONSOLE_PORT,
    QIWI_CONSOLE_USERNAME,
    QIWI_CONSOLE_PASSWORD,
    QIWI_READ_TIMEOUT,
    QIWI_KEEPALIVE_TIMEOUT,
    QIWI_MAX_CONNECTIONS,
    QIWI_MAX_CONNECTIONS_PER_IP,
    QIWI_REFUSED_LOG_RATE,
    DEBUG,
    LOG_FORMAT,
)


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the tables live. ``dsn`` is None when the embedded server is to be used."""

    # Left out of repr: DSNs carry passwords (log them with mask_dsn).
    dsn: str | None = field(repr=False)
    # The database itself, never through PgBouncer: LISTEN and migrations need a session.
    # It differs from ``dsn`` only when PG_REAL_HOST names the server behind a pooler.
    direct_dsn: str | None = field(repr=False)
    schema: str = PG_SCHEMA.default
    # PG_SLAVES: read replicas for the operator's read-only queries, first answering wins.
    replica_dsns: tuple[str, ...] = field(default=(), repr=False)
    # QIWI_EMBEDDED_DB: whether to start the embedded server when no database is configured.
    # Only when asked for: a misspelt PG_HOST must not keep real payments in a throwaway
    # database.
    embedded_allowed: bool = QIWI_EMBEDDED_DB.default
    data_dir: Path = QIWI_DATA_DIR.default
    pool_size: int = QIWI_DB_POOL_SIZE.default
    timeout: float = QIWI_DB_TIMEOUT.default

    @property
    def embedded(self) -> bool:
        return self.dsn is None

    @property
    def behind_pooler(self) -> bool:
        """``dsn`` is a PgBouncer in transaction mode: no session state, no prepared cache."""
        return self.direct_dsn != self.dsn


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None = field(default=QIWI_WEBHOOK_URL.default, repr=False)
    secret: str | None = field(default=QIWI_WEBHOOK_SECRET.default, repr=False)
    timeout: float = QIWI_WEBHOOK_TIMEOUT.default
    retry_min: float = QIWI_WEBHOOK_RETRY_MIN.default
    retry_max: float = QIWI_WEBHOOK_RETRY_MAX.default
    concurrency: int = QIWI_WEBHOOK_CONCURRENCY.default
    sweep_interval: float = QIWI_SWEEP_INTERVAL.default
    attempt_retention_days: int = QIWI_ATTEMPT_RETENTION_DAYS.default


@dataclass(frozen=True)
class ConsoleSettings:
    """The operator listener: the console and /metrics, never QIWI's port."""

    host: str = QIWI_CONSOLE_HOST.default
    port: int = QIWI_CONSOLE_PORT.default  # 0: no operator listener
    username: str | None = QIWI_CONSOLE_USERNAME.default
    password: str | None = field(default=QIWI_CONSOLE_PASSWORD.default, repr=False)

    @property
    def enabled(self) -> bool:
        return self.port != 0

    @property
    def login_required(self) -> bool:
        return self.username is not None


@dataclass(frozen=True)
class LimitSettings:
    """What a caller on QIWI's port may hold: time to send a request, connections."""

    read_timeout: float = QIWI_READ_TIMEOUT.default
    keepalive_timeout: float = QIWI_KEEPALIVE_TIMEOUT.default
    max_connections: int = QIWI_MAX_CONNECTIONS.default
    max_connections_per_ip: int = QIWI_MAX_CONNECTIONS_PER_IP.default
    # Refused requests (allow-list, auth) written to qiwi_http_log, per address per second.
    refused_log_rate: float = QIWI_REFUSED_LOG_RATE.default


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings
    webhook: WebhookSettings = WebhookSettings()
    console: ConsoleSettings = ConsoleSettings()
    limits: LimitSettings = LimitSettings()
    host: str = HOST.default
    port: int = PORT.default
    check_url: str | None = field(default=QIWI_CHECK_URL.default, repr=False)
    check_timeout: float = QIWI_CHECK_TIMEOUT.default
    check_on_pay: bool = QIWI_CHECK_ON_PAY.default
    auth_username: str | None = HTTP_AUTH_USERNAME.default
    auth_password: str | None = field(default=HTTP_AUTH_PASSWORD.default, repr=False)
    allowed_networks: tuple[IpNetwork, ...] = QIWI_ALLOWED_IPS.default
    trusted_proxies: tuple[IpNetwork, ...] = QIWI_TRUSTED_PROXIES.default
    account_pattern: re.Pattern[str] | None = QIWI_ACCOUNT_REGEX.default
    min_sum: Decimal | None = QIWI_MIN_SUM.default
    max_sum: Decimal | None = QIWI_MAX_SUM.default
    timezone: ZoneInfo = MS_TIMEZONE.default
    debug: bool = DEBUG.default
    log_format: str = LOG_FORMAT.default

    @property
    def auth_required(self) -> bool:
        return self.auth_username is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse and validate; raise ``ConfigError`` naming the first bad variable."""
        read = _Reader(env)
        username = read(HTTP_AUTH_USERNAME)
        password = read(HTTP_AUTH_PASSWORD)
        if (username is None) != (password is None):
            missing = "HTTP_AUTH_PASSWORD" if password is None else "HTTP_AUTH_USERNAME"
            raise ConfigError(missing, "must be set together with its pair, or neither")
        min_sum = read(QIWI_MIN_SUM)
        max_sum = read(QIWI_MAX_SUM)
        if min_sum is not None and max_sum is not None and min_sum > max_sum:
            raise ConfigError("QIWI_MAX_SUM", f"{max_sum} is below QIWI_MIN_SUM {min_sum}")
        webhook = WebhookSettings(
            url=read(QIWI_WEBHOOK_URL),
            secret=read(QIWI_WEBHOOK_SECRET),
            timeout=read(QIWI_WEBHOOK_TIMEOUT),
            retry_min=read(QIWI_WEBHOOK_RETRY_MIN),
            retry_max=read(QIWI_WEBHOOK_RETRY_MAX),
            concurrency=read(QIWI_WEBHOOK_CONCURRENCY),
            sweep_interval=read(QIWI_SWEEP_INTERVAL),
            attempt_retention_days=read(QIWI_ATTEMPT_RETENTION_DAYS),
        )
        if webhook.retry_min > webhook.retry_max:
            raise ConfigError("QIWI_WEBHOOK_RETRY_MAX", "is below QIWI_WEBHOOK_RETRY_MIN")
        check_url = read(QIWI_CHECK_URL)
        check_on_pay = read(QIWI_CHECK_ON_PAY)
        if check_on_pay and check_url is None:
            raise ConfigError("QIWI_CHECK_ON_PAY", "is true but QIWI_CHECK_URL is not set")
        log_format = read(LOG_FORMAT)
        return cls(
            database=_database_settings(read),
            webhook=webhook,
            host=read(HOST),
            port=read(PORT),
            check_url=check_url,
            check_timeout=read(QIWI_CHECK_TIMEOUT),
            check_on_pay=check_on_pay,
            console=_console_settings(read),
            limits=LimitSettings(
                read_timeout=read(QIWI_READ_TIMEOUT),
                keepalive_timeout=read(QIWI_KEEPALIVE_TIMEOUT),
                max_connections=read(QIWI_MAX_CONNECTIONS),
                max_connections_per_ip=read(QIWI_MAX_CONNECTIONS_PER_IP),
                refused_log_rate=read(QIWI_REFUSED_LOG_RATE),
            ),
            auth_username=username,
            auth_password=password,
            allowed_networks=read(QIWI_ALLOWED_IPS),
            trusted_proxies=read(QIWI_TRUSTED_PROXIES),
            account_pattern=read(QIWI_ACCOUNT_REGEX),
            min_sum=min_sum,
            max_sum=max_sum,
            timezone=read(MS_TIMEZONE),
            debug=read(DEBUG),
            log_format=log_format,
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def __call__(self, variable: Variable[T]) -> T:
        raw = self._env.get(variable.name, "").strip()
        if not raw:
            return variable.default
        try:
            return variable.parse(raw)
        except ValueError as exc:
            raise ConfigError(variable.name, str(exc)) from None


def _console_settings(read: _Reader) -> ConsoleSettings:
    username = read(QIWI_CONSOLE_USERNAME)
    password = read(QIWI_CONSOLE_PASSWORD)
    if (username is None) != (password is None):
        missing = "QIWI_CONSOLE_PASSWORD" if password is None else "QIWI_CONSOLE_USERNAME"
        raise ConfigError(missing, "must be set together with its pair, or neither")
    host = read(QIWI_CONSOLE_HOST)
    port = read(QIWI_CONSOLE_PORT)
    if port != 0 and username is None and not _is_loopback(host):
        raise ConfigError(
            "QIWI_CONSOLE_HOST",
            f"{host!r} is not a loopback address and QIWI_CONSOLE_USERNAME/"
            "QIWI_CONSOLE_PASSWORD are not set: the console would be open to anyone",
        )
    return ConsoleSettings(host=host, port=port, username=username, password=password)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _database_settings(read: _Reader) -> DatabaseSettings:
    schema = read(PG_SCHEMA)
    url = read(DATABASE_URL)
    host = read(PG_HOST)
    real_host = read(PG_REAL_HOST)
    port = read(PG_PORT)
    if url is None and host is not None:
        url = _dsn_from_parts(read, host, port)
    if url is None and real_host is not None:
        raise ConfigError("PG_REAL_HOST", "is set but neither PG_HOST nor DATABASE_URL is")
    real_port = read(PG_REAL_PORT)
    direct = _replace_host(url, real_host, real_port) if url and real_host else url
    slaves = read(PG_SLAVES)
    if slaves and url is None:
        raise ConfigError("PG_SLAVES", "is set but neither PG_HOST nor DATABASE_URL is")
    # Unset or empty (compose's ${QIWI_EMBEDDED_DB:-}) is false: asked for explicitly only.
    embedded_allowed = read(QIWI_EMBEDDED_DB)
    if url is None and not embedded_allowed:
        raise ConfigError(
            "PG_HOST",
            "is not set (nor DATABASE_URL) and QIWI_EMBEDDED_DB is false: set PG_HOST "
            "(or DATABASE_URL) to the database, or QIWI_EMBEDDED_DB=true for a throwaway one",
        )
    # An item without a port: PG_REAL_PORT's when set (PG_PORT is then PgBouncer's, and
    # replicas are PostgreSQL servers like PG_REAL_HOST), else the primary's.
    replicas = tuple(
        _replace_host(url, name, port or real_port)
        for name, port in (_split_port(host) for host in slaves)
        if url
    )
    return DatabaseSettings(
        dsn=url,
        direct_dsn=direct,
        schema=schema,
        replica_dsns=replicas,
        embedded_allowed=embedded_allowed,
        data_dir=read(QIWI_DATA_DIR),
        pool_size=read(QIWI_DB_POOL_SIZE),
        timeout=read(QIWI_DB_TIMEOUT),
    )


def _dsn_from_parts(read: _Reader, host: str, port: int) -> str:
    user = read(PG_USER)
    password = read(PG_PASSWORD)
    database = read(PG_DATABASE) or user
    credentials = quote(user, safe="")
    if password is not None:
        credentials += ":" + quote(password, safe="")
    return f"postgresql://{credentials}@{_host_part(host, port)}/{quote(database, safe='')}"


def _host_part(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _replace_host(url: str, host: str, port: int | None) -> str:
    """``url`` pointing at ``host`` (and ``port``, when given, else its own)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = _host_part(host, port or parts.port or 5432)
    if credentials:
        netloc = f"{credentials}@{netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


def mask_dsn(dsn: str) -> str:
    """The DSN with its passwords replaced, for logs: in the userinfo, and any query
    parameter named like one (password, sslpassword)."""
    parts = urlsplit(dsn)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    query = [
        (name, "***" if "password" in name.lower() else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    masked = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return f"{masked}?{urlencode(query, safe='/*')}" if query else masked


def mask_url(url: str) -> str:
    """A URL with any userinfo and query removed: both may carry secrets."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
DOC_PATH = Path("docs/configuration.md")
_REGENERATE = "python -m qiwi_gw.settings > docs/configuration.md"


def configuration_markdown() -> str:
    """docs/configuration.md, generated from ``VARIABLES``: one table per group."""
    lines = [
        "# Configuration",
        "",
        f"<!-- Generated from src/qiwi_gw/settings.py by `{_REGENERATE}`;",
        "     edit the table there, not this file. -->",
        "",
        "Every setting comes from the environment and is read once at start. An empty value",
        "counts as unset. A malformed value stops the process with one line naming the",
        "variable, exit code 2.",
    ]
    for group in dict.fromkeys(variable.group for variable in VARIABLES):
        lines += ["", f"## {group}", "", "| variable | default | meaning |", "|---|---|---|"]
        for variable in VARIABLES:
            if variable.group == group:
                default = variable.shown_default
                shown = default if default == _UNSET else f"`{default}`"
                lines.append(f"| `{variable.name}` | {shown} | {variable.help} |")
    return "\n".join(lines) + "\n"


def environment_help() -> str:
    """The variables for ``qiwi-gw serve --help``: name, default and meaning, plain text."""
    lines = ["environment variables (an empty value counts as unset):"]
    for group in dict.fromkeys(variable.group for variable in VARIABLES):
        lines += ["", f"  {group}:"]
        for variable in VARIABLES:
            if variable.group == group:
                meaning = _MARKDOWN_LINK.sub(r"\1", variable.help).replace("`", "")
                default = variable.shown_default
                lines.append(f"    {variable.name} (default: {default})")
                lines += textwrap.wrap(
                    meaning, width=88, initial_indent=" " * 8, subsequent_indent=" " * 8
                )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(configuration_markdown())

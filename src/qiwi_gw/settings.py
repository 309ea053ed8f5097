"""Every setting, read once from the environment into one frozen object.

Names are the original image's where it had one (``PG_*``, ``HTTP_AUTH_*``,
``QIWI_CHECK_URL``, ``QIWI_WEBHOOK_URL``, ``MS_TIMEZONE``, ``DEBUG``), so an
operator switches images without touching the configuration. An empty value
counts as unset: compose files often write ``VAR=`` for "no value".
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from qiwi_gw.errors import ConfigError

T = TypeVar("T")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# PostgreSQL truncates identifiers past 63 bytes; a plain lower-case name of 1-63.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
_BAD_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the tables live. ``dsn`` is None when the embedded server is to be used."""

    # Left out of repr: DSNs carry passwords (log them with mask_dsn).
    dsn: str | None = field(repr=False)
    # PG_REAL_HOST: the database itself when ``dsn`` points at PgBouncer, for LISTEN.
    listen_dsn: str | None = field(repr=False)
    schema: str = "public"
    # PG_SLAVES: read replicas for the operator's read-only queries, first answering wins.
    replica_dsns: tuple[str, ...] = field(default=(), repr=False)
    # QIWI_EMBEDDED_DB: whether to start the embedded server when no database is configured.
    # Only when asked for: a misspelt PG_HOST must not keep real payments in a throwaway
    # database.
    embedded_allowed: bool = False
    data_dir: Path = Path(".qiwi-gw")
    pool_size: int = 20
    timeout: float = 5.0

    @property
    def embedded(self) -> bool:
        return self.dsn is None


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    timeout: float = 15.0
    retry_min: float = 1.0
    retry_max: float = 600.0
    concurrency: int = 16
    sweep_interval: float = 5.0
    attempt_retention_days: int = 30


@dataclass(frozen=True)
class ConsoleSettings:
    """The operator listener: the console and /metrics, never QIWI's port."""

    host: str = "127.0.0.1"
    port: int = 8081  # 0: no operator listener
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return self.port != 0

    @property
    def login_required(self) -> bool:
        return self.username is not None


@dataclass(frozen=True)
class LimitSettings:
    """What a caller on QIWI's port may hold: time to send a request, connections."""

    read_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_connections: int = 1000
    max_connections_per_ip: int = 100
    # Refused requests (allow-list, auth) written to qiwi_http_log, per address per second.
    refused_log_rate: float = 5.0


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings
    webhook: WebhookSettings = WebhookSettings()
    console: ConsoleSettings = ConsoleSettings()
    limits: LimitSettings = LimitSettings()
    host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on every address
    port: int = 8080
    check_url: str | None = field(default=None, repr=False)
    check_timeout: float = 10.0
    check_on_pay: bool = False
    auth_username: str | None = None
    auth_password: str | None = field(default=None, repr=False)
    allowed_networks: tuple[IpNetwork, ...] = ()
    trusted_proxies: tuple[IpNetwork, ...] = ()
    account_pattern: re.Pattern[str] | None = None
    min_sum: Decimal | None = None
    max_sum: Decimal | None = None
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    debug: bool = False
    log_format: str = "text"

    @property
    def auth_required(self) -> bool:
        return self.auth_username is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse and validate; raise ``ConfigError`` naming the first bad variable."""
        read = _Reader(env)
        username = read.text("HTTP_AUTH_USERNAME")
        password = read.text("HTTP_AUTH_PASSWORD")
        if (username is None) != (password is None):
            missing = "HTTP_AUTH_PASSWORD" if password is None else "HTTP_AUTH_USERNAME"
            raise ConfigError(missing, "must be set together with its pair, or neither")
        min_sum = read.parsed("QIWI_MIN_SUM", None, _positive_decimal)
        max_sum = read.parsed("QIWI_MAX_SUM", None, _positive_decimal)
        if min_sum is not None and max_sum is not None and min_sum > max_sum:
            raise ConfigError("QIWI_MAX_SUM", f"{max_sum} is below QIWI_MIN_SUM {min_sum}")
        webhook = WebhookSettings(
            url=read.parsed("QIWI_WEBHOOK_URL", None, _http_url),
            secret=read.parsed("QIWI_WEBHOOK_SECRET", None, _webhook_secret),
            timeout=read.parsed("QIWI_WEBHOOK_TIMEOUT", 15.0, _positive_float),
            retry_min=read.parsed("QIWI_WEBHOOK_RETRY_MIN", 1.0, _positive_float),
            retry_max=read.parsed("QIWI_WEBHOOK_RETRY_MAX", 600.0, _positive_float),
            concurrency=read.parsed("QIWI_WEBHOOK_CONCURRENCY", 16, _concurrency),
            sweep_interval=read.parsed("QIWI_SWEEP_INTERVAL", 5.0, _positive_float),
            attempt_retention_days=read.parsed("QIWI_ATTEMPT_RETENTION_DAYS", 30, _positive_int),
        )
        if webhook.retry_min > webhook.retry_max:
            raise ConfigError("QIWI_WEBHOOK_RETRY_MAX", "is below QIWI_WEBHOOK_RETRY_MIN")
        check_url = read.parsed("QIWI_CHECK_URL", None, _http_url)
        check_on_pay = read.parsed("QIWI_CHECK_ON_PAY", False, _boolean)
        if check_on_pay and check_url is None:
            raise ConfigError("QIWI_CHECK_ON_PAY", "is true but QIWI_CHECK_URL is not set")
        log_format = read.text("LOG_FORMAT") or "text"
        if log_format not in ("text", "json"):
            raise ConfigError("LOG_FORMAT", f"{log_format!r} is neither 'text' nor 'json'")
        return cls(
            database=_database_settings(read),
            webhook=webhook,
            host=read.text("HOST") or "0.0.0.0",  # noqa: S104
            port=read.parsed("PORT", 8080, _port),
            check_url=check_url,
            check_timeout=read.parsed("QIWI_CHECK_TIMEOUT", 10.0, _positive_float),
            check_on_pay=check_on_pay,
            console=_console_settings(read),
            limits=LimitSettings(
                read_timeout=read.parsed("QIWI_READ_TIMEOUT", 10.0, _positive_float),
                keepalive_timeout=read.parsed("QIWI_KEEPALIVE_TIMEOUT", 15.0, _positive_float),
                max_connections=read.parsed("QIWI_MAX_CONNECTIONS", 1000, _positive_int),
                max_connections_per_ip=read.parsed(
                    "QIWI_MAX_CONNECTIONS_PER_IP", 100, _positive_int
                ),
                refused_log_rate=read.parsed("QIWI_REFUSED_LOG_RATE", 5.0, _positive_float),
            ),
            auth_username=username,
            auth_password=password,
            allowed_networks=read.parsed("QIWI_ALLOWED_IPS", (), _networks),
            trusted_proxies=read.parsed("QIWI_TRUSTED_PROXIES", (), _networks),
            account_pattern=read.parsed("QIWI_ACCOUNT_REGEX", None, _regex),
            min_sum=min_sum,
            max_sum=max_sum,
            timezone=read.parsed("MS_TIMEZONE", ZoneInfo("UTC"), _zone),
            debug=read.parsed("DEBUG", False, _boolean),
            log_format=log_format,
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def parsed(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None


def _console_settings(read: _Reader) -> ConsoleSettings:
    username = read.text("QIWI_CONSOLE_USERNAME")
    password = read.text("QIWI_CONSOLE_PASSWORD")
    if (username is None) != (password is None):
        missing = "QIWI_CONSOLE_PASSWORD" if password is None else "QIWI_CONSOLE_USERNAME"
        raise ConfigError(missing, "must be set together with its pair, or neither")
    host = read.text("QIWI_CONSOLE_HOST") or "127.0.0.1"
    port = read.parsed("QIWI_CONSOLE_PORT", 8081, _port_or_zero)
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
    schema = read.text("PG_SCHEMA") or "public"
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError("PG_SCHEMA", f"{schema!r} is not a plain lower-case identifier")
    url = read.parsed("DATABASE_URL", None, _postgres_url)
    host = read.text("PG_HOST")
    real_host = read.text("PG_REAL_HOST")
    port = read.parsed("PG_PORT", 5432, _port)
    if url is None and host is not None:
        url = _dsn_from_parts(read, host, port)
    if url is None and real_host is not None:
        raise ConfigError("PG_REAL_HOST", "is set but neither PG_HOST nor DATABASE_URL is")
    # PgBouncer often listens on another port than the database behind it.
    real_port = read.parsed("PG_REAL_PORT", None, _port)
    listen = _replace_host(url, real_host, real_port) if url and real_host else url
    no_hosts: tuple[str, ...] = ()
    slaves = read.parsed("PG_SLAVES", no_hosts, _host_list)
    if slaves and url is None:
        raise ConfigError("PG_SLAVES", "is set but neither PG_HOST nor DATABASE_URL is")
    # Unset or empty (compose's ${QIWI_EMBEDDED_DB:-}) is false: asked for explicitly only.
    embedded_allowed = read.parsed("QIWI_EMBEDDED_DB", False, _boolean)
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
        listen_dsn=listen,
        schema=schema,
        replica_dsns=replicas,
        embedded_allowed=embedded_allowed,
        data_dir=Path(read.text("QIWI_DATA_DIR") or ".qiwi-gw"),
        pool_size=read.parsed("QIWI_DB_POOL_SIZE", 20, _positive_int),
        timeout=read.parsed("QIWI_DB_TIMEOUT", 5.0, _positive_float),
    )


def _dsn_from_parts(read: _Reader, host: str, port: int) -> str:
    user = read.text("PG_USER") or "postgres"
    password = read.text("PG_PASSWORD")
    database = read.text("PG_DATABASE") or user
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

"""Which ``Host`` and ``Origin`` the console answers: its defence against DNS rebinding
and cross-site form posts.

Without a login, the console trusts whoever reaches its loopback port. A web page of
``attacker.example`` whose name the attacker then re-points at 127.0.0.1 is, to the
browser, same-origin with it: it could read the pages, get a session and its CSRF
token, and post Resend. Its requests still say ``Host: attacker.example``: so without
a login only the loopback names and ``QIWI_CONSOLE_HOST`` are answered, on the port
the request came in on. With a login, the rebinding page only ever sees the login
form, and a reverse proxy in front may use any name.

On every POST, an ``Origin`` header (browsers send one) must name the host the request
was sent to: a form on another site posting here is refused even with a token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def split_host(value: str, default_port: int) -> tuple[str, int] | None:
    """``name:port`` (or ``[v6]:port``, or a name alone) as a lower-case name and a port."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
        name = parts.hostname
    except ValueError:
        return None
    if not name or parts.path or parts.query or parts.fragment or parts.username is not None:
        return None
    return _bracketed(name.lower()), default_port if port is None else port


def local_port(request: web.Request) -> int | None:
    """The port of our listener this request came in on."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
        return sockname[1]
    return None


def host_allowed(request: web.Request, console_host: str) -> bool:
    """Without a login: a loopback name or QIWI_CONSOLE_HOST, and our own port."""
    raw = request.headers.get("Host")
    port = local_port(request)
    if raw is None or port is None:
        return False
    found = split_host(raw, DEFAULT_PORTS["https" if request.secure else "http"])
    names = {*LOOPBACK_NAMES, _bracketed(console_host.lower())}
    return found is not None and found[0] in names and found[1] == port


def origin_matches(request: web.Request) -> bool:
    """No ``Origin`` (a client that is not a browser), or one naming the request's host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    raw = request.headers.get("Host")
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or raw is None:
        return False
    default = DEFAULT_PORTS[parts.scheme]
    host = split_host(raw, default)
    return host == (_bracketed(parts.hostname.lower()), origin_port or default)

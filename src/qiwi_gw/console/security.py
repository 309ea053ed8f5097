"""Sessions, CSRF tokens, login limits and the headers every console response carries.

A visitor's cookie is a random id signed with a key of this process, and its CSRF
token is an HMAC of that id: neither needs a row anywhere, so anonymous visitors,
however many, store nothing and evict nobody. Only a successful login stores a
session (its user, its idle deadline), in a bounded store that only the password
can fill. Flash messages ("payment 123 is due now") of visitors who are not logged
in sit in a small bounded store of their own: losing one costs a line of text.
A restart changes the key: everyone is logged out, which is the safe side.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "qiwi_console"
CSRF_FIELD = "csrf"
SESSION_IDLE_SECONDS = 8 * 3600.0
# Logged-in sessions kept at once: only a right password adds one.
MAX_LOGGED_IN = 1_000
# Flash messages of visitors who are not logged in (no login configured).
MAX_FLASHES = 10_000

# No inline script or style, nothing from another origin, no framing, forms post
# only here. The chart is inline SVG, styled by presentation attributes and the
# stylesheet; its read-out is /static/chart.js.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Nothing to other sites; to this one, the page (and, what matters, an Origin on
    # every POST: under "no-referrer" browsers send "Origin: null", which ``origin``
    # cannot tell from another site's form).
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Instead of aiohttp's name and version.
SERVER = "qiwi-gw"


@dataclass
class Session:
    id: str
    csrf: str
    user: str | None = None
    # One message for the next page shown ("payment 123 is due now").
    flash: str | None = None

    def take_flash(self) -> str | None:
        message, self.flash = self.flash, None
        return message


@dataclass
class _LoggedIn:
    session: Session
    expires: float


class Sessions:
    def __init__(
        self,
        *,
        idle_seconds: float = SESSION_IDLE_SECONDS,
        capacity: int = MAX_LOGGED_IN,
        flashes: int = MAX_FLASHES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = secrets.token_bytes(32)
        self._idle = idle_seconds
        self._capacity = capacity
        self._flash_capacity = flashes
        self._clock = clock
        self._logged_in: OrderedDict[str, _LoggedIn] = OrderedDict()
        self._flashes: OrderedDict[str, str] = OrderedDict()

    def _mac(self, purpose: bytes, value: str) -> str:
        digest = hmac.new(self._key, purpose + value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _session(self, session_id: str, user: str | None = None) -> Session:
        return Session(id=session_id, csrf=self._mac(b"csrf:", session_id), user=user)

    def get(self, cookie: str | None) -> Session | None:
        """The session this cookie names, its idle time reset if logged in; None when
        the cookie is missing or was not made by this process (forged, or from before
        a restart): such an id is never adopted."""
        if not cookie or len(cookie) > 200:
            return None
        nonce, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(b"id:", nonce).encode()):
            return None
        entry = self._logged_in.get(cookie)
        if entry is not None:
            now = self._clock()
            if entry.expires > now:
                entry.expires = now + self._idle
                self._logged_in.move_to_end(cookie)
                return entry.session
            del self._logged_in[cookie]
        session = self._session(cookie)
        session.flash = self._flashes.pop(cookie, None)
        return session

    def new(self, user: str | None = None) -> Session:
        """A fresh id; stored only when ``user`` is given (a login)."""
        nonce = secrets.token_urlsafe(24)
        session = self._session(f"{nonce}.{self._mac(b'id:', nonce)}", user)
        if user is not None:
            while len(self._logged_in) >= self._capacity:
                self._logged_in.popitem(last=False)
            self._logged_in[session.id] = _LoggedIn(session, self._clock() + self._idle)
        return session

    def log_in(self, old: Session, user: str) -> Session:
        """A new session (new id, new CSRF token) for the logged-in user: an id
        someone planted before the login is worth nothing after it."""
        self.drop(old)
        return self.new(user)

    def drop(self, session: Session) -> None:
        self._logged_in.pop(session.id, None)
        self._flashes.pop(session.id, None)

    def keep(self, session: Session) -> None:
        """After a request: a flash message left for the next page of a visitor who is
        not logged in waits here (a logged-in session keeps its own)."""
        if session.user is not None or session.flash is None:
            return
        self._flashes[session.id] = session.flash
        self._flashes.move_to_end(session.id)
        while len(self._flashes) > self._flash_capacity:
            self._flashes.popitem(last=False)

    @property
    def logged_in(self) -> int:
        return len(self._logged_in)


def csrf_matches(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(session.csrf.encode(), given.encode())


def credentials_match(
    given_user: str, given_password: str, username: str | None, password: str | None
) -> bool:
    """Constant time: both halves always compared, as bytes, whatever the first gave."""
    user_ok = hmac.compare_digest(given_user.encode(), (username or "").encode())
    password_ok = hmac.compare_digest(given_password.encode(), (password or "").encode())
    return user_ok & password_ok & (username is not None)


class LoginLimiter:
    """Failed logins (the form's and /metrics' Basic auth alike) in a sliding window.

    One address is refused (429) after ``per_address`` failures. Failures from all
    addresses together past ``overall`` never refuse anyone, or an attacker could keep
    the operator locked out with a request every two seconds: they slow every check
    down by ``delay`` seconds instead (see ``pause``).
    """

    def __init__(
        self,
        *,
        per_address: int = 5,
        overall: int = 30,
        window: float = 60.0,
        delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_address = per_address
        self._overall = overall
        self._window = window
        self._delay = delay
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _forget_old(self, times: deque[float]) -> None:
        horizon = self._clock() - self._window
        while times and times[0] <= horizon:
            times.popleft()

    def blocked(self, address: str) -> bool:
        mine = self._failures.get(address)
        if mine is None:
            return False
        self._forget_old(mine)
        if not mine:
            del self._failures[address]
            return False
        return len(mine) >= self._per_address

    def slowed(self) -> bool:
        """Whether failures from all addresses together are past ``overall``."""
        self._forget_old(self._all)
        return len(self._all) >= self._overall

    async def pause(self) -> None:
        """Before checking a password: wait ``delay`` while failures from everywhere
        are past ``overall``. The right password waits too (checking it first and
        delaying only the wrong ones would tell a guess's outcome by its speed), but is
        never refused."""
        if self.slowed():
            await asyncio.sleep(self._delay)

    def failed(self, address: str) -> bool:
        """Count a failure; True when it is the one that blocks ``address``."""
        now = self._clock()
        if len(self._failures) > self._overall:
            # Addresses whose failures have all aged out: forget them.
            for stale in [
                key for key, times in self._failures.items() if times[-1] <= now - self._window
            ]:
                del self._failures[stale]
        mine = self._failures.setdefault(address, deque())
        self._forget_old(mine)
        mine.append(now)
        self._all.append(now)
        self._forget_old(self._all)
        return len(mine) == self._per_address

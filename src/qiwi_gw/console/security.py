"""Sessions, CSRF tokens, login and the headers every console response carries.

Sessions live in memory: a restart logs operators out, which is the safe side.
Every visitor gets a session (with or without a login), because every form
carries its session's CSRF token; the store is bounded, oldest evicted first, so
visitors cannot grow it without limit.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "qiwi_console"
CSRF_FIELD = "csrf"
SESSION_IDLE_SECONDS = 8 * 3600.0
MAX_SESSIONS = 10_000

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
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Session:
    id: str
    csrf: str
    expires: float
    user: str | None = None
    # One message for the next page shown ("payment 123 is due now").
    flash: str | None = None
    changed: bool = field(default=True, repr=False)

    def take_flash(self) -> str | None:
        message, self.flash = self.flash, None
        return message


class Sessions:
    def __init__(
        self,
        *,
        idle_seconds: float = SESSION_IDLE_SECONDS,
        capacity: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle = idle_seconds
        self._capacity = capacity
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, its idle time reset; None if unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if session.expires <= now:
            del self._sessions[session_id]
            return None
        session.expires = now + self._idle
        self._sessions.move_to_end(session_id)
        return session

    def new(self, user: str | None = None) -> Session:
        while len(self._sessions) >= self._capacity:
            self._sessions.popitem(last=False)
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            expires=self._clock() + self._idle,
            user=user,
        )
        self._sessions[session.id] = session
        return session

    def log_in(self, old: Session, user: str) -> Session:
        """A new session (new id, new CSRF token) for the logged-in user: an id
        someone planted before the login is worth nothing after it."""
        self.drop(old)
        return self.new(user)

    def drop(self, session: Session) -> None:
        self._sessions.pop(session.id, None)


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
    """Failed logins allowed per address, and from all addresses together, in a
    sliding window: guessing a password takes years, not minutes."""

    def __init__(
        self,
        *,
        per_address: int = 5,
        overall: int = 30,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_address = per_address
        self._overall = overall
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _forget_old(self, times: deque[float]) -> None:
        horizon = self._clock() - self._window
        while times and times[0] <= horizon:
            times.popleft()

    def blocked(self, address: str) -> bool:
        self._forget_old(self._all)
        mine = self._failures.get(address)
        if mine is not None:
            self._forget_old(mine)
            if not mine:
                del self._failures[address]
        return len(self._all) >= self._overall or (
            mine is not None and len(mine) >= self._per_address
        )

    def failed(self, address: str) -> None:
        now = self._clock()
        if len(self._failures) > self._overall:
            # Addresses whose failures have all aged out: forget them.
            for stale in [
                key for key, times in self._failures.items() if times[-1] <= now - self._window
            ]:
                del self._failures[stale]
        self._failures.setdefault(address, deque()).append(now)
        self._all.append(now)

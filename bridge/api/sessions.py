"""Browser sessions for the status page (DESIGN.md §2): a one-time login code, printed by
`kbridge status --login-link`, is exchanged for a session cookie.

Codes live two minutes and work once; sessions live twelve hours. Both are kept in memory
only (a restart logs the browser out) and only as SHA-256 digests. A session is worth a
`write`-scoped token limited to the status page's own requests (see `COOKIE_PATHS`)."""

from __future__ import annotations

import hashlib
import secrets
import time

from bridge.store.tokens import Token

COOKIE = "kbridge_session"
CODE_TTL = 120.0
SESSION_TTL = 12 * 3600.0
# What a session cookie may do: the page, its script, and the sync controls it shows.
COOKIE_PATHS = frozenset(
    {
        "/",
        "/status/page.js",
        "/api/v1/sync/status",
        "/api/v1/sync/run",
        "/api/v1/sync/offline",
        "/api/v1/sync/confirm-empty",
    }
)
SESSION_TOKEN = Token(
    id=0,
    name="status-page session",
    scope="write",
    folders=None,
    created=0,
    last_used=None,
    revoked=False,
)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class LoginSessions:
    def __init__(self) -> None:
        self._codes: dict[str, float] = {}
        self._sessions: dict[str, float] = {}

    def new_code(self) -> tuple[str, float]:
        """A one-time login code and the time (epoch seconds) it expires."""
        self._expire()
        code = secrets.token_urlsafe(24)
        expires = time.time() + CODE_TTL
        self._codes[_digest(code)] = expires
        return code, expires

    def redeem(self, code: str) -> str | None:
        """A new session id for a live code (the code is used up), else None."""
        self._expire()
        if self._codes.pop(_digest(code), None) is None:
            return None
        session = secrets.token_urlsafe(32)
        self._sessions[_digest(session)] = time.time() + SESSION_TTL
        return session

    def valid(self, session: str) -> bool:
        expires = self._sessions.get(_digest(session))
        return expires is not None and expires > time.time()

    def end(self, session: str) -> None:
        self._sessions.pop(_digest(session), None)

    def _expire(self) -> None:
        now = time.time()
        for table in (self._codes, self._sessions):
            for key in [k for k, t in table.items() if t <= now]:
                del table[key]

"""Request guards: Host allow-list (DNS rebinding), cross-origin refusal, bearer tokens with
scopes and folder limits (DESIGN.md §6)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from bridge.api.problems import Problem
from bridge.api.sessions import COOKIE, COOKIE_PATHS, SESSION_TOKEN, LoginSessions
from bridge.store.store import Store
from bridge.store.tokens import Token

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "localhost.localdomain"})
STORE_KEY = web.AppKey("store", Store)
ALLOWED_HOSTS_KEY = web.AppKey("allowed_hosts", frozenset[str])
SESSIONS_KEY = web.AppKey("sessions", LoginSessions)
TOKEN_KEY = web.RequestKey("token", Token)
VISIBLE_KEY = web.RequestKey("visible_folders", set[int])
SCOPE_ATTR = "kbridge_scope"
PUBLIC_ATTR = "kbridge_public"
# Scope by method where the handler does not declare one. WebDAV reads (PROPFIND, REPORT)
# need `read`; every other method (PUT, DELETE, MKCOL, MOVE, COPY, PROPPATCH, LOCK, UNLOCK)
# needs `write`.
_DEFAULT_SCOPE = {
    "GET": "read",
    "HEAD": "read",
    "OPTIONS": "read",
    "PROPFIND": "read",
    "REPORT": "read",
}
DAV_PREFIX = "/dav"

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def requires(scope: str) -> Callable[[H], H]:
    """Mark a handler with the scope it needs (default: read for GET, write otherwise)."""

    def mark(handler: H) -> H:
        setattr(handler, SCOPE_ATTR, scope)
        return handler

    return mark


def public(handler: H) -> H:
    """Mark a handler that authenticates by itself (the status page and its login)."""
    setattr(handler, PUBLIC_ATTR, True)
    return handler


def host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@web.middleware
async def guard_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    allowed = request.app[ALLOWED_HOSTS_KEY]
    host = host_name(request.headers.get("Host", ""))
    if host not in allowed:
        raise Problem(
            421,
            "host-not-allowed",
            f"Host '{host}' is not a name of this bridge; use 127.0.0.1 or localhost "
            "(or add it to security.allowed_hosts)",
        )
    origin = request.headers.get("Origin")
    if origin is not None and host_name(origin.split("://", 1)[-1]) not in allowed:
        raise Problem(403, "cross-origin", "cross-origin requests are refused")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise Problem(403, "cross-origin", "cross-site requests are refused")
    route_handler = request.match_info.handler
    if getattr(route_handler, PUBLIC_ATTR, False):
        return await handler(request)
    store = request.app[STORE_KEY]
    token = await authenticate(request, store)
    needed = getattr(route_handler, SCOPE_ATTR, None) or _DEFAULT_SCOPE.get(request.method, "write")
    if not token.allows(needed):
        raise Problem(
            403,
            "insufficient-scope",
            f"this token has scope '{token.scope}'; this request needs '{needed}'",
        )
    request[TOKEN_KEY] = token
    return await handler(request)


def session_token(request: web.Request) -> Token | None:
    """The status page's session, for the few requests a session cookie may make."""
    cookie = request.cookies.get(COOKIE)
    if cookie and request.path in COOKIE_PATHS and request.app[SESSIONS_KEY].valid(cookie):
        return SESSION_TOKEN
    return None


async def authenticate(request: web.Request, store: Store) -> Token:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    secret = None
    if scheme.lower() == "bearer":
        secret = value.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            secret = decoded.partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            secret = None
    token = await store.tokens.verify(secret) if secret else session_token(request)
    if token is None:
        problem = Problem(
            401,
            "unauthorized",
            "send Authorization: Bearer <token>; the admin token of a new data dir is in "
            "<data_dir>/admin.token, more come from 'kbridge token create'",
        )
        # WebDAV clients (litmus, rclone, file managers) send credentials only after a
        # Basic challenge; they authenticate with the token as the password.
        dav = request.path == DAV_PREFIX or request.path.startswith(DAV_PREFIX + "/")
        scheme = "Basic" if dav else "Bearer"
        problem.headers["WWW-Authenticate"] = f'{scheme} realm="kbridge"'
        raise problem
    return token


async def visible_folders(request: web.Request) -> set[int] | None:
    """Folder ids a folder-limited token may see (None = no limit)."""
    token = request[TOKEN_KEY]
    if token.folders is None:
        return None
    cached = request.get(VISIBLE_KEY)
    if cached is None:
        store = request.app[STORE_KEY]
        cached = set()
        for fid in token.folders:
            cached.update(await store.folders.descendants(fid))
        request[VISIBLE_KEY] = cached
    return cached


async def guard_folder(request: web.Request, folder_id: int) -> None:
    visible = await visible_folders(request)
    if visible is not None and folder_id not in visible:
        raise Problem(403, "folder-not-allowed", "this token is limited to other folders")

"""The status page at `/`: what the tray icon of an offline connector shows — connection
state, the last sync, local changes waiting, mail waiting to be sent, conflicts to look at —
with "sync now" and "work offline" buttons.

A browser gets in with a one-time login link (`kbridge status --login-link`, or
`POST /api/v1/status/login-links` with an admin token) that sets a session cookie; a request
with a bearer token is served too. The page reloads its figures from
`/api/v1/sync/status` every few seconds."""

from __future__ import annotations

import html
import json
import time
from importlib import resources
from typing import Any

from aiohttp import web

from bridge.api.problems import Problem
from bridge.api.security import (
    SESSIONS_KEY,
    STORE_KEY,
    authenticate,
    public,
    requires,
)
from bridge.api.sessions import COOKIE, SESSION_TTL
from bridge.api.system import SYNC_KEY
from bridge.store.folders import Folder

routes = web.RouteTableDef()

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# Tray-icon colours per connectivity state.
_STATE_CLASS = {
    "online": "ok",
    "syncing": "busy",
    "offline": "off",
    "local-only": "off",
    "auth-failed": "bad",
    "error": "bad",
}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


@routes.get("/")
@public
async def status_page(request: web.Request) -> web.Response:
    try:
        await authenticate(request, request.app[STORE_KEY])
    except Problem:
        return _page(
            "kbridge: log in",
            "<main><h1>kbridge</h1><p>This page needs a login link. Run "
            "<code>kbridge status --login-link</code> on this computer and open the link it "
            "prints (it works once, for two minutes).</p></main>",
            status=401,
        )
    status = await request.app[SYNC_KEY].status()
    folders = await _watched_folders(request)
    return _page("kbridge: " + str(status.get("state")), _render(status, folders))


async def _watched_folders(request: web.Request) -> list[tuple[str, Folder]]:
    """The folders a user keeps an eye on: Outbox (waiting to leave) and Conflicts."""
    store = request.app[STORE_KEY]
    out = []
    for role, label in (("outbox", "Outbox"), ("conflicts", "Conflicts")):
        fid = store.folders.roles.get(role)
        if fid is not None:
            out.append((label, await store.folders.get(fid)))
    return out


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _render(status: dict[str, Any], folders: list[tuple[str, Folder]]) -> str:
    state = str(status.get("state"))
    rows = [
        (
            "State",
            f'<span id=state class="dot {_STATE_CLASS.get(state, "off")}">'
            f"{html.escape(state)}</span>",
        ),
        ("Server", html.escape(str(status.get("upstream") or "none (local only)"))),
        ("Message", f"<span id=message>{html.escape(str(status.get('message') or ''))}</span>"),
        ("Last sync", f"<span id=last_sync>{_when(status.get('last_sync'))}</span>"),
        (
            "Local changes waiting",
            f"<span id=journal_pending>{int(status.get('journal_pending') or 0)}</span>",
        ),
    ]
    outbox = status.get("outbox")
    if isinstance(outbox, dict):
        error = outbox.get("last_error")
        rows.append(
            (
                "Mail waiting to be sent",
                f"<span id=outbox>{int(outbox.get('queued') or 0)}</span>"
                + (f" — {html.escape(str(error))}" if error else ""),
            )
        )
    held = [str(m) for m in status.get("held") or []]
    if held:
        names = html.escape(", ".join(held))
        rows.append(
            (
                "Emptied on the server",
                f"{names}: kept here until you confirm "
                f"<button id=confirm_empty type=button data-mailboxes='"
                f"{html.escape(json.dumps(held), quote=True)}'>Empty here too</button>",
            )
        )
    for label, folder in folders:
        rows.append((label, f"{folder.content_count} items"))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    offline = bool(status.get("work_offline"))
    return (
        "<main><h1>kbridge</h1>"
        f"<table>{table}</table>"
        "<p class=controls>"
        "<button id=sync type=button>Sync now</button> "
        f'<button id=offline type=button data-offline="{str(offline).lower()}">'
        f"{'Work online' if offline else 'Work offline'}</button>"
        "</p><p id=note></p>"
        '<script src="/status/page.js"></script></main>'
    )


@routes.get("/status/page.js")
async def page_script(request: web.Request) -> web.Response:
    text = resources.files("bridge.api").joinpath("status_page.js").read_text(encoding="utf-8")
    return web.Response(
        text=text, content_type="text/javascript", charset="utf-8", headers=_HEADERS
    )


@routes.get("/status/login")
@public
async def login(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSIONS_KEY].redeem(request.query.get("code", ""))
    if session is None:
        return _page(
            "kbridge: link expired",
            "<main><h1>kbridge</h1><p>This login link is used up or expired. Run "
            "<code>kbridge status --login-link</code> again.</p></main>",
            status=403,
        )
    response = web.HTTPSeeOther("/", headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE,
        session,
        max_age=int(SESSION_TTL),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    raise response


@routes.post("/status/logout")
@public
async def logout(request: web.Request) -> web.StreamResponse:
    cookie = request.cookies.get(COOKIE)
    if cookie:
        request.app[SESSIONS_KEY].end(cookie)
    response = web.HTTPSeeOther("/")
    response.del_cookie(COOKIE, path="/")
    raise response


@routes.post("/api/v1/status/login-links")
@requires("admin")
async def create_login_link(request: web.Request) -> web.Response:
    """A one-time link that opens the status page in a browser."""
    code, expires = request.app[SESSIONS_KEY].new_code()
    base = f"{request.scheme}://{request.host}"
    return web.json_response(
        {
            "url": f"{base}/status/login?code={code}",
            "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        },
        status=201,
    )


_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:2rem;color:#222;background:#fafafa}
main{max-width:40rem}h1{font-size:1.4rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e4e4e4}
th{width:14rem;font-weight:600}
.dot::before{content:"";display:inline-block;width:.8em;height:.8em;border-radius:50%;
margin-right:.4em;vertical-align:-.05em;background:#999}
.ok::before{background:#2a2}.busy::before{background:#27c}.bad::before{background:#c22}
.controls button{font:inherit;padding:.3rem .8rem;margin-top:1rem}
"""

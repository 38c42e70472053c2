"""Submit, sync status and control, token administration."""

from __future__ import annotations

from aiohttp import web

from bridge.api.items import item_folder
from bridge.api.problems import Problem, bad_request, read_json
from bridge.api.security import requires
from bridge.api.shapes import body_id, item_json, parse_id, store_of
from bridge.store.tokens import SCOPES, Token
from bridge.sync.service import NoUpstream, SyncService

SYNC_KEY = web.AppKey("sync", SyncService)
routes = web.RouteTableDef()


@routes.post("/api/v1/submit")
@requires("send")
async def submit(request: web.Request) -> web.Response:
    """Queue a Drafts/Outbox item for sending (`{"item_id": ...}`)."""
    store = store_of(request)
    iid = body_id(store, "item", await read_json(request, 4096), "item_id")
    await item_folder(request, iid)
    await store.items.submit(iid)
    out = item_json(store, await store.queries.get(iid))
    out["state"] = "queued"
    return web.json_response(out, status=202)


@routes.get("/api/v1/sync/status")
async def sync_status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SYNC_KEY].status())


@routes.post("/api/v1/sync/run")
async def sync_run(request: web.Request) -> web.Response:
    try:
        result = await request.app[SYNC_KEY].run_now()
    except NoUpstream as exc:
        raise Problem(409, "no-upstream", str(exc)) from None
    return web.json_response(result, status=202)


@routes.post("/api/v1/sync/offline")
async def sync_offline(request: web.Request) -> web.Response:
    """The "work offline" switch: `{"offline": true|false}`."""
    body = await read_json(request, 4096)
    if not isinstance(body, dict) or not isinstance(body.get("offline"), bool):
        raise bad_request('give {"offline": true} or {"offline": false}')
    sync = request.app[SYNC_KEY]
    try:
        await sync.set_offline(body["offline"])
    except NoUpstream as exc:
        raise Problem(409, "no-upstream", str(exc)) from None
    return web.json_response(await sync.status())


@routes.post("/api/v1/sync/confirm-empty")
async def sync_confirm_empty(request: web.Request) -> web.Response:
    """`{"mailboxes": [...]}`: mailboxes that came back empty from the server are held (their
    messages kept here) until the user confirms; the next run then mirrors the emptying."""
    body = await read_json(request, 65536)
    names = body.get("mailboxes") if isinstance(body, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise bad_request('give {"mailboxes": ["INBOX", ...]} (the "held" list of the status)')
    try:
        confirmed = await request.app[SYNC_KEY].confirm_empty(names)
    except NoUpstream as exc:
        raise Problem(409, "no-upstream", str(exc)) from None
    if not confirmed:
        raise Problem(409, "not-held", "none of these mailboxes is held: " + ", ".join(names))
    return web.json_response({"confirmed": confirmed}, status=202)


def token_json(request: web.Request, token: Token) -> dict[str, object]:
    store = store_of(request)
    return {
        "name": token.name,
        "scope": token.scope,
        "folders": [store.ids.api_id("folder", f) for f in token.folders or []] or None,
        "revoked": token.revoked,
    }


@routes.get("/api/v1/tokens")
@requires("admin")
async def list_tokens(request: web.Request) -> web.Response:
    tokens = await store_of(request).tokens.list()
    return web.json_response({"tokens": [token_json(request, t) for t in tokens]})


@routes.post("/api/v1/tokens")
@requires("admin")
async def create_token(request: web.Request) -> web.Response:
    """`{"name", "scope", "folders"?}` → the token secret, shown this once."""
    store = store_of(request)
    body = await read_json(request, 16384)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise bad_request('give "name" and "scope" (' + ", ".join(SCOPES) + ")")
    folders = body.get("folders") or []
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise bad_request('"folders" must be a list of folder ids')
    token, secret = await store.tokens.create(
        body["name"], str(body.get("scope")), [parse_id(store, "folder", f) for f in folders]
    )
    out = token_json(request, token)
    out["token"] = secret
    return web.json_response(out, status=201)


@routes.delete("/api/v1/tokens/{name}")
@requires("admin")
async def revoke_token(request: web.Request) -> web.Response:
    await store_of(request).tokens.revoke(request.match_info["name"])
    return web.Response(status=204)

"""Table views (DESIGN.md §5): stateful like IMAPITable, so a MAPI shim maps GetContentsTable
+ SetColumns + Restrict + SortTable, QueryRows, SeekRow, FindRow, bookmarks, ExpandRow and
CollapseRow one to one onto these routes."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from bridge.api.problems import Problem, bad_request, read_json
from bridge.api.propjson import key_name
from bridge.api.search_folders import is_search_folder
from bridge.api.security import STORE_KEY, TOKEN_KEY, guard_folder, requires, visible_folders
from bridge.api.shapes import int_param, path_id, store_of
from bridge.model import tags
from bridge.model.errors import PropKeyError
from bridge.model.proptypes import MV_FLAG, MV_INSTANCE, prop_type
from bridge.model.restrictions import RestrictionError, parse
from bridge.store.store import Store
from bridge.store.tables import spec as S
from bridge.store.tables.manager import ViewManager
from bridge.store.tables.view import Entry, Header, View, key_of

VIEWS_KEY = web.AppKey("views", ViewManager)
JSON_LIMIT = 4 * 1024 * 1024
NOT_FOUND = {"error": "0x8004010F"}

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    async def start(app: web.Application) -> None:
        app[VIEWS_KEY] = await ViewManager.open(app[STORE_KEY])

    async def stop(app: web.Application) -> None:
        if VIEWS_KEY in app:
            await app[VIEWS_KEY].close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def _restriction_problem(exc: RestrictionError) -> Problem:
    if exc.too_complex:
        return Problem(400, "too-complex", f"{exc} (MAPI_E_TOO_COMPLEX)")
    return Problem(400, "invalid-restriction", str(exc))


def _column(store: Store, doc: object) -> int:
    resolve = S.resolver(store.core.named)
    mvi = False
    if isinstance(doc, dict):
        mvi = doc.get("mvi") is True
        doc = doc.get("prop")
    if not isinstance(doc, str):
        raise bad_request('a column is a property name or {"prop": name, "mvi": true}')
    try:
        tag = resolve(doc)
    except PropKeyError as exc:
        raise Problem(400, "invalid-property", f"{doc}: {exc}", property=doc) from None
    if mvi:
        if not prop_type(tag) & MV_FLAG:
            raise bad_request(f"{doc}: mvi needs a multi-valued property")
        tag |= MV_INSTANCE
    return tag


def _spec(store: Store, body: Any) -> S.ViewSpec:
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    columns = body.get("columns", [])
    sort = body.get("sort") or {}
    if not isinstance(columns, list) or not isinstance(sort, dict):
        raise bad_request('"columns" must be an array and "sort" an object')
    keys = sort.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise bad_request('"sort.keys" must be an array of {"prop", "order"} objects')
    categories, expanded = sort.get("categories", 0), sort.get("expanded")
    if not isinstance(categories, int) or not (expanded is None or isinstance(expanded, int)):
        raise bad_request('"categories" and "expanded" must be integers')
    conversation = sort.get("conversation", False)
    if not isinstance(conversation, bool):
        raise bad_request('"sort.conversation" must be true or false')
    if conversation:
        keys, categories = conversation_keys(keys, categories)
    try:
        restriction = None
        if body.get("restriction") is not None:
            restriction = parse(body["restriction"], S.resolver(store.core.named))
        return S.build(
            [_column(store, c) for c in columns],
            restriction,
            [(_column(store, k), str(k.get("order", "asc"))) for k in keys],
            categories,
            expanded,
        )
    except RestrictionError as exc:
        raise _restriction_problem(exc) from None


def conversation_keys(keys: list[Any], categories: int) -> tuple[list[Any], int]:
    """The conversation view: one more category level, PidTagConversationId, after the
    client's own levels, its groups ordered by their newest PidTagMessageDeliveryTime
    (CATEG_MAX); the leaves newest first unless the client orders them."""
    at, levels = 0, 0
    while at < len(keys) and levels < categories:
        at += 1
        while at < len(keys) and keys[at].get("order") in ("combine", "categ_max", "categ_min"):
            at += 1
        levels += 1
    leaves = keys[at:] or [{"prop": "PidTagMessageDeliveryTime", "order": "desc"}]
    level = [
        {"prop": "PidTagConversationId", "order": "asc"},
        {"prop": "PidTagMessageDeliveryTime", "order": "categ_max"},
    ]
    return [*keys[:at], *level, *leaves], categories + 1


async def _create(request: web.Request, source: Any) -> web.Response:
    store = store_of(request)
    spec = _spec(store, await read_json(request, JSON_LIMIT))
    view = await request.app[VIEWS_KEY].create(request[TOKEN_KEY].id, source, spec)
    return web.json_response(
        {"id": view.id, "total": view.total},
        status=201,
        headers={"Location": f"/api/v1/views/{view.id}"},
    )


@routes.post("/api/v1/folders/{id}/views")
@requires("read")
async def contents_view(request: web.Request) -> web.Response:
    fid = path_id(request, "folder")
    await guard_folder(request, fid)
    await store_of(request).folders.get(fid)
    associated = request.query.get("associated", "false").lower() == "true"
    search = not associated and await is_search_folder(request, store_of(request), fid)
    return await _create(request, request.app[VIEWS_KEY].contents(fid, associated, search))


@routes.post("/api/v1/folders/{id}/hierarchy/views")
@requires("read")
async def hierarchy_view(request: web.Request) -> web.Response:
    fid = path_id(request, "folder")
    await guard_folder(request, fid)
    await store_of(request).folders.get(fid)
    recursive = request.query.get("recursive", "false").lower() == "true"
    visible = await visible_folders(request)
    return await _create(request, request.app[VIEWS_KEY].hierarchy(fid, recursive, visible))


async def _sub_view(request: web.Request, kind: str) -> web.Response:
    store = store_of(request)
    iid = path_id(request, "item")
    fid = await store.queries.folder_of(iid)
    await guard_folder(request, fid)
    return await _create(request, request.app[VIEWS_KEY].sub_objects(iid, fid, kind))


@routes.post("/api/v1/items/{id}/recipients/views")
@requires("read")
async def recipients_view(request: web.Request) -> web.Response:
    return await _sub_view(request, "recipients")


@routes.post("/api/v1/items/{id}/attachments/views")
@requires("read")
async def attachments_view(request: web.Request) -> web.Response:
    return await _sub_view(request, "attachments")


async def _view(request: web.Request) -> View:
    vid = request.match_info["view"]
    view = await request.app[VIEWS_KEY].get(vid, request[TOKEN_KEY].id)
    if view is None:
        raise Problem(404, "not-found", f"no view {vid!r}: it was released or expired")
    return view


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def _rows_json(store: Store, view: View, entries: list[Entry]) -> list[dict[str, Any]]:
    ids = [e.first.id if isinstance(e, Header) else e.id for e in entries]
    props = await view.source.props(ids)
    out = []
    for entry in entries:
        key = key_of(entry)
        values: dict[int, Any] = {tags.INSTANCE_KEY: _b64(key)}
        if isinstance(entry, Header):
            first = props.get(entry.first.id, {})
            allowed = set(view.spec.category_tags(entry.level))
            if tags.CONVERSATION_ID in allowed:  # a conversation header shows its topic
                allowed.add(tags.CONVERSATION_TOPIC)
            values.update({t: v for t, v in first.items() if t in allowed})
            row_type = "expanded_header" if entry.expanded else "collapsed_header"
            values[tags.ROW_TYPE] = 3 if entry.expanded else 4
            values[tags.DEPTH] = depth = entry.level
            values[tags.CONTENT_COUNT] = entry.count
            values[tags.CONTENT_UNREAD] = entry.unread
            leaf = entry.first
        else:
            values.update(props.get(entry.id, {}))
            row_type, depth, leaf = "leaf", view.spec.depth, entry
            values.update({tags.ROW_TYPE: 1, tags.DEPTH: depth, tags.INSTANCE_NUM: entry.inst})
            values[tags.INST_ID] = entry.id
        doc = {}
        for col in view.spec.columns:
            if S.is_mvi(col):
                stored = values.get(S.mv_tag(col)) if row_type == "leaf" or col in allowed else None
                value = (
                    stored[leaf.inst]
                    if isinstance(stored, list) and leaf.inst < len(stored)
                    else None
                )
            else:
                value = values.get(col)
            doc[key_name(store, col)] = NOT_FOUND if value is None else value
        out.append({"instance_key": _b64(key), "row_type": row_type, "depth": depth, "props": doc})
    return out


@routes.get("/api/v1/views/{view}/rows")
async def query_rows(request: web.Request) -> web.Response:
    view = await _view(request)
    count = int_param(request, "count", 50, -1000, 1000)
    if count == 0:
        raise bad_request("count must not be 0 (MAPI_E_INVALID_PARAMETER)")
    advance = request.query.get("noadvance", "false").lower() != "true"
    entries, _ = await view.query(count, advance)
    rows = await _rows_json(store_of(request), view, entries)
    return web.json_response({"rows": rows, "position": view.pos, "total": view.total})


def _bookmark(body: dict[str, Any], view: View) -> str:
    bookmark = body.get("bookmark", "current")
    if not isinstance(bookmark, str):
        raise bad_request('"bookmark" must be beginning, current, end or a bookmark id')
    try:
        view.bookmark_pos(bookmark)
    except KeyError:
        raise Problem(404, "invalid-bookmark", f"no bookmark {bookmark!r} in this view") from None
    return bookmark


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request, JSON_LIMIT)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


@routes.post("/api/v1/views/{view}/seek")
@requires("read")
async def seek(request: web.Request) -> web.Response:
    view = await _view(request)
    body = await _body(request)
    rows = body.get("rows", 0)
    if not isinstance(rows, int) or isinstance(rows, bool):
        raise bad_request('"rows" must be an integer')
    moved = view.seek(_bookmark(body, view), rows)
    return web.json_response({"moved": moved, "position": view.pos, "total": view.total})


@routes.post("/api/v1/views/{view}/find")
@requires("read")
async def find(request: web.Request) -> web.Response:
    view = await _view(request)
    body = await _body(request)
    store = store_of(request)
    try:
        restriction = parse(body.get("restriction"), S.resolver(store.core.named))
    except RestrictionError as exc:
        raise _restriction_problem(exc) from None
    backward = body.get("backward", False) is True
    found = await view.find(restriction, _bookmark(body, view), backward)
    if found is None:
        raise Problem(404, "not-found", "no row matches (MAPI_E_NOT_FOUND)")
    return web.json_response({"position": found, "total": view.total})


@routes.post("/api/v1/views/{view}/bookmarks")
@requires("read")
async def create_bookmark(request: web.Request) -> web.Response:
    view = await _view(request)
    try:
        bid = await view.create_bookmark()
    except OverflowError as exc:
        raise Problem(409, "too-many-bookmarks", str(exc)) from None
    return web.json_response({"bookmark": bid, "position": view.pos}, status=201)


@routes.delete("/api/v1/views/{view}/bookmarks")
@requires("read")
async def free_bookmark(request: web.Request) -> web.Response:
    view = await _view(request)
    body = await _body(request)
    if not view.free_bookmark(str(body.get("bookmark"))):
        raise Problem(404, "invalid-bookmark", "no such bookmark in this view")
    return web.Response(status=204)


async def _toggle(request: web.Request, expanded: bool) -> web.Response:
    view = await _view(request)
    body = await _body(request)
    try:
        key = base64.b64decode(str(body.get("instance_key", "")), validate=True)
        before = await view.set_expanded(key, expanded)
    except (binascii.Error, KeyError):
        raise Problem(404, "not-found", "no header row with this instance_key") from None
    changed = await view.rebuild_after_toggle(before)
    out: dict[str, Any] = {"count": changed, "total": view.total}
    if expanded:
        at = (await view.position(key) or 0) + 1
        view.pos = at
        rows_wanted = body.get("rows", 0)
        n = min(changed, rows_wanted if isinstance(rows_wanted, int) else 0)
        entries, _ = await view.query(n) if n > 0 else ([], at)
        out["rows"] = await _rows_json(store_of(request), view, entries)
    out["position"] = view.pos
    return web.json_response(out)


@routes.post("/api/v1/views/{view}/expand")
@requires("read")
async def expand(request: web.Request) -> web.Response:
    return await _toggle(request, True)


@routes.post("/api/v1/views/{view}/collapse")
@requires("read")
async def collapse(request: web.Request) -> web.Response:
    return await _toggle(request, False)


@routes.delete("/api/v1/views/{view}")
@requires("read")
async def release(request: web.Request) -> web.Response:
    if not request.app[VIEWS_KEY].release(request.match_info["view"], request[TOKEN_KEY].id):
        raise Problem(404, "not-found", "no such view")
    return web.Response(status=204)

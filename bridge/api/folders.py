"""Store object, hierarchy, folders and their contents and change feeds."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.api import search_folders
from bridge.api.problems import bad_request, read_json
from bridge.api.propjson import decode_props, decode_tags, encode_props
from bridge.api.security import guard_folder, visible_folders
from bridge.api.shapes import (
    DEFAULT_LIMIT,
    columns_param,
    folder_json,
    int_param,
    item_json,
    parse_id,
    path_id,
    sort_param,
    store_of,
)
from bridge.model import tags
from bridge.store import render
from bridge.store.queries import MAX_PAGE
from bridge.store.store import Store

JSON_LIMIT = web.AppKey("json_limit", int)

routes = web.RouteTableDef()


async def guarded_folder(request: web.Request) -> tuple[Store, int]:
    """The store and the folder named in the path, after the token's folder check."""
    store = store_of(request)
    fid = path_id(request, "folder")
    await guard_folder(request, fid)
    return store, fid


@routes.get("/api/v1/store")
async def get_store(request: web.Request) -> web.Response:
    store = store_of(request)
    roles = store.folders.roles
    props = render.store_props(store.ids, roles, "Mailbox")
    return web.json_response(
        {
            "id": store.ids.store_guid.hex,
            "props": encode_props(store, props),
            "default_folders": {
                role: store.ids.api_id("folder", fid) for role, fid in sorted(roles.items())
            },
        }
    )


@routes.get("/api/v1/folders")
async def list_folders(request: web.Request) -> web.Response:
    store = store_of(request)
    visible = await visible_folders(request)
    folders = [
        folder_json(store, f)
        for f in await store.folders.all()
        if visible is None or f.id in visible
    ]
    return web.json_response({"folders": folders})


@routes.post("/api/v1/folders")
async def create_folder(request: web.Request) -> web.Response:
    store = store_of(request)
    body = await read_json(request, request.app[JSON_LIMIT])
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    parent_text = body.get("parent_id")
    parent = (
        parse_id(store, "folder", parent_text)
        if isinstance(parent_text, str)
        else store.folders.roles["ipm_subtree"]
    )
    await guard_folder(request, parent)
    if "search" in body:
        return await search_folders.create_search_folder(request, store, body, parent)
    tagged, named = decode_props(store, body.get("props", {}))
    if named:
        raise bad_request("folders take tagged properties only")
    name = body.get("name", tagged.pop(tags.DISPLAY_NAME, None))
    container_class = tagged.pop(tags.CONTAINER_CLASS, None)
    if not isinstance(name, str):
        raise bad_request('give the folder a "name" (or props.PidTagDisplayName)')
    fid = await store.folders.create(parent, name, container_class, tagged)
    folder = await store.folders.get(fid)
    return web.json_response(
        folder_json(store, folder),
        status=201,
        headers={"Location": f"/api/v1/folders/{store.ids.api_id('folder', fid)}"},
    )


@routes.get("/api/v1/folders/{id}")
async def get_folder(request: web.Request) -> web.Response:
    store, fid = await guarded_folder(request)
    return web.json_response(folder_json(store, await store.folders.get(fid)))


@routes.patch("/api/v1/folders/{id}")
async def patch_folder(request: web.Request) -> web.Response:
    """Rename (`name`), move (`parent_id`), set `props`, delete properties (`delete`)."""
    store, fid = await guarded_folder(request)
    body = await read_json(request, request.app[JSON_LIMIT])
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    unknown = set(body) - {"name", "parent_id", "props", "delete"}
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    tagged, named = decode_props(store, body.get("props", {}))
    if named:
        raise bad_request("folders take tagged properties only")
    parent = None
    if body.get("parent_id") is not None:
        parent = parse_id(store, "folder", str(body["parent_id"]))
        await guard_folder(request, parent)
    delete = body.get("delete", [])
    if not isinstance(delete, list):
        raise bad_request('"delete" must be a list of property names')
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise bad_request('"name" must be a string')
    await store.folders.update(
        fid,
        name=name,
        parent_id=parent,
        set_props=tagged,
        delete_props=decode_tags(store, delete),
    )
    return web.json_response(folder_json(store, await store.folders.get(fid)))


@routes.delete("/api/v1/folders/{id}")
async def delete_folder(request: web.Request) -> web.Response:
    """Moves the folder to Deleted Items; `?hard=true` (or a folder already there) removes it."""
    store, fid = await guarded_folder(request)
    await store.folders.delete(fid, hard=request.query.get("hard") == "true")
    return web.Response(status=204)


@routes.get("/api/v1/folders/{id}/items")
async def list_items(request: web.Request) -> web.Response:
    store, fid = await guarded_folder(request)
    await store.folders.get(fid)
    columns = columns_param(store, request)
    offset = int_param(request, "offset", 0, 0, 2**31)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_PAGE)
    associated = request.query.get("associated") == "true"
    if not associated and await search_folders.is_search_folder(request, store, fid):
        items, total = await store.search_folders.list(
            fid, sort=sort_param(store, request), offset=offset, limit=limit
        )
    else:
        items, total = await store.queries.list(
            fid, sort=sort_param(store, request), offset=offset, limit=limit, associated=associated
        )
    return web.json_response(
        {
            "items": [item_json(store, i, columns) for i in items],
            "total": total,
            "offset": offset,
            "limit": limit,
        }
    )


@routes.get("/api/v1/folders/{id}/changes")
async def folder_changes(request: web.Request) -> web.Response:
    """Items created, modified and deleted since `since` (omit it for everything)."""
    store, fid = await guarded_folder(request)
    await store.folders.get(fid)
    columns = columns_param(store, request)
    limit = int_param(request, "limit", 1000, 1, 10000)
    if await search_folders.is_search_folder(request, store, fid):
        changes = await store.search_folders.changes(fid, request.query.get("since"), limit)
    else:
        changes = await store.queries.changes(fid, request.query.get("since"), limit)
    body: dict[str, Any] = {
        "created": [item_json(store, i, columns) for i in changes.created],
        "modified": [item_json(store, i, columns) for i in changes.modified],
        "deleted": [store.ids.api_id("item", i) for i in changes.deleted],
        "state": changes.state,
        "more": changes.more,
    }
    return web.json_response(body)

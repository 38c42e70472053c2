"""Full-text search over the mailbox: `GET /api/v1/search?q=...`."""

from __future__ import annotations

from aiohttp import web

from bridge.api.problems import bad_request
from bridge.api.security import guard_folder, requires, visible_folders
from bridge.api.shapes import DEFAULT_LIMIT, columns_param, int_param, item_json, parse_id, store_of
from bridge.store.queries import MAX_PAGE
from bridge.store.search_query import parse

routes = web.RouteTableDef()


@routes.get("/api/v1/search")
@requires("read")
async def search(request: web.Request) -> web.Response:
    store = store_of(request)
    q = request.query.get("q")
    if q is None:
        raise bad_request("'q' (the search query) is required")
    query = parse(q)
    columns = columns_param(store, request)
    offset = int_param(request, "offset", 0, 0, 2**31)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_PAGE)
    folder_id = None
    if "folder" in request.query:
        folder_id = parse_id(store, "folder", request.query["folder"])
        await guard_folder(request, folder_id)
        await store.folders.get(folder_id)
    page = await store.search.search(
        query,
        folder_id=folder_id,
        visible=await visible_folders(request),
        offset=offset,
        limit=limit,
    )
    return web.json_response(
        {
            "items": [item_json(store, i, columns) for i in page.items],
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "complete": page.complete,
        }
    )

"""Search folders over REST, one to one with MAPI:

- CreateFolder(FOLDER_SEARCH) + SetSearchCriteria = `POST /api/v1/folders` with a `search`
  member `{"restriction": R, "folders": [ids], "recursive": bool}`;
- GetSearchCriteria = `GET /api/v1/folders/{id}/search-criteria`;
- SetSearchCriteria = `PUT /api/v1/folders/{id}/search-criteria` (a member left out keeps
  its current value, as a NULL restriction or container list does in MAPI).

The contents of a search folder are served by the ordinary folder routes (items, changes,
views); these helpers decide, for them, whether a folder is a search folder and whether a
folder-limited token may read it (every folder of its scope must be visible to it).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.api.problems import Problem, bad_request, read_json
from bridge.api.propjson import decode_props
from bridge.api.security import guard_folder, requires, visible_folders
from bridge.api.shapes import folder_json, path_id, store_of
from bridge.model import flags, tags
from bridge.model.restrictions import RestrictionError
from bridge.store.search_folders import Criteria
from bridge.store.store import Store

JSON_LIMIT = 4 * 1024 * 1024
SEARCH_RUNNING = 0x1  # ulSearchState of GetSearchCriteria
SEARCH_RECURSIVE = 0x4
_FIELDS = {"restriction", "folders", "recursive"}

routes = web.RouteTableDef()


def restriction_problem(exc: RestrictionError) -> Problem:
    if exc.too_complex:
        return Problem(400, "too-complex", f"{exc} (MAPI_E_TOO_COMPLEX)")
    return Problem(400, "invalid-restriction", str(exc))


async def _scope(request: web.Request, store: Store, value: object) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request('"folders" must be a list of folder ids (the search scope)')
    out = []
    for text in value:
        fid = store.ids.parse("folder", text)
        if fid is None:
            raise Problem(400, "invalid-value", f"scope: {text!r} is not a folder id")
        await guard_folder(request, fid)
        out.append(fid)
    return out


async def _criteria_fields(
    request: web.Request, store: Store, body: object, *, partial: bool
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(
            'the search criteria are an object {"restriction", "folders", "recursive"}'
        )
    unknown = set(body) - _FIELDS
    if unknown:
        raise bad_request(f"unknown fields in the search criteria: {', '.join(sorted(unknown))}")
    if not partial and not {"restriction", "folders"} <= set(body):
        raise bad_request('a new search folder needs "restriction" and "folders"')
    if partial and not body:
        raise bad_request("give at least one of restriction, folders, recursive")
    out: dict[str, Any] = {}
    if "restriction" in body:
        if not isinstance(body["restriction"], dict):
            raise Problem(400, "invalid-restriction", "the restriction must be an object")
        out["restriction"] = body["restriction"]
    if "folders" in body:
        out["scope"] = await _scope(request, store, body["folders"])
    if "recursive" in body:
        if not isinstance(body["recursive"], bool):
            raise bad_request('"recursive" must be true or false')
        out["recursive"] = body["recursive"]
    return out


def criteria_json(store: Store, criteria: Criteria) -> dict[str, Any]:
    state = SEARCH_RUNNING | (SEARCH_RECURSIVE if criteria.recursive else 0)
    return {
        "restriction": criteria.restriction,
        "folders": [store.ids.api_id("folder", f) for f in criteria.scope],
        "recursive": criteria.recursive,
        "state": {"running": True, "recursive": criteria.recursive, "flags": state},
    }


async def create_search_folder(
    request: web.Request, store: Store, body: dict[str, Any], parent: int
) -> web.Response:
    """`POST /api/v1/folders` with a `search` member (called by the folder route)."""
    fields = await _criteria_fields(request, store, body["search"], partial=False)
    unknown = set(body) - {"name", "parent_id", "props", "search"}
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    tagged, named = decode_props(store, body.get("props", {}))
    if named:
        raise bad_request("folders take tagged properties only")
    name = body.get("name", tagged.pop(tags.DISPLAY_NAME, None))
    container_class = tagged.pop(tags.CONTAINER_CLASS, None)
    if not isinstance(name, str):
        raise bad_request('give the folder a "name" (or props.PidTagDisplayName)')
    criteria = Criteria(
        fields["restriction"], tuple(fields["scope"]), fields.get("recursive", False)
    )
    try:
        fid = await store.search_folders.create(parent, name, criteria, container_class, tagged)
    except RestrictionError as exc:
        raise restriction_problem(exc) from None
    out = folder_json(store, await store.folders.get(fid))
    out["search"] = criteria_json(store, await store.search_folders.get_criteria(fid))
    return web.json_response(
        out, status=201, headers={"Location": f"/api/v1/folders/{store.ids.api_id('folder', fid)}"}
    )


async def is_search_folder(request: web.Request, store: Store, folder_id: int) -> bool:
    """Whether the folder is a search folder; for a folder-limited token, a search folder
    whose scope reaches outside its folders is refused (403)."""
    folder = await store.folders.get(folder_id)
    if folder.folder_type != flags.FOLDER_SEARCH:
        return False
    visible = await visible_folders(request)
    if visible is not None:
        criteria = await store.search_folders.get_criteria(folder_id)
        if not set(criteria.scope) <= visible:
            raise Problem(
                403,
                "folder-not-allowed",
                "this search folder searches folders this token is not allowed to read",
            )
    return True


@routes.get("/api/v1/folders/{id}/search-criteria")
async def get_criteria(request: web.Request) -> web.Response:
    """GetSearchCriteria."""
    store = store_of(request)
    fid = path_id(request, "folder")
    await guard_folder(request, fid)
    criteria = await store.search_folders.get_criteria(fid)
    return web.json_response(criteria_json(store, criteria))


@routes.put("/api/v1/folders/{id}/search-criteria")
@requires("write")
async def put_criteria(request: web.Request) -> web.Response:
    """SetSearchCriteria: the contents are re-evaluated before the answer."""
    store = store_of(request)
    fid = path_id(request, "folder")
    await guard_folder(request, fid)
    await store.search_folders.get_criteria(fid)  # 404 / 409 before the body is judged
    fields = await _criteria_fields(
        request, store, await read_json(request, JSON_LIMIT), partial=True
    )
    try:
        criteria = await store.search_folders.set_criteria(fid, **fields)
    except RestrictionError as exc:
        raise restriction_problem(exc) from None
    return web.json_response(criteria_json(store, criteria))

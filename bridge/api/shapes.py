"""The JSON shapes of the API's objects and the parsing of ids and query parameters."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.api.problems import Problem, bad_request
from bridge.api.propjson import decode_tags, encode_props
from bridge.api.security import STORE_KEY
from bridge.store import render
from bridge.store.folders import Folder
from bridge.store.ids import Kind
from bridge.store.queries import ItemView
from bridge.store.store import Store

DEFAULT_LIMIT = 50


def store_of(request: web.Request) -> Store:
    return request.app[STORE_KEY]


def parse_id(store: Store, kind: Kind, text: str) -> int:
    row_id = store.ids.parse(kind, text)
    if row_id is None:
        what = "folder ids look like f12" if kind == "folder" else "item ids look like m345"
        raise Problem(404, "not-found", f"'{text}' is not a {kind} of this store ({what})")
    return row_id


def path_id(request: web.Request, kind: Kind, name: str = "id") -> int:
    return parse_id(store_of(request), kind, request.match_info[name])


def body_id(store: Store, kind: Kind, body: Any, field: str) -> int:
    if not isinstance(body, dict) or not isinstance(body.get(field), str):
        raise bad_request(f'the body needs "{field}": a {kind} id string')
    return parse_id(store, kind, body[field])


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"'{name}' must be an integer") from None
    if not lo <= value <= hi:
        raise bad_request(f"'{name}' must be between {lo} and {hi}")
    return value


def columns_param(store: Store, request: web.Request) -> list[int] | None:
    text = request.query.get("columns")
    if not text:
        return None
    return decode_tags(store, [c.strip() for c in text.split(",") if c.strip()])


def sort_param(store: Store, request: web.Request) -> list[tuple[int, bool]] | None:
    """`sort=PidTagMessageDeliveryTime:desc` or `sort=-PidTagMessageDeliveryTime`."""
    text = request.query.get("sort")
    if not text:
        return None
    desc = text.startswith("-")
    name = text.lstrip("-+")
    if ":" in name and name.rsplit(":", 1)[1].lower() in ("asc", "desc"):
        name, order = name.rsplit(":", 1)
        desc = order.lower() == "desc"
    tags = decode_tags(store, [name])
    if not tags:
        return []
    return [(tags[0], desc)]


def folder_json(store: Store, folder: Folder) -> dict[str, Any]:
    props = render.folder_props(store.ids, store.folders.roles, folder)
    out: dict[str, Any] = {
        "id": store.ids.api_id("folder", folder.id),
        "parent_id": (
            store.ids.api_id("folder", folder.parent_id) if folder.parent_id is not None else None
        ),
        "props": encode_props(store, props),
    }
    if folder.role:
        out["role"] = folder.role
    return out


def item_json(store: Store, item: ItemView, columns: list[int] | None = None) -> dict[str, Any]:
    return {
        "id": store.ids.api_id("item", item.id),
        "folder_id": store.ids.api_id("folder", item.folder_id),
        "props": encode_props(store, item.props, columns),
    }

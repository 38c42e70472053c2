"""Items: create (JSON or raw RFC 5322), read, set/delete properties, move, copy, delete,
recipients and raw source."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.api.folders import JSON_LIMIT
from bridge.api.problems import Problem, bad_request, read_body, read_json
from bridge.api.propjson import decode_props, decode_tags, encode_props
from bridge.api.security import guard_folder
from bridge.api.shapes import body_id, columns_param, item_json, path_id, store_of
from bridge.formats.mime import MimeError, build_message
from bridge.model import classes, flags, tags
from bridge.model.codec import from_json
from bridge.store import blobs
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store

RAW_LIMIT = web.AppKey("raw_limit", int)
RAW_TYPES = ("message/rfc822",)
DEFERRED_RAW = {
    "text/calendar": "iCalendar items",
    "text/vcard": "vCard items",
    "text/x-vcard": "vCard items",
}

routes = web.RouteTableDef()


async def item_folder(request: web.Request, item_id: int) -> int:
    store = store_of(request)
    folder_id = await store.queries.folder_of(item_id)
    await guard_folder(request, folder_id)
    return folder_id


async def guarded_item(request: web.Request) -> tuple[Store, int]:
    """The store and the item named in the path, after the token's folder check."""
    store = store_of(request)
    iid = path_id(request, "item")
    await item_folder(request, iid)
    return store, iid


def _recipients(store: Store, value: object) -> list[dict[int, Any]]:
    if not isinstance(value, list):
        raise bad_request('"recipients" must be a list of property objects')
    out = []
    for n, entry in enumerate(value):
        props = entry.get("props", entry) if isinstance(entry, dict) else entry
        tagged, named = decode_props(store, props)
        if named:
            raise bad_request(f"recipient {n}: named properties are not allowed on recipients")
        tagged.setdefault(tags.RECIPIENT_TYPE, flags.MAPI_TO)
        tagged.setdefault(tags.ADDRTYPE, "SMTP")
        if not (tagged.get(tags.EMAIL_ADDRESS) or tagged.get(tags.SMTP_ADDRESS)):
            raise bad_request(f"recipient {n} needs PidTagEmailAddress or PidTagSmtpAddress")
        out.append(tagged)
    return out


@routes.post("/api/v1/folders/{id}/items")
async def create_item(request: web.Request) -> web.Response:
    """JSON `{"props": {...}, "recipients": [...]}` or a raw `message/rfc822` body."""
    store = store_of(request)
    fid = path_id(request, "folder")
    await guard_folder(request, fid)
    folder = await store.folders.get(fid)
    ctype = request.content_type
    if ctype in RAW_TYPES:
        item = await _raw_item(request)
    elif ctype in DEFERRED_RAW:
        raise Problem(
            415,
            "unsupported-media-type",
            f"{DEFERRED_RAW[ctype]} are parsed once calendar and contact sync is in place; "
            "until then create them with JSON properties",
        )
    else:
        item = _json_item(store, await read_json(request, request.app[JSON_LIMIT]), folder)
    iid = await store.items.create(fid, item)
    view = await store.queries.get(iid)
    return web.json_response(
        item_json(store, view),
        status=201,
        headers={"Location": f"/api/v1/items/{store.ids.api_id('item', iid)}"},
    )


def _json_item(store: Store, body: object, folder: Any) -> NewItem:
    if not isinstance(body, dict):
        raise bad_request('the body must be a JSON object with "props"')
    unknown = set(body) - {"props", "recipients", "associated"}
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    tagged, named = decode_props(store, body.get("props", {}))
    default_class = classes.message_class_for(folder.container_class)
    message_class = tagged.pop(tags.MESSAGE_CLASS, default_class)
    if not classes.is_valid_message_class(message_class):
        raise bad_request("PidTagMessageClass must be a printable ASCII class name")
    associated = body.get("associated", False)
    if not isinstance(associated, bool):
        raise bad_request('"associated" must be true or false')
    tagged.setdefault(
        tags.MESSAGE_FLAGS,
        flags.MSGFLAG_UNSENT | flags.MSGFLAG_UNMODIFIED
        if message_class.startswith("IPM.Note")
        else 0,
    )
    return NewItem(
        message_class=message_class,
        props=tagged,
        named=named,
        recipients=_recipients(store, body.get("recipients", [])),
        associated=associated,
    )


async def _raw_item(request: web.Request) -> NewItem:
    raw = await read_body(request, request.app[RAW_LIMIT], "raw items")
    try:
        return item_from_rfc822(raw, read=request.query.get("read") == "true")
    except MimeError as exc:
        raise Problem(422, "unparseable", f"not an RFC 5322 message: {exc}") from None


@routes.get("/api/v1/items/{id}")
async def get_item(request: web.Request) -> web.Response:
    store, iid = await guarded_item(request)
    view = await store.queries.get(iid)
    return web.json_response(item_json(store, view, columns_param(store, request)))


@routes.patch("/api/v1/items/{id}")
async def patch_item(request: web.Request) -> web.Response:
    """`{"props": {...}, "delete": [names]}`; returns the item and the changed names."""
    store, iid = await guarded_item(request)
    body = await read_json(request, request.app[JSON_LIMIT])
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    unknown = set(body) - {"props", "delete"}
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    tagged, named = decode_props(store, body.get("props", {}))
    delete = body.get("delete", [])
    if not isinstance(delete, list):
        raise bad_request('"delete" must be a list of property names')
    changed = await store.items.update(iid, tagged, decode_tags(store, delete), named=named)
    view = await store.queries.get(iid)
    out = item_json(store, view)
    out["changed"] = list(encode_props(store, dict.fromkeys(changed)).keys())
    return web.json_response(out)


@routes.delete("/api/v1/items/{id}")
async def delete_item(request: web.Request) -> web.Response:
    """Moves the item to Deleted Items; `?hard=true` (or an item already there) removes it."""
    store, iid = await guarded_item(request)
    await store.items.delete(iid, hard=request.query.get("hard") == "true")
    return web.Response(status=204)


@routes.post("/api/v1/items/{id}/move")
async def move_item(request: web.Request) -> web.Response:
    store, iid = await guarded_item(request)
    target = body_id(store, "folder", await read_json(request, 4096), "folder_id")
    await guard_folder(request, target)
    await store.items.move(iid, target)
    return web.json_response(item_json(store, await store.queries.get(iid)))


@routes.post("/api/v1/items/{id}/copy")
async def copy_item(request: web.Request) -> web.Response:
    store, iid = await guarded_item(request)
    target = body_id(store, "folder", await read_json(request, 4096), "folder_id")
    await guard_folder(request, target)
    new_id = await store.items.copy(iid, target)
    return web.json_response(item_json(store, await store.queries.get(new_id)), status=201)


@routes.get("/api/v1/items/{id}/recipients")
async def get_recipients(request: web.Request) -> web.Response:
    store, iid = await guarded_item(request)
    rows = await store.queries.recipients(iid)
    return web.json_response({"recipients": [{"props": encode_props(store, r)} for r in rows]})


@routes.put("/api/v1/items/{id}/recipients")
async def put_recipients(request: web.Request) -> web.Response:
    """Replace the recipient table (ModifyRecipients with MODRECIP_ADD of the whole set)."""
    store, iid = await guarded_item(request)
    body = await read_json(request, request.app[JSON_LIMIT])
    rows = _recipients(store, body.get("recipients") if isinstance(body, dict) else body)
    await store.items.set_recipients(iid, rows)
    stored = await store.queries.recipients(iid)
    return web.json_response({"recipients": [{"props": encode_props(store, r)} for r in stored]})


@routes.get("/api/v1/items/{id}/source")
async def get_source(request: web.Request) -> web.StreamResponse:
    """The raw source exactly as received; a JSON-made mail item is rendered as RFC 5322."""
    store, iid = await guarded_item(request)
    blob_id, ctype, size = await store.queries.source(iid)
    if blob_id is None:
        raw = await _render_source(store, iid)
        return web.Response(body=raw, content_type="message/rfc822")
    response = web.StreamResponse(headers={"Content-Type": ctype or "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    async for chunk in store.queries.read_blob(blob_id):
        await response.write(chunk)
    await response.write_eof()
    return response


async def _render_source(store: Store, iid: int) -> bytes:
    view = await store.queries.get(iid)
    if not str(view.props.get(tags.MESSAGE_CLASS, "")).startswith(("IPM.Note", "IPM.Post")):
        raise Problem(404, "no-source", "this item has no raw source to render")

    def py(props: dict[int, Any]) -> dict[int, Any]:
        return {t: from_json(t & 0xFFFF, v) for t, v in props.items()}

    recipients = [py(r) for r in await store.queries.recipients(iid)]
    attachments = []
    for aprops in await store.queries.attachments(iid):
        num = aprops.get(tags.ATTACH_NUM, 0)
        _, blob_id, _ = await store.queries.attachment(iid, int(num))
        data = await blobs.read_all(store.core.reader, blob_id) if blob_id else b""
        attachments.append((py(aprops), data))
    return build_message(py(view.props), recipients, attachments)

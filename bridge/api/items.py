"""Items: create (JSON, raw RFC 5322, iCalendar or vCard), read, set/delete properties, move,
copy, delete, recipients and raw source."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.api.cached import ensure_cached, wants_body
from bridge.api.folders import JSON_LIMIT
from bridge.api.problems import Problem, bad_request, read_body, read_json
from bridge.api.propjson import decode_props, decode_tags, encode_props
from bridge.api.security import guard_folder
from bridge.api.shapes import body_id, columns_param, item_json, path_id, store_of
from bridge.formats.mime import MimeError, build_message
from bridge.model import classes, flags, tags
from bridge.model.codec import from_json
from bridge.store import blobs
from bridge.store.calendar_items import (
    ItemDataError,
    check_calendar_props,
    content_type_for,
    item_from_ical,
    item_from_vcard,
    resource_bytes,
)
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store

RAW_LIMIT = web.AppKey("raw_limit", int)
RAW_TYPES = ("message/rfc822", "text/calendar", "text/vcard", "text/x-vcard")
# Folders of these container classes hold only their own kind of raw item (as over WebDAV).
_ONLY = {
    classes.IPF_APPOINTMENT: ("text/calendar", "a calendar holds iCalendar (text/calendar) items"),
    classes.IPF_TASK: ("text/calendar", "a task folder holds iCalendar (text/calendar) items"),
    classes.IPF_CONTACT: ("text/vcard", "a contacts folder holds vCard (text/vcard) items"),
}

# Items rendered as iCalendar / vCard when they have no raw source.
_DAV_CLASSES = (
    classes.IPM_APPOINTMENT,
    classes.IPM_TASK,
    classes.IPM_STICKYNOTE,
    classes.IPM_CONTACT,
    classes.IPM_DISTLIST,
)

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
    """JSON `{"props": {...}, "recipients": [...]}` or a raw `message/rfc822`,
    `text/calendar` or `text/vcard` body."""
    store = store_of(request)
    fid = path_id(request, "folder")
    await guard_folder(request, fid)
    folder = await store.folders.get(fid)
    ctype = request.content_type
    if ctype in RAW_TYPES:
        item = await _raw_item(request, ctype, folder.container_class)
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
    _check_calendar(named)
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


def _check_kind(ctype: str, container_class: str | None) -> None:
    kind = "text/vcard" if ctype == "text/x-vcard" else ctype
    for prefix, (wanted, reason) in _ONLY.items():
        if container_class and (
            container_class == prefix or container_class.startswith(prefix + ".")
        ):
            if kind != wanted:
                raise Problem(415, "unsupported-media-type", f"{reason}, not {ctype}")
            return


async def _raw_item(request: web.Request, ctype: str, container_class: str | None) -> NewItem:
    raw = await read_body(request, request.app[RAW_LIMIT], "raw items")
    if ctype == "message/rfc822":
        try:
            return item_from_rfc822(raw, read=request.query.get("read") == "true")
        except MimeError as exc:
            raise Problem(422, "unparseable", f"not an RFC 5322 message: {exc}") from None
    _check_kind(ctype, container_class)
    try:
        if ctype == "text/calendar":
            notes = (container_class or "").startswith(classes.IPF_STICKYNOTE)
            return item_from_ical(raw, notes=notes)
        return item_from_vcard(raw)
    except ItemDataError as exc:
        raise Problem(422, "unparseable", str(exc)) from None


def _check_calendar(named: dict[Any, Any]) -> None:
    """A broken recurrence blob is refused before anything is stored."""
    try:
        check_calendar_props(named)
    except ItemDataError as exc:
        name = "PidLidAppointmentRecur"
        raise Problem(400, "invalid-property", str(exc), property=name) from None


@routes.get("/api/v1/items/{id}")
async def get_item(request: web.Request) -> web.Response:
    store, iid = await guarded_item(request)
    columns = columns_param(store, request)
    if wants_body(columns):
        await ensure_cached(request, iid)
    view = await store.queries.get(iid)
    return web.json_response(item_json(store, view, columns))


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
    _check_calendar(named)
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
    await ensure_cached(request, iid)
    blob_id, ctype, size = await store.queries.source(iid)
    if blob_id is None:
        raw, rendered_type = await _render_source(store, iid)
        return web.Response(body=raw, content_type=rendered_type)
    response = web.StreamResponse(headers={"Content-Type": ctype or "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    async for chunk in store.queries.read_blob(blob_id):
        await response.write(chunk)
    await response.write_eof()
    return response


async def _render_source(store: Store, iid: int) -> tuple[bytes, str]:
    view = await store.queries.get(iid)
    message_class = str(view.props.get(tags.MESSAGE_CLASS, ""))
    dav_kind = message_class.startswith(_DAV_CLASSES)
    if not message_class.startswith(("IPM.Note", "IPM.Post")) and not dav_kind:
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
    if dav_kind:
        uid = store.ids.api_id("item", iid)
        data = resource_bytes(
            None,
            message_class,
            py(view.props),
            recipients,
            attachments,
            names=store.core.named,
            uid=uid,
        )
        return data, content_type_for(message_class)
    return build_message(py(view.props), recipients, attachments), "message/rfc822"

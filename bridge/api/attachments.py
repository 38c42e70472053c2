"""Attachments: list, add (JSON with base64 data, or the raw file streamed in), read
properties, download streamed, delete."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import AsyncIterator

from aiohttp import web

from bridge.api.cached import ensure_cached
from bridge.api.folders import JSON_LIMIT
from bridge.api.items import RAW_LIMIT, guarded_item
from bridge.api.problems import Problem, bad_request, read_json
from bridge.api.propjson import decode_props, encode_props
from bridge.model import flags, tags
from bridge.store.errors import InvalidValue

routes = web.RouteTableDef()
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


def _num(request: web.Request) -> int:
    text = request.match_info["num"]
    if not text.isdigit() or len(text) > 9:
        raise Problem(
            404, "not-found", f"attachment '{text}' does not exist (numbers are 0, 1, ...)"
        )
    return int(text)


@routes.get("/api/v1/items/{id}/attachments")
async def list_attachments(request: web.Request) -> web.Response:
    store, iid = await guarded_item(request)
    await ensure_cached(request, iid)
    rows = await store.queries.attachments(iid)
    return web.json_response({"attachments": [{"props": encode_props(store, r)} for r in rows]})


@routes.post("/api/v1/items/{id}/attachments")
async def add_attachment(request: web.Request) -> web.Response:
    """JSON `{"props": {..., "PidTagAttachDataBinary": base64}}`, or any other body taken as
    the file itself, streamed (name from `?filename=`, type from Content-Type)."""
    store, iid = await guarded_item(request)
    if request.content_type == "application/json":
        body = await read_json(request, request.app[JSON_LIMIT])
        tagged, named = decode_props(store, body.get("props") if isinstance(body, dict) else None)
        if named:
            raise bad_request("attachments take tagged properties only")
        data = tagged.pop(tags.ATTACH_DATA_BIN, None)
        if not isinstance(data, bytes):
            raise bad_request("give the content as PidTagAttachDataBinary (base64)")
        tagged.setdefault(tags.ATTACH_METHOD, flags.ATTACH_BY_VALUE)
        num = await store.items.add_attachment(iid, tagged, data=data)
    else:
        filename = request.query.get("filename", "attachment")
        props = {
            tags.ATTACH_LONG_FILENAME: filename,
            tags.DISPLAY_NAME: filename,
            tags.ATTACH_MIME_TAG: request.content_type
            if request.content_type != "application/octet-stream"
            else (mimetypes.guess_type(filename)[0] or "application/octet-stream"),
            tags.ATTACH_METHOD: flags.ATTACH_BY_VALUE,
        }
        if "." in filename:
            props[tags.ATTACH_EXTENSION] = "." + filename.rsplit(".", 1)[1]
        limit = request.app[RAW_LIMIT]
        if request.content_length is not None and request.content_length > limit:
            raise Problem(413, "too-large", f"attachments are limited to {limit} bytes")
        try:
            blob_id = await store.items.stream_blob(_body_chunks(request), max_size=limit)
        except InvalidValue as exc:
            raise Problem(413, "too-large", str(exc)) from None
        num = await store.items.add_attachment(iid, props, blob_id=blob_id)
    aprops, _, _ = await store.queries.attachment(iid, num)
    return web.json_response({"props": encode_props(store, aprops)}, status=201)


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(256 * 1024):
        yield chunk


@routes.get("/api/v1/items/{id}/attachments/{num}")
async def get_attachment(request: web.Request) -> web.Response:
    store, iid = await guarded_item(request)
    await ensure_cached(request, iid)
    aprops, _, _ = await store.queries.attachment(iid, _num(request))
    return web.json_response({"props": encode_props(store, aprops)})


@routes.get("/api/v1/items/{id}/attachments/{num}/data")
async def download_attachment(request: web.Request) -> web.StreamResponse:
    store, iid = await guarded_item(request)
    await ensure_cached(request, iid)
    aprops, blob_id, size = await store.queries.attachment(iid, _num(request))
    name = str(aprops.get(tags.ATTACH_LONG_FILENAME) or aprops.get(tags.ATTACH_FILENAME) or "")
    mime = str(aprops.get(tags.ATTACH_MIME_TAG) or "application/octet-stream")
    response = web.StreamResponse(headers={"Content-Type": mime})
    if name:
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{_SAFE_NAME.sub("_", name)}"'
        )
    response.content_length = size
    await response.prepare(request)
    if blob_id is not None:
        async for chunk in store.queries.read_blob(blob_id):
            await response.write(chunk)
    await response.write_eof()
    return response


@routes.delete("/api/v1/items/{id}/attachments/{num}")
async def delete_attachment(request: web.Request) -> web.Response:
    store, iid = await guarded_item(request)
    await store.items.delete_attachment(iid, _num(request))
    return web.Response(status=204)

"""The notification stream: Server-Sent Events of the store's MAPI-style notifications."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from bridge.api.security import STORE_KEY, visible_folders
from bridge.api.shapes import store_of
from bridge.store.events import Event
from bridge.store.store import Store

HEARTBEAT_SECONDS = 15.0
routes = web.RouteTableDef()


def event_json(store: Store, event: Event) -> dict[str, Any]:
    """Row ids in the payload become API ids (`id`, `folder_id`, `parent_id`, `old_*`)."""
    out: dict[str, Any] = {"seq": event.seq, "type": event.type}
    kind = event.data.get("kind", "item" if "folder_id" in event.data else "folder")
    for key, value in event.data.items():
        if key in ("id", "old_id") and isinstance(value, int):
            out[key] = store.ids.api_id("folder" if kind == "folder" else "item", value)
        elif key.endswith(("folder_id", "parent_id")) and isinstance(value, int):
            out[key] = store.ids.api_id("folder", value)
        else:
            out[key] = value
    return out


def _visible(event: Event, visible: set[int] | None) -> bool:
    if visible is None:
        return True
    folder = event.data.get("folder_id", event.data.get("parent_id"))
    if event.data.get("kind") == "folder":
        folder = event.data.get("id")
    return folder is None or folder in visible


@routes.get("/api/v1/events")
async def events(request: web.Request) -> web.StreamResponse:
    """`text/event-stream`; resume with `Last-Event-ID`. Filter with `?types=a,b`."""
    store = store_of(request)
    visible = await visible_folders(request)
    wanted = {t for t in request.query.get("types", "").split(",") if t}
    sub = store.bus.subscribe()
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        backlog: list[Event] = []
        last = request.headers.get("Last-Event-ID", "")
        if last.isdigit():
            replay = store.bus.since(int(last))
            if replay is None:
                backlog = [Event(store.bus.last_seq, "resync", {"reason": "history too short"})]
            else:
                backlog = replay
        await response.write(b": kbridge event stream\n\n")
        for event in backlog:
            await _send(response, store, event, visible, wanted)
        while True:
            try:
                event = await asyncio.wait_for(sub.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if event.type == "shutdown":
                break
            await _send(response, store, event, visible, wanted)
    finally:
        sub.close()
    return response


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every event stream so the server stops without waiting for them."""
    app[STORE_KEY].bus.shutdown()


async def _send(
    response: web.StreamResponse,
    store: Store,
    event: Event,
    visible: set[int] | None,
    wanted: set[str],
) -> None:
    if wanted and event.type not in wanted and event.type != "resync":
        return
    if not _visible(event, visible):
        return
    data = json.dumps(event_json(store, event), ensure_ascii=False)
    await response.write(f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode())

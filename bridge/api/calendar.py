"""Calendar views: `GET /api/v1/folders/{id}/occurrences?start=&end=` lists the occurrences
of the folder's items in a time range, series expanded (overrides and deleted occurrences
honoured), in order of start, at most `limit` (default and maximum 10,000) per request."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import logging
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from bridge.api.problems import bad_request
from bridge.api.security import guard_folder, requires
from bridge.api.shapes import int_param, path_id, store_of
from bridge.formats import ical_values as V
from bridge.formats.ical_occurrences import Occurrence, iter_occurrences
from bridge.formats.timezones import local_zone
from bridge.model import tags
from bridge.model.codec import filetime_to_datetime
from bridge.model.proptypes import PropType
from bridge.store.calendar_range import CalendarEntry, entries_in_range
from bridge.store.store import Store

log = logging.getLogger(__name__)

MAX_OCCURRENCES = 10_000

routes = web.RouteTableDef()


def _time_param(request: web.Request, name: str) -> dt.datetime:
    text = request.query.get(name)
    if not text:
        raise bad_request(f"'{name}' (an RFC 3339 date-time) is required")
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise bad_request(f"'{name}' must be an RFC 3339 date-time, got {text[:40]!r}") from None
    if value.tzinfo is None:
        raise bad_request(f"'{name}' needs a UTC offset or Z (e.g. 2025-01-01T00:00:00Z)")
    return value.astimezone(dt.UTC)


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _named(store: Store, entry: CalendarEntry, np: Any, ptype: int) -> Any:
    tag = store.core.named.tag_for(np, ptype)
    return entry.props.get(tag) if tag is not None else None


def _single(store: Store, entry: CalendarEntry) -> Iterator[Occurrence]:
    """An item without a raw source: one occurrence from its columns."""
    if entry.start is None:
        return
    start = filetime_to_datetime(entry.start)
    end = filetime_to_datetime(entry.end) if entry.end is not None else start
    busy = _named(store, entry, V.BUSY_STATUS, PropType.LONG)
    yield Occurrence(
        start=start,
        end=max(end, start),
        recurrence_id=None,
        subject=str(entry.props.get(tags.SUBJECT) or ""),
        location=str(_named(store, entry, V.LOCATION, PropType.UNICODE) or ""),
        all_day=_named(store, entry, V.ALL_DAY, PropType.BOOLEAN) is True,
        busy_status=busy if isinstance(busy, int) else V.BUSY,
    )


def _expand(
    store: Store, entry: CalendarEntry, start: dt.datetime, end: dt.datetime, tz: dt.tzinfo
) -> Iterator[tuple[dt.datetime, int, Occurrence]]:
    if entry.source is None:
        occurrences: Iterator[Occurrence] = (
            o
            for o in _single(store, entry)
            if o.start < end and (o.end > start or o.start >= start)
        )
    else:
        occurrences = iter_occurrences(entry.source, start, end, tz)
    try:
        for occ in occurrences:
            yield occ.start, entry.item_id, occ
    except V.IcalError as exc:
        log.warning("item %s: occurrences skipped: %s", entry.item_id, exc)


def _collect(
    store: Store,
    entries: list[CalendarEntry],
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    tz = local_zone()
    streams = [_expand(store, entry, start, end, tz) for entry in entries]
    out: list[dict[str, Any]] = []
    for _, item_id, occ in heapq.merge(*streams, key=lambda t: (t[0], t[1])):
        if len(out) == limit:
            return out, True
        out.append(
            {
                "item_id": store.ids.api_id("item", item_id),
                "start": _stamp(occ.start),
                "end": _stamp(occ.end),
                "recurrence_id": occ.recurrence_id,
                "subject": occ.subject,
                "location": occ.location,
                "all_day": occ.all_day,
                "busy_status": occ.busy_status,
            }
        )
    return out, False


@routes.get("/api/v1/folders/{id}/occurrences")
@requires("read")
async def occurrences(request: web.Request) -> web.Response:
    store = store_of(request)
    fid = path_id(request, "folder")
    await guard_folder(request, fid)
    await store.folders.get(fid)
    start = _time_param(request, "start")
    end = _time_param(request, "end")
    if end <= start:
        raise bad_request("'end' must be after 'start'")
    limit = int_param(request, "limit", MAX_OCCURRENCES, 1, MAX_OCCURRENCES)
    entries = [e async for e in entries_in_range(store.core, fid, start, end)]
    # Expansion is CPU work: keep it off the event loop.
    out, truncated = await asyncio.to_thread(_collect, store, entries, start, end, limit)
    return web.json_response(
        {
            "occurrences": out,
            "start": _stamp(start),
            "end": _stamp(end),
            "limit": limit,
            "truncated": truncated,
        }
    )

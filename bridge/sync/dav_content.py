"""Resources in and out for the DAV sync: a fetched .ics / .vcf becomes a `NewItem`, an
item becomes the bytes to upload, and the few facts the engine needs without a full parse
(the UID, the end of an event series for the calendar window).

Conversion itself is the formats' job; this module only picks the converter for a
collection kind and reports malformed data as `BadResource`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import icalendar

from bridge.store import blobs
from bridge.store.calendar_items import (
    ItemDataError,
    resource_bytes,
)
from bridge.store.item_base import NewItem
from bridge.store.store import Store
from bridge.sync import dav_parse
from bridge.upstream.dav_base import ADDRESSBOOK

_UID = re.compile(rb"^UID(?:;[^:\r\n]*)?:(.*(?:\r?\n[ \t].*)*)", re.MULTILINE | re.IGNORECASE)


class BadResource(ValueError):
    """Data from the server that cannot become an item; the message says why."""


def extension(kind: str) -> str:
    return ".vcf" if kind == ADDRESSBOOK else ".ics"


def content_type(kind: str) -> str:
    return "text/vcard" if kind == ADDRESSBOOK else "text/calendar"


def uid_of(data: bytes) -> str | None:
    """The UID of an iCalendar object or vCard (the first one; all components of one
    calendar resource share it)."""
    m = _UID.search(data)
    if m is None:
        return None
    value = re.sub(rb"\r?\n[ \t]", b"", m.group(1)).strip()
    return value.decode("utf-8", errors="replace") or None


def resource_name(uid: str, kind: str) -> str:
    """The member name a new resource is uploaded under: <UID>.ics / <UID>.vcf, with
    characters that are awkward in a path segment replaced."""
    safe = re.sub(r"[^A-Za-z0-9@._+=-]", "_", uid)[:200] or "item"
    return safe + extension(kind)


def item_from_resource(kind: str, data: bytes) -> NewItem:
    """The item a fetched resource becomes; BadResource when it is not one."""
    try:
        return dav_parse.convert(kind, data)
    except ItemDataError as exc:
        raise BadResource(str(exc)) from None


def _utc(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return None


def series_end(data: bytes) -> dt.datetime | None:
    """When the last occurrence of an event resource ends; None when unknown or never
    (an open-ended or counted recurrence, a resource that is not only events)."""
    try:
        cal = icalendar.Calendar.from_ical(data.decode("utf-8", errors="replace"))
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    latest: dt.datetime | None = None
    for comp in cal.subcomponents:
        if comp.name in ("VTODO", "VJOURNAL"):
            return None
        if comp.name != "VEVENT":
            continue
        start = _utc(getattr(comp.get("DTSTART"), "dt", None))
        end = _utc(getattr(comp.get("DTEND"), "dt", None))
        if end is None and start is not None:
            duration = getattr(comp.get("DURATION"), "dt", None)
            end = start + duration if isinstance(duration, dt.timedelta) else start
        rrule = comp.get("RRULE")
        if rrule is not None:
            until = rrule.get("UNTIL")
            if not until:
                return None
            end = _utc(until[0])
            if end is None:
                return None
            end += dt.timedelta(days=1)
        if end is None:
            return None
        latest = end if latest is None or end > latest else latest
    return latest


async def upload_bytes(store: Store, item_id: int, kind: str, uid: str) -> bytes:
    """The .ics / .vcf to upload for an item: its stored source with the changed
    properties written into it, else a resource made from its properties (with `uid`)."""
    reader = store.core.reader
    async with reader.execute(
        "SELECT message_class, props, source_blob, source_type FROM items WHERE id = ?",
        (item_id,),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise BadResource("the item is gone")
    props = {int(k, 16): v for k, v in json.loads(row["props"]).items()}
    source = None
    if row["source_blob"] is not None and (row["source_type"] or "").startswith(content_type(kind)):
        source = await blobs.read_all(reader, row["source_blob"])
    async with reader.execute(
        "SELECT props FROM recipients WHERE item_id = ? ORDER BY row_id", (item_id,)
    ) as cur:
        recipients = [
            {int(k, 16): v for k, v in json.loads(r[0]).items()} for r in await cur.fetchall()
        ]
    attachments: list[tuple[dict[int, Any], bytes]] = []
    if kind == ADDRESSBOOK:  # a contact photo travels in the vCard
        async with reader.execute(
            "SELECT props, blob_id FROM attachments WHERE item_id = ? ORDER BY num", (item_id,)
        ) as cur:
            rows = await cur.fetchall()
        for att in rows:
            data = b"" if att[1] is None else await blobs.read_all(reader, att[1])
            attachments.append(({int(k, 16): v for k, v in json.loads(att[0]).items()}, data))
    try:
        return resource_bytes(
            source,
            str(row["message_class"]),
            props,
            recipients,
            attachments,
            names=store.core.named,
            uid=uid,
        )
    except ItemDataError as exc:
        raise BadResource(str(exc)) from None

"""The calendar items of a folder that may have occurrences in a time range.

A single item qualifies when its start/end columns overlap the range; a series (PidLidRecurring)
when it starts before the range ends, whatever its end column says. The raw iCalendar source
is read for each, so that the caller can expand the series.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bridge.formats.ical_values import RECURRING
from bridge.model.proptypes import PropType
from bridge.store import blobs
from bridge.store import props as P
from bridge.store.core import StoreCore

ICAL_TYPE = "text/calendar"


@dataclass(slots=True)
class CalendarEntry:
    item_id: int
    props: P.JsonProps
    source: bytes | None  # the raw iCalendar object, when the item has one
    start: int | None  # FILETIME columns
    end: int | None


async def entries_in_range(
    core: StoreCore, folder_id: int, start: dt.datetime, end: dt.datetime
) -> AsyncIterator[CalendarEntry]:
    """Candidate items, by start time; sources are read one at a time as the caller goes."""
    start_ft, end_ft = P.filetime(start), P.filetime(end)
    recurring_tag = core.named.tag_for(RECURRING, PropType.BOOLEAN)
    recurring_sql = "0"
    params: list[object] = [folder_id, end_ft, start_ft]
    if recurring_tag is not None:
        recurring_sql = "json_extract(props, ?) = 1"
        params.append(f'$."{P.key(recurring_tag)}"')
    sql = (
        "SELECT id, props, source_blob, source_type, start_time, end_time FROM items "
        "WHERE folder_id = ? AND associated = 0 AND start_time IS NOT NULL "
        "AND start_time < ? "
        f"AND (COALESCE(end_time, start_time) >= ? OR {recurring_sql}) "
        "ORDER BY start_time, id"
    )
    async with core.reader.execute(sql, params) as cur:
        rows = await cur.fetchall()
    for row in rows:
        source = None
        if row["source_blob"] is not None and (row["source_type"] or "").startswith(ICAL_TYPE):
            source = await blobs.read_all(core.reader, row["source_blob"])
        yield CalendarEntry(
            item_id=row["id"],
            props=P.decode_doc(row["props"]),
            source=source,
            start=row["start_time"],
            end=row["end_time"],
        )

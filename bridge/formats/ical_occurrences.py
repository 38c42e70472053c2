"""The occurrences of an iCalendar object in a time range, for calendar views.

recurring-ical-events expands RRULE and RDATE, drops EXDATE'd instances and puts overrides
(RECURRENCE-ID components) in place of the instances they replace; an override whose STATUS
is CANCELLED is a deleted occurrence and is left out here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import icalendar
import recurring_ical_events

from bridge.formats import ical_values as V
from bridge.formats.ical_load import load_calendar
from bridge.formats.ical_parse import busy_status
from bridge.formats.timezones import resolve_tzid


@dataclass(frozen=True, slots=True)
class Occurrence:
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC
    recurrence_id: str | None  # RFC 3339 UTC (or a date for all-day series); None: single
    subject: str
    location: str
    all_day: bool
    busy_status: int


def _utc(value: object, params: object, floating_tz: dt.tzinfo) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            tzid = params.get("TZID") if isinstance(params, dict) else None
            zone = (resolve_tzid(str(tzid)) if tzid else None) or (dt.UTC if tzid else floating_tz)
            value = value.replace(tzinfo=zone)
        return value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), floating_tz).astimezone(dt.UTC)
    return None


def _stamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _occurrence(
    comp: icalendar.Component, recurring: bool, floating_tz: dt.tzinfo
) -> Occurrence | None:
    start_prop = comp.get("DTSTART")
    raw_start = getattr(start_prop, "dt", None)
    start = _utc(raw_start, getattr(start_prop, "params", None), floating_tz)
    if start is None:
        return None
    end_prop = comp.get("DTEND")
    end = _utc(getattr(end_prop, "dt", None), getattr(end_prop, "params", None), floating_tz)
    all_day = isinstance(raw_start, dt.date) and not isinstance(raw_start, dt.datetime)
    if end is None:
        duration = getattr(comp.get("DURATION"), "dt", None)
        if isinstance(duration, dt.timedelta):
            end = start + duration
        else:
            end = start + (dt.timedelta(days=1) if all_day else dt.timedelta())
    rid: str | None = None
    if recurring:
        rid_prop = comp.get("RECURRENCE-ID")
        rid_value = getattr(rid_prop, "dt", None) if rid_prop is not None else raw_start
        if isinstance(rid_value, dt.datetime):
            when = _utc(rid_value, getattr(rid_prop or start_prop, "params", None), floating_tz)
            rid = _stamp(when) if when else None
        elif isinstance(rid_value, dt.date):
            rid = rid_value.isoformat()
    return Occurrence(
        start=start,
        end=end,
        recurrence_id=rid,
        subject=str(comp.get("SUMMARY", "")),
        location=str(comp.get("LOCATION", "")),
        all_day=all_day,
        busy_status=busy_status(comp),
    )


# Windows start small and grow, so a dense rule costs little before the cap is reached
# and a sparse one needs few passes.
FIRST_WINDOW = dt.timedelta(minutes=15)
MIN_WINDOW = dt.timedelta(minutes=1)
MAX_WINDOW = dt.timedelta(days=3660)
DENSE = 2000


def iter_occurrences(
    data: bytes, start: dt.datetime, end: dt.datetime, floating_tz: dt.tzinfo
) -> Iterator[Occurrence]:
    """Occurrences overlapping [start, end), in order of start; raises IcalError."""
    cal = load_calendar(data)
    events = [c for c in cal.subcomponents if c.name == "VEVENT"]
    recurring = any(
        c.get("RRULE") is not None or c.get("RDATE") is not None or "RECURRENCE-ID" in c
        for c in events
    )
    try:
        query = recurring_ical_events.of(cal, skip_bad_series=True)
        here, window = start, FIRST_WINDOW
        while here < end:
            stop = min(here + window, end)
            found = []
            for comp in query.between(here, stop):
                occ = _occurrence(comp, recurring, floating_tz)
                if occ is None or occ.start >= stop:
                    continue
                if occ.start < here and here != start:
                    continue  # reported by the window it started in
                if occ.end <= start and occ.start < start:
                    continue
                if recurring and str(comp.get("STATUS", "")).upper() == "CANCELLED":
                    continue
                found.append(occ)
            found.sort(key=lambda o: (o.start, o.end))
            yield from found
            here = stop
            if len(found) < DENSE:
                window = min(window * 4, MAX_WINDOW)
            else:
                window = max(window / 4, MIN_WINDOW)
    except V.IcalError:
        raise
    except Exception as exc:  # a hostile rule must not stop a whole view
        raise V.IcalError(f"the recurrence could not be expanded: {exc}") from None

"""Making an iCalendar object say a `recur_blob.Series` (a blob a client changed).

`write_series` rewrites RRULE only when the pattern changed, EXDATE only when the deleted
dates changed, and of the overrides only those that were added, removed or differ (their
start, end, subject, location, busy status; a new one copies the master), so everything
else in the object stays as it was. Times are written in the form of the master's DTSTART
(its TZID, UTC, floating or DATE); UNTIL in UTC when DTSTART has a zone (RFC 5545).
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import icalendar

from bridge.formats import ical_values as V
from bridge.formats import recur_blob as R
from bridge.formats.recur_blob import Series
from bridge.formats.recur_ical import (
    BusyOf,
    Clock,
    ZoneFor,
    overrides_of,
    series_from_ical,
    text_of,
)

_NOT_COPIED = {"RRULE", "RDATE", "EXDATE", "EXRULE", "DTSTART", "DTEND", "DURATION"}
_NOT_COPIED |= {"RECURRENCE-ID"}


def rrule_of(series: Series, clock: Clock) -> icalendar.vRecur:
    parts = R.rrule_parts(series)
    if series.count is not None:
        parts.append(f"COUNT={series.count}")
    elif series.until is not None:
        last = dt.datetime.combine(series.until, series.start.time())
        if clock.all_day:
            parts.append(f"UNTIL={last:%Y%m%d}")
        elif clock.floating_start:
            parts.append(f"UNTIL={last:%Y%m%dT%H%M%S}")
        else:  # RFC 5545: in UTC when DTSTART has a zone
            parts.append(
                f"UNTIL={last.replace(tzinfo=clock.zone).astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
            )
    rule: icalendar.vRecur = icalendar.vRecur.from_ical(";".join(parts))
    return rule


def _put(comp: icalendar.Component, name: str, local: dt.datetime, clock: Clock) -> None:
    value, params = clock.value(local)
    comp.pop(name, None)
    comp.add(name, value, parameters=params)


def _put_text(comp: icalendar.Component, name: str, text: str) -> None:
    comp.pop(name, None)
    if text:
        comp.add(name, text)


def _put_busy(comp: icalendar.Component, value: int) -> None:
    comp.pop("TRANSP", None)
    comp.add("TRANSP", "TRANSPARENT" if value == V.FREE else "OPAQUE")
    comp.pop("X-MICROSOFT-CDO-BUSYSTATUS", None)
    comp.add("X-MICROSOFT-CDO-BUSYSTATUS", V.CDO_BY_BUSY.get(value, "BUSY"))


def _new_override(master: icalendar.Component, when: dt.datetime, clock: Clock) -> Any:
    comp = icalendar.Component.from_ical(f"BEGIN:{master.name}\r\nEND:{master.name}\r\n")
    for name, value in master.items():
        if name not in _NOT_COPIED:
            comp[name] = copy.deepcopy(value)
    for sub in master.subcomponents:
        comp.add_component(copy.deepcopy(sub))
    _put(comp, "RECURRENCE-ID", when, clock)
    return comp


def write_series(
    cal: icalendar.Calendar,
    master: icalendar.Component,
    series: Series | None,
    *,
    zone_for: ZoneFor,
    floating: dt.tzinfo,
    busy: BusyOf,
) -> None:
    """Make `cal` say `series` for `master` (None: not recurring), touching only what
    differs from what it says now."""
    others = overrides_of(cal, master)
    if series is not None and master.get("DTSTART") is None:
        return  # a series needs its first start; nothing to hang the rule on
    if series is None:
        for name in ("RRULE", "RDATE", "EXRULE", "EXDATE"):
            master.pop(name, None)
        cal.subcomponents = [c for c in cal.subcomponents if not any(c is o for o in others)]
        return
    clock = Clock(master, zone_for, floating)
    current = series_from_ical(master, others, zone_for=zone_for, floating=floating, busy=busy)
    if current is None or current.pattern() != series.pattern():
        for name in ("RRULE", "RDATE", "EXRULE"):
            master.pop(name, None)
        master.add("RRULE", rrule_of(series, clock))
    if current is None or current.deleted != series.deleted:
        master.pop("EXDATE", None)
        for day in series.deleted:
            value, params = clock.value(dt.datetime.combine(day, series.start.time()))
            master.add("EXDATE", value, parameters=params)
    wanted = {o.original_start: o for o in series.overrides}
    existing: dict[dt.datetime, Any] = {}
    for comp in others:
        rid = clock.prop(comp, "RECURRENCE-ID")
        cancelled = str(comp.get("STATUS", "")).upper() == "CANCELLED"
        if rid is None:
            continue  # unreadable: left as it is
        if rid in wanted:
            existing[rid] = comp
        elif not (cancelled and rid.date() in series.deleted):
            cal.subcomponents = [c for c in cal.subcomponents if c is not comp]
    for o in series.overrides:
        comp = existing.get(o.original_start)
        if comp is None:
            comp = _new_override(master, o.original_start, clock)
            cal.add_component(comp)
        if str(comp.get("STATUS", "")).upper() == "CANCELLED":
            comp.pop("STATUS")
        if clock.prop(comp, "DTSTART") != o.start:
            _put(comp, "DTSTART", o.start, clock)
        if clock.prop(comp, "DTEND") != o.end:
            comp.pop("DURATION", None)
            _put(comp, "DTEND", o.end, clock)
        subject = text_of(master, "SUMMARY") if o.subject is None else o.subject
        if text_of(comp, "SUMMARY") != subject:
            _put_text(comp, "SUMMARY", subject)
        location = text_of(master, "LOCATION") if o.location is None else o.location
        if text_of(comp, "LOCATION") != location:
            _put_text(comp, "LOCATION", location)
        wanted_busy = busy(master) if o.busy_status is None else o.busy_status
        if busy(comp) != wanted_busy:
            _put_busy(comp, wanted_busy)

"""An iCalendar series (RRULE, EXDATE, overrides) ↔ a `recur_blob.Series`.

`series_from_ical` reads the master component and its overrides into a Series in the
master's own zone, or None when the blob cannot say the same thing (see `recur_blob`: one
RRULE of FREQ DAILY / WEEKLY / MONTHLY / YEARLY with only INTERVAL, COUNT, UNTIL, BYDAY,
BYMONTHDAY, BYSETPOS, BYMONTH and WKST, no RDATE or EXRULE, DTSTART on the rule, whole minutes,
day-of-month rules that never skip a month). As a last check the rule's first occurrences
are expanded both ways and must agree.

Writing a Series back into a calendar is `recur_ical_write.write_series`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import icalendar

from bridge.formats import recur_blob as R
from bridge.formats import recur_expand
from bridge.formats.recur_blob import Override, Series

ZoneFor = Callable[[str], dt.tzinfo]
BusyOf = Callable[[icalendar.Component], int]

_RULE_KEYS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYSETPOS"}
_RULE_KEYS |= {"BYMONTH", "WKST"}
_BYDAY = re.compile(r"^([+-]?\d{1,2})?(SU|MO|TU|WE|TH|FR|SA)$")
# Occurrences compared between the source rule and the blob's rule: enough to pass every
# cycle a pattern the blob can say has. Daily and weekly patterns repeat every period (a
# few weeks at most); monthly and yearly ones also follow month lengths, leap years and
# the leap-year exception of a century year (which 150 years of a yearly rule reach).
# Each compared occurrence costs about 10 µs, twice, for every open-ended series.
CHECKED = {"DAILY": 60, "WEEKLY": 60, "MONTHLY": 150, "YEARLY": 150}


class Clock:
    """Values of the calendar as naive wall-clock times in the master's zone."""

    def __init__(self, master: icalendar.Component, zone_for: ZoneFor, floating: dt.tzinfo):
        self.zone_for = zone_for
        self.floating = floating
        prop = master.get("DTSTART")
        value = getattr(prop, "dt", None)
        self.all_day = not isinstance(value, dt.datetime)
        self.tzid = _tzid(prop)
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            self.zone: dt.tzinfo = value.tzinfo
        elif isinstance(value, dt.datetime) and self.tzid:
            self.zone = zone_for(self.tzid)
        else:
            self.zone = floating
        self.floating_start = isinstance(value, dt.datetime) and value.tzinfo is None
        self.floating_start = self.floating_start and not self.tzid

    def local(self, value: Any, tzid: str | None = None) -> dt.datetime | None:
        if isinstance(value, dt.datetime):
            aware: dt.datetime = value
            if aware.tzinfo is None:
                aware = aware.replace(tzinfo=self.zone_for(tzid) if tzid else self.floating)
            return aware.astimezone(self.zone).replace(tzinfo=None)
        if isinstance(value, dt.date):
            return dt.datetime.combine(value, dt.time())
        return None

    def prop(self, comp: icalendar.Component, name: str) -> dt.datetime | None:
        prop = comp.get(name)
        if isinstance(prop, list):
            prop = prop[0] if prop else None
        return self.local(getattr(prop, "dt", None), _tzid(prop))

    def value(self, local: dt.datetime) -> tuple[Any, dict[str, str]]:
        """A local time in the form of the master's DTSTART: (value, parameters)."""
        if self.all_day:
            return local.date(), {}
        if self.tzid:
            return local, {"TZID": self.tzid}
        if self.floating_start:
            return local, {}
        return local.replace(tzinfo=self.zone).astimezone(dt.UTC), {}


def _tzid(prop: Any) -> str | None:
    params = getattr(prop, "params", None)
    tzid = params.get("TZID") if params is not None else None
    return str(tzid) if tzid else None


def _all(comp: icalendar.Component, name: str) -> list[Any]:
    value = comp.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _int_list(rule: Any, key: str) -> list[int] | None:
    try:
        return [int(v) for v in rule.get(key, [])]
    except (TypeError, ValueError):
        return None


def _first(rule: Any, key: str) -> Any:
    value = rule.get(key)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _canonical(days: list[str]) -> tuple[str, ...]:
    return tuple(d for d in R.DAYS if d in days)


def _month_fields(
    freq: str, rule: Any, start: dt.datetime, byday: list[tuple[int | None, str]]
) -> dict[str, Any] | None:
    monthdays, setpos, months = (_int_list(rule, k) for k in ("BYMONTHDAY", "BYSETPOS", "BYMONTH"))
    if monthdays is None or setpos is None or months is None:
        return None
    month: int | None = None
    if freq == "MONTHLY" and months:
        return None
    if freq == "YEARLY":
        if len(months) > 1 or (not months and (byday or monthdays)):
            return None  # without BYMONTH these would fall in every month
        month = months[0] if months else start.month
    if byday and monthdays:
        return None
    if byday:
        days: tuple[str, ...]
        if len(byday) == 1 and byday[0][0] is not None and not setpos:
            nth, days = byday[0][0], (byday[0][1],)
        elif all(n is None for n, _ in byday) and len(setpos) == 1:
            nth, days = setpos[0], _canonical([d for _, d in byday])
        else:
            return None
        if nth not in (1, 2, 3, 4, -1):
            return None
        return {"month": month, "byday": days, "setpos": nth}
    if setpos:
        if setpos != [-1] or not monthdays or min(monthdays) < 1:
            return None
        return {"month": month, "monthday": max(monthdays)}  # checked by expansion
    if len(monthdays) > 1:
        return None
    day = monthdays[0] if monthdays else start.day
    if day != -1 and not 1 <= day <= R.month_shortest(month):
        return None
    return {"month": month, "monthday": day}


def _pattern(rule: Any, start: dt.datetime) -> dict[str, Any] | None:
    if set(rule.keys()) - _RULE_KEYS:
        return None
    freq = str(_first(rule, "FREQ") or "").upper()
    try:
        interval = int(_first(rule, "INTERVAL") or 1)
    except (TypeError, ValueError):
        return None
    wkst = str(_first(rule, "WKST") or "MO").upper()
    if freq not in R.FREQS or interval < 1 or wkst not in R.DAYS:
        return None
    byday: list[tuple[int | None, str]] = []
    for text in rule.get("BYDAY", []):
        m = _BYDAY.match(str(text).upper())
        if m is None:
            return None
        byday.append((int(m.group(1)) if m.group(1) else None, m.group(2)))
    out: dict[str, Any] = {"freq": freq, "interval": interval, "wkst": wkst}
    if freq in ("DAILY", "WEEKLY"):
        if any(rule.get(k) for k in ("BYMONTHDAY", "BYSETPOS", "BYMONTH")):
            return None
        if any(n is not None for n, _ in byday):
            return None
        days = _canonical([d for _, d in byday])
        if freq == "WEEKLY" and not days:
            days = (R.DAYS[R.outlook_weekday(start.date())],)
        if freq == "DAILY" and days and interval != 1:
            return None
        out["byday"] = days
        return out
    fields = _month_fields(freq, rule, start, byday)
    return None if fields is None else {**out, **fields}


def _source_starts(
    rule: Any, start: dt.datetime, until: dt.datetime | None, limit: int
) -> list[dt.datetime]:
    parts = [p for p in rule.to_ical().decode("ascii", "replace").split(";")]
    parts = [p for p in parts if not p.upper().startswith("UNTIL=")]
    if until is not None:
        parts.append(f"UNTIL={until:%Y%m%dT%H%M%S}")
    return recur_expand.starts(";".join(parts), start, limit)


def _ends(
    rule: Any, start: dt.datetime, clock: Clock
) -> tuple[int | None, dt.datetime | None] | None:
    """(COUNT, UNTIL as local time) of a rule; None when unreadable."""
    count = _first(rule, "COUNT")
    until = _first(rule, "UNTIL")
    if count is not None:
        try:
            n = int(count)
        except (TypeError, ValueError):
            return None
        return (n, None) if 0 < n < R.MAX_OCCURRENCES else None
    if until is None:
        return None, None
    if isinstance(until, dt.datetime):
        return None, clock.local(until)
    if isinstance(until, dt.date):
        return None, dt.datetime.combine(until, dt.time(23, 59, 59))
    return None


def _rule_series(rule: Any, start: dt.datetime, duration: int, clock: Clock) -> Series | None:
    fields = _pattern(rule, start)
    ends = _ends(rule, start, clock)
    if fields is None or ends is None:
        return None
    count, until = ends
    series = Series(start=start, duration=duration, count=count, **fields)
    checked = CHECKED.get(str(_first(rule, "FREQ")).upper(), max(CHECKED.values()))
    try:
        source = _source_starts(rule, start, until, checked)
        if until is not None:
            everything = R.occurrence_starts(
                Series(start=start, duration=duration, until=until.date(), **fields)
            )
            starts = [s for s in everything if s <= until]
            if not starts or len(starts) >= R.MAX_OCCURRENCES:
                return None
            series = Series(start=start, duration=duration, until=starts[-1].date(), **fields)
        ours = R.occurrence_starts(series, checked)
    except (ValueError, TypeError, OverflowError):
        return None
    if not ours or ours[0] != start or ours != source:
        return None
    return series


def text_of(comp: icalendar.Component, name: str) -> str:
    value = comp.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return "" if value is None else str(value)


def _is_occurrence(series: Series, when: dt.datetime) -> bool:
    if when < series.start:
        return False
    from dateutil import rrule as du_rrule  # type: ignore[import-untyped]

    parts = R.rrule_parts(series)
    if series.count is not None:
        parts.append(f"COUNT={series.count}")
    elif series.until is not None:
        parts.append(f"UNTIL={series.until:%Y%m%d}T235959")
    rule = du_rrule.rrulestr(";".join(parts), dtstart=series.start)
    found = rule.after(when - dt.timedelta(seconds=1))
    return bool(found == when)


def series_from_ical(
    master: icalendar.Component,
    overrides: list[icalendar.Component],
    *,
    zone_for: ZoneFor,
    floating: dt.tzinfo,
    busy: BusyOf,
) -> Series | None:
    """The series of `master` and its `overrides` (components with RECURRENCE-ID), in the
    master's local time; None when it has none or the blob cannot express it."""
    rules = _all(master, "RRULE")
    if len(rules) != 1 or master.get("RDATE") is not None or master.get("EXRULE") is not None:
        return None
    clock = Clock(master, zone_for, floating)
    start = clock.prop(master, "DTSTART")
    if start is None or start.second or start.microsecond or start < R.EPOCH:
        return None
    end = clock.prop(master, "DTEND")
    if end is None:
        length = getattr(master.get("DURATION"), "dt", None)
        if isinstance(length, dt.timedelta):
            end = start + length
        else:
            end = start + (dt.timedelta(days=1) if clock.all_day else dt.timedelta())
    duration = (end - start).total_seconds() / 60
    if duration < 0 or duration != int(duration):
        return None
    series = _rule_series(rules[0], start, int(duration), clock)
    if series is None:
        return None
    deleted: set[dt.date] = set()
    for exdate in _all(master, "EXDATE"):
        for value in getattr(exdate, "dts", []):
            when = clock.local(value.dt, _tzid(exdate))
            if when is not None and _is_occurrence(series, when):
                deleted.add(when.date())
    moved: list[Override] = []
    master_busy = busy(master)
    for comp in overrides:
        rid_prop = comp.get("RECURRENCE-ID")
        rid = clock.prop(comp, "RECURRENCE-ID")
        if rid is None or "RANGE" in getattr(rid_prop, "params", {}):
            return None
        if not _is_occurrence(series, rid):
            return None
        if str(comp.get("STATUS", "")).upper() == "CANCELLED" or rid.date() in deleted:
            deleted.add(rid.date())
            continue
        o_start = clock.prop(comp, "DTSTART") or rid
        o_end = clock.prop(comp, "DTEND")
        if o_end is None:
            length = getattr(comp.get("DURATION"), "dt", None)
            o_end = o_start + (length if isinstance(length, dt.timedelta) else end - start)
        if o_start.second or o_end.second or o_end < o_start or o_start < R.EPOCH:
            return None
        subject, location = text_of(comp, "SUMMARY"), text_of(comp, "LOCATION")
        o_busy = busy(comp)
        moved.append(
            Override(
                rid,
                o_start.replace(microsecond=0),
                o_end.replace(microsecond=0),
                subject if subject != text_of(master, "SUMMARY") else None,
                location if location != text_of(master, "LOCATION") else None,
                o_busy if o_busy != master_busy else None,
            )
        )
    moved = [o for o in moved if o.original_start.date() not in deleted]
    return dataclasses.replace(
        series,
        deleted=tuple(sorted(deleted)),
        overrides=tuple(sorted(moved, key=lambda o: o.original_start)),
    )


def blob_of(
    cal: icalendar.Calendar,
    master: icalendar.Component,
    *,
    zone_for: ZoneFor,
    floating: dt.tzinfo,
    busy: BusyOf,
) -> bytes | None:
    """PidLidAppointmentRecur for the master component of `cal`; None when inexpressible,
    and for anything unexpected: the blob is an extra, and an object that reads otherwise
    must never fail for it."""
    try:
        series = series_from_ical(
            master, overrides_of(cal, master), zone_for=zone_for, floating=floating, busy=busy
        )
        return None if series is None else R.encode(series)
    except Exception:
        return None


def overrides_of(cal: icalendar.Calendar, master: icalendar.Component) -> list[Any]:
    uid = str(master.get("UID", ""))
    return [
        c
        for c in cal.subcomponents
        if c is not master
        and c.name == master.name
        and "RECURRENCE-ID" in c
        and str(c.get("UID", "")) == uid
    ]

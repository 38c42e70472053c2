"""Recurrence rules in words (PidLidRecurrencePattern) and the end of a series (PidLidClipEnd).

Outlook's binary recurrence blob (PidLidAppointmentRecur) is made by `recur_blob` /
`recur_ical` where it can express the series; the words here are made for every rule.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bridge.formats import recur_expand

_FREQ = {
    "SECONDLY": ("second", "seconds"),
    "MINUTELY": ("minute", "minutes"),
    "HOURLY": ("hour", "hours"),
    "DAILY": ("day", "days"),
    "WEEKLY": ("week", "weeks"),
    "MONTHLY": ("month", "months"),
    "YEARLY": ("year", "years"),
}
_DAYS = {
    "MO": "Monday",
    "TU": "Tuesday",
    "WE": "Wednesday",
    "TH": "Thursday",
    "FR": "Friday",
    "SA": "Saturday",
    "SU": "Sunday",
}
_ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
# A COUNT above this is not expanded to find the series end.
MAX_COUNT_EXPANDED = 100_000


def _first(rule: Any, key: str) -> Any:
    value = rule.get(key)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _day(text: str) -> str:
    text = str(text).upper()
    name = _DAYS.get(text[-2:], text)
    prefix = text[:-2]
    if prefix:
        try:
            return f"the {_ORDINAL.get(int(prefix), prefix)} {name}"
        except ValueError:
            return name
    return name


def describe_rrule(rule: Any) -> str:
    """``FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=10`` → "every 2 weeks on Monday, Wednesday,
    10 times"."""
    freq = str(_first(rule, "FREQ") or "").upper()
    if freq not in _FREQ:
        return "custom recurrence"
    try:
        interval = int(_first(rule, "INTERVAL") or 1)
    except (TypeError, ValueError):
        interval = 1
    one, many = _FREQ[freq]
    text = f"every {one}" if interval == 1 else f"every {interval} {many}"
    byday = rule.get("BYDAY") or []
    if byday:
        text += " on " + ", ".join(_day(d) for d in byday)
    bymonthday = rule.get("BYMONTHDAY") or []
    if bymonthday:
        text += " on day " + ", ".join(str(d) for d in bymonthday)
    bymonth = rule.get("BYMONTH") or []
    if bymonth:
        names = [_MONTHS[int(m) - 1] if 1 <= int(m) <= 12 else str(m) for m in bymonth]
        text += " in " + ", ".join(names)
    until = _first(rule, "UNTIL")
    count = _first(rule, "COUNT")
    if isinstance(until, dt.datetime | dt.date):
        text += " until " + until.isoformat()
    elif count is not None:
        text += f", {count} times"
    return text


def series_end(rule: Any, start: dt.datetime) -> dt.datetime | None:
    """The start of the last occurrence, when the rule ends (UNTIL or COUNT); else None."""
    until = _first(rule, "UNTIL")
    if isinstance(until, dt.datetime):
        return (until if until.tzinfo else until.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    if isinstance(until, dt.date):
        return dt.datetime.combine(until, dt.time(23, 59, 59), dt.UTC)
    count = _first(rule, "COUNT")
    if count is None:
        return None
    try:
        if not 0 < int(count) <= MAX_COUNT_EXPANDED:
            return None
        text = rule.to_ical().decode("ascii", "replace")
        every = recur_expand.starts(text, start)
        last = every[-1] if every else None
    except (ValueError, TypeError, OverflowError):
        return None
    return last.astimezone(dt.UTC) if isinstance(last, dt.datetime) else None

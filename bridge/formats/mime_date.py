"""Dates of message headers (Date:, the last hop of Received:) as aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_tz

_FILETIME_MIN = datetime(1601, 1, 1, tzinfo=UTC)

# The form nearly every message has, "Sat, 04 May 2024 16:10:20 +0000": read by this regex
# in a fraction of the time parsedate_tz takes, with the same result (parsedate_tz splits
# the value at whitespace, drops a day name ending in a comma, and reads these five fields
# just so; four-digit years from 1000 are taken as they are, -0000 is no offset, as +0000).
# Anything else is left to it.
_COMMON_DATE = re.compile(
    r"[ \t]*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),[ \t]+)?([0-9]{1,2})[ \t]+"
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[ \t]+([1-9][0-9]{3})[ \t]+"
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})[ \t]+([+-])([0-9]{2})([0-9]{2})[ \t]*"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def parse_date(value: str) -> datetime | None:
    """An RFC 5322 date as an aware UTC datetime; None when unparseable or out of range."""
    value = value[:256]
    match = _COMMON_DATE.fullmatch(value)
    if match is None:
        return _parse_other(value)
    day, month, year, hour, minute, second, sign, tz_hours, tz_minutes = match.groups()
    try:
        when = datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
        if tz_hours != "00" or tz_minutes != "00":
            offset = int(tz_hours) * 3600 + int(tz_minutes) * 60
            when -= timedelta(seconds=-offset if sign == "-" else offset)
    except (ValueError, OverflowError):
        return None
    return when if when >= _FILETIME_MIN else None


def _parse_other(value: str) -> datetime | None:
    try:
        parts = parsedate_tz(value)
        if parts is None:
            return None
        naive = datetime(*parts[:6])
        offset = parts[9] or 0
        when = naive.replace(tzinfo=UTC) - timedelta(seconds=offset)
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    return when if when >= _FILETIME_MIN else None

"""Time-zone names: Windows ↔ IANA, and iCalendar TZIDs resolved to a zone.

Windows names come from Outlook and Exchange (``W. Europe Standard Time``); the tables are
tzlocal's CLDR-derived ``windows_tz`` (``win_tz``: Windows → IANA, ``tz_win``: IANA →
Windows). A TZID may also be an IANA name, one with a vendor prefix
(``/mozilla.org/20050126_1/Europe/Berlin``) or an Outlook display name
(``(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna``); a display name is resolved
through its city names, else to the fixed offset it states.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo

from tzlocal import windows_tz

_DISPLAY = re.compile(r"^\((?:UTC|GMT)(?:([+-])(\d{1,2}):(\d{2}))?\)\s*(.*)$")


def windows_to_iana(name: str) -> str | None:
    """``W. Europe Standard Time`` → ``Europe/Berlin``; None when unknown."""
    return windows_tz.win_tz.get(name.strip())


def iana_to_windows(name: str) -> str | None:
    """``Europe/Berlin`` → ``W. Europe Standard Time``; None when unknown."""
    return windows_tz.tz_win.get(name.strip())


@functools.lru_cache(maxsize=1)
def _by_city() -> dict[str, str]:
    out: dict[str, str] = {}
    for key in sorted(zoneinfo.available_timezones()):
        city = key.rsplit("/", 1)[-1].replace("_", " ").lower()
        out.setdefault(city, key)
    return out


def _zone(key: str) -> zoneinfo.ZoneInfo | None:
    if not key or len(key) > 200 or ".." in key or key.startswith(("/", "\\")):
        return None
    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


@functools.lru_cache(maxsize=512)
def iana_name(tzid: str) -> str | None:
    """The IANA name a TZID stands for, or None (fixed-offset display names included)."""
    tzid = tzid.strip().strip('"')
    if not tzid:
        return None
    if _zone(tzid) is not None:
        return tzid
    win = windows_to_iana(tzid)
    if win:
        return win
    parts = [p for p in tzid.replace("\\", "/").split("/") if p]
    for start in range(len(parts)):
        candidate = "/".join(parts[start:])
        if _zone(candidate) is not None:
            return candidate
    match = _DISPLAY.match(tzid)
    if match:
        for city in match.group(4).split(","):
            key = _by_city().get(city.strip().lower())
            if key:
                return key
    return None


def resolve_tzid(tzid: str) -> dt.tzinfo | None:
    """A zone for a TZID (IANA, Windows, prefixed or display name); None when unknown."""
    key = iana_name(tzid)
    if key is not None:
        return _zone(key)
    match = _DISPLAY.match(tzid.strip())
    if match and match.group(1):
        sign = -1 if match.group(1) == "-" else 1
        hours, minutes = int(match.group(2)), int(match.group(3))
        if hours < 24 and minutes < 60:
            offset = dt.timedelta(hours=hours, minutes=minutes) * sign
            return dt.timezone(offset, tzid.strip()[:64])
    if match and match.group(1) is None:
        return dt.UTC
    return None


def zone_key(tz: dt.tzinfo | None) -> str | None:
    """The IANA key of a zone (``Europe/Berlin``), ``UTC``, or None for anything else."""
    if tz is None:
        return None
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    if tz is dt.UTC or tz == dt.UTC:
        return "UTC"
    zone = getattr(tz, "zone", None)
    return zone if isinstance(zone, str) else None


def description(tz: dt.tzinfo | None) -> str | None:
    """The value kept in PidLidTimeZoneDescription: the Windows name when there is one,
    else the IANA name."""
    key = zone_key(tz)
    if key is None:
        return None
    return iana_to_windows(key) or key


def tzid_description(tzid: str) -> str:
    """PidLidTimeZoneDescription for a TZID: the Windows name of the zone it stands for,
    else its IANA name, else the TZID itself."""
    key = iana_name(tzid)
    if key is None:
        return tzid.strip()[:200]
    return iana_to_windows(key) or key


def local_zone() -> dt.tzinfo:
    """The machine's zone (floating times and all-day dates are read in it); UTC if unknown."""
    try:
        import tzlocal

        return tzlocal.get_localzone()
    except Exception:
        return dt.UTC

"""Outlook time-zone rules (`tz_struct.TzReg`) read off any tzinfo, and the time-zone
properties of an appointment.

`year_rule` finds the changes of UTC offset in one local year by stepping through the year a
day at a time and bisecting to the second; two changes that go back and forth make a rule
(standard time is the smaller offset, daylight the larger, so negative-DST zones such as
Europe/Dublin come out as Windows has them), none makes a rule with only the bias. Each change
is written as Windows does: the local wall-clock time before it, as the nth (5 = last)
weekday of its month. Years whose changes fit no such rule (one change: the zone moved its
offset; three or more; one at the stroke of the next year) give None, and `zone_rule` falls
back to the offset that holds for most of the year. `stable` says whether the neighbouring
years have the same rule.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from typing import Any

from bridge.formats import ical_values as V
from bridge.formats import tz_struct as S
from bridge.formats.timezones import description
from bridge.model.named import NamedProp

# Years are read within these bounds (datetime's range, with room for any offset).
MIN_YEAR, MAX_YEAR = 1601, 9000
# A TZDEFINITION for a series lists the rules of at most this many years after its start.
MAX_YEARS = 30
_DAY = dt.timedelta(days=1)

Change = tuple[dt.datetime, int, int]  # UTC instant, offset before, offset after (seconds)


def _offset(tz: dt.tzinfo, utc: dt.datetime) -> int:
    delta = utc.astimezone(tz).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _year_bounds(tz: dt.tzinfo, year: int) -> tuple[dt.datetime, dt.datetime]:
    begin = dt.datetime(year, 1, 1, tzinfo=tz).astimezone(dt.UTC)
    return begin, dt.datetime(year + 1, 1, 1, tzinfo=tz).astimezone(dt.UTC)


def changes(tz: dt.tzinfo, year: int) -> list[Change]:
    """The changes of UTC offset within the local year `year`."""
    begin, end = _year_bounds(tz, year)
    out: list[Change] = []
    t, off = begin, _offset(tz, begin)
    while t < end:
        nxt = min(t + _DAY, end)
        after = _offset(tz, nxt)
        if after != off:
            lo, hi = int(t.timestamp()), int(nxt.timestamp())
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(tz, _at(mid)) == off:
                    lo = mid
                else:
                    hi = mid
            if _at(hi) < end:
                out.append((_at(hi), off, _offset(tz, _at(hi))))
        t, off = nxt, after
    return out


def _minutes(seconds: int) -> int:
    return round(seconds / 60)


def _local_before(change: Change) -> dt.datetime:
    """The wall-clock time just before a change, as the zone had it."""
    return (change[0] + dt.timedelta(seconds=change[1])).replace(tzinfo=None)


def _when(change: Change) -> S.SystemTime:
    """A change as a yearly SYSTEMTIME: local time before it, nth weekday of the month."""
    local = _local_before(change)
    last = calendar.monthrange(local.year, local.month)[1]
    week = 5 if local.day + 7 > last else (local.day - 1) // 7 + 1
    dow = (local.weekday() + 1) % 7
    return S.SystemTime(0, local.month, dow, week, local.hour, local.minute, local.second)


@functools.lru_cache(maxsize=4096)
def year_rule(tz: dt.tzinfo, year: int) -> S.TzReg | None:
    """The rule of local year `year`, or None when its changes fit no yearly rule."""
    year = min(max(year, MIN_YEAR), MAX_YEAR)
    found = changes(tz, year)
    if not found:
        return S.TzReg(bias=-_minutes(_offset(tz, _year_bounds(tz, year)[0])))
    if len(found) != 2:
        return None
    first, second = found
    if first[1] != second[2] or first[2] != second[1]:
        return None
    if any(_local_before(c).year != year for c in found):
        return None  # at the stroke of the next year (Asia/Dhaka, 2009): no yearly date
    std, dst = sorted((first[1], first[2]))
    to_dst, to_std = (first, second) if first[2] == dst else (second, first)
    return S.TzReg(
        bias=-_minutes(std),
        standard_bias=0,
        daylight_bias=-_minutes(dst - std),
        standard_date=_when(to_std),
        daylight_date=_when(to_dst),
    )


def zone_rule(tz: dt.tzinfo, year: int) -> S.TzReg:
    """`year_rule`, else only the bias of the offset that holds for most of the year."""
    rule = year_rule(tz, year)
    if rule is not None:
        return rule
    year = min(max(year, MIN_YEAR), MAX_YEAR)
    begin, end = _year_bounds(tz, year)
    spans: dict[int, dt.timedelta] = {}
    t, off = begin, _offset(tz, begin)
    for when, _, after in [*changes(tz, year), (end, 0, 0)]:
        spans[off] = spans.get(off, dt.timedelta()) + (when - t)
        t, off = when, after
    return S.TzReg(bias=-_minutes(max(spans, key=lambda o: spans[o])))


def stable(tz: dt.tzinfo, year: int) -> bool:
    """Whether `year` and the years before and after it follow the same yearly rule."""
    rule = year_rule(tz, year)
    return rule is not None and year_rule(tz, year - 1) == rule == year_rule(tz, year + 1)


def key_name(tz: dt.tzinfo, label: str | None = None) -> str:
    """The KeyName of a zone: its Windows name, else its IANA name, else `label`, else the
    name the zone gives itself."""
    name = description(tz) or label
    if not name:
        try:
            name = tz.tzname(None)
        except Exception:  # zones that need a date to name themselves
            name = None
    return (name or "")[: S.MAX_KEY]


def definition(
    tz: dt.tzinfo,
    year: int,
    *,
    last_year: int | None = None,
    recur: bool = False,
    label: str | None = None,
) -> S.TzDefinition:
    """A TZDEFINITION whose effective rule is that of `year` (also the TZREG of the item),
    with one more rule for each later year up to `last_year` (at most MAX_YEARS on) where
    the rule changes. `recur` also marks the rule TZRULE_FLAG_RECUR_CURRENT_TZREG."""
    last = min(max(year, last_year or year), year + MAX_YEARS, MAX_YEAR)
    flags = S.TZRULE_FLAG_EFFECTIVE_TZREG
    if recur:
        flags |= S.TZRULE_FLAG_RECUR_CURRENT_TZREG
    rules = [S.TzRule(year, zone_rule(tz, year), flags)]
    for y in range(year + 1, last + 1):
        reg = zone_rule(tz, y)
        if reg != rules[-1].reg:
            rules.append(S.TzRule(y, reg))
    return S.TzDefinition(key_name(tz, label), tuple(rules))


def appointment_props(
    start: dt.datetime | None,
    end: dt.datetime | None,
    recur_start: dt.datetime | None = None,
    recur_last: dt.date | None = None,
    label: str | None = None,
) -> dict[NamedProp, bytes]:
    """The time-zone blobs of an appointment: the StartDisplay / EndDisplay definitions for
    the zones of `start` / `end` (aware, in their own zone), and for a series the TZREG
    (PidLidTimeZoneStruct) and Recur definition of `recur_start` — the first start, in the
    zone of the recurrence blob's local times — up to the year of `recur_last` (None: no
    end). Without a series the TZREG is that of `start`. `label` (PidLidTimeZoneDescription)
    names zones that have no name of their own (a VTIMEZONE's)."""
    out: dict[NamedProp, bytes] = {}
    for prop, value in ((V.TZ_DEFINITION_START, start), (V.TZ_DEFINITION_END, end)):
        if value is not None and value.tzinfo is not None:
            name = key_name(value.tzinfo, label)
            out[prop] = _encoded(value.tzinfo, value.year, value.year, False, name)
    anchor = recur_start if recur_start is not None else start
    if anchor is not None and anchor.tzinfo is not None:
        out[V.TZ_STRUCT] = _encoded_tzreg(anchor.tzinfo, anchor.year)
    if recur_start is not None and recur_start.tzinfo is not None:
        last = recur_last.year if recur_last is not None else recur_start.year + MAX_YEARS
        zone, year = recur_start.tzinfo, recur_start.year
        out[V.TZ_DEFINITION_RECUR] = _encoded(zone, year, last, True, key_name(zone, label))
    return out


# Every event of a calendar in the same zone and year has the same blobs: they are made once.
# The key name is part of the key (zones that compare equal may be named apart, as fixed
# offsets are); a zone that cannot be a cache key (a tzinfo without hashing) is encoded
# every time.


def _encoded(tz: dt.tzinfo, year: int, last_year: int, recur: bool, name: str) -> bytes:
    try:
        return _encoded_cached(tz, year, last_year, recur, name)
    except TypeError:  # unhashable zone
        return _encode(tz, year, last_year, recur, name)


def _encode(tz: dt.tzinfo, year: int, last_year: int, recur: bool, name: str) -> bytes:
    """`definition` named `name` (the `key_name` it would give itself), encoded."""
    defn = definition(tz, year, last_year=last_year, recur=recur, label=name)
    return S.encode_definition(defn)


_encoded_cached = functools.lru_cache(maxsize=1024)(_encode)


def _encoded_tzreg(tz: dt.tzinfo, year: int) -> bytes:
    try:
        return _encoded_tzreg_cached(tz, year)
    except TypeError:  # unhashable zone
        return S.encode_tzreg(zone_rule(tz, year))


@functools.lru_cache(maxsize=1024)
def _encoded_tzreg_cached(tz: dt.tzinfo, year: int) -> bytes:
    return S.encode_tzreg(zone_rule(tz, year))


def describe(data: bytes) -> dict[str, Any]:
    """A client's TZREG or TZDEFINITION as a Windows zone name (when it has one) and the
    effective biases; raises TzStructError when it is neither."""
    if len(data) == 48:  # a TZDEFINITION has at least 76 bytes
        reg, name = S.decode_tzreg(data), None
    else:
        defn = S.decode_definition(data)
        reg, name = defn.effective, defn.key_name or None
    return {
        "name": name,
        "bias": reg.bias,
        "standard_bias": reg.standard_bias,
        "daylight_bias": reg.daylight_bias,
    }

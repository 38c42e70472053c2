"""The starts of an RRULE (dateutil's `rrulestr`), kept for the last few rules expanded.

Reading one recurring event expands the same rule several times: its last occurrence
(PidLidClipEnd), the check that the Outlook pattern gives the source's occurrences, and
the end of the recurrence blob. Each is the same list, made once.

A rule is expanded in wall-clock time: dateutil gives a start with a time zone the start
without it, with the zone attached. So the starts of a rule without UNTIL (the one part
compared as an instant) are kept without a zone, and serve a start in any zone.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict

KEPT_RULES = 8  # rules whose starts are kept (one event's worth, with room)
KEPT_STARTS = 10_000  # longer lists are not kept

# (rule text, wall-clock start, fold, id of its zone) -> (zone, starts, all of them)
_Key = tuple[str, dt.datetime, int, int]
_kept: OrderedDict[_Key, tuple[dt.tzinfo | None, list[dt.datetime], bool]] = OrderedDict()
_lock = threading.Lock()


def starts(text: str, dtstart: dt.datetime, limit: int | None = None) -> list[dt.datetime]:
    """The first `limit` starts (None: all; the rule must end) of the rule `text` from
    `dtstart`, as iterating `dateutil.rrule.rrulestr(text, dtstart=dtstart)` gives them
    (no further than the `limit`th); its errors (ValueError, TypeError, OverflowError, …)
    pass."""
    zone = dtstart.tzinfo
    wall = zone is not None and "UNTIL" not in text.upper()  # kept without the zone
    kept_zone = None if wall else zone
    key = (text, dtstart.replace(tzinfo=None), dtstart.fold, id(kept_zone))
    with _lock:
        found = _kept.get(key)
        if found is not None and found[0] is kept_zone:
            _, out, complete = found
            if complete or (limit is not None and len(out) >= limit):
                _kept.move_to_end(key)
                return _zoned(out[:limit], zone) if wall else out[:limit]
    from dateutil import rrule as du_rrule  # type: ignore[import-untyped]

    out = []
    complete = True
    for when in du_rrule.rrulestr(text, dtstart=dtstart.replace(tzinfo=kept_zone)):
        out.append(when)
        if limit is not None and len(out) >= limit:
            complete = False  # perhaps more: not asked for, as the caller did not ask
            break
    if len(out) <= KEPT_STARTS:
        with _lock:
            _kept[key] = (kept_zone, out, complete)
            _kept.move_to_end(key)
            while len(_kept) > KEPT_RULES:
                _kept.popitem(last=False)
    return _zoned(out, zone) if wall else list(out)


def _zoned(starts: list[dt.datetime], zone: dt.tzinfo | None) -> list[dt.datetime]:
    return [s.replace(tzinfo=zone) for s in starts]

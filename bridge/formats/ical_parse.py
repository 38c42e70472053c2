"""An iCalendar object (RFC 5545) → MAPI property values.

`parse_ical` reads the first VEVENT, VTODO or VJOURNAL that is not an override (the series
master) into tagged properties, named properties and recipient rows, in the vocabulary of
`bridge.formats.mime`: str, int, bool, float, aware UTC datetime, bytes, list[str].
Overrides (RECURRENCE-ID), RRULE/RDATE/EXDATE, VTIMEZONE and every property without a MAPI
counterpart stay in the raw object, which the store keeps as the item's source; the
recurrence is exposed as PidLidRecurring, a readable PidLidRecurrencePattern and, where
Outlook's blob can express it (`recur_blob`), PidLidAppointmentRecur with the deleted and
modified occurrences.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import icalendar

from bridge.formats import ical_values as V
from bridge.formats import recur_ical, recur_ical_write
from bridge.formats.ical_attendees import read_people
from bridge.formats.ical_load import load_calendar, short_error
from bridge.formats.ical_recur import describe_rrule, series_end
from bridge.formats.parsed import ParsedItem
from bridge.formats.recur_blob import Series
from bridge.formats.timezones import description, local_zone, resolve_tzid, tzid_description
from bridge.formats.tz_rules import appointment_props
from bridge.model import classes, tags

ITEM_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
CLASS_OF = {
    "VEVENT": classes.IPM_APPOINTMENT,
    "VTODO": classes.IPM_TASK,
    "VJOURNAL": classes.IPM_STICKYNOTE,
}


def master_component(cal: icalendar.Calendar) -> icalendar.Component:
    comps = [c for c in cal.subcomponents if c.name in ITEM_COMPONENTS]
    if not comps:
        raise V.IcalError("the iCalendar object holds no VEVENT, VTODO or VJOURNAL")
    for comp in comps:
        if "RECURRENCE-ID" not in comp:
            return comp
    return comps[0]


def parse_ical(data: bytes, *, floating_tz: dt.tzinfo | None = None) -> ParsedItem:
    """The MAPI properties of an iCalendar object; raises IcalError.

    Floating times and all-day dates are read in `floating_tz` (default: the machine's zone);
    a TZID that names no known zone and has no VTIMEZONE is read as UTC."""
    cal = load_calendar(data, share_zones=True)  # only read
    try:
        return read_calendar(cal, floating_tz or local_zone())
    except V.IcalError:
        raise
    except Exception as exc:
        raise V.IcalError(f"an iCalendar value could not be read: {short_error(exc)}") from None


def read_calendar(cal: icalendar.Calendar, floating_tz: dt.tzinfo) -> ParsedItem:
    comp = master_component(cal)
    reader = _Reader(cal, floating_tz)
    item = ParsedItem(message_class=CLASS_OF[str(comp.name)])
    p, n = item.props, item.named
    _text(comp, "SUMMARY", p, tags.SUBJECT)
    desc = comp.get("DESCRIPTION")
    if isinstance(desc, list):
        p[tags.BODY] = "\n\n".join(str(d) for d in desc)
    elif desc is not None:
        p[tags.BODY] = str(desc)
    cats = _categories(comp)
    if cats:
        n[V.KEYWORDS] = cats
    uid = comp.get("UID")
    if uid is not None and str(uid):
        item.uid = str(uid)
        n[V.CALENDAR_UID] = item.uid
        goid = V.global_object_id(item.uid)
        n[V.GLOBAL_OBJECT_ID] = goid
        n[V.CLEAN_GLOBAL_OBJECT_ID] = goid
    klass = str(comp.get("CLASS", "")).upper()
    if klass in V.SENSITIVITY_BY_CLASS:
        p[tags.SENSITIVITY] = V.SENSITIVITY_BY_CLASS[klass]
        if p[tags.SENSITIVITY] == 2:
            n[V.PRIVATE] = True
    priority = _int(comp.get("PRIORITY"))
    if priority is not None:
        p[tags.IMPORTANCE] = V.importance_of(priority)
    if comp.name == "VEVENT":
        _event(comp, reader, item)
    elif comp.name == "VTODO":
        _todo(comp, reader, item)
    else:
        start = reader.when(comp, "DTSTART")
        if start is not None:
            p[tags.START_DATE] = start[0]
    return item


def _text(comp: icalendar.Component, name: str, props: dict[int, Any], tag: int) -> None:
    value = comp.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is not None:
        props[tag] = str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def _categories(comp: icalendar.Component) -> list[str]:
    value = comp.get("CATEGORIES")
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    out: list[str] = []
    for v in values:
        cats = getattr(v, "cats", None)
        for c in cats if cats is not None else [v]:
            text = str(c).strip()
            if text and text not in out:
                out.append(text)
    return out


class _Reader:
    """Date-time values in UTC, with the zone they were given in."""

    def __init__(self, cal: icalendar.Calendar, floating_tz: dt.tzinfo) -> None:
        self.cal = cal
        self.floating_tz = floating_tz
        self._vtz: dict[str, dt.tzinfo] = {}
        for tz in cal.walk("VTIMEZONE"):
            if not isinstance(tz, icalendar.Timezone):
                continue
            try:
                self._vtz[str(tz.get("TZID"))] = tz.to_tz()
            except Exception:
                continue

    def zone(self, tzid: str) -> dt.tzinfo:
        return resolve_tzid(tzid) or self._vtz.get(tzid) or dt.UTC

    def local(self, comp: icalendar.Component, name: str) -> dt.datetime | None:
        """A DATE-TIME as an aware value in the zone it was given in."""
        prop = comp.get(name)
        value = getattr(prop, "dt", None)
        if not isinstance(value, dt.datetime):
            return None
        if value.tzinfo is None:
            tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
            value = value.replace(tzinfo=self.zone(str(tzid)) if tzid else self.floating_tz)
        return value

    def when(
        self, comp: icalendar.Component, name: str
    ) -> tuple[dt.datetime, str | None, bool] | None:
        """(UTC instant, description of the zone given, is a date) of a DATE / DATE-TIME."""
        prop = comp.get(name)
        if isinstance(prop, list):
            prop = prop[0] if prop else None
        value = getattr(prop, "dt", None)
        if isinstance(value, dt.datetime):
            tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
            label = tzid_description(str(tzid)) if tzid else description(value.tzinfo)
            if value.tzinfo is None:
                value = value.replace(tzinfo=self.zone(str(tzid)) if tzid else self.floating_tz)
            return value.astimezone(dt.UTC), label, False
        if isinstance(value, dt.date):
            midnight = dt.datetime.combine(value, dt.time(), self.floating_tz)
            return midnight.astimezone(dt.UTC), None, True
        return None


def write_recurrence(
    cal: icalendar.Calendar,
    master: icalendar.Component,
    series: Series | None,
    floating_tz: dt.tzinfo,
) -> None:
    """Make `master` in `cal` recur as `series` (None: not at all); see recur_ical."""
    reader = _Reader(cal, floating_tz)
    recur_ical_write.write_series(
        cal, master, series, zone_for=reader.zone, floating=floating_tz, busy=busy_status
    )


def _event(comp: icalendar.Component, reader: _Reader, item: ParsedItem) -> None:
    p, n = item.props, item.named
    _text(comp, "LOCATION", p, -1)
    if -1 in p:
        n[V.LOCATION] = p.pop(-1)
    start = reader.when(comp, "DTSTART")
    end = reader.when(comp, "DTEND")
    if start is not None:
        begin, tz, all_day = start
        if end is None:
            duration = getattr(comp.get("DURATION"), "dt", None)
            if isinstance(duration, dt.timedelta):
                finish = begin + duration
            else:
                finish = begin + (dt.timedelta(days=1) if all_day else dt.timedelta())
        else:
            finish = end[0]
        n[V.APPT_START] = n[V.COMMON_START] = p[tags.START_DATE] = begin
        n[V.APPT_END] = n[V.COMMON_END] = p[tags.END_DATE] = finish
        n[V.DURATION] = int((finish - begin).total_seconds() // 60)
        n[V.ALL_DAY] = all_day or (
            str(comp.get("X-MICROSOFT-CDO-ALLDAYEVENT", "")).upper() == "TRUE"
        )
        if tz:
            n[V.TZ_DESCRIPTION] = tz
        _recurrence(comp, begin, reader.local(comp, "DTSTART") or begin, item)
        if n.get(V.RECURRING) is True:
            blob = recur_ical.blob_of(
                reader.cal,
                comp,
                zone_for=reader.zone,
                floating=reader.floating_tz,
                busy=busy_status,
            )
            if blob is not None:
                n[V.APPOINTMENT_RECUR] = blob
        _zones(comp, reader, begin, finish, tz, item)
        _reminder(comp, reader, begin, finish, item)
    n[V.BUSY_STATUS] = busy_status(comp)
    intended = str(comp.get("X-MICROSOFT-CDO-INTENDEDSTATUS", "")).upper()
    if intended in V.BUSY_BY_CDO:
        n[V.INTENDED_BUSY_STATUS] = V.BUSY_BY_CDO[intended]
    seq = _int(comp.get("SEQUENCE"))
    if seq is not None:
        n[V.SEQUENCE] = seq
    read_people(comp, item)


def _zones(
    comp: icalendar.Component,
    reader: _Reader,
    begin: dt.datetime,
    finish: dt.datetime,
    label: str | None,
    item: ParsedItem,
) -> None:
    """PidLidTimeZoneStruct and the TZDEFINITIONs (`tz_rules.appointment_props`): the display
    ones when the start names its zone, the Recur one in the zone of the recurrence blob."""
    n = item.named
    local = _zoned(reader, comp, "DTSTART")
    start = local if label else None
    end = _zoned(reader, comp, "DTEND") if start is not None else None
    if start is not None and end is None:
        end = finish.astimezone(start.tzinfo)
    recur = None
    if V.APPOINTMENT_RECUR in n:
        recur = begin.astimezone(local.tzinfo if local is not None else reader.floating_tz)
    clip = n.get(V.CLIP_END)
    last = clip.date() if isinstance(clip, dt.datetime) else None
    n.update(appointment_props(start, end, recur, last, label=label))


def _zoned(reader: _Reader, comp: icalendar.Component, name: str) -> dt.datetime | None:
    """`reader.local`, in the zone its TZID resolves to when it names a known one."""
    value = reader.local(comp, name)
    tzid = getattr(comp.get(name), "params", {}).get("TZID")
    zone = resolve_tzid(str(tzid)) if tzid and value is not None else None
    return value.astimezone(zone) if value is not None and zone is not None else value


def busy_status(comp: icalendar.Component) -> int:
    """PidLidBusyStatus of a component: X-MICROSOFT-CDO-BUSYSTATUS, else TRANSP and STATUS."""
    cdo = str(comp.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
    if cdo in V.BUSY_BY_CDO:
        return V.BUSY_BY_CDO[cdo]
    if str(comp.get("TRANSP", "")).upper() == "TRANSPARENT":
        return V.FREE
    if str(comp.get("STATUS", "")).upper() == "TENTATIVE":
        return V.TENTATIVE
    return V.BUSY


def _recurrence(
    comp: icalendar.Component, start: dt.datetime, local: dt.datetime, item: ParsedItem
) -> None:
    """`local` is the start in its own zone: rules step in local time, across DST."""
    rrule = comp.get("RRULE")
    rdate = comp.get("RDATE")
    if rrule is None and rdate is None:
        item.named[V.RECURRING] = False
        return
    item.named[V.RECURRING] = True
    rules = rrule if isinstance(rrule, list) else ([rrule] if rrule is not None else [])
    texts = [describe_rrule(r) for r in rules]
    if rdate is not None:
        texts.append("on extra dates")
    item.named[V.RECURRENCE_PATTERN] = "; ".join(t for t in texts if t)
    item.named[V.CLIP_START] = start
    end = series_end(rules[0], local) if rules and len(rules) == 1 and rdate is None else None
    if end is not None:
        item.named[V.CLIP_END] = end


def _reminder(
    comp: icalendar.Component,
    reader: _Reader,
    start: dt.datetime,
    end: dt.datetime,
    item: ParsedItem,
) -> None:
    n = item.named
    for alarm in comp.walk("VALARM"):
        trigger = alarm.get("TRIGGER")
        value = getattr(trigger, "dt", None)
        if isinstance(value, dt.timedelta):
            related = str(trigger.params.get("RELATED", "START")).upper()
            fire = (end if related == "END" else start) + value
        elif isinstance(value, dt.datetime):
            when = reader.when(alarm, "TRIGGER")
            if when is None:
                continue
            fire = when[0]
        else:
            continue
        n[V.REMINDER_SET] = True
        n[V.REMINDER_DELTA] = max(0, int((start - fire).total_seconds() // 60))
        n[V.REMINDER_TIME] = start
        n[V.REMINDER_SIGNAL_TIME] = fire
        return
    n[V.REMINDER_SET] = False


def _todo(comp: icalendar.Component, reader: _Reader, item: ParsedItem) -> None:
    p, n = item.props, item.named
    start = reader.when(comp, "DTSTART")
    due = reader.when(comp, "DUE")
    if start is not None:
        n[V.TASK_START] = n[V.COMMON_START] = start[0]
    if due is not None:
        n[V.TASK_DUE] = n[V.COMMON_END] = due[0]
    elif start is not None:
        duration = getattr(comp.get("DURATION"), "dt", None)
        if isinstance(duration, dt.timedelta):
            n[V.TASK_DUE] = n[V.COMMON_END] = start[0] + duration
    status = str(comp.get("STATUS", "")).upper()
    completed = reader.when(comp, "COMPLETED")
    task_status = V.TASK_STATUS_BY_ICAL.get(status, 2 if completed else 0)
    n[V.TASK_STATUS] = task_status
    percent = _int(comp.get("PERCENT-COMPLETE"))
    if percent is not None:
        n[V.PERCENT_COMPLETE] = min(max(percent, 0), 100) / 100.0
    elif task_status == 2:
        n[V.PERCENT_COMPLETE] = 1.0
    if completed is not None:
        n[V.TASK_COMPLETED] = completed[0]
    n[V.TASK_COMPLETE] = task_status == 2
    n[V.TASK_RECURRING] = comp.get("RRULE") is not None
    anchor = n.get(V.TASK_DUE) or n.get(V.TASK_START)
    if isinstance(anchor, dt.datetime):
        _reminder(comp, reader, anchor, anchor, item)
    if tags.IMPORTANCE not in p:
        p[tags.IMPORTANCE] = 1

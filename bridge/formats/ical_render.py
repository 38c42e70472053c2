"""MAPI property values → iCalendar: a new object for an item made locally (`render_ical`),
or the item's raw object with only the changed mapped properties rewritten (`update_ical`).

Both go through *fields*: the calendar-relevant values of an item (``"summary"``, ``"when"``,
``"people"``, …) read the same way from a parsed object and from an item's properties, so an
update compares the two and touches only what differs. Everything else in the raw object —
unmapped and X- properties, parameters, VTIMEZONEs, overrides, the recurrence rule — is left
as it was; with nothing changed the raw bytes are returned untouched. A changed Outlook
recurrence blob (PidLidAppointmentRecur) rewrites only the RRULE, EXDATE and overrides that
differ (`recur_ical_write.write_series`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import icalendar

from bridge.formats import ical_values as V
from bridge.formats.ical_load import load_calendar
from bridge.formats.ical_parse import (
    master_component,
    read_calendar,
    write_recurrence,
)
from bridge.formats.parsed import ParsedItem
from bridge.formats.recur_blob import Series
from bridge.formats.recur_blob_read import decode as decode_recurrence
from bridge.formats.timezones import local_zone, resolve_tzid
from bridge.model import classes, flags, tags
from bridge.model.named import NamedProp

PRODID = "-//kbridge//EN"
Fields = dict[str, Any]


def component_name(message_class: str) -> str:
    lower = message_class.lower()
    if lower.startswith(classes.IPM_TASK.lower()):
        return "VTODO"
    if lower.startswith((classes.IPM_STICKYNOTE.lower(), classes.IPM_ACTIVITY.lower())):
        return "VJOURNAL"
    return "VEVENT"


def _utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _person(row: Mapping[int, Any]) -> tuple[str, int, int, str, bool] | None:
    addr = row.get(tags.SMTP_ADDRESS) or row.get(tags.EMAIL_ADDRESS)
    if not isinstance(addr, str) or not addr:
        return None
    rtype = row.get(tags.RECIPIENT_TYPE, flags.MAPI_TO)
    rflags = row.get(tags.RECIPIENT_FLAGS, 0)
    track = row.get(tags.RECIPIENT_TRACKSTATUS, 0)
    name = row.get(tags.DISPLAY_NAME)
    return (
        addr,
        int(rtype) & 0xFF if isinstance(rtype, int) else flags.MAPI_TO,
        int(track) if isinstance(track, int) else 0,
        name if isinstance(name, str) and name != addr else "",
        bool(isinstance(rflags, int) and rflags & V.RECIP_ORGANIZER),
    )


def fields_of(
    kind: str,
    props: Mapping[int, Any],
    named: Mapping[NamedProp, Any],
    recipients: Sequence[Mapping[int, Any]],
) -> Fields:
    """The calendar fields of an item, for component `kind` (VEVENT, VTODO, VJOURNAL)."""
    out: Fields = {
        "summary": props.get(tags.SUBJECT) or None,
        "description": props.get(tags.BODY) or None,
        "class": props.get(tags.SENSITIVITY),
        "categories": tuple(named.get(V.KEYWORDS) or ()),
    }
    if out["class"] == 0:
        out["class"] = None
    if kind == "VJOURNAL":
        out["start"] = _utc(props.get(tags.START_DATE))
        return out
    importance = props.get(tags.IMPORTANCE)
    out["importance"] = importance if importance in (0, 2) else None
    reminder = named.get(V.REMINDER_SET) is True
    delta = named.get(V.REMINDER_DELTA)
    out["reminder"] = (int(delta) if isinstance(delta, int) else 15) if reminder else None
    if kind == "VTODO":
        out["when"] = (_utc(named.get(V.TASK_START)), _utc(named.get(V.TASK_DUE)))
        status = named.get(V.TASK_STATUS)
        out["status"] = status if status in V.ICAL_BY_TASK_STATUS and status != 0 else None
        if named.get(V.TASK_COMPLETE) is True and out["status"] is None:
            out["status"] = 2
        pct = named.get(V.PERCENT_COMPLETE)
        out["percent"] = (
            round(float(pct) * 100) if isinstance(pct, int | float) and pct > 0 else None
        )
        out["completed"] = _utc(named.get(V.TASK_COMPLETED))
        return out
    all_day = named.get(V.ALL_DAY) is True
    out["when"] = (_utc(named.get(V.APPT_START)), _utc(named.get(V.APPT_END)), all_day)
    out["location"] = named.get(V.LOCATION) or None
    busy = named.get(V.BUSY_STATUS)
    out["busy"] = busy if isinstance(busy, int) and busy != V.BUSY else None
    people = [p for p in (_person(r) for r in recipients) if p is not None]
    out["people"] = tuple(sorted((a.lower(), t, k, n, o) for a, t, k, n, o in people))
    out["recur"] = _recurrence(named)
    return out


def _recurrence(named: Mapping[NamedProp, Any]) -> Series | bool | None:
    """The series PidLidAppointmentRecur holds (RecurBlobError when it is broken); False
    when the item says it is not recurring; None when the blob is absent (nothing to say:
    a rule the blob cannot express stays as it is)."""
    blob = named.get(V.APPOINTMENT_RECUR)
    if isinstance(blob, bytes | bytearray) and blob:
        return decode_recurrence(bytes(blob))
    return False if named.get(V.RECURRING) is False else None


def _parsed_fields(item: ParsedItem, kind: str) -> Fields:
    return fields_of(kind, item.props, item.named, item.recipients)


# -- writers -----------------------------------------------------------------------------


class _Writer:
    def __init__(
        self, comp: icalendar.Component, floating_tz: dt.tzinfo, zone: dt.tzinfo | None
    ) -> None:
        self.comp = comp
        self.floating_tz = floating_tz
        self.zone = zone

    def replace(self, name: str, value: Any, parameters: dict[str, str] | None = None) -> None:
        self.comp.pop(name, None)
        if value is not None and value != "" and value != ():
            self.comp.add(name, value, parameters=parameters or {})

    def time(self, name: str, value: dt.datetime | None, all_day: bool = False) -> None:
        """A DATE-TIME in the zone the property had (its TZID kept), else the item's zone."""
        old = self.comp.get(name)
        if value is None:
            self.comp.pop(name, None)
            return
        if all_day:
            self.replace(name, value.astimezone(self.floating_tz).date())
            return
        tzid = None
        if old is not None and hasattr(old, "params"):
            tzid = old.params.get("TZID")
        old_dt = getattr(old, "dt", None)
        if tzid:
            zone = resolve_tzid(str(tzid))
            if zone is None and isinstance(old_dt, dt.datetime) and old_dt.tzinfo is not None:
                zone = old_dt.tzinfo
            if zone is not None:
                local = value.astimezone(zone).replace(tzinfo=None)
                self.replace(name, local, {"TZID": str(tzid)})
                return
        if isinstance(old_dt, dt.datetime) and old_dt.tzinfo is None and old is not None:
            self.replace(name, value.astimezone(self.floating_tz).replace(tzinfo=None))
            return
        zone = self.zone or dt.UTC
        self.replace(name, value.astimezone(zone))


def _write_when(w: _Writer, kind: str, value: tuple[Any, ...]) -> None:
    if kind == "VTODO":
        start, due = value
        w.time("DTSTART", start)
        if w.comp.get("DURATION") is not None and start is not None and due is not None:
            w.replace("DURATION", due - start)
        else:
            w.comp.pop("DURATION", None)
            w.time("DUE", due)
        return
    start, end, all_day = value
    if start is None:
        return  # an event keeps its DTSTART (required); a missing value changes nothing
    w.time("DTSTART", start, all_day)
    if end is None:
        return
    if w.comp.get("DURATION") is not None:
        w.replace("DURATION", end - start)
    else:
        w.time("DTEND", end, all_day)


def _write_people(w: _Writer, value: tuple[tuple[str, int, int, str, bool], ...]) -> None:
    comp = w.comp
    old: dict[str, Any] = {}
    for name in ("ORGANIZER", "ATTENDEE"):
        found = comp.get(name)
        for prop in found if isinstance(found, list) else ([found] if found is not None else []):
            text = str(prop)
            addr = text[7:] if text.lower().startswith("mailto:") else text
            old.setdefault(addr.lower(), prop)
        comp.pop(name, None)
    for addr, rtype, track, cn, organizer in value:
        prev = old.get(addr)
        params = dict(prev.params) if prev is not None and hasattr(prev, "params") else {}
        if cn:
            params["CN"] = cn
        address = icalendar.vCalAddress(str(prev) if prev is not None else f"mailto:{addr}")
        if organizer:
            address.params.update(params)
            comp.add("ORGANIZER", address)
            continue
        if rtype == flags.MAPI_BCC:
            params["CUTYPE"] = params.get("CUTYPE", "RESOURCE")
            params["ROLE"] = "NON-PARTICIPANT"
        elif rtype == flags.MAPI_CC:
            params["ROLE"] = "OPT-PARTICIPANT"
        else:
            params["ROLE"] = "REQ-PARTICIPANT" if params.get("ROLE") != "CHAIR" else "CHAIR"
        params["PARTSTAT"] = V.PARTSTAT_BY_TRACK.get(track, "NEEDS-ACTION")
        address.params.update(params)
        comp.add("ATTENDEE", address)


def _write_reminder(w: _Writer, minutes: int | None) -> None:
    alarms = [c for c in w.comp.subcomponents if c.name == "VALARM"]
    if minutes is None:
        w.comp.subcomponents = [c for c in w.comp.subcomponents if c.name != "VALARM"]
        return
    trigger = dt.timedelta(minutes=-minutes)
    if alarms:
        alarms[0].pop("TRIGGER", None)
        alarms[0].add("TRIGGER", trigger)
        return
    alarm = icalendar.Alarm()
    alarm.add("ACTION", "DISPLAY")
    alarm.add("DESCRIPTION", "Reminder")
    alarm.add("TRIGGER", trigger)
    w.comp.add_component(alarm)


def _write_busy(w: _Writer, busy: int | None) -> None:
    value = V.BUSY if busy is None else busy
    w.replace("TRANSP", "TRANSPARENT" if value == V.FREE else "OPAQUE")
    if busy is None and w.comp.get("X-MICROSOFT-CDO-BUSYSTATUS") is None:
        return
    w.replace("X-MICROSOFT-CDO-BUSYSTATUS", V.CDO_BY_BUSY.get(value, "BUSY"))


_SIMPLE: dict[str, str] = {
    "summary": "SUMMARY",
    "description": "DESCRIPTION",
    "location": "LOCATION",
}


def _write(w: _Writer, kind: str, key: str, value: Any) -> None:
    writers: dict[str, Callable[[], None]] = {
        "when": lambda: _write_when(w, kind, value),
        "start": lambda: w.time("DTSTART", value),
        "people": lambda: _write_people(w, value),
        "reminder": lambda: _write_reminder(w, value),
        "busy": lambda: _write_busy(w, value),
        "class": lambda: w.replace(
            "CLASS", V.CLASS_BY_SENSITIVITY.get(value) if value is not None else None
        ),
        "importance": lambda: w.replace(
            "PRIORITY", V.PRIORITY_BY_IMPORTANCE.get(value) if value is not None else None
        ),
        "categories": lambda: w.replace("CATEGORIES", list(value) if value else None),
        "status": lambda: w.replace(
            "STATUS", V.ICAL_BY_TASK_STATUS.get(value) if value is not None else None
        ),
        "percent": lambda: w.replace("PERCENT-COMPLETE", value),
        "completed": lambda: w.replace("COMPLETED", value),
    }
    if key in _SIMPLE:
        w.replace(_SIMPLE[key], value)
    elif key in writers:
        writers[key]()


def _zone_of(named: Mapping[NamedProp, Any]) -> dt.tzinfo | None:
    desc = named.get(V.TZ_DESCRIPTION)
    return resolve_tzid(desc) if isinstance(desc, str) and desc else None


def render_ical(
    message_class: str,
    props: Mapping[int, Any],
    named: Mapping[NamedProp, Any],
    recipients: Sequence[Mapping[int, Any]] = (),
    *,
    uid: str | None = None,
    floating_tz: dt.tzinfo | None = None,
) -> bytes:
    """A new iCalendar object for an item that has no raw source. Times are written in the
    item's zone (PidLidTimeZoneDescription) with its VTIMEZONE, else in UTC."""
    kind = component_name(message_class)
    cal = icalendar.Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    comp = icalendar.Component.from_ical(f"BEGIN:{kind}\r\nEND:{kind}\r\n")
    uid = uid or _uid_of(named) or str(uuid.uuid4())
    comp.add("UID", uid)
    comp.add("DTSTAMP", dt.datetime.now(dt.UTC).replace(microsecond=0))
    w = _Writer(comp, floating_tz or local_zone(), _zone_of(named))
    fields = fields_of(kind, props, named, recipients)
    for key, value in fields.items():
        if value is None or value == ():
            continue
        _write(w, kind, key, value)
    if kind == "VEVENT" and comp.get("DTSTART") is None:
        _start_anyway(w, props, named)
    seq = named.get(V.SEQUENCE)
    if isinstance(seq, int) and kind == "VEVENT":
        comp.add("SEQUENCE", seq)
    cal.add_component(comp)
    if isinstance(fields.get("recur"), Series):
        write_recurrence(cal, comp, fields["recur"], w.floating_tz)
    if kind != "VJOURNAL":
        cal.add_missing_timezones()
    return bytes(cal.to_ical(sorted=False))


def _start_anyway(w: _Writer, props: Mapping[int, Any], named: Mapping[NamedProp, Any]) -> None:
    """An event needs a DTSTART (RFC 5545 §3.6.1; servers refuse one without). An item that
    has no start time gets its end, else the time it was made (else now), with no end: an
    instant, or one day when it is an all-day event."""
    when = (
        _utc(named.get(V.APPT_END))
        or _utc(props.get(tags.CREATION_TIME))
        or dt.datetime.now(dt.UTC).replace(microsecond=0)
    )
    w.time("DTSTART", when, named.get(V.ALL_DAY) is True)
    w.comp.pop("DTEND", None)
    w.comp.pop("DURATION", None)


def _uid_of(named: Mapping[NamedProp, Any]) -> str | None:
    uid = named.get(V.CALENDAR_UID)
    if isinstance(uid, str) and uid:
        return uid
    goid = named.get(V.CLEAN_GLOBAL_OBJECT_ID) or named.get(V.GLOBAL_OBJECT_ID)
    return V.uid_from_global_object_id(goid) if isinstance(goid, bytes) else None


def changed_fields(old: Fields, new: Fields) -> list[str]:
    return [k for k in new if old.get(k) != new.get(k)]


def update_ical(
    raw: bytes,
    message_class: str,
    props: Mapping[int, Any],
    named: Mapping[NamedProp, Any],
    recipients: Sequence[Mapping[int, Any]] = (),
    *,
    floating_tz: dt.tzinfo | None = None,
) -> bytes:
    """`raw` with the mapped properties that differ from the item rewritten in its series
    master; `raw` unchanged when none differ. Raises IcalError when `raw` is broken."""
    floating = floating_tz or local_zone()
    cal = load_calendar(raw)
    master = master_component(cal)
    kind = str(master.name)
    try:
        old = _parsed_fields(read_calendar(cal, floating), kind)
    except V.IcalError:
        raise
    except Exception as exc:
        raise V.IcalError(f"an iCalendar value could not be read: {exc}") from None
    new = fields_of(kind, props, named, recipients)
    changed = changed_fields(old, new)
    if "recur" in changed and new["recur"] is None:
        changed.remove("recur")  # no blob: the source's recurrence stays as it is
    if not changed:
        return raw
    w = _Writer(master, floating, _zone_of(named))
    for key in changed:
        _write(w, kind, key, new[key])
    if "recur" in changed:
        write_recurrence(cal, master, new["recur"] or None, floating)
    seq = master.get("SEQUENCE")
    bumps = ("when", "location", "recur")
    if kind == "VEVENT" and any(k in changed for k in bumps) and seq is not None:
        master.pop("SEQUENCE")
        master.add("SEQUENCE", int(str(seq)) + 1 if str(seq).isdigit() else 1)
    if "when" in changed and w.zone is not None:
        cal.add_missing_timezones()
    return bytes(cal.to_ical(sorted=False))

"""The people of an iCalendar event → MAPI: ORGANIZER as the sender properties and the
first recipient row, each ATTENDEE as a recipient row (To, Cc for optional ones, Bcc for
rooms and resources, with the tracking status of its PARTSTAT)."""

from __future__ import annotations

from typing import Any

import icalendar

from bridge.formats import ical_values as V
from bridge.formats.parsed import ParsedItem
from bridge.model import flags, tags


def _address(value: Any) -> tuple[str, str | None]:
    text = str(value)
    addr = text[7:] if text.lower().startswith("mailto:") else text
    params = getattr(value, "params", {})
    cn = params.get("CN")
    return addr, (str(cn) if cn else None)


def read_people(comp: icalendar.Component, item: ParsedItem) -> None:
    """ORGANIZER and ATTENDEE → the sender properties, recipient rows (the organizer
    first), PidLidAllAttendeesString and the meeting state."""
    p, rows = item.props, item.recipients
    organizer = comp.get("ORGANIZER")
    org_addr = None
    if organizer is not None:
        addr, name = _address(organizer)
        org_addr = addr.lower()
        p[tags.SENT_REPRESENTING_EMAIL_ADDRESS] = p[tags.SENT_REPRESENTING_SMTP_ADDRESS] = addr
        p[tags.SENT_REPRESENTING_ADDRTYPE] = "SMTP"
        p[tags.SENT_REPRESENTING_NAME] = name or addr
        rows.append(_row(addr, name, flags.MAPI_TO, V.RECIP_SENDABLE | V.RECIP_ORGANIZER, 1))
    attendees = comp.get("ATTENDEE")
    if attendees is None:
        return
    for att in attendees if isinstance(attendees, list) else [attendees]:
        addr, name = _address(att)
        if addr.lower() == org_addr:
            continue
        params = att.params
        role = str(params.get("ROLE", "REQ-PARTICIPANT")).upper()
        cutype = str(params.get("CUTYPE", "INDIVIDUAL")).upper()
        if cutype in ("RESOURCE", "ROOM"):
            rtype = flags.MAPI_BCC
        elif role in ("OPT-PARTICIPANT", "NON-PARTICIPANT"):
            rtype = flags.MAPI_CC
        else:
            rtype = flags.MAPI_TO
        track = V.TRACK_BY_PARTSTAT.get(str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(), 0)
        rows.append(_row(addr, name, rtype, V.RECIP_SENDABLE, track))
    if rows:
        item.named[V.STATE_FLAGS] = 1
        names = [str(r.get(tags.DISPLAY_NAME)) for r in rows if r.get(tags.DISPLAY_NAME)]
        item.named[V.ALL_ATTENDEES] = "; ".join(names)


def _row(addr: str, name: str | None, rtype: int, rflags: int, track: int) -> dict[int, Any]:
    return {
        tags.RECIPIENT_TYPE: rtype,
        tags.DISPLAY_NAME: name or addr,
        tags.EMAIL_ADDRESS: addr,
        tags.SMTP_ADDRESS: addr,
        tags.ADDRTYPE: "SMTP",
        tags.RECIPIENT_FLAGS: rflags,
        tags.RECIPIENT_TRACKSTATUS: track,
    }

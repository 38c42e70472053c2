"""REST for calendar and contact items: raw iCalendar / vCard in and out, and occurrences."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
from typing import Any

from bridge.formats.ical_values import APPOINTMENT_RECUR
from bridge.formats.recur_blob import Series
from bridge.formats.recur_blob import encode as encode_recurrence
from bridge.formats.recur_blob_read import decode as decode_recurrence
from bridge.store.calendar_items import item_from_ical
from bridge.store.store import Store
from bridge.sync.dav_content import upload_bytes
from bridge.upstream.dav_base import CALENDAR
from tests.api.helpers import Api, Unchanged
from tests.formats.samples import ALL_DAY, CARD3, GROUP4, JOURNAL, MEETING, SERIES, TODO

ICS = {"Content-Type": "text/calendar"}
VCF = {"Content-Type": "text/vcard"}


async def _post(api: Api, folder: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    doc: dict[str, Any] = await api.post(
        f"/api/v1/folders/{folder}/items", data=body, headers=headers
    )
    return doc


async def test_post_icalendar_keeps_source_and_maps_properties(api: Api) -> None:
    roles = await api.roles()
    item = await _post(api, roles["calendar"], MEETING, ICS)
    props = item["props"]
    assert props["PidTagMessageClass"] == "IPM.Appointment"
    assert props["PidTagSubject"] == "Planning"
    assert props["PidLidLocation"] == "Room 1"
    assert props["PidLidAppointmentStartWhole"] == "2024-07-05T08:00:00Z"
    assert props["PidLidAppointmentEndWhole"] == "2024-07-05T09:30:00Z"
    assert props["PidLidBusyStatus"] == 3
    assert props["PidLidReminderDelta"] == 30
    assert props["PidNameKeywords"] == ["Work", "Important"]
    assert props["PidNameCalendarUid"] == "meeting-1@example.com"
    assert props["PidTagDisplayTo"]
    resp = await api.request("GET", f"/api/v1/items/{item['id']}/source")
    assert resp.status == 200
    assert resp.content_type == "text/calendar"
    assert await resp.read() == MEETING
    rcpts = await api.get(f"/api/v1/items/{item['id']}/recipients")
    assert len(rcpts["recipients"]) == 5


async def test_post_task_note_and_contacts(api: Api) -> None:
    roles = await api.roles()
    task = await _post(api, roles["tasks"], TODO, ICS)
    assert task["props"]["PidTagMessageClass"] == "IPM.Task"
    assert task["props"]["PidLidTaskStatus"] == 1
    note = await _post(api, roles["notes"], JOURNAL, ICS)
    assert note["props"]["PidTagMessageClass"] == "IPM.StickyNote"
    contact = await _post(api, roles["contacts"], CARD3, VCF)
    assert contact["props"]["PidTagMessageClass"] == "IPM.Contact"
    assert contact["props"]["PidTagSurname"] == "Doe"
    assert contact["props"]["PidLidEmail1EmailAddress"] == "john@acme.example"
    resp = await api.request("GET", f"/api/v1/items/{contact['id']}/source")
    assert resp.content_type == "text/vcard"
    assert await resp.read() == CARD3
    group = await _post(
        api, roles["contacts"], GROUP4, {"Content-Type": "text/x-vcard; charset=utf-8"}
    )
    assert group["props"]["PidTagMessageClass"] == "IPM.DistList"


async def test_folder_kind_rules(api: Api, unchanged: Unchanged) -> None:
    roles = await api.roles()
    async with unchanged():
        doc = await api.problem(
            "POST", f"/api/v1/folders/{roles['contacts']}/items", 415, data=MEETING, headers=ICS
        )
        assert "contacts folder" in doc["detail"]
        await api.problem(
            "POST", f"/api/v1/folders/{roles['calendar']}/items", 415, data=CARD3, headers=VCF
        )
        await api.problem(
            "POST", f"/api/v1/folders/{roles['tasks']}/items", 415, data=CARD3, headers=VCF
        )


async def test_broken_bodies_are_422_and_change_nothing(api: Api, unchanged: Unchanged) -> None:
    roles = await api.roles()
    cal = f"/api/v1/folders/{roles['calendar']}/items"
    contacts = f"/api/v1/folders/{roles['contacts']}/items"
    async with unchanged():
        for body in (b"", b"garbage", MEETING[:200], b"\xff\xfe\x00\x01" * 64):
            doc = await api.problem("POST", cal, 422, data=body, headers=ICS)
            assert doc["type"] == "urn:kbridge:problem:unparseable"
            assert doc["detail"]
            await api.problem("POST", contacts, 422, data=body, headers=VCF)


async def test_json_made_items_render_their_source(api: Api) -> None:
    roles = await api.roles()
    event = await api.new_item(
        roles["calendar"],
        {
            "PidTagSubject": "From JSON",
            "PidLidAppointmentStartWhole": "2025-01-02T10:00:00Z",
            "PidLidAppointmentEndWhole": "2025-01-02T11:00:00Z",
            "PidLidTimeZoneDescription": "W. Europe Standard Time",
        },
    )
    resp = await api.request("GET", f"/api/v1/items/{event['id']}/source")
    assert resp.status == 200
    assert resp.content_type == "text/calendar"
    body = await resp.read()
    assert b"SUMMARY:From JSON" in body
    assert b"DTSTART;TZID=Europe/Berlin:20250102T110000" in body
    contact = await api.new_item(
        roles["contacts"], {"PidTagDisplayName": "Json Person", "PidTagSurname": "Person"}
    )
    resp = await api.request("GET", f"/api/v1/items/{contact['id']}/source")
    assert resp.content_type == "text/vcard"
    body = await resp.read()
    assert body.startswith(b"BEGIN:VCARD\r\nVERSION:3.0\r\n")
    assert b"FN:Json Person" in body


async def _occurrences(api: Api, folder: str, start: str, end: str, **extra: str) -> Any:
    query = {"start": start, "end": end, **extra}
    return await api.get(f"/api/v1/folders/{folder}/occurrences", params=query)


async def test_occurrences_expand_series_with_overrides(api: Api) -> None:
    roles = await api.roles()
    cal = roles["calendar"]
    series = await _post(api, cal, SERIES, ICS)
    single = await _post(api, cal, MEETING, ICS)
    all_day = await _post(api, cal, ALL_DAY, ICS)
    doc = await _occurrences(api, cal, "2024-01-01T00:00:00Z", "2024-01-08T00:00:00Z")
    assert doc["truncated"] is False
    occ = doc["occurrences"]
    assert [o["start"] for o in occ] == [
        "2024-01-01T09:00:00Z",
        "2024-01-02T09:00:00Z",
        "2024-01-04T14:00:00Z",
        "2024-01-06T09:00:00Z",
        "2024-01-07T09:00:00Z",
    ]
    assert {o["item_id"] for o in occ} == {series["id"]}
    moved = occ[2]
    assert moved["subject"] == "Moved"
    assert moved["location"] == "Elsewhere"
    assert moved["recurrence_id"] == "2024-01-04T09:00:00Z"
    assert moved["end"] == "2024-01-04T15:00:00Z"
    assert occ[0]["busy_status"] == 2
    assert occ[0]["all_day"] is False
    # a series is found by its recurrence even where its first instance is long over
    later = await _occurrences(api, cal, "2024-01-06T00:00:00Z", "2024-01-08T00:00:00Z")
    assert [o["start"] for o in later["occurrences"]] == [
        "2024-01-06T09:00:00Z",
        "2024-01-07T09:00:00Z",
    ]
    doc = await _occurrences(api, cal, "2024-03-01T00:00:00+01:00", "2024-08-01T00:00:00Z")
    ids = [o["item_id"] for o in doc["occurrences"]]
    assert ids == [all_day["id"], single["id"]]
    trip = doc["occurrences"][0]
    assert trip["all_day"] is True
    assert trip["busy_status"] == 0
    assert trip["recurrence_id"] is None
    assert doc["occurrences"][1]["busy_status"] == 3


async def test_occurrences_cap_is_reported(api: Api) -> None:
    roles = await api.roles()
    cal = roles["calendar"]
    await _post(api, cal, SERIES.replace(b"COUNT=10", b"COUNT=50"), ICS)
    doc = await _occurrences(api, cal, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", limit="7")
    assert len(doc["occurrences"]) == 7
    assert doc["truncated"] is True
    assert doc["limit"] == 7
    full = await _occurrences(api, cal, "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z")
    assert len(full["occurrences"]) == 48
    assert full["truncated"] is False


async def test_occurrences_of_json_items(api: Api) -> None:
    roles = await api.roles()
    cal = roles["calendar"]
    item = await api.new_item(
        cal,
        {
            "PidTagSubject": "Plain",
            "PidLidAppointmentStartWhole": "2025-05-05T10:00:00Z",
            "PidLidAppointmentEndWhole": "2025-05-05T10:30:00Z",
            "PidLidLocation": "Desk",
            "PidLidBusyStatus": 1,
        },
    )
    doc = await _occurrences(api, cal, "2025-05-05T00:00:00Z", "2025-05-06T00:00:00Z")
    (occ,) = doc["occurrences"]
    assert occ == {
        "item_id": item["id"],
        "start": "2025-05-05T10:00:00Z",
        "end": "2025-05-05T10:30:00Z",
        "recurrence_id": None,
        "subject": "Plain",
        "location": "Desk",
        "all_day": False,
        "busy_status": 1,
    }
    empty = await _occurrences(api, cal, "2025-05-06T00:00:00Z", "2025-05-07T00:00:00Z")
    assert empty["occurrences"] == []


async def test_occurrences_bad_parameters(api: Api) -> None:
    roles = await api.roles()
    path = f"/api/v1/folders/{roles['calendar']}/occurrences"
    for params in (
        {},
        {"start": "2024-01-01T00:00:00Z"},
        {"start": "yesterday", "end": "2024-01-02T00:00:00Z"},
        {"start": "2024-01-01T00:00:00", "end": "2024-01-02T00:00:00Z"},
        {"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
        {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z", "limit": "0"},
        {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z", "limit": "10001"},
    ):
        await api.problem("GET", path, 400, params=params)


async def test_occurrences_need_folder_access(api: Api, make_token: Any, store: Store) -> None:
    roles = await api.roles()
    inbox = store.ids.parse("folder", roles["inbox"])
    inbox_only = api.as_token(await make_token("read", folders=[inbox]))
    path = f"/api/v1/folders/{roles['calendar']}/occurrences"
    params = {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"}
    await inbox_only.problem("GET", path, 403, params=params)
    path = f"/api/v1/folders/{roles['inbox']}/occurrences"
    doc = await inbox_only.get(path, params=params)
    assert doc["occurrences"] == []


async def test_contact_with_a_five_megabyte_photo(api: Api) -> None:
    roles = await api.roles()
    photo = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    b64 = base64.b64encode(photo).decode()
    folded = "\r\n ".join(b64[i : i + 74] for i in range(0, len(b64), 74))
    raw = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Pictured\r\nN:Pictured;;;;\r\n"
        f"PHOTO;ENCODING=b;TYPE=JPEG:{folded}\r\nUID:pic-1\r\nEND:VCARD\r\n"
    ).encode()
    item: dict[str, Any] = await api.post(
        f"/api/v1/folders/{roles['contacts']}/items", data=io.BytesIO(raw), headers=VCF
    )
    # the photo is a hidden attachment: the contact does not show a paper clip
    assert item["props"]["PidTagHasAttachments"] is False
    atts = await api.get(f"/api/v1/items/{item['id']}/attachments")
    (att,) = atts["attachments"]
    assert att["props"]["PidTagAttachmentContactPhoto"] is True
    assert att["props"]["PidTagAttachSize"] >= len(photo)
    num = att["props"]["PidTagAttachNumber"]
    resp = await api.request("GET", f"/api/v1/items/{item['id']}/attachments/{num}/data")
    assert await resp.read() == photo
    resp = await api.request("GET", f"/api/v1/items/{item['id']}/source")
    assert await resp.read() == raw


async def test_recurrence_blob_is_served_and_a_patched_one_reaches_the_upload(
    api: Api, store: Store, unchanged: Unchanged
) -> None:
    roles = await api.roles()
    series = await _post(api, roles["calendar"], SERIES, ICS)
    blob = base64.b64decode(series["props"]["PidLidAppointmentRecur"])
    old = decode_recurrence(blob)
    assert (old.freq, old.count, len(old.overrides)) == ("DAILY", 10, 1)
    path = f"/api/v1/items/{series['id']}"
    async with unchanged():
        for bad in (blob[:30], b"\x04\x30\x04\x30" + b"\xff" * 40):
            body = {"props": {"PidLidAppointmentRecur": base64.b64encode(bad).decode()}}
            doc = await api.problem("PATCH", path, 400, json=body)
            assert doc["type"] == "urn:kbridge:problem:invalid-property"
            assert "PidLidAppointmentRecur" in doc["detail"]
    new = dataclasses.replace(old, count=4, deleted=(), overrides=())
    body = {"props": {"PidLidAppointmentRecur": base64.b64encode(encode_recurrence(new)).decode()}}
    await api.patch(path, json=body)
    data = await upload_bytes(store, store.ids.parse("item", series["id"]), CALENDAR, "series-1")
    assert b"RRULE:FREQ=DAILY;COUNT=4" in data
    assert b"EXDATE" not in data and b"RECURRENCE-ID" not in data
    assert decode_recurrence(item_from_ical(data).named[APPOINTMENT_RECUR]) == new


async def test_json_item_with_a_recurrence_blob_renders_its_rule(
    api: Api, unchanged: Unchanged
) -> None:
    roles = await api.roles()
    weekly = Series(
        freq="WEEKLY",
        start=dt.datetime(2025, 1, 6, 10, 0),
        duration=60,
        byday=("MO", "WE"),
        count=4,
        deleted=(dt.date(2025, 1, 8),),
    )
    props = {
        "PidTagSubject": "Standup",
        "PidLidAppointmentStartWhole": "2025-01-06T09:00:00Z",
        "PidLidAppointmentEndWhole": "2025-01-06T10:00:00Z",
        "PidLidTimeZoneDescription": "W. Europe Standard Time",
        "PidLidRecurring": True,
        "PidLidAppointmentRecur": base64.b64encode(encode_recurrence(weekly)).decode(),
    }
    async with unchanged():
        bad = {**props, "PidLidAppointmentRecur": base64.b64encode(b"\x04\x30").decode()}
        path = f"/api/v1/folders/{roles['calendar']}/items"
        await api.problem("POST", path, 400, json={"props": bad})
    event = await api.new_item(roles["calendar"], props)
    resp = await api.request("GET", f"/api/v1/items/{event['id']}/source")
    body = await resp.read()
    assert b"RRULE:FREQ=WEEKLY;COUNT=4;BYDAY=MO,WE" in body
    assert b"EXDATE;TZID=Europe/Berlin:20250108T100000" in body
    assert decode_recurrence(item_from_ical(body).named[APPOINTMENT_RECUR]) == weekly

"""Items: create (JSON and raw), read with columns, set/delete properties, move, copy, delete,
listings, recipients, raw source, attachments and submit."""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

from bridge.model import flags
from tests.api.helpers import Api, MakeToken

RAW_MESSAGE = (
    b"Return-Path: <ann@example.com>\r\n"
    b"From: Ann Example <ann@example.com>\r\n"
    b"To: Bob Example <bob@example.com>\r\n"
    b"Subject: Raw hello\r\n"
    b"Date: Wed, 01 May 2024 09:30:00 +0000\r\n"
    b"Message-ID: <raw-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"X-Odd-Header:   kept   exactly\t\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hello Bob, gr\xc3\xbc\xc3\x9fe.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b'Content-Disposition: attachment; filename="data.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAwQFBgcICQ==\r\n"
    b"--b1--\r\n"
)


async def folder_props(api: Api, folder_id: str) -> dict[str, Any]:
    props: dict[str, Any] = (await api.get(f"/api/v1/folders/{folder_id}"))["props"]
    return props


async def test_create_with_json_props_in_every_key_form(api: Api) -> None:
    roles = await api.roles()
    resp = await api.request(
        "POST",
        f"/api/v1/folders/{roles['drafts']}/items",
        json={
            "props": {
                "PidTagSubject": "Hello",
                "0x1000001F": "Body text",
                "PidLidBusyStatus": 2,
                "{PSETID_Common}:0x8503": True,
                "{PS_PUBLIC_STRINGS}:X-Project": "apollo",
                "{PSETID_Common}:0x85F0": 7,
                "PidTagImportance": 2,
                "PidTagMessageDeliveryTime": "2024-05-01T11:30:00+02:00",
            }
        },
    )
    assert resp.status == 201, await resp.text()
    item = await resp.json()
    assert resp.headers["Location"] == f"/api/v1/items/{item['id']}"
    assert item["folder_id"] == roles["drafts"]
    props = item["props"]
    assert props["PidTagSubject"] == "Hello"
    assert props["PidTagBody"] == "Body text"
    assert props["PidLidBusyStatus"] == 2
    assert props["PidLidReminderSet"] is True
    assert props["{PS_PUBLIC_STRINGS}:X-Project"] == "apollo"
    assert props["{PSETID_Common}:0x85F0"] == 7
    assert props["PidTagImportance"] == 2
    assert props["PidTagMessageDeliveryTime"] == "2024-05-01T09:30:00Z"
    assert props["PidTagMessageClass"] == "IPM.Note"
    assert props["PidTagRead"] is False
    assert props["PidTagMessageFlags"] & flags.MSGFLAG_UNSENT
    for computed in ("PidTagEntryId", "PidTagParentEntryId", "PidTagSourceKey"):
        assert computed in props
    assert await api.get(f"/api/v1/items/{item['id']}") == item


async def test_message_class_follows_the_folder(api: Api) -> None:
    roles = await api.roles()
    expected = {
        "calendar": "IPM.Appointment",
        "contacts": "IPM.Contact",
        "tasks": "IPM.Task",
        "notes": "IPM.StickyNote",
        "journal": "IPM.Activity",
        "inbox": "IPM.Note",
    }
    for role, message_class in expected.items():
        item = await api.new_item(roles[role], {"PidTagSubject": role})
        assert item["props"]["PidTagMessageClass"] == message_class
    given = await api.new_item(roles["inbox"], {"PidTagMessageClass": "IPM.Note.Custom"})
    assert given["props"]["PidTagMessageClass"] == "IPM.Note.Custom"


async def test_get_with_columns(api: Api) -> None:
    roles = await api.roles()
    item = await api.new_item(
        roles["inbox"],
        {"PidTagSubject": "Cols", "PidLidBusyStatus": 1, "PidTagBody": "not asked for"},
    )
    got = await api.get(
        f"/api/v1/items/{item['id']}",
        params={"columns": "PidTagSubject,PidLidBusyStatus, {PSETID_Common}:0x8503,0x0E07001F"},
    )
    # columns the item does not have are left out
    assert got["props"] == {"PidTagSubject": "Cols", "PidLidBusyStatus": 1}
    got = await api.get(f"/api/v1/items/{item['id']}", params={"columns": "0x0037001F"})
    assert got["props"] == {"PidTagSubject": "Cols"}


async def test_patch_sets_and_deletes_properties(api: Api) -> None:
    roles = await api.roles()
    item = await api.new_item(
        roles["inbox"], {"PidTagSubject": "Before", "PidTagBody": "text", "PidLidBusyStatus": 2}
    )
    path = f"/api/v1/items/{item['id']}"
    out = await api.patch(
        path,
        json={
            "props": {"PidTagSubject": "After", "{PSETID_Appointment}:0x8205": 3},
            "delete": ["PidTagBody"],
        },
    )
    assert out["props"]["PidTagSubject"] == "After"
    assert out["props"]["PidLidBusyStatus"] == 3
    assert "PidTagBody" not in out["props"]
    assert set(out["changed"]) == {"PidTagSubject", "PidLidBusyStatus", "PidTagBody"}
    assert out["props"]["PidTagChangeNumber"] > item["props"]["PidTagChangeNumber"]
    # deleting by the named key form
    out = await api.patch(path, json={"delete": ["{PSETID_Appointment}:0x8205"]})
    assert "PidLidBusyStatus" not in out["props"]
    # setting a value to what it is changes nothing
    again = await api.patch(path, json={"props": {"PidTagSubject": "After"}})
    assert again["changed"] == []
    assert again["props"]["PidTagChangeNumber"] == out["props"]["PidTagChangeNumber"]


async def test_read_flag_changes_unread_count(api: Api) -> None:
    roles = await api.roles()
    folder = await api.new_folder(roles["inbox"], "Unread")
    first = await api.new_item(folder["id"], {"PidTagSubject": "1"})
    await api.new_item(folder["id"], {"PidTagSubject": "2"})
    assert (await folder_props(api, folder["id"]))["PidTagContentUnreadCount"] == 2
    out = await api.patch(f"/api/v1/items/{first['id']}", json={"props": {"PidTagRead": True}})
    assert out["props"]["PidTagRead"] is True
    assert out["props"]["PidTagMessageFlags"] & flags.MSGFLAG_READ
    assert {"PidTagRead", "PidTagMessageFlags"} <= set(out["changed"])
    assert (await folder_props(api, folder["id"]))["PidTagContentUnreadCount"] == 1
    # marking it read again changes nothing
    out = await api.patch(f"/api/v1/items/{first['id']}", json={"props": {"PidTagRead": True}})
    assert out["changed"] == []
    assert (await folder_props(api, folder["id"]))["PidTagContentUnreadCount"] == 1
    await api.patch(f"/api/v1/items/{first['id']}", json={"props": {"PidTagRead": False}})
    assert (await folder_props(api, folder["id"]))["PidTagContentUnreadCount"] == 2


async def test_move_copy_delete(api: Api) -> None:
    roles = await api.roles()
    src = await api.new_folder(roles["inbox"], "Src")
    dst = await api.new_folder(roles["inbox"], "Dst")
    item = await api.new_item(src["id"], {"PidTagSubject": "Traveller"})
    iid = item["id"]

    moved = await api.post(f"/api/v1/items/{iid}/move", 200, json={"folder_id": dst["id"]})
    assert moved["id"] == iid
    assert moved["folder_id"] == dst["id"]
    assert (await folder_props(api, src["id"]))["PidTagContentCount"] == 0
    assert (await folder_props(api, dst["id"]))["PidTagContentCount"] == 1

    copy = await api.post(f"/api/v1/items/{iid}/copy", json={"folder_id": src["id"]})
    assert copy["id"] != iid
    assert copy["folder_id"] == src["id"]
    assert copy["props"]["PidTagSubject"] == "Traveller"
    assert copy["props"]["PidTagEntryId"] != moved["props"]["PidTagEntryId"]
    assert (await api.get(f"/api/v1/items/{iid}"))["folder_id"] == dst["id"]
    assert (await folder_props(api, src["id"]))["PidTagContentCount"] == 1

    # soft delete: into Deleted Items, same id; deleting it there removes it
    await api.delete(f"/api/v1/items/{iid}")
    assert (await api.get(f"/api/v1/items/{iid}"))["folder_id"] == roles["deleted"]
    assert (await folder_props(api, dst["id"]))["PidTagContentCount"] == 0
    await api.delete(f"/api/v1/items/{iid}")
    await api.problem("GET", f"/api/v1/items/{iid}", 404)

    # hard delete from anywhere
    await api.delete(f"/api/v1/items/{copy['id']}", params={"hard": "true"})
    await api.problem("GET", f"/api/v1/items/{copy['id']}", 404)
    assert (await folder_props(api, src["id"]))["PidTagContentCount"] == 0
    await api.problem("DELETE", f"/api/v1/items/{copy['id']}", 404)


async def test_listing_sort_offset_limit(api: Api) -> None:
    roles = await api.roles()
    folder = await api.new_folder(roles["inbox"], "Sorted")
    subjects = ["charlie", "Alpha", "echo", "bravo", "delta"]
    busy = [3, 1, 0, 4, 2]
    ids = []
    for subject, status in zip(subjects, busy, strict=True):
        item = await api.new_item(
            folder["id"], {"PidTagSubject": subject, "PidLidBusyStatus": status}
        )
        ids.append(item["id"])
    path = f"/api/v1/folders/{folder['id']}/items"

    async def listing(**params: str) -> tuple[list[str], dict[str, Any]]:
        doc = await api.get(path, params=params)
        return [i["props"]["PidTagSubject"] for i in doc["items"]], doc

    names, doc = await listing()
    assert names == subjects  # creation order by default
    assert doc["total"] == 5 and doc["offset"] == 0 and doc["limit"] == 50
    ascending = sorted(subjects, key=str.lower)
    assert (await listing(sort="PidTagSubject"))[0] == ascending
    assert (await listing(sort="PidTagSubject:asc"))[0] == ascending
    assert (await listing(sort="-PidTagSubject"))[0] == ascending[::-1]
    assert (await listing(sort="PidTagSubject:desc"))[0] == ascending[::-1]
    by_busy = [s for _, s in sorted(zip(busy, subjects, strict=True))]
    assert (await listing(sort="PidLidBusyStatus"))[0] == by_busy
    assert (await listing(sort="-PidLidBusyStatus"))[0] == by_busy[::-1]

    names, doc = await listing(sort="PidTagSubject", offset="1", limit="2")
    assert names == ascending[1:3]
    assert (doc["total"], doc["offset"], doc["limit"]) == (5, 1, 2)
    names, doc = await listing(sort="-PidTagSubject", offset="3", limit="10")
    assert names == ascending[::-1][3:]
    assert doc["total"] == 5
    names, doc = await listing(offset="5")
    assert names == [] and doc["total"] == 5

    doc = await api.get(path, params={"columns": "PidTagSubject", "limit": "1"})
    assert doc["items"] == [
        {"id": ids[0], "folder_id": folder["id"], "props": {"PidTagSubject": "charlie"}}
    ]

    # associated contents are listed apart
    await api.new_item(folder["id"], {"PidTagSubject": "fai"}, associated=True)
    assert (await listing())[1]["total"] == 5
    names, doc = await listing(associated="true")
    assert names == ["fai"] and doc["total"] == 1


async def test_recipients_put_and_get(api: Api) -> None:
    roles = await api.roles()
    item = await api.new_item(roles["drafts"], {"PidTagSubject": "To many"})
    path = f"/api/v1/items/{item['id']}/recipients"
    assert await api.get(path) == {"recipients": []}
    out = await api.put(
        path,
        json={
            "recipients": [
                {"props": {"PidTagDisplayName": "Ann", "PidTagSmtpAddress": "ann@example.com"}},
                {
                    "PidTagDisplayName": "Bob",
                    "PidTagEmailAddress": "bob@example.com",
                    "PidTagRecipientType": flags.MAPI_CC,
                },
                {"PidTagSmtpAddress": "cy@example.com", "PidTagRecipientType": flags.MAPI_BCC},
                {"PidTagDisplayName": "Dee", "PidTagSmtpAddress": "dee@example.com"},
            ]
        },
    )
    rows = out["recipients"]
    assert await api.get(path) == out
    assert [r["props"]["PidTagRowId"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["props"]["PidTagRecipientType"] == flags.MAPI_TO
    assert rows[0]["props"]["PidTagAddressType"] == "SMTP"
    assert rows[1]["props"]["PidTagEmailAddress"] == "bob@example.com"
    props = (await api.get(f"/api/v1/items/{item['id']}"))["props"]
    assert props["PidTagDisplayTo"] == "Ann; Dee"
    assert props["PidTagDisplayCc"] == "Bob"
    assert props["PidTagDisplayBcc"] == "cy@example.com"

    # a bare list replaces the whole table
    out = await api.put(path, json=[{"PidTagDisplayName": "Eve", "PidTagSmtpAddress": "e@x.org"}])
    assert [r["props"]["PidTagDisplayName"] for r in out["recipients"]] == ["Eve"]
    props = (await api.get(f"/api/v1/items/{item['id']}"))["props"]
    assert props["PidTagDisplayTo"] == "Eve"
    assert props["PidTagDisplayCc"] == ""
    assert props["PidTagDisplayBcc"] == ""

    # recipients given at creation
    created = await api.new_item(
        roles["drafts"],
        {"PidTagSubject": "With"},
        recipients=[{"PidTagDisplayName": "Fay", "PidTagSmtpAddress": "fay@example.com"}],
    )
    assert created["props"]["PidTagDisplayTo"] == "Fay"
    got = await api.get(f"/api/v1/items/{created['id']}/recipients")
    assert got["recipients"][0]["props"]["PidTagSmtpAddress"] == "fay@example.com"


async def test_raw_message_source_is_byte_exact(api: Api) -> None:
    roles = await api.roles()
    inbox = roles["inbox"]
    before = (await folder_props(api, inbox))["PidTagContentUnreadCount"]
    resp = await api.request(
        "POST",
        f"/api/v1/folders/{inbox}/items",
        data=RAW_MESSAGE,
        headers={"Content-Type": "message/rfc822"},
    )
    assert resp.status == 201, await resp.text()
    item = await resp.json()
    assert item["props"]["PidTagSubject"] == "Raw hello"
    assert item["props"]["PidTagMessageClass"].startswith("IPM.Note")
    assert item["props"]["PidTagMessageSize"] == len(RAW_MESSAGE)
    assert (await folder_props(api, inbox))["PidTagContentUnreadCount"] == before + 1

    source = await api.request("GET", f"/api/v1/items/{item['id']}/source")
    assert source.status == 200
    assert source.content_type == "message/rfc822"
    assert await source.read() == RAW_MESSAGE

    # ?read=true stores it as read; a copy keeps the source
    resp = await api.request(
        "POST",
        f"/api/v1/folders/{inbox}/items",
        params={"read": "true"},
        data=RAW_MESSAGE,
        headers={"Content-Type": "message/rfc822"},
    )
    read_item = await resp.json()
    assert read_item["props"]["PidTagRead"] is True
    copy = await api.post(f"/api/v1/items/{read_item['id']}/copy", json={"folder_id": inbox})
    source = await api.request("GET", f"/api/v1/items/{copy['id']}/source")
    assert await source.read() == RAW_MESSAGE


async def test_large_bodies_are_read_whole(api: Api) -> None:
    roles = await api.roles()
    path = f"/api/v1/folders/{roles['inbox']}/items"
    body = "".join(chr(0x20 + n % 0x5F) for n in range(2_500_000))
    data = json.dumps({"props": {"PidTagBody": body}}).encode()
    resp = await api.request(
        "POST", path, data=io.BytesIO(data), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 201, (await resp.read())[:300]
    item = await resp.json()
    assert item["props"]["PidTagBody"] == body

    raw = RAW_MESSAGE.replace(b"AAECAwQFBgcICQ==\r\n", base64.encodebytes(os.urandom(2_000_000)))
    resp = await api.request(
        "POST", path, data=io.BytesIO(raw), headers={"Content-Type": "message/rfc822"}
    )
    assert resp.status == 201, (await resp.read())[:300]
    item = await resp.json()
    assert item["props"]["PidTagMessageSize"] == len(raw)
    source = await api.request("GET", f"/api/v1/items/{item['id']}/source")
    assert await source.read() == raw


async def test_source_of_json_items(api: Api) -> None:
    roles = await api.roles()
    mail = await api.new_item(roles["drafts"], {"PidTagSubject": "Rendered", "PidTagBody": "Hi"})
    resp = await api.request("GET", f"/api/v1/items/{mail['id']}/source")
    assert resp.status == 200
    assert resp.content_type == "message/rfc822"
    assert b"Rendered" in await resp.read()
    appt = await api.new_item(roles["calendar"], {"PidTagSubject": "Meeting"})
    resp = await api.request("GET", f"/api/v1/items/{appt['id']}/source")
    assert resp.status == 200
    assert resp.content_type == "text/calendar"
    assert b"SUMMARY:Meeting" in await resp.read()
    entry = await api.new_item(roles["journal"], {"PidTagSubject": "Call"})
    doc = await api.problem("GET", f"/api/v1/items/{entry['id']}/source", 404)
    assert doc["type"] == "urn:kbridge:problem:no-source"


async def test_attachments_add_list_download_delete(api: Api) -> None:
    roles = await api.roles()
    item = await api.new_item(roles["drafts"], {"PidTagSubject": "Files"})
    base = f"/api/v1/items/{item['id']}/attachments"
    assert await api.get(base) == {"attachments": []}

    small = b"hello attachment\x00\xff"
    first = await api.post(
        base,
        json={
            "props": {
                "PidTagAttachLongFilename": "hello.txt",
                "PidTagAttachMimeTag": "text/plain",
                "PidTagAttachDataBinary": base64.b64encode(small).decode(),
            }
        },
    )
    assert first["props"]["PidTagAttachNumber"] == 0
    assert first["props"]["PidTagAttachSize"] == len(small)
    assert first["props"]["PidTagAttachMethod"] == flags.ATTACH_BY_VALUE
    assert "PidTagAttachDataBinary" not in first["props"]

    big = os.urandom(3 * 1024 * 1024 + 12345)  # crosses many 256 KiB chunk boundaries
    resp = await api.request(
        "POST",
        base,
        params={"filename": "random data.bin"},
        data=io.BytesIO(big),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status == 201, await resp.text()
    second = await resp.json()
    assert second["props"]["PidTagAttachNumber"] == 1
    assert second["props"]["PidTagAttachSize"] == len(big)
    assert second["props"]["PidTagAttachLongFilename"] == "random data.bin"
    assert second["props"]["PidTagAttachExtension"] == ".bin"

    listed = await api.get(base)
    assert [a["props"]["PidTagAttachNumber"] for a in listed["attachments"]] == [0, 1]
    assert await api.get(f"{base}/1") == second
    props = (await api.get(f"/api/v1/items/{item['id']}"))["props"]
    assert props["PidTagHasAttachments"] is True
    assert props["PidTagMessageFlags"] & flags.MSGFLAG_HASATTACH

    resp = await api.request("GET", f"{base}/1/data")
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(len(big))
    assert resp.content_type == "application/octet-stream"
    assert 'filename="random data.bin"' in resp.headers["Content-Disposition"]
    assert await resp.read() == big
    resp = await api.request("GET", f"{base}/0/data")
    assert resp.content_type == "text/plain"
    assert await resp.read() == small

    # a copy of the item carries copies of the attachments
    copy = await api.post(f"/api/v1/items/{item['id']}/copy", json={"folder_id": roles["inbox"]})
    resp = await api.request("GET", f"/api/v1/items/{copy['id']}/attachments/1/data")
    assert await resp.read() == big

    await api.delete(f"{base}/0")
    listed = await api.get(base)
    assert [a["props"]["PidTagAttachNumber"] for a in listed["attachments"]] == [1]
    await api.problem("GET", f"{base}/0", 404)
    await api.problem("GET", f"{base}/0/data", 404)
    await api.problem("DELETE", f"{base}/0", 404)
    await api.delete(f"{base}/1")
    props = (await api.get(f"/api/v1/items/{item['id']}"))["props"]
    assert props["PidTagHasAttachments"] is False
    assert not props["PidTagMessageFlags"] & flags.MSGFLAG_HASATTACH


async def test_submit_moves_draft_to_outbox(
    api: Api, make_token: MakeToken, unchanged: Any
) -> None:
    roles = await api.roles()
    draft = await api.new_item(
        roles["drafts"],
        {"PidTagSubject": "Send me"},
        recipients=[{"PidTagDisplayName": "Ann", "PidTagSmtpAddress": "ann@example.com"}],
    )
    body = {"item_id": draft["id"]}

    writer = api.as_token(await make_token("write"))
    async with unchanged(writer):
        doc = await writer.problem("POST", "/api/v1/submit", 403, json=body)
        assert doc["type"] == "urn:kbridge:problem:insufficient-scope"

    sender = api.as_token(await make_token("send"))
    resp = await sender.request("POST", "/api/v1/submit", json=body)
    assert resp.status == 202, await resp.text()
    out = await resp.json()
    assert out["id"] == draft["id"]
    assert out["state"] == "queued"
    assert out["folder_id"] == roles["outbox"]
    assert out["props"]["PidTagMessageFlags"] & flags.MSGFLAG_SUBMITTED
    assert (await api.get(f"/api/v1/items/{draft['id']}"))["folder_id"] == roles["outbox"]
    # once queued it cannot be queued again
    await sender.problem("POST", "/api/v1/submit", 409, json=body)

    # no recipients, or not in Drafts/Outbox: refused, nothing changes
    lonely = await api.new_item(roles["drafts"], {"PidTagSubject": "Nobody"})
    elsewhere = await api.new_item(
        roles["inbox"],
        {"PidTagSubject": "Inbox"},
        recipients=[{"PidTagSmtpAddress": "ann@example.com"}],
    )
    async with unchanged(sender):
        await sender.problem("POST", "/api/v1/submit", 400, json={"item_id": lonely["id"]})
        await sender.problem("POST", "/api/v1/submit", 409, json={"item_id": elsewhere["id"]})
        await sender.problem("POST", "/api/v1/submit", 404, json={"item_id": "m999999"})
        await sender.problem("POST", "/api/v1/submit", 400, json={"item": draft["id"]})

"""The newcomer's path, end to end through the command line: a YAML file that points at a
real IMAP + SMTP server (Dovecot, aiosmtpd) and a real CalDAV/CardDAV server (Radicale),
`kbridge serve`, the mailbox through the REST API; offline changes of several kinds; back
online, the servers show exactly those changes, and changes made by another client appear.

The submission server runs in this test's event loop, so every blocking call (the bridge's
HTTP API, the IMAP client) goes through a thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_dav_sync import Other, ical, vevent
from tests.servers import dovecot as dv
from tests.servers import radicale as rad
from tests.servers import submission
from tests.system.conftest import Server, start_server


@pytest.fixture(scope="module")
def dovecot() -> Iterator[dv.Dovecot]:
    server = dv.start(dv.FULL)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def radicale() -> Iterator[rad.Radicale]:
    server = rad.start()
    yield server
    server.stop()


@pytest.fixture
async def smtpd(dovecot: dv.Dovecot) -> AsyncIterator[submission.Submission]:
    server = await submission.start(dovecot)
    yield server
    await server.close()


CONFIG = """\
upstream:
  preset: generic
  username: {user}
  password: {password}
  imap: {{host: 127.0.0.1, port: {imap}, tls: none}}
  smtp: {{host: 127.0.0.1, port: {smtp}, tls: none}}
  caldav: {{url: "{dav}", username: {dav_user}, password: {dav_password}}}
  carddav: {{url: "{dav}", username: {dav_user}, password: {dav_password}}}
sync:
  interval: 3600
"""


async def call(srv: Server, method: str, path: str, body: Any = None) -> Any:
    status, doc = await asyncio.to_thread(srv.request, method, path, body)
    assert status < 400, (method, path, status, doc)
    return doc


async def settled(srv: Server, seconds: float = 30.0) -> dict[str, Any]:
    """The status once both upstreams are in step and nothing waits to go up."""
    deadline = time.monotonic() + seconds
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = await call(srv, "GET", "/api/v1/sync/status")
        if (
            st["state"] == "online"
            and st["journal_pending"] == 0
            and not (st.get("outbox") or {}).get("queued")
            and all(u["state"] == "online" for u in st["upstreams"].values())
        ):
            return st
        await asyncio.sleep(0.1)
    raise AssertionError(f"not settled: {st}")


async def items(srv: Server, folder: str) -> dict[str, dict[str, Any]]:
    doc = await call(srv, "GET", f"/api/v1/folders/{folder}/items?limit=100")
    return {str(i["props"].get("PidTagSubject")): i for i in doc["items"]}


def flags_of(server: dv.Dovecot, user: str, password: str, mailbox: str) -> dict[str, str]:
    """Subject → flags of each message in a mailbox, as another IMAP client sees them."""
    m = server.client(user, password)
    m.select(mailbox)
    _, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    m.logout()
    out = {}
    for part in data:
        if isinstance(part, tuple):
            subject = part[1].decode().split(":", 1)[1].strip()
            out[subject] = part[0].decode()
    return out


async def test_a_newcomer_works_offline_and_the_servers_follow(
    dovecot: dv.Dovecot, radicale: rad.Radicale, smtpd: submission.Submission, tmp_path: Path
) -> None:
    user, password = dovecot.add_user()
    m = dovecot.client(user, password)
    dv.append(m, "INBOX", dv.message("welcome"))
    dv.append(m, "INBOX", dv.message("old news"))
    m.logout()
    dav_user, dav_password = radicale.add_user()
    other = Other(radicale, dav_user, dav_password)
    try:
        await other.mkcalendar("calendar", "Calendar", "VEVENT")
        await other.mkaddressbook("contacts", "Contacts")
        await other.put("calendar", "kickoff.ics", ical(vevent("kickoff", "Kickoff")))
        config = tmp_path / "bridge.yaml"
        config.write_text(
            CONFIG.format(
                user=user,
                password=password,
                imap=dovecot.imap_port,
                smtp=smtpd.port,
                dav=radicale.url,
                dav_user=dav_user,
                dav_password=dav_password,
            )
        )
        srv = await asyncio.to_thread(start_server, tmp_path / "data", "--config", str(config))
        try:
            await newcomer_session(srv, dovecot, smtpd, user, password, other)
        finally:
            await asyncio.to_thread(srv.stop)
    finally:
        await other.close()


async def newcomer_session(
    srv: Server,
    dovecot: dv.Dovecot,
    smtpd: submission.Submission,
    user: str,
    password: str,
    other: Other,
) -> None:
    await settled(srv)
    roles = (await call(srv, "GET", "/api/v1/store"))["default_folders"]
    inbox = await items(srv, roles["inbox"])
    assert set(inbox) == {"welcome", "old news"}
    assert "Kickoff" in await items(srv, roles["calendar"])

    # offline: read, flag, delete, file, write and send, plan a meeting
    await call(srv, "POST", "/api/v1/sync/offline", {"offline": True})
    await call(
        srv,
        "PATCH",
        f"/api/v1/items/{inbox['welcome']['id']}",
        {"props": {"PidTagMessageFlags": 1, "PidTagFlagStatus": 2}},
    )
    archive = await call(
        srv, "POST", "/api/v1/folders", {"name": "Archive", "parent_id": roles["ipm_subtree"]}
    )
    await call(
        srv, "POST", f"/api/v1/items/{inbox['old news']['id']}/move", {"folder_id": archive["id"]}
    )
    draft = await call(
        srv,
        "POST",
        f"/api/v1/folders/{roles['drafts']}/items",
        {
            "props": {
                "PidTagSubject": "written offline",
                "PidTagBody": "hello\r\n",
                # the login is not an address here, so the sender is given
                "PidTagSentRepresentingSmtpAddress": f"{user}@localhost",
            },
            "recipients": [{"PidTagSmtpAddress": f"{user}@localhost"}],
        },
    )
    await call(srv, "POST", "/api/v1/submit", {"item_id": draft["id"]})
    await call(
        srv,
        "POST",
        f"/api/v1/folders/{roles['calendar']}/items",
        {
            "props": {
                "PidTagSubject": "Planned offline",
                "PidLidAppointmentStartWhole": "2030-01-02T10:00:00Z",
                "PidLidAppointmentEndWhole": "2030-01-02T11:00:00Z",
            }
        },
    )
    await call(
        srv,
        "POST",
        f"/api/v1/folders/{roles['contacts']}/items",
        {"props": {"PidTagDisplayName": "Offline Person", "PidTagSurname": "Person"}},
    )
    status = await call(srv, "GET", "/api/v1/sync/status")
    assert status["state"] == "offline" and status["journal_pending"] >= 5
    assert status["outbox"]["queued"] == 1
    # nothing reached the servers yet
    assert (
        "\\Seen"
        not in (await asyncio.to_thread(flags_of, dovecot, user, password, "INBOX"))["welcome"]
    )
    assert await other.summaries("calendar") == ["Kickoff"]

    # back online: the servers show exactly those changes
    await call(srv, "POST", "/api/v1/sync/offline", {"offline": False})
    await settled(srv)
    server_inbox = await asyncio.to_thread(flags_of, dovecot, user, password, "INBOX")
    assert "\\Seen" in server_inbox["welcome"] and "\\Flagged" in server_inbox["welcome"]
    assert "old news" not in server_inbox
    assert "written offline" in server_inbox  # sent to ourselves, delivered over LMTP
    [got] = smtpd.handler.received
    assert got.mail_from == f"{user}@localhost"
    assert set(await asyncio.to_thread(flags_of, dovecot, user, password, "Archive")) == {
        "old news"
    }
    await settled(srv)  # the copy for Sent goes up in the run after sending
    sent = await asyncio.to_thread(flags_of, dovecot, user, password, "Sent")
    assert list(sent) == ["written offline"]
    assert await other.summaries("calendar") == ["Kickoff", "Planned offline"]
    assert await other.summaries("contacts") == ["Offline Person"]

    # another client changes the calendar: "sync now" brings it here
    await other.put("calendar", "review.ics", ical(vevent("review", "Review")))
    await call(srv, "POST", "/api/v1/sync/run")
    await settled(srv)
    assert {"Kickoff", "Planned offline", "Review"} <= set(await items(srv, roles["calendar"]))

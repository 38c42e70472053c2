"""A hostile or broken upstream: messages with malformed MIME, 8-bit headers and broken
encodings, a 50 MB message, and a small fake IMAP server that answers with garbage (a huge
literal announcement, non-protocol lines, truncated responses, a disconnect in the middle
of a response). The bridge keeps every message it can, reports a clear error for what it
cannot, and its sync loop keeps going."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bridge.model import tags
from bridge.store.store import Store
from bridge.sync.engine import Engine, Report
from bridge.sync.imap_service import ImapSyncService
from bridge.upstream.base import UpstreamError
from bridge.upstream.imap import ImapAdapter, ImapSettings
from tests.integration.conftest import Account, sync
from tests.integration.convergence import assert_converged
from tests.servers import dovecot as dv

GUARD = 20.0


async def run_engine(store: Store, settings: ImapSettings) -> Report:
    adapter = ImapAdapter(settings)

    async def run() -> Report:
        await adapter.connect()
        try:
            return await Engine(store, adapter).run(adapter.delimiter or "/")
        finally:
            await adapter.close()

    return await asyncio.wait_for(run(), GUARD)


# -- bad messages from a real server ----------------------------------------------------------

BAD_MESSAGES: dict[str, bytes] = {
    "8bit-headers": b"From: J\xfcrgen M\xfcller <j@example.org>\r\nTo: b@example.org\r\n"
    b"Subject: caf\xe9 \xff\xfe \xe2\x82\xac\r\nMessage-ID: <bad1@test>\r\n\r\nbody \xe9\r\n",
    "broken-encoded-words": b"From: =?utf-8?B?!!!notbase64?= <x@example.org>\r\n"
    b"Subject: =?x-unknown-charset?Q?abc=ZZ?= =?utf-8?q?unterminated\r\n"
    b"Message-ID: <bad2@test>\r\n\r\nhi\r\n",
    "multipart-without-parts": b"Subject: no parts\r\nMessage-ID: <bad3@test>\r\n"
    b'Content-Type: multipart/mixed; boundary="NEVER"\r\n\r\njust text, no boundary\r\n',
    "multipart-no-boundary": b"Subject: no boundary\r\nMessage-ID: <bad4@test>\r\n"
    b"Content-Type: multipart/alternative\r\n\r\n--x\r\n\r\nhm\r\n",
    "bad-base64-and-charset": b"Subject: bad body\r\nMessage-ID: <bad5@test>\r\n"
    b"Content-Type: text/plain; charset=no-such-charset\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n@@@ not base64 \xff\xfe ===\r\n",
    "header-garbage": b"Subject: odd header block\r\nMessage-ID: <bad6@test>\r\n"
    b"This line has no colon\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\nbody\r\n",
    "truncated-nested": b"Subject: nested\r\nMessage-ID: <bad7@test>\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/mixed; "
    b'boundary="C"\r\n\r\n--C\r\nContent-Type: text/plain\r\n\r\ncut here',
    "no-headers-at-all": b"\r\njust a body, no header block, no Message-ID\r\n",
    "bad-dates-and-addresses": b"Date: yesterday-ish\r\nFrom: <<<@@@>>>\r\nTo: ,,,;;;\r\n"
    b"Cc: undisclosed-recipients:;\r\nSubject: bad addresses\r\nMessage-ID: <bad9@test>\r\n"
    b"\r\nx\r\n",
}


async def test_malformed_messages_are_all_kept(store: Store, any_account: Account) -> None:
    m = any_account.client()
    for raw in BAD_MESSAGES.values():
        dv.append(m, "INBOX", raw)
    report = await sync(store, any_account)
    assert report.fetched == len(BAD_MESSAGES) and not report.failed
    items, total = await store.queries.list(store.folders.roles["inbox"], limit=100)
    assert total == len(BAD_MESSAGES)
    sources = set()
    for view in items:
        assert isinstance(view.props.get(tags.SUBJECT, ""), str)
        sources.add(await store.sync.source(view.id))  # kept byte for byte
    assert sources == set(BAD_MESSAGES.values())
    subjects = {str(i.props.get(tags.SUBJECT)) for i in items}
    assert "odd header block" in subjects and "nested" in subjects
    assert any(s.startswith("caf") for s in subjects)
    # flags on them go up like on any other message
    await store.items.update(items[0].id, {tags.READ: True})
    await sync(store, any_account)
    await assert_converged(
        store, any_account.client(), [f"<bad{i}@test>" for i in (1, 2, 3, 4, 5, 6, 7, 9)]
    )


def big_message(size: int, msgid: str) -> bytes:
    head = (
        f"From: Big <big@example.org>\r\nTo: bob@example.org\r\nSubject: fifty megabytes\r\n"
        f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="BIG"\r\n\r\n'
        "--BIG\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
        "--BIG\r\nContent-Type: application/octet-stream; name=blob.bin\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n"
    body = line * ((size - len(head)) // len(line))
    return head + body + b"--BIG--\r\n"


async def test_fifty_megabyte_message(store: Store, account: Account, tmp_path: Path) -> None:
    msgid = f"<big.{time.monotonic_ns()}@test>"
    raw = big_message(50 << 20, msgid)
    m = account.client()
    await asyncio.to_thread(dv.append, m, "INBOX", raw)
    dv.append(m, "INBOX", dv.message("small", msgid="<small@test>"))
    # over the adapter's literal limit: kept with its headers, reported, nothing else lost
    small = ImapSettings(**{**account.settings().__dict__, "max_message": 8 << 20})
    report = await run_engine(store, small)
    assert report.fetched == 2 and not report.failed
    items, _ = await store.queries.list(store.folders.roles["inbox"])
    by_subject = {str(i.props.get(tags.SUBJECT)): i for i in items}
    big = await store.sync.item(by_subject["fifty megabytes"].id)
    assert big is not None and big.message_id == msgid
    assert big.upstream is not None
    assert big.upstream.get("content") == "headers"  # marked: the rest is not cached
    assert big.upstream.get("size") == len(raw)
    await assert_converged(store, account.client(), [msgid, "<small@test>"])
    # within the limit (the default), the whole message arrives
    other = await Store.open(tmp_path / "whole.sqlite")
    try:
        await run_engine(other, account.settings())
        items, _ = await other.queries.list(other.folders.roles["inbox"])
        whole = next(i for i in items if i.props.get(tags.SUBJECT) == "fifty megabytes")
        assert await other.sync.source(whole.id) == raw
    finally:
        await other.close()


async def test_an_edit_of_a_message_over_the_limit_lets_its_flags_go_up(
    store: Store, account: Account
) -> None:
    """A message kept as its headers because it is over the adapter's limit, edited here:
    its whole message cannot be fetched to keep the edit on, so the edit stays here (as
    README, Limits, says) and its flags still go up; the run reports no failure."""
    msgid = f"<over.{time.monotonic_ns()}@test>"
    raw = big_message(256 << 10, msgid)
    m = account.client()
    dv.append(m, "INBOX", raw)
    small = ImapSettings(**{**account.settings().__dict__, "max_message": 64 << 10})
    await run_engine(store, small)
    (view,), _ = await store.queries.list(store.folders.roles["inbox"])
    await store.items.update(view.id, {tags.SUBJECT: "edited here", tags.FLAG_STATUS: 2})
    report = await run_engine(store, small)
    assert not report.failed and report.pushed == 1, report
    m.select("INBOX", readonly=True)
    _, data = m.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE)")
    assert b"\\Flagged" in data[0] and f"RFC822.SIZE {len(raw)}".encode() in data[0]
    assert (await store.queries.get(view.id)).props[tags.SUBJECT] == "edited here"
    assert await store.queries.journal_pending() == 0


# -- a fake server that misbehaves ------------------------------------------------------------

Then = str  # "close", "stall", "chatter" or "answer" (the normal answer follows)


@dataclass
class FakeImap:
    """Answers like a minimal IMAP server, except for the commands in `script`: for those
    it sends the scripted bytes ("TAG" replaced by the command's tag), then closes the
    connection, stalls, or goes on normally."""

    script: dict[str, tuple[bytes, Then]] = field(default_factory=dict)
    greeting: bytes = b"* OK fake IMAP ready\r\n"
    port: int = 0
    connections: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeImap:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def settings(self, timeout: float = 1.0) -> ImapSettings:
        return ImapSettings("127.0.0.1", self.port, "none", "u", "p", timeout=timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            writer.write(self.greeting)
            idle_tag = None
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").strip()
                if idle_tag is not None and text.upper() == "DONE":
                    writer.write(f"{idle_tag} OK idle done\r\n".encode())
                    idle_tag = None
                    continue
                tag, _, rest = text.partition(" ")
                words = rest.split(" ")
                verb = words[0].upper()
                if verb == "UID" and len(words) > 1:
                    verb = f"UID {words[1].upper()}"
                if verb in self.script:
                    data, then = self.script[verb]
                    writer.write(data.replace(b"TAG", tag.encode()))
                    await writer.drain()
                    if then == "close":
                        return
                    if then == "stall":
                        await asyncio.sleep(3600)
                    while then == "chatter":  # a line of nothing, forever
                        writer.write(b"SERVER-NOISE keeps talking\r\n")
                        await writer.drain()
                        await asyncio.sleep(0.2)
                if verb == "IDLE":
                    writer.write(b"+ idling\r\n")
                    idle_tag = tag
                    continue
                writer.write(self._answer(tag, verb))
                await writer.drain()
                if verb == "LOGOUT":
                    return
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _answer(tag: str, verb: str) -> bytes:
        untagged = {
            "CAPABILITY": b"* CAPABILITY IMAP4rev1 IDLE UIDPLUS\r\n",
            "LIST": b'* LIST (\\HasNoChildren) "/" INBOX\r\n',
            "SELECT": b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n",
            "EXAMINE": b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n",
            "UID SEARCH": b"* SEARCH\r\n",
            "LOGOUT": b"* BYE bye\r\n",
        }.get(verb, b"")
        return untagged + f"{tag} OK {verb.lower()} done\r\n".encode()


# (what the server does, what the error says)
GARBAGE = {
    "huge-literal-announced": (
        {"LIST": (b'* LIST () "/" {999999999999}\r\n', "stall")},
        "literal of 999999999999 bytes",
    ),
    "literal-cut-short": (
        {"UID FETCH": (b"* 1 FETCH (UID 1 FLAGS () BODY[] {3000000000}\r\nabc", "close")},
        "connection lost",
    ),
    "non-protocol-lines": (
        {"LIST": (b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n\r\n<html>no</html>\r\n", "stall")},
        "did not answer in time",
    ),
    "endless-noise": ({"LIST": (b"", "chatter")}, "did not answer in time"),
    "truncated-answer": ({"LOGIN": (b"TAG OK [CAPABIL", "close")}, "connection"),
    "disconnect-mid-response": (
        {"SELECT": (b"* 3 EXISTS\r\n* OK [UIDVALIDITY 17] x\r\n* 1 FETCH (UID 1 FL", "close")},
        "connection",
    ),
    "bye-mid-session": ({"LIST": (b"* BYE shutting down now\r\n", "close")}, "shutting down"),
    "line-over-a-mebibyte": ({"LIST": (b"* LIST " + b"x" * (2 << 20), "stall")}, "over 1 MiB"),
    "not-numbers": (
        {"UID FETCH": (b"* 1 FETCH (UID abc FLAGS (\\Seen))\r\nTAG OK done\r\n", "answer")},
        "where a number belongs",
    ),
    "unbalanced-parentheses": (
        {"LIST": (b'* LIST ((\\Noselect "/" "INB\r\n* 9 FETCH (((\r\n', "answer")},
        "",  # survives: an unusable listing, nothing to sync
    ),
}


@pytest.mark.parametrize("name", list(GARBAGE))
async def test_garbage_from_the_server_is_a_clear_error(store: Store, name: str) -> None:
    script, message = GARBAGE[name]
    async with FakeImap(script) as fake:
        start = time.monotonic()
        if not message:
            await run_engine(store, fake.settings())
            return
        with pytest.raises(UpstreamError, match=message):
            await run_engine(store, fake.settings())
        assert time.monotonic() - start < 10


async def test_not_an_imap_server(store: Store) -> None:
    async with FakeImap(greeting=b"SSH-2.0-OpenSSH_9.6\r\n") as fake:
        with pytest.raises(UpstreamError, match="not an IMAP server"):
            await run_engine(store, fake.settings())


async def _until(ok: Callable[[], bool], what: Callable[[], object], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < deadline, what()
        await asyncio.sleep(0.05)


async def _state(service: ImapSyncService, *states: str) -> None:
    await _until(lambda: service.state in states, lambda: (service.state, service.message))


async def _connections(fake: FakeImap, more_than: int, seconds: float = 10.0) -> None:
    await _until(lambda: fake.connections > more_than, lambda: fake.connections, seconds)


@contextlib.asynccontextmanager
async def running(service: ImapSyncService) -> AsyncIterator[ImapSyncService]:
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_sync_loop_survives_and_recovers(store: Store, account: Account) -> None:
    dv.append(account.client(), "INBOX", dv.message("sane", msgid="<sane@test>"))
    scripts = [GARBAGE[n][0] for n in ("huge-literal-announced", "not-numbers", "bye-mid-session")]
    for script in scripts:
        async with FakeImap(script) as fake:
            service = ImapSyncService(store, fake.settings(), interval=60)
            async with running(service):
                await service.run_now()
                await _state(service, "offline", "error")
                first = fake.connections
                assert service.message and "internal error" not in service.message
                await service.run_now()  # it keeps trying
                await _connections(fake, first)
                assert service._task is not None and not service._task.done()
                # pointed at a sane server, it recovers
                service.settings = account.settings()
                await service.run_now()
                await _state(service, "online")
    await assert_converged(store, account.client(), ["<sane@test>"])


async def test_idle_on_a_broken_server_does_not_end_the_loop(store: Store) -> None:
    """IDLE answered with garbage: the loop reports it and goes on."""
    script = {"IDLE": (b"* 1 FETCH (UID zz)\r\n* BYE gone\r\n", "close")}
    async with FakeImap(script) as fake:
        service = ImapSyncService(store, fake.settings(), interval=60)
        async with running(service):
            await service.run_now()
            await _connections(fake, 1, 15)
            assert service._task is not None and not service._task.done()

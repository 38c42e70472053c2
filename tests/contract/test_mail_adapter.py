"""What every IMAP-shaped adapter must do (run against Dovecot)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.upstream.base import (
    AuthFailed,
    ConnectFailed,
    MailAdapter,
    MailboxMark,
    MessageGone,
    Refused,
    Watch,
)
from bridge.upstream.imap import ImapAdapter, ImapSettings
from bridge.upstream.imap_codec import decode_mailbox, encode_mailbox, parse_seqset, seqset
from tests.servers import dovecot as dv


async def test_default_folders_have_roles(adapter: MailAdapter) -> None:
    roles = {f.role: f.name for f in await adapter.list_folders() if f.role}
    assert roles == {
        "inbox": "INBOX",
        "sent": "Sent",
        "drafts": "Drafts",
        "deleted": "Trash",
        "junk": "Junk",
    }


async def test_folder_create_rename_delete(adapter: MailAdapter) -> None:
    await adapter.create_folder("Über/Sub")
    await adapter.rename_folder("Über/Sub", "Über/Renamed")
    names = {f.name for f in await adapter.list_folders()}
    assert {"Über", "Über/Renamed"} <= names and "Über/Sub" not in names
    await adapter.delete_folder("Über/Renamed")
    await adapter.delete_folder("Über/Renamed")  # idempotent
    assert "Über/Renamed" not in {f.name for f in await adapter.list_folders()}


async def test_append_fetch_flags_move_expunge(adapter: MailAdapter) -> None:
    raw = dv.message("contract", msgid="<c1@test>", body="x" * 5000 + "\r\n")
    uid = await adapter.append("INBOX", raw, {"\\Seen"})
    assert uid is not None
    state = await adapter.select("INBOX")
    assert state.exists == 1 and state.uidvalidity > 0
    got = [m async for m in adapter.fetch([uid])]
    assert got[0].raw == raw and "\\Seen" in got[0].flags
    assert await adapter.search_message_id("<c1@test>") == [uid]
    assert await adapter.message_ids() == {uid: "<c1@test>"}
    await adapter.store_flags(uid, {"\\Flagged", "Work"}, {"\\Seen"})
    flags = {m.uid: m.flags for m in await adapter.list_flags()}
    assert flags[uid] >= {"\\Flagged", "Work"} and "\\Seen" not in flags[uid]
    await adapter.move(uid, "Trash")
    assert await adapter.list_uids() == set()
    with pytest.raises(MessageGone):
        await adapter.move(uid, "Trash")
    await adapter.select("Trash")
    (moved,) = await adapter.list_uids()
    await adapter.expunge([moved])
    assert await adapter.list_uids() == set()


async def test_the_uid_listing_gives_every_uid_with_the_gaps_between(
    adapter: MailAdapter,
) -> None:
    """(As ranges where the server answers ESEARCH, one number each where not.)"""
    uids = [await adapter.append("INBOX", dv.message(f"u{i}"), ()) for i in range(7)]
    assert None not in uids
    await adapter.select("INBOX")
    gone = [u for u in uids[1:3] + uids[5:6] if u is not None]
    await adapter.expunge(gone)
    assert await adapter.list_uids() == set(uids) - set(gone)


async def test_a_refused_move_says_so_and_moves_nothing(adapter: MailAdapter) -> None:
    """A MOVE the server answers with NO raises Refused (nothing happened), not only an
    UpstreamError: the sync then knows that no answer was lost."""
    uid = await adapter.append("INBOX", dv.message("stays"), ())
    assert uid is not None
    await adapter.select("INBOX")
    with pytest.raises(Refused):
        await adapter.move(uid, "No such mailbox")
    assert await adapter.list_uids() == {uid}


async def test_fetch_streams_many_in_batches(adapter: MailAdapter) -> None:
    for i in range(250):
        await adapter.append("INBOX", dv.message(f"n{i}"), ())
    await adapter.select("INBOX")
    uids = [m.uid async for m in adapter.fetch(range(1, 251))]
    assert sorted(uids) == list(range(1, 251))


async def test_incremental_listing(adapter: MailAdapter) -> None:
    await adapter.append("INBOX", dv.message("a"), ())
    await adapter.append("INBOX", dv.message("b"), ())
    state = await adapter.select("INBOX")
    if not adapter.caps.condstore:
        assert state.highestmodseq is None
        return
    assert state.highestmodseq is not None
    await adapter.store_flags(2, {"\\Seen"}, ())
    await adapter.expunge([1])
    changed = await adapter.list_flags(state.highestmodseq)
    assert [m.uid for m in changed] == [2]
    if adapter.caps.qresync:
        again = await adapter.select("INBOX", qresync=(state.uidvalidity, state.highestmodseq))
        assert set(again.changed) == {2} and again.vanished == {1}


async def test_idle_sees_new_mail(adapter: MailAdapter, server: dv.Dovecot) -> None:
    await adapter.select("INBOX")
    assert isinstance(adapter, ImapAdapter)
    user, password = adapter.settings.username, adapter.settings.password

    async def deliver() -> None:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(dv.append, server.client(user, password), "INBOX", dv.message("i"))

    task = asyncio.ensure_future(deliver())
    assert await adapter.idle(5)
    await task


async def test_idle_with_a_watch_sees_what_changed_before_it(adapter: MailAdapter) -> None:
    """A change made between a run and the wait ends the wait at once: in the selected
    mailbox always, in any other (or a mailbox made elsewhere) when the server offers
    NOTIFY. A server state already seen, or the one the cache knows, does not."""
    await adapter.create_folder("Watched")
    await adapter.append("Watched", dv.message("w"), set())
    watched = await adapter.select("Watched")
    inbox = await adapter.select("INBOX", readonly=True)
    here = {"INBOX": (inbox.uidvalidity, inbox.uidnext, inbox.highestmodseq)}
    probe = Watch({}, dict(here))  # knows nothing: differs at once
    assert await asyncio.wait_for(adapter.idle(5, watch=probe), 1)
    everything = probe.current  # with NOTIFY: every mailbox's marks
    assert ("Watched" in everything) == adapter.caps.notify
    assert not await adapter.idle(0.3, watch=Watch(everything, dict(here)))  # in step

    def cache_with(name: str, mark: tuple[int, int, None]) -> dict[str, MailboxMark]:
        return dict(everything, **{name: mark})

    old_inbox = cache_with("INBOX", (inbox.uidvalidity, inbox.uidnext - 1, None))
    watch = Watch(old_inbox, dict(here))
    assert await asyncio.wait_for(adapter.idle(5, watch=watch), 1)
    # that server state already started a run: it does not start another
    assert not await adapter.idle(0.3, watch=Watch(old_inbox, dict(here), dict(watch.current)))
    old_watched = cache_with("Watched", (watched.uidvalidity, watched.uidnext - 1, None))
    changed = await asyncio.wait_for(adapter.idle(0.3, watch=Watch(old_watched, dict(here))), 1)
    assert changed == adapter.caps.notify  # without NOTIFY only the selected one counts
    await adapter.create_folder("Newer")  # made elsewhere, as far as the cache knows
    changed = await asyncio.wait_for(adapter.idle(0.3, watch=Watch(everything, dict(here))), 1)
    assert changed == adapter.caps.notify


async def test_bad_password_and_no_server(server: dv.Dovecot) -> None:
    user, _ = server.add_user()
    with pytest.raises(AuthFailed):
        await ImapAdapter(ImapSettings(server.host, server.imap_port, "none", user, "no")).connect()
    with pytest.raises(ConnectFailed):
        await ImapAdapter(ImapSettings(server.host, 1, "none", user, "no")).connect()
    with pytest.raises(ConnectFailed, match="unencrypted"):
        await ImapAdapter(ImapSettings("192.0.2.1", 143, "none", user, "no")).connect()


def test_codecs() -> None:
    assert encode_mailbox("Über & Co") == "&ANw-ber &- Co"
    assert decode_mailbox(encode_mailbox("日本語/Entwürfe")) == "日本語/Entwürfe"
    assert seqset([5, 1, 2, 3, 9]) == "1:3,5,9"
    assert parse_seqset("1:3,5,9") == {1, 2, 3, 5, 9}

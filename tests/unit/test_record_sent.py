"""Recording a sent message (`Items.record_sent`): one transaction in which only the move
to Sent Items is a local change."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bridge.model import flags, tags
from bridge.store.items import NewItem, PropChange
from bridge.store.store import Store
from tests.unit.test_store_writes import dump, journal

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)  # stored as "2025-03-01T12:00:00Z"


async def submitted(store: Store) -> int:
    rcpt: dict[int, Any] = {tags.RECIPIENT_TYPE: flags.MAPI_TO, tags.SMTP_ADDRESS: "to@example.org"}
    iid = await store.items.create(
        store.folders.roles["drafts"], NewItem(props={tags.SUBJECT: "out"}, recipients=[rcpt])
    )
    await store.items.submit(iid)
    return iid


def report(subject: str) -> NewItem:
    return NewItem("REPORT.IPM.Note.NDR", {tags.SUBJECT: subject, tags.MESSAGE_FLAGS: 0})


@pytest.mark.parametrize("upload", [True, False])
async def test_only_the_move_to_sent_items_is_journaled(store: Store, upload: bool) -> None:
    iid = await submitted(store)
    before = await journal(store)
    sent, inbox = store.folders.roles["sent"], store.folders.roles["inbox"]
    change = PropChange({tags.MESSAGE_DELIVERY_TIME: NOW}, [tags.NDR_STATUS_CODE])
    link = None if upload else {"awaits": "Sent"}
    await store.items.record_sent(
        iid, sent, change, upload=upload, link=link, reports=[report("nope")], reports_folder=inbox
    )
    item = await store.queries.get(iid)
    assert item.folder_id == sent
    mflags = item.props[tags.MESSAGE_FLAGS]
    assert mflags & flags.MSGFLAG_READ
    assert not mflags & (flags.MSGFLAG_SUBMITTED | flags.MSGFLAG_UNSENT)
    assert item.props[tags.MESSAGE_DELIVERY_TIME] == "2025-03-01T12:00:00Z"
    linked = await store.sync.item(iid)
    assert linked is not None and linked.upstream == link
    [ndr], _ = await store.queries.list(inbox)
    assert ndr.props[tags.SUBJECT] == "nope"
    added = (await journal(store))[len(before) :]
    assert added == ([("item_move", iid)] if upload else [])


async def test_reports_without_their_folder_change_nothing(store: Store) -> None:
    iid = await submitted(store)
    before = dump(store)
    with pytest.raises(ValueError):
        await store.items.record_sent(
            iid, store.folders.roles["sent"], PropChange(), upload=True, reports=[report("x")]
        )
    assert dump(store) == before


async def test_a_rejection_is_no_local_change(store: Store) -> None:
    iid = await submitted(store)
    before = await journal(store)
    outbox, inbox = store.folders.roles["outbox"], store.folders.roles["inbox"]
    change = PropChange({tags.NDR_STATUS_CODE: 550})
    await store.items.record_rejected(iid, change, reports=[report("no")], reports_folder=inbox)
    item = await store.queries.get(iid)
    assert item.folder_id == outbox
    mflags = item.props[tags.MESSAGE_FLAGS]
    assert mflags & flags.MSGFLAG_UNSENT and not mflags & flags.MSGFLAG_SUBMITTED
    assert item.props[tags.NDR_STATUS_CODE] == 550
    [ndr], _ = await store.queries.list(inbox)
    assert ndr.props[tags.SUBJECT] == "no"
    assert await journal(store) == before

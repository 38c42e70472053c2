"""An item stored from a resource and read back gives the same resource to upload: what the
DAV sync relies on to leave unchanged items alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.model import tags
from bridge.store import blobs
from bridge.store.calendar_items import item_from_ical, item_from_vcard, resource_bytes
from bridge.store.store import Store
from tests.formats.samples import (
    ALL_DAY,
    CARD3,
    CARD4,
    DONE_TODO,
    GROUP4,
    GROUP_APPLE,
    JOURNAL,
    MEETING,
    SERIES,
    TODO,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "store.sqlite")
    try:
        yield s
    finally:
        await s.close()


async def _stored(store: Store, item_id: int) -> tuple[str, dict[int, Any], list[Any], list[Any]]:
    view = await store.queries.get(item_id)
    recipients = await store.queries.recipients(item_id)
    attachments = []
    for aprops in await store.queries.attachments(item_id):
        _, blob_id, _ = await store.queries.attachment(item_id, int(aprops[tags.ATTACH_NUM]))
        data = await blobs.read_all(store.core.reader, blob_id) if blob_id else b""
        attachments.append((aprops, data))
    return str(view.props[tags.MESSAGE_CLASS]), view.props, recipients, attachments


@pytest.mark.parametrize("raw", [MEETING, SERIES, ALL_DAY, TODO, DONE_TODO, JOURNAL])
async def test_stored_calendar_item_uploads_its_source_unchanged(store: Store, raw: bytes) -> None:
    folder = store.folders.roles["calendar"]
    iid = await store.items.create(folder, item_from_ical(raw))
    message_class, props, recipients, _ = await _stored(store, iid)
    out = resource_bytes(raw, message_class, props, recipients, names=store.core.named)
    assert out == raw


@pytest.mark.parametrize("raw", [CARD3, CARD4, GROUP4, GROUP_APPLE])
async def test_stored_contact_uploads_its_source_unchanged(store: Store, raw: bytes) -> None:
    folder = store.folders.roles["contacts"]
    iid = await store.items.create(folder, item_from_vcard(raw))
    message_class, props, recipients, attachments = await _stored(store, iid)
    out = resource_bytes(raw, message_class, props, recipients, attachments, names=store.core.named)
    assert out == raw


async def test_stored_item_edit_reaches_the_upload(store: Store) -> None:
    folder = store.folders.roles["calendar"]
    iid = await store.items.create(folder, item_from_ical(MEETING))
    await store.items.update(iid, {tags.SUBJECT: "Edited"}, [])
    message_class, props, recipients, _ = await _stored(store, iid)
    out = resource_bytes(MEETING, message_class, props, recipients, names=store.core.named)
    assert b"SUMMARY:Edited" in out
    assert out.replace(b"SUMMARY:Edited", b"SUMMARY:Planning") != out
    assert item_from_ical(out).props[tags.SUBJECT] == "Edited"

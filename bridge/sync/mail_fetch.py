"""New messages into the store, as each folder's sync settings ask: whole messages, or the
headers only (mode `headers`, and messages older than `window_days`), or the headers and
the text body (messages over `max_message_bytes`). An item stored without its whole
message carries `"content": "headers"` or `"text"` in its upstream reference; the rest is
fetched on demand (`on_demand`) or when the settings change to want it.

Whole messages go through a pipeline: while one batch is written to the store, the next
is fetched and parsed, so the network, the parser and SQLite work side by side; a large
pull parses in a worker process (`parse_pool`), so that it uses a second core.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TypeGuard

from bridge.config import FolderSync, SyncConfig
from bridge.formats.mime import KEYWORDS
from bridge.model import tags
from bridge.store.core import UPSTREAM
from bridge.store.errors import Conflict
from bridge.store.folders import Folder
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.store.store import Store
from bridge.store.syncstate import LocalItem
from bridge.sync import conflicts, crashpoint, plan
from bridge.sync.mail_props import apply_flags, categories, flag_props, flags_of
from bridge.sync.parse_pool import MIN_MESSAGES, ParsePool
from bridge.upstream.base import FetchedMessage, MailAdapter, MailboxState
from bridge.upstream.imap_codec import TextPart, text_parts

log = logging.getLogger(__name__)

CREATE_BATCH = 100  # items per store transaction
BATCH_BYTES = 2 << 20  # ... or fewer, when their messages are this large together
# Batches at the parsing worker besides the one being filled. With one, the worker often
# waited for its next batch while this process was busy writing: three took the initial
# pull of the mail benchmark from 11.8 to 11.0 s (mean of five runs each) and the worker's
# CPU time from 9.2 to 8.3 s, for about 2 MB more peak memory (each batch is at most
# PARSE_BATCH_BYTES, held in a few copies). Five took a pull of the benchmark's corpus from
# 13.3 to 12.1 s (mean of seven alternating runs each; faster in five of the seven pairs)
# for about 4 MB more; eight gained nothing over five for another 6 MB.
PARSE_AHEAD = 5
PARSE_BATCH_BYTES = 1 << 20  # a batch for the worker is held in several copies on its way
# Parsed items are written POOLED_WRITE_ITEMS at a time (or fewer, when their messages
# reach POOLED_WRITE_BYTES together). The writes of a pull follow one another, and each
# store transaction costs several round trips to the database thread besides its rows (and
# the upkeep of the search folders before its commit), so larger is faster, for more
# memory. With the sources in packs, a transaction's bytes cost little but their own
# memory: 250 items or 16 MB instead of 250 or 3 MB took the benchmark's pull from 5.23
# to 4.86 s (means of three alternating runs each, 85 transactions instead of 170), for
# about 8 MB more peak memory; 500 items gained nothing more.
POOLED_WRITE_BYTES = 16 << 20
POOLED_WRITE_ITEMS = 250
SECTION_BATCH = 100  # messages per round of body-section fetches
HEADERS, TEXT = "headers", "text"  # the content marker of a partly stored item
PARTLY_STORED = ("content", "size")  # the keys of a link that say what the cache lacks
FULL_SETTINGS = FolderSync("full", None, None)
_TEXT_BOUNDARY = b"=_kbridge_text_body"
BODY_TAGS = (tags.BODY, tags.HTML, tags.RTF_COMPRESSED, tags.NATIVE_BODY_INFO, tags.INTERNET_CPID)


def content_of(item: LocalItem) -> str | None:
    """What part of an item's message is missing from the cache (None: nothing)."""
    value = item.upstream.get("content") if item.upstream else None
    return str(value) if value else None


def settings_key(settings: FolderSync) -> str:
    """The settings that decide what a folder's items hold, as kept in its reference: a
    change of them makes the next run look at the folder even if the server's did not."""
    return f"{settings.mode}/{settings.window_days}/{settings.max_message_bytes}"


class MailFetch:
    def __init__(
        self,
        store: Store,
        adapter: MailAdapter,
        settings: FolderSync = FULL_SETTINGS,
        on_stored: Callable[[int], None] | None = None,
        pool: ParsePool | None = None,
    ) -> None:
        self.store = store
        self.adapter = adapter
        self.settings = settings
        self.on_stored = on_stored  # called with the number of items each write stored
        self.pool = pool  # parses large pulls in a worker process

    # -- which messages get what --------------------------------------------------------

    async def classify(self, uids: list[int]) -> tuple[list[int], list[int], list[int]]:
        """UIDs of the selected mailbox split into (whole, headers only, headers + text)."""
        if not uids:
            return [], [], []
        s = self.settings
        if s.mode == HEADERS:
            return [], sorted(uids), []
        old: set[int] = set()
        large: set[int] = set()
        if s.window_days:
            cutoff = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=s.window_days)
            old = await self.adapter.search_uids(uids, before=cutoff)
        rest = [u for u in uids if u not in old]
        if s.max_message_bytes and rest:
            large = await self.adapter.search_uids(rest, larger=s.max_message_bytes)
        whole = [u for u in rest if u not in large]
        return whole, sorted(old), sorted(large)

    # -- new messages -------------------------------------------------------------------

    async def store_new(self, fid: int, mailbox: str, state: MailboxState, uids: list[int]) -> None:
        whole, headers, text = await self.classify(uids)

        def full(msg: FetchedMessage) -> NewItem:
            return whole_item(msg, mailbox, state)

        def head(msg: FetchedMessage) -> NewItem:
            return partial_item(msg, mailbox, state, [], {})

        if self.pool is not None and len(whole) >= MIN_MESSAGES:
            await self._pooled(fid, mailbox, state, self.adapter.fetch(whole), self.pool)
        else:
            await self._pipeline(fid, mailbox, self.adapter.fetch(whole), full)
        await self._pipeline(fid, mailbox, self.adapter.fetch(headers, headers_only=True), head)
        for start in range(0, len(text), SECTION_BATCH):
            chunk = text[start : start + SECTION_BATCH]
            heads = [m async for m in self.adapter.fetch(chunk, headers_only=True)]
            parts = {m.uid: text_parts(m.structure) for m in heads}
            sections = await self.adapter.fetch_sections(
                {uid: [p.section for p in found] for uid, found in parts.items()}
            )
            items = [
                partial_item(m, mailbox, state, parts[m.uid], sections.get(m.uid, {}))
                for m in heads
            ]
            await self._write(fid, mailbox, items)

    async def _pipeline(
        self,
        fid: int,
        mailbox: str,
        messages: AsyncIterator[FetchedMessage],
        build: Callable[[FetchedMessage], NewItem],
    ) -> None:
        """Build items from the fetched messages and write them in batches; a batch is
        written while the next one is fetched and parsed."""
        pending: asyncio.Future[None] | None = None
        batch: list[NewItem] = []
        size = 0
        try:
            async for msg in messages:
                batch.append(build(msg))
                size += msg.size
                if len(batch) >= CREATE_BATCH or size >= BATCH_BYTES:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(self._write(fid, mailbox, batch))
                    batch, size = [], 0
            if pending is not None:
                await pending
            if batch:
                await self._write(fid, mailbox, batch)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    async def _pooled(
        self,
        fid: int,
        mailbox: str,
        state: MailboxState,
        messages: AsyncIterator[FetchedMessage],
        pool: ParsePool,
    ) -> None:
        """`_pipeline` with the parsing in the worker process: while batches are fetched
        here, up to PARSE_AHEAD are parsed there, and the items parsed before are written.
        Parsed items are written in batches of their own (POOLED_WRITE_ITEMS items or
        POOLED_WRITE_BYTES), whatever the batches sent to the worker held."""
        parsing: deque[asyncio.Future[list[NewItem]]] = deque()
        writing: asyncio.Future[None] | None = None
        batch: list[FetchedMessage] = []
        size = 0
        ready: list[NewItem] = []
        ready_size = 0

        async def write(items: list[NewItem]) -> None:
            nonlocal writing
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(self._write(fid, mailbox, items))

        async def take_parsed() -> None:
            nonlocal ready, ready_size
            for item in await parsing.popleft():
                ready.append(item)
                ready_size += len(item.source or b"")
                if len(ready) >= POOLED_WRITE_ITEMS or ready_size >= POOLED_WRITE_BYTES:
                    await write(ready)
                    ready, ready_size = [], 0

        try:
            async for msg in messages:
                batch.append(msg)
                size += msg.size
                if len(batch) >= CREATE_BATCH or size >= PARSE_BATCH_BYTES:
                    # The worker prepares the rows too while it keeps up; when batches
                    # queue up at it, this process prepares them (as the store writes).
                    keeps_up = len(parsing) < PARSE_AHEAD
                    parsing.append(
                        asyncio.ensure_future(whole_items(pool, batch, mailbox, state, keeps_up))
                    )
                    batch, size = [], 0
                    while len(parsing) > PARSE_AHEAD or (parsing and parsing[0].done()):
                        await take_parsed()
            if batch:
                parsing.append(asyncio.ensure_future(whole_items(pool, batch, mailbox, state)))
            while parsing:
                await take_parsed()
            if ready:
                await write(ready)
            if writing is not None:
                await writing
        finally:
            for future in (*parsing, writing):
                if future is not None and not future.done():
                    future.cancel()
                    with contextlib.suppress(BaseException):
                        await future

    async def _write(self, fid: int, mailbox: str, items: list[NewItem]) -> None:
        if not items:
            return
        await self.store.items.create_many(fid, items, origin=UPSTREAM)
        if self.on_stored is not None:
            self.on_stored(len(items))
        crashpoint.step(f"{mailbox}: new messages stored")

    # -- partly stored items --------------------------------------------------------------

    async def complete(self, state: MailboxState, items: list[LocalItem]) -> int:
        """Fetch the whole messages of partly stored items the settings now want whole
        (a folder switched from headers to full, a larger size limit); the count done."""
        partial = {
            int(i.upstream["uid"]): i
            for i in items
            if i.upstream is not None
            and content_of(i) is not None
            and i.upstream.get("uidvalidity") == state.uidvalidity
        }
        if not partial:
            return 0
        whole, _, _ = await self.classify(sorted(partial))
        done = 0
        async for msg in self.adapter.fetch(whole):
            if await replace_content(self.store, partial[msg.uid], msg):
                done += 1
        return done


# -- items from fetched messages ------------------------------------------------------------


def _link(item: NewItem, msg: FetchedMessage, mailbox: str, state: MailboxState) -> None:
    item.upstream = {
        "mailbox": mailbox,
        "uidvalidity": state.uidvalidity,
        "uid": msg.uid,
        "flags": sorted(plan.relevant(msg.flags)),
        "modseq": msg.modseq,
    }


def _with_flags(item: NewItem, msg: FetchedMessage, mailbox: str, state: MailboxState) -> None:
    apply_flags(item, msg.flags)
    _link(item, msg, mailbox, state)


def has_content(raw: bytes | None) -> TypeGuard[bytes]:
    """Whether `raw` holds more than whitespace (what `raw.strip()` tells, without copying
    the message)."""
    return raw is not None and len(raw) > 0 and not raw.isspace()


def whole_item(msg: FetchedMessage, mailbox: str, state: MailboxState) -> NewItem:
    if msg.raw is None and msg.header is not None:
        # over the adapter's literal limit: it sent the header block instead
        log.warning(
            "%s: message %d (%d bytes) is over the size limit: only its headers are kept",
            mailbox,
            msg.uid,
            msg.size,
        )
        return partial_item(msg, mailbox, state, [], {})
    raw = msg.raw
    if not has_content(raw):
        raw = b"Subject: (message of %d bytes not downloaded: over the size limit)\r\n\r\n" % (
            msg.size
        )
    item = item_from_rfc822(raw, texts=False)  # the store reads them from the source
    _with_flags(item, msg, mailbox, state)
    return item


async def whole_items(
    pool: ParsePool,
    msgs: list[FetchedMessage],
    mailbox: str,
    state: MailboxState,
    prepared: bool = True,
) -> list[NewItem]:
    """`whole_item` of each message, the usual ones parsed by the pool (which gives them
    their flags too)."""
    usual = [(m.raw, m.flags) for m in msgs if has_content(m.raw)]
    parsed = iter(await pool.parse(usual, prepared))
    items = []
    for msg in msgs:
        if has_content(msg.raw):
            item = next(parsed)
            _link(item, msg, mailbox, state)
        else:
            item = whole_item(msg, mailbox, state)
        items.append(item)
    return items


def partial_item(
    msg: FetchedMessage,
    mailbox: str,
    state: MailboxState,
    parts: list[TextPart],
    sections: dict[str, bytes],
) -> NewItem:
    """An item from a message's header block (and its text body parts, when given): every
    property the headers give, the body text if fetched, no attachments and no source."""
    header = msg.header if msg.header and msg.header.strip() else b"Subject: \r\n\r\n"
    item = item_from_rfc822(header)
    for tag in BODY_TAGS:  # what the parser made of the missing body
        item.props.pop(tag, None)
    body = _text_body(parts, sections)
    if body is not None:
        text = item_from_rfc822(body)
        for tag, value in text.props.items():
            if tag not in (tags.TRANSPORT_MESSAGE_HEADERS, tags.MESSAGE_FLAGS):
                item.props.setdefault(tag, value)
    item.source = None
    item.source_type = None
    item.attachments = []
    _with_flags(item, msg, mailbox, state)
    assert item.upstream is not None
    item.upstream["content"] = TEXT if body is not None else HEADERS
    item.upstream["size"] = msg.size
    return item


def _text_body(parts: list[TextPart], sections: dict[str, bytes]) -> bytes | None:
    """The fetched text parts as a small MIME entity the parser reads as the body."""
    found = [(p, sections[p.section]) for p in parts if p.section in sections]
    if not found:
        return None
    out = [b'Content-Type: multipart/alternative; boundary="' + _TEXT_BOUNDARY + b'"\r\n\r\n']
    for part, data in found:
        ctype = part.ctype.encode()
        if part.charset:
            ctype += b'; charset="' + part.charset.encode("ascii", "replace") + b'"'
        out.append(b"--" + _TEXT_BOUNDARY + b"\r\nContent-Type: " + ctype + b"\r\n")
        if part.encoding:
            out.append(b"Content-Transfer-Encoding: " + part.encoding.encode("ascii", "replace"))
            out.append(b"\r\n")
        out.append(b"\r\n" + data + b"\r\n")
    out.append(b"--" + _TEXT_BOUNDARY + b"--\r\n")
    return b"".join(out)


async def replace_content(store: Store, item: LocalItem, msg: FetchedMessage) -> bool:
    """Give a partly stored item its whole message (keeping its id, folder, local flags
    and categories, and an edit made here that is still to go up: `complete_message`);
    False when the message could not be had, or the item kept changing here meanwhile
    (the next run completes it)."""
    if msg.raw is None:
        return False
    for _ in range(conflicts.WRITE_ATTEMPTS):
        now = await store.sync.item(item.id)  # as it is after the fetch: read meanwhile, say
        if now is None or now.upstream is None:
            return False
        new = item_from_rfc822(msg.raw)
        local = flags_of(now)
        set_props, _ = flag_props(local, now.last_verb)
        new.props.update(set_props)
        if now.last_verb is not None:
            new.props[tags.LAST_VERB_EXECUTED] = now.last_verb
        cats = categories(local)
        if cats:
            new.named[KEYWORDS] = cats
        link = {k: v for k, v in now.upstream.items() if k not in PARTLY_STORED}
        try:
            await store.dav.complete_message(
                now.id, new, link, store.sync.not_content_keys(), cn=now.cn
            )
        except Conflict:  # changed here since `now` was read: its flags are read again
            continue
        return True
    log.info("item %s kept changing here while it was completed; next run", item.id)
    return False


def folder_settings(
    config: SyncConfig | None, folders: Mapping[int, Folder], mailboxes: Mapping[int, str]
) -> dict[int, FolderSync]:
    """The effective settings of each synced folder, found by its mailbox name or by its
    path in the store (folder names below the top of the store, joined by "/")."""
    if config is None:
        return dict.fromkeys(mailboxes, FULL_SETTINGS)
    out: dict[int, FolderSync] = {}
    for fid, mailbox in mailboxes.items():
        names: list[str] = []
        folder = folders.get(fid)
        while folder is not None and folder.role not in ("ipm_subtree", "root"):
            names.append(folder.display_name)
            folder = folders.get(folder.parent_id) if folder.parent_id is not None else None
        out[fid] = config.folder(mailbox, "/".join(reversed(names)))
    return out

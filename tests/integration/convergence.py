"""Compare the cache with the server after a sync: the server side is read by a second,
independent IMAP client (the stdlib's), the cache through the store. Both come out as
mailbox → Message-ID → [flag set per copy], so duplicates and losses both show."""

from __future__ import annotations

import imaplib
import re
from collections import Counter
from collections.abc import Iterable

from bridge.store.store import Store
from bridge.sync import plan
from bridge.upstream.imap_codec import decode_mailbox

Snapshot = dict[str, dict[str, list[frozenset[str]]]]

_LIST = re.compile(rb'^\((?P<attrs>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$')
_MSGID = re.compile(rb"<[^<>\s]+>")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


def _mailboxes(m: imaplib.IMAP4) -> list[str]:
    _, data = m.list('""', "*")
    out = []
    for line in data:
        if not isinstance(line, bytes):
            continue
        hit = _LIST.match(line)
        if hit is None or b"\\noselect" in hit["attrs"].lower():
            continue
        out.append(hit["name"].decode().strip('"'))
    return out


def server_snapshot(m: imaplib.IMAP4) -> Snapshot:
    """Every selectable mailbox of the account as the server has it."""
    snap: Snapshot = {}
    for raw_name in _mailboxes(m):
        typ, _ = m.select(f'"{raw_name}"', readonly=True)
        assert typ == "OK", raw_name
        box: dict[str, list[frozenset[str]]] = {}
        _, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        for part in data:
            if not isinstance(part, tuple):
                continue
            head, body = part[0], part[1]
            flags = _FLAGS.search(head)
            found = _MSGID.search(body)
            msgid = found.group(0).decode() if found else "(no Message-ID)"
            names = flags.group(1).decode().split() if flags else []
            box.setdefault(msgid, []).append(plan.relevant(names))
        snap[decode_mailbox(raw_name)] = box
    if m.state == "SELECTED":
        m.close()
    return snap


def server_subjects(m: imaplib.IMAP4) -> list[tuple[str, str]]:
    """(mailbox, Subject header field) of every message on the server, sorted."""
    out = []
    for raw_name in _mailboxes(m):
        typ, _ = m.select(f'"{raw_name}"', readonly=True)
        assert typ == "OK", raw_name
        _, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        for part in data:
            if isinstance(part, tuple):
                field = part[1].decode("utf-8", "replace").strip()
                out.append((decode_mailbox(raw_name), field.removeprefix("Subject:").strip()))
    if m.state == "SELECTED":
        m.close()
    return sorted(out)


async def cache_snapshot(store: Store) -> Snapshot:
    """Every folder linked to a mailbox, as the cache has it."""
    snap: Snapshot = {}
    for fid, ref in (await store.sync.folder_links()).items():
        box: dict[str, list[frozenset[str]]] = {}
        items, _ = await store.queries.list(fid, limit=1000)
        for view in items:
            item = await store.sync.item(view.id)
            assert item is not None
            fs = plan.local_flags(item.read, item.flag_status, item.last_verb, item.categories)
            box.setdefault(item.message_id or "(no Message-ID)", []).append(fs)
        snap[str(ref["mailbox"])] = box
    return snap


def counts(snap: Snapshot) -> Counter[str]:
    """How many copies of each Message-ID the whole account holds."""
    out: Counter[str] = Counter()
    for box in snap.values():
        for msgid, copies in box.items():
            out[msgid] += len(copies)
    return out


def normalized(snap: Snapshot) -> dict[str, dict[str, list[list[str]]]]:
    return {
        name: {mid: sorted(sorted(c) for c in copies) for mid, copies in box.items()}
        for name, box in sorted(snap.items())
        if box
    }


async def assert_converged(
    store: Store, client: imaplib.IMAP4, expected: Iterable[str] = ()
) -> Snapshot:
    """The cache mirrors the server, flags included; every Message-ID in `expected` is
    there exactly once; no Message-ID is anywhere twice. Returns the server's snapshot."""
    server = server_snapshot(client)
    cache = await cache_snapshot(store)
    assert normalized(cache) == normalized(server), (normalized(cache), normalized(server))
    seen = counts(server)
    dupes = {mid: n for mid, n in seen.items() if n > 1}
    assert not dupes, f"duplicated on the server: {dupes}"
    missing = [mid for mid in expected if seen[mid] != 1]
    assert not missing, f"lost: {missing}"
    assert await store.queries.journal_pending() == 0
    return server

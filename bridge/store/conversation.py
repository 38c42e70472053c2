"""Conversations: the key that groups an item with the rest of its thread, and the topic.

The key is computed when an item is written and kept in the indexed column
`items.conversation_id` (16 bytes, rendered as PidTagConversationId):

1. PidTagConversationIndex (Thread-Index) when it has the 22-byte header: the header names
   the conversation (reserved byte, time, GUID), every reply keeps it;
2. else the root of the thread by RFC 5322 ids: the first id of PidTagInternetReferences,
   else PidTagInReplyToId, else the item's own PidTagInternetMessageId (a message that starts
   a thread is the root its replies name);
3. else the conversation topic: PidTagConversationTopic (Thread-Topic), else the subject,
   either without its reply and forward prefixes (Re:, Fwd:, Fw:, AW:, WG:, SV:, VS:, TR:,
   RE[2]: ...), case-folded, whitespace collapsed.

The id is the MD5 of the key (the kind of key is part of it, so a Message-ID never equals a
subject).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from bridge.model import tags
from bridge.store.core import SYSTEM, StoreCore

INDEX_HEADER = 22  # bytes of PidTagConversationIndex that identify the conversation
FILL_BATCH = 500

_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr)\s*(?:\[\d+\])?\s*:\s*)+", re.I)
_SPACE = re.compile(r"\s+")
_MSGID = re.compile(r"<([^<>\s]+)>")


def normalized_subject(subject: str) -> str:
    """The subject without reply/forward prefixes, whitespace collapsed."""
    if ":" in subject:  # every prefix ends in a colon
        subject = _PREFIX.sub("", subject)
    if "  " in subject or not subject.isprintable():
        # A run of spaces, or whitespace other than the space (not printable, as are all
        # the other characters \s matches).
        subject = _SPACE.sub(" ", subject)
    return subject.strip()


def topic(props: Mapping[int, Any]) -> str | None:
    """PidTagConversationTopic: the stored one, else the normalized subject."""
    stored = props.get(tags.CONVERSATION_TOPIC)
    if isinstance(stored, str):
        return stored
    subject = props.get(tags.SUBJECT)
    return normalized_subject(subject) if isinstance(subject, str) else None


def _binary(value: Any) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def _first_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    found = _MSGID.search(value)
    if found:
        return found.group(1).lower()
    bare = value.strip().split()
    return bare[0].strip("<>").lower() if bare else None


def key(props: Mapping[int, Any]) -> bytes:
    """The conversation key of an item's properties (binaries as bytes or base64)."""
    index = _binary(props.get(tags.CONVERSATION_INDEX))
    if index is not None and len(index) >= INDEX_HEADER:
        return b"x:" + index[:INDEX_HEADER]
    for tag in (tags.INTERNET_REFERENCES, tags.IN_REPLY_TO_ID, tags.INTERNET_MESSAGE_ID):
        root = _first_id(props.get(tag))
        if root:
            return b"m:" + root.encode("utf-8")
    text = props.get(tags.CONVERSATION_TOPIC)
    if not isinstance(text, str):
        text = props.get(tags.SUBJECT)
    text = normalized_subject(text) if isinstance(text, str) else ""
    return b"s:" + text.casefold().encode("utf-8")


def conversation_id(props: Mapping[int, Any]) -> bytes:
    """PidTagConversationId (16 bytes) of an item's properties."""
    return hashlib.md5(key(props), usedforsecurity=False).digest()


def sql_topic(subject: object) -> str | None:
    """`kb_topic(subject)`: the normalized subject in SQL (NULL stays NULL)."""
    return normalized_subject(subject) if isinstance(subject, str) else None


async def fill_missing(core: StoreCore) -> int:
    """Compute the conversation id of items written before the column existed, one
    transaction per batch; returns how many were filled."""
    done = 0
    while True:
        async with core.write(SYSTEM) as tx:
            async with tx.conn.execute(
                "SELECT id, props FROM items WHERE conversation_id IS NULL LIMIT ?",
                (FILL_BATCH,),
            ) as cur:
                rows = await cur.fetchall()
            updates = []
            for row in rows:
                doc = json.loads(row[1])
                props = {int(k, 16): v for k, v in doc.items()}
                updates.append((conversation_id(props), row[0]))
            await tx.conn.executemany("UPDATE items SET conversation_id = ? WHERE id = ?", updates)
        if not rows:
            return done
        done += len(updates)

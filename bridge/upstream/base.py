"""What the sync engine sees of a mail upstream: folders, mailbox state, messages.

An adapter exposes capability flags so the engine picks the best pull path the server
offers (QRESYNC, then CONDSTORE, then a full UID/FLAGS listing) and the push paths it can
use (MOVE, UIDPLUS). Errors are translated into the three classes below.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# Folder roles as the store names them, by IMAP SPECIAL-USE attribute (RFC 6154).
SPECIAL_USE_ROLES = {
    "\\sent": "sent",
    "\\drafts": "drafts",
    "\\trash": "deleted",
    "\\junk": "junk",
}


class UpstreamError(Exception):
    """The upstream refused or failed an operation; the message says what happened."""


class Refused(UpstreamError):
    """The upstream answered that it did not do what was asked (an IMAP NO or BAD): unlike
    a connection that dropped before the answer, nothing of it happened."""


class AuthFailed(UpstreamError):
    """The upstream rejected the credentials."""


class MessageGone(UpstreamError):
    """The message is no longer on the upstream (expunged by another client)."""


class ConnectFailed(UpstreamError):
    """The upstream could not be reached, or the connection dropped."""


@dataclass(frozen=True)
class Capabilities:
    qresync: bool = False
    condstore: bool = False
    move: bool = False
    uidplus: bool = False
    idle: bool = False
    notify: bool = False  # RFC 5465: changes in every mailbox reach an IDLE
    special_use: bool = False
    literal_plus: bool = False
    esearch: bool = False  # RFC 4731: a UID listing comes as ranges, not one number each


@dataclass(frozen=True)
class RemoteFolder:
    """One upstream mailbox: its name, hierarchy delimiter, attributes and default role."""

    name: str
    delimiter: str | None
    attributes: frozenset[str] = frozenset()
    role: str | None = None

    @property
    def selectable(self) -> bool:
        return "\\noselect" not in self.attributes and "\\nonexistent" not in self.attributes


@dataclass(frozen=True)
class MailboxState:
    """What SELECT reported. `changed`/`vanished` are filled by a QRESYNC select."""

    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None = None
    changed: dict[int, MessageFlags] = field(default_factory=dict)
    vanished: frozenset[int] = frozenset()


MailboxMark = tuple[int | None, int | None, int | None]  # UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ


@dataclass
class Watch:
    """What an IDLE compares the server with before it waits, so that a change made between
    a run and the wait is not missed. `known`: each mailbox as the cache last saw it (None:
    not known); `current`: the server's marks, which the caller fills for the selected
    mailbox and `idle` completes for the others when the server offers NOTIFY; `seen`: the
    server state that already started a run (seen again, it does not start another)."""

    known: dict[str, MailboxMark]
    current: dict[str, MailboxMark] = field(default_factory=dict)
    seen: dict[str, MailboxMark] | None = None

    def differs(self, everywhere: bool = False) -> bool:
        """Whether the server's marks differ from the cache's: for the mailboxes in
        `current`, or (`everywhere`: `current` lists every mailbox) for all of them."""
        if self.current == self.seen:
            return False
        names = set(self.current) | (set(self.known) if everywhere else set())
        for name in names:
            now, then = self.current.get(name), self.known.get(name)
            if now is None or then is None:
                return True  # a mailbox made or deleted elsewhere
            if any(a is not None and b is not None and a != b for a, b in zip(now, then)):  # noqa: B905
                return True
        return False


@dataclass(frozen=True)
class MessageFlags:
    uid: int
    flags: frozenset[str]
    modseq: int | None = None


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    flags: frozenset[str]
    modseq: int | None
    raw: bytes | None  # None when the message was larger than the adapter's limit
    size: int
    # A headers-only fetch: the header block and the parsed BODYSTRUCTURE (raw is None).
    header: bytes | None = None
    structure: Any = None


class MailAdapter(abc.ABC):
    """An IMAP-shaped mail upstream. One instance is one connection (one selected mailbox)."""

    caps: Capabilities
    # Flags the server would not take in the last `store_flags` or `append` (the rest were
    # stored): a keyword it finds too long, for one. The caller records the server's copy
    # without them; the item keeps them.
    last_refused: frozenset[str] = frozenset()

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connect and log in; raises AuthFailed or ConnectFailed."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def list_folders(self) -> list[RemoteFolder]: ...

    @abc.abstractmethod
    async def create_folder(self, name: str) -> None: ...

    @abc.abstractmethod
    async def rename_folder(self, old: str, new: str) -> None: ...

    @abc.abstractmethod
    async def delete_folder(self, name: str) -> None: ...

    @abc.abstractmethod
    async def select(
        self,
        name: str,
        *,
        readonly: bool = False,
        qresync: tuple[int, int] | None = None,
    ) -> MailboxState:
        """Select a mailbox; with `qresync=(uidvalidity, modseq)` and a QRESYNC server the
        state carries the changes and expunges since that modseq."""

    @abc.abstractmethod
    async def list_flags(self, changed_since: int | None = None) -> list[MessageFlags]:
        """UID and flags of the selected mailbox's messages (changed after a modseq)."""

    @abc.abstractmethod
    async def list_uids(self) -> set[int]: ...

    @abc.abstractmethod
    def fetch(
        self, uids: Iterable[int], *, headers_only: bool = False
    ) -> AsyncIterator[FetchedMessage]:
        """Full messages, streamed in batches with several requests in flight; with
        `headers_only` the header block and the body structure instead of the message."""

    async def fetch_sections(self, wanted: dict[int, list[str]]) -> dict[int, dict[str, bytes]]:
        """Body sections ("1", "1.2", ...) of messages of the selected mailbox, as sent
        (transfer-encoded): UID → section → bytes. Messages gone are left out."""
        raise NotImplementedError(f"{type(self).__name__}.fetch_sections")

    async def search_uids(
        self, uids: Iterable[int], *, before: date | None = None, larger: int | None = None
    ) -> set[int]:
        """The UIDs among `uids` that arrived before a day, or are larger than a size."""
        raise NotImplementedError(f"{type(self).__name__}.search_uids")

    @abc.abstractmethod
    async def message_ids(self, uids: Iterable[int] | None = None) -> dict[int, str]:
        """UID → Message-ID of the selected mailbox's messages."""

    @abc.abstractmethod
    async def store_flags(self, uid: int, add: Iterable[str], remove: Iterable[str]) -> int | None:
        """Change flags; returns the new modseq where the server reports one."""

    @abc.abstractmethod
    async def append(self, mailbox: str, raw: bytes, flags: Iterable[str]) -> int | None:
        """Append a message; returns its UID when the server reports it (UIDPLUS)."""

    @abc.abstractmethod
    async def search_message_id(self, message_id: str) -> list[int]: ...

    @abc.abstractmethod
    async def move(self, uid: int, mailbox: str) -> int | None:
        """Move one message of the selected mailbox; returns its new UID when known, or
        None; raises MessageGone if the message is gone, Refused if the server did not
        move it."""

    @abc.abstractmethod
    async def expunge(self, uids: Iterable[int]) -> None: ...

    @abc.abstractmethod
    async def idle(
        self, seconds: float, stop: asyncio.Event | None = None, watch: Watch | None = None
    ) -> bool:
        """Wait for a change in the selected mailbox (in any personal mailbox when the
        server offers NOTIFY); True if one was announced, or if `watch` shows the server
        already differs from what the cache knows."""

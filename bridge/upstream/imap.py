"""The IMAP adapter (RFC 3501 with CONDSTORE/QRESYNC 7162, MOVE 6851, UIDPLUS 4315,
SPECIAL-USE 6154, IDLE 2177) on the protocol layer of `imap_proto`.

No client library is used: aioimaplib hands back unparsed lines, holds every literal in
memory and runs one command at a time; this layer pipelines FETCH batches and bounds the
memory a literal may take.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from bridge.upstream.base import (
    SPECIAL_USE_ROLES,
    AuthFailed,
    Capabilities,
    ConnectFailed,
    FetchedMessage,
    MailAdapter,
    MailboxMark,
    MailboxState,
    MessageFlags,
    MessageGone,
    Refused,
    RemoteFolder,
    UpstreamError,
    Watch,
)
from bridge.upstream.imap_codec import (
    decode_mailbox,
    encode_keyword,
    encode_mailbox,
    esearch_all,
    fetch_items,
    flag_set,
    modseq_of,
    number,
    parse_seqset,
    seqset,
)
from bridge.upstream.imap_proto import CommandFailed, Connection, Response, TooLarge, quote
from bridge.upstream.tls import client_context

log = logging.getLogger(__name__)

FETCH_BATCH = 100
IN_FLIGHT = 2
_MSGID = re.compile(r"<[^<>\s]+>")
# New, expunged and re-flagged messages in the selected mailbox and every personal one, and
# mailboxes created, renamed or deleted (RFC 5465); STATUS: the marks of each mailbox now.
NOTIFY_SET = (
    "NOTIFY SET STATUS (selected (MessageNew MessageExpunge FlagChange))"
    " (personal (MessageNew MessageExpunge FlagChange MailboxName))"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    tls: str  # implicit | starttls | none
    username: str
    password: str
    verify_tls: bool = True
    max_message: int = 64 << 20
    timeout: float = 60.0
    ca_file: str | None = None  # certificates trusted besides the system's


def _status_mark(values: Any) -> MailboxMark:
    """(UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) of a STATUS answer's attribute list."""
    attrs = dict(zip(values[::2], values[1::2], strict=False)) if isinstance(values, list) else {}

    def num(key: str) -> int | None:
        value = attrs.get(key)
        return int(value) if isinstance(value, str) and value.isdigit() else None

    return (num("UIDVALIDITY"), num("UIDNEXT"), num("HIGHESTMODSEQ"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapAdapter(MailAdapter):
    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.conn = Connection(settings.max_message, settings.timeout)
        self.caps = Capabilities()
        self.delimiter: str | None = "/"
        self.excluded_prefixes: list[str] = []
        self.selected: str | None = None

    # -- session ----------------------------------------------------------------------

    async def connect(self) -> None:
        s = self.settings
        if s.tls == "none" and not _is_loopback(s.host):
            raise ConnectFailed(f"refusing to send a password unencrypted to {s.host}")
        context = client_context(s.verify_tls, s.ca_file) if s.tls != "none" else None
        await self.conn.open(s.host, s.port, s.tls, context)
        try:
            await self._login()
            await self.conn.run("CAPABILITY")
            caps = self.conn.caps
            self.caps = Capabilities(
                qresync="QRESYNC" in caps,
                condstore="CONDSTORE" in caps or "QRESYNC" in caps,
                move="MOVE" in caps,
                uidplus="UIDPLUS" in caps,
                idle="IDLE" in caps,
                notify="NOTIFY" in caps and "IDLE" in caps,
                special_use="SPECIAL-USE" in caps,
                literal_plus="LITERAL+" in caps,
                esearch="ESEARCH" in caps,
            )
            self.conn.literal_plus = self.caps.literal_plus
            if self.caps.qresync:
                await self.conn.run("ENABLE QRESYNC")
            elif self.caps.condstore:
                await self.conn.run("ENABLE CONDSTORE")
            if "NAMESPACE" in caps:
                await self._namespace()
        except BaseException:
            await self.conn.close()
            raise

    async def _login(self) -> None:
        s = self.settings
        if "CAPABILITY" not in {c for c in self.conn.caps} and not self.conn.caps:
            await self.conn.run("CAPABILITY")
        try:
            if "AUTH=PLAIN" in self.conn.caps and "SASL-IR" in self.conn.caps:
                token = base64.b64encode(f"\0{s.username}\0{s.password}".encode()).decode()
                await self.conn.run(f"AUTHENTICATE PLAIN {token}")
            else:
                await self.conn.run("LOGIN", quote(s.username), quote(s.password))
        except CommandFailed as exc:
            raise AuthFailed(
                f"the server rejected the login of {s.username}: {exc.response.text}"
            ) from None

    async def _namespace(self) -> None:
        cmd = await self.conn.run("NAMESPACE")
        for resp in cmd.untagged:
            if resp.kind != "NAMESPACE" or len(resp.values) < 4:
                continue
            personal, other, shared = resp.values[1:4]
            if isinstance(personal, list) and personal and isinstance(personal[0], list):
                self.delimiter = personal[0][1] if len(personal[0]) > 1 else None
            for group in (other, shared):
                if isinstance(group, list):
                    self.excluded_prefixes += [str(ns[0]) for ns in group if ns and ns[0]]

    async def close(self) -> None:
        if self.conn.alive and not self.conn.idling:  # (a LOGOUT inside an IDLE is an error)
            with contextlib.suppress(UpstreamError, OSError, TimeoutError):
                await asyncio.wait_for(self.conn.run("LOGOUT"), 2)
        await self.conn.close()

    @property
    def alive(self) -> bool:
        return self.conn.alive

    # -- folders ----------------------------------------------------------------------

    async def list_folders(self) -> list[RemoteFolder]:
        cmd = await self.conn.run('LIST "" "*"')
        found: list[RemoteFolder] = []
        for resp in cmd.untagged:
            if resp.kind != "LIST" or len(resp.values) < 4:
                continue
            attrs = frozenset(str(a).lower() for a in resp.values[1] or [])
            raw = resp.values[3]
            name = decode_mailbox(raw.decode() if isinstance(raw, bytes) else str(raw))
            if any(
                name.startswith(p) or name + (self.delimiter or "") == p
                for p in self.excluded_prefixes
            ):
                continue
            role = "inbox" if name.upper() == "INBOX" else None
            for attr in attrs:
                role = role or SPECIAL_USE_ROLES.get(attr)
            delim = resp.values[2]
            found.append(RemoteFolder(name, str(delim) if delim else None, attrs, role))
        return found

    async def create_folder(self, name: str) -> None:
        try:
            await self.conn.run("CREATE", quote(encode_mailbox(name)))
        except CommandFailed as exc:
            if "ALREADYEXISTS" not in exc.response.code.upper():
                raise
        with contextlib.suppress(CommandFailed):
            await self.conn.run("SUBSCRIBE", quote(encode_mailbox(name)))

    async def rename_folder(self, old: str, new: str) -> None:
        await self.conn.run("RENAME", quote(encode_mailbox(old)), quote(encode_mailbox(new)))
        if self.selected in (old, new):
            self.selected = None

    async def delete_folder(self, name: str) -> None:
        if self.selected == name:
            await self.conn.run("UNSELECT" if "UNSELECT" in self.conn.caps else "CLOSE")
            self.selected = None
        try:
            await self.conn.run("DELETE", quote(encode_mailbox(name)))
        except CommandFailed as exc:
            if "NONEXISTENT" not in exc.response.code.upper():
                raise

    # -- mailbox ----------------------------------------------------------------------

    async def select(
        self, name: str, *, readonly: bool = False, qresync: tuple[int, int] | None = None
    ) -> MailboxState:
        verb = "EXAMINE" if readonly else "SELECT"
        args = [verb, quote(encode_mailbox(name))]
        if qresync and self.caps.qresync:
            args.append(f"(QRESYNC ({qresync[0]} {qresync[1]}))")
        elif self.caps.condstore:
            args.append("(CONDSTORE)")
        self.selected = None
        cmd = await self.conn.run(*args)
        self.selected = name
        uidvalidity = uidnext = exists = 0
        modseq: int | None = None
        changed: dict[int, MessageFlags] = {}
        vanished: set[int] = set()
        for resp in cmd.untagged:
            code = resp.code.split()
            if len(code) == 2 and code[1].isdigit():
                key = code[0].upper()
                if key == "UIDVALIDITY":
                    uidvalidity = int(code[1])
                elif key == "UIDNEXT":
                    uidnext = int(code[1])
                elif key == "HIGHESTMODSEQ":
                    modseq = int(code[1])
            if resp.kind == "EXISTS":
                exists = int(resp.values[0])
            elif resp.kind == "VANISHED":
                vanished |= parse_seqset(str(resp.values[-1]))
            elif resp.kind == "FETCH":
                item = fetch_items(resp)
                if "UID" in item:
                    uid = number(item["UID"])
                    changed[uid] = MessageFlags(
                        uid, flag_set(item.get("FLAGS")), modseq_of(item.get("MODSEQ"))
                    )
        return MailboxState(uidvalidity, uidnext, exists, modseq, changed, frozenset(vanished))

    async def list_flags(self, changed_since: int | None = None) -> list[MessageFlags]:
        attrs = "(UID FLAGS MODSEQ)" if self.caps.condstore else "(UID FLAGS)"
        extra = f" (CHANGEDSINCE {changed_since})" if changed_since and self.caps.condstore else ""
        cmd = await self.conn.run(f"UID FETCH 1:* {attrs}{extra}")
        out = []
        for resp in cmd.untagged:
            if resp.kind == "FETCH":
                item = fetch_items(resp)
                if "UID" in item:
                    out.append(
                        MessageFlags(
                            number(item["UID"]),
                            flag_set(item.get("FLAGS")),
                            modseq_of(item.get("MODSEQ")),
                        )
                    )
        return out

    async def list_uids(self) -> set[int]:
        if self.caps.esearch:
            cmd = await self.conn.run("UID SEARCH RETURN (ALL) ALL")
            found: set[int] = set()
            for r in cmd.untagged:
                if r.kind == "ESEARCH":
                    found |= esearch_all(r.values)
            return found
        cmd = await self.conn.run("UID SEARCH ALL")
        return {
            int(v)
            for r in cmd.untagged
            if r.kind == "SEARCH"
            for v in r.values[1:]
            if str(v).isdigit()
        }

    async def fetch(
        self, uids: Iterable[int], *, headers_only: bool = False
    ) -> AsyncIterator[FetchedMessage]:
        ordered = sorted(set(uids))
        if not ordered:
            return
        what = "BODY.PEEK[HEADER] BODYSTRUCTURE" if headers_only else "BODY.PEEK[]"
        attrs = f"(UID FLAGS RFC822.SIZE {what}" + (" MODSEQ)" if self.caps.condstore else ")")
        queue: asyncio.Queue[FetchedMessage | BaseException | None] = asyncio.Queue(16)
        too_large: dict[int, int] = {}  # UID → size of messages over the literal limit

        async def sink(resp: Response) -> None:
            if resp.kind != "FETCH":
                return
            item = fetch_items(resp)
            if "UID" not in item:
                return
            body = item.get("BODY[]")
            if isinstance(body, TooLarge):
                too_large[number(item["UID"])] = body.size  # its header block comes later
                return
            raw = body if isinstance(body, bytes) else None
            size = number(item.get("RFC822.SIZE") or 0)
            header = item.get("BODY[HEADER]")
            await queue.put(
                FetchedMessage(
                    number(item["UID"]),
                    flag_set(item.get("FLAGS")),
                    modseq_of(item.get("MODSEQ")),
                    raw,
                    size or len(raw or b""),
                    header=header if isinstance(header, bytes) else None,
                    structure=item.get("BODYSTRUCTURE"),
                )
            )

        async def produce() -> None:
            inflight: deque[Any] = deque()
            try:
                for i in range(0, len(ordered), FETCH_BATCH):
                    batch = seqset(ordered[i : i + FETCH_BATCH])
                    inflight.append(await self.conn.send(f"UID FETCH {batch} {attrs}", sink=sink))
                    if len(inflight) >= IN_FLIGHT:
                        await self.conn.wait(inflight.popleft())
                while inflight:
                    await self.conn.wait(inflight.popleft())
                if too_large:
                    # Over the literal limit: the header block and the structure instead,
                    # so the item is kept with every property its headers give.
                    heads = attrs.replace("BODY.PEEK[]", "BODY.PEEK[HEADER] BODYSTRUCTURE")
                    await self.conn.run(f"UID FETCH {seqset(too_large)} {heads}", sink=sink)
                await queue.put(None)
            except BaseException as exc:
                await queue.put(exc)

        task = asyncio.ensure_future(produce())
        finished = False
        try:
            while (got := await queue.get()) is not None:
                if isinstance(got, BaseException):
                    raise got
                yield got
            finished = True
        finally:
            if not finished:
                task.cancel()
                await self.conn.close()  # the stream is mid-response: start over
            await asyncio.gather(task, return_exceptions=True)

    async def fetch_sections(self, wanted: dict[int, list[str]]) -> dict[int, dict[str, bytes]]:
        out: dict[int, dict[str, bytes]] = {}

        def sink(resp: Response) -> None:
            if resp.kind != "FETCH":
                return
            item = fetch_items(resp)
            if "UID" in item:
                out[number(item["UID"])] = {
                    key[5:-1]: value
                    for key, value in item.items()
                    if key.startswith("BODY[") and isinstance(value, bytes)
                }

        inflight: deque[Any] = deque()
        for uid, sections in sorted(wanted.items()):
            if not sections:
                continue
            peek = " ".join(f"BODY.PEEK[{s}]" for s in sections)
            inflight.append(await self.conn.send(f"UID FETCH {uid} (UID {peek})", sink=sink))
            if len(inflight) >= FETCH_BATCH:
                await self.conn.wait(inflight.popleft())
        while inflight:
            await self.conn.wait(inflight.popleft())
        return out

    async def search_uids(
        self, uids: Iterable[int], *, before: date | None = None, larger: int | None = None
    ) -> set[int]:
        which = seqset(uids)
        if not which or (before is None and larger is None):
            return set()
        criteria = [f"UID {which}"]
        if before is not None:
            month = _MONTHS[before.month - 1]
            criteria.append(f"BEFORE {before.day}-{month}-{before.year}")
        if larger is not None:
            criteria.append(f"LARGER {larger}")
        cmd = await self.conn.run("UID SEARCH " + " ".join(criteria))
        return {
            int(v)
            for r in cmd.untagged
            if r.kind == "SEARCH"
            for v in r.values[1:]
            if str(v).isdigit()
        }

    async def message_ids(self, uids: Iterable[int] | None = None) -> dict[int, str]:
        which = "1:*" if uids is None else seqset(uids)
        if not which:
            return {}
        cmd = await self.conn.run(f"UID FETCH {which} (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out: dict[int, str] = {}
        for resp in cmd.untagged:
            if resp.kind != "FETCH":
                continue
            item = fetch_items(resp)
            header = next((v for k, v in item.items() if k.startswith("BODY[")), b"")
            text = (
                header.decode("utf-8", "replace")
                if isinstance(header, bytes)
                else str(header or "")
            )
            m = _MSGID.search(text)
            if m and "UID" in item:
                out[number(item["UID"])] = m.group(0)
        return out

    async def store_flags(self, uid: int, add: Iterable[str], remove: Iterable[str]) -> int | None:
        """A server refuses a whole STORE for one keyword it will not take (Dovecot: over 50
        characters): then each keyword is stored on its own, and those refused are left out
        (`last_refused`)."""
        modseq = None
        refused: set[str] = set()
        for sign, flags in (("+", sorted(add)), ("-", sorted(remove))):
            if not flags:
                continue
            try:
                modseq = await self._store(uid, sign, flags) or modseq
            except CommandFailed:
                keywords = [f for f in flags if not f.startswith("\\")]
                if not keywords:
                    raise
                system = [f for f in flags if f.startswith("\\")]
                if system:
                    modseq = await self._store(uid, sign, system) or modseq
                for keyword in keywords:
                    try:
                        modseq = await self._store(uid, sign, [keyword]) or modseq
                    except CommandFailed as exc:
                        log.warning("the server refused the keyword %r: %s", keyword, exc)
                        refused.add(keyword)
        self.last_refused = frozenset(refused)
        return modseq

    async def _store(self, uid: int, sign: str, flags: list[str]) -> int | None:
        words = " ".join(encode_keyword(f) for f in flags)
        cmd = await self.conn.run(f"UID STORE {uid} {sign}FLAGS ({words})")
        modseq = None
        for resp in cmd.untagged:
            if resp.kind == "FETCH":
                modseq = modseq_of(fetch_items(resp).get("MODSEQ")) or modseq
        return modseq

    async def append(self, mailbox: str, raw: bytes, flags: Iterable[str]) -> int | None:
        """A server that refuses the message for its keywords gets it without them; they are
        `last_refused` then (the caller may store them one by one)."""
        wanted = sorted(flags)
        self.last_refused = frozenset()
        try:
            return await self._append(mailbox, raw, wanted)
        except CommandFailed:
            keywords = frozenset(f for f in wanted if not f.startswith("\\"))
            if not keywords:
                raise
            uid = await self._append(mailbox, raw, [f for f in wanted if f not in keywords])
            self.last_refused = keywords
            return uid

    async def _append(self, mailbox: str, raw: bytes, flags: list[str]) -> int | None:
        cmd = await self.conn.run(
            "APPEND",
            quote(encode_mailbox(mailbox)),
            f"({' '.join(encode_keyword(f) for f in flags)})",
            raw,
        )
        resp = cmd.done.result()
        code = resp.code.split()
        if len(code) == 3 and code[0].upper() == "APPENDUID" and code[2].isdigit():
            return int(code[2])
        return None

    async def search_message_id(self, message_id: str) -> list[int]:
        # a header is searched unfolded: line breaks in the value are no part of it
        unfolded = message_id.replace("\r", "").replace("\n", "").replace("\0", "")
        cmd = await self.conn.run(f"UID SEARCH HEADER Message-ID {quote(unfolded)}")
        return sorted(
            int(v)
            for r in cmd.untagged
            if r.kind == "SEARCH"
            for v in r.values[1:]
            if str(v).isdigit()
        )

    async def move(self, uid: int, mailbox: str) -> int | None:
        target = quote(encode_mailbox(mailbox))
        verb = "MOVE" if self.caps.move else "COPY"
        cmd = await self.conn.run(f"UID {verb} {uid} {target}")
        new_uid = None
        for resp in [*cmd.untagged, cmd.done.result()]:
            code = resp.code.split()
            if len(code) == 4 and code[0].upper() == "COPYUID":
                new_uid = int(parse_seqset(code[3]).pop()) if code[3] else None
        if new_uid is None and self.caps.uidplus:
            raise MessageGone(f"message {uid} is no longer in {self.selected}")
        if verb == "COPY":
            try:
                await self.expunge([uid])
            except Refused as exc:  # copied all the same: not a refused move
                raise UpstreamError(f"the copy of message {uid} was made: {exc}") from exc
        return new_uid

    async def expunge(self, uids: Iterable[int]) -> None:
        which = seqset(uids)
        if not which:
            return
        await self.conn.run(f"UID STORE {which} +FLAGS.SILENT (\\Deleted)")
        await self.conn.run(f"UID EXPUNGE {which}" if self.caps.uidplus else "EXPUNGE")

    async def idle(
        self, seconds: float, stop: asyncio.Event | None = None, watch: Watch | None = None
    ) -> bool:
        if not self.caps.notify or watch is None:
            if watch is not None and watch.differs():
                return True
            if not self.caps.idle:
                await asyncio.sleep(seconds)
                await self.conn.run("NOOP")
                return True
            return await self.conn.idle(seconds, stop)
        # NOTIFY only for the wait: during a run no STATUS or LIST arrives unasked. Its
        # STATUS answers give every other mailbox's marks to compare with the cache.
        cmd = await self.conn.run(NOTIFY_SET)
        for resp in cmd.untagged:
            if resp.kind == "STATUS" and len(resp.values) >= 3:
                watch.current[decode_mailbox(str(resp.values[1]))] = _status_mark(resp.values[2])
        changed = watch.differs(everywhere=True) or await self.conn.idle(seconds, stop)
        await self.conn.run("NOTIFY NONE")  # not after a failure: the connection is dropped
        return changed

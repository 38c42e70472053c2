"""The IMAP4rev1 protocol layer: tagged commands (pipelined), literals both ways, untagged
responses parsed into nested lists, a bounded read of large literals.

Values of a parsed response: `str` for atoms and quoted strings, `bytes` for literals, `None`
for NIL, `list` for parenthesized lists. A literal larger than `max_literal` is read and
thrown away in chunks and replaced by a `TooLarge` marker, so a hostile or huge message
cannot exhaust memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.upstream.base import ConnectFailed, Refused, UpstreamError
from bridge.upstream.tls import untrusted

MAX_LINE = 1 << 20  # one response line without its literals
MAX_LITERAL = 1 << 32  # a larger literal announcement is taken for a broken server
# An upload leaves the send buffer long before the server has it: the answer to a command
# with literals is waited for that much longer, as if the link carried at least this rate.
UPLOAD_MIN_RATE = 32 << 10
CHUNK = 1 << 16
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_CODE = re.compile(r"^\[([^\]]*)\]\s*")
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.S)
_ESCAPED = re.compile(rb"\\(.)", re.S)
_ATOM = re.compile(rb"[^ ()\r\n\[\]]+")
_ANNOUNCEMENT = re.compile(rb"\{\d+\+?\}\r\n")  # a literal's, to fullmatch at its "{"
_BRACKET_PAIR = re.compile(r"\[[^\[\]() ]*\]")


def _plain_token(group: bytes) -> bytes:
    """One token of the usual segment, which `_plain_tokens` reads in one pass: a
    parenthesis, a quoted string without escapes, an atom (its bracketed sections nesting
    no brackets) that ends where the general loop would end it, or the literal announcement
    at the end. `group` opens each alternative's group. Any other segment takes the
    general loop."""
    return (
        rb"[ \r\n]*+(?:" + group + rb"\()|" + group + rb"\))|" + group + rb'"[^"\\]*+")|'
        + group + rb'(?:[^ ()\r\n\[\]"{]|\[[^\[\]]*+\])++)(?=[ ()\r\n]|\Z)'
        rb"|\{\d+\+?\}\r\n\Z)"
    )  # fmt: skip


_PLAIN_TOKENS = re.compile(_plain_token(b"("))  # (, ), quoted string, atom
# without groups: a group inside a possessive repeat trips the re module of Python 3.11
_PLAIN_SEGMENT = re.compile(rb"(?:" + _plain_token(b"(?:") + rb")*+[ \r\n]*+")

Value = Any


@dataclass(frozen=True)
class TooLarge:
    size: int


@dataclass
class Response:
    """One untagged (`tag == "*"`) or tagged response."""

    tag: str
    values: list[Value]
    text: str = ""  # human text of a status response
    code: str = ""  # response code of a status response, without brackets
    # OK/NO/BAD/BYE/PREAUTH, FETCH/EXISTS/EXPUNGE (after a number), LIST, ... (set once:
    # a response is read several times on its way, never changed)
    kind: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = self.values
        if len(values) >= 2 and isinstance(values[0], str) and values[0].isdigit():
            self.kind = str(values[1]).upper()
        else:
            self.kind = str(values[0]).upper() if values else ""


class CommandFailed(Refused):
    def __init__(self, command: str, response: Response) -> None:
        super().__init__(f"{command}: {response.kind} {response.text}".strip())
        self.response = response


@dataclass
class Command:
    tag: str
    name: str
    done: asyncio.Future[Response]
    untagged: list[Response] = field(default_factory=list)
    sink: Callable[[Response], Any] | None = None  # may return an awaitable (back-pressure)


def _tokens(text: bytes, stack: list[list[Value]]) -> None:
    """Tokenize one segment of a response into the current list on `stack`. The readings
    are tried cheapest first; each one gives what the general loop gives, or declines."""
    if text == b")\r\n":  # what follows the literal of a FETCH: the list closes
        if len(stack) > 1:
            stack.pop()
        return
    if not _simple_tokens(text, stack) and not _plain_tokens(text, stack):
        _general_tokens(text, stack)


def _simple_tokens(text: bytes, stack: list[list[Value]]) -> bool:
    """The segments of the usual FETCH responses, read without a regex over the whole line
    (`_plain_tokens` takes about thrice as long): no quoted string, no control character,
    brackets only in pairs holding no space, parenthesis or bracket (`BODY[]`), and a
    literal announcement, if any, at the end and after a space or parenthesis. Then the
    atoms are exactly the runs between spaces and parentheses, and the segment may be
    decoded at once: in UTF-8 an ASCII byte always stands for itself, so decoding the whole
    and cutting at ASCII delimiters gives what decoding each atom gives. Returns False,
    with `stack` untouched, for any other segment."""
    end = len(text)
    if text.endswith(b"}\r\n"):
        k = text.rfind(b"{")
        if k < 0 or not _ANNOUNCEMENT.fullmatch(text, k):
            return False
        if k > 0 and text[k - 1] not in b" ()":
            return False  # "{" within an atom: the general loop reads it into the atom
        end = k
    elif text.endswith(b"\r\n"):
        end -= 2
    line = text[:end].decode("utf-8", "replace")
    # isprintable: no CR, LF, tab or other control, and no whitespace but the space, so
    # that str.split cuts where the general loop does
    if not line.isprintable() or '"' in line:
        return False
    if "[" in line or "]" in line:
        # The general loop reads a bracketed section into its atom, delimiters and all;
        # pairs that hold no delimiter and nest no bracket change nothing to the cuts.
        pairs, i = 0, line.find("[")
        while i >= 0:
            pair = _BRACKET_PAIR.match(line, i)
            if pair is None:
                return False
            pairs += 1
            i = line.find("[", pair.end())
        if pairs != line.count("]"):
            return False
    # str.upper maps each character on its own (no context): no "NIL" in the upper-cased
    # whole, no atom that reads as NIL (as "nil" or "n\u0131l" do) in it
    nil = "NIL" in line.upper()
    current = stack[-1]
    for token in line.replace("(", " ( ").replace(")", " ) ").split():
        if token == "(":
            inner: list[Value] = []
            current.append(inner)
            stack.append(inner)
            current = inner
        elif token == ")":
            if len(stack) > 1:
                stack.pop()
                current = stack[-1]
        elif nil and token.upper() == "NIL":
            current.append(None)
        else:
            current.append(token)
    return True


def _plain_tokens(text: bytes, stack: list[list[Value]]) -> bool:
    """The usual segment with quoted strings (a BODYSTRUCTURE, a LIST), read in one regex
    pass (`_PLAIN_SEGMENT`); False, with `stack` untouched, for any other segment."""
    if not _PLAIN_SEGMENT.fullmatch(text):
        return False
    for opening, closing, quoted, atom in _PLAIN_TOKENS.findall(text):
        if atom:
            word = atom.decode("utf-8", "replace")
            stack[-1].append(None if word.upper() == "NIL" else word)
        elif opening:
            inner: list[Value] = []
            stack[-1].append(inner)
            stack.append(inner)
        elif quoted:
            stack[-1].append(quoted[1:-1].decode("utf-8", "replace"))
        elif closing and len(stack) > 1:
            stack.pop()
        # else the literal announcement, always last (the literal follows)
    return True


def _general_tokens(text: bytes, stack: list[list[Value]]) -> None:
    """Any segment, one token at a time: escapes in quoted strings, unterminated ones,
    brackets nesting or holding delimiters (`BODY[HEADER.FIELDS (TO)]`), stray bytes."""
    i, n = 0, len(text)
    while i < n:
        c = text[i : i + 1]
        if c in b" \r\n":
            i += 1
        elif c == b"(":
            new: list[Value] = []
            stack[-1].append(new)
            stack.append(new)
            i += 1
        elif c == b")":
            if len(stack) > 1:
                stack.pop()
            i += 1
        elif c == b'"':
            quoted = _QUOTED.match(text, i)
            if quoted is not None:  # the common case, without a loop per character
                body = quoted.group(1)
                if b"\\" in body:
                    body = _ESCAPED.sub(rb"\1", body)
                stack[-1].append(body.decode("utf-8", "replace"))
                i = quoted.end()
                continue
            j, buf = i + 1, bytearray()
            while j < n and text[j : j + 1] != b'"':
                if text[j : j + 1] == b"\\" and j + 1 < n:
                    j += 1
                buf += text[j : j + 1]
                j += 1
            stack[-1].append(buf.decode("utf-8", "replace"))
            i = j + 1
        elif c == b"{" and _LITERAL.match(text, i):
            return  # the literal itself follows as the next segment
        else:
            plain = _ATOM.match(text, i)
            j = plain.end() if plain is not None else i
            if j > i and text[j : j + 1] not in b"[]":  # no bracketed section: done
                atom = text[i:j].decode("utf-8", "replace")
                stack[-1].append(None if atom.upper() == "NIL" else atom)
                i = j
                continue
            j, depth = i, 0
            while j < n:
                ch = text[j : j + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth <= 0 and ch in b" ()\r\n":
                    break
                j += 1
            atom = text[i:j].decode("utf-8", "replace")
            stack[-1].append(None if atom.upper() == "NIL" else atom)
            i = j


_UNQUOTABLE = re.compile(r"[\r\n\0]")


def quote(s: str) -> str:
    """An IMAP quoted string. A line break or NUL cannot be in one: sent anyway, it would end
    the command there and the rest would be read as a command of its own, so it is refused
    (UpstreamError) before anything is sent."""
    if _UNQUOTABLE.search(s):
        raise UpstreamError(f"{s[:60]!r} cannot be sent to the IMAP server: a line break or NUL")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Connection:
    """One IMAP connection with a reader task that dispatches responses."""

    def __init__(self, max_literal: int = 64 << 20, timeout: float = 60.0) -> None:
        self.max_literal = max_literal
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.caps: set[str] = set()
        self.on_untagged: Callable[[Response], None] | None = None
        self._tags = 0
        self._pending: dict[str, Command] = {}
        self._continuation: asyncio.Future[str] | None = None
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed: BaseException | None = None
        self.literal_plus = False
        # Timeouts count from the last sign of life: a slow link that keeps delivering is
        # not a dead one, a stalled server is (after `timeout` seconds without a byte).
        self._activity = time.monotonic()
        self._in_sink = False  # the reader waits for the consumer, not for the server
        self.idling = False  # an IDLE is in progress: no other command may be sent

    # -- connection -------------------------------------------------------------------

    async def open(self, host: str, port: int, tls: str, context: ssl.SSLContext | None) -> None:
        try:
            self.reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=context if tls == "implicit" else None, limit=MAX_LINE
                ),
                self.timeout,
            )
            self.writer = writer
            await asyncio.wait_for(self._greeting(tls, context), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            await self.close()
            why = untrusted(exc) or str(exc) or f"no answer within {self.timeout:g} s"
            raise ConnectFailed(f"cannot connect to {host}:{port}: {why}") from exc
        except BaseException:
            await self.close()
            raise
        self._task = asyncio.ensure_future(self._read_loop())

    async def _greeting(self, tls: str, context: ssl.SSLContext | None) -> None:
        assert self.writer is not None
        greeting = await self._read_response()
        if greeting.kind == "BYE":
            raise ConnectFailed(f"the server refused the connection: {greeting.text}")
        if greeting.kind not in ("OK", "PREAUTH"):
            raise ConnectFailed(f"not an IMAP server: it greeted with {greeting.kind!r}")
        if tls == "starttls":
            self.writer.write(b"S0 STARTTLS\r\n")
            await self.writer.drain()
            while (resp := await self._read_response()).tag != "S0":
                pass
            if resp.kind != "OK":
                raise ConnectFailed(f"STARTTLS refused: {resp.text}")
            assert self.reader is not None
            if getattr(self.reader, "_buffer", None):
                # Bytes sent in clear text after the OK would be read as if they had come
                # over TLS: an injection (CVE-2011-0411 and its kin), never a server's right.
                raise ConnectFailed("the server sent data after agreeing to STARTTLS")
            await self.writer.start_tls(context or ssl.create_default_context())
            self.caps = set()  # what was announced in clear text is not to be trusted

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            self.writer = None
        self._fail_all(ConnectFailed("connection closed"))

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done() and self._closed is None

    # -- reading ----------------------------------------------------------------------

    async def _readline(self) -> bytes:
        assert self.reader is not None
        try:
            line = await self.reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            raise ConnectFailed("the server sent a response line over 1 MiB") from exc
        return line

    async def _read_literal(self, size: int) -> bytes | TooLarge:
        assert self.reader is not None
        if size <= CHUNK:
            data = await self.reader.readexactly(size)
            self._activity = time.monotonic()
            return data
        if size > MAX_LITERAL:
            raise ConnectFailed(f"the server announced a literal of {size} bytes")
        keep = size <= self.max_literal
        # In pieces, each one a sign of life (a slow link is not a stalled server); those
        # kept are joined once at the end (a bytearray grown piece by piece, then copied
        # into bytes, copies each byte once more, and again whenever it grows).
        chunks: list[bytes] = []
        left = size
        while left:
            chunk = await self.reader.readexactly(min(CHUNK, left))
            self._activity = time.monotonic()
            left -= len(chunk)
            if keep:
                chunks.append(chunk)
        return b"".join(chunks) if keep else TooLarge(size)

    async def _read_response(self) -> Response:
        line = await self._readline()
        first = line
        tag, _, rest = first.partition(b" ")
        segment = rest
        # A continuation request is not parsed; a literal it announces is read all the same.
        parsed = not first.startswith(b"+")
        values: list[Value] = []
        stack = [values]
        while True:
            # Each segment is tokenized as it arrives, a literal put where it stands (no
            # list of segments to go through again once the response is complete).
            if parsed:
                _tokens(segment, stack)
            # readuntil gives a line that ends in its only CRLF: an announcement ends with it
            m = _LITERAL.search(line) if line.endswith(b"}\r\n") else None
            if m is None:
                break
            literal = await self._read_literal(int(m.group(1)))
            if parsed:
                stack[-1].append(literal)
            segment = line = await self._readline()
        if not parsed:
            return Response("+", [], first[1:].strip().decode("utf-8", "replace"))
        resp = Response(tag.decode("ascii", "replace"), values)
        if resp.tag in ("*", "+") or resp.tag in self._pending:
            self._activity = time.monotonic()  # lines of no command are no sign of life
        if resp.kind in ("OK", "NO", "BAD", "BYE", "PREAUTH") and not (
            values and isinstance(values[0], str) and values[0].isdigit()
        ):
            text = rest.split(b" ", 1)[1].decode("utf-8", "replace").strip() if b" " in rest else ""
            m2 = _CODE.match(text)
            if m2:
                resp.code, text = m2.group(1), text[m2.end() :]
            resp.text = text
        return resp

    async def _read_loop(self) -> None:
        try:
            while True:
                resp = await self._read_response()
                await self._dispatch(resp)
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.IncompleteReadError, UpstreamError, ssl.SSLError) as exc:
            self._fail_all(ConnectFailed(f"connection lost: {exc}"))
        except Exception as exc:
            self._fail_all(ConnectFailed(f"unreadable server response: {exc!r}"))

    async def _dispatch(self, resp: Response) -> None:
        if resp.tag == "+":
            if self._continuation is not None and not self._continuation.done():
                self._continuation.set_result(resp.text)
            return
        if resp.tag == "*":
            if resp.kind == "CAPABILITY":
                self.caps = {str(v).upper() for v in resp.values[1:]}
            elif resp.code.upper().startswith("CAPABILITY "):
                self.caps = {v.upper() for v in resp.code.split()[1:]}
            if resp.kind == "BYE":
                self._closed = ConnectFailed(f"the server closed the connection: {resp.text}")
            # Commands are answered in order: untagged data belongs to the oldest one.
            cmd = next(iter(self._pending.values()), None)
            if cmd is not None and cmd.sink is not None:
                result = cmd.sink(resp)
                if asyncio.iscoroutine(result):
                    self._in_sink = True
                    try:
                        await result
                    finally:
                        self._in_sink = False
                        self._activity = time.monotonic()
            elif cmd is not None:
                cmd.untagged.append(resp)
            if self.on_untagged is not None:
                self.on_untagged(resp)
            return
        cmd = self._pending.pop(resp.tag, None)
        if cmd is not None and not cmd.done.done():
            if resp.code.upper().startswith("CAPABILITY "):
                self.caps = {v.upper() for v in resp.code.split()[1:]}
            cmd.done.set_result(resp)

    def _fail_all(self, exc: BaseException) -> None:
        self._closed = exc = self._closed or exc  # the first cause (a BYE's text) is kept
        waiting: list[asyncio.Future[Any]] = [cmd.done for cmd in self._pending.values()]
        if self._continuation is not None:
            waiting.append(self._continuation)
        for fut in waiting:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # no "never retrieved" noise when nobody awaits it now
        self._pending.clear()

    # -- commands ---------------------------------------------------------------------

    async def send(
        self,
        *parts: str | bytes,
        sink: Callable[[Response], Any] | None = None,
    ) -> Command:
        """Send one command (str parts joined by spaces; bytes parts are sent as literals).
        Returns at once; await `command.done` (or use `run`) for the completion."""
        if self._closed is not None or self.writer is None:
            raise ConnectFailed(f"not connected ({self._closed or 'closed'})")
        async with self._send_lock:
            self._tags += 1
            tag = f"K{self._tags}"
            name = str(parts[0]).split(" ", 1)[0].upper() if parts else ""
            if name == "UID" and isinstance(parts[0], str):
                name = " ".join(parts[0].split(" ", 2)[:2]).upper()
            cmd = Command(tag, name, asyncio.get_running_loop().create_future(), sink=sink)
            self._pending[tag] = cmd
            line = tag.encode()
            uploaded = 0
            try:
                for part in parts:
                    if isinstance(part, bytes):
                        plus = "+" if self.literal_plus else ""
                        self.writer.write(line + f" {{{len(part)}{plus}}}\r\n".encode())
                        if not plus:
                            self._continuation = asyncio.get_running_loop().create_future()
                            await self._drain()
                            await asyncio.wait_for(
                                asyncio.shield(self._wait_continuation(cmd)), self.timeout
                            )
                        self.writer.write(part)
                        uploaded += len(part)
                        line = b""
                    else:
                        line += b" " + part.encode()
                self.writer.write(line + b"\r\n")
                await self._drain()
                self._activity = time.monotonic() + uploaded / UPLOAD_MIN_RATE
            except (OSError, TimeoutError) as exc:
                self._fail_all(ConnectFailed(f"connection lost: {exc}"))
                raise ConnectFailed(f"connection lost: {exc}") from exc
        return cmd

    async def _drain(self) -> None:
        """Flush the send buffer; fails after `timeout` seconds in which the server took
        nothing (a slow link that keeps taking bytes is waited for)."""
        assert self.writer is not None
        transport = self.writer.transport
        flushing = asyncio.ensure_future(self.writer.drain())
        try:
            left = transport.get_write_buffer_size()
            while True:
                done, _ = await asyncio.wait({flushing}, timeout=self.timeout)
                if done:
                    flushing.result()
                    return
                now = transport.get_write_buffer_size()
                if now >= left:
                    raise TimeoutError(f"the server took nothing for {self.timeout:g} s")
                left = now
        finally:
            flushing.cancel()

    async def _wait_continuation(self, cmd: Command) -> None:
        assert self._continuation is not None
        cont = self._continuation
        waiters: set[asyncio.Future[Any]] = {cont, cmd.done}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not cont.done():
            resp = cmd.done.result()
            raise CommandFailed(cmd.name, resp)

    async def wait(self, cmd: Command) -> Command:
        while True:
            quiet = 0.0 if self._in_sink else time.monotonic() - self._activity
            try:
                resp = await asyncio.wait_for(
                    asyncio.shield(cmd.done), max(self.timeout - quiet, 0.01)
                )
                break
            except TimeoutError as exc:
                if self._in_sink or time.monotonic() - self._activity < self.timeout:
                    continue  # still receiving (a slow link), or the consumer is busy
                self._fail_all(ConnectFailed(f"{cmd.name}: no answer within {self.timeout:g} s"))
                raise ConnectFailed(f"{cmd.name}: the server did not answer in time") from exc
        if resp.kind != "OK":
            raise CommandFailed(cmd.name, resp)
        return cmd

    async def run(
        self, *parts: str | bytes, sink: Callable[[Response], Any] | None = None
    ) -> Command:
        return await self.wait(await self.send(*parts, sink=sink))

    async def idle(self, seconds: float, stop: asyncio.Event | None = None) -> bool:
        """IDLE until the server announces a change, `stop` is set or `seconds` pass."""
        assert self.writer is not None
        event = asyncio.Event()
        previous = self.on_untagged

        def seen(resp: Response) -> None:
            if resp.kind in ("EXISTS", "EXPUNGE", "FETCH", "VANISHED", "RECENT", "STATUS", "LIST"):
                event.set()
            if previous is not None:
                previous(resp)

        self.on_untagged = seen
        try:
            self._continuation = asyncio.get_running_loop().create_future()
            cmd = await self.send("IDLE")
            self.idling = True
            await asyncio.wait_for(self._wait_continuation(cmd), self.timeout)
            waiters = [asyncio.ensure_future(event.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if self.writer is None:  # closed meanwhile (the user's "work offline")
                raise ConnectFailed("connection closed during IDLE")
            self.writer.write(b"DONE\r\n")
            await self._drain()
            self._activity = time.monotonic()
            await self.wait(cmd)
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"connection lost: {exc}") from exc
        finally:
            self.idling = False
            self.on_untagged = previous
        return event.is_set()

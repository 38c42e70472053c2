"""Parsing fetched messages in a worker process, so that a large pull uses a second core:
the event loop keeps reading the IMAP stream and feeding SQLite while the worker turns raw
messages into items.

The worker is started as the sync's other workers are (`workers.context()`: forked by a fork
server that has the parser imported, where the platform has one, else spawned), lazily, on
the first batch, and only for pulls large enough to pay for its start. It starts in a
thread (a fork server still importing makes the start wait), and batches parse here until
it says it is ready: the pull goes on meanwhile, on the core the worker does not have yet.
Batches go to it and their items come back over one duplex connection, as single pickled
blobs, in order; two threads of this process move them (the event loop never blocks on the
connection). Where the connection is a socket its buffers are enlarged so that a batch
passes in a few system calls: every call needs the GIL back, which a busy event loop hands
over only every `sys.getswitchinterval()` seconds.

Whatever goes wrong with the worker (it cannot start, it dies, it fails a batch) makes that
batch and the rest parse in this process instead: the pool is an optimization, never a
requirement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import queue
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from bridge.collector import tune_gc
from bridge.store.item_prep import prepare
from bridge.store.items import NewItem
from bridge.store.rfc822 import item_from_rfc822
from bridge.sync import workers
from bridge.sync.mail_props import apply_flags

log = logging.getLogger(__name__)

MIN_MESSAGES = 500  # a pull with fewer messages parses in this process
SOCKET_BUFFER = 4 << 20  # bytes; the OS may grant less
HELLO = b"kbridge-parse ready"  # the worker's first message


Message = tuple[bytes, frozenset[str]]  # a raw message and its IMAP flags


def parse_messages(messages: list[Message], prepared: bool = True) -> list[NewItem]:
    """Items from raw messages, with their flags, and (if `prepared`) their rows prepared
    for the store (`item_prep.prepare`: the store's transaction then only numbers them,
    else it computes them itself). Without their
    sources (the caller has the bytes already, and sending them back would copy them
    twice more) and without their texts (header block and bodies: the store reads them
    from the source, `store/texts.py`). A large
    attachment held as base64 in its message comes back as that part of the source
    (`blobs.SourcePart`): the store reads it from there, and its content is neither sent
    back nor stored twice."""
    items = []
    for raw, server_flags in messages:
        item = item_from_rfc822(raw, parts=True, texts=False)
        item.source = None
        apply_flags(item, server_flags)
        if prepared:
            item.prepared = prepare(item)
        items.append(item)
    return items


@dataclass(frozen=True)
class WorkerUsage:
    """What a worker process used, as it tells at its end (peak RSS where the platform
    has the `resource` module)."""

    cpu_s: float
    peak_rss_mb: float | None


def usage() -> WorkerUsage:
    """This process's usage so far."""
    try:
        import resource
    except ImportError:  # Windows
        return WorkerUsage(time.process_time(), None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, else KiB
    return WorkerUsage(time.process_time(), peak / (1 << 20 if sys.platform == "darwin" else 1024))


def serve(conn: Connection) -> None:
    """The worker process: parse each batch received, send its items back, until an empty
    message (answered with the worker's `WorkerUsage`) or the end of the connection."""
    _enlarge(conn)
    tune_gc()
    with conn:
        try:
            conn.send_bytes(HELLO)
        except OSError:
            return
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                return
            if not data:
                with contextlib.suppress(OSError):
                    conn.send_bytes(pickle.dumps(usage()))
                return
            try:
                reply = pickle.dumps(parse_messages(*pickle.loads(data)), pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # reported back; the batch parses in the sync process
                reply = pickle.dumps(RuntimeError(f"parsing worker: {exc!r}"))
            try:
                conn.send_bytes(reply)
            except OSError:
                return


def _enlarge(conn: Connection) -> None:
    """Large socket buffers on a socket connection (a no-op on pipes)."""
    try:
        fd = os.dup(conn.fileno())
    except (OSError, ValueError):
        return  # not a descriptor this platform can duplicate (a Windows pipe handle)
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        return
    with sock:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)


class _Worker:
    """One worker process and the two threads that start and feed it and read its
    answers."""

    def __init__(
        self,
        conn: Connection,
        process: Any,
        there: Connection,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.conn = conn
        self.process = process
        self._there = there  # the worker's end, closed here once the worker has it
        self.started = False  # the process started (set by the sending thread)
        # True once it said hello (batches go to it from then on); False: it never will
        self.hello: asyncio.Future[bool] = loop.create_future()
        self.outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.waiting: deque[asyncio.Future[bytes | None]] = deque()
        self.gone = False
        self.stopping = False  # set before the stop message: what follows is the usage
        self.usage: WorkerUsage | None = None
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._receive, args=(loop,), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, data: bytes) -> asyncio.Future[bytes | None]:
        """The future answer to `data` (None if the worker goes away first)."""
        answer: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self.waiting.append(answer)
        self.outbox.put(data)
        return answer

    def _launch(self) -> bool:
        """Start the process (from the sending thread, which then feeds it)."""
        try:
            self.process.start()
        except (OSError, RuntimeError, ValueError):
            log.warning("no parsing worker process; parsing in the sync process", exc_info=True)
            return False
        else:
            self.started = True
            return True
        finally:
            self._there.close()  # the worker has its own (or there is none: the end)

    def _send(self) -> None:
        if not self._launch():
            return
        while True:
            data = self.outbox.get()
            if data is None:
                with contextlib.suppress(OSError):
                    self.conn.send_bytes(b"")  # the worker stops
                return
            try:
                self.conn.send_bytes(data)
            except OSError:
                return  # the receiver sees the end too
            del data  # not held while waiting for the next batch

    def _receive(self, loop: asyncio.AbstractEventLoop) -> None:
        greeted = False
        while True:
            try:
                data: bytes | None = self.conn.recv_bytes()
            except (EOFError, OSError):
                data = None
            if data == HELLO and not greeted:
                greeted = True
                try:
                    loop.call_soon_threadsafe(self._hello)
                except RuntimeError:  # the loop is closed
                    return
                continue
            if self.stopping and data is not None and self.usage is None:
                told = _loads_usage(data)
                if told is not None:
                    self.usage = told
                    continue
            try:
                loop.call_soon_threadsafe(self._answer, data)
            except RuntimeError:  # the loop is closed
                return
            if data is None:
                return
            del data  # not held while waiting for the next answer

    @property
    def ready(self) -> bool:
        return self.hello.done() and self.hello.result()

    def _hello(self) -> None:
        if not self.hello.done():
            self.hello.set_result(True)

    def _answer(self, data: bytes | None) -> None:
        if data is None:  # the worker is gone: every batch still waiting parses here
            self.gone = True
            if not self.hello.done():
                self.hello.set_result(False)
            while self.waiting:
                future = self.waiting.popleft()
                if not future.done():
                    future.set_result(None)
            return
        if self.waiting:
            future = self.waiting.popleft()
            if not future.done():  # a cancelled caller: its answer is dropped
                future.set_result(data)

    def stop(self) -> None:
        """Blocking: let the worker finish what it was sent, then end it."""
        self.stopping = True
        self.outbox.put(None)
        self.threads[0].join(10)  # the sender, which started the process (or failed to)
        if self.started:
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        for thread in self.threads:  # both end with the connection
            thread.join(10)
        self.conn.close()


def _loads_usage(data: bytes) -> WorkerUsage | None:
    """The usage a stopping worker sent (None for an answer to a batch)."""
    try:
        told = pickle.loads(data)
    except Exception:
        return None
    return told if isinstance(told, WorkerUsage) else None


class ParsePool:
    """A lazily started worker process for `parse_messages`; close it when the sync is done
    (a later pull starts a new one). `used` collects what each worker that ended told of
    its usage."""

    def __init__(self) -> None:
        self.used: list[WorkerUsage] = []
        self._worker: _Worker | None = None
        self._broken = False  # the worker failed: this pool parses here from now on

    async def parse(self, messages: list[Message], prepared: bool = True) -> list[NewItem]:
        """`parse_messages`, sources included. Calls may overlap; each batch is answered
        in turn."""
        items: list[NewItem] | None = None
        worker = self._start()
        if worker is not None and worker.ready:
            # submitted before any await: the answers come back in the order of the calls
            request = (messages, prepared)
            data = await worker.submit(pickle.dumps(request, pickle.HIGHEST_PROTOCOL))
            result = pickle.loads(data) if data is not None else None
            if isinstance(result, list):
                items = result
            else:
                log.warning("the parsing worker failed (%s); parsing here", result)
                self._broken = True
        if items is None:  # the store prepares the rows here, as it writes them
            items = parse_messages(messages, prepared=False)  # (no worker, or not yet)
        for item, (raw, _) in zip(items, messages, strict=True):
            item.source = raw
        return items

    def _start(self) -> _Worker | None:
        worker = self._worker
        if worker is not None and worker.gone:
            self._broken = True
        if self._broken:
            return None
        if worker is not None:
            return worker
        ctx = workers.context()
        try:
            here, there = ctx.Pipe(duplex=True)
            # (every concrete context has Process; typeshed gives BaseContext none)
            process = cast(Any, ctx).Process(
                target=serve, args=(there,), daemon=True, name="kbridge-parse"
            )
        except (OSError, RuntimeError, ValueError):
            log.warning("no parsing worker process; parsing in the sync process", exc_info=True)
            self._broken = True
            return None
        _enlarge(here)
        # started by its sending thread: once per sync run
        self._worker = _Worker(here, process, there, asyncio.get_running_loop())
        return self._worker

    async def started(self) -> bool:
        """Start the worker if it is not, and wait until it takes batches (False: it
        will not; they parse here)."""
        worker = self._start()
        return worker is not None and await asyncio.shield(worker.hello)

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        self._broken = False
        if worker is not None:
            await asyncio.to_thread(worker.stop)
            if worker.usage is not None:
                self.used.append(worker.usage)

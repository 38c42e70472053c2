"""A TCP proxy on loopback that injects faults between a client and a server, for any
protocol (IMAP, HTTP, ...). Faults are switched at run time, from the test:

- `reset_after(n, direction)`: cut every open connection (RST) once `n` more bytes have
  gone in `direction` ("up": client → server, "down": server → client);
- `reset_on(pattern, direction)`: cut when `pattern` is seen in that direction, right
  after forwarding the bytes up to and including it (so the peer sees part of a command or
  of a literal, never the rest);
- `stall()`: stop forwarding both ways and stop reading, sockets kept open (a hung server);
  `stall_on(pattern, direction)`: the same, right after `pattern` went through;
- `throttle(bytes_per_second)`: a slow link, both ways;
- `clear()`: forward faithfully again. New connections are always accepted.

A fault fires once: after a reset the proxy forwards normally again unless told otherwise.
The proxy runs in its own thread with its own event loop, so synchronous test code and
code under test on another loop can both use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

UP, DOWN = "up", "down"
CHUNK = 1 << 16


@dataclass
class _Fault:
    direction: str
    action: str = "reset"  # or "stall"
    after: int | None = None  # bytes still to forward before the reset
    pattern: bytes | None = None
    fired: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Pipe:
    """One proxied connection: the two sockets' writers and a tail kept for pattern
    matching across reads."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tails: dict[str, bytes] = field(default_factory=lambda: {UP: b"", DOWN: b""})


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.Lock()
        self._fault: _Fault | None = None
        self._stalled = False
        self._rate: float | None = None
        self._pipes: set[_Pipe] = set()
        self.connections = 0  # accepted so far
        self.resets = 0  # connections cut by a fault
        self.bytes = {UP: 0, DOWN: 0}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._unstall = asyncio.Event()

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(10)
        return self

    async def _start(self) -> None:
        self._unstall.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            self._unstall.set()
            for pipe in list(self._pipes):
                self._abort(pipe)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- switches -----------------------------------------------------------------------

    def reset_after(self, n: int, direction: str = DOWN) -> threading.Event:
        """Cut the connections after `n` more bytes in `direction`; the returned event is
        set when it happened."""
        return self._arm(_Fault(direction, after=n))

    def reset_on(self, pattern: bytes, direction: str = UP) -> threading.Event:
        """Cut the connections right after `pattern` went through in `direction`."""
        return self._arm(_Fault(direction, pattern=pattern))

    def reset_now(self) -> None:
        """Cut every open connection at once."""

        def cut() -> None:
            for pipe in list(self._pipes):
                self._abort(pipe)

        self._loop.call_soon_threadsafe(cut)

    def stall_on(self, pattern: bytes, direction: str = DOWN) -> threading.Event:
        """Stall everything right after `pattern` went through in `direction`."""
        return self._arm(_Fault(direction, action="stall", pattern=pattern))

    def stall(self) -> None:
        self._stalled = True
        self._loop.call_soon_threadsafe(self._unstall.clear)

    def throttle(self, bytes_per_second: float | None) -> None:
        self._rate = bytes_per_second

    def clear(self) -> None:
        """Forward faithfully again (a stalled connection resumes)."""
        with self._lock:
            self._fault = None
        self._rate = None
        self._stalled = False
        self._loop.call_soon_threadsafe(self._unstall.set)

    def _arm(self, fault: _Fault) -> threading.Event:
        with self._lock:
            self._fault = fault
        return fault.fired

    # -- forwarding ---------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._rst(writer)
            return
        pipe = _Pipe(writer, s_writer)
        self._pipes.add(pipe)
        try:
            await asyncio.gather(
                self._forward(pipe, reader, s_writer, UP),
                self._forward(pipe, s_reader, writer, DOWN),
            )
        finally:
            self._pipes.discard(pipe)
            self._abort(pipe)

    async def _forward(
        self,
        pipe: _Pipe,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        try:
            while True:
                await self._unstall.wait()
                limit = CHUNK
                rate = self._rate
                if rate is not None:
                    limit = max(1, min(CHUNK, int(rate / 20)))
                data = await reader.read(limit)
                if not data:
                    with contextlib.suppress(OSError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                await self._unstall.wait()  # stalled while the read was pending
                data, fired = self._apply_fault(pipe, data, direction)
                if data:
                    writer.write(data)
                    self.bytes[direction] += len(data)
                    await writer.drain()
                if fired == "stall":
                    self.stall()
                elif fired:
                    self.resets += 1
                    for other in list(self._pipes):
                        self._abort(other)
                    return
                if rate is not None:
                    await asyncio.sleep(len(data) / rate)
        except (OSError, asyncio.IncompleteReadError):
            self._abort(pipe)

    def _apply_fault(self, pipe: _Pipe, data: bytes, direction: str) -> tuple[bytes, str]:
        """What of `data` to forward, and the fault to act on after it ("" for none)."""
        with self._lock:
            fault = self._fault
            if fault is None or fault.direction != direction:
                return data, ""
            if fault.after is not None:
                if len(data) < fault.after:
                    fault.after -= len(data)
                    return data, ""
                data = data[: fault.after]
            else:
                assert fault.pattern is not None
                seen = pipe.tails[direction] + data
                at = seen.find(fault.pattern)
                if at < 0:
                    pipe.tails[direction] = seen[-len(fault.pattern) :]
                    return data, ""
                end = at + len(fault.pattern) - len(pipe.tails[direction])
                data = data[: max(0, end)]
            self._fault = None
            fault.fired.set()
            return data, fault.action

    def _abort(self, pipe: _Pipe) -> None:
        self._pipes.discard(pipe)
        for w in (pipe.client, pipe.server):
            self._rst(w)

    @staticmethod
    def _rst(writer: asyncio.StreamWriter) -> None:
        """Close with a TCP reset (SO_LINGER 0), as a dropped link or a killed peer does."""
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport = writer.transport
        with contextlib.suppress(Exception):
            transport.abort()


@contextlib.contextmanager
def proxy(host: str, port: int) -> Iterator[FaultProxy]:
    """A running proxy to `host:port`, stopped at the end of the block."""
    p = FaultProxy(host, port).start()
    try:
        yield p
    finally:
        p.stop()

"""Where PUT bodies go: buffered for the kinds that are parsed whole, streamed into a blob
on the event loop for files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from wsgidav.dav_error import HTTP_REQUEST_ENTITY_TOO_LARGE, DAVError

from bridge.dav.provider import StoreProvider

_QUEUE_DEPTH = 4


class Buffer:
    """A PUT body that is parsed whole (mail, calendar, contact, note), up to a limit."""

    def __init__(self, limit: int, done: Any) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit
        self._done = done

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise DAVError(
                HTTP_REQUEST_ENTITY_TOO_LARGE,
                f"items of this kind may have at most {self._limit} bytes",
            )
        self._parts.append(data)

    def close(self) -> None:
        self._done(b"".join(self._parts))


class BlobSink:
    """A PUT body streamed into `store.items.stream_blob` on the event loop, a few chunks in
    flight at a time, so memory stays bounded whatever the size."""

    def __init__(self, provider: StoreProvider, done: Any) -> None:
        self._provider = provider
        self._done = done
        loop = provider.loop
        assert loop is not None
        self._loop = loop
        self._queue: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[int] | None = None
        asyncio.run_coroutine_threadsafe(self._start(), loop).result()

    async def _start(self) -> None:
        self._queue = asyncio.Queue(_QUEUE_DEPTH)
        self._task = asyncio.ensure_future(self._provider.store.items.stream_blob(self._chunks()))

    async def _chunks(self) -> AsyncIterator[bytes]:
        assert self._queue is not None
        while (data := await self._queue.get()) is not None:
            yield data

    async def _put(self, data: bytes | None) -> None:
        assert self._queue is not None and self._task is not None
        put = asyncio.ensure_future(self._queue.put(data))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            self._task.result()  # raises the stream's error

    async def _finish(self) -> int:
        await self._put(None)
        assert self._task is not None
        return await self._task

    async def _abort(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def write(self, data: bytes) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._put(data), self._loop).result()
        except BaseException:
            asyncio.run_coroutine_threadsafe(self._abort(), self._loop).result()
            raise

    def close(self) -> None:
        blob_id = self._provider.write(self._finish())
        self._done(blob_id)

    def abort(self) -> None:
        """The body did not arrive whole: drop what was streamed."""
        asyncio.run_coroutine_threadsafe(self._abort(), self._loop).result()

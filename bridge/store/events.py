"""In-process notification bus. The store publishes after each commit; subscribers (the
event stream of the API, later the sync engine) each get their own bounded queue."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """A MAPI-style notification: `type` is e.g. `object_created`, `new_mail`."""

    seq: int
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "type": self.type, **self.data}


class Subscription:
    """One subscriber's queue. If it falls behind by more than `maxsize` events, the
    backlog is dropped and a single `resync` event tells it to re-read state."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._overflowed = False

    def _offer(self, event: Event) -> None:
        if self._overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._overflowed = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(Event(event.seq, "resync", {"reason": "subscriber too slow"}))

    async def get(self) -> Event:
        event = await self._queue.get()
        if event.type == "resync":
            self._overflowed = False
        return event

    def close(self) -> None:
        self._bus._subs.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


class EventBus:
    """Fan-out of events with a short history for resuming (`Last-Event-ID`)."""

    def __init__(self, history: int = 2048, queue_size: int = 10000) -> None:
        self._subs: set[Subscription] = set()
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._seq = 0
        self._queue_size = queue_size

    @property
    def last_seq(self) -> int:
        return self._seq

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self._queue_size)
        self._subs.add(sub)
        return sub

    def publish(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        for etype, data in events:
            self._seq += 1
            event = Event(self._seq, etype, data)
            self._history.append(event)
            for sub in self._subs:
                sub._offer(event)

    def shutdown(self) -> None:
        """Tell every subscriber to stop (a `shutdown` event, delivered even when full)."""
        for sub in list(self._subs):
            while sub._queue.full():
                sub._queue.get_nowait()
            sub._queue.put_nowait(Event(self._seq, "shutdown"))

    def since(self, seq: int) -> list[Event] | None:
        """Events after `seq`, or None when the history no longer reaches back that far."""
        if seq >= self._seq:
            return []
        if not self._history or self._history[0].seq > seq + 1:
            return None
        return [e for e in self._history if e.seq > seq]

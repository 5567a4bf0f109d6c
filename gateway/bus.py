"""The event bus inside the gateway: everything outside the core (API, hubs, automations)
is a subscriber. Publishing never blocks and never waits for a subscriber; a slow one
loses its oldest events (and is told how many), never the gateway's time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Event:
    kind: str  # "state", "event", "availability", "device", "pending", "dropped"
    node: str  # the node id in hex ("" for the gateway itself)
    data: dict[str, Any]
    ts: float  # unix seconds

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind, "node": self.node, "ts": self.ts, **self.data}


class Subscription:
    """An async iterator of events, in publish order; close() ends it."""

    def __init__(self, bus: Bus, maxsize: int, kinds: frozenset[str] | None) -> None:
        self._bus = bus
        self._q: deque[Event] = deque()
        self._max = maxsize
        self._kinds = kinds
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0

    def _put(self, ev: Event) -> None:
        if self._kinds is not None and ev.kind not in self._kinds:
            return
        if len(self._q) >= self._max:
            self._q.popleft()
            self.dropped += 1
        self._q.append(ev)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def get_nowait(self) -> Event | None:
        if self.dropped:
            n, self.dropped = self.dropped, 0
            return Event("dropped", "", {"count": n}, self._q[0].ts if self._q else 0.0)
        return self._q.popleft() if self._q else None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            ev = self.get_nowait()
            if ev is not None:
                return ev
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None

    def close(self) -> None:
        self._closed = True
        self._bus._subs.discard(self)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)


class Bus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self.published = 0

    def subscribe(self, maxsize: int = 10000, kinds: set[str] | None = None) -> Subscription:
        s = Subscription(self, maxsize, frozenset(kinds) if kinds else None)
        self._subs.add(s)
        return s

    def listen(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """A synchronous listener, called inside publish (keep it short); returns remove."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def publish(self, ev: Event) -> None:
        self.published += 1
        for s in self._subs:
            s._put(ev)
        for cb in self._listeners:
            cb(ev)

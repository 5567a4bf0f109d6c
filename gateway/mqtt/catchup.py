"""After a crash: the readings the gateway stored that the broker may never have had.

While the broker keeps up, readings go to MQTT from memory; only while it is away do they
wait on disk (outbox.py). A gateway killed while connected loses what was in memory:
handed to the broker and not yet acknowledged, or not yet handed. History has every one
of them (and their nodes were told they are safe), so the hub keeps, in the outbox's
file, how far history is safe with the broker (`history_through`, a history rowid), and at
its next start sends what history has after it again, before anything new.

How far is safe: now and then the hub asks the store for its newest row (Store.mark),
noting its own sequence number as it asks. Every row committed before that answer belongs
to a message the hub made before it asked, because the gateway publishes a reading on the
bus before it hands the reading's row to the store. Once every message up to that number
is acknowledged by the broker or in the outbox, the answer's row is safe. A repeat after a
crash is possible (at least once, like QoS 1); a loss is not.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from .outbox import Outbox

KEY = "history_through"


class Catchup:
    def __init__(self, store: Any, outbox: Outbox) -> None:
        self.store = store
        self.outbox = outbox
        self.through: int | None = outbox.get_meta(KEY)
        self._marks: deque[tuple[int, int]] = deque()  # (hub sequence number, history rowid)
        self._asking = False

    async def newest(self) -> int:
        """The newest history row, once everything handed to the store so far is committed."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def failed(why: str) -> None:
            if not fut.done():
                fut.set_exception(RuntimeError(f"the store could not answer: {why}"))

        self.store.mark(lambda rowid: fut.done() or fut.set_result(rowid), failed)
        return await fut

    async def missed(self, limit: int) -> tuple[list[tuple[int, int, Any]], int]:
        """What history has after the last safe row: (node, cap, value) rows, the newest
        `limit` of them, and the row they go up to. Nothing on a first start (no mark yet):
        history from before MQTT was set up is not sent."""
        upto = await self.newest()
        if self.through is None or upto <= self.through:
            return [], upto
        rows = await asyncio.to_thread(self.store.history_after, self.through, upto, limit)
        return rows, upto

    def ask(self, seq: int) -> None:
        """Ask the store for its newest row, made as of the hub's sequence number seq."""
        if self._asking:
            return
        self._asking = True

        def got(rowid: int) -> None:
            self._asking = False
            self._marks.append((seq, rowid))

        def failed(_why: str) -> None:
            self._asking = False

        try:
            self.store.mark(got, failed)
        except RuntimeError:  # the store is not running
            self._asking = False

    def settle(self, durable: int) -> None:
        """Every message through sequence number `durable` is acknowledged or on disk."""
        rowid = None
        while self._marks and self._marks[0][0] <= durable:
            rowid = self._marks.popleft()[1]
        if rowid is not None:
            self.save(rowid)

    def save(self, rowid: int) -> None:
        if rowid != self.through:
            self.through = rowid
            self.outbox.set_meta(KEY, rowid)

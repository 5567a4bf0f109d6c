"""SQLite (WAL) for the registry, the current state and the history of every reading.

Writes go through one writer thread in batches: the event loop hands over rows and goes
on; a batch is one transaction. A confirmable report is acknowledged to its node only
from the batch's commit callback, so nothing a node was told is stored is lost on a
crash. Reads (history queries) run on their own connection in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("kithnet.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    num INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    key BLOB NOT NULL,
    name TEXT NOT NULL,
    room TEXT,
    type TEXT,
    model TEXT,
    firmware TEXT,
    caps BLOB,
    sleepy INTEGER NOT NULL DEFAULT 0,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    node INTEGER NOT NULL,
    cap INTEGER NOT NULL,
    value,
    ts REAL NOT NULL,
    PRIMARY KEY (node, cap)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    node INTEGER NOT NULL,
    cap INTEGER NOT NULL,
    ts REAL NOT NULL,
    value,
    agg INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS history_by_node ON history (node, cap, ts);
"""

Row = tuple[int, int, float, Any]  # node num, capability id, ts, wire value


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        db.executescript(SCHEMA)
        db.commit()
        self._db = db
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="kithnet-store", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rows_written = 0
        self.batches = 0
        self.errors = 0

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives a power cut too (one fsync per batch, not per row).
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        return db

    # -- at start (loop thread, before the writer runs) ------------------------------

    def load_nodes(self) -> list[sqlite3.Row]:
        self._db.row_factory = sqlite3.Row
        try:
            return list(self._db.execute("SELECT * FROM nodes ORDER BY num"))
        finally:
            self._db.row_factory = None

    def load_state(self) -> list[tuple[int, int, Any, float]]:
        return list(self._db.execute("SELECT node, cap, value, ts FROM state"))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    # -- writes (any thread; the writer thread runs them) ----------------------------

    def write(self, rows: list[Row], done: list[Callable[[], None]] | None = None) -> None:
        """Readings: history rows, and the state they imply (newest per capability wins)."""
        self._q.put(("rows", rows, done))

    def put_node(self, rec: dict[str, Any], done: Callable[[int], None] | None = None) -> None:
        self._q.put(("node", rec, done))

    def delete_node(self, num: int) -> None:
        self._q.put(("delete", num, None))

    def maintain(self, retention_s: float, after_s: float, bucket_s: int) -> None:
        self._q.put(("maintain", (retention_s, after_s, bucket_s), None))

    async def flush(self) -> None:
        """Wait until everything handed over so far is committed."""
        fut = asyncio.get_running_loop().create_future()
        self._q.put(("flush", None, [lambda: fut.set_result(None)]))
        await fut

    def close(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(10)
        self._db.close()

    def _run(self) -> None:
        db = self._db
        while True:
            item = self._q.get()
            batch = [item]
            while len(batch) < 512:  # take what waits, one transaction for all of it
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            callbacks: list[Callable[[], None]] = []
            try:
                db.execute("BEGIN")
                for it in batch:
                    if it is not None:
                        self._apply(db, it, callbacks)
                db.execute("COMMIT")
                self.batches += 1
            except sqlite3.Error as e:
                self.errors += 1
                log.error("history write failed (%s); the batch is not acknowledged", e)
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                callbacks = []
            if callbacks and self._loop is not None and not self._loop.is_closed():
                try:
                    self._loop.call_soon_threadsafe(_run_all, callbacks)
                except RuntimeError:
                    pass  # the loop has closed: nobody waits any more
            if stop:
                return

    def _apply(self, db: sqlite3.Connection, it: tuple, callbacks: list) -> None:
        op, arg, done = it
        if op == "rows":
            db.executemany("INSERT INTO history (node, cap, ts, value) VALUES (?,?,?,?)", arg)
            db.executemany(
                "INSERT INTO state (node, cap, ts, value) VALUES (?,?,?,?)"
                " ON CONFLICT (node, cap) DO UPDATE SET value = excluded.value, ts = excluded.ts"
                " WHERE excluded.ts >= state.ts",
                arg,
            )
            self.rows_written += len(arg)
            if done:
                callbacks.extend(done)
        elif op == "node":
            rec = dict(arg)
            num = rec.pop("num", None)
            cols = ", ".join(rec)
            if num is None:
                cur = db.execute(
                    f"INSERT INTO nodes ({cols}) VALUES ({', '.join('?' * len(rec))})",
                    tuple(rec.values()),
                )
                num = cur.lastrowid
            else:
                sets = ", ".join(f"{k} = ?" for k in rec)
                db.execute(f"UPDATE nodes SET {sets} WHERE num = ?", (*rec.values(), num))
            if done:
                callbacks.append(lambda: done(num))
        elif op == "delete":
            for table, col in (("nodes", "num"), ("state", "node"), ("history", "node")):
                db.execute(f"DELETE FROM {table} WHERE {col} = ?", (arg,))
        elif op == "maintain":
            retention_s, after_s, bucket = arg
            now = time.time()
            db.execute("DELETE FROM history WHERE ts < ?", (now - retention_s,))
            cutoff = now - after_s
            db.execute(
                "INSERT INTO history (node, cap, ts, value, agg)"
                " SELECT node, cap, CAST(ts / ?1 AS INTEGER) * ?1, AVG(value), COUNT(*)"
                " FROM history WHERE ts < ?2 AND agg = 0"
                " GROUP BY node, cap, CAST(ts / ?1 AS INTEGER)",
                (bucket, cutoff),
            )
            db.execute("DELETE FROM history WHERE ts < ? AND agg = 0", (cutoff,))
        elif op == "flush" and done:
            callbacks.extend(done)

    # -- reads (a worker thread, own connection) -------------------------------------

    def history(
        self, num: int, cap: int, since: float, until: float, limit: int
    ) -> list[tuple[float, Any]]:
        db = sqlite3.connect(self.path)
        try:
            return list(
                db.execute(
                    "SELECT ts, value FROM history WHERE node = ? AND cap = ? AND ts >= ?"
                    " AND ts <= ? ORDER BY ts DESC LIMIT ?",
                    (num, cap, since, until, limit),
                )
            )[::-1]
        finally:
            db.close()


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for cb in callbacks:
        try:
            cb()
        except Exception:  # one failed callback must not keep the others from running
            log.exception("store callback failed")

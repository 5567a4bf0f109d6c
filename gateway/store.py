"""SQLite (WAL) for the registry, the current state and the history of every reading.

Writes go to a writer *process* in batches: the event loop hands over rows and goes on,
and no thread of the gateway waits for the GIL behind SQLite (a writer thread releases
and retakes it at every row: under load the loop starves it). What arrives within a few
tens of milliseconds is one transaction (group commit). A confirmable report is
acknowledged to its node only from its batch's commit callback, so nothing a node was
told is stored is lost on a crash. Reads (history queries) use their own connection in a
worker thread; WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
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
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v);
"""
# -- BLE (gateway/ble/): each broadcasting node's replay window (SPEC 5.5, 7), so that an
# advertisement captured earlier is refused after a restart too; its BLE address and the
# report interval its hello promised. A table of its own: a database made before it gets
# it at the next start (CREATE ... IF NOT EXISTS), with every other table untouched.
BLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS broadcast (
    node INTEGER PRIMARY KEY,
    highest INTEGER NOT NULL,
    bits BLOB NOT NULL,
    address TEXT,
    due INTEGER
);
"""
# -- end BLE --
# -- BTHome (gateway/ble/bthome.py): the last encryption counter accepted from each adopted
# BTHome device, so that a replay is refused after a restart too; its MAC.
BTHOME_SCHEMA = """
CREATE TABLE IF NOT EXISTS bthome (
    node INTEGER PRIMARY KEY,
    counter INTEGER,
    address TEXT
);
"""
# -- end BTHome --

Row = tuple[int, int, float, Any]
_GROUP_S = 0.2  # a batch waits at most this long for more before its commit
_GROUP_ROWS = 60000


def _connect(path: Path | str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives a power cut too (one fsync per group commit, not per row).
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    # The (node, cap, ts) index takes rows at random places: keep its pages in memory
    # (64 MiB) and move the WAL into the database in larger, rarer checkpoints.
    db.execute("PRAGMA cache_size=-65536")
    db.execute("PRAGMA wal_autocheckpoint=10000")
    return db


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        db = _connect(path)
        db.executescript(SCHEMA)
        db.executescript(BLE_SCHEMA)  # BLE: the broadcast windows (migrates older databases)
        db.executescript(BTHOME_SCHEMA)  # BTHome: replay counters (migrates older databases)
        self._db: sqlite3.Connection | None = db  # for loading at start, closed after
        self._conn: Connection | None = None
        self._proc: subprocess.Popen | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next = 0
        self._waiting: dict[int, tuple[int, Any, Any]] = {}  # id -> (rows, done, failed)
        self.rows_written = 0
        self.batches = 0
        self.errors = 0
        self.backlog = 0  # rows handed over and not yet committed
        self._closing = False

    # -- at start (loop thread, before the writer runs) ------------------------------

    def load_nodes(self) -> list[sqlite3.Row]:
        assert self._db is not None
        self._db.row_factory = sqlite3.Row
        try:
            return list(self._db.execute("SELECT * FROM nodes ORDER BY num"))
        finally:
            self._db.row_factory = None

    def load_state(self) -> list[tuple[int, int, Any, float]]:
        """The state table, then the history stored after its last checkpoint (a crash
        loses no state: history has every reading; newest by ts wins)."""
        assert self._db is not None
        out = list(self._db.execute("SELECT node, cap, value, ts FROM state"))
        row = self._db.execute("SELECT v FROM meta WHERE k = 'state_rowid'").fetchone()
        out += self._db.execute(
            "SELECT node, cap, value, ts FROM history WHERE rowid > ? AND agg = 0 ORDER BY rowid",
            (row[0] if row else 0,),
        ).fetchall()
        return out

    def load_broadcast(self) -> list[tuple[int, int, bytes, str | None, int | None]]:
        """BLE: (node, highest, bits, address, due) of every broadcast window kept."""
        assert self._db is not None
        return list(self._db.execute("SELECT node, highest, bits, address, due FROM broadcast"))

    def load_bthome(self) -> list[tuple[int, int | None, str | None]]:
        """BTHome: (node, counter, address) of every adopted BTHome device's counter."""
        assert self._db is not None
        return list(self._db.execute("SELECT node, counter, address FROM bthome"))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._loop = loop
        # A fresh interpreter (not a fork of this threaded asyncio process), joined by a
        # socket pair: when the gateway dies, the writer reads EOF and ends.
        mine, theirs = socket.socketpair()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "kithnet.gateway.store", str(self.path), str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        self._conn = Connection(mine.detach())
        loop.add_reader(self._conn.fileno(), self._answers)

    # -- writes (loop thread) ----------------------------------------------------------

    def _send(
        self,
        op: str,
        arg: Any,
        rows: int,
        done: Callable[[Any], None] | None,
        failed: Callable[[str], None] | None = None,
    ) -> None:
        """Hand an operation to the writer: done(result) after its commit; failed(why)
        if its transaction fails or the writer dies first (an ack is simply not sent)."""
        if self._conn is None:
            raise RuntimeError("the store is not running")
        self._next += 1
        self._waiting[self._next] = (rows, done, failed)
        self.backlog += rows
        try:
            self._conn.send((self._next, op, arg))  # blocks only when the writer is far behind
        except OSError:
            self._lost()  # the writer died: this operation fails with what it held

    def write(self, rows: list[Row], done: list[Callable[[], None]] | None = None) -> None:
        """History rows. The state they imply is written by checkpoint(), not per row."""
        self._send("rows", rows, len(rows), (lambda _: _run_all(done)) if done else None)

    def checkpoint(self, state: list[Row]) -> None:
        """The current state of what changed since the last checkpoint; with it, the point
        in history it covers (load_state replays what came after)."""
        self._send("state", state, 0, None)

    def put_node(self, rec: dict[str, Any], done: Callable[[int], None] | None = None) -> None:
        self._send("node", rec, 0, done)

    def put_broadcast(self, windows: list[tuple[int, int, bytes, str | None, int | None]]) -> None:
        """BLE: broadcast windows (node, highest, bits, address, due), stored in the order
        of the writes handed over, so a window commits no later than the readings after it."""
        self._send("broadcast", windows, 0, None)

    def mark(
        self, done: Callable[[int], None], failed: Callable[[str], None] | None = None
    ) -> None:
        """done(rowid): the newest history row once everything handed over before this call
        is committed (MQTT: how far history is safe with the broker, see mqtt/catchup.py)."""
        self._send("rowid", None, 0, done, failed)

    def put_bthome(self, rows: list[tuple[int, int | None, str | None]]) -> None:
        """BTHome: (node, counter, address), committed no later than the writes after it."""
        self._send("bthome", rows, 0, None)

    def delete_node(self, num: int) -> None:
        self._send("delete", num, 0, None)

    def maintain(self, retention_s: float, after_s: float, bucket_s: int) -> None:
        self._send("maintain", (retention_s, after_s, bucket_s), 0, None)

    async def flush(self) -> None:
        """Wait until everything handed over so far is committed."""
        fut = asyncio.get_running_loop().create_future()

        def failed(why: str) -> None:
            if not fut.done():
                fut.set_exception(RuntimeError(f"the store could not write: {why}"))

        self._send("flush", None, 0, lambda _: fut.done() or fut.set_result(None), failed)
        await fut

    def _answers(self) -> None:
        """The writer's reports: [(id, result or the failure), ...] per transaction."""
        conn = self._conn
        try:
            while conn is not None and conn.poll():
                ok, results = conn.recv()
                self.batches += 1
                for i, res in results:
                    rows, done, failed = self._waiting.pop(i, (0, None, None))
                    self.backlog -= rows
                    if ok:
                        self.rows_written += rows
                    callback = done if ok else failed
                    if callback is not None:
                        try:
                            callback(res)
                        except Exception:
                            log.exception("store callback failed")
                if not ok:
                    self.errors += 1
                    log.error(
                        "a history write failed (%s); its batch is not acknowledged",
                        results and results[0][1],
                    )
        except (EOFError, OSError):
            self._lost()

    def _lost(self) -> None:
        """The writer is gone: what it had not committed is not acknowledged (nodes send
        it again); a new writer takes over."""
        if self._loop is not None and self._conn is not None:
            self._loop.remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        if self._waiting:
            log.error("the store writer stopped; %d batches unacknowledged", len(self._waiting))
        waiting, self._waiting = self._waiting, {}
        self.backlog = 0
        for _, _, failed in waiting.values():
            if failed is not None:
                failed("the writer process stopped")
        if self._loop is not None and not self._closing:
            self.start(self._loop)

    def close(self) -> None:
        self._closing = True
        if self._conn is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            if self._loop is not None:
                self._loop.remove_reader(self._conn.fileno())
        if self._proc is not None:
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._db is not None:
            self._db.close()

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

    def history_after(self, rowid: int, upto: int, limit: int) -> list[tuple[int, int, Any]]:
        """Readings and events (not aggregates) stored after rowid through upto, in the order
        they were stored, the newest `limit` of them: (node, cap, value)."""
        db = sqlite3.connect(self.path)
        try:
            return list(
                db.execute(
                    "SELECT node, cap, value FROM (SELECT rowid AS r, node, cap, value"
                    " FROM history WHERE rowid > ? AND rowid <= ? AND agg = 0"
                    " ORDER BY rowid DESC LIMIT ?) ORDER BY r",
                    (rowid, upto, limit),
                )
            )
        finally:
            db.close()


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for cb in callbacks:
        try:
            cb()
        except Exception:  # one failed callback must not keep the others from running
            log.exception("store callback failed")


# -- the writer process ---------------------------------------------------------------


_EOF = ("eof",)  # the pipe's end, as the reader thread hands it on


def _reader(conn: Connection, q: queue.SimpleQueue) -> None:
    """Empty the pipe while the main thread inserts and commits (a commit waits for the
    disk): a full pipe would stop the gateway's loop in its send, and the kernel would drop
    datagrams at its socket meanwhile."""
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            q.put(_EOF)
            return
        q.put(item)
        if item is None:
            return


def _writer(path: str, conn: Connection) -> None:
    """Take operations from the pipe; commit what arrives within _GROUP_S as one
    transaction; answer [(id, result)] after the commit. Ends at None or EOF."""
    db = _connect(path)
    q: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_reader, args=(conn, q), name="pipe", daemon=True).start()
    while True:
        first = q.get()
        if first is _EOF:
            return
        batch = [first]
        # Rows land in the (node, cap, ts) index at random places, so a commit costs
        # pages, not rows: 300 rows a commit cost 3x the CPU per row of 15,000.
        n = len(first[2]) if first is not None and first[1] == "rows" else 0
        end = time.monotonic() + _GROUP_S
        item = first
        while item is not None and item[1] != "flush" and n < _GROUP_ROWS:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                item = q.get(timeout=left)
            except queue.Empty:
                break
            if item is _EOF:
                item = None
            batch.append(item)
            if item is not None and item[1] == "rows":
                n += len(item[2])
        results = []
        try:
            db.execute("BEGIN")
            # Runs of history rows go in as one statement each, in index order: neighbours
            # in the (node, cap, ts) index are written together, a page at a time. Any
            # other operation ends a run, so a checkpoint covers exactly the rows before it.
            rows: list[Row] = []
            for it in batch:
                if it is None:
                    continue
                if it[1] == "rows":
                    rows += it[2]
                    results.append((it[0], None))
                    continue
                _insert(db, rows)
                rows = []
                results.append((it[0], _apply(db, it[1], it[2])))
            _insert(db, rows)
            db.execute("COMMIT")
            answer = (True, results)
        except sqlite3.Error as e:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            answer = (False, [(it[0], str(e)) for it in batch if it is not None])
        try:
            conn.send(answer)
        except OSError:
            return
        if batch[-1] is None:
            db.close()
            return


def _insert(db: sqlite3.Connection, rows: list[Row]) -> None:
    if rows:
        rows.sort()
        db.executemany("INSERT INTO history (node, cap, ts, value) VALUES (?,?,?,?)", rows)


def _apply(db: sqlite3.Connection, op: str, arg: Any) -> Any:
    if op == "state":
        db.executemany(
            "INSERT INTO state (node, cap, ts, value) VALUES (?,?,?,?)"
            " ON CONFLICT (node, cap) DO UPDATE SET value = excluded.value, ts = excluded.ts"
            " WHERE excluded.ts >= state.ts",
            arg,
        )
        db.execute(
            "INSERT OR REPLACE INTO meta (k, v)"
            " VALUES ('state_rowid', (SELECT coalesce(max(rowid), 0) FROM history))"
        )
    elif op == "node":
        rec = dict(arg)
        num = rec.pop("num", None)
        cols = ", ".join(rec)
        if num is None:
            cur = db.execute(
                f"INSERT INTO nodes ({cols}) VALUES ({', '.join('?' * len(rec))})",
                tuple(rec.values()),
            )
            return cur.lastrowid
        sets = ", ".join(f"{k} = ?" for k in rec)
        db.execute(f"UPDATE nodes SET {sets} WHERE num = ?", (*rec.values(), num))
        return num
    elif op == "broadcast":  # BLE
        db.executemany(
            "INSERT OR REPLACE INTO broadcast (node, highest, bits, address, due)"
            " VALUES (?,?,?,?,?)",
            arg,
        )
    elif op == "rowid":
        return db.execute("SELECT coalesce(max(rowid), 0) FROM history").fetchone()[0]
    elif op == "bthome":  # BTHome
        db.executemany("INSERT OR REPLACE INTO bthome (node, counter, address) VALUES (?,?,?)",
                       arg)  # fmt: skip
    elif op == "delete":
        for table, col in (("nodes", "num"), ("state", "node"), ("history", "node"),
                           ("broadcast", "node"), ("bthome", "node")):  # fmt: skip
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
    return None


if __name__ == "__main__":  # the writer process: python -m kithnet.gateway.store DB FD
    _writer(sys.argv[1], Connection(int(sys.argv[2])))

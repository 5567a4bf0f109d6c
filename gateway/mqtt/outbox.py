"""The MQTT outbox: readings and events kept on disk while the broker cannot take them.

One SQLite file (DATA/mqtt-outbox.db, WAL) with the messages in arrival order: the hub
appends while it is away from the broker, publishes from the front when it is back, and
deletes a row only when the broker has acknowledged it (QoS 1), so a lost connection or a
gateway restart in the middle loses nothing. The bound (mqtt_queue_max) keeps the newest
messages: past it the oldest are deleted and counted (`dropped`, kept in the file too),
the way a node's own buffer drops its oldest reports first.

SQLite and not an append-only file: deleting an acknowledged prefix, trimming the oldest
and surviving a crash mid-write come with its transactions. The file is written only while
messages wait (never on the hot path while the broker keeps up), in batches; besides, its
meta table keeps how far history is safe with the broker (catchup.py, a small write every
half second while readings flow).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

Item = tuple[int, str, bytes, bool]  # seq, topic, payload, retain

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL,
                                   payload BLOB NOT NULL, retain INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Outbox:
    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # a process crash loses nothing
        self.db.executescript(_SCHEMA)
        row = self.db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        self.dropped = row[0] if row else 0
        self.count = self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self.last_seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]

    def __len__(self) -> int:
        return self.count

    def append(self, items: list[Item]) -> int:
        """Add messages (one transaction), each under the sequence number the hub gave it when
        it was made, so one that waited in memory takes its place among the others. Past the
        bound the oldest go; returns how many."""
        if not items:
            return 0
        with self._tx() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO outbox (seq, topic, payload, retain) VALUES (?, ?, ?, ?)",
                [(q, t, p, int(r)) for q, t, p, r in items],
            )
            self.count += db.total_changes - before
            excess = self.count - self.limit
            if excess > 0:
                db.execute(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                    (excess,),
                )
                self.count -= excess
                self.dropped += excess
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (self.dropped,),
                )
            self.last_seq = max(self.last_seq, max(q for q, _, _, _ in items))
        return max(0, excess)

    def read(self, after: int, n: int) -> list[Item]:
        """Up to n messages after sequence number `after`, oldest first."""
        rows = self.db.execute(
            "SELECT seq, topic, payload, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, n),
        ).fetchall()
        return [(s, t, bytes(p), bool(r)) for s, t, p, r in rows]

    def remove_through(self, seq: int) -> None:
        """Forget every message up to seq (the broker acknowledged them)."""
        cur = self.db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,))
        self.count -= cur.rowcount

    def get_meta(self, key: str) -> int | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: int) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

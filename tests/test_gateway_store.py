"""The gateway's SQLite store, through its writer process: commit callbacks run only after
the commit, state survives a crash between checkpoints (history replays it), and the
hourly maintenance keeps the retention and down-sampling settings."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from kithnet.gateway.store import Store


def _run(coro):
    return asyncio.run(coro)


def test_commit_callbacks_and_state_from_history_after_a_crash(tmp_path):
    path = tmp_path / "k.db"

    async def first() -> list[str]:
        st = Store(path)
        st.start(asyncio.get_running_loop())
        seen: list[str] = []
        now = time.time()
        st.write([(1, 5, now - 10, 100), (1, 6, now - 10, 7)], [lambda: seen.append("a")])
        st.checkpoint([(1, 5, now - 10, 100), (1, 6, now - 10, 7)])
        st.write([(1, 5, now, 101)], [lambda: seen.append("b")])  # after the checkpoint
        assert seen == []  # nothing is acknowledged before its commit
        await st.flush()
        st.close()  # no checkpoint after the last row: as a crash would leave it
        return seen

    assert _run(first()) == ["a", "b"]
    st = Store(path)
    state = {(n, c): (v, ts) for n, c, v, ts in sorted(st.load_state(), key=lambda r: r[3])}
    assert state[(1, 5)][0] == 101 and state[(1, 6)][0] == 7
    st.close()


def test_retention_and_down_sampling(tmp_path):
    path = tmp_path / "k.db"
    day = 86400.0
    now = time.time()
    old = now - 10 * day
    bucket0 = int(old // 300) * 300

    async def go() -> None:
        st = Store(path)
        st.start(asyncio.get_running_loop())
        rows = [(1, 5, bucket0 + i, 100 + i) for i in range(0, 10)]  # one 5-minute bucket
        rows += [(1, 5, now - 400 * day, 1), (1, 5, now - 60, 500)]
        st.write(rows)
        st.maintain(retention_s=365 * day, after_s=7 * day, bucket_s=300)
        await st.flush()
        st.close()

    _run(go())
    with sqlite3.connect(path) as db:
        got = sorted(db.execute("SELECT ts, value, agg FROM history"))
    assert got == [(float(bucket0), 104.5, 10), (now - 60, 500, 0)]


def test_a_failed_write_is_not_acknowledged_and_the_store_goes_on(tmp_path):
    async def go() -> None:
        st = Store(tmp_path / "k.db")
        st.start(asyncio.get_running_loop())
        acked: list[str] = []
        st.write([(1, 5, time.time())], [lambda: acked.append("bad")])  # a row lacking a value
        with pytest.raises(RuntimeError, match="could not write"):
            await st.flush()  # in the same transaction: it fails with it
        st.write([(1, 5, time.time(), 7)], [lambda: acked.append("good")])
        await st.flush()
        assert acked == ["good"] and st.errors == 1 and st.backlog == 0
        st.close()

    _run(go())


def test_the_writer_process_dying_fails_what_it_held_and_a_new_one_takes_over(tmp_path):
    async def go() -> None:
        st = Store(tmp_path / "k.db")
        st.start(asyncio.get_running_loop())
        first = st._proc
        first.kill()
        first.wait()
        with pytest.raises(RuntimeError, match="writer process stopped"):
            await st.flush()
        acked: list[str] = []
        st.write([(1, 5, time.time(), 7)], [lambda: acked.append("after")])
        await st.flush()
        assert acked == ["after"] and st._proc is not first
        st.close()

    _run(go())

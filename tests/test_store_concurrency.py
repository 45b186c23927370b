"""SQLiteStore under threads, processes, races and a hard kill: nothing lost, nothing doubled."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from failpath.core import AlreadyResolved, Ticket, Trace
from failpath.store.sqlite import SQLiteStore


def make_trace(trace_id: str, i: int) -> Trace:
    return Trace(
        trace_id=trace_id,
        time=1_700_000_000.0 + i,
        policy="p",
        input_digest="0" * 64,
        input_preview="x" * 40,
        outcome="answered" if i % 3 else "escalated",
        states=("low_confidence",) if i % 5 == 0 else (),
        output={"value": i, "text": "y" * 100},
    )


def count(path) -> tuple[int, int, int]:
    """(rows, distinct trace ids, state rows) read through a plain sqlite3 connection."""
    connection = sqlite3.connect(path)
    try:
        rows, distinct = connection.execute("SELECT count(*), count(DISTINCT trace_id) FROM traces").fetchone()
        states = connection.execute("SELECT count(*) FROM trace_states").fetchone()[0]
        return rows, distinct, states
    finally:
        connection.close()


def test_eight_threads_write_8000_traces_none_lost_none_doubled(tmp_path):
    path = tmp_path / "threads.db"
    store = SQLiteStore(path, batch_size=128, flush_interval=0.02)
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for i in range(1000):
            store.write_trace(make_trace(f"th{n}-{i:04d}", i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert count(path) == (8000, 8000, 8 * 200)
    with SQLiteStore(path) as again:
        assert again.count_traces() == 8000
        assert again.count_traces(state="low_confidence") == 1600
        assert again.get_trace("th7-0999").output == {"value": 999, "text": "y" * 100}


def _write_traces_in_process(path: str, n: int, barrier) -> None:
    store = SQLiteStore(path, batch_size=64, flush_interval=0.01)
    barrier.wait()
    for i in range(1000):
        store.write_trace(make_trace(f"pr{n}-{i:04d}", i))
    store.close()


def _spawn():
    return multiprocessing.get_context("spawn")


def test_four_processes_write_4000_traces_into_one_store(tmp_path):
    path = str(tmp_path / "procs.db")
    parent = SQLiteStore(path)  # the parent keeps it open (and writes) at the same time
    ctx = _spawn()
    barrier = ctx.Barrier(4)
    processes = [ctx.Process(target=_write_traces_in_process, args=(path, n, barrier)) for n in range(4)]
    for process in processes:
        process.start()
    for i in range(200):
        parent.write_trace(make_trace(f"parent-{i:04d}", i))
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    parent.close()
    assert count(path) == (4200, 4200, 4 * 200 + 40)  # every 5th trace has a state
    with SQLiteStore(path) as again:
        assert len(again.query_traces(limit=None)) == 4200
        assert again.count_traces(since=1_700_000_000.0 + 999) == 4  # i == 999 in each writer process
        for n in range(4):
            assert again.get_trace(f"pr{n}-0999") is not None


def _race_to_resolve(path: str, name: str, ticket_ids: list[str], barrier, wins) -> None:
    store = SQLiteStore(path)
    won = 0
    for ticket_id in ticket_ids:
        barrier.wait()
        try:
            store.resolve_ticket(ticket_id, {"by": name}, reviewer=name)
            won += 1
            wins.put((ticket_id, name, None))
        except AlreadyResolved as exc:
            wins.put((ticket_id, None, str(exc)))
    store.close()


def test_two_processes_racing_to_resolve_a_ticket_exactly_one_wins(tmp_path):
    path = str(tmp_path / "race.db")
    rounds = 12
    with SQLiteStore(path) as store:
        ticket_ids = [
            store.create_ticket(Ticket("", "review", 0.0, "p", None, "input", None, None, 0.3, "low_confidence"))
            for _ in range(rounds)
        ]
    ctx = _spawn()
    barrier = ctx.Barrier(2)
    wins = ctx.Queue()
    processes = [
        ctx.Process(target=_race_to_resolve, args=(path, name, ticket_ids, barrier, wins)) for name in ("ana", "bo")
    ]
    for process in processes:
        process.start()
    outcomes = [wins.get(timeout=60) for _ in range(2 * rounds)]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    with SQLiteStore(path) as store:
        for ticket_id in ticket_ids:
            mine = [o for o in outcomes if o[0] == ticket_id]
            winners = [name for _, name, _ in mine if name is not None]
            refusals = [message for _, name, message in mine if name is None]
            assert len(winners) == 1 and len(refusals) == 1
            stored = store.get_ticket(ticket_id)
            assert stored.reviewer == winners[0] and stored.answer == {"by": winners[0]}
            assert f"already resolved by {winners[0]} at" in refusals[0]


_BURST_WRITER = """
import sys
sys.path[:0] = {sys_path!r}
from failpath.store.sqlite import SQLiteStore
from test_store_concurrency import make_trace
store = SQLiteStore({path!r}, batch_size={batch}, flush_interval=0.05)
i = 0
while True:
    for _ in range({burst}):
        store.write_trace(make_trace(f"k{{i:08d}}", i))
        i += 1
    store.flush()
    print(i, flush=True)
"""


@pytest.mark.parametrize("extra_delay", [0.0, 0.013, 0.031])
def test_sigkill_mid_burst_loses_at_most_the_unflushed_traces(tmp_path, extra_delay):
    path = tmp_path / "killed.db"
    batch, burst = 100, 1000
    code = _BURST_WRITER.format(sys_path=sys.path, path=str(path), batch=batch, burst=burst)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    try:
        while acknowledged < 3 * burst:
            line = child.stdout.readline()
            assert line, "the writer process ended early"
            acknowledged = int(line)
        time.sleep(extra_delay)  # somewhere inside the next burst
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    for line in child.stdout:  # flushes acknowledged after we last looked
        acknowledged = int(line)
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [row[0] for row in connection.execute("SELECT trace_id FROM traces ORDER BY id")]
    connection.close()
    # Every flushed trace survived; batches commit whole and in order, so what is there is a prefix.
    assert len(ids) >= acknowledged
    assert ids == [f"k{i:08d}" for i in range(len(ids))]
    # What can be lost is only what was queued after the last acknowledged flush: one burst at most.
    assert len(ids) <= acknowledged + burst
    with SQLiteStore(path) as again:
        assert again.count_traces() == len(ids)
        again.write_trace(make_trace("after-kill", 0))
        assert again.get_trace("after-kill") is not None


def test_tickets_written_while_traces_commit_wait_for_the_writer_not_for_sqlite(tmp_path):
    """The store's own write transactions take turns in-process: with no busy timeout at all, tickets
    written while the writer thread sits inside its commits never meet SQLite's lock."""
    store = SQLiteStore(tmp_path / "turns.db", batch_size=8, flush_interval=0.0, busy_timeout=0.0)

    class SlowCommits:  # the writer's connection, holding each batch's transaction open for 5 ms
        def __init__(self, connection):
            self.connection = connection

        def __getattr__(self, name):
            return getattr(self.connection, name)

        def executemany(self, *args):
            cursor = self.connection.executemany(*args)
            time.sleep(0.005)
            return cursor

    connect = store._writer._connect
    store._writer._connect = lambda: SlowCommits(connect())

    def ticket(n: int) -> str:
        return store.create_ticket(Ticket(ticket_id="", queue="q", created=0, policy="p", trace_id=None,
                                          input_preview=f"#{n}", input_raw=None, output=None, confidence=0.2,
                                          state="low_confidence"))

    try:
        ids = [ticket(-1)]  # opens this thread's connections while nothing else runs
        for n in range(60):
            for i in range(8):
                store.write_trace(make_trace(f"s-{n:03d}-{i}", i))
            time.sleep(0.001)  # the writer wakes and enters its transaction
            ids.append(ticket(n))
        store.flush()
        assert len(set(ids)) == 61
        assert store.count_traces() == 480
    finally:
        store.close()


def test_the_writer_thread_starts_with_the_first_queued_trace(tmp_path):
    """A store used only for runs and results (as a check's main store is) runs no thread, so a process
    holding one can still fork its workers safely."""
    store = SQLiteStore(tmp_path / "lazy.db")
    writer = store._writer
    try:
        store.create_run("r1", kind="check", config={})
        store.add_results("r1", [("k1", {"x": 1})])
        assert store.results("r1")[0]["data"] == {"x": 1}
        store.flush()
        assert writer._thread is None
        store.write_trace(make_trace("t-1", 1))
        thread = writer._thread
        assert thread is not None and thread.is_alive() and thread.name == "failpath-trace-writer"
        assert thread in threading.enumerate()
        store.flush()
        assert store.count_traces() == 1
    finally:
        store.close()
    assert not thread.is_alive()


def test_a_trace_queued_while_another_thread_starts_the_writer_does_not_wait_for_the_start(tmp_path):
    """Many threads' first traces arrive together (an agent check's first runs ending): one starts the
    writer thread, the others queue their trace and go on; the writer writes them all."""
    store = SQLiteStore(tmp_path / "starting.db")
    writer = store._writer
    try:
        with writer._starting:  # another thread is starting the writer
            queued = threading.Thread(target=store.write_trace, args=(make_trace("t-1", 1),))
            queued.start()
            queued.join(10)
            assert not queued.is_alive() and writer._thread is None
        store.write_trace(make_trace("t-2", 2))  # the starter's own trace: it starts the thread
        store.flush()
        assert store.count_traces() == 2
    finally:
        store.close()

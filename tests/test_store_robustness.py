"""SQLiteStore when things go wrong: locked files, bad traces, forks, backpressure; JSON rendering of anything."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failpath.core import StoreError, Trace
from failpath.store.jsonsafe import MAX_DEPTH, dumps, to_json_safe
from failpath.store.sqlite import SQLiteStore


def make_trace(i: int, **changes) -> Trace:
    fields = dict(trace_id=f"r-{i:06d}", time=1_700_000_000.0 + i, policy="p", input_digest="d",
                  input_preview="x", outcome="answered")
    fields.update(changes)
    return Trace(**fields)


def hold_write_lock(path) -> sqlite3.Connection:
    """Another connection that holds the database's write lock until it is rolled back."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    return connection


# --------------------------------------------------------------------------- the writer thread


def test_serialization_happens_on_the_writer_thread_not_the_callers(tmp_path):
    seen: list[str] = []

    class Spy:
        def model_dump(self, mode: str = "python"):
            seen.append(threading.current_thread().name)
            return {"spied": True}

    caller = threading.current_thread().name
    with SQLiteStore(tmp_path / "s.db") as store:
        store.write_trace(make_trace(1, output=Spy()))
        # The writer may already be rendering it (it starts with the first queued trace), but the
        # caller never does.
        assert caller not in seen
        store.flush()
        assert store.get_trace("r-000001").output == {"spied": True}
    assert seen == ["failpath-trace-writer"]


def test_flush_timeout_while_another_process_holds_the_lock(tmp_path):
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, busy_timeout=10.0)
    blocker = hold_write_lock(path)
    try:
        store.write_trace(make_trace(1))
        with pytest.raises(StoreError, match="longer than 0.2 s"):
            store.flush(timeout=0.2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.flush(timeout=10)  # the writer waited for the lock and wrote it: nothing lost
    assert store.count_traces() == 1
    store.close()


def test_backpressure_waits_instead_of_dropping(tmp_path):
    path = tmp_path / "full.db"
    store = SQLiteStore(path, busy_timeout=20.0, batch_size=5, max_pending=10)
    blocker = hold_write_lock(path)
    finished = threading.Event()

    def produce():
        for i in range(100):
            store.write_trace(make_trace(i))
        finished.set()

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        assert not finished.wait(0.5)  # queue full, writer blocked on the lock: the producer waits
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    producer.join(20)
    assert finished.is_set()
    assert store.count_traces() == 100
    store.close()


def test_a_trace_that_cannot_be_written_is_reported_by_flush_and_others_are_kept(tmp_path):
    with SQLiteStore(tmp_path / "bad.db") as store:
        store.write_trace(make_trace(1))
        store.write_trace(make_trace(2, trace_id=""))
        store.write_trace(make_trace(3))
        with pytest.raises(StoreError, match="1 traces could not be written.*non-empty string trace_id"):
            store.flush()
        store.flush()  # reported once
        assert {t.trace_id for t in store.query_traces()} == {"r-000001", "r-000003"}


def test_a_failing_database_is_reported_and_the_writer_keeps_going(tmp_path):
    path = tmp_path / "broken.db"
    with SQLiteStore(path) as store:
        store.write_trace(make_trace(1))
        store.flush()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("ALTER TABLE trace_states RENAME TO trace_states_away")
        store.write_trace(make_trace(2, states=("timeout",)))
        with pytest.raises(StoreError, match="1 traces could not be written.*trace_states"):
            store.flush()
        other.execute("ALTER TABLE trace_states_away RENAME TO trace_states")
        other.close()
        store.write_trace(make_trace(3, states=("timeout",)))
        store.flush()
        assert store.count_traces(state="timeout") == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_write_the_parents_pending_traces(tmp_path):
    path = tmp_path / "fork.db"
    store = SQLiteStore(path, flush_interval=30.0, batch_size=10_000)
    store.write_trace(make_trace(0))
    store.flush()  # the writer thread runs, and now waits out its 30 s interval
    for i in range(1, 50):
        store.write_trace(make_trace(i))
    assert len(store._writer.pending) == 49  # still pending when the process forks
    pid = os.fork()
    if pid == 0:  # the child: its own writer, its own traces
        code = 1
        try:
            for i in range(50, 80):
                store.write_trace(make_trace(i))
            store.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.close()
    connection = sqlite3.connect(path)
    ids = sorted(row[0] for row in connection.execute("SELECT trace_id FROM traces"))
    connection.close()
    assert ids == [f"r-{i:06d}" for i in range(80)]


# --------------------------------------------------------------------------- JSON rendering

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.complex_numbers(allow_nan=True)
    | st.datetimes()
)
hashable = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.tuples(st.integers())
values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashable, inner, max_size=4)
        | st.frozensets(hashable, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(values)
def test_any_value_renders_to_strict_json(value):
    text = dumps(value)
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert parsed == json.loads(dumps(to_json_safe(value)))  # fast path and slow path agree
    assert dumps(value) == text  # deterministic (sets are sorted)


def test_cycles_and_deep_nesting_are_cut_not_fatal():
    loop: list = [1]
    loop.append(loop)
    rendered = to_json_safe(loop)
    depth, node = 0, rendered
    while isinstance(node, list):
        node, depth = node[-1], depth + 1
    assert depth <= MAX_DEPTH + 1 and isinstance(node, str)
    json.loads(dumps(loop))
    deep: dict = {}
    for _ in range(5_000):
        deep = {"d": deep}
    json.loads(dumps(deep))


def test_special_floats_and_keys():
    assert to_json_safe({math.nan: 1, 1.5: 2, None: 3, True: 4}) == {"NaN": 1, "1.5": 2, "null": 3, "true": 4}
    assert to_json_safe([math.inf, -math.inf, math.nan]) == ["Infinity", "-Infinity", "NaN"]


def test_traces_written_while_another_thread_closes_are_written_or_refused(tmp_path):
    path = tmp_path / "closing.db"
    store = SQLiteStore(path, flush_interval=0.001)
    accepted = []
    start = threading.Barrier(2)

    def produce():
        start.wait()
        for i in range(5_000):
            try:
                store.write_trace(make_trace(i))
            except StoreError:
                break
            accepted.append(i)

    producer = threading.Thread(target=produce)
    producer.start()
    start.wait()
    time.sleep(0.01)
    store.close()
    producer.join()
    with SQLiteStore(path) as again:
        assert again.count_traces() == len(accepted)  # every accepted trace is on disk


def test_flush_interval_zero_does_not_spin(tmp_path):
    with SQLiteStore(tmp_path / "zero.db", flush_interval=0) as store:
        store.write_trace(make_trace(1))  # the writer thread starts with the first trace
        store.flush()
        assert store._writer._alive()
        before = time.process_time()
        time.sleep(0.3)
        assert time.process_time() - before < 0.25  # an idle writer sleeps
        store.write_trace(make_trace(2))
        assert store.count_traces() == 2

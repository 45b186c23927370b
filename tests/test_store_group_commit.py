"""Group commit in the SQLite store: checkpoints written at the same moment by many threads share one
transaction, and each write is committed (readable from another connection) when its call returns."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from failpath.core import StoreError
from failpath.store.sqlite import SQLiteStore
from failpath.store.sqlite import connections as sqlite_connections


@pytest.fixture
def statements(monkeypatch):
    """Every statement the store's connections run, in order (a trace callback on each connection)."""
    seen: list[str] = []
    connect = sqlite_connections.Connector.connect

    def traced(self, *args, **kwargs):
        connection = connect(self, *args, **kwargs)
        connection.set_trace_callback(seen.append)
        return connection

    monkeypatch.setattr(sqlite_connections.Connector, "connect", traced)
    return seen


def _hold_write_lock(path) -> sqlite3.Connection:
    """Another connection (as another process would) holding the database's write lock until it commits."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def _queued(store: SQLiteStore) -> int:
    return len(store._group._queue)


def _in_threads(count: int, target) -> list:
    results: list = [None] * count

    def run(i: int) -> None:
        try:
            results[i] = target(i)
        except Exception as exc:  # the test reads it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return results, threads


def test_checkpoints_written_together_by_many_threads_are_committed_in_one_transaction(tmp_path, statements):
    store = SQLiteStore(tmp_path / "store.db")
    try:
        holder = _hold_write_lock(tmp_path / "store.db")
        statements.clear()
        results, threads = _in_threads(16, lambda i: store.add_checkpoint(f"run-{i}", 0, "start", {"writer": i}))
        _wait_for(lambda: _queued(store) == 15, "15 writes queued behind the one waiting for the lock")
        holder.execute("COMMIT")
        for thread in threads:
            thread.join(30)
        assert results == [True] * 16
        assert statements.count("COMMIT") == 1  # 16 checkpoints, one transaction
        assert store._group.commits == 1
        for i in range(16):
            assert store.checkpoints(f"run-{i}") == [(0, "start", {"writer": i})]
        holder.close()
    finally:
        store.close()


def test_a_checkpoint_is_readable_from_another_connection_when_its_write_returns(tmp_path):
    store = SQLiteStore(tmp_path / "store.db")
    try:
        def write_and_read(i: int) -> int:
            reader = sqlite3.connect(tmp_path / "store.db")  # not the store's: sees only what is committed
            try:
                for seq in range(25):
                    assert store.add_checkpoint(f"run-{i}", seq, "model", {"n": seq}) is True
                    row = reader.execute("SELECT kind FROM run_checkpoints WHERE run_id = ? AND seq = ?", (f"run-{i}", seq)).fetchone()
                    assert row == ("model",), (i, seq)
                return seq + 1
            finally:
                reader.close()

        results, threads = _in_threads(12, write_and_read)
        for thread in threads:
            thread.join(60)
        assert results == [25] * 12
        assert store._group.commits <= 12 * 25
    finally:
        store.close()


def test_one_thread_writing_alone_commits_each_checkpoint_on_its_own(tmp_path, statements):
    store = SQLiteStore(tmp_path / "store.db")
    try:
        statements.clear()
        for seq in range(5):
            assert store.add_checkpoint("solo", seq, "model", {}) is True
        assert statements.count("COMMIT") == 5 and store._group.commits == 5
    finally:
        store.close()


def test_a_write_that_fails_in_a_batch_fails_alone_and_the_others_are_committed(tmp_path):
    store = SQLiteStore(tmp_path / "store.db")
    try:
        holder = _hold_write_lock(tmp_path / "store.db")

        def write(i: int):
            if i == 3:
                return store._grouped(lambda connection: connection.execute("INSERT INTO no_such_table VALUES (1)"))
            return store.add_checkpoint(f"run-{i}", 0, "start", {})

        results, threads = _in_threads(8, write)
        _wait_for(lambda: _queued(store) == 7, "7 writes queued behind the one waiting for the lock")
        holder.execute("COMMIT")
        for thread in threads:
            thread.join(30)
        assert isinstance(results[3], StoreError) and "no_such_table" in str(results[3])
        assert [r for i, r in enumerate(results) if i != 3] == [True] * 7
        assert all(store.checkpoints(f"run-{i}") for i in range(8) if i != 3)
        assert store._group.commits == 1  # the batch ran again without the failing write, once
        holder.close()
    finally:
        store.close()


def test_a_transaction_that_cannot_begin_fails_its_writes_and_the_next_write_goes_through(tmp_path):
    store = SQLiteStore(tmp_path / "store.db", busy_timeout=0.2)
    try:
        holder = _hold_write_lock(tmp_path / "store.db")
        results, threads = _in_threads(4, lambda i: store.add_checkpoint(f"run-{i}", 0, "start", {}))
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive()  # no caller is left waiting
        assert all(isinstance(r, StoreError) and "locked" in str(r) for r in results), results
        holder.execute("COMMIT")
        holder.close()
        assert store.add_checkpoint("run-0", 0, "start", {}) is True
        assert store.checkpoints("run-1") == []
    finally:
        store.close()


def test_begin_and_end_of_a_run_are_group_committed_with_the_checkpoints(tmp_path, statements):
    store = SQLiteStore(tmp_path / "store.db")
    try:
        holder = _hold_write_lock(tmp_path / "store.db")
        statements.clear()

        def write(i: int):
            if i < 4:
                return store.begin_run(f"run-{i}", kind="agent", config={"i": i}, first_checkpoint=("start", {"i": i}))
            return store.end_run(f"run-{i - 4}", last_checkpoint=(1, "end", {}), summary={"outcome": None})

        results, threads = _in_threads(4, write)
        _wait_for(lambda: _queued(store) == 3, "3 writes queued")
        more, more_threads = _in_threads(8, lambda i: write(i) if i >= 4 else None)
        _wait_for(lambda: _queued(store) == 7, "7 writes queued")
        holder.execute("COMMIT")
        for thread in threads + more_threads:
            thread.join(30)
        assert results == [True] * 4 and more[4:] == [True] * 4
        assert statements.count("COMMIT") == 1
        for i in range(4):
            assert [kind for _, kind, _ in store.checkpoints(f"run-{i}")] == ["start", "end"]
            assert store.get_run(f"run-{i}")["finished"] is not None
        holder.close()
    finally:
        store.close()


def test_the_batches_are_written_on_one_connection_whichever_thread_leads(tmp_path):
    store = SQLiteStore(tmp_path / "store.db")
    try:
        results, threads = _in_threads(16, lambda i: [store.add_checkpoint(f"run-{i}", seq, "model", {}) for seq in range(10)])
        for thread in threads:
            thread.join(60)
        assert results == [[True] * 10] * 16
        # one connection for every batch (its page cache stays warm), not a write connection per thread
        assert len(store._connector.connections) == 1
    finally:
        store.close()


def test_a_caller_interrupted_while_it_waits_drops_its_write_and_the_others_go_on(tmp_path):
    import signal

    store = SQLiteStore(tmp_path / "store.db")
    try:
        holder = _hold_write_lock(tmp_path / "store.db")
        first, first_threads = _in_threads(1, lambda i: store.add_checkpoint("leader", 0, "start", {}))
        _wait_for(lambda: store._group._leading and _queued(store) == 0, "the leader waiting for the lock")
        others, other_threads = _in_threads(2, lambda i: store.add_checkpoint(f"other-{i}", 0, "start", {}))
        _wait_for(lambda: _queued(store) == 2, "two writes queued")
        main = threading.main_thread().ident

        def interrupt() -> None:
            _wait_for(lambda: _queued(store) == 3, "this thread's write queued")
            signal.pthread_kill(main, signal.SIGINT)

        threading.Thread(target=interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            store.add_checkpoint("interrupted", 0, "start", {})
        holder.execute("COMMIT")
        for thread in first_threads + other_threads:
            thread.join(30)
        assert first == [True] and others == [True, True]
        assert store.checkpoints("interrupted") == []
        assert store.add_checkpoint("after", 0, "start", {}) is True  # the group still commits
        holder.close()
    finally:
        store.close()

"""SQLiteStore: what is particular to SQLite files (opening, refusing, read connections, query plans).

What every backend does alike is specified in test_store_conformance.py."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from failpath.core import StoreError
from failpath.store import open_store
from failpath.store.sqlite import SCHEMA_VERSION, SQLiteStore
from test_store_conformance import fill_for_queries, make_trace


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "store.db") as opened:
        yield opened


# --------------------------------------------------------------------------- opening


def test_open_store_creates_parent_folders_and_wal_mode(tmp_path):
    path = tmp_path / "deep" / "er" / "failpath.db"
    with open_store(path) as opened:
        assert isinstance(opened, SQLiteStore)
        assert opened.path == path
    assert path.is_file()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()


def test_reopening_keeps_data(tmp_path):
    path = tmp_path / "s.db"
    with SQLiteStore(path) as first:
        first.write_trace(make_trace(1))
        first.create_run("run-1", kind="check", config={})
    with SQLiteStore(path) as second:
        assert second.get_trace("tr-000001") is not None
        assert second.get_run("run-1")["kind"] == "check"


def test_directory_as_path_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="is a folder") as caught:
        SQLiteStore(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_in_memory_path_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="pass a file path"):
        SQLiteStore(":memory:")
    assert list(tmp_path.iterdir()) == []


def test_uncreatable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create the folder") as caught:
        SQLiteStore(blocker / "sub" / "store.db")
    assert str(blocker) in str(caught.value)


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError, match="not a failpath store") as caught:
        SQLiteStore(path)
    assert str(path) in str(caught.value)
    assert path.read_text().startswith("these are my notes")


def test_another_applications_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE songs (title TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="not a failpath store"):
        SQLiteStore(path)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 3")
    connection.close()
    with pytest.raises(StoreError, match="not a failpath store"):
        SQLiteStore(path)


def test_a_newer_schema_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StoreError, match="newer failpath") as caught:
        SQLiteStore(path)
    assert "upgrade failpath" in str(caught.value) and str(path) in str(caught.value)


def test_empty_existing_file_becomes_a_store(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteStore(path) as opened:
        opened.write_trace(make_trace(1))
        assert opened.count_traces() == 1


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        SQLiteStore(tmp_path / "a.db", batch_size=0)
    with pytest.raises(ValueError, match="flush_interval"):
        SQLiteStore(tmp_path / "b.db", flush_interval=-1)


# --------------------------------------------------------------------------- traces


def test_state_filter_uses_the_index(store):
    fill_for_queries(store)
    with store.read_connection() as connection:
        plan = " ".join(
            row[3] for row in connection.execute(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM trace_states WHERE state = ? AND time >= ?",
                ("timeout", 0.0),
            )
        )
    assert "SEARCH trace_states USING PRIMARY KEY (state=? AND time>?)" in plan


def test_read_connection_is_read_only_and_sees_queued_traces(store):
    store.write_trace(make_trace(1, policy="p"))
    with store.read_connection() as connection:
        assert connection.execute("SELECT policy FROM traces").fetchone()["policy"] == "p"
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
            connection.execute("DELETE FROM traces")
    assert store.count_traces() == 1


def test_read_connection_is_per_thread(store):
    seen = []

    def read():
        with store.read_connection() as connection:
            seen.append(id(connection))

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with store.read_connection() as connection:
        seen.append(id(connection))
    assert len(set(seen)) == 4


def test_flush_waits_until_batches_are_on_disk(tmp_path):
    path = tmp_path / "f.db"
    with SQLiteStore(path, batch_size=7, flush_interval=5.0) as opened:
        for i in range(100):
            opened.write_trace(make_trace(i))
        opened.flush(timeout=10)
        other = sqlite3.connect(path)  # a separate connection sees them: they are committed
        assert other.execute("SELECT count(*) FROM traces").fetchone()[0] == 100
        other.close()

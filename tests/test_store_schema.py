"""The store's schema versions: a new file gets every migration, an older store is migrated on open with
nothing lost, a newer one is refused and left as it is."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from failpath.core import AlreadyResolved, StoreError, TicketStatus
from failpath.store.migrations import Migration, migrations_to_apply, schema_version
from failpath.store.sqlite import SCHEMA_VERSION, SQLiteStore
from failpath.store.sqlite.schema import MIGRATIONS

#: A store written by failpath at schema version 1 (before the schema_version table), kept as it was:
#: 5 traces (two with low_confidence), tickets t-v1-1 (resolved by ana) and t-v1-3 (open), run v1-run
#: with 3 result rows and a summary.
SCHEMA_1_STORE = Path(__file__).parent / "data" / "store-schema-1.db"


def marks(path: Path) -> tuple[int, list[tuple]]:
    connection = sqlite3.connect(path)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        recorded = connection.execute("SELECT version, description, applied FROM schema_version ORDER BY version").fetchall()
    except sqlite3.OperationalError:
        recorded = []
    finally:
        connection.close()
    return version, recorded


def tables_and_indexes(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    finally:
        connection.close()


@pytest.fixture
def schema_1_copy(tmp_path) -> Path:
    path = tmp_path / "old.db"
    shutil.copyfile(SCHEMA_1_STORE, path)
    assert marks(path) == (1, [])
    return path


def test_a_new_store_records_every_migration(tmp_path):
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    version, recorded = marks(path)
    assert version == SCHEMA_VERSION == len(MIGRATIONS) >= 2
    assert [(v, d) for v, d, _ in recorded] == [(m.version, m.description) for m in MIGRATIONS]
    assert all(applied is not None for _, _, applied in recorded)


def test_a_schema_1_store_is_migrated_on_open_and_nothing_is_lost(schema_1_copy, tmp_path):
    with SQLiteStore(schema_1_copy) as store:
        traces = store.query_traces(newest_first=False)
        assert [t.trace_id for t in traces] == [f"v1-trace-{i}" for i in range(5)]
        assert traces[3].output == {"street": "Main St", "number": 3} and traces[3].states == ("low_confidence",)
        assert traces[3].attempts[0].confidence == pytest.approx(0.6)
        assert store.count_traces(state="low_confidence") == 2
        resolved = store.get_ticket("t-v1-1")
        assert resolved.status is TicketStatus.RESOLVED and resolved.reviewer == "ana"
        assert resolved.answer == {"street": "Main Street"}
        assert [t.ticket_id for t in store.list_tickets(status="open")] == ["t-v1-3"]
        with pytest.raises(AlreadyResolved, match="ana"):
            store.resolve_ticket("t-v1-1", "again")
        run = store.get_run("v1-run")
        assert run["config"] == {"dataset": "addresses.jsonl"} and run["summary"] == {"verdict": "DEMO"}
        assert [(r["key"], r["data"]) for r in store.results("v1-run")] == [
            ("case-0/clean", {"correct": True}), ("case-1/clean", {"correct": True}), ("case-2/clean", {"correct": False})
        ]
        # and it takes new writes as any store does
        store.add_results("v1-run", [("case-3/clean", {"correct": True})])
        rows, position = store.results_after("v1-run", 0)
        assert len(rows) == 4 and store.results_after("v1-run", position) == ([], position)
    version, recorded = marks(schema_1_copy)
    assert version == SCHEMA_VERSION
    # Version 1 ran before the record existed: recorded, with no time; the rest with the time they ran.
    assert [v for v, _, _ in recorded] == list(range(1, SCHEMA_VERSION + 1))
    assert recorded[0][2] is None and all(applied is not None for _, _, applied in recorded[1:])
    # A migrated store has exactly the tables and indexes of a new one.
    SQLiteStore(tmp_path / "fresh.db").close()
    assert tables_and_indexes(schema_1_copy) == tables_and_indexes(tmp_path / "fresh.db")
    with SQLiteStore(schema_1_copy) as again:  # opening a current store changes nothing
        assert again.count_traces() == 5
    assert marks(schema_1_copy) == (version, recorded)


def test_stores_opened_at_once_migrate_once(schema_1_copy):
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_it() -> None:
        try:
            barrier.wait()
            with SQLiteStore(schema_1_copy) as store:
                assert store.count_traces() == 5
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    version, recorded = marks(schema_1_copy)
    assert version == SCHEMA_VERSION and len(recorded) == SCHEMA_VERSION


def test_a_failed_migration_changes_nothing(schema_1_copy):
    connection = sqlite3.connect(schema_1_copy)
    connection.execute("CREATE TABLE schema_version (x)")  # in the way of migration 2
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="schema_version") as caught:
        SQLiteStore(schema_1_copy)
    assert str(schema_1_copy) in str(caught.value)
    connection = sqlite3.connect(schema_1_copy)
    try:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 1
        assert connection.execute("SELECT count(*) FROM traces").fetchone()[0] == 5
        assert connection.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 0
    finally:
        connection.close()


def test_a_newer_store_is_refused_naming_both_versions_and_left_alone(tmp_path):
    path = tmp_path / "newer.db"
    SQLiteStore(path).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    connection.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        SQLiteStore(path)
    message = str(caught.value)
    assert f"schema version {SCHEMA_VERSION + 3}" in message and f"reads up to {SCHEMA_VERSION}" in message
    assert "upgrade failpath" in message and str(path) in message
    assert path.read_bytes() == before


def test_migrations_are_numbered_in_order_and_planned_from_the_version_found():
    steps = (Migration(1, "a", ("CREATE TABLE a (x)",)), Migration(2, "b", ("CREATE TABLE b (x)",)))
    assert schema_version(steps) == 2
    assert migrations_to_apply(0, steps, store="s.db") == steps
    assert migrations_to_apply(1, steps, store="s.db") == steps[1:]
    assert migrations_to_apply(2, steps, store="s.db") == ()
    with pytest.raises(StoreError, match=r"s\.db was written by a newer failpath \(schema version 3; this version reads up to 2\)"):
        migrations_to_apply(3, steps, store="s.db")
    with pytest.raises(ValueError, match="migration 2 is numbered 3"):
        schema_version((steps[0], Migration(3, "c", ())))

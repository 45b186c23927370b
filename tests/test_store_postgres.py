"""What is particular to the PostgreSQL store: its URL everywhere a store is accepted, clear errors,
schema versions, a server restarting mid-run, traces that could not be written counted, and the
trace queries of ``failpath traces``/drift giving the same figures as on SQLite.

Every test needs the session's throwaway server (skipped, naming the Debian package, without it).
"""

from __future__ import annotations

import json
import multiprocessing
import random
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.cli import app
from failpath.core import Attempt, StoreError, Ticket
from failpath.store import open_store
from failpath.store import trace_queries as q
from failpath.store.opening import store_location
from test_store_conformance import make_ticket, make_trace

sys.path.insert(0, str(Path(__file__).parent))
from watch_systems import lookup, make_policy  # noqa: E402

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- opening


def test_a_server_url_opens_a_postgres_store_in_every_spelling_and_no_file_appears(postgres_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spellings = [
        postgres_url,
        postgres_url.replace("postgresql://", "postgres://"),
        Path(postgres_url),  # what a --store PATH option makes of it: "postgresql:/postgres:..."
        tmp_path / "config-folder" / Path(postgres_url),  # a failpath.toml path resolved against its folder
    ]
    for spelling in spellings:
        with open_store(spelling) as store:
            assert type(store).__name__ == "PostgresStore", spelling
            store.write_trace(make_trace(len(str(spelling))))
    assert list(tmp_path.iterdir()) == []  # no SQLite file under a folder named "postgresql:"
    with open_store(postgres_url) as store:
        assert store.count_traces() == len({len(str(s)) for s in spellings})
    assert store_location(tmp_path / "plain.db") == tmp_path / "plain.db"


def test_a_wrong_password_names_the_url_without_the_password(postgres_server, postgres_url):
    name = postgres_url.rsplit("/", 1)[1]
    wrong = postgres_server.url(name, password="not-the-secret-xyz")
    with pytest.raises(StoreError) as caught:
        open_store(wrong)
    message = str(caught.value)
    assert f"postgresql://postgres@127.0.0.1:{postgres_server.port}/{name}" in message
    assert "password authentication failed" in message and "not-the-secret-xyz" not in message


def test_an_unreachable_server_is_a_clear_error(postgres_server):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    url = f"postgresql://someone:hunter2@127.0.0.1:{port}/db"
    started = time.monotonic()
    with pytest.raises(StoreError, match=rf"cannot open the store postgresql://someone@127\.0\.0\.1:{port}/db: .*refused") as caught:
        open_store(url, connect_timeout=2)
    assert "hunter2" not in str(caught.value) and time.monotonic() - started < 10


def test_without_psycopg_the_error_says_what_to_install(monkeypatch, postgres_url):
    monkeypatch.setitem(sys.modules, "failpath.store.postgres", None)  # as if psycopg were not installed
    with pytest.raises(StoreError, match=r'pip install "failpath\[postgres\]"'):
        open_store(postgres_url)


# --------------------------------------------------------------------------- schema versions


def _recorded(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as connection:
        return [tuple(r) for r in connection.execute("SELECT version, description FROM schema_version ORDER BY version")]


def test_a_new_database_gets_every_migration_recorded_once_even_when_opened_by_several_processes(postgres_url):
    from failpath.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION

    ctx = multiprocessing.get_context("spawn")
    processes = [ctx.Process(target=open_store_and_close, args=(postgres_url,)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert _recorded(postgres_url) == [(m.version, m.description) for m in MIGRATIONS]
    assert len(MIGRATIONS) == SCHEMA_VERSION >= 2


def open_store_and_close(url: str) -> None:
    open_store(url).close()


def test_a_newer_schema_is_refused_naming_both_versions_and_left_alone(postgres_url):
    from failpath.store.postgres.schema import SCHEMA_VERSION

    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as connection:
        connection.execute("INSERT INTO schema_version VALUES (%s, 'from the future', 0)", (SCHEMA_VERSION + 2,))
    with pytest.raises(StoreError, match=rf"newer failpath \(schema version {SCHEMA_VERSION + 2}; this version reads up to {SCHEMA_VERSION}\)"):
        open_store(postgres_url)
    assert len(_recorded(postgres_url)) == SCHEMA_VERSION + 1


def test_a_version_5_database_is_migrated_to_output_schemas_and_the_deadline_index(postgres_url):
    from failpath.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION

    with psycopg.connect(postgres_url) as connection:  # a store as the previous version of failpath left it
        for migration in MIGRATIONS[:5]:
            for statement in migration.statements:
                connection.execute(statement)
        for migration in MIGRATIONS[:5]:
            connection.execute("INSERT INTO schema_version VALUES (%s, %s, 0)", (migration.version, migration.description))
        connection.execute(
            "INSERT INTO tickets (ticket_id, queue, created, policy, input_preview, status, deadline) "
            "VALUES ('t-old-1', 'review', 10, 'addresses', 'x', 'open', NULL), ('t-old-2', 'review', 20, 'addresses', 'y', 'open', 99)"
        )
    with open_store(postgres_url) as store:
        assert [t.ticket_id for t in store.list_tickets(order="deadline")] == ["t-old-2", "t-old-1"]
        assert store.get_ticket("t-old-1").output_schema is None
        store.create_ticket(Ticket(ticket_id="t-new", queue="review", created=30.0, policy="addresses", trace_id=None,
                                   input_preview="z", input_raw=None, output=None, confidence=None, state=None,
                                   output_schema={"type": "string"}))
        assert store.get_ticket("t-new").output_schema == {"type": "string"}
    assert [v for v, _ in _recorded(postgres_url)] == list(range(1, SCHEMA_VERSION + 1)) and SCHEMA_VERSION == 6
    with psycopg.connect(postgres_url) as connection:
        indexes = {r[0] for r in connection.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'tickets'")}
    assert "tickets_status_deadline" in indexes


def test_another_applications_tables_are_refused_not_taken_over(postgres_url):
    with psycopg.connect(postgres_url) as connection:
        connection.execute("CREATE TABLE traces (x int)")
    with pytest.raises(StoreError, match="tables named traces that are not a failpath store"):
        open_store(postgres_url)


# --------------------------------------------------------------------------- a lost connection


def test_a_server_restart_mid_run_loses_no_trace(postgres_server, postgres_url):
    store = open_store(postgres_url, batch_size=50, flush_interval=0.01)
    try:
        for i in range(300):
            store.write_trace(make_trace(i))
        store.flush()
        restarting = threading.Thread(target=postgres_server.restart)
        restarting.start()
        i = 300
        while restarting.is_alive() or i < 900:  # keep writing while the server goes down and comes back
            store.write_trace(make_trace(i))
            i += 1
            time.sleep(0.0005)
        restarting.join()
        store.flush(timeout=60)  # raises if a single trace was given up
        assert store.count_traces() == i
        assert len({t.trace_id for t in store.query_traces(limit=None)}) == i
        ticket_id = store.create_ticket(make_ticket())  # the pool replaced its lost connections
        assert store.resolve_ticket(ticket_id, "ok", reviewer="ana").reviewer == "ana"
    finally:
        store.close()


def test_traces_that_cannot_be_written_are_counted_and_reported(postgres_server, postgres_url, monkeypatch):
    import failpath.store.postgres as pg

    monkeypatch.setattr(pg, "RETRY_DELAYS", (0.01, 0.01))
    store = open_store(postgres_url, flush_interval=0.01)
    try:
        store.write_trace(make_trace(0))
        store.flush()
        postgres_server.drop_database(postgres_url.rsplit("/", 1)[1])  # the database goes away for good
        for i in range(1, 11):
            store.write_trace(make_trace(i))
        with pytest.raises(StoreError, match=r"10 traces could not be written to postgresql://postgres@"):
            store.flush(timeout=60)
        store.flush()  # reported once
    finally:
        store.close()


# --------------------------------------------------------------------------- everywhere a store is accepted


def test_a_policy_the_cli_and_review_work_on_a_postgres_url(postgres_url):
    with make_policy(postgres_url) as policy:
        guarded = policy.wrap(lookup)
        outcomes = [guarded(text) for text in ["boston", "bstnn xx", "boom now", "denver", "chcgo zz"]]
    escalated = [o for o in outcomes if isinstance(o, fp.Escalated)]
    assert sorted(o.queue for o in escalated) == ["ops", "review", "review"]

    listed = cli("traces", "list", "--store", postgres_url, "--json")
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == 5
    stats = cli("traces", "stats", "--store", postgres_url, "--json")
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["total"]["calls"] == 5

    tickets = json.loads(cli("review", "list", "--store", postgres_url, "--json").stdout)
    assert sorted(t["ticket_id"] for t in tickets) == sorted(o.ticket_id for o in escalated)
    done = cli("review", "resolve", escalated[0].ticket_id, "--answer", '"BOS"', "--reviewer", "ana", "--store", postgres_url)
    assert done.exit_code == 0, done.output
    again = cli("review", "resolve", escalated[0].ticket_id, "--answer", '"ORD"', "--reviewer", "bo", "--store", postgres_url)
    assert again.exit_code == 1 and "already resolved by ana" in again.stderr
    outcome = fp.review.get(escalated[0].ticket_id, store=postgres_url).wait_sync(timeout=5, poll_interval=0.05)
    assert isinstance(outcome, fp.Answered) and outcome.value == "BOS"


def test_failpath_toml_store_may_be_a_postgres_url(postgres_url, tmp_path, monkeypatch):
    from test_check_cli import CONFIG, PROJECT

    (tmp_path / "toyproj.py").write_text(PROJECT, encoding="utf-8")
    lines = [json.dumps({"id": f"c{i:03d}", "text": f"item {i}", "label": f"ITEM {i}"}) for i in range(40)]
    (tmp_path / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "failpath.toml").write_text(CONFIG.replace('store = "store.db"', f'store = "{postgres_url}"'), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # A store without a file keeps the check's own traces in the system's temporary folder: use this test's,
    # so a scratch file another failpath left there (another schema version, say) cannot decide the outcome.
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = runner.invoke(app, ["check", "--json", "out.json", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run_id = json.loads((tmp_path / "out.json").read_text())["run_id"]
    with open_store(postgres_url) as store:
        assert store.get_run(run_id)["summary"]["verdict"]["ship"] is True
    assert not (tmp_path / "postgresql:").exists() and not (tmp_path / "store.db").exists()
    runs = cli("runs", "--store", postgres_url, "--json")
    assert runs.exit_code == 0, runs.output
    assert [r["run_id"] for r in json.loads(runs.stdout)] == [run_id]
    # --store on the command line wins over the file's, and takes the URL too.
    (tmp_path / "failpath.toml").write_text(CONFIG, encoding="utf-8")
    again = runner.invoke(app, ["check", "--store", postgres_url, "--quiet"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    with open_store(postgres_url) as store:
        assert len(store.list_runs(kind="check")) == 2
    assert not (tmp_path / "store.db").exists() and not (tmp_path / "postgresql:").exists()


# --------------------------------------------------------------------------- trace queries agree with SQLite


def _varied_traces(n: int) -> list[fp.Trace]:
    rng = random.Random(7)
    outcomes = ("answered", "escalated", "abstained", "defaulted", "clarify", "weird-outcome")
    traces = []
    for i in range(n):
        states = tuple(s for s in ("timeout", "low_confidence", "invalid_output") if rng.random() < 0.2)
        confidence = rng.choice([None, rng.random(), 1.5])
        traces.append(make_trace(
            i,
            time=1_700_000_000.0 + i * 37.5,
            policy=rng.choice(["a", "b"]),
            outcome=rng.choice(outcomes),
            states=states,
            state=states[0] if states else None,
            confidence=confidence,
            degraded=rng.random() < 0.1,
            latency_ms=rng.expovariate(1 / 80),
            attempts=(Attempt(1, rng.choice(["call", "fallback"]), confidence=rng.choice([None, rng.random(), "high"])),),
        ))
    return traces


def test_trace_queries_give_the_same_figures_on_both_backends(postgres_url, tmp_path):
    from failpath.watch.stats import trace_stats

    traces = _varied_traces(600)
    with open_store(tmp_path / "same.db") as lite, open_store(postgres_url) as pg:
        for trace in traces:
            lite.write_trace(trace)
            pg.write_trace(trace)
        lite.flush()
        pg.flush()
        t0 = 1_700_000_000.0
        for kwargs in ({}, {"policy": "a"}, {"state": "timeout"}, {"outcome": "answered", "since": t0 + 3000, "until": t0 + 15000}):
            for window in (None, 3600.0):
                for raw in (False, True):
                    assert trace_stats(pg, window=window, raw_confidence=raw, **kwargs).to_dict() == trace_stats(
                        lite, window=window, raw_confidence=raw, **kwargs
                    ).to_dict(), (kwargs, window, raw)
        for policy in ("a", "b"):
            assert q.drift_sample(pg, policy=policy, since=t0, until=None) == q.drift_sample(lite, policy=policy, since=t0, until=None)
        where = q.TraceFilter(state="low_confidence")
        last_pg, cursor_pg = q.last_traces(pg, where, 5)
        last_lite, _ = q.last_traces(lite, where, 5)
        assert last_pg == last_lite and cursor_pg == q.latest_cursor(pg) == 600
        pg.write_trace(make_trace(9999, states=("low_confidence",)))
        pg.write_trace(make_trace(9998))
        pg.flush()
        assert [t.trace_id for t in q.traces_after(pg, cursor_pg, where)[0]] == ["tr-009999"]


def test_without_the_server_binaries_the_postgres_tests_are_skipped_naming_the_package(tmp_path):
    import os
    import subprocess

    env = {**os.environ, "FAILPATH_TEST_PG_BIN": str(tmp_path)}  # a folder without initdb or pg_ctl
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:failpath",
         str(Path(__file__).parent / "test_store_conformance.py"), "-k", "duplicate_trace_id"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 1 skipped" in done.stdout  # the SQLite half runs, the PostgreSQL half is skipped
    assert "install the Debian package `postgresql`" in done.stdout

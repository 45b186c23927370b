"""The PostgreSQL store against the SQLite store, measured in the same run on the same machine.

    python3 bench/store_postgres.py                      # writes from 1 and 4 processes, traces stats at 1,000,000
    python3 bench/store_postgres.py --quick              # 20,000 writes per process, stats at 100,000
    python3 bench/store_postgres.py --stats-traces 10000000 --only stats   # stats at 10 million (PostgreSQL only
                                                         # past the first million: see below)
    python3 bench/store_postgres.py --url postgresql://user:pw@host/db     # an existing server (its database is used)

Without ``--url`` a throwaway server is started from the Debian ``postgresql`` package's binaries, with
the WAL written to disk and ``synchronous_commit=off`` (a commit survives a killed server process but
not an OS crash: the guarantee the SQLite store gives with ``synchronous=NORMAL``).

Writes: each process opens the store and calls ``write_trace`` for its share of realistic traces
(those of ``bench/traces_query.py``), then ``flush``; the rate is all traces over the wall time from the
moment every process is ready to the last flush. The baseline is the SQLite store from one process.

``traces stats``: ``trace_stats(store)`` over every trace (median of 3, warm), on both stores filled with
the same traces through ``write_trace``, read both ways: from the hourly rollup (the default) and from
every trace (``exact=True``, the baseline); both stores must give the same figures each way first.
With ``--stats-traces`` above 1,000,000, the PostgreSQL store is filled to the first million through
``write_trace`` and then copied forward inside the server (``INSERT ... SELECT ... generate_series``) to
the full count, shifted back by a week per copy, with the rollup the writer would have kept for the
copies (the first million's rows, 168 hours earlier, and the hour two copies share recomputed from the
traces); the rollup's counts are checked against the exact ones at that size. The SQLite store stays at
the first million (building 10 million through its writer takes over 15 minutes here), and its time is
given at that size.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE), str(HERE.parent / "tests")]

from failpath.store import open_store  # noqa: E402
from traces_query import WEEK, make_trace  # noqa: E402


def _writer(location: str, first: int, count: int, total: int, end: float, ready, go, done) -> None:
    rng = random.Random(first)
    traces = [make_trace(i, total, end, rng) for i in range(first, first + count)]  # made before the clock
    store = open_store(location)
    ready.put(True)
    go.wait()
    for trace in traces:
        store.write_trace(trace)
    store.flush()
    done.put(time.perf_counter())
    store.close()


def write_rate(location: str, processes: int, per_process: int) -> float:
    """Traces per second written into ``location`` by ``processes`` processes of ``per_process`` traces each."""
    ctx = multiprocessing.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    end = time.time()
    total = processes * per_process
    workers = [ctx.Process(target=_writer, args=(location, n * per_process, per_process, total, end, ready, go, done))
               for n in range(processes)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=600)
    started = time.perf_counter()
    go.set()
    finished = max(done.get(timeout=3600) for _ in workers)
    for worker in workers:
        worker.join(60)
        if worker.exitcode:
            raise SystemExit(f"a writer process failed (exit {worker.exitcode})")
    with open_store(location) as store:
        stored = store.count_traces()
    if stored != total:
        raise SystemExit(f"{location}: {stored:,} traces stored, {total:,} written")
    return total / (finished - started)


def fill(location: str, n: int, end: float) -> None:
    """Write ``n`` realistic traces leading up to ``end`` through ``write_trace`` (the same ones every time)."""
    rng = random.Random(11)
    with open_store(location) as store:
        for i in range(n):
            store.write_trace(make_trace(i, n, end, rng))
        store.flush()


def copy_forward(url: str, have: int, want: int, end: float) -> None:
    """Grow the PostgreSQL store from ``have`` to ``want`` traces inside the server: copies of the first
    ``have``, each shifted back by one more week, with new ids (``generate_series``)."""
    import psycopg

    from failpath.store.records import TRACE_COLUMNS

    from failpath.store import rollup

    copies = -(-want // have) - 1
    with psycopg.connect(url) as connection:  # the first million's hours: every copy is shifted by whole weeks
        first_hour, last_hour = connection.execute("SELECT min(hour), max(hour) FROM trace_rollup").fetchone()
    shifted = TRACE_COLUMNS.replace("trace_id, time,", "trace_id || '-' || k, time - k * %s,", 1)
    with psycopg.connect(url, autocommit=True) as connection:
        for k in range(1, copies + 1):  # each copy is a week earlier than the one before
            take = min(have, want - have * k)
            connection.execute(
                f"INSERT INTO traces ({TRACE_COLUMNS}) SELECT {shifted} FROM "
                f"(SELECT * FROM traces WHERE id <= %s) AS t, generate_series(%s::int, %s::int) AS k",
                (WEEK, take, k, k),
            )
            connection.execute(
                "INSERT INTO trace_states (state, time, trace_id, policy, outcome) "
                "SELECT s.state, s.time - k * %s, s.trace_id || '-' || k, s.policy, s.outcome FROM trace_states AS s "
                "JOIN traces AS t ON t.trace_id = s.trace_id AND t.id <= %s, generate_series(%s::int, %s::int) AS k",
                (WEEK, take, k, k),
            )
            # The rollup the writer would have kept for the copy: a whole copy's inner hours are the first
            # million's, a week (168 hours) earlier; its first and last hours (each shared with the next
            # copy) are recomputed from the traces, as is part of a copy.
            first_of_copy = rollup.hour_of(end - (k + 1) * WEEK)
            last_of_copy = rollup.hour_of(end - k * WEEK)
            with connection.transaction(), connection.cursor() as cursor:
                if take == have:
                    cursor.execute(
                        "INSERT INTO trace_rollup (hour, policy, outcome, calls, degraded, states, latency, confidence) "
                        "SELECT hour - 168 * %s, policy, outcome, calls, degraded, states, latency, confidence "
                        "FROM trace_rollup WHERE hour > %s AND hour < %s",
                        (k, first_hour, last_hour),
                    )
                    for hour in (first_of_copy, last_of_copy):
                        rollup.rebuild(cursor, "%s", since=hour * rollup.HOUR, until=(hour + 1) * rollup.HOUR)
                else:
                    rollup.rebuild(cursor, "%s", since=first_of_copy * rollup.HOUR, until=(last_of_copy + 1) * rollup.HOUR)
            print(f"  copied forward: {have + take * k if take == have else have * k + take:,} traces", flush=True)
        connection.execute("VACUUM ANALYZE traces")
        connection.execute("VACUUM ANALYZE trace_states")
        connection.execute("VACUUM ANALYZE trace_rollup")


def compare_at_first(lite: str, pg: str, first: int) -> float:
    """``traces stats`` on both stores, exact and from the rollup; prints the table, returns SQLite's exact time."""
    from failpath.watch.stats import trace_stats

    with open_store(lite) as a, open_store(pg) as b:
        assert trace_stats(a, exact=True).to_dict() == trace_stats(b, exact=True).to_dict(), "the two stores disagree"
        assert trace_stats(a).to_dict() == trace_stats(b).to_dict(), "the two stores' rollups disagree"
        rows = [(label, {name: timed(lambda s=s: trace_stats(s, **query)) for name, s in (("lite", a), ("pg", b))})
                for label, query in (("one span, exact (every trace)", {"exact": True}),
                                     ("--window 1h, exact", {"exact": True, "window": 3600}),
                                     ("one span, rollup", {}),
                                     ("--window 1h, rollup", {"window": 3600}))]
    lite_s = rows[0][1]["lite"]
    print(f"{'traces stats':<36} {'traces':>11} {'SQLite s':>9} {'PostgreSQL s':>13} {'PG / SQLite':>12} {'x SQLite exact':>15}")
    for label, t in rows:
        print(f"{label:<36} {first:>11,} {t['lite']:>9.3f} {t['pg']:>13.3f} {t['pg'] / t['lite']:>12.2f} "
              f"{t['pg'] / lite_s:>15.3f}", flush=True)
    return lite_s


def timed(fn, repeat: int = 3) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 writes per process, stats at 100,000 traces")
    parser.add_argument("--writes", type=int, default=None, help="traces per writer process (default 50,000)")
    parser.add_argument("--stats-traces", type=int, default=None, help="traces for traces stats (default 1,000,000)")
    parser.add_argument("--only", choices=("writes", "stats"), default=None)
    parser.add_argument("--postgres-only", action="store_true", help="traces stats: skip the SQLite store at the first million")
    parser.add_argument("--url", default=None, help="an existing PostgreSQL database to use (emptied first: its failpath tables are dropped)")
    args = parser.parse_args()
    writes = args.writes or (20_000 if args.quick else 50_000)
    stats_n = args.stats_traces or (100_000 if args.quick else 1_000_000)

    server = None
    if args.url is None:
        from postgres_server import MISSING, ThrowawayServer, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit(MISSING)
        server = ThrowawayServer(bin_dir, fsync=True)
    folder = tempfile.TemporaryDirectory(prefix="failpath-bench-")

    def fresh_postgres() -> str:
        if server is not None:
            return server.url(server.create_database())
        import psycopg

        with psycopg.connect(args.url, autocommit=True) as connection:
            for table in ("traces", "trace_states", "tickets", "results", "runs", "resolutions", "schema_version",
                          "checkpoints", "reviewers", "trace_rollup", "trace_rollup_state"):
                connection.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        return args.url

    counter = iter(range(1000))

    def fresh_sqlite() -> str:
        return str(Path(folder.name) / f"store-{next(counter)}.db")

    try:
        if args.only in (None, "writes"):
            print(f"trace writes, {writes:,} traces per process (write_trace + flush):")
            base = write_rate(fresh_sqlite(), 1, writes)
            print(f"{'store':<12} {'processes':>9} {'traces/s':>10} {'x SQLite, 1 process':>21}")
            print(f"{'SQLite':<12} {1:>9} {base:>10,.0f} {1.0:>21.2f}")
            for name, fresh, processes in (("PostgreSQL", fresh_postgres, 1), ("SQLite", fresh_sqlite, 4),
                                           ("PostgreSQL", fresh_postgres, 4)):
                rate = write_rate(fresh(), processes, writes)
                print(f"{name:<12} {processes:>9} {rate:>10,.0f} {rate / base:>21.2f}", flush=True)
        if args.only in (None, "stats"):
            from failpath.watch.stats import trace_stats

            first = min(stats_n, 1_000_000)
            print(f"\ntraces stats: filling the stores with {first:,} traces through write_trace ...", flush=True)
            lite, pg = fresh_sqlite(), fresh_postgres()
            end = time.time()
            started = time.perf_counter()
            fill(pg, first, end)
            print(f"  PostgreSQL filled in {time.perf_counter() - started:.0f} s", flush=True)
            if args.postgres_only:
                lite_s = float("nan")
            else:
                started = time.perf_counter()
                fill(lite, first, end)
                print(f"  SQLite filled in {time.perf_counter() - started:.0f} s", flush=True)
                lite_s = compare_at_first(lite, pg, first)
            if stats_n > first:
                print(f"copying the PostgreSQL store forward to {stats_n:,} traces ...", flush=True)
                started = time.perf_counter()
                copy_forward(pg, first, stats_n, end)
                print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
                with open_store(pg) as b:
                    total = b.count_traces()
                    fast, exact = trace_stats(b), trace_stats(b, exact=True)
                    assert fast.approximate and fast.total.calls == exact.total.calls == total, "the rollup disagrees"
                    assert fast.total.outcomes == exact.total.outcomes and fast.total.states == exact.total.states
                    big = {"one span, exact (every trace)": timed(lambda: trace_stats(b, exact=True), repeat=1),
                           "one span, rollup": timed(lambda: trace_stats(b)),
                           "--window 1h, rollup": timed(lambda: trace_stats(b, window=3600)),
                           "--since 30d --window 1d, rollup": timed(lambda: trace_stats(b, since=end - 30 * 86400 + 0.5, window=86400))}
                for label, seconds in big.items():
                    print(f"{label + ' (PostgreSQL)':<36} {total:>11,} {'':>9} {seconds:>13.3f} {'':>12} {seconds / lite_s:>15.3f}")
    finally:
        folder.cleanup()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()

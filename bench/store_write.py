"""Store speed: trace writes, a state filter on a large store, per-thread connections vs one locked connection.

    python3 bench/store_write.py                 # 100,000 writes, 1,000,000-trace query store
    python3 bench/store_write.py --quick         # 20,000 writes, 100,000-trace query store

Every figure is printed next to a baseline measured in the same run:

1. ``write_trace`` + ``flush`` of N traces (the guard's path: queue, background batching writer,
   serialization, ``trace_states`` rows) against a bare ``executemany`` of the same, already
   serialized rows into the same schema in one transaction. Also the caller's cost per
   ``write_trace`` call (what the guard's hot path pays) against an empty function call.
2. A state filter (``count_traces(state=...)`` and ``query_traces(state=..., limit=100)``) on a
   store of M traces built with ``write_trace``, against the same question asked by scanning the
   JSON ``states`` column (what a store without the ``trace_states`` table would do).
3. Point reads (``get_trace``) from 4 threads with one connection per thread (what the store does)
   against one shared connection behind a lock.
"""

from __future__ import annotations

import argparse
import queue
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from failpath.core import Attempt, Trace  # noqa: E402
from failpath.store.records import row_to_trace, trace_rows  # noqa: E402
from failpath.store.sqlite import SQLiteStore  # noqa: E402
from failpath.store.sqlite.connections import INSERT_STATE, INSERT_TRACE  # noqa: E402

POLICIES = ("addresses", "invoices", "support")
STATES = ("timeout", "low_confidence", "invalid_output", "injection_suspected", "provider_error")


def make_traces(n: int, *, start: float = 1_700_000_000.0, seed: int = 7) -> list[Trace]:
    """n realistic traces: one attempt, a second on a retry; 8% with a state (timeout 2%, inconsistent 0.05%)."""
    rng = random.Random(seed)
    traces = []
    for i in range(n):
        r = rng.random()
        states: tuple[str, ...] = ()
        if r < 0.0005:
            states = ("inconsistent",)
        elif r < 0.02:
            states = ("timeout",)
        elif r < 0.08:
            states = (STATES[1 + i % 4],)
        attempts = [Attempt(1, "call", system="primary", state=states[0] if states else None,
                            output={"street": "Main St", "number": i % 1000}, confidence=0.9, latency_ms=12.5,
                            usage={"input_tokens": 40, "output_tokens": 12})]
        if states:
            attempts.append(Attempt(2, "retry", system="primary", output={"street": "Main St"}, latency_ms=10.0))
        traces.append(Trace(
            trace_id=f"{i:08x}{rng.getrandbits(64):016x}",
            time=start + i * 0.01,
            policy=POLICIES[i % 3],
            input_digest=f"{rng.getrandbits(256):064x}",
            input_preview="12 M*** St, Spr*****ld IL",
            outcome="answered" if not states else ("escalated" if i % 2 else "defaulted"),
            output={"street": "Main St", "number": i % 1000} if not states or i % 2 == 0 else None,
            confidence=0.9 if not states else 0.3,
            states=states,
            actions=("retry", "escalate") if states else (),
            state=states[0] if states else None,
            attempts=tuple(attempts),
            latency_ms=22.5,
            usage={"input_tokens": 40.0, "output_tokens": 12.0},
        ))
    return traces


def bench_writes(n: int, folder: Path) -> None:
    traces = make_traces(n)

    # Baseline: rows serialized beforehand, one executemany per table, one transaction.
    rows, state_rows = [], []
    t0 = time.perf_counter()
    for trace in traces:
        row, states = trace_rows(trace)
        rows.append(row)
        state_rows.extend(states)
    serialize = time.perf_counter() - t0
    SQLiteStore(folder / "baseline.db").close()  # same schema, same pragmas
    connection = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    connection.execute("PRAGMA synchronous = NORMAL")
    t0 = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(INSERT_TRACE, rows)
    connection.executemany(INSERT_STATE, state_rows)
    connection.execute("COMMIT")
    baseline = time.perf_counter() - t0
    connection.close()

    store = SQLiteStore(folder / "store.db")
    t0 = time.perf_counter()
    for trace in traces:
        store.write_trace(trace)
    queued = time.perf_counter() - t0
    store.flush()
    total = time.perf_counter() - t0
    assert store.count_traces() == n
    store.close()

    # The caller's own cost: the writer is kept off the GIL (blocked on another connection's write
    # lock), so the loop measures write_trace alone, against a bare SimpleQueue.put.
    k = min(n, 20_000)
    store = SQLiteStore(folder / "caller.db", batch_size=1, busy_timeout=600)
    blocker = sqlite3.connect(folder / "caller.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store.write_trace(traces[0])
    time.sleep(0.2)  # the writer now waits for the lock inside SQLite, without the GIL
    t0 = time.perf_counter()
    for trace in traces[1:k]:
        store.write_trace(trace)
    caller = (time.perf_counter() - t0) / (k - 1)
    bare_queue = queue.SimpleQueue()
    t0 = time.perf_counter()
    for trace in traces[1:k]:
        bare_queue.put(trace)
    bare_put = (time.perf_counter() - t0) / (k - 1)
    blocker.execute("ROLLBACK")
    blocker.close()
    store.close()

    print(f"writes: {n:,} traces")
    print(f"  bare executemany (pre-serialized rows): {n / baseline:12,.0f} traces/s")
    print(f"  serialization alone (rows + JSON, done by the store's writer thread): {n / serialize:,.0f} traces/s")
    print(f"  bare executemany + serialization:       {n / (baseline + serialize):12,.0f} traces/s")
    print(f"  write_trace + flush (store):            {n / total:12,.0f} traces/s"
          f"   ratio store/bare = {total / baseline:.2f}x the time, "
          f"store/(bare + serialization) = {total / (baseline + serialize):.2f}x")
    print(f"  caller's wall time per write_trace in that burst (shares the GIL with the writer): "
          f"{queued / n * 1e6:.2f} us")
    print(f"  caller's own cost per write_trace: {caller * 1e6:.2f} us   (bare SimpleQueue.put: "
          f"{bare_put * 1e6:.2f} us; ratio {caller / bare_put:.1f}x)")


def bench_state_filter(m: int, folder: Path, keep: Path | None = None) -> None:
    path = keep or folder / "big.db"
    built = None
    if keep is None or not keep.exists():
        t0 = time.perf_counter()
        chunk = 100_000
        with SQLiteStore(path) as store:
            for start in range(0, m, chunk):
                for trace in make_traces(min(chunk, m - start), start=1_700_000_000.0 + start * 0.01, seed=start):
                    store.write_trace(trace)
            store.flush()
        built = time.perf_counter() - t0
    with SQLiteStore(path) as store:
        assert store.count_traces() == m
        connection = sqlite3.connect(path)
        connection.row_factory = sqlite3.Row
        scan_page = (
            "SELECT * FROM traces WHERE EXISTS (SELECT 1 FROM json_each(traces.states) WHERE value = ?) "
            "ORDER BY time DESC LIMIT 100"
        )

        def timed(fn, repeat=5):
            best = float("inf")
            for _ in range(repeat):
                t = time.perf_counter()
                result = fn()
                best = min(best, time.perf_counter() - t)
            return best, result

        t_count, n_timeout = timed(lambda: store.count_traces(state="timeout"))
        t_query, page = timed(lambda: store.query_traces(state="timeout", limit=100))
        last_hour = 1_700_000_000.0 + m * 0.01 - 3600
        t_rare, rare_page = timed(lambda: store.query_traces(state="inconsistent", limit=100))
        t_rare_scan, _ = timed(
            lambda: [row_to_trace(row) for row in connection.execute(scan_page, ("inconsistent",))], repeat=2
        )
        t_window, n_window = timed(lambda: store.count_traces(state="timeout", since=last_hour))
        t_scan, n_scan = timed(
            lambda: connection.execute(
                "SELECT count(*) FROM traces WHERE EXISTS (SELECT 1 FROM json_each(traces.states) WHERE value = ?)",
                ("timeout",),
            ).fetchone()[0],
            repeat=2,
        )
        t_scan_page, _ = timed(
            lambda: [row_to_trace(row) for row in connection.execute(scan_page, ("timeout",))], repeat=2
        )
        connection.close()
    assert n_scan == n_timeout and len(page) == min(100, n_timeout)
    size = path.stat().st_size / 2**20
    how = f"built with write_trace in {built:.1f} s, {m / built:,.0f} traces/s" if built else f"reused {path}"
    print(f"state filter on {m:,} traces ({size:,.0f} MiB, {how}); JSON scan = same question answered by "
          f"scanning the JSON states column, rows decoded the same way")
    print(f"  count_traces(state='timeout') -> {n_timeout:,}: {t_count * 1e3:8.2f} ms   "
          f"(JSON scan: {t_scan * 1e3:8.1f} ms; {t_scan / t_count:,.0f}x faster)")
    print(f"  query_traces(state='timeout', limit=100):  {t_query * 1e3:8.2f} ms   "
          f"(JSON scan: {t_scan_page * 1e3:8.1f} ms; ratio {t_scan_page / t_query:,.2f}x)")
    print(f"  query_traces(state='inconsistent', limit=100) (0.05% of traces): {t_rare * 1e3:8.2f} ms   "
          f"(JSON scan: {t_rare_scan * 1e3:8.1f} ms; {t_rare_scan / t_rare:,.0f}x faster)")
    print(f"  count_traces(state='timeout', since=last hour) -> {n_window:,}: {t_window * 1e3:.2f} ms")


def bench_thread_reads(folder: Path, threads: int = 4, reads: int = 5_000) -> None:
    path = folder / "reads.db"
    traces = make_traces(10_000, seed=3)
    with SQLiteStore(path) as store:
        for trace in traces:
            store.write_trace(trace)
        store.flush()
        ids = [t.trace_id for t in traces]

        def run(worker) -> float:
            barrier = threading.Barrier(threads + 1)
            pool = [threading.Thread(target=worker, args=(barrier, k)) for k in range(threads)]
            for thread in pool:
                thread.start()
            barrier.wait()
            t0 = time.perf_counter()
            for thread in pool:
                thread.join()
            return time.perf_counter() - t0

        sql = "SELECT * FROM traces WHERE trace_id = ?"
        local = threading.local()

        def per_thread(barrier, k):
            rng = random.Random(k)
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            connection.row_factory = sqlite3.Row
            local.connection = connection
            barrier.wait()
            for _ in range(reads):
                row_to_trace(connection.execute(sql, (rng.choice(ids),)).fetchone())
            connection.close()

        shared = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        shared.row_factory = sqlite3.Row
        lock = threading.Lock()

        def locked(barrier, k):
            rng = random.Random(k)
            barrier.wait()
            for _ in range(reads):
                with lock:
                    row = shared.execute(sql, (rng.choice(ids),)).fetchone()
                row_to_trace(row)

        def through_store(barrier, k):
            rng = random.Random(k)
            barrier.wait()
            for _ in range(reads):
                store.get_trace(rng.choice(ids))

        t_locked = run(locked)
        t_per_thread = run(per_thread)
        t_store = run(through_store)

        # Aggregate reads: SQLite works without the GIL, so separate connections run side by side.
        agg = "SELECT outcome, count(*), avg(latency_ms) FROM traces WHERE time >= ? GROUP BY outcome"
        heavy = max(1, reads // 200)

        def per_thread_agg(barrier, k):
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            barrier.wait()
            for _ in range(heavy):
                connection.execute(agg, (0.0,)).fetchall()
            connection.close()

        def locked_agg(barrier, k):
            barrier.wait()
            for _ in range(heavy):
                with lock:
                    shared.execute(agg, (0.0,)).fetchall()

        t_agg_locked = run(locked_agg)
        t_agg_per_thread = run(per_thread_agg)
        shared.close()
    total = threads * reads
    print(f"point reads, {threads} threads x {reads:,} get_trace:")
    print(f"  one connection behind a lock: {total / t_locked:10,.0f} reads/s")
    print(f"  one connection per thread:    {total / t_per_thread:10,.0f} reads/s"
          f"   ratio per-thread/locked {t_locked / t_per_thread:.2f}x")
    print(f"  SQLiteStore.get_trace:        {total / t_store:10,.0f} reads/s (per-thread, with id prefix handling)")
    agg_total = threads * heavy
    print(f"aggregate reads (GROUP BY over 10,000 traces), {threads} threads x {heavy}:")
    print(f"  one connection behind a lock: {agg_total / t_agg_locked:10,.1f} queries/s")
    print(f"  one connection per thread:    {agg_total / t_agg_per_thread:10,.1f} queries/s"
          f"   ratio per-thread/locked {t_agg_locked / t_agg_per_thread:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 writes and a 100,000-trace query store")
    parser.add_argument("--writes", type=int, default=None)
    parser.add_argument("--big", type=int, default=None)
    parser.add_argument("--only", choices=("writes", "reads", "filter"), default=None, help="run one part")
    parser.add_argument("--keep", type=Path, default=None, help="build the large store here once and reuse it")
    args = parser.parse_args()
    writes = args.writes or (20_000 if args.quick else 100_000)
    big = args.big or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.only in (None, "writes"):
            bench_writes(writes, folder)
        if args.only in (None, "reads"):
            bench_thread_reads(folder)
        if args.only in (None, "filter"):
            bench_state_filter(big, folder, args.keep)


if __name__ == "__main__":
    main()

"""What keeping the hourly trace rollup costs the trace writer, on SQLite and PostgreSQL.

    python3 bench/rollup_writes.py                 # 50,000 traces per round, 4 rounds, SQLite and PostgreSQL
    python3 bench/rollup_writes.py --traces 20000 --rounds 2 --sqlite-only

Each round writes the same realistic traces (those of ``bench/traces_query.py``) into a fresh store
through ``write_trace`` + ``flush``, once as the store does (each batch folded into the rollup in its
transaction) and once with the fold replaced by a no-op (the baseline: the store without a rollup),
in alternating order, each in a fresh process. Printed: the median traces/s of each and their ratio.
On PostgreSQL the baseline still has the insert return the inserted rows' figures (``RETURNING``),
which only the rollup needs: that small part of the cost is counted in the baseline.
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


def _run(location: str, n: int, fold: bool, out) -> None:
    from failpath.store import open_store, rollup
    from traces_query import make_trace

    if not fold:
        rollup.fold_new_traces = lambda cursor, mark, after_id: None  # the store as it was without a rollup
        rollup.fold_rows = lambda cursor, mark, rows: None  # (PostgreSQL's insert still returns the rows)
    rng = random.Random(5)
    end = time.time()
    traces = [make_trace(i, n, end, rng) for i in range(n)]
    with open_store(location) as store:
        started = time.perf_counter()
        for trace in traces:
            store.write_trace(trace)
        store.flush()
        out.put(n / (time.perf_counter() - started))


def rate(location: str, n: int, fold: bool) -> float:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    process = ctx.Process(target=_run, args=(location, n, fold, out))
    process.start()
    value = out.get(timeout=3600)
    process.join(60)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    server = None
    backends = ["SQLite"]
    if not args.sqlite_only:
        from postgres_server import MISSING, ThrowawayServer, find_bin_dir

        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise SystemExit(MISSING)
        server = ThrowawayServer(bin_dir, fsync=True)
        backends.append("PostgreSQL")
    folder = tempfile.TemporaryDirectory(prefix="failpath-rollup-")
    counter = iter(range(10_000))
    try:
        print(f"{'store':<11} {'without rollup /s':>18} {'with rollup /s':>15} {'with / without':>15}  (median of {args.rounds} rounds, {args.traces:,} traces)")
        for backend in backends:
            with_fold, without = [], []
            for round_ in range(args.rounds):
                for fold in ((True, False) if round_ % 2 else (False, True)):
                    location = (str(Path(folder.name) / f"s{next(counter)}.db") if backend == "SQLite"
                                else server.url(server.create_database()))
                    (with_fold if fold else without).append(rate(location, args.traces, fold))
            a, b = statistics.median(without), statistics.median(with_fold)
            print(f"{backend:<11} {a:>18,.0f} {b:>15,.0f} {b / a:>15.2f}", flush=True)
    finally:
        folder.cleanup()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()

"""Trace queries on a store of one million traces: ``traces list --state``, ``traces stats``, tail, drift.

    python3 bench/traces_query.py                          # builds a 1,000,000-trace store in a temp folder
    python3 bench/traces_query.py --store /tmp/big.db      # builds it there once, reuses it on the next runs
    python3 bench/traces_query.py --traces 100000          # a smaller store, for a quick look

The store is filled the way production fills it: ``Trace`` values through ``write_trace`` (the batching
writer), one trace every 0.6 s over a week, from two policies, with realistic outcomes and failure
states and a raw confidence on each system call.

Every timing (median of 3 runs, warm cache) is printed beside two baselines measured in the same run on
the same file: ``count_traces()`` (a full-table ``SELECT count(*)``, which SQLite answers from its
smallest index) and a full scan that reads every row (``SELECT sum(latency_ms) FROM traces``, the least
any statistic over all traces can cost), as ratios.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from failpath.core import Attempt, Trace  # noqa: E402
from failpath.store import open_store  # noqa: E402
from failpath.store import trace_queries as q  # noqa: E402
from failpath.watch.driftcheck import drift  # noqa: E402
from failpath.watch.stats import trace_stats  # noqa: E402

WEEK = 7 * 86400.0


def make_trace(i: int, n: int, end: float, rng: random.Random) -> Trace:
    """Trace number ``i`` of ``n``, spread evenly over the week before ``end``."""
    policy = "addresses" if i % 5 else "invoices"
    r = rng.random()
    confidence = min(1.0, max(0.0, rng.betavariate(8, 1.5)))
    states: tuple[str, ...] = ()
    outcome, state, actions, degraded = "answered", None, (), False
    attempts = [Attempt(1, "call", system="parser", confidence=confidence, latency_ms=rng.lognormvariate(3.0, 0.6),
                        usage={"input_tokens": 40.0, "output_tokens": 12.0})]
    if r < 0.02:
        states, state, outcome, actions = ("timeout",), "timeout", "answered", ("retry",)
        attempts[0] = Attempt(1, "call", system="parser", state="timeout", error="SystemTimeout: slow", latency_ms=2000.0)
        attempts.append(Attempt(2, "retry", system="parser", confidence=confidence, latency_ms=30.0))
    elif r < 0.03:
        states, state, outcome, actions, degraded = ("provider_error",), "provider_error", "answered", ("fallback",), True
        attempts.append(Attempt(2, "fallback", system="backup", confidence=0.7, latency_ms=80.0))
    elif r < 0.05:
        states, state, outcome, actions = ("anomalous_input",), "anomalous_input", "clarify", ("clarify",)
        attempts = [Attempt(1, "clarify", state="anomalous_input")]
    elif confidence < 0.8:
        states, state, outcome, actions = ("low_confidence",), "low_confidence", "escalated", ("escalate",)
    latency = sum(a.latency_ms for a in attempts) + 0.3
    return Trace(
        trace_id=f"{i:08x}{rng.getrandbits(64):016x}",
        time=end - WEEK + WEEK * i / n,
        policy=policy,
        input_digest=f"{rng.getrandbits(256):064x}",
        input_preview=f"{i % 9000 + 100} Main St, Springfield, IL 62704",
        outcome=outcome,
        output={"number": str(i % 9000 + 100), "street": "Main St"} if outcome == "answered" else None,
        confidence=confidence if outcome == "answered" else None,
        states=states,
        actions=actions,
        state=state,
        attempts=tuple(attempts),
        degraded=degraded,
        latency_ms=latency,
        ticket_id=f"t-{i:08x}" if outcome == "escalated" else None,
        usage={"input_tokens": 40.0, "output_tokens": 12.0},
    )


def build(path: Path, n: int) -> float:
    """Fill the store at ``path`` with ``n`` traces unless it holds them already; returns the end time."""
    with open_store(path) as store:
        have = store.count_traces()
        if have >= n:
            print(f"reusing {path} ({have:,} traces)")
            newest = store.query_traces(limit=1)
            return newest[0].time if newest else time.time()
        if have:
            raise SystemExit(f"{path} holds {have:,} traces, fewer than {n:,}: pass another --store path")
        rng = random.Random(11)
        end = time.time()
        started = time.perf_counter()
        for i in range(n):
            store.write_trace(make_trace(i, n, end, rng))
        store.flush()
        print(f"built {path}: {n:,} traces written in {time.perf_counter() - started:.0f} s")
    with open_store(path) as store:
        store.create_run("bench-baseline", kind="check", config={})
        sample = store.query_traces(policy="addresses", limit=5000)
        conf = [t.attempts[0].confidence for t in sample if t.attempts and t.attempts[0].action == "call"]
        store.finish_run("bench-baseline", {"baseline": {
            "policy": "addresses", "n": 5000, "coverage": sum(t.outcome == "answered" for t in sample) / len(sample),
            "confidence_sample": [c for c in conf if c is not None],
            "state_rates": {s: sum(s in t.states for t in sample) / len(sample) for s in ("timeout", "provider_error", "anomalous_input", "low_confidence")},
            "outcome_rates": {k: sum(t.outcome == k for t in sample) / len(sample) for k in ("answered", "clarify", "escalated")},
        }})
    return end


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median seconds of ``repeat`` runs of ``fn`` (after one warm-up run), and its last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=1_000_000, help="traces in the store (default 1,000,000)")
    parser.add_argument("--store", type=Path, default=None, help="where to build (or reuse) the store")
    args = parser.parse_args()
    folder = None
    if args.store is None:
        folder = tempfile.TemporaryDirectory(prefix="failpath-bench-")
        args.store = Path(folder.name) / "traces.db"
    end = build(args.store, args.traces)

    store = open_store(args.store)
    raw = sqlite3.connect(f"file:{args.store}?mode=ro", uri=True)
    try:
        count_s, total = timed(store.count_traces)
        scan_s, _ = timed(lambda: raw.execute("SELECT sum(latency_ms) FROM traces").fetchone())
        rows = [
            ("traces list --state timeout -n 50 (query + total count)",
             lambda: (store.query_traces(state="timeout", limit=50), store.count_traces(state="timeout"))),
            ("traces list --state low_confidence --policy addresses --since 1h",
             lambda: store.query_traces(state="low_confidence", policy="addresses", since=end - 3600, limit=50)),
            ("traces tail -n 10 (latest traces and cursor)", lambda: q.last_traces(store, q.TraceFilter(), 10)),
            ("traces stats (all traces, one span)", lambda: trace_stats(store)),
            ("traces stats --window 1h (all traces, 168 windows)", lambda: trace_stats(store, window=3600)),
            ("traces stats --state timeout --window 1h", lambda: trace_stats(store, state="timeout", window=3600)),
            ("traces stats --since 1h --window 5m", lambda: trace_stats(store, since=end - 3600, window=300)),
            ("drift --since 24h (policy addresses, ~115,000 traces)",
             lambda: drift(store, "bench-baseline", since=end - 86400)),
        ]
        print(f"\nstore: {total:,} traces, {args.store.stat().st_size / 1e6:,.0f} MB")
        print(f"baseline A: count_traces() (SELECT count(*))          {count_s * 1000:9.1f} ms")
        print(f"baseline B: full scan (SELECT sum(latency_ms))        {scan_s * 1000:9.1f} ms\n")
        print(f"{'query':<66} {'ms':>9} {'x A':>8} {'x B':>7}")
        for label, fn in rows:
            seconds, _ = timed(fn)
            print(f"{label:<66} {seconds * 1000:9.1f} {seconds / count_s:8.1f} {seconds / scan_s:7.2f}")
    finally:
        raw.close()
        store.close()
        if folder is not None:
            folder.cleanup()


if __name__ == "__main__":
    main()

"""Guard overhead: what a guarded call adds over the bare call of a system that returns at once.

    python3 bench/guard_overhead.py                  # 20,000 calls per variant
    python3 bench/guard_overhead.py --quick          # 3,000 calls per variant
    python3 bench/guard_overhead.py --against REV    # this code against git revision REV, in the same run

Tracing to SQLite is on (a fresh store in a temporary directory). Printed per variant, in the same run:

- the median time of one bare call and of one guarded call (each call timed on its own, bare and
  guarded alternating call by call so load on a shared machine hits both alike), the difference in
  µs, and the ratio;
- the amortized cost: the wall time of all guarded calls plus the final ``flush`` (the background
  writer's SQLite work included), per call, minus the bare call.

Variants:

0. ``minimal/nostore``: the minimal policy with ``store=False``: the guard's own work, without the store.
1. ``minimal``: a policy with one rule (``Unexpected``).
2. ``readme``: the README policy without a ``Timeout`` rule: empty input, injection, anomalous input
   (a fitted profile over 300 reference inputs), provider error, invalid output (``InvalidOutput()``,
   no schema), low confidence, budget, unexpected.
3. ``readme+schema``: the same, with ``InvalidOutput(schema=Address)``: a pydantic validation per call.
4. ``readme+timeout``: the same with ``Timeout(after=2.0)``: a sync system is then called in a worker
   thread, one thread hop per call (printed on its own: this row minus ``readme``).
5. ``async``: the ``readme`` policy over an ``async def`` system, against the bare ``await``.

``--against REV`` compares two versions of the guard in one run: REV's ``src/`` is exported with
``git archive`` to a temporary directory, then each round runs the benchmark once per version, each in
its own process (``--src``), the order alternating from round to round (ABBA) so a change in the
machine's load hits both alike. Printed per variant: the added µs of each version (median over the
rounds) and their ratio, this code over REV's, with the lowest and highest ratio of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
fp: Any = None  # the failpath package under test, imported by load_failpath()


def load_failpath(src: Path) -> None:
    """Import failpath from ``src`` (this checkout's ``src/``, or an exported revision's)."""
    global fp
    sys.path.insert(0, str(src))
    import failpath

    if not Path(failpath.__file__).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"failpath was imported from {failpath.__file__}, not from {src}")
    fp = failpath

_ns = time.perf_counter_ns


class Address(BaseModel):
    number: str
    street: str


def reference_inputs(n: int = 300, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    streets = ["Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park"]
    kinds = ["St", "Ave", "Rd", "Blvd", "Ln", "Dr"]
    cities = [("Springfield", "IL"), ("Austin", "TX"), ("Portland", "OR"), ("Madison", "WI"), ("Columbus", "OH")]
    out = []
    for _ in range(n):
        city, state = rng.choice(cities)
        out.append(f"{rng.randint(1, 9999)} {rng.choice(streets)} {rng.choice(kinds)}, {city}, {state} {rng.randint(10000, 99999)}")
    return out


def policy(name: str, store: Path | bool, *, schema: bool = False, timeout: bool = False) -> fp.Policy:
    if name == "minimal":
        return fp.Policy("bench-minimal", rules=[fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))], store=store)
    rules = [
        fp.on(fp.EmptyInput()).do(fp.Clarify("Please type an address.")),
        fp.on(fp.InjectionSuspected()).do(fp.Abstain("input refused")),
        fp.on(fp.AnomalousInput(reference=reference_inputs())).do(fp.Escalate(queue="review")),
        fp.on(fp.ProviderError()).do(fp.Retry(2, backoff=0.2), fp.Escalate(queue="ops")),
        fp.on(fp.InvalidOutput(schema=Address) if schema else fp.InvalidOutput()).do(fp.Retry(1), fp.Abstain("could not read that address")),
        fp.on(fp.LowConfidence(below=0.9)).do(fp.Clarify("Please enter it as: number street, city, state zip")),
        fp.on(fp.BudgetExceeded()).do(fp.Escalate(queue="ops")),
        fp.on(fp.Unexpected()).do(fp.Escalate(queue="ops")),
    ]
    if timeout:
        rules.insert(0, fp.on(fp.Timeout(after=2.0)).do(fp.Retry(1), fp.Default(None, reason="parser too slow")))
    return fp.Policy(f"bench-{name}", rules=rules, store=store, max_attempts=4)


def sync_system(text: str) -> fp.Prediction:
    return fp.Prediction({"number": "123", "street": "Main"}, confidence=0.97)


async def async_system(text: str) -> fp.Prediction:
    return fp.Prediction({"number": "123", "street": "Main"}, confidence=0.97)


def measure_sync(guarded, inputs: list[str]) -> tuple[list[int], list[int], float]:
    """Per-call nanoseconds, bare and guarded, alternating call by call so load on a shared machine hits
    both alike; and the wall time of all guarded calls plus the final flush."""
    bare_times: list[int] = []
    guarded_times: list[int] = []
    system = guarded.system
    for text in inputs[:200]:  # warm up: store opened, caches filled
        guarded(text)
        system(text)
    guarded.policy.flush()
    wall = 0.0
    gc.disable()
    try:
        for text in inputs:
            t0 = _ns()
            system(text)
            t1 = _ns()
            guarded(text)
            t2 = _ns()
            bare_times.append(t1 - t0)
            guarded_times.append(t2 - t1)
            wall += t2 - t1
        t0 = _ns()
        guarded.policy.flush()
        wall += _ns() - t0
    finally:
        gc.enable()
    return bare_times, guarded_times, wall / 1e9


def measure_async(guarded, inputs: list[str]) -> tuple[list[int], list[int], float]:
    """The same as :func:`measure_sync`, awaiting both calls inside one event loop."""

    async def run() -> tuple[list[int], list[int], float]:
        bare_times: list[int] = []
        guarded_times: list[int] = []
        system = guarded.system
        for text in inputs[:200]:
            await guarded(text)
            await system(text)
        guarded.policy.flush()
        wall = 0.0
        gc.disable()
        try:
            for text in inputs:
                t0 = _ns()
                await system(text)
                t1 = _ns()
                await guarded(text)
                t2 = _ns()
                bare_times.append(t1 - t0)
                guarded_times.append(t2 - t1)
                wall += t2 - t1
            t0 = _ns()
            guarded.policy.flush()
            wall += _ns() - t0
        finally:
            gc.enable()
        return bare_times, guarded_times, wall / 1e9

    return asyncio.run(run())


VARIANTS = [
    ("minimal/nostore", dict(), False),
    ("minimal", dict(), False),
    ("readme", dict(), False),
    ("readme+schema", dict(schema=True), False),
    ("readme+timeout", dict(timeout=True), False),
    ("async", dict(), True),
]


def measure_all(n: int) -> dict[str, dict[str, float]]:
    """Every variant over ``n`` calls: bare and guarded medians and the amortized added µs."""
    inputs = reference_inputs(n, seed=2)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, options, is_async in VARIANTS:
            store_path: Path | bool = False if name.endswith("/nostore") else Path(tmp) / f"{name}.db"
            pol = policy("minimal" if name.startswith("minimal") else "readme", store_path, **options)
            with pol:
                if is_async:
                    guarded = pol.wrap(async_system)
                    bare, guarded_ns, wall = measure_async(guarded, inputs)
                else:
                    guarded = pol.wrap(sync_system)
                    bare, guarded_ns, wall = measure_sync(guarded, inputs)
                stored = guarded.store.count_traces(policy=pol.name) if guarded.store is not None else 0
            bare_us = statistics.median(bare) / 1000
            guarded_us = statistics.median(guarded_ns) / 1000
            results[name] = {"bare": bare_us, "guarded": guarded_us, "amortized": wall / len(inputs) * 1e6 - bare_us}
            expected = len(inputs) + len(inputs[:200])  # the warm-up calls are traced too
            if store_path is not False and stored != expected:
                print(f"  warning: {name}: {stored} traces stored, expected {expected}", file=sys.stderr)
    return results


def calibration() -> float:
    """µs for ``sum(range(100))`` now: a yardstick for the machine's speed."""
    return min(timeit.repeat("sum(range(100))", number=20_000, repeat=5)) / 20_000 * 1e6


def print_one_version(n: int) -> None:
    speed = calibration()
    print(f"guard overhead, {n:,} calls per variant, tracing to SQLite on (median of per-call times)")
    print(f"machine speed now: sum(range(100)) takes {speed:.2f} µs (a reference for comparing runs)")
    print(f"{'variant':<16}{'bare µs':>10}{'guarded µs':>12}{'added µs':>10}{'ratio':>9}{'amortized added µs':>21}")
    results = measure_all(n)
    for name, row in results.items():
        bare, guarded = row["bare"], row["guarded"]
        print(f"{name:<16}{bare:>10.2f}{guarded:>12.2f}{guarded - bare:>10.2f}{guarded / bare:>8.1f}x{row['amortized']:>21.2f}")
    hop = results["readme+timeout"]["guarded"] - results["readme"]["guarded"]
    print(f"the thread hop of a sync Timeout rule (readme+timeout minus readme): {hop:.2f} µs per call")


def export_revision(revision: str, into: Path) -> Path:
    """``revision``'s ``src/`` exported into ``into``; its path."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--against {revision}: git archive failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def run_version(src: Path, n: int) -> dict[str, dict[str, float]]:
    """One benchmark run in a fresh process importing failpath from ``src``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--src", str(src), "--json", "--calls", str(n)]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the benchmark failed with {src}:\n{done.stderr}")
    return json.loads(done.stdout)


def print_comparison(revision: str, n: int, rounds: int) -> None:
    added: dict[str, dict[str, list[float]]] = {name: {"before": [], "after": [], "ratio": []} for name, _, _ in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"before": export_revision(revision, Path(tmp)), "after": ROOT / "src"}
        speeds = [calibration()]
        for i in range(rounds):
            order = ("before", "after") if i % 2 == 0 else ("after", "before")
            results = {version: run_version(versions[version], n) for version in order}
            for name in added:
                before, after = (results[v][name]["guarded"] - results[v][name]["bare"] for v in ("before", "after"))
                added[name]["before"].append(before)
                added[name]["after"].append(after)
                added[name]["ratio"].append(after / before)
            print(f"  round {i + 1} of {rounds} done ({' then '.join(order)})", file=sys.stderr)
        speeds.append(calibration())
    print(f"guard overhead: this code against {revision}, {rounds} rounds of {n:,} calls per variant, each version in its own process")
    print(f"machine speed: sum(range(100)) took {speeds[0]:.2f} µs before the rounds, {speeds[1]:.2f} µs after")
    print(f"{'variant':<16}{'before: added µs':>18}{'after: added µs':>17}{'after/before':>14}{'range':>14}")
    for name, row in added.items():
        ratios = row["ratio"]
        low, high = min(ratios), max(ratios)
        print(
            f"{name:<16}{statistics.median(row['before']):>18.2f}{statistics.median(row['after']):>17.2f}"
            f"{statistics.median(ratios):>13.2f}x{f'{low:.2f}–{high:.2f}':>14}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 calls per variant instead of 20,000")
    parser.add_argument("--calls", type=int, default=None, help="calls per variant")
    parser.add_argument("--against", metavar="REV", help="compare this code with git revision REV, measured in the same run")
    parser.add_argument("--rounds", type=int, default=4, help="with --against: rounds, each running both versions (default 4)")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="import failpath from this src/ directory")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (what --against reads)")
    args = parser.parse_args()
    n = args.calls or (3_000 if args.quick else 20_000)
    if args.against:
        print_comparison(args.against, n, max(1, args.rounds))
        return
    load_failpath(args.src)
    if args.json:
        print(json.dumps(measure_all(n)))
    else:
        print_one_version(n)


if __name__ == "__main__":
    main()

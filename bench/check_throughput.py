"""Throughput of ``fp.check`` against the floor measured in the same run.

Two systems: one that answers instantly (sync) and one that sleeps 50 ms (async), each checked at
concurrency 64 under a policy, with the hostile suite and the clean pass, results streamed into a
SQLite store. The floor is a bare asyncio loop making the same calls on the same inputs and writing
the same rows to a SQLite store in batches of 64: what any harness must at least spend. Everything
the check adds (variants, the guard and its traces, judging, figures, the verdict) is the difference.

    python bench/check_throughput.py                 # 1000 cases
    python bench/check_throughput.py --cases 300     # quicker

The instant system is also checked with ``executor="process"`` (chunks of cases in one process per
core, the calling one included); the floor stays the same single-process loop.

Targets: within 1.2x of the floor for the 50 ms system; at least 5,000 variants per second end to
end for the instant one.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import failpath as fp
from failpath.chaos import get_suite
from failpath.core import Case, Prediction
from failpath.store import open_store


def make_cases(n: int) -> list[Case]:
    return [Case(id=f"c{i:05d}", input=f"{i} Main Street, Springfield IL 62704", expected=f"{i} MAIN STREET") for i in range(n)]


def answer(text: str) -> Prediction:
    head = text.split(",")[0]
    return Prediction(head.upper(), 0.9 if len(head) < 40 else 0.3)


def instant(text: str) -> Prediction:
    """Answers at once."""
    return answer(text)


async def slow(text: str) -> Prediction:
    """Answers after 50 ms."""
    await asyncio.sleep(0.05)
    return answer(text)


def policy() -> fp.Policy:
    return fp.Policy(
        "bench",
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Abstain("empty")),
            fp.on(fp.InjectionSuspected()).do(fp.Abstain("injection")),
            fp.on(fp.InvalidOutput()).do(fp.Abstain("invalid")),
            fp.on(fp.LowConfidence(below=0.5)).do(fp.Escalate(queue="bench")),
            fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
        ],
        store=False,
    )


def planned_inputs(cases: list[Case], suites: list[str], seed: int) -> dict[str, tuple[str, str]]:
    """key -> (input, expected) of every request the check makes (the same keys as its rows)."""
    out: dict[str, tuple[str, str]] = {}
    for name in suites:
        suite = get_suite(name)
        for case in cases:
            for v in suite.variants(case, seed):
                out[f"{suite.name}/{v.perturbation}/{case.id}/{v.index}"] = (v.input, v.expected)
    for case in cases:
        out[f"clean/none/{case.id}/0"] = (case.input, case.expected)
    return out


def run_check(system, cases, suites, concurrency, folder: Path, executor: str = "auto") -> tuple[float, str, Path]:
    store = folder / f"check-{time.monotonic_ns()}.db"
    start = time.perf_counter()
    result = fp.check(
        system, cases, policy=policy(), judge="exact", suites=suites, concurrency=concurrency, store=store,
        worst_cases=0, quiet=True, seed=0, executor=executor,
    )
    return time.perf_counter() - start, result.run_id, store


def run_floor(system, requests, rows, concurrency, folder: Path) -> float:
    """A bare asyncio loop: the same calls, the same rows written to SQLite in batches of 64."""
    store = open_store(folder / f"floor-{time.monotonic_ns()}.db")
    store.create_run("floor", kind="bench", config={})
    is_async = asyncio.iscoroutinefunction(system)

    async def main() -> None:
        items = iter(requests.items())
        pending: list = []

        async def worker() -> None:
            for key, (text, expected) in items:
                out = await system(text) if is_async else system(text)
                _ = out.value == expected
                pending.append((key, rows[key]))
                if len(pending) >= 64:
                    batch = pending[:]
                    pending.clear()
                    store.add_results("floor", batch)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if pending:
            store.add_results("floor", pending)

    start = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def measure(label, system, cases, suites, concurrency, repeats, folder, executor="auto"):
    requests = planned_inputs(cases, suites, 0)
    check_times, floor_times = [], []
    for _ in range(repeats):
        seconds, run_id, store_path = run_check(system, cases, suites, concurrency, folder, executor)
        check_times.append(seconds)
        with open_store(store_path) as store:
            rows = {r["key"]: r["data"] for r in store.results(run_id)}
        assert set(rows) == set(requests), "the floor must make exactly the check's requests"
        floor_times.append(run_floor(system, requests, rows, concurrency, folder))
    check_s, floor_s = min(check_times), min(floor_times)
    n = len(requests)
    median = statistics.median(check_times)
    print(
        f"{label:42s} {len(cases):6d} cases {n:7d} variants | check {check_s:7.2f} s "
        f"({n / check_s:8.0f} variants/s, {len(cases) / check_s:7.0f} cases/s; median {n / median:6.0f}/s) "
        f"| floor {floor_s:7.2f} s ({n / floor_s:8.0f} variants/s) | check/floor {check_s / floor_s:5.2f}x"
    )
    return check_s, floor_s, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="best of N for each measurement")
    args = parser.parse_args()
    from failpath.check.processes import process_count

    folder = Path(tempfile.mkdtemp(prefix="failpath-bench-"))
    try:
        cases = make_cases(args.cases)
        # Warm the imports (scipy, the suites) so that neither side pays them.
        fp.check(instant, make_cases(4), policy=policy(), suites=["hostile"], store=folder / "warm.db", quiet=True, worst_cases=0)
        print(f"fp.check throughput, concurrency {args.concurrency}, best of {args.repeats}")
        measure("instant system, hostile + clean", instant, cases, ["hostile"], args.concurrency, args.repeats, folder)
        measure(f"  same, executor=process ({process_count(args.concurrency, len(cases))} procs)", instant, cases,
                ["hostile"], args.concurrency, args.repeats, folder, "process")
        measure("instant system, clean only", instant, cases, [], args.concurrency, args.repeats, folder)
        measure("  same, executor=process", instant, cases, [], args.concurrency, args.repeats, folder, "process")
        measure("50 ms system, hostile + clean", slow, cases, ["hostile"], args.concurrency, args.repeats, folder)
        measure("50 ms system, clean only", slow, cases, [], args.concurrency, args.repeats, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

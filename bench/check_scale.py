"""Scale of ``fp.check``: wall time, time per request and peak memory for 1k, 10k and 100k cases.

Each check runs in a fresh process (imports included) with the default suites (hostile, realistic,
fault, then the clean pass) against the instant system of ``check_throughput.py``, under its policy,
with the default executor, results streamed into a SQLite store in a temporary folder; worst cases
are off (their search has a fixed time budget of its own). The fixed cost is the wall time of a
10-case check in a fresh process; time per request is what a run takes beyond it, divided by its
requests; CPU µs/req the same with the process's CPU time (user + system, every thread), which a
busy machine disturbs less than the wall time. Peak memory is the largest resident set of the process
tree (``os.wait4``'s ``ru_maxrss``).

    python bench/check_scale.py                          # 1,000 and 10,000 cases
    python bench/check_scale.py --sizes 1000 10000 100000

To measure another version of the package in the same session, run the script with
``PYTHONPATH=<that version's src>``: each check's process imports whatever ``failpath`` that finds.
Inside each run the seconds spent writing rows to the store and reading them back are reported
too, where the version has a row reader to time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(n_cases: int, folder: Path) -> None:
    """One check in this process; prints what it measured as JSON."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(HERE))
    import failpath as fp
    from check_throughput import instant, make_cases, policy
    from failpath.store.sqlite import SQLiteStore

    timers = {"write": 0.0, "read": 0.0}

    def timed(owner: object, name: str, label: str) -> None:
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                timers[label] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    timed(SQLiteStore, "add_results", "write")
    timed(SQLiteStore, "results_after", "read")
    cases = make_cases(n_cases)
    start = time.perf_counter()
    result = fp.check(instant, cases, policy=policy(), judge="exact", store=folder / "scale.db", quiet=True, seed=0,
                      worst_cases=0)
    seconds = time.perf_counter() - start
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    print(json.dumps({
        "n_cases": n_cases, "n_rows": result.n_rows, "check_seconds": seconds, "total_seconds": time.perf_counter() - t0,
        "write_seconds": timers["write"], "read_seconds": timers["read"], "verdict": result.verdict.label,
        "store_bytes": sum(v for k, v in sizes.items() if "traces" not in k),
        "traces_bytes": sum(v for k, v in sizes.items() if "traces" in k),
        "failpath": str(Path(fp.__file__).parent),
    }))


def measure(n_cases: int) -> dict:
    """Run one check in a fresh process; its figures, wall time and peak memory (MiB)."""
    folder = Path(tempfile.mkdtemp(prefix="failpath-scale-"))
    try:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", str(n_cases), str(folder)], stdout=subprocess.PIPE, text=True
        )
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise SystemExit(f"the {n_cases}-case check failed with exit code {process.returncode}")
        figures = json.loads(out.strip().splitlines()[-1])
        figures.update(wall_seconds=wall, cpu_seconds=usage.ru_utime + usage.ru_stime, peak_mib=usage.ru_maxrss / 1024)
        return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), Path(args.child[1]))
        return
    tiny = measure(10)
    print(f"failpath from {tiny['failpath']}")
    print(f"fixed cost (a 10-case check in a fresh process): {tiny['wall_seconds']:.2f} s "
          f"({tiny['cpu_seconds']:.2f} s of CPU), peak {tiny['peak_mib']:.0f} MiB")
    print(f"{'cases':>8} {'requests':>9} {'wall s':>8} {'µs/req':>7} {'CPU µs/req':>10} {'peak MiB':>9} {'write s':>8} "
          f"{'read s':>7} {'store MB':>9} {'traces MB':>10}")
    for n in args.sizes:
        m = measure(n)
        extra = m["n_rows"] - tiny["n_rows"]
        per_request = (m["wall_seconds"] - tiny["wall_seconds"]) / extra * 1e6
        cpu_per_request = (m["cpu_seconds"] - tiny["cpu_seconds"]) / extra * 1e6
        print(
            f"{n:>8,} {m['n_rows']:>9,} {m['wall_seconds']:>8.1f} {per_request:>7.1f} {cpu_per_request:>10.1f} "
            f"{m['peak_mib']:>9.0f} "
            f"{m['write_seconds']:>8.1f} {m['read_seconds']:>7.1f} {m['store_bytes'] / 1e6:>9.0f} {m['traces_bytes'] / 1e6:>10.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

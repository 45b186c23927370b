"""The cost of the CI outputs of a check run, against reading the run's rows back from the store.

One check of the bundled example (usaddress on generated addresses, the careful policy) is run into a
temporary store. Then, in rounds, each output is built from that stored run and timed beside the
baseline every row-based output must pay anyway: ``Store.results(run_id)``, reading the run's
request rows back. Printed: the median seconds of each step over the rounds and its ratio to the
baseline's median in the same run.

    python bench/report_outputs.py                 # 1000 addresses
    python bench/report_outputs.py --cases 300     # quicker

Steps: the flat request rows (``request_rows``); CSV, JSONL, JUnit XML (with the rows), the Markdown
summary, the HTML report (for scale: it draws charts), and the comparison of the run with itself
(``compare_runs``, bootstrap intervals over the cases for every figure).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import failpath as fp  # noqa: E402
from failpath.examples.addresses.example import check_kwargs  # noqa: E402
from failpath.report import html, junit, markdown  # noqa: E402
from failpath.report.compare import compare_runs  # noqa: E402
from failpath.report.rows import render_csv, render_jsonl, request_rows  # noqa: E402
from failpath.store import open_store  # noqa: E402


def _timed(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="generated addresses in the check (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every step (default 5)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="failpath-bench-outputs-"))
    try:
        store_path = folder / "failpath.db"
        kwargs = check_kwargs(args.cases)
        started = time.perf_counter()
        result = fp.check(**kwargs, store=store_path, quiet=True)
        print(f"check: {result.n_rows:,} requests over {result.n_cases:,} cases in {time.perf_counter() - started:.1f} s")
        document = result.to_dict()
        with open_store(store_path) as store:
            stored = store.results(result.run_id)
            rows = request_rows(stored)
            steps = {
                "read rows from the store (baseline)": lambda: store.results(result.run_id),
                "request rows": lambda: request_rows(stored),
                "CSV": lambda: render_csv(rows),
                "JSONL": lambda: render_jsonl(rows),
                "JUnit XML": lambda: junit.render(document, rows),
                "Markdown summary": lambda: markdown.render(document),
                "HTML report": lambda: html.render(document),
                "compare with itself": lambda: compare_runs(document, rows, document, rows),
            }
            times: dict[str, list[float]] = {name: [] for name in steps}
            for _ in range(args.rounds):
                for name, step in steps.items():  # interleaved, so load on the machine hits every step alike
                    times[name].append(_timed(step))
        baseline = statistics.median(times["read rows from the store (baseline)"])
        print(f"\n{'step':<38} {'median s':>9} {'× baseline':>11}")
        for name, measured in times.items():
            median = statistics.median(measured)
            print(f"{name:<38} {median:>9.3f} {median / baseline:>10.2f}×")
        sizes = {"CSV": len(render_csv(rows)), "JUnit XML": len(junit.render(document, rows)),
                 "Markdown summary": len(markdown.render(document))}
        print("\nsizes: " + ", ".join(f"{name} {size / 1024:,.0f} KiB" for name, size in sizes.items()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""What grading severity costs a check: the same check with and without ``severity`` weights, in one run.

The bundled example's generated addresses, judged by ``token_labels``, checked with the ``realistic``
suite and the clean pass under a one-rule policy, one process, results streamed into SQLite. The system
is an instant stand-in that labels every token ``StreetName``: every answer is wrong, so every request's
answer is graded (the worst case; a model right most of the time grades only its wrong answers). The
baseline is the same check without ``severity``, measured in the same run, interleaved; times are CPU
seconds of the process (every thread), steadier than wall time on a shared machine.

    python bench/severity_overhead.py                 # 300 cases, 5 pairs
    python bench/severity_overhead.py --cases 1000 --pairs 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import failpath as fp
from failpath.examples.addresses import SEVERITY, generate_addresses


def all_street(text: str) -> fp.Prediction:
    """Labels every token StreetName (wrong on every address), at once."""
    return fp.Prediction([[token, "StreetName"] for token in text.split()], 0.9)


POLICY = fp.Policy("bench", rules=[fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))], store=False)


def run(cases: list, folder: Path, severity: dict | None) -> float:
    """CPU seconds of one check (this process, every thread): steadier than wall time on a shared machine."""
    start = time.process_time()
    fp.check(
        all_street, cases, policy=POLICY, judge="token_labels", suites=["realistic"], severity=severity,
        store=folder / "store.db", quiet=True, worst_cases=0, concurrency=16, executor="thread",
    )
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    cases = generate_addresses(args.cases, seed=3)
    plain, graded = [], []
    root = Path(tempfile.mkdtemp(prefix="failpath-bench-severity-"))
    try:
        run(cases, root / "warm", None)  # imports, the chaos tables
        for i in range(args.pairs):
            for label, severity, times in (("plain", None, plain), ("graded", SEVERITY, graded)):
                times.append(run(cases, root / f"{label}{i}", severity))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratios = [g / p for g, p in zip(graded, plain)]
    print(f"{args.cases} cases, realistic suite + clean pass, every answer wrong (graded), {args.pairs} interleaved pairs")
    print(f"without severity: best {min(plain):.2f} CPU s, median {statistics.median(plain):.2f}")
    print(f"with severity weights: best {min(graded):.2f} CPU s, median {statistics.median(graded):.2f}")
    print(f"ratio per pair (graded / plain): median {statistics.median(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}; best/best {min(graded) / min(plain):.3f}")


if __name__ == "__main__":
    main()

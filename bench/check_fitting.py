"""What fitting the anomaly detector in the check costs: the bundled example with each of its two detectors.

    python3 bench/check_fitting.py                  # 1,000 cases, 2 rounds
    python3 bench/check_fitting.py --cases 300 --rounds 3

Each round runs ``fp.check`` on the bundled example (careful policy, ``executor="process"``, the same
suites, seed and shifted-domain sample) twice, in alternating order: once with the detector the check
fits (``AnomalousInput(fit="check", scorer=fp.NgramScorer())``, the example's default) and once with
the baseline, the length and character-class profile of 400 fixed generated addresses the example used
before (``careful_policy(reference_addresses())``). It prints each run's wall time, the time spent
fitting (building the tolerated reference and fitting the detector, before any guarded call) and
measuring the input detectors after the run, and the ratio fitted / baseline per round (paired, so a
change in the machine's load hits both alike). Both runs also measure the detectors (the baseline's
profile too), so the difference is the fitting and the n-gram detector's cost per guarded call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import failpath as fp  # noqa: E402
from failpath.check import fitting  # noqa: E402
from failpath.examples.addresses.example import check_kwargs, reference_addresses  # noqa: E402
from failpath.examples.addresses.policy import careful_policy  # noqa: E402


class Stopwatch:
    """Wall seconds spent in a function of ``failpath.check.fitting`` (wrapped in place for the run)."""

    def __init__(self, name: str):
        self.name = name
        self.original = getattr(fitting, name)
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(fitting, self.name, timed)
        return self

    def __exit__(self, *exc) -> None:
        setattr(fitting, self.name, self.original)


def one_run(n: int, fitted: bool, folder: Path) -> dict[str, float]:
    kwargs = check_kwargs(n)
    if not fitted:
        kwargs["policy"] = careful_policy(reference_addresses())
    with Stopwatch("fit_detectors") as fit, Stopwatch("measure_detectors") as measure:
        start = time.perf_counter()
        result = fp.check(**kwargs, store=folder / f"{'fitted' if fitted else 'baseline'}.db", quiet=True)
        wall = time.perf_counter() - start
    return {"wall": wall, "fit": fit.seconds, "measure": measure.seconds, "rows": result.n_rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases of the example (default 1,000, as the README's command)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each one run of both (default 2)")
    args = parser.parse_args(argv)
    ratios = []
    print("| round | detector | requests | wall s | fitting s | measuring s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            runs = {fitted: one_run(args.cases, fitted, Path(folder)) for fitted in order}
            for fitted in (True, False):
                r = runs[fitted]
                name = "n-gram, fitted by the check" if fitted else "profile of 400 fixed addresses (baseline)"
                print(f"| {round_ + 1} | {name} | {r['rows']:,} | {r['wall']:.1f} | {r['fit']:.1f} | {r['measure']:.1f} |", flush=True)
            ratios.append(runs[True]["wall"] / runs[False]["wall"])
    print(f"wall time fitted / baseline: median {statistics.median(ratios):.2f}× "
          f"(rounds: {', '.join(f'{r:.2f}×' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

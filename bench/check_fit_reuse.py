"""What reusing the fit's raw answers saves ``failpath check --example addresses``: the check as it runs
now against the same check asking the system again, in the same run.

    python3 bench/check_fit_reuse.py                  # 1,000 cases (the README's command), 3 rounds
    python3 bench/check_fit_reuse.py --cases 300 --rounds 5

Each round runs ``fp.check`` on the bundled example (careful policy, its n-gram detector fitted by the
check, ``executor="process"``, as ``failpath check --example addresses`` runs it) twice, in alternating
order: once as it runs (the execute stage reuses the raw answers the fit got for the realistic variants of
the calibration half) and once with that reuse switched off (``reuses_answers`` made to say no: every
such request asks the system again, as before). It prints each run's wall and CPU seconds (this
process and its worker processes), the seconds spent fitting and executing, how many answers were
reused, and the ratio reuse / ask-again of wall and CPU time per round (paired, so a change in the
machine's load hits both alike). Both runs must give the same verdict and figures; the bench says so.
Last, it times the parser alone on the inputs whose calls reuse saves (the CPU those calls cost), a
figure the machine's load hardly moves, unlike the difference of two whole runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import failpath as fp  # noqa: E402
from failpath.check import api, fitting  # noqa: E402
from failpath.check.reuse import reuses_answers  # noqa: E402
from failpath.examples.addresses.example import check_kwargs  # noqa: E402


class Stopwatch:
    """Wall seconds spent in ``module.name`` (wrapped in place for the run), and how many answers its
    ``answers`` keyword held when it returned (the fit's recorded answers, before the execute stage takes them)."""

    def __init__(self, module, name: str):
        self.module, self.name = module, name
        self.original = getattr(module, name)
        self.seconds = 0.0
        self.answers = 0

    def __enter__(self) -> "Stopwatch":
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.answers += len(kwargs.get("answers") or ())

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc) -> None:
        setattr(self.module, self.name, self.original)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (the worker processes)."""
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def one_run(n: int, reuse: bool, folder: Path) -> dict:
    kwargs = check_kwargs(n)
    api.reuses_answers = reuses_answers if reuse else (lambda policy: False)
    try:
        with Stopwatch(fitting, "fit_detectors") as fit, Stopwatch(api, "execute") as run:
            cpu, start = cpu_seconds(), time.perf_counter()
            result = fp.check(**kwargs, store=folder / f"{'reuse' if reuse else 'again'}-{time.time_ns()}.db", quiet=True)
            wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        api.reuses_answers = reuses_answers
    document = result.to_dict()
    return {
        "wall": wall, "cpu": cpu, "fit": fit.seconds, "execute": run.seconds, "rows": result.n_rows,
        "reused": fit.answers,  # recorded by the fit, each taken by its one request
        "figures": {k: document[k] for k in ("verdict", "clean", "chaos", "groups", "states", "thresholds")},
    }


def saved_call_cpu(n: int) -> tuple[int, float]:
    """The calls reuse saves (every realistic variant of the calibration half the fit asks) and the CPU
    seconds the example's parser spends on them, timed here (``time.process_time``, three passes, the least)."""
    from failpath.check.plan import make_plan

    kwargs = check_kwargs(n)
    plan = make_plan(
        kwargs["system"], kwargs["cases"], policy=kwargs["policy"], judge=kwargs["judge"], suites=kwargs["suites"],
        seed=kwargs["seed"], concurrency=16, executor="process", silent_failure_budget=0.02, coverage_floor=0.5,
        delta=0.05, accepted=None, calibration_share=0.5, costs=None,
    )
    answers: dict = {}
    fitting.fit_detectors(plan, answers=answers)
    inputs = [recorded.input for recorded in answers.values()]
    passes = []
    for _ in range(3):
        start = time.process_time()
        for text in inputs:
            try:
                plan.system(text)
            except Exception:  # noqa: BLE001 - a parse the parser refuses costs its time too
                pass
        passes.append(time.process_time() - start)
    return len(inputs), min(passes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases of the example (default 1,000, as the README's command)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each one run of both (default 3)")
    args = parser.parse_args(argv)
    walls, cpus = [], []
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    print("| round | run | requests | answers reused | wall s | CPU s | fitting s | executing s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        one_run(50, True, Path(folder))  # untimed: the first run pays the imports (scikit-learn, usaddress, ...)
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            runs = {reuse: one_run(args.cases, reuse, Path(folder)) for reuse in order}
            for reuse in (True, False):
                r = runs[reuse]
                name = "reuse the fit's answers" if reuse else "ask again (before)"
                print(f"| {round_ + 1} | {name} | {r['rows']:,} | {r['reused']:,} | {r['wall']:.1f} | {r['cpu']:.1f} | "
                      f"{r['fit']:.1f} | {r['execute']:.1f} |", flush=True)
            if runs[True]["figures"] != runs[False]["figures"]:
                print("the two runs' figures differ: reusing the answers changed the result", file=sys.stderr)
                return 1
            walls.append(runs[True]["wall"] / runs[False]["wall"])
            cpus.append(runs[True]["cpu"] / runs[False]["cpu"])
    print(f"load average {os.getloadavg()[0]:.1f} at the end; the same verdict and figures in every pair")
    print(f"wall reuse / ask again: median {statistics.median(walls):.2f}x ({', '.join(f'{r:.2f}x' for r in walls)})")
    print(f"CPU  reuse / ask again: median {statistics.median(cpus):.2f}x ({', '.join(f'{r:.2f}x' for r in cpus)})")
    calls, seconds = saved_call_cpu(args.cases)
    print(f"the calls reuse saves: {calls:,}, {seconds:.2f} s of the parser's CPU ({seconds / calls * 1e6:.0f} µs a call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

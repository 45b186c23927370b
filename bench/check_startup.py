"""Fixed start-up cost of a check: fresh processes running ``fp.check``, against ``import numpy``.

    python3 bench/check_startup.py                  # 7 rounds, N = 1000
    python3 bench/check_startup.py --rounds 5 --cases 500
    python3 bench/check_startup.py --src OTHER/src  # the same, for another copy of the package

Each round starts, in random order, one fresh Python process per variant and times it from start to
exit (wall clock; median over the rounds), after one untimed warm-up run of each. Bytecode is cached
in a scratch directory (``PYTHONPYCACHEPREFIX``), as for an installed package, even where the
environment sets ``PYTHONDONTWRITEBYTECODE``; ``--no-cache-bytecode`` measures the compile too:

- ``numpy``: ``python -c "import numpy"``, the floor every variant pays (and the baseline of the ratio);
- ``check N``, ``check 2N``: ``import failpath``, then ``fp.check`` of N (2N) cases with ``suites=[]``,
  a two-rule policy and a SQLite store in a temporary directory, no worst-case search.

The fixed cost (what a check pays whatever its size: imports, store set-up, first calls) is
``2 * T(N) - T(2N)``, the intercept of the line through the two medians. Printed: the medians in ms,
the ratio of each to ``import numpy``, the fixed cost, and which of ``scipy``, ``pydantic`` and
``hypothesis`` the check process had imported. Then one ``python -X importtime`` run of the check of
N cases, summed by package (self time), largest first: where the fixed cost goes.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

CHECK = """
import os, sys, tempfile
import failpath as fp

N = {n}


def system(text):
    i = int(text[5:])
    if i % 7 == 0:  # wrong, and mostly unsure of it
        return fp.Prediction(text.lower(), 0.3 if i % 2 else 0.8)
    return fp.Prediction(text.upper(), 0.6 + (i % 40) / 100)


cases = [fp.Case(id=str(i), input=f"case-{{i}}", expected=f"CASE-{{i}}") for i in range(N)]
policy = fp.Policy(
    "bench",
    rules=[fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("unsure")), fp.on(fp.Unexpected()).do(fp.Abstain("crash"))],
    store=False,
)
with tempfile.TemporaryDirectory() as directory:
    result = fp.check(system, cases, policy=policy, suites=[], store=os.path.join(directory, "check.db"),
                      worst_cases=0, quiet=True)
assert result.n_rows == N, result.n_rows
print(",".join(name for name in ("scipy", "pydantic", "hypothesis") if name in sys.modules) or "-")
"""


def run(code: str, src: Path, env: dict[str, str], *flags: str) -> tuple[float, str, str]:
    prefix = f"import sys; sys.path.insert(0, {str(src)!r})\n"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *flags, "-c", prefix + code], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"a benchmark process failed:\n{done.stderr}")
    return elapsed, done.stdout.strip(), done.stderr


def import_breakdown(stderr: str, top: int) -> list[tuple[str, float]]:
    """Self import time (s) summed by package: ``failpath.<part>`` or a third-party top-level name."""
    totals: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:"):].split("|")
        module = name.strip()
        parts = module.split(".")
        group = ".".join(parts[:2]) if parts[0] == "failpath" else parts[0]
        totals[group] += int(self_us) / 1e6
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cases", type=int, default=1000, help="N: the checks run N and 2N cases")
    parser.add_argument("--top", type=int, default=12, help="packages listed in the import breakdown")
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    parser.add_argument("--no-cache-bytecode", dest="cache_bytecode", action="store_false",
                        help="compile every module in every process (as with PYTHONDONTWRITEBYTECODE=1)")
    args = parser.parse_args()
    variants = {
        "numpy": "import numpy",
        f"check {args.cases}": CHECK.format(n=args.cases),
        f"check {2 * args.cases}": CHECK.format(n=2 * args.cases),
    }
    with tempfile.TemporaryDirectory() as cache:
        report(args, variants, _environment(args.cache_bytecode, cache))


def _environment(cache_bytecode: bool, cache: str) -> dict[str, str]:
    """The processes' environment: bytecode cached in a scratch directory (as an installed package
    has it), or, with ``--no-cache-bytecode``, every module compiled from source in every process."""
    env = dict(os.environ)
    if cache_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def report(args: argparse.Namespace, variants: dict[str, str], env: dict[str, str]) -> None:
    times: dict[str, list[float]] = {name: [] for name in variants}
    loaded = ""
    for name in variants:  # warm-up, not timed: fills the bytecode cache and the disk cache
        run(variants[name], args.src, env)
    for _ in range(args.rounds):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            elapsed, printed, _ = run(variants[name], args.src, env)
            times[name].append(elapsed)
            if name != "numpy":
                loaded = printed
    medians = {name: statistics.median(values) for name, values in times.items()}
    floor = medians["numpy"]
    print(f"{'variant':<14}{'median ms':>11}{'min ms':>9}{'ratio to numpy':>16}")
    for name, values in times.items():
        print(f"{name:<14}{medians[name] * 1e3:>11.0f}{min(values) * 1e3:>9.0f}{medians[name] / floor:>16.2f}")
    single, double = medians[f"check {args.cases}"], medians[f"check {2 * args.cases}"]
    fixed = 2 * single - double
    print(f"fixed cost 2*T(N) - T(2N): {fixed * 1e3:.0f} ms ({fixed / floor:.2f} x import numpy); "
          f"per case: {(double - single) / args.cases * 1e6:.0f} us")
    print(f"imported by the check: {loaded}")
    _, _, stderr = run(CHECK.format(n=args.cases), args.src, env, "-X", "importtime")
    print(f"\nimport time by package (self, one run of check {args.cases}):")
    for group, seconds in import_breakdown(stderr, args.top):
        print(f"  {group:<32}{seconds * 1e3:>8.0f} ms")


if __name__ == "__main__":
    main()

"""Start-up cost of the statistics a check computes: fresh processes, against `import numpy`.

    python3 bench/stats_startup.py              # 7 rounds
    python3 bench/stats_startup.py --rounds 3
    python3 bench/stats_startup.py --src OTHER/src   # the same, for another copy of the package

Each round starts, in random order, one fresh Python process per variant and times it from start to
exit (wall clock, median over the rounds):

- ``numpy``: ``import numpy`` (the baseline: every variant pays it);
- ``scipy.special``, ``scipy.stats``: importing those alone, for reference;
- ``figures``: ``import failpath.stats`` and one call of each statistic a check's figures use
  (AUROC, AURC, ECE, Brier, the paired gap, a bootstrap interval, an exact binomial bound,
  Learn-then-Test over the grid, the cost-optimal policy, and the case-level bound and
  threshold, where the package has them), on 1,000 items.

Printed: the medians in ms, each minus the baseline, and the ratio to the baseline, plus whether the
``figures`` process had imported ``scipy.stats``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

FIGURES = """
import sys
import numpy as np
import failpath.stats as st
rng = np.random.default_rng(0)
c = np.round(rng.random(1000), 3); k = rng.random(1000) < c
st.auroc(c, k); st.aurc(c, k); st.ece(c, k); st.brier(c, k)
st.paired_gap(k, rng.random(1000) < c - 0.05, seed=0, n_resamples=2000)
st.bootstrap_ci(np.mean, k.astype(float) - (rng.random(1000) < c - 0.05), seed=0, n_resamples=2000)
st.binomial_upper_bound(int((~k).sum()), 1000)
st.select_threshold(c, k, max_risk=0.2, delta=0.05, risk="joint")
st.cost_optimal_policy(c, k, {"answer": (0, 10), "escalate": (1, 1)}, max_risk=0.2, delta=0.05, risk="joint")
if hasattr(st, "select_threshold_by_case"):  # not in versions before the case-level statistics
    st.case_rate_upper_bound(np.full(100, 10), np.bincount(np.arange(1000) // 10, weights=~k).astype(int))
    st.select_threshold_by_case(c, k, np.arange(1000) // 10, max_risk=0.2, delta=0.05, risk="joint")
print("scipy.stats" in sys.modules)
"""

VARIANTS = {
    "numpy": "import numpy",
    "scipy.special": "import scipy.special",
    "scipy.stats": "import scipy.stats",
    "figures": FIGURES,
}


def run(code: str, src: Path) -> tuple[float, str]:
    env_path = f"import sys; sys.path.insert(0, {str(src)!r})\n"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", env_path + code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"a benchmark process failed:\n{done.stderr}")
    return time.perf_counter() - start, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    output = ""
    for _ in range(args.rounds):
        order = list(VARIANTS)
        random.shuffle(order)
        for name in order:
            elapsed, printed = run(VARIANTS[name], args.src)
            times[name].append(elapsed)
            if name == "figures":
                output = printed
    base = statistics.median(times["numpy"])
    print(f"{'variant':<15}{'median ms':>11}{'minus numpy':>13}{'ratio':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<15}{median * 1e3:>11.0f}{(median - base) * 1e3:>13.0f}{median / base:>8.2f}")
    print(f"figures imported scipy.stats: {output}")


if __name__ == "__main__":
    main()

"""A bound over cases is the same figure whatever order the cases' rows arrive in (worker processes finish in any order)."""

from __future__ import annotations

import numpy as np

from failpath import stats


def test_mean_upper_bound_does_not_depend_on_the_order_of_the_losses():
    rng = np.random.default_rng(7)
    shares = rng.integers(0, 7, size=500) / rng.integers(7, 13, size=500)  # per-case shares such as 3/11
    orders = [rng.permutation(shares) for _ in range(20)]
    assert len({float(np.sum(o)) for o in orders}) > 1  # plain summation differs in the last digits between orders
    results = {(b.estimate, b.bound) for b in (stats.mean_upper_bound(o, 0.95) for o in orders)}
    assert len(results) == 1


def test_case_rate_upper_bound_does_not_depend_on_the_order_of_the_cases():
    rng = np.random.default_rng(11)
    made = rng.integers(1, 13, size=400)
    failed = rng.binomial(made, 0.1)
    figures = set()
    for _ in range(20):
        order = rng.permutation(made.size)
        b = stats.case_rate_upper_bound(made[order], failed[order], 0.95)
        figures.add((b.estimate, b.bound))
    assert len(figures) == 1

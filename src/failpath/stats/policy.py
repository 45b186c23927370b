"""The cost-optimal answer / clarify / escalate policy.

Every request gets one action. Each action has two costs: what it costs when the model's answer
would have been correct, and when it would have been wrong. The policy is two thresholds on the
confidence: answer when ``confidence >= tau_answer``, else clarify when
``confidence >= tau_clarify``, else escalate.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from failpath.stats._inputs import StatsInputError, as_pair
from failpath.stats.thresholds import (
    Method,
    Risk,
    ThresholdResult,
    _checked_grid,
    _grid_counts,
    select_threshold,
)

__all__ = ["ActionCost", "BayesCutoffs", "CostPolicy", "bayes_cutoffs", "evaluate_policy", "cost_optimal_policy"]

ACTIONS = ("answer", "clarify", "escalate")


@dataclass(frozen=True)
class ActionCost:
    """The cost of one action when the model's answer would be right, and when it would be wrong."""

    if_correct: float
    if_wrong: float

    def expected(self, p_correct: float) -> float:
        """Expected cost when the answer is right with probability ``p_correct``."""
        return self.if_correct * p_correct + self.if_wrong * (1.0 - p_correct)


@dataclass(frozen=True)
class BayesCutoffs:
    """Where the expected-cost-minimizing action changes, reading confidence as P(correct).

    Escalate below ``escalate_to_clarify``, clarify from there up to ``clarify_to_answer``, answer
    from there up. When clarifying is never the cheapest, both cutoffs equal the escalate/answer
    crossing. Values outside [0, 1] mean "always" (below 0) or "never" (above 1).
    """

    escalate_to_clarify: float
    clarify_to_answer: float


@dataclass(frozen=True)
class CostPolicy:
    """An answer / clarify / escalate policy and what it costs on a labeled set.

    Answer when ``confidence >= tau_answer``; else clarify when ``confidence >= tau_clarify``; else
    escalate (``inf`` means never). ``mean_cost`` is the total cost over the ``n`` items divided by
    ``n``; ``n_answer``/``n_clarify``/``n_escalate`` count the actions and ``n_answer_errors`` the
    wrong answers given. ``bayes`` holds the cutoffs implied by the costs; ``risk_cap`` is the
    Learn-then-Test result that bounded ``tau_answer`` from below, when a cap was asked for.
    """

    tau_answer: float
    tau_clarify: float
    mean_cost: float
    n_answer: int
    n_clarify: int
    n_escalate: int
    n_answer_errors: int
    n: int
    bayes: BayesCutoffs
    risk_cap: ThresholdResult | None = None

    def action(self, confidence: float) -> str:
        """The action this policy takes at one confidence: ``answer``, ``clarify`` or ``escalate``."""
        if confidence >= self.tau_answer:
            return "answer"
        return "clarify" if confidence >= self.tau_clarify else "escalate"


def bayes_cutoffs(costs: Mapping[str, Any]) -> BayesCutoffs:
    """The confidence cutoffs that minimize expected cost when confidence is P(correct).

    Each action's expected cost is linear in ``p``: ``if_correct * p + if_wrong * (1 - p)``. Over
    ``p`` in [0, 1] the cheapest action must go escalate -> clarify -> answer as ``p`` grows (an
    action may be skipped); the cutoffs are where it changes, i.e. where those lines cross. On a
    tie the action closer to answering wins. A cutoff is 0 when its action is already cheapest at
    ``p = 0``, and ``inf`` when answering (or clarifying) is never cheapest. When clarifying is
    never cheapest both cutoffs are equal. ``costs`` maps ``answer``, ``escalate`` and optionally
    ``clarify`` to ``(if_correct, if_wrong)``.
    """
    table = _checked_costs(costs)
    present = [a for a in ("escalate", "clarify", "answer") if a in table]
    points = {0.0, 1.0}
    for first, second in itertools.combinations(present, 2):
        crossing = _crossing(table[first], table[second])
        if crossing is not None and 0.0 < crossing < 1.0:
            points.add(crossing)
    edges = sorted(points)
    regions: list[tuple[str, float]] = []
    for low, high in zip(edges, edges[1:]):
        middle = (low + high) / 2.0
        # min over reversed order: on an exact tie the action closer to answering wins.
        winner = min(reversed(present), key=lambda a: table[a].expected(middle))
        if not regions or regions[-1][0] != winner:
            regions.append((winner, low))
    rank = [present.index(action) for action, _ in regions]
    if rank != sorted(rank):
        order = " -> ".join(action for action, _ in regions)
        raise StatsInputError(
            f"costs are inverted: as confidence grows the cheapest action goes {order}; it must go "
            "escalate -> clarify -> answer (answering must gain most from the answer being right)"
        )
    starts = dict((action, start) for action, start in regions)
    to_answer = starts.get("answer", math.inf)
    return BayesCutoffs(escalate_to_clarify=starts.get("clarify", to_answer), clarify_to_answer=to_answer)


def evaluate_policy(
    confidence: Any,
    correct: Any,
    costs: Mapping[str, Any],
    *,
    tau_answer: float,
    tau_clarify: float,
) -> CostPolicy:
    """Apply given thresholds and count actions and cost on a labeled set.

    Answer when ``confidence >= tau_answer``; else clarify when ``confidence >= tau_clarify``; else
    escalate. An item costs its action's ``if_correct`` or ``if_wrong`` cost by whether the model's
    answer is right. E.g. ``tau_answer=-inf`` answers everything; ``tau_answer=inf,
    tau_clarify=-inf`` clarifies everything; both ``inf`` escalates everything.
    """
    scores, right = as_pair(confidence, correct)
    table = _checked_costs(costs)
    answer = scores >= tau_answer
    clarify = ~answer & (scores >= tau_clarify)
    if "clarify" not in table and clarify.any():
        raise StatsInputError("costs have no 'clarify' entry, but tau_clarify < tau_answer clarifies some items")
    escalate = ~answer & ~clarify
    total = 0.0
    for action, chosen in (("answer", answer), ("clarify", clarify), ("escalate", escalate)):
        if chosen.any():
            cost = table[action]
            n_right = int(np.sum(chosen & right))
            total += cost.if_correct * n_right + cost.if_wrong * (int(chosen.sum()) - n_right)
    return CostPolicy(
        tau_answer=float(tau_answer),
        tau_clarify=float(tau_clarify),
        mean_cost=total / scores.size,
        n_answer=int(answer.sum()),
        n_clarify=int(clarify.sum()),
        n_escalate=int(escalate.sum()),
        n_answer_errors=int(np.sum(answer & ~right)),
        n=int(scores.size),
        bayes=bayes_cutoffs(costs),
    )


def cost_optimal_policy(
    confidence: Any,
    correct: Any,
    costs: Mapping[str, Any],
    *,
    max_risk: float | None = None,
    delta: float | None = None,
    grid: Sequence[float] | None = None,
    risk: Risk = "selective",
    method: Method = "holm",
    fit: Literal["empirical", "bayes"] = "empirical",
) -> CostPolicy:
    """The answer / clarify / escalate thresholds with the lowest mean cost on a labeled set.

    ``fit="empirical"`` (default): try every pair ``tau_answer >= tau_clarify`` from the grid
    (default 1.00, 0.99, ..., 0.00) plus ``inf`` (never), count each item's cost with its real
    correctness, and keep the cheapest pair; among equally cheap pairs the highest ``tau_answer``
    wins, then the highest ``tau_clarify`` (fewest answers, then fewest clarifications).
    ``fit="bayes"``: use :func:`bayes_cutoffs` directly (trusts the confidence to be calibrated).

    Risk cap: with ``max_risk`` and ``delta``, ``tau_answer`` may not go below the threshold that
    :func:`select_threshold` certifies (same ``grid``, ``risk`` and ``method``); items it no longer
    answers get the best remaining action. If nothing is certified the policy never answers.
    """
    scores, right = as_pair(confidence, correct)
    table = _checked_costs(costs)
    cutoffs = bayes_cutoffs(costs)
    cap: ThresholdResult | None = None
    floor = -math.inf
    if max_risk is not None or delta is not None:
        if max_risk is None or (delta is None and method != "crc"):
            raise StatsInputError("a risk cap needs both max_risk and delta (e.g. max_risk=0.02, delta=0.05)")
        cap = select_threshold(
            scores, right, max_risk=max_risk, delta=delta, grid=grid, risk=risk, method=method
        )
        floor = cap.threshold

    if fit == "bayes":
        tau_answer = max(cutoffs.clarify_to_answer, floor)
        tau_clarify = cutoffs.escalate_to_clarify if "clarify" in table else tau_answer
    elif fit == "empirical":
        tau_answer, tau_clarify = _cheapest_pair(scores, right, table, _checked_grid(grid), floor)
    else:
        raise StatsInputError(f"fit must be 'empirical' or 'bayes', got {fit!r}")
    policy = evaluate_policy(scores, right, costs, tau_answer=tau_answer, tau_clarify=tau_clarify)
    return dataclasses.replace(policy, risk_cap=cap)


def _cheapest_pair(
    scores: np.ndarray,
    right: np.ndarray,
    table: dict[str, ActionCost],
    thresholds: np.ndarray,
    floor: float,
) -> tuple[float, float]:
    candidates = np.concatenate([[math.inf], thresholds])  # descending
    answered, wrong = _grid_counts(scores, right, candidates)
    total_wrong = int((~right).sum())
    n = scores.size

    def cost(action: str, count: np.ndarray, errors: np.ndarray) -> np.ndarray:
        c = table[action]
        return c.if_correct * (count - errors) + c.if_wrong * errors

    # rows: tau_answer = candidates[i]; columns: tau_clarify = candidates[j]; j >= i (tau_clarify <= tau_answer)
    a_count, a_wrong = answered[:, None], wrong[:, None]
    c_count, c_wrong = answered[None, :] - a_count, wrong[None, :] - a_wrong
    totals = cost("answer", a_count, a_wrong) + cost("escalate", n - answered[None, :], total_wrong - wrong[None, :])
    if "clarify" in table:
        totals = totals + cost("clarify", c_count, c_wrong)
        allowed = np.triu(np.ones((candidates.size, candidates.size), dtype=bool))
    else:
        allowed = np.eye(candidates.size, dtype=bool)
    allowed &= (candidates >= floor)[:, None]
    totals = np.where(allowed, totals.astype(float), np.inf)
    best = totals.min()
    # Row-major first match: highest tau_answer, then highest tau_clarify.
    flat = int(np.argmax(totals <= best + 1e-9 * max(1.0, abs(best))))
    i, j = divmod(flat, candidates.size)
    return float(candidates[i]), float(candidates[j])


def _crossing(first: ActionCost, second: ActionCost) -> float | None:
    """The ``p`` where two actions have equal expected cost (None when the lines are parallel)."""
    # expected(p) = if_wrong + (if_correct - if_wrong) * p
    slope = (first.if_correct - first.if_wrong) - (second.if_correct - second.if_wrong)
    if slope == 0:
        return None
    return (second.if_wrong - first.if_wrong) / slope


def _checked_costs(costs: Mapping[str, Any]) -> dict[str, ActionCost]:
    if not isinstance(costs, Mapping):
        raise StatsInputError(f"costs must be a mapping like {{'answer': (0, 10), ...}}, got {type(costs).__name__}")
    unknown = sorted(set(costs) - set(ACTIONS))
    if unknown:
        raise StatsInputError(f"unknown action(s) in costs: {unknown}; expected {', '.join(ACTIONS)}")
    missing = [a for a in ("answer", "escalate") if a not in costs]
    if missing:
        raise StatsInputError(f"costs lack {missing}: give (cost if correct, cost if wrong) for each")
    table: dict[str, ActionCost] = {}
    for action, value in costs.items():
        if isinstance(value, ActionCost):
            table[action] = value
            continue
        try:
            if_correct, if_wrong = (float(v) for v in value)
        except (TypeError, ValueError):
            raise StatsInputError(
                f"costs[{action!r}] = {value!r}: give (cost if correct, cost if wrong)"
            ) from None
        if not (math.isfinite(if_correct) and math.isfinite(if_wrong)):
            raise StatsInputError(f"costs[{action!r}] = {value!r}: costs must be finite numbers")
        table[action] = ActionCost(if_correct, if_wrong)
    return table

"""Sentences the terminal and HTML reports share, so both say the same thing in the same words.

Each function returns a list of ``(text, strong)`` pieces: the terminal report prints the strong
pieces in bold, the HTML report wraps them in ``<strong>`` (after escaping).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["catch_sentence", "cost_rule", "level", "certified", "nothing_certified"]

Pieces = list[tuple[str, bool]]


def _pct(value: Any) -> str:
    return f"{100 * float(value):.1f}%"


def catch_sentence(chaos: Mapping[str, Any] | None) -> Pieces:
    """What the policy did with the raw system's wrong and right answers under chaos.

    Says so plainly when no chaos request ran, when the raw system made no wrong answer (nothing to
    catch) or no right one (no false alarm possible), instead of printing a rate of nothing.
    """
    chaos = chaos or {}
    if not chaos.get("n"):
        return [("No chaos request ran, so there is nothing the policy caught or missed under chaos.", False)]
    catch, alarms = chaos.get("catch_rate"), chaos.get("false_alarm_rate")
    pieces: Pieces = []
    if catch is None:
        pieces.append(("Under chaos the raw system gave no wrong answer, so the policy had none to catch", False))
    else:
        pieces += [("Under chaos the policy caught ", False), (_pct(catch), True),
                   (" of the raw system's wrong answers", False)]
    if alarms is None:
        pieces.append(("; the raw system gave no right answer under chaos, so no false alarm could be raised", False))
    elif catch is None:
        pieces += [("; it raised false alarms on ", False), (_pct(alarms), True), (" of the right ones", False)]
    else:
        pieces += [(", with ", False), (_pct(alarms), True), (" false alarms on its right ones", False)]
    repaired = chaos.get("repaired") or 0
    if repaired:
        noun = "wrong answer was" if repaired == 1 else "wrong answers were"
        pieces.append((f"; {repaired:,} {noun} repaired by a retry or a fallback", False))
    pieces.append((".", False))
    return pieces


def cost_rule(cost: Mapping[str, Any]) -> Pieces:
    """The cost-optimal answer / clarify / escalate rule in words (a missing threshold means never)."""
    answer, clarify = cost.get("tau_answer"), cost.get("tau_clarify")
    clarifies = clarify is not None and (answer is None or clarify < answer)
    pieces: Pieces = []
    if answer is None and not clarifies:
        pieces.append(("escalate every request", True))
    else:
        if answer is None:
            pieces += [("never answer; ", True)]
        else:
            pieces += [("answer when confidence ≥ ", False), (f"{float(answer):.2f}", True), (", ", False)]
        if clarifies:
            lead = "clarify when confidence ≥ " if answer is None else "clarify when ≥ "
            pieces += [(lead, False), (f"{float(clarify):.2f}", True), (", ", False)]
        pieces.append(("else escalate", False))
    mean = cost.get("mean_cost")
    if mean is not None:
        pieces.append((f" (mean cost {float(mean):.2f} per request on the calibration half)", False))
    return pieces


def level(check: Mapping[str, Any]) -> str:
    """The confidence level the check's bounds and intervals are computed at, 1 − delta, as printed: ``"95%"``."""
    delta = (check.get("budgets") or {}).get("delta")
    if delta is None:
        delta = (check.get("thresholds") or {}).get("delta")
    return f"{100 * (1 - float(0.05 if delta is None else delta)):.4g}%"


def certified(thresholds: Mapping[str, Any] | None) -> bool:
    """True when a threshold is certified that answers some request: one that answers none of the
    calibration half certifies nothing (answering nothing is the policy "never answer")."""
    t = thresholds or {}
    return bool(t.get("certified")) and bool(t.get("calibration_coverage"))


def nothing_certified(thresholds: Mapping[str, Any] | None) -> str:
    """The loud message of a check with no usable threshold (see :func:`certified`)."""
    t = thresholds or {}
    if t.get("certified") and not t.get("calibration_coverage") and t.get("threshold") is not None:
        return (
            f"NOTHING CERTIFIED: the threshold Learn-then-Test certified (confidence ≥ {float(t['threshold']):.2f}) "
            f"answers none of the {int(t.get('n_calibration') or 0):,} calibration requests, so it guarantees only that "
            "answering nothing is safe; the only guaranteed policy is never to answer."
        )
    return str(t.get("message") or "NOTHING CERTIFIED: the only guaranteed policy is never to answer.")

"""What a check learned about its inputs: what each perturbation made, and what each input detector flags.

Plain frozen values, part of the :class:`~failpath.check.result.CheckResult` (computed in
:mod:`failpath.check.fitting`):

- :class:`SuiteCounts`: per suite, each perturbation's count of variants and of cases it had nothing to
  do for (``NotApplicable``), naming the perturbations that made nothing for the whole dataset, so a
  perturbation that tested nothing is never silent;
- :class:`DetectorFigures`: per input-side detector of the policy, the share of the realistic variants
  the raw system answered right that it flags (its false alarms, per perturbation), and the share of a
  shifted-domain sample it flags, when one is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PerturbationCount", "SuiteCounts", "DetectorRate", "DetectorFigures"]


@dataclass(frozen=True)
class PerturbationCount:
    """What one perturbation of a suite made over the cases the suite drew for (both halves).

    ``n_variants`` variants over ``n_cases_varied`` cases; ``n_not_applicable`` cases got none (the
    perturbation did not apply, or every draw repeated another). ``no_op``: it made nothing for any
    case although they are its kind of input; ``other_input_kind``: it made nothing because it works on
    another kind of input (a record edit on text cases). ``reasons`` counts why, for a perturbation that
    made nothing (the first draw's ``NotApplicable`` reason).
    """

    name: str
    n_variants: int
    n_cases_varied: int
    n_not_applicable: int
    no_op: bool = False
    other_input_kind: bool = False
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteCounts:
    """One suite's :class:`PerturbationCount` rows, in suite order, over the ``n_cases`` cases it drew for."""

    suite: str
    family: str
    n_cases: int
    perturbations: tuple[PerturbationCount, ...] = ()
    no_ops: tuple[str, ...] = ()
    other_input_kind: tuple[str, ...] = ()


@dataclass(frozen=True)
class DetectorRate:
    """Of ``n`` inputs of one group, ``flagged`` were flagged by the detector (``rate``; None when ``n`` is 0).

    ``group`` is ``realistic`` (variants the raw system answered right; ``perturbation`` None for the
    whole suite), ``clean`` (clean evaluation inputs answered right) or ``shifted`` (``perturbation``
    names the source of the shifted-domain sample).
    """

    group: str
    suite: str | None
    perturbation: str | None
    n: int
    flagged: int
    rate: float | None


@dataclass(frozen=True)
class DetectorFigures:
    """One input-side detector of the policy, measured on the evaluation half.

    ``state`` is its failure state, ``rule`` the index of its rule, ``detector`` how it prints.
    ``fitted_by_check`` when the check fitted it (``AnomalousInput(fit="check")``) on the clean inputs
    of ``reference_cases`` calibration cases plus ``reference_variants`` realistic variants the raw
    system answered right (of ``reference_tried``). ``false_alarms`` are :class:`DetectorRate` rows on
    the realistic variants the raw system answered right, per suite and perturbation, then the clean
    inputs; ``shifted`` one row per source of the shifted-domain sample (empty when none was given).
    """

    state: str
    rule: int
    detector: str
    fitted_by_check: bool = False
    reference_cases: int | None = None
    reference_variants: int | None = None
    reference_tried: int | None = None
    false_alarms: tuple[DetectorRate, ...] = ()
    shifted: tuple[DetectorRate, ...] = ()
    saved_to: str | None = None

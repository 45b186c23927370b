"""The check's own work on inputs: fit the detectors it is asked to fit, measure every input detector, count variants.

- :func:`fit_detectors`: each ``AnomalousInput(fit="check")`` of the policy is fitted, before any guarded
  call, on the clean inputs of the calibration half plus the realistic variants of those cases the raw
  system answered right (:func:`failpath.guard.anomaly.tolerated_reference`, with the check's realistic
  suites and seed). The figures and the verdict come from the evaluation half, so no judged input was
  ever part of a reference. The raw answers it gets are kept for the execute stage, which would ask the
  system the same inputs again (:mod:`failpath.check.reuse`).
- :func:`measure_detectors`: every input-side detector of the policy (the fitted ones, your own input
  states, the built-in ones) on the evaluation half: the share of the realistic variants the raw system
  answered right that it flags, per perturbation, and of the clean inputs; and the share of each source
  of a shifted-domain sample (``shifted=``) it flags.
- :func:`perturbation_counts`: per suite, what each perturbation made (from the tally), naming the
  perturbations that made nothing (their reasons come from :func:`failpath.chaos.audit.audit_suite`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from failpath.check.inputs import DetectorFigures, DetectorRate, PerturbationCount, SuiteCounts
from failpath.core import ConfigError

__all__ = [
    "check_fitted",
    "install_fitted",
    "ReferenceInfo",
    "fit_detectors",
    "save_fitted",
    "shifted_sources",
    "read_inputs",
    "measure_detectors",
    "perturbation_counts",
]


def check_fitted(policy: Any) -> list[Any]:
    """The detectors of ``policy`` built with ``fit="check"``, in rule order (each once)."""
    found: list[Any] = []
    for rule in getattr(policy, "rules", ()):
        state = rule.state
        if getattr(state, "fit", None) == "check" and not any(state is f for f in found):
            found.append(state)
    return found


def install_fitted(policy: Any, fitted: Sequence[Any]) -> None:
    """Give the check-fitted detectors of ``policy`` (imported again in a worker process) the fitted state of ``fitted``."""
    mine = check_fitted(policy)
    if len(mine) != len(fitted):
        raise ConfigError(
            f"the policy in this worker process has {len(mine)} detectors with fit='check', the check fitted {len(fitted)}; "
            "build the policy the same way in every process"
        )
    for detector, other in zip(mine, fitted):
        if detector is not other and not detector.fitted:
            detector.adopt(other)


@dataclass(frozen=True)
class ReferenceInfo:
    """What the check fitted its detectors on: ``n_cases`` clean inputs of the calibration half plus
    ``n_variants`` realistic variants the raw system answered right (of ``n_tried``), in ``seconds``."""

    n_cases: int
    n_variants: int
    n_tried: int
    suites: tuple[str, ...]
    seconds: float


def fit_detectors(plan: Any, *, answers: dict[str, Any] | None = None) -> ReferenceInfo | None:
    """Fit every ``AnomalousInput(fit="check")`` of the plan's policy on the calibration half (None when there is none).

    The reference is the clean inputs of the calibration cases plus the variants of the check's realistic
    suites (the built-in ``realistic`` suite when the check runs none) that the raw system answered right,
    grouped by case so a case's variants stay in one cross-fitting fold. ``ConfigError`` when the
    calibration half is too small for a detector's ``alpha``.

    ``answers``, when given, receives every answer the raw system returned for a request the check
    makes (a variant of a suite it runs), as a :class:`~failpath.check.reuse.RecordedAnswer` under the
    request's key, for the execute stage to reuse. The built-in suite of a check that runs none records nothing.
    """
    detectors = check_fitted(plan.policy)
    if not detectors:
        return None
    from failpath.chaos import get_suite
    from failpath.check.plan import request_key
    from failpath.check.reuse import RecordedAnswer
    from failpath.guard.anomaly import tolerated_reference

    started = time.perf_counter()
    calibration = [case for case in plan.cases if plan.split[case.id] == "calibration"]
    suites = [s for s in plan.suites if s.family == "realistic"] or [get_suite("realistic")]
    inputs: list[Any] = []
    groups: list[str] = []
    n_variants = n_tried = 0
    for i, suite in enumerate(suites):
        record = None
        if answers is not None and any(suite is s for s in plan.suites):

            def record(case: Any, variant: Any, output: Any, seconds: float, suite: Any = suite) -> None:
                key = request_key(suite.name, variant.perturbation, case.id, variant.index)
                answers[key] = RecordedAnswer(variant.input, output, seconds)

        reference = tolerated_reference(
            plan.system, calibration, plan.judge, suite=suite, seed=plan.seed, on_answer=record,
        )
        skip = 0 if i == 0 else reference.n_cases  # the clean inputs once
        inputs.extend(reference.inputs[skip:])
        groups.extend(reference.groups[skip:])
        n_variants += reference.n_variants
        n_tried += reference.n_tried
    for detector in detectors:
        try:
            detector.fit_reference(inputs, groups=groups)
        except Exception as exc:
            raise ConfigError(
                f"the check could not fit {detector!r} on its calibration half ({len(calibration)} cases, "
                f"{len(inputs)} reference inputs): {exc}; give more cases or raise the detector's alpha"
            ) from None
    return ReferenceInfo(len(calibration), n_variants, n_tried, tuple(s.name for s in suites), time.perf_counter() - started)


def save_fitted(policy: Any, path: str | Path) -> list[Path]:
    """Save the check-fitted detectors of ``policy`` as JSON: the first to ``path``, any further one beside
    it as ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ... (read back with ``AnomalousInput.load``)."""
    target = Path(path)
    written = []
    for i, detector in enumerate(check_fitted(policy), start=1):
        where = target if i == 1 else target.with_name(f"{target.stem}-{i}{target.suffix}")
        where.parent.mkdir(parents=True, exist_ok=True)
        written.append(detector.save(where))
    if not written:
        raise ConfigError(
            f"save_detector={str(path)!r}: the policy has no detector the check fits; build it with "
            "fp.AnomalousInput(fit='check', ...) to have the check fit and save it"
        )
    return written


# --------------------------------------------------------------------------- the shifted-domain sample


def read_inputs(path: Path, input_key: str = "input") -> tuple[Any, ...]:
    """The inputs in a file: ``.txt`` one a line; ``.jsonl`` a JSON string a line, or an object holding ``input_key``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: shifted-domain sample not found; give a .txt (one input a line) or .jsonl file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the shifted-domain sample ({exc})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if path.suffix.lower() == ".txt":
        return tuple(line for _, line in lines)
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise ConfigError(f"{path}: a shifted-domain sample is a .txt (one input a line) or .jsonl file, not {path.suffix or 'no suffix'}")
    out = []
    for number, line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if isinstance(value, Mapping):
            if input_key not in value:
                raise ConfigError(f"{path}:{number}: no {input_key!r} key (the dataset's input column); keys: {', '.join(map(str, value))}")
            value = value[input_key]
        out.append(value)
    return tuple(out)


def shifted_sources(shifted: Any, *, input_key: str = "input") -> dict[str, tuple[Any, ...]]:
    """The shifted-domain sample as ``{source: inputs}``, from a mapping, a list of inputs, or a file path.

    A path (``str`` or ``Path``) is read with :func:`read_inputs` and named by its stem; a list of
    paths gives one source each; a plain list of inputs is one source, ``shifted``. ``ConfigError`` names
    what is wrong.
    """
    if shifted is None:
        return {}
    if isinstance(shifted, (str, Path)):
        path = Path(shifted)
        return {path.stem: read_inputs(path, input_key)}
    if isinstance(shifted, Mapping):
        sources = {}
        for name, inputs in shifted.items():
            if not isinstance(name, str) or isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
                raise ConfigError(f"shifted: give {{source name: [inputs, ...]}}, got {name!r}: {type(inputs).__name__}")
            sources[name] = tuple(inputs)
    elif isinstance(shifted, Iterable):
        items = list(shifted)
        if items and all(isinstance(i, Path) for i in items):
            sources = {}
            for path in items:
                sources[path.stem] = read_inputs(path, input_key)
        else:
            sources = {"shifted": tuple(items)}
    else:
        raise ConfigError(f"shifted must be inputs, {{source: inputs}} or a file path, got {type(shifted).__name__}")
    empty = [name for name, inputs in sources.items() if not inputs]
    if empty:
        raise ConfigError(f"shifted: the source {empty[0]!r} holds no input")
    return sources


# --------------------------------------------------------------------------- measuring the detectors


def _flags(detector: Any) -> Any:
    """``flags(value, text) -> bool`` for an input-side detector (a user's ``State`` or a built-in one)."""
    from failpath.guard.states import State

    if isinstance(detector, State):
        return lambda value, text: bool(detector.evaluate(value, None)[0])

    def flags(value: Any, text: str) -> bool:
        try:
            return bool(detector.check_input(value, text))
        except Exception:  # noqa: BLE001 - the guard treats a detector that raises as not firing
            return False

    return flags


def _raw_right(tally: Any) -> set[tuple[str, str, str, int]]:
    """``(suite, perturbation, case id, variant)`` of the evaluation rows the raw system answered right."""
    c = tally.columns
    rows = np.flatnonzero(c["evaluation"] & c["raw_correct"])
    leaves, cases, variants = c["leaf"][rows].tolist(), c["case"][rows].tolist(), c["variant"][rows].tolist()
    return {
        (tally.leaves[leaf].suite, tally.leaves[leaf].perturbation, tally.case_ids[case], int(variant))
        for leaf, case, variant in zip(leaves, cases, variants)
    }


def measure_detectors(
    plan: Any, tally: Any, *, reference: ReferenceInfo | None, shifted: Mapping[str, Sequence[Any]],
    saved: Sequence[Path] = (),
) -> tuple[DetectorFigures, ...]:
    """Every input-side detector of the policy on the evaluation half (see the module's docstring).

    Which requests the raw system answered right comes from the run's ``tally``; their inputs are made
    again from the plan (a variant depends only on its case, suite and the seed).
    """
    from failpath.check.plan import plan_items
    from failpath.guard.text import canonical_text

    # A policy-like object of your own (``wrap`` and ``handled_states`` only) has no compiled table: nothing to measure.
    checks = list(getattr(getattr(plan.policy, "table", None), "input_checks", ()))
    if not checks:
        return ()
    right = _raw_right(tally)
    evaluation = [case for case in plan.cases if plan.split[case.id] == "evaluation"]
    suites = [s for s in plan.suites if s.family == "realistic"]
    # (suite, perturbation) -> [inputs answered right]; the clean inputs last, under ("clean", None)
    groups: dict[tuple[str, str | None], list[Any]] = {}
    for item in plan_items(evaluation, suites, plan.seed, plan.split):
        if (item.suite, item.perturbation, item.case_id, item.variant) in right:
            where = (item.suite, item.perturbation) if item.family == "realistic" else ("clean", None)
            groups.setdefault(where, []).append(item.input)
    texts = {where: [canonical_text(v) for v in values] for where, values in groups.items()}
    shifted_texts = {name: [canonical_text(v) for v in values] for name, values in shifted.items()}
    fitted = check_fitted(plan.policy)
    figures = []
    for detector, rule in checks:
        flags = _flags(detector)
        hits = {where: [flags(v, t) for v, t in zip(groups[where], texts[where])] for where in groups}
        rates: list[DetectorRate] = []
        for suite in [s.name for s in suites]:
            members = sorted(w for w in hits if w[0] == suite)
            if not members:
                continue
            pooled = [h for w in members for h in hits[w]]
            rates.append(_rate("realistic", suite, None, pooled))
            rates.extend(_rate("realistic", suite, w[1], hits[w]) for w in members)
        if ("clean", None) in hits:
            rates.append(_rate("clean", "clean", None, hits[("clean", None)]))
        shifted_rates = tuple(
            _rate("shifted", None, name, [flags(v, t) for v, t in zip(values, shifted_texts[name])])
            for name, values in shifted.items()
        )
        by_check = any(detector is f for f in fitted)
        index = next((i for i, f in enumerate(fitted) if f is detector), None)
        figures.append(DetectorFigures(
            state=detector.name, rule=rule, detector=repr(detector), fitted_by_check=by_check,
            reference_cases=reference.n_cases if by_check and reference else None,
            reference_variants=reference.n_variants if by_check and reference else None,
            reference_tried=reference.n_tried if by_check and reference else None,
            false_alarms=tuple(rates), shifted=shifted_rates,
            saved_to=str(saved[index]) if index is not None and index < len(saved) else None,
        ))
    return tuple(figures)


def _rate(group: str, suite: str | None, perturbation: str | None, hits: Sequence[bool]) -> DetectorRate:
    flagged = sum(hits)
    return DetectorRate(group, suite, perturbation, len(hits), flagged, flagged / len(hits) if hits else None)


# --------------------------------------------------------------------------- what each perturbation made


def perturbation_counts(tally: Any, plan: Any) -> tuple[SuiteCounts, ...]:
    """Per chaos suite of the plan: each perturbation's variants and ``NotApplicable`` cases, from the tally.

    A perturbation with no variant at all is audited (:func:`failpath.chaos.audit.audit_suite`) over the
    cases its suite drew for, to say why, and whether it only works on another kind of input.
    """
    if not plan.suites:
        return ()
    from failpath.chaos.audit import audit_suite
    from failpath.chaos.base import unit_interval
    from failpath.chaos.suites import Suite

    leaf_of = {(leaf.suite, leaf.perturbation): i for i, leaf in enumerate(tally.leaves)}
    leaves = tally.columns["leaf"]
    cases = tally.columns["case"]
    out = []
    for suite in plan.suites:
        drawn = [
            c for c in plan.cases
            if suite.share >= 1.0 or unit_interval(plan.seed, c.id, suite.name, "share") < suite.share
        ]
        rows = []
        for p in suite.perturbations:
            leaf = leaf_of.get((suite.name, p.name))
            mask = leaves == leaf if leaf is not None else np.zeros(leaves.shape, dtype=bool)
            n_variants = int(np.count_nonzero(mask))
            varied = int(np.unique(cases[mask]).size)
            row = PerturbationCount(p.name, n_variants, varied, len(drawn) - varied)
            if n_variants == 0 and drawn:
                audit = audit_suite(drawn, Suite(suite.name, suite.family, (p,)), seed=plan.seed, samples=0)[p.name]
                row = PerturbationCount(
                    p.name, 0, 0, len(drawn), no_op=not audit.other_input_kind,
                    other_input_kind=audit.other_input_kind, reasons=dict(Counter(audit.reasons).most_common(3)),
                )
            rows.append(row)
        out.append(SuiteCounts(
            suite=suite.name, family=suite.family, n_cases=len(drawn), perturbations=tuple(rows),
            no_ops=tuple(r.name for r in rows if r.no_op), other_input_kind=tuple(r.name for r in rows if r.other_input_kind),
        ))
    return tuple(out)

"""Audit a suite over your dataset: what each perturbation does to your cases, and to their expected answers.

A label contract is a claim about the data: ``transformed`` says the expected answer follows the edit,
which holds for the commas of an address and not for the comma of ``Smith, John``. :func:`audit_suite`
runs a suite over the cases and returns, per perturbation, how many variants it made and on how many
cases it had nothing to do (with the reasons), the contracts its variants carry, and a sample of
variants with the expected answer before and after and the edits that were made. A perturbation that
made no variant for the whole dataset is named (:attr:`SuiteAudit.no_ops`): it tests nothing there.
One that only works on another kind of input (a record perturbation on text cases) is listed apart
(:attr:`SuiteAudit.other_input_kind`).

The result is plain frozen values with ``to_dict``, so a command, a report or a test can show it.
``failpath perturb --audit cases.jsonl`` prints it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from failpath.chaos.base import Edit, NotApplicable, Variant, _jsonable, derive_rng
from failpath.chaos.suites import Suite, get_suite
from failpath.core import Case, ConfigError

__all__ = ["AuditSample", "PerturbationAudit", "SuiteAudit", "audit_suite"]

# How a perturbation says the input is not its kind ("drop_field needs a record (dict input), got str").
_WRONG_KIND = re.compile(r"\bneeds (a record|text)\b")


@dataclass(frozen=True)
class AuditSample:
    """One variant as the audit shows it: the case's input and expected answer before and after, and the edits."""

    case_id: str
    contract: str
    input_before: Any
    input_after: Any
    expected_before: Any
    expected_after: Any
    edits: tuple[Edit, ...]

    @property
    def expected_changed(self) -> bool:
        """True when the variant's expected answer differs from the case's."""
        return _jsonable(self.expected_before) != _jsonable(self.expected_after)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly rendering."""
        return {
            "case_id": self.case_id,
            "contract": self.contract,
            "input_before": self.input_before,
            "input_after": self.input_after,
            "expected_before": _jsonable(self.expected_before),
            "expected_after": _jsonable(self.expected_after),
            "expected_changed": self.expected_changed,
            "edits": [e.to_dict() for e in self.edits],
        }


@dataclass(frozen=True)
class PerturbationAudit:
    """What one perturbation did over the dataset.

    ``n_variants`` counts the variants made, ``n_cases_varied`` the cases that got at least one, and
    ``n_not_applicable`` the cases that got none; ``reasons`` counts why (the first draw's
    :class:`NotApplicable` reason). ``contracts`` counts the variants by contract. ``samples`` are a
    few variants, one of each contract seen first, then others.
    """

    name: str
    family: str
    declared_contract: str
    n_cases: int
    n_variants: int
    n_cases_varied: int
    n_not_applicable: int
    contracts: dict[str, int]
    reasons: dict[str, int]
    samples: tuple[AuditSample, ...]

    @property
    def no_op(self) -> bool:
        """True when the perturbation made no variant for any case: it tests nothing on this data."""
        return self.n_variants == 0

    @property
    def other_input_kind(self) -> bool:
        """True when it made nothing because every case is another kind of input (text for a record edit)."""
        return self.no_op and bool(self.reasons) and all(_WRONG_KIND.search(r) for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly rendering."""
        return {
            "name": self.name,
            "family": self.family,
            "declared_contract": self.declared_contract,
            "n_cases": self.n_cases,
            "n_variants": self.n_variants,
            "n_cases_varied": self.n_cases_varied,
            "n_not_applicable": self.n_not_applicable,
            "no_op": self.no_op,
            "other_input_kind": self.other_input_kind,
            "contracts": dict(self.contracts),
            "reasons": dict(self.reasons),
            "samples": [s.to_dict() for s in self.samples],
        }


@dataclass(frozen=True)
class SuiteAudit:
    """The audit of one suite over a dataset: one :class:`PerturbationAudit` per perturbation, in suite order."""

    suite: str
    family: str
    seed: int
    n_cases: int
    perturbations: tuple[PerturbationAudit, ...]

    @property
    def no_ops(self) -> tuple[str, ...]:
        """The perturbations that made nothing for the whole dataset although it is their kind of input."""
        return tuple(p.name for p in self.perturbations if p.no_op and not p.other_input_kind)

    @property
    def other_input_kind(self) -> tuple[str, ...]:
        """The perturbations that made nothing because they work on another kind of input (records, text)."""
        return tuple(p.name for p in self.perturbations if p.other_input_kind)

    def __getitem__(self, name: str) -> PerturbationAudit:
        for p in self.perturbations:
            if p.name == name:
                return p
        raise KeyError(f"no perturbation {name!r} in the audit of suite {self.suite!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly rendering."""
        return {
            "suite": self.suite,
            "family": self.family,
            "seed": self.seed,
            "n_cases": self.n_cases,
            "no_ops": list(self.no_ops),
            "other_input_kind": list(self.other_input_kind),
            "perturbations": [p.to_dict() for p in self.perturbations],
        }


def audit_suite(cases: Iterable[Case], suite: str | Suite = "realistic", *, seed: int = 0, samples: int = 3) -> SuiteAudit:
    """Run ``suite`` over ``cases`` (as a check would, with the same seed) and say what each perturbation did.

    ``samples`` is how many variants to keep per perturbation for showing (0: none). Raises
    ``ConfigError`` for an unknown suite, for cases that are not :class:`~failpath.core.Case` values,
    or for no cases at all.
    """
    chosen = get_suite(suite)
    case_list = list(cases)
    if not case_list:
        raise ConfigError("audit: no cases to audit; give the labeled cases of your dataset")
    for case in case_list:
        if not isinstance(case, Case):
            raise ConfigError(f"audit: expected failpath Case values, got {type(case).__name__} (load a file with fp.load_cases)")
    if samples < 0:
        raise ConfigError(f"audit: samples must be 0 or more, got {samples}")

    made: dict[str, list[tuple[Case, Variant]]] = {p.name: [] for p in chosen.perturbations}
    varied: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {p.name: Counter() for p in chosen.perturbations}
    for case in case_list:
        variants = chosen.variants(case, seed)
        names = set()
        for v in variants:
            made[v.perturbation].append((case, v))
            names.add(v.perturbation)
        for p in chosen.perturbations:
            if p.name in names:
                varied[p.name] += 1
                continue
            result = p.apply(case, derive_rng(seed, case.id, p.name, 0))
            reason = result.reason if isinstance(result, NotApplicable) else "every draw repeated another"
            reasons[p.name][reason] += 1

    rows = []
    for p in chosen.perturbations:
        pairs = made[p.name]
        rows.append(
            PerturbationAudit(
                name=p.name,
                family=p.family,
                declared_contract=p.contract.value,
                n_cases=len(case_list),
                n_variants=len(pairs),
                n_cases_varied=varied[p.name],
                n_not_applicable=len(case_list) - varied[p.name],
                contracts=dict(Counter(v.contract.value for _, v in pairs).most_common()),
                reasons=dict(reasons[p.name].most_common()),
                samples=_pick_samples(pairs, samples, seed, p.name),
            )
        )
    return SuiteAudit(chosen.name, chosen.family, seed, len(case_list), tuple(rows))


def _pick_samples(pairs: list[tuple[Case, Variant]], k: int, seed: int, name: str) -> tuple[AuditSample, ...]:
    """``k`` variants: first one of each contract (in order of appearance), then others drawn by the seed."""
    if k == 0 or not pairs:
        return ()
    chosen: list[int] = []
    seen: set[str] = set()
    for i, (_, v) in enumerate(pairs):
        if v.contract.value not in seen:
            seen.add(v.contract.value)
            chosen.append(i)
    rest = [i for i in range(len(pairs)) if i not in chosen]
    derive_rng(seed, "audit", name).shuffle(rest)
    picked = sorted((chosen + rest)[:k])
    return tuple(
        AuditSample(
            case_id=case.id,
            contract=v.contract.value,
            input_before=case.input,
            input_after=v.input,
            expected_before=case.expected,
            expected_after=v.expected,
            edits=v.edits,
        )
        for case, v in (pairs[i] for i in picked)
    )

"""Chaos: the inputs production will bring, and the model failing, before you ship.

* perturbations: realistic mess (:mod:`~failpath.chaos.text`, :mod:`~failpath.chaos.records`), hostile
  input (:mod:`~failpath.chaos.hostile`) and model-side faults (:mod:`~failpath.chaos.faults`), each with a
  :class:`LabelContract` saying how the expected answer changes;
* suites: :func:`get_suite` (``"hostile"``, ``"realistic"``, ``"fault"``), :func:`register_suite`;
* audit: :func:`audit_suite` says what each perturbation of a suite does to your dataset;
* search: :func:`search` composes perturbations to find a silent failure and shrinks it (Hypothesis);
  :func:`shrink` shrinks failing steps you already have.

Hypothesis is imported only when :func:`search` runs, and the audit module when one of its names is
first used.
"""

from __future__ import annotations

from typing import Any

from failpath.chaos import faults
from failpath.chaos.base import (
    FAMILIES,
    Chain,
    Edit,
    LabelContract,
    NotApplicable,
    Perturbation,
    Variant,
    derive_rng,
    derive_seed,
    is_token_aligned,
)
from failpath.chaos.faults import FAULT_KINDS, FAULTS, Fault, get_fault, inject
from failpath.chaos.hostile import (
    INJECTIONS,
    BidiControls,
    Confusables,
    ControlChars,
    Emoji,
    EmptyInput,
    HugeInput,
    Injection,
    InjectionOnly,
    Markup,
    MixedScript,
    NulBytes,
    ShellFragment,
    SqlFragment,
    ZeroWidth,
)
from failpath.chaos.records import (
    BlankField,
    DropField,
    DuplicateIntoField,
    ReformatCase,
    ReformatDate,
    ReformatNumber,
    ReformatPhone,
    ReorderFields,
    StrayWhitespace,
    SwapFields,
)
from failpath.chaos.suites import (
    FAULT,
    Declared,
    HOSTILE,
    PERTURBATIONS,
    REALISTIC,
    SUITES,
    Suite,
    get_perturbation,
    get_suite,
    ordered,
    register_suite,
)
from failpath.chaos.tables import ADDRESS_TABLES, DIRECTIONALS, STATES, STREET_TYPES, UNIT_DESIGNATORS, AbbreviationTable
from failpath.chaos.text import (
    ADDRESS_LABELS,
    Abbreviate,
    Casing,
    DoubleChar,
    DropChar,
    DropPunctuation,
    Expand,
    KeyboardTypo,
    MoveUnitToFront,
    OcrConfusion,
    TextPerturbation,
    TransposeChars,
    WhitespaceNoise,
)

__all__ = [
    # values
    "LabelContract", "Edit", "Variant", "NotApplicable", "Perturbation", "TextPerturbation", "Chain",
    "FAMILIES", "is_token_aligned", "derive_rng", "derive_seed",
    # suites
    "Suite", "Declared", "SUITES", "PERTURBATIONS", "HOSTILE", "REALISTIC", "FAULT", "get_suite", "register_suite",
    "get_perturbation", "ordered",
    # audit
    "audit_suite", "SuiteAudit", "PerturbationAudit", "AuditSample",
    # realistic text
    "KeyboardTypo", "DropChar", "DoubleChar", "TransposeChars", "OcrConfusion", "Casing", "WhitespaceNoise",
    "DropPunctuation", "Abbreviate", "Expand", "MoveUnitToFront", "ADDRESS_LABELS",
    "AbbreviationTable", "STREET_TYPES", "DIRECTIONALS", "UNIT_DESIGNATORS", "STATES", "ADDRESS_TABLES",
    # realistic records
    "DropField", "BlankField", "SwapFields", "DuplicateIntoField", "ReorderFields", "ReformatDate",
    "ReformatPhone", "ReformatNumber", "ReformatCase", "StrayWhitespace",
    # hostile
    "INJECTIONS", "Injection", "InjectionOnly", "Confusables", "ZeroWidth", "BidiControls", "NulBytes",
    "ControlChars", "EmptyInput", "HugeInput", "Markup", "SqlFragment", "ShellFragment", "Emoji", "MixedScript",
    # faults
    "faults", "Fault", "FAULTS", "FAULT_KINDS", "get_fault", "inject",
    # search
    "search", "shrink", "replay", "SearchResult", "DEFAULT_SEARCH_PERTURBATIONS",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    # search imports Hypothesis, and a check needs no audit: load them only when asked for.
    if name in ("search", "shrink", "replay", "SearchResult", "DEFAULT_SEARCH_PERTURBATIONS"):
        from failpath.chaos import finder

        value = getattr(finder, name)
        globals()[name] = value
        return value
    if name in ("audit_suite", "SuiteAudit", "PerturbationAudit", "AuditSample"):
        from failpath.chaos import audit

        value = getattr(audit, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'failpath.chaos' has no attribute {name!r}")

"""Suites: named groups of perturbations that a check runs over every case.

The built-in suites are ``hostile``, ``realistic`` and ``fault`` (in that order, the order a check runs
them). ``get_suite("realistic")`` returns one; ``register_suite(Suite(...))`` adds your own, or pass a
:class:`Suite` value wherever a suite name is accepted.

A perturbation's label contract is a claim about your data. When it does not hold (dropping the comma
of ``Smith, John`` changes the right answer), say so: ``suite.with_contracts({"drop_punctuation":
"not_preserved"})`` counts those variants only as answered or handled, and ``suite.without("move_unit")``
leaves a perturbation out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Iterable, Mapping

from failpath.chaos import faults as _faults
from failpath.chaos import hostile as _h
from failpath.chaos import records as _r
from failpath.chaos import text as _t
from failpath.chaos.base import (
    FAMILIES,
    import_spec,
    Chain,
    LabelContract,
    NotApplicable,
    Perturbation,
    Variant,
    derive_rng,
    unit_interval,
    weakest,
)
from failpath.core import Case, ConfigError

__all__ = [
    "Suite",
    "Declared",
    "SUITES",
    "PERTURBATIONS",
    "get_suite",
    "register_suite",
    "get_perturbation",
    "HOSTILE",
    "REALISTIC",
    "FAULT",
    "ordered",
]


@dataclass(frozen=True)
class Declared(Perturbation):
    """A perturbation whose contract the user declared weaker for their data (see :meth:`Suite.with_contracts`).

    Same name, family and variants as ``perturbation``; each variant carries the weaker of its own
    contract and ``contract`` (declaring ``NOT_PRESERVED`` makes every variant ``NOT_PRESERVED``).
    """

    perturbation: Perturbation
    contract: LabelContract

    def __post_init__(self) -> None:
        object.__setattr__(self, "contract", LabelContract(self.contract))

    @property
    def name(self) -> str:  # type: ignore[override]
        """The declared perturbation's name."""
        return self.perturbation.name

    @property
    def family(self) -> str:  # type: ignore[override]
        """The declared perturbation's family."""
        return self.perturbation.family

    @property
    def description(self) -> str:
        """The perturbation's description, with the declared contract."""
        return f"{self.perturbation.description} (contract declared {self.contract.value})"

    def contract_for(self, case: Case) -> LabelContract:
        """The weaker of the perturbation's contract for ``case`` and the declared one."""
        return weakest(self.perturbation.contract_for(case), self.contract)

    def apply(self, case: Case, rng: random.Random) -> Variant | NotApplicable:
        """The perturbation's variant, with the declared contract where it is weaker."""
        result = self.perturbation.apply(case, rng)
        if isinstance(result, NotApplicable):
            return result
        contract = weakest(result.contract, self.contract)
        return result if contract is result.contract else replace(result, contract=contract)


@dataclass(frozen=True)
class Suite:
    """A named group of perturbations of one family.

    ``variants_per_case`` is how many draws each perturbation gets per case (identical draws count once).
    ``share`` is the share of cases the suite draws for at all, chosen by a hash of ``(seed, case id,
    suite name)`` so the choice is the same in any process: model-side faults hardly depend on the input,
    so a fault suite over a quarter of the cases exercises the same failure paths at a quarter of the cost.
    """

    name: str
    family: str
    perturbations: tuple[Perturbation, ...]
    variants_per_case: int = 1
    share: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "perturbations", tuple(self.perturbations))
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"a suite needs a name (a non-empty string), got {self.name!r}")
        if self.family not in FAMILIES:
            raise ConfigError(f"suite {self.name!r}: family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if not self.perturbations:
            raise ConfigError(f"suite {self.name!r} has no perturbations; give it at least one")
        for p in self.perturbations:
            if not isinstance(p, Perturbation):
                raise ConfigError(f"suite {self.name!r}: {p!r} is not a perturbation (it needs name, family, contract, apply)")
        names = [p.name for p in self.perturbations]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"suite {self.name!r}: perturbation names must be unique; repeated: {', '.join(dupes)}")
        if isinstance(self.share, bool) or not isinstance(self.share, (int, float)) or not 0.0 < self.share <= 1.0:
            raise ConfigError(f"suite {self.name!r}: share must be a number in (0, 1], got {self.share!r}")
        if not isinstance(self.variants_per_case, int) or self.variants_per_case < 1:
            raise ConfigError(f"suite {self.name!r}: variants_per_case must be a positive integer, got {self.variants_per_case!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the perturbations, in order."""
        return tuple(p.name for p in self.perturbations)

    def _check_names(self, names: Iterable[str], what: str) -> None:
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ConfigError(
                f"suite {self.name!r}: {what}: no perturbation named {', '.join(map(repr, unknown))}; "
                f"the suite has: {', '.join(self.names)}"
            )

    def without(self, *names: str, name: str | None = None) -> "Suite":
        """This suite without the perturbations ``names`` (for a perturbation that does not fit your data).

        ``name`` names the new suite (default: this suite's name; give another to register both).
        """
        self._check_names(names, "without")
        kept = tuple(p for p in self.perturbations if p.name not in names)
        if not kept:
            raise ConfigError(f"suite {self.name!r}: without {', '.join(names)} nothing would be left")
        return replace(self, name=name or self.name, perturbations=kept)

    def with_contracts(self, contracts: Mapping[str, LabelContract | str], *, name: str | None = None) -> "Suite":
        """This suite with the contracts you declare for your data: ``{"drop_punctuation": "not_preserved"}``.

        A declared contract can only weaken a perturbation's own (a variant keeps the weaker of the two):
        ``"not_preserved"`` says the edit may change the right answer, so a check counts its variants only
        as answered or handled; ``"transformed"`` says the answer follows the edit but is no longer the same.
        A chain that has a declared perturbation among its steps (``crm_mix`` holds ``drop_punctuation``)
        gets the declaration for that step too. ``name`` names the new suite (default: this suite's name).
        """
        declared: dict[str, LabelContract] = {}
        for key, value in dict(contracts).items():
            try:
                declared[key] = LabelContract(value)
            except ValueError:
                valid = ", ".join(c.value for c in LabelContract)
                raise ConfigError(f"suite {self.name!r}: contract for {key!r} must be one of {valid}, got {value!r}") from None
        inside_chains = {step.name for p in self.perturbations if isinstance(p, Chain) for step in p.steps}
        self._check_names([n for n in declared if n not in inside_chains], "with_contracts")
        return replace(self, name=name or self.name, perturbations=tuple(_declare(p, declared) for p in self.perturbations))

    def variants(self, case: Case, seed: int = 0, *, n: int | None = None) -> list[Variant]:
        """The variants of ``case``: the same ``(case, seed)`` always gives the same list.

        Draw ``i`` of a perturbation uses an rng derived from ``(seed, case.id, perturbation name, i)``;
        draws that do not apply are skipped and identical draws kept once. Draws go round by round (draw 0
        of every perturbation, then draw 1, ...). ``n`` asks for that many variants in all (fewer if the
        perturbations run out); without it, :attr:`variants_per_case` rounds are drawn. A case outside
        the suite's ``share`` gets no variants.
        """
        if self.share < 1.0 and unit_interval(seed, case.id, self.name, "share") >= self.share:
            return []
        out: list[Variant] = []
        seen: set[tuple[str, str, str]] = set()
        rounds = self.variants_per_case if n is None else max(4 * n, self.variants_per_case)
        empty_rounds = 0
        for i in range(rounds):
            added = 0
            for p in self.perturbations:
                result = p.apply(case, derive_rng(seed, case.id, p.name, i))
                if isinstance(result, NotApplicable):
                    continue
                key = (p.name, repr(result.input), repr(result.expected))
                if key in seen:
                    continue
                seen.add(key)
                if type(result) is Variant:  # the same as replace(), without its field-by-field introspection
                    result = Variant(result.input, result.expected, result.perturbation, result.family,
                                     result.contract, result.edits, case.id, i, result.fault)
                else:
                    result = replace(result, case_id=case.id, index=i)
                out.append(result)
                added += 1
                if n is not None and len(out) >= n:
                    return out
            empty_rounds = 0 if added else empty_rounds + 1
            if n is not None and empty_rounds >= 8:  # the perturbations have run out of new variants
                break
        return out

    def why_not(self, case: Case, seed: int = 0) -> dict[str, str]:
        """For each perturbation whose first draw does not apply to ``case``: the reason."""
        out = {}
        for p in self.perturbations:
            result = p.apply(case, derive_rng(seed, case.id, p.name, 0))
            if isinstance(result, NotApplicable):
                out[p.name] = result.reason
        return out


def _declare(perturbation: Perturbation, declared: Mapping[str, LabelContract]) -> Perturbation:
    if isinstance(perturbation, Chain):
        steps = tuple(_declare(step, declared) for step in perturbation.steps)
        if steps != perturbation.steps:
            perturbation = replace(perturbation, steps=steps)
    if perturbation.name in declared:
        return Declared(perturbation, declared[perturbation.name])
    return perturbation


#: Messy input people really produce: typos, casing, blanks, punctuation, abbreviations, order, OCR, records.
REALISTIC = Suite(
    "realistic",
    "realistic",
    (
        _t.KeyboardTypo(),
        _t.DropChar(),
        _t.DoubleChar(),
        _t.TransposeChars(),
        _t.OcrConfusion(),
        _t.Casing(),
        _t.WhitespaceNoise(),
        _t.DropPunctuation(),
        _t.Abbreviate(),
        _t.Expand(),
        _t.MoveUnitToFront(),
        Chain(
            name="crm_mix",
            summary="A CRM-style mix: lower case, every abbreviation from the tables, no punctuation, one typo.",
            steps=(_t.Casing(mode="lower"), _t.Abbreviate(intensity=None), _t.DropPunctuation(intensity=None), _t.KeyboardTypo()),
        ),
        _r.DropField(),
        _r.BlankField(),
        _r.SwapFields(),
        _r.DuplicateIntoField(),
        _r.ReorderFields(),
        _r.ReformatDate(),
        _r.ReformatPhone(),
        _r.ReformatNumber(),
        _r.ReformatCase(),
        _r.StrayWhitespace(),
    ),
    variants_per_case=2,
)

#: Input written to break or hijack the system.
HOSTILE = Suite(
    "hostile",
    "hostile",
    (
        _h.Injection(),
        _h.InjectionOnly(),
        _h.Confusables(),
        _h.ZeroWidth(),
        _h.BidiControls(),
        _h.NulBytes(),
        _h.ControlChars(),
        _h.EmptyInput(),
        _h.HugeInput(),
        _h.Markup(),
        _h.SqlFragment(),
        _h.ShellFragment(),
        _h.Emoji(),
        _h.MixedScript(),
    ),
    variants_per_case=1,
)

#: The model side failing: timeouts, provider errors, empty, truncated or mistyped output, NaN confidence, slowness,
#: and a crash no failure state names (only an ``Unexpected`` rule handles it).
FAULT = Suite("fault", "fault", _faults.FAULTS, variants_per_case=1)

_BUILT_IN: tuple[Suite, ...] = (HOSTILE, REALISTIC, FAULT)
_REGISTRY: dict[str, Suite] = {s.name: s for s in _BUILT_IN}

#: Every registered suite by name (read-only view; built-ins first: hostile, realistic, fault).
SUITES: Mapping[str, Suite] = MappingProxyType(_REGISTRY)

#: Every built-in perturbation by name.
PERTURBATIONS: Mapping[str, Perturbation] = MappingProxyType({p.name: p for s in _BUILT_IN for p in s.perturbations})


def get_suite(suite: str | Suite) -> Suite:
    """The suite called ``suite``: a registered name, or ``"module:attr"`` naming a :class:`Suite` value
    (imported now; a :class:`Suite` value is returned as is). ``ConfigError`` names a wrong entry."""
    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, str) and ":" in suite:
        found = import_spec(suite, "suite")
        if not isinstance(found, Suite):
            raise ConfigError(f"suite {suite!r} is a {type(found).__name__}, not a failpath.chaos.Suite; name a Suite value")
        return found
    try:
        return _REGISTRY[suite]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown suite {suite!r}; valid suites: {', '.join(_REGISTRY)}") from None


def register_suite(suite: Suite, *, replace: bool = False) -> Suite:
    """Make ``suite`` available by name to :func:`get_suite`, the check runner and the CLI.

    Registering a name that exists raises ``ConfigError`` unless ``replace=True``; built-in suites cannot
    be replaced.
    """
    if not isinstance(suite, Suite):
        raise ConfigError(f"register_suite expects a Suite, got {type(suite).__name__}")
    if suite.name in _REGISTRY:
        if any(s.name == suite.name for s in _BUILT_IN):
            raise ConfigError(f"suite {suite.name!r} is built in; register yours under another name")
        if not replace:
            raise ConfigError(f"a suite named {suite.name!r} is registered already; pass replace=True to replace it")
    _REGISTRY[suite.name] = suite
    return suite


def get_perturbation(name: str) -> Perturbation:
    """The built-in perturbation called ``name``; ``ConfigError`` listing the valid names otherwise."""
    try:
        return PERTURBATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown perturbation {name!r}; valid: {', '.join(PERTURBATIONS)}") from None


def ordered(suites: Iterable[str | Suite]) -> list[Suite]:
    """``suites`` resolved and sorted in the order a check runs them: hostile, realistic, then fault."""
    resolved = [get_suite(s) for s in suites]
    return sorted(resolved, key=lambda s: FAMILIES.index(s.family))


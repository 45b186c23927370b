"""The values every perturbation shares: label contracts, edits, variants, and the perturbation base.

A perturbation is a frozen value. ``apply(case, rng)`` returns a :class:`Variant` (the perturbed input,
the expected answer as it must now be, and the edits that were made) or :class:`NotApplicable` with the
reason nothing was done. A perturbation never hands back the input unchanged as if it had perturbed it.
"""

from __future__ import annotations

import hashlib
import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Literal, Protocol, Sequence

from failpath.core import Case

__all__ = [
    "Family",
    "FAMILIES",
    "LabelContract",
    "Edit",
    "Variant",
    "NotApplicable",
    "Perturbation",
    "SystemFault",
    "is_token_aligned",
    "derive_rng",
    "derive_seed",
]

Family = Literal["realistic", "hostile", "fault"]

#: The perturbation families, in the order a check runs them.
FAMILIES: tuple[str, ...] = ("hostile", "realistic", "fault")


class LabelContract(str, Enum):
    """How a perturbation changes the expected answer of a case.

    * ``UNCHANGED``: the expected answer is exactly the original one.
    * ``TRANSFORMED``: the expected answer is transformed consistently with the input
      (token-aligned labels follow their tokens).
    * ``NOT_PRESERVED``: the answer may legitimately change; the variant is scored only on
      "right or handled" (``expected`` keeps the original answer for reference); a check counts a
      realistic one only as answered or handled, never right nor wrong against that stale answer.
    """

    UNCHANGED = "unchanged"
    TRANSFORMED = "transformed"
    NOT_PRESERVED = "not_preserved"


# Weakest first: combining two contracts keeps the weaker promise.
_CONTRACT_ORDER = (LabelContract.UNCHANGED, LabelContract.TRANSFORMED, LabelContract.NOT_PRESERVED)


def weakest(*contracts: LabelContract) -> LabelContract:
    """The contract of a chain of perturbations: the weakest promise among them."""
    return max(contracts, key=_CONTRACT_ORDER.index, default=LabelContract.UNCHANGED)


@dataclass(frozen=True, slots=True)
class Edit:
    """One change a perturbation made.

    ``kind`` names the change (``"typo"``, ``"abbreviate"``, ``"drop_field"``, ...). ``token`` is the
    index of the changed token in the input *before* the change, ``position`` a character offset inside
    that token (or inside the input, for edits that are not about one token), ``field`` the record key
    for dict inputs. ``before`` and ``after`` are the old and new text (or value).
    """

    kind: str
    token: int | None = None
    position: int | None = None
    field: str | None = None
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly rendering, without the parts that are unset."""
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("token", "position", "field", "before", "after"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class SystemFault(Protocol):
    """What a fault variant carries: something that makes a system misbehave when it wraps it.

    :class:`failpath.chaos.faults.Fault` is the one implementation; it is named here by what it does so
    that this module, which ``faults`` builds on, needs nothing from ``faults``.
    """

    name: str

    def wrap(self, system: Callable[..., Any], seed: int = 0) -> Callable[..., Any]:
        """``system`` misbehaving on some of its calls, chosen by ``seed``."""
        ...

    def wrap_variant(self, system: Callable[..., Any], seed: int, case_id: str, variant: int = 0) -> Callable[..., Any]:
        """``system`` misbehaving for one variant of one case, chosen by ``(seed, case_id, variant)`` alone."""
        ...


@dataclass(frozen=True, slots=True)
class Variant:
    """A perturbed case: the input to send, the expected answer under the contract, and what changed.

    ``perturbation`` is the name of the perturbation (``"a+b"`` for a chain), ``case_id`` and ``index``
    say which case and which draw it came from. ``fault`` is set for fault perturbations: the input is
    unchanged and the system must be wrapped with ``variant.fault.wrap_variant(system, seed, case_id, index)``
    before the call.
    """

    input: Any
    expected: Any
    perturbation: str
    family: str
    contract: LabelContract
    edits: tuple[Edit, ...]
    case_id: str = ""
    index: int = 0
    fault: SystemFault | None = None

    @property
    def id(self) -> str:
        """A stable identifier: ``<case id>/<perturbation>/<index>``."""
        return f"{self.case_id}/{self.perturbation}/{self.index}"

    def as_case(self, tags: Sequence[str] = ()) -> Case:
        """This variant as a :class:`~failpath.core.Case` (its id is :attr:`id`)."""
        return Case(id=self.id, input=self.input, expected=self.expected, tags=tuple(tags))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly rendering (inputs and expected values are kept as they are)."""
        return {
            "id": self.id,
            "case_id": self.case_id,
            "perturbation": self.perturbation,
            "family": self.family,
            "contract": self.contract.value,
            "input": self.input,
            "expected": _jsonable(self.expected),
            "edits": [e.to_dict() for e in self.edits],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class NotApplicable:
    """A perturbation had nothing to work on (no word to abbreviate, no field to drop): the reason why."""

    reason: str

    def __bool__(self) -> bool:
        return False


class Perturbation(ABC):
    """Base of every perturbation: a frozen value with ``name``, ``family``, ``contract`` and ``apply``.

    ``contract`` is the declared contract. The contract of one variant can be weaker or stronger
    depending on the case (see :meth:`contract_for`): a label-transforming text perturbation applied to a
    plain-string expected answer declares ``UNCHANGED``; a perturbation that adds unlabeled text to a
    token-aligned case declares ``NOT_PRESERVED``.
    """

    name: str
    family: str
    contract: LabelContract

    @abstractmethod
    def apply(self, case: Case, rng: random.Random) -> Variant | NotApplicable:
        """Perturb ``case`` with randomness from ``rng``: a :class:`Variant`, or :class:`NotApplicable`."""

    def contract_for(self, case: Case) -> LabelContract:
        """The contract a variant of ``case`` carries."""
        if self.contract is LabelContract.TRANSFORMED and not is_token_aligned(case):
            return LabelContract.UNCHANGED
        return self.contract

    @property
    def description(self) -> str:
        """The first line of the perturbation's docstring."""
        doc = (type(self).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else self.name

    def _variant(self, case: Case, input: Any, expected: Any, edits: Sequence[Edit], contract: LabelContract) -> Variant:
        return Variant(
            input=input,
            expected=expected,
            perturbation=self.name,
            family=self.family,
            contract=contract,
            edits=tuple(edits),
            case_id=case.id,
        )


# --------------------------------------------------------------------------- token-aligned cases

_TOKEN = re.compile(r"\S+")


def is_token_aligned(case: Case) -> bool:
    """True when ``case`` is a sequence-labeling case.

    That is: ``case.expected`` is a non-empty list or tuple of ``(token, label)`` string pairs, and the
    whitespace-separated tokens of ``case.input`` are exactly those tokens (the usaddress convention:
    the input is the tokens joined by spaces, tokens keep their trailing punctuation).
    """
    if not isinstance(case.input, str):
        return False
    return _aligned_labels(case.expected, _TOKEN.findall(case.input)) is not None


def _aligned_labels(expected: Any, tokens: list[str]) -> list[str] | None:
    """The labels of ``expected`` when it is a list of ``(token, label)`` pairs whose tokens are ``tokens``."""
    if not isinstance(expected, (list, tuple)) or not expected or len(expected) != len(tokens):
        return None
    labels = []
    for pair, token in zip(expected, tokens):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or pair[0] != token or not isinstance(pair[1], str):
            return None
        labels.append(pair[1])
    return labels


# --------------------------------------------------------------------------- module:attr


def import_spec(spec: str, what: str) -> Any:
    """The object ``"module:attr"`` names (``attr`` may be dotted); ``ConfigError`` naming ``what`` and ``spec``
    when the module cannot be imported or has no such attribute. The module must be importable as it is."""
    import importlib

    from failpath.core import ConfigError

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} {spec!r}: give it as 'module:attr', e.g. 'mypkg.chaos:my_suite'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    except Exception as exc:
        raise ConfigError(f"{what} {spec!r}: importing module {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    return found


# --------------------------------------------------------------------------- seeds


def derive_seed(*parts: Any) -> int:
    """A 64-bit seed from ``parts``, stable across processes and Python versions (blake2b, not ``hash``)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def derive_rng(*parts: Any) -> random.Random:
    """A ``random.Random`` seeded by :func:`derive_seed` of ``parts``."""
    return random.Random(derive_seed(*parts))


def unit_interval(*parts: Any) -> float:
    """A number in [0, 1) determined by ``parts`` alone."""
    return derive_seed(*parts) / 2.0**64


# --------------------------------------------------------------------------- the text under edit


@dataclass
class TextDoc:
    """A text split into tokens and the whitespace around them, with optional labels, while it is edited.

    ``seps`` has one more entry than ``tokens``: ``text == seps[0] + tokens[0] + seps[1] + ... + seps[-1]``.
    """

    tokens: list[str]
    seps: list[str]
    labels: list[str] | None = None
    pair_type: type = tuple
    outer_type: type = list
    edits: list[Edit] = field(default_factory=list)

    @classmethod
    def from_text(cls, text: str) -> "TextDoc":
        """Split plain text (no labels)."""
        return cls(tokens=_TOKEN.findall(text), seps=_TOKEN.split(text))

    @classmethod
    def from_case(cls, case: Case) -> "TextDoc":
        """Split a case's input; labels come along when the case is token-aligned."""
        doc = cls.from_text(case.input)
        if _aligned_labels(case.expected, doc.tokens) is not None:
            doc.labels = [label for _, label in case.expected]
            doc.pair_type = type(case.expected[0])
            doc.outer_type = type(case.expected)
        return doc

    @property
    def text(self) -> str:
        """The text as it stands."""
        parts = [self.seps[0]]
        for token, sep in zip(self.tokens, self.seps[1:]):
            parts.append(token)
            parts.append(sep)
        return "".join(parts)

    def expected(self) -> Any:
        """The token-aligned expected answer for the tokens as they stand."""
        assert self.labels is not None
        pairs = [self.pair_type((t, lab)) for t, lab in zip(self.tokens, self.labels)]
        return self.outer_type(pairs)

    def set_token(self, index: int, text: str, kind: str, position: int | None = None) -> None:
        """Replace token ``index`` by ``text`` (which must stay one non-empty token) and record the edit."""
        before = self.tokens[index]
        self.tokens[index] = text
        self.edits.append(Edit(kind=kind, token=index, position=position, before=before, after=text))

    def replace_span(self, start: int, end: int, new_tokens: Sequence[str], kind: str) -> None:
        """Replace tokens ``start:end`` by ``new_tokens`` (all taking the label of the first replaced token)."""
        before = " ".join(self.tokens[start:end])
        inner_seps = [" "] * (len(new_tokens) - 1)
        self.tokens[start:end] = list(new_tokens)
        self.seps[start + 1 : end] = inner_seps
        if self.labels is not None:
            label = self.labels[start]
            self.labels[start:end] = [label] * len(new_tokens)
        self.edits.append(Edit(kind=kind, token=start, before=before, after=" ".join(new_tokens)))


# --------------------------------------------------------------------------- chains


@dataclass(frozen=True, kw_only=True)
class Chain(Perturbation):
    """Several perturbations applied one after the other, as one perturbation (``a+b+c`` unless named).

    Steps that do not apply are skipped; the chain is :class:`NotApplicable` only when none applies.
    Its contract is the weakest of the steps'. Each edit's ``token`` refers to the text as it was
    before that step.
    """

    steps: tuple[Perturbation, ...]
    name: str = ""
    family: str = ""
    contract: LabelContract = LabelContract.UNCHANGED
    summary: str = ""  # what the chain stands for, shown by ``failpath perturb --list``

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a Chain needs at least one step")
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.name:
            object.__setattr__(self, "name", "+".join(s.name for s in self.steps))
        if not self.family:
            families = {s.family for s in self.steps}
            object.__setattr__(self, "family", families.pop() if len(families) == 1 else "realistic")
        object.__setattr__(self, "contract", weakest(*(s.contract for s in self.steps)))

    def contract_for(self, case: Case) -> LabelContract:
        """The weakest contract of the steps for ``case``."""
        return weakest(*(s.contract_for(case) for s in self.steps))

    @property
    def description(self) -> str:
        """The chain's summary, or the names of its steps."""
        return self.summary or "The perturbations " + ", ".join(s.name for s in self.steps) + ", one after the other."

    def apply(self, case: Case, rng: random.Random) -> Variant | NotApplicable:
        """Apply each step to the previous step's variant."""
        current = case
        edits: list[Edit] = []
        contracts: list[LabelContract] = []
        reasons: list[str] = []
        for step in self.steps:
            result = step.apply(current, rng)
            if isinstance(result, NotApplicable):
                reasons.append(result.reason)
                continue
            edits.extend(result.edits)
            contracts.append(result.contract)
            current = Case(id=case.id, input=result.input, expected=result.expected, tags=case.tags)
        if not contracts:
            return NotApplicable(f"{self.name}: no step applies ({'; '.join(reasons)})")
        if current.input == case.input and current.expected == case.expected:
            return NotApplicable(f"{self.name}: the steps cancelled out")
        return self._variant(case, current.input, current.expected, edits, weakest(*contracts))

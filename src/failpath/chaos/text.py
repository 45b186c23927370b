"""Realistic text perturbations: the mess people really type.

Every perturbation here works on three kinds of input:

* plain text (the expected answer is a string, a class, a record...): the contract is ``UNCHANGED``;
* token-aligned text (``expected`` is a list of ``(token, label)`` pairs, see
  :func:`~failpath.chaos.base.is_token_aligned`): the contract is ``TRANSFORMED`` and the variant's
  expected pairs follow the edit (a typo keeps its token's label, a moved token keeps its label, a
  dropped comma changes only the token text); an edit that can change the answer itself is
  ``NOT_PRESERVED`` (see :class:`DropPunctuation` for the comma in ``Smith, John``);
* records (dict inputs): the edit is made inside one string field, and the contract is ``UNCHANGED``.

Character-level edits (typos, OCR confusions, dropped or doubled letters) only touch letters, never a
token that holds a digit, and never a token labeled as a number or identifier: a house number, a ZIP
code or a unit number is never changed by a perturbation that claims to keep the label.

The base class lives in :mod:`failpath.chaos.textedit` and the table-driven rewrites (``Abbreviate``,
``Expand``) in :mod:`failpath.chaos.table_edits`; every name is importable from here.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from failpath.chaos.base import Edit, LabelContract, NotApplicable, TextDoc
from failpath.chaos.table_edits import Abbreviate, Expand
from failpath.chaos.tables import UNIT_DESIGNATORS, AbbreviationTable, split_punctuation
from failpath.chaos.textedit import TextPerturbation

__all__ = [
    "IDENTIFIER_LABELS",
    "ADDRESS_LABELS",
    "TextPerturbation",
    "KeyboardTypo",
    "DropChar",
    "DoubleChar",
    "TransposeChars",
    "Casing",
    "WhitespaceNoise",
    "DropPunctuation",
    "Abbreviate",
    "Expand",
    "MoveUnitToFront",
    "OcrConfusion",
]

#: Labels of tokens that are numbers or identifiers: character-level edits never touch them.
IDENTIFIER_LABELS: frozenset[str] = frozenset(
    {
        "AddressNumber",
        "AddressNumberPrefix",
        "AddressNumberSuffix",
        "ZipCode",
        "ZipPlus4",
        "USPSBoxID",
        "USPSBoxGroupID",
        "OccupancyIdentifier",
        "SubaddressIdentifier",
        "LandmarkName",
    }
)


#: The usaddress labels. In an address each field is told apart by its words (a number, a street type,
#: a state), not by the commas between fields: dropping one keeps every label (see :class:`DropPunctuation`).
ADDRESS_LABELS: frozenset[str] = frozenset(
    {
        "AddressNumberPrefix", "AddressNumber", "AddressNumberSuffix", "StreetNamePreModifier",
        "StreetNamePreDirectional", "StreetNamePreType", "StreetName", "StreetNamePostType",
        "StreetNamePostDirectional", "SubaddressType", "SubaddressIdentifier", "BuildingName", "OccupancyType",
        "OccupancyIdentifier", "CornerOf", "LandmarkName", "PlaceName", "StateName", "ZipCode", "USPSBoxType",
        "USPSBoxID", "USPSBoxGroupType", "USPSBoxGroupID", "IntersectionSeparator", "Recipient", "NotAddress",
    }
)  # fmt: skip


# --------------------------------------------------------------------------- which tokens a character edit may touch


_DIGIT = re.compile(r"\d")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def _editable_tokens(doc: TextDoc, min_letters: int) -> list[int]:
    out = []
    labels = doc.labels
    for i, token in enumerate(doc.tokens):
        if _DIGIT.search(token) or (labels is not None and labels[i] in IDENTIFIER_LABELS):
            continue
        if len(_ASCII_LETTER.findall(token)) >= min_letters:
            out.append(i)
    return out


def _letter_positions(token: str) -> list[int]:
    return [j for j, ch in enumerate(token) if ch.isascii() and ch.isalpha()]


_KEYBOARD: dict[str, str] = {
    "q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg", "y": "tugh", "u": "yihj",
    "i": "uojk", "o": "ipkl", "p": "ol", "a": "qwsz", "s": "weadzx", "d": "ersfxc", "f": "rtdgcv",
    "g": "tyfhvb", "h": "yugjbn", "j": "uihknm", "k": "iojlm", "l": "opk", "z": "asx", "x": "zsdc",
    "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class _CharEdit(TextPerturbation):
    """Shared fields of the character-level edits."""

    name: str
    family: str = "realistic"
    contract: LabelContract = LabelContract.TRANSFORMED
    intensity: int = 1  # how many tokens get one edit each
    min_letters: int = 3  # tokens with fewer letters are left alone

    def _change(self, token: str, rng: random.Random) -> tuple[str, int] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def edit(self, doc: TextDoc, rng: random.Random) -> NotApplicable | None:
        candidates = [i for i in _editable_tokens(doc, self.min_letters) if self._can_change(doc.tokens[i])]
        if not candidates:
            return NotApplicable(f"{self.name}: no word with {self.min_letters}+ letters and no digit to edit")
        for i in sorted(rng.sample(candidates, min(self.intensity, len(candidates)))):
            new, position = self._change(doc.tokens[i], rng)
            doc.set_token(i, new, self.name, position)
        return None

    def _can_change(self, token: str) -> bool:
        return True


@dataclass(frozen=True, kw_only=True)
class KeyboardTypo(_CharEdit):
    """A letter replaced by its neighbour on a QWERTY keyboard, in one word (``Main`` -> ``Maun``)."""

    name: str = "typo"

    def _change(self, token: str, rng: random.Random) -> tuple[str, int]:
        positions = [j for j in _letter_positions(token) if token[j].lower() in _KEYBOARD]
        j = rng.choice(positions)
        near = rng.choice(_KEYBOARD[token[j].lower()])
        near = near.upper() if token[j].isupper() else near
        return token[:j] + near + token[j + 1 :], j


@dataclass(frozen=True, kw_only=True)
class DropChar(_CharEdit):
    """A letter left out of one word (``Marietta`` -> ``Marieta``)."""

    name: str = "drop_char"

    def _change(self, token: str, rng: random.Random) -> tuple[str, int]:
        j = rng.choice(_letter_positions(token))
        return token[:j] + token[j + 1 :], j


@dataclass(frozen=True, kw_only=True)
class DoubleChar(_CharEdit):
    """A letter typed twice in one word (``Kilbourn`` -> ``Kilboourn``)."""

    name: str = "double_char"

    def _change(self, token: str, rng: random.Random) -> tuple[str, int]:
        j = rng.choice(_letter_positions(token))
        return token[: j + 1] + token[j] + token[j + 1 :], j


@dataclass(frozen=True, kw_only=True)
class TransposeChars(_CharEdit):
    """Two neighbouring letters swapped in one word (``Avenue`` -> ``Aveune``)."""

    name: str = "transpose_chars"

    @staticmethod
    def _pairs(token: str) -> list[int]:
        return [
            j
            for j in range(len(token) - 1)
            if token[j].isalpha() and token[j + 1].isalpha() and token[j].isascii() and token[j + 1].isascii()
            and token[j].lower() != token[j + 1].lower()
        ]

    def _can_change(self, token: str) -> bool:
        return bool(self._pairs(token))

    def _change(self, token: str, rng: random.Random) -> tuple[str, int]:
        j = rng.choice(self._pairs(token))
        return token[:j] + token[j + 1] + token[j] + token[j + 2 :], j


# Letter sequences and what an OCR engine (or a tired eye) reads instead. Sources are letters only, so
# digits already in the text are never touched.
_OCR: tuple[tuple[str, str], ...] = (
    ("O", "0"), ("o", "0"), ("l", "1"), ("I", "1"), ("I", "l"), ("l", "I"), ("S", "5"), ("B", "8"),
    ("Z", "2"), ("G", "6"), ("g", "9"), ("rn", "m"), ("m", "rn"), ("cl", "d"), ("d", "cl"),
    ("vv", "w"), ("w", "vv"), ("e", "c"), ("c", "e"), ("h", "b"), ("u", "ii"), ("nn", "m"),
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class OcrConfusion(_CharEdit):
    """An OCR-style misreading in one word: ``O``/``0``, ``l``/``1``, ``rn``/``m``, ``cl``/``d``, ..."""

    name: str = "ocr"

    @staticmethod
    def _spots(token: str) -> list[tuple[int, str, str]]:
        spots = []
        for source, target in _OCR:
            start = token.find(source)
            while start != -1:
                spots.append((start, source, target))
                start = token.find(source, start + 1)
        return spots

    def _can_change(self, token: str) -> bool:
        return bool(self._spots(token))

    def _change(self, token: str, rng: random.Random) -> tuple[str, int]:
        j, source, target = rng.choice(self._spots(token))
        return token[:j] + target + token[j + len(source) :], j


# --------------------------------------------------------------------------- casing and whitespace


@dataclass(frozen=True, kw_only=True)
class Casing(TextPerturbation):
    """The whole text in another case: ``lower``, ``upper`` or ``title`` (``None``: one that changes it)."""

    name: str = "casing"
    family: str = "realistic"
    contract: LabelContract = LabelContract.TRANSFORMED
    mode: Literal["lower", "upper", "title"] | None = None

    def edit(self, doc: TextDoc, rng: random.Random) -> NotApplicable | None:
        modes = [self.mode] if self.mode else ["lower", "upper", "title"]
        changing = [m for m in modes if any(_recase(t, m) != t for t in doc.tokens)]
        if not changing:
            return NotApplicable("casing: no letter whose case would change")
        mode = rng.choice(changing)
        for i, token in enumerate(doc.tokens):
            new = _recase(token, mode)
            if new != token:
                doc.set_token(i, new, f"casing:{mode}")
        return None


def _recase(token: str, mode: str) -> str:
    if mode == "lower":
        return token.lower()
    if mode == "upper":
        return token.upper()
    return token[:1].upper() + token[1:].lower()


_INNER_NOISE = ("  ", "   ", "\t", " \t", "\u00a0", " \u00a0", "\n", " \n ")
_EDGE_NOISE = (" ", "  ", "\t", "\n", " \n", "\u00a0")


@dataclass(frozen=True, kw_only=True)
class WhitespaceNoise(TextPerturbation):
    """Doubled spaces, tabs, non-breaking spaces, newlines, leading or trailing blanks (tokens unchanged).

    The edit's ``token`` is the token the changed gap comes before (``len(tokens)`` for the trailing gap).
    """

    name: str = "whitespace"
    family: str = "realistic"
    contract: LabelContract = LabelContract.TRANSFORMED
    intensity: int = 2  # how many gaps change

    def edit(self, doc: TextDoc, rng: random.Random) -> NotApplicable | None:
        if not doc.tokens:
            return NotApplicable("whitespace: the text is empty")
        gaps = list(range(len(doc.seps)))
        for g in sorted(rng.sample(gaps, min(self.intensity, len(gaps)))):
            inner = 0 < g < len(doc.tokens)
            options = [n for n in (_INNER_NOISE if inner else _EDGE_NOISE) if n != doc.seps[g]]
            before, after = doc.seps[g], rng.choice(options)
            doc.seps[g] = after
            doc.edits.append(Edit(kind="whitespace", token=g, before=before, after=after))
        return None


# --------------------------------------------------------------------------- punctuation

_DROPPABLE = ",.;:"
_SEPARATORS = ",;:"


@dataclass(frozen=True, kw_only=True)
class DropPunctuation(TextPerturbation):
    """Commas, periods, colons left out (``Chicago,`` -> ``Chicago``; ``P.O.`` -> ``PO.``); never inside a number.

    ``intensity`` is how many marks go (``None``: all of them).

    The contract rule for token-aligned cases: a comma, semicolon or colon at the end of a token
    *separates* it from the next token. When the two tokens have different labels the mark can be
    what says which is which (``Smith, John``: the surname comes first because of the comma; ``Smith
    John`` reads the other way), so a variant that drops it is ``NOT_PRESERVED`` -- unless both labels
    are in ``separator_safe_labels``, labels told apart by their words rather than by the marks
    between them (default: :data:`ADDRESS_LABELS`, so ``Chicago, IL`` -> ``Chicago IL`` keeps its
    labels). A period that ends an abbreviation (``Dr.``, ``St.``), a mark inside a token (``P.O.``),
    a mark between tokens with the same label and a mark at the end of the text separate nothing
    whose labels could swap: those variants stay ``TRANSFORMED``. On plain text there are no labels
    to reason from: the contract stays ``UNCHANGED``; if a comma can change your answer, declare it
    (``suite.with_contracts({"drop_punctuation": "not_preserved"})``).
    """

    name: str = "drop_punctuation"
    family: str = "realistic"
    contract: LabelContract = LabelContract.TRANSFORMED
    intensity: int | None = 1
    separator_safe_labels: frozenset[str] = ADDRESS_LABELS

    def __post_init__(self) -> None:
        labels = self.separator_safe_labels
        object.__setattr__(self, "separator_safe_labels", frozenset({labels} if isinstance(labels, str) else labels))

    def edit(self, doc: TextDoc, rng: random.Random) -> NotApplicable | None:
        spots = []
        for i, token in enumerate(doc.tokens):
            if all(ch in _DROPPABLE for ch in token):
                continue  # emptying a token would remove a labeled token
            for j, ch in enumerate(token):
                between_digits = 0 < j < len(token) - 1 and token[j - 1].isdigit() and token[j + 1].isdigit()
                if ch in _DROPPABLE and not between_digits:
                    spots.append((i, j))
        if not spots:
            return NotApplicable("drop_punctuation: no comma, period or colon outside a number")
        n = len(spots) if self.intensity is None else min(self.intensity, len(spots))
        chosen = sorted(rng.sample(spots, n))
        for i in sorted({i for i, _ in chosen}):
            token = doc.tokens[i]
            drop = {j for ti, j in chosen if ti == i}
            new = "".join(ch for j, ch in enumerate(token) if j not in drop)
            doc.set_token(i, new, "drop_punctuation", min(drop))
        return None

    def _labeled_contract(self, doc: TextDoc) -> LabelContract:
        """``NOT_PRESERVED`` when a dropped separator stood between tokens whose labels it may tell apart."""
        assert doc.labels is not None
        safe = self.separator_safe_labels
        for edit in doc.edits:
            i = edit.token
            if edit.kind != "drop_punctuation" or i is None or i + 1 >= len(doc.tokens):
                continue
            left, right = doc.labels[i], doc.labels[i + 1]
            if left == right or (left in safe and right in safe):
                continue
            if _separator(edit.before) and not _separator(edit.after):
                return LabelContract.NOT_PRESERVED
        return self.contract


def _separator(token: str) -> bool:
    """True when ``token`` ends in a comma, semicolon or colon among its trailing marks (``Smith,``, ``St.,``)."""
    return any(ch in _SEPARATORS for ch in split_punctuation(token)[1])


# --------------------------------------------------------------------------- token order

UNIT_LABELS: frozenset[str] = frozenset({"OccupancyType", "OccupancyIdentifier"})


@dataclass(frozen=True, kw_only=True)
class MoveUnitToFront(TextPerturbation):
    """The unit moved to the front, as people often write it (``123 Main St Apt 4`` -> ``Apt 4 123 Main St``).

    Moved tokens keep their labels.
    """

    name: str = "move_unit"
    family: str = "realistic"
    contract: LabelContract = LabelContract.TRANSFORMED
    unit_table: AbbreviationTable = UNIT_DESIGNATORS

    def _span(self, doc: TextDoc) -> tuple[int, int] | None:
        if doc.labels is not None:
            idx = [i for i, lab in enumerate(doc.labels) if lab in UNIT_LABELS]
            if not idx or idx != list(range(idx[0], idx[-1] + 1)) or "OccupancyType" not in doc.labels:
                return None
            return idx[0], idx[-1] + 1
        cores = [split_punctuation(t)[0] for t in doc.tokens]
        for i, core in enumerate(cores):
            if core.startswith("#") and len(core) > 1:
                return i, i + 1
            designator = self.unit_table.canonical(core) is not None or core.casefold() in {"unit", "lot", "#"}
            ident = cores[i + 1] if i + 1 < len(cores) else ""
            if designator and (any(ch.isdigit() for ch in ident) or (len(ident) == 1 and ident.isalpha())):
                return i, i + 2
        return None

    def edit(self, doc: TextDoc, rng: random.Random) -> NotApplicable | None:
        span = self._span(doc)
        if span is None:
            return NotApplicable("move_unit: no unit (Apt 4, Suite 200, #3) in the text")
        start, end = span
        if start == 0:
            return NotApplicable("move_unit: the unit is already at the front")
        moved = doc.tokens[start:end]
        before = " ".join(moved)
        labels = doc.labels[start:end] if doc.labels is not None else None
        del doc.tokens[start:end]
        inner = doc.seps[start + 1 : end]
        del doc.seps[start:end]  # the gap before the unit and its inner gaps
        doc.tokens[0:0] = moved
        doc.seps[1:1] = [*inner, " "]
        if doc.labels is not None and labels is not None:
            del doc.labels[start:end]
            doc.labels[0:0] = labels
        doc.edits.append(Edit(kind="move", token=start, position=0, before=before, after=before))
        return None

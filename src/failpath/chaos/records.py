"""Realistic record perturbations (dict inputs): the mess of forms, CRMs and CSV exports.

Fields go missing or blank (``NOT_PRESERVED``: the answer may depend on them), values land in the wrong
field, keys come in another order, and values are written in the other formats people really use
(dates, phone numbers, numbers with separators, case, stray blanks): these keep the answer
(``UNCHANGED``). Every perturbation here returns :class:`NotApplicable` for an input that is not a record.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from failpath.chaos.base import Edit, LabelContract, NotApplicable, Perturbation, Variant
from failpath.core import Case

__all__ = [
    "RecordPerturbation",
    "DropField",
    "BlankField",
    "SwapFields",
    "DuplicateIntoField",
    "ReorderFields",
    "ReformatDate",
    "ReformatPhone",
    "ReformatNumber",
    "ReformatCase",
    "StrayWhitespace",
    "parse_date",
    "format_date",
    "DATE_FORMATS",
]


class RecordPerturbation(Perturbation):
    """Base of perturbations of dict inputs. Subclasses implement :meth:`edit_record`."""

    def edit_record(self, record: dict[str, Any], rng: random.Random) -> list[Edit] | NotApplicable:  # pragma: no cover
        raise NotImplementedError

    def apply(self, case: Case, rng: random.Random) -> Variant | NotApplicable:
        """Perturb a copy of the record in ``case.input``."""
        if not isinstance(case.input, Mapping):
            return NotApplicable(f"{self.name} needs a record (dict input), got {type(case.input).__name__}")
        record = dict(case.input)
        result = self.edit_record(record, rng)
        if isinstance(result, NotApplicable):
            return result
        if not result or (record == dict(case.input) and list(record) == list(case.input)):
            return NotApplicable(f"{self.name} left the record as it was")
        return self._variant(case, record, case.expected, result, self.contract)


def _filled(record: Mapping[str, Any]) -> list[str]:
    return [k for k, v in record.items() if v not in (None, "") and not (isinstance(v, str) and not v.strip())]


@dataclass(frozen=True, kw_only=True)
class DropField(RecordPerturbation):
    """A field missing from the record."""

    name: str = "drop_field"
    family: str = "realistic"
    contract: LabelContract = LabelContract.NOT_PRESERVED

    def edit_record(self, record: dict[str, Any], rng: random.Random) -> list[Edit] | NotApplicable:
        if not record:
            return NotApplicable("drop_field: the record has no field")
        key = rng.choice(list(record))
        return [Edit(kind="drop_field", field=str(key), before=record.pop(key))]


@dataclass(frozen=True, kw_only=True)
class BlankField(RecordPerturbation):
    """A field left blank: the key is there, the value is ``blank`` (``""`` by default; ``None`` also happens)."""

    name: str = "blank_field"
    family: str = "realistic"
    contract: LabelContract = LabelContract.NOT_PRESERVED
    blank: Any = ""

    def edit_record(self, record: dict[str, Any], rng: random.Random) -> list[Edit] | NotApplicable:
        keys = _filled(record)
        if not keys:
            return NotApplicable("blank_field: no filled field to blank")
        key = rng.choice(keys)
        before, record[key] = record[key], self.blank
        return [Edit(kind="blank_field", field=str(key), before=before, after=self.blank)]


@dataclass(frozen=True, kw_only=True)
class SwapFields(RecordPerturbation):
    """The values of two fields swapped (city in the state field and back): the truth is unchanged."""

    name: str = "swap_fields"
    family: str = "realistic"
    contract: LabelContract = LabelContract.UNCHANGED

    def edit_record(self, record: dict[str, Any], rng: random.Random) -> list[Edit] | NotApplicable:
        keys = _filled(record)
        pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :] if record[a] != record[b]]
        if not pairs:
            return NotApplicable("swap_fields: fewer than two filled fields with different values")
        a, b = rng.choice(pairs)
        record[a], record[b] = record[b], record[a]
        return [
            Edit(kind="swap_fields", field=str(a), before=record[b], after=record[a]),
            Edit(kind="swap_fields", field=str(b), before=record[a], after=record[b]),
        ]


@dataclass(frozen=True, kw_only=True)
class DuplicateIntoField(RecordPerturbation):
    """A value also typed into the wrong field (``street: "12 Oak St Springfield"``, ``city: "Springfield"``)."""

    name: str = "duplicate_into_field"
    family: str = "realistic"
    contract: LabelContract = LabelContract.UNCHANGED

    def edit_record(self, record: dict[str, Any], rng: random.Random) -> list[Edit] | NotApplicable:
        texts = [k for k in _filled(record) if isinstance(record[k], str)]
        targets = [k for k, v in record.items() if isinstance(v, str)]
        pairs = [(a, b) for a in texts for b in targets if a != b and str(record[a]).strip() not in record[b]]
        if not pairs:
            return NotApplicable("duplicate_into_field: needs two text fields")
        source, target = rng.choice(pairs)
        before = record[target]
        record[target] = f"{before} {record[source]}".strip() if before.strip() else record[source]
        return [Edit(kind="duplicate_into_field", field=str(target), before=before, after=record[target])]


@dataclass(frozen=True, kw_only=True)
class ReorderFields(RecordPerturbation):
    """The keys of the record in another order (JSON and CSV exports do not keep it)."""

    name: str = "reorder_fields"
    family: str = "realistic"
    contract: LabelContract = LabelContract.UNCHANGED

    def edit_record(self, record: dict[str, Any], rng: random.Random) -> list[Edit] | NotApplicable:
        keys = list(record)
        if len(keys) < 2:
            return NotApplicable("reorder_fields: fewer than two fields")
        order = keys[:]
        while order == keys:
            rng.shuffle(order)
        items = [(k, record[k]) for k in order]
        record.clear()
        record.update(items)
        return [Edit(kind="reorder_fields", before=keys, after=order)]


# --------------------------------------------------------------------------- value formats


class _ValueEdit(RecordPerturbation):
    """Rewrite one value that :meth:`rewrite` knows how to rewrite (``None`` from ``rewrite``: not this one)."""

    def rewrite(self, key: str, value: Any, rng: random.Random) -> Any | None:  # pragma: no cover
        raise NotImplementedError

    def edit_record(self, record: dict[str, Any], rng: random.Random) -> list[Edit] | NotApplicable:
        keys = list(record)
        rng.shuffle(keys)
        for key in keys:
            new = self.rewrite(str(key), record[key], rng)
            if new is not None and new != record[key]:
                before, record[key] = record[key], new
                return [Edit(kind=self.name, field=str(key), before=before, after=new)]
        return NotApplicable(f"{self.name}: {self._nothing}")

    _nothing = "no value to rewrite"


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip
_MONTH_INDEX = {m.lower(): i + 1 for i, m in enumerate(MONTHS)} | {m[:3].lower(): i + 1 for i, m in enumerate(MONTHS)}
_MONTH_INDEX["sept"] = 9

_ISO = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
_US = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})$")
_NAMED = re.compile(r"^([A-Za-z]{3,9})\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})$")
_DAY_NAMED = re.compile(r"^(\d{1,2}) ([A-Za-z]{3,9})\.?,? (\d{4})$")


def parse_date(text: str) -> dt.date | None:
    """A date written the ways people write them in the US, or ``None``.

    ``2024-03-05``, ``2024/03/05``, ``3/5/2024``, ``03-05-24`` (month first), ``March 5, 2024``,
    ``Mar. 5th 2024``, ``5 March 2024``. Two-digit years read as 1970-2069.
    """
    text = text.strip()
    try:
        if m := _ISO.match(text):
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        if m := _US.match(text):
            year = int(m[4])
            if len(m[4]) == 2:
                year += 2000 if year < 70 else 1900
            return dt.date(year, int(m[1]), int(m[3]))
        if (m := _NAMED.match(text)) and m[1].lower() in _MONTH_INDEX:
            return dt.date(int(m[3]), _MONTH_INDEX[m[1].lower()], int(m[2]))
        if (m := _DAY_NAMED.match(text)) and m[2].lower() in _MONTH_INDEX:
            return dt.date(int(m[3]), _MONTH_INDEX[m[2].lower()], int(m[1]))
    except ValueError:
        return None
    return None


#: Date formats people type, by name (month before day, as in the US; no ambiguous day-first numerics).
DATE_FORMATS: Mapping[str, Callable[[dt.date], str]] = {
    "iso": lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}",
    "us": lambda d: f"{d.month}/{d.day}/{d.year}",
    "us_padded": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
    "us_short": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year % 100:02d}",
    "us_dashes": lambda d: f"{d.month:02d}-{d.day:02d}-{d.year}",
    "long": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "short": lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
    "day_month": lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",
    "slashed_iso": lambda d: f"{d.year:04d}/{d.month:02d}/{d.day:02d}",
}


def format_date(date: dt.date, style: str) -> str:
    """``date`` in one of :data:`DATE_FORMATS`."""
    return DATE_FORMATS[style](date)


@dataclass(frozen=True, kw_only=True)
class ReformatDate(_ValueEdit):
    """A date written another way people write it (``2024-03-05`` -> ``3/5/2024``, ``Mar 5, 2024``)."""

    name: str = "reformat_date"
    family: str = "realistic"
    contract: LabelContract = LabelContract.UNCHANGED
    _nothing = "no date value"

    def rewrite(self, key: str, value: Any, rng: random.Random) -> Any | None:
        if isinstance(value, dt.datetime):
            return None
        date = value if isinstance(value, dt.date) else parse_date(value) if isinstance(value, str) else None
        if date is None:
            return None
        styles = [s for s in DATE_FORMATS if not (s == "us_short" and not 1970 <= date.year < 2070)]
        options = [format_date(date, s) for s in styles]
        options = [o for o in options if o != value]
        return rng.choice(options) if options else None


_PHONE = re.compile(r"^\s*(?:\+?1[\s.-]?)?\(?(\d{3})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})\s*$")
_PHONE_KEY = re.compile(r"phone|tel|mobile|cell|fax", re.I)
_PHONE_FORMATS = ("({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "{a} {b} {c}", "{a}{b}{c}", "+1 {a} {b} {c}",
                  "+1 ({a}) {b}-{c}", "1-{a}-{b}-{c}", "+1{a}{b}{c}")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ReformatPhone(_ValueEdit):
    """A US phone number written another way (``(312) 555-0147``, ``312.555.0147``, ``+1 312 555 0147``)."""

    name: str = "reformat_phone"
    family: str = "realistic"
    contract: LabelContract = LabelContract.UNCHANGED
    _nothing = "no phone number"

    def rewrite(self, key: str, value: Any, rng: random.Random) -> Any | None:
        if not isinstance(value, str) or not (m := _PHONE.match(value)):
            return None
        if value.strip().isdigit() and len(value.strip()) == 10 and not _PHONE_KEY.search(key):
            return None  # ten bare digits are a phone number only if the field says so
        options = [f.format(a=m[1], b=m[2], c=m[3]) for f in _PHONE_FORMATS]
        return rng.choice([o for o in options if o != value.strip()])


_NUMERIC = re.compile(r"^(-?)(\d{1,3}(?:([, ])\d{3})+|\d+)(\.\d+)?$")
_NOT_AN_AMOUNT = re.compile(r"zip|postal|code|(^|_)id$|phone|tel|fax|year|number|(^|_)no$|sku|account|ssn|pin", re.I)


def _group(digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    parts = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return sep.join(parts)


@dataclass(frozen=True, kw_only=True)
class ReformatNumber(_ValueEdit):
    """A number written another way: with or without thousands separators, as text, with ``.00``.

    Never applied to fields whose name says they are codes (zip, id, phone, year, account, ...).
    """

    name: str = "reformat_number"
    family: str = "realistic"
    contract: LabelContract = LabelContract.UNCHANGED
    _nothing = "no amount or count"

    def rewrite(self, key: str, value: Any, rng: random.Random) -> Any | None:
        if _NOT_AN_AMOUNT.search(key) or isinstance(value, bool):
            return None
        if isinstance(value, int):
            text = str(value)
        elif isinstance(value, float):
            text = repr(value)
            if not math.isfinite(value) or "e" in text.lower():
                return None
        elif isinstance(value, str):
            text = value.strip()
            m = _NUMERIC.match(text)
            if not m or not m[3]:
                return None  # a bare digit string may be a code: only strings already grouped are regrouped
        else:
            return None
        m = _NUMERIC.match(text)
        if not m:
            return None
        sign, whole, fraction = m[1], re.sub(r"[, ]", "", m[2]), m[4] or ""
        options = {sign + _group(whole, ",") + fraction, sign + whole + fraction, sign + _group(whole, " ") + fraction}
        if not fraction and not isinstance(value, str):
            options.add(sign + _group(whole, ",") + ".00")
        choices = sorted(o for o in options if o != value)
        return rng.choice(choices) if choices else None


@dataclass(frozen=True, kw_only=True)
class ReformatCase(_ValueEdit):
    """A text value in another case (``Springfield`` -> ``SPRINGFIELD``, ``springfield``)."""

    name: str = "reformat_case"
    family: str = "realistic"
    contract: LabelContract = LabelContract.UNCHANGED
    _nothing = "no text value with letters"

    def rewrite(self, key: str, value: Any, rng: random.Random) -> Any | None:
        if not isinstance(value, str) or not any(ch.isalpha() for ch in value):
            return None
        options = [o for o in (value.upper(), value.lower(), value.title()) if o != value]
        return rng.choice(options) if options else None


@dataclass(frozen=True, kw_only=True)
class StrayWhitespace(_ValueEdit):
    """Blanks around or inside a text value (``" Springfield "``, ``"12  Oak St"``, a trailing tab)."""

    name: str = "stray_whitespace"
    family: str = "realistic"
    contract: LabelContract = LabelContract.UNCHANGED
    _nothing = "no text value"

    def rewrite(self, key: str, value: Any, rng: random.Random) -> Any | None:
        if not isinstance(value, str) or not value.strip():
            return None
        options = [" " + value, value + " ", " " + value + " ", value + "\t", value + "\n"]
        if " " in value.strip():
            j = value.index(" ", len(value) - len(value.lstrip()))
            options.append(value[:j] + "  " + value[j:])
        return rng.choice([o for o in options if o != value])

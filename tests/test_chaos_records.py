"""Record perturbations (dict inputs): fields missing, swapped, duplicated, reordered; values reformatted."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failpath.chaos import (
    BlankField,
    DropField,
    DuplicateIntoField,
    LabelContract,
    NotApplicable,
    ReformatCase,
    ReformatDate,
    ReformatNumber,
    ReformatPhone,
    ReorderFields,
    StrayWhitespace,
    SwapFields,
    Variant,
)
from failpath.chaos.records import DATE_FORMATS, format_date, parse_date
from failpath.core import Case

RECORD = {"name": "Ann Lee", "city": "Springfield", "state": "IL", "phone": "(217) 555-0147", "signed_up": "2024-03-05",
          "balance": 1234567, "zip": "62704"}  # fmt: skip
CASE = Case("r", RECORD, {"customer": 17})


def _apply(p, case=CASE, seed=0):
    before = dict(case.input)
    result = p.apply(case, random.Random(seed))
    assert isinstance(result, Variant), result
    assert case.input == before and list(case.input) == list(before)  # the case is never mutated
    return result


def test_drop_and_blank_a_field_do_not_preserve_the_answer():
    v = _apply(DropField())
    assert len(v.input) == len(RECORD) - 1 and v.contract is LabelContract.NOT_PRESERVED
    (edit,) = v.edits
    assert edit.field not in v.input and RECORD[edit.field] == edit.before
    w = _apply(BlankField())
    assert w.input[w.edits[0].field] == "" and w.contract is LabelContract.NOT_PRESERVED
    assert _apply(BlankField(blank=None)).input[_apply(BlankField(blank=None)).edits[0].field] is None


def test_swap_fields_keeps_the_answer():
    v = _apply(SwapFields())
    a, b = (e.field for e in v.edits)
    assert v.input[a] == RECORD[b] and v.input[b] == RECORD[a]
    assert v.contract is LabelContract.UNCHANGED and v.expected == CASE.expected


def test_duplicate_a_value_into_the_wrong_field():
    v = _apply(DuplicateIntoField())
    (edit,) = v.edits
    added = v.input[edit.field][len(edit.before) :].strip()
    assert added in RECORD.values() and v.input[edit.field].startswith(edit.before)


def test_reorder_fields_changes_only_the_order():
    v = _apply(ReorderFields())
    assert v.input == RECORD and list(v.input) != list(RECORD)


@settings(max_examples=100, deadline=None)
@given(day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31)), style=st.sampled_from(sorted(DATE_FORMATS)), seed=st.integers(0, 1000))
def test_reformatted_dates_mean_the_same_day(day, style, seed):
    if style == "us_short" and not 1970 <= day.year < 2070:
        return
    written = format_date(day, style)
    assert parse_date(written) == day
    v = _apply(ReformatDate(), Case("d", {"when": written}, None), seed)
    assert v.input["when"] != written and parse_date(v.input["when"]) == day


def test_date_parsing_reads_what_people_type():
    assert parse_date("March 5, 2024") == dt.date(2024, 3, 5)
    assert parse_date("Mar. 5th 2024") == dt.date(2024, 3, 5)
    assert parse_date("5 Sept 2024") == dt.date(2024, 9, 5)
    assert parse_date("03-05-24") == dt.date(2024, 3, 5)
    assert parse_date("02/30/2024") is None and parse_date("tomorrow") is None


@settings(max_examples=60, deadline=None)
@given(digits=st.from_regex(r"\A[2-9]\d{2}[2-9]\d{6}\Z"), seed=st.integers(0, 1000))
def test_reformatted_phone_numbers_keep_their_digits(digits, seed):
    written = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    v = _apply(ReformatPhone(), Case("p", {"phone": written, "note": "call after 5"}, None), seed)
    new = v.input["phone"]
    assert new != written
    assert re.sub(r"\D", "", new)[-10:] == digits


def test_bare_digits_are_a_phone_only_when_the_field_says_so():
    assert isinstance(ReformatPhone().apply(Case("p", {"account": "2175550147"}, None), random.Random(0)), NotApplicable)
    assert isinstance(ReformatPhone().apply(Case("p", {"mobile": "2175550147"}, None), random.Random(0)), Variant)


@settings(max_examples=100, deadline=None)
@given(number=st.one_of(st.integers(-10**9, 10**9), st.floats(-1e9, 1e9, allow_nan=False).map(lambda f: round(f, 2))), seed=st.integers(0, 1000))
def test_reformatted_numbers_keep_their_value(number, seed):
    result = ReformatNumber().apply(Case("n", {"amount": number}, None), random.Random(seed))
    assert isinstance(result, Variant)
    written = result.input["amount"]
    assert isinstance(written, str)
    assert float(written.replace(",", "").replace(" ", "")) == pytest.approx(float(number))


def test_codes_are_not_reformatted_as_numbers():
    for key in ("zip", "customer_id", "phone", "year", "account", "house_number"):
        assert isinstance(ReformatNumber().apply(Case("n", {key: 60637}, None), random.Random(0)), NotApplicable), key
    assert isinstance(ReformatNumber().apply(Case("n", {"amount": "60637"}, None), random.Random(0)), NotApplicable)
    assert _apply(ReformatNumber(), Case("n", {"amount": "1,234"}, None)).input["amount"] in {"1234", "1 234"}


def test_case_and_whitespace_reformatting():
    v = _apply(ReformatCase())
    (edit,) = v.edits
    assert v.input[edit.field].casefold() == RECORD[edit.field].casefold() and v.input[edit.field] != RECORD[edit.field]
    w = _apply(StrayWhitespace())
    (edit,) = w.edits
    assert " ".join(w.input[edit.field].split()) == RECORD[edit.field] and w.input[edit.field] != RECORD[edit.field]


@pytest.mark.parametrize(
    "perturbation",
    [DropField(), BlankField(), SwapFields(), DuplicateIntoField(), ReorderFields(), ReformatDate(), ReformatPhone(),
     ReformatNumber(), ReformatCase(), StrayWhitespace()],  # fmt: skip
)
def test_record_perturbations_need_a_record_with_something_to_change(perturbation):
    assert isinstance(perturbation.apply(Case("s", "just text", None), random.Random(0)), NotApplicable)
    result = perturbation.apply(Case("e", {}, None), random.Random(0))
    assert isinstance(result, NotApplicable) and result.reason

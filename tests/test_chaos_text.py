"""Realistic text perturbations: validity properties over real labeled addresses, tables, NotApplicable."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failpath.chaos import (
    ADDRESS_TABLES,
    REALISTIC,
    STATES,
    STREET_TYPES,
    Abbreviate,
    AbbreviationTable,
    Casing,
    DoubleChar,
    DropChar,
    DropPunctuation,
    Expand,
    KeyboardTypo,
    LabelContract,
    MoveUnitToFront,
    NotApplicable,
    OcrConfusion,
    TransposeChars,
    Variant,
    WhitespaceNoise,
    is_token_aligned,
)
from failpath.chaos.tables import split_punctuation
from failpath.core import Case

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "usaddress"

_FALLBACK = [
    [("431", "AddressNumber"), ("Marietta", "StreetName"), ("St", "StreetNamePostType"), ("NW", "StreetNamePostDirectional"),
     ("Fl.", "OccupancyType"), ("3", "OccupancyIdentifier")],
    [("1234", "AddressNumber"), ("S", "StreetNamePreDirectional"), ("Martin", "StreetName"), ("Luther", "StreetName"),
     ("King", "StreetName"), ("Dr", "StreetNamePostType"), ("Chicago,", "PlaceName"), ("IL", "StateName"), ("60637", "ZipCode")],
    [("Apt", "OccupancyType"), ("1B", "OccupancyIdentifier"), ("626", "AddressNumber"), ("E", "StreetNamePreDirectional"),
     ("Kilbourn", "StreetName"), ("Ave", "StreetNamePostType"), ("Milwaukee,", "PlaceName"), ("WI", "StateName"), ("53202", "ZipCode")],
    [("P.O.", "USPSBoxType"), ("Box", "USPSBoxType"), ("123456", "USPSBoxID")],
    [("9", "AddressNumber"), ("North", "StreetNamePreDirectional"), ("Wacker", "StreetName"), ("Drive,", "StreetNamePostType"),
     ("Suite", "OccupancyType"), ("200,", "OccupancyIdentifier"), ("New", "PlaceName"), ("Orleans,", "PlaceName"),
     ("New", "StateName"), ("York", "StateName"), ("10001", "ZipCode")],
]  # fmt: skip


def _load_cases() -> list[Case]:
    pairs_list = []
    for name in ("labeled.xml", "synthetic_osm_data.xml"):
        path = DATA / name
        if not path.exists():
            continue
        for i, node in enumerate(ET.parse(path).getroot()):
            pairs = [(el.text or "", el.tag) for el in node]
            if pairs and all(p[0] and not re.search(r"\s", p[0]) for p in pairs):
                pairs_list.append(pairs)
            if name != "labeled.xml" and i >= 400:
                break
    pairs_list += _FALLBACK
    return [Case(id=f"a{i}", input=" ".join(t for t, _ in p), expected=p) for i, p in enumerate(pairs_list)]


CASES = _load_cases()
needs_shared_data = pytest.mark.skipif(
    not (DATA / "labeled.xml").exists(),
    reason=f"needs the labeled addresses in ../shared/data/usaddress ({DATA / 'labeled.xml'} is absent); "
    "the other tests here use the built-in fallback addresses",
)
CHAR_EDITS = [KeyboardTypo(), DropChar(), DoubleChar(), TransposeChars(), OcrConfusion()]
LABEL_KEEPING = [p for p in REALISTIC.perturbations if p.contract is not LabelContract.NOT_PRESERVED]
cases = st.sampled_from(CASES)
seeds = st.integers(0, 2**32 - 1)


def _tokens(text: str) -> list[str]:
    return text.split()


@needs_shared_data
def test_the_real_data_is_read():
    assert len(CASES) > len(_FALLBACK)  # the shared data was read (the fallback alone would be too little)


def test_the_cases_are_token_aligned():
    assert all(is_token_aligned(c) for c in CASES)


def test_is_token_aligned_rejects_what_is_not():
    assert not is_token_aligned(Case("x", "123 Main St", "123 Main St"))
    assert not is_token_aligned(Case("x", "123 Main St", [("123", "AddressNumber"), ("Main", "StreetName")]))
    assert not is_token_aligned(Case("x", "123 Main", [("123", "AddressNumber"), ("Main", 4)]))
    assert not is_token_aligned(Case("x", "", []))
    assert is_token_aligned(Case("x", " 123\tMain ", (("123", "A"), ("Main", "B"))))


@settings(max_examples=150, deadline=None)
@given(case=cases, seed=seeds, which=st.sampled_from(CHAR_EDITS))
def test_a_character_edit_changes_exactly_one_token_and_keeps_its_label(case, seed, which):
    result = which.apply(case, random.Random(seed))
    if isinstance(result, NotApplicable):
        return
    before, after = _tokens(case.input), _tokens(result.input)
    assert len(before) == len(after)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(changed) == 1
    (i,) = changed
    assert [e.token for e in result.edits] == [i]
    assert result.edits[0].before == before[i] and result.edits[0].after == after[i]
    assert [lab for _, lab in result.expected] == [lab for _, lab in case.expected]
    assert result.contract is LabelContract.TRANSFORMED
    assert not any(ch.isdigit() for ch in before[i])  # tokens with digits are never edited


@settings(max_examples=150, deadline=None)
@given(case=cases, seed=seeds, which=st.sampled_from([Abbreviate(), Expand(), Abbreviate(intensity=None), Expand(intensity=None)]))
def test_an_abbreviation_keeps_the_meaning_by_its_table(case, seed, which):
    result = which.apply(case, random.Random(seed))
    if isinstance(result, NotApplicable):
        return
    assert result.edits
    for edit in result.edits:
        before_core = split_punctuation(edit.before)[0]
        after_core = split_punctuation(edit.after)[0]
        meanings = {t.name: t.canonical(before_core) for t in ADDRESS_TABLES if t.canonical(before_core)}
        assert any(t.canonical(after_core) == meanings.get(t.name) for t in ADDRESS_TABLES if t.name in meanings), edit
        assert before_core.casefold() != after_core.casefold()
    assert is_token_aligned(Case("v", result.input, result.expected))
    # Each rewritten span keeps one label, the label its tokens had.
    labels_before = Counter(lab for _, lab in case.expected)
    labels_after = Counter(lab for _, lab in result.expected)
    assert set(labels_after) == set(labels_before)


def _house_digits(pairs) -> str:
    return "".join(ch for tok, lab in pairs if lab == "AddressNumber" for ch in tok if ch.isdigit())


def _digit_tokens(text: str) -> Counter:
    return Counter("".join(ch for ch in t if ch.isdigit()) for t in text.split() if any(ch.isdigit() for ch in t))


@settings(max_examples=200, deadline=None)
@given(case=cases, seed=seeds, which=st.sampled_from(LABEL_KEEPING))
def test_label_keeping_perturbations_never_touch_house_number_digits(case, seed, which):
    result = which.apply(case, random.Random(seed))
    if isinstance(result, NotApplicable):
        return
    assert result.contract is not LabelContract.NOT_PRESERVED
    assert _house_digits(result.expected) == _house_digits(case.expected)
    # Every number in the input is still there, written the same way.
    assert not (_digit_tokens(case.input) - _digit_tokens(result.input))


@settings(max_examples=200, deadline=None)
@given(case=cases, seed=seeds, which=st.sampled_from(LABEL_KEEPING))
def test_label_transforming_perturbations_keep_tokens_and_labels_aligned(case, seed, which):
    result = which.apply(case, random.Random(seed))
    if isinstance(result, NotApplicable):
        return
    assert result.contract is LabelContract.TRANSFORMED
    assert is_token_aligned(Case("v", result.input, result.expected))
    assert type(result.expected) is type(case.expected)
    assert result.input != case.input


@settings(max_examples=100, deadline=None)
@given(case=cases, seed=seeds, which=st.sampled_from(LABEL_KEEPING))
def test_on_plain_text_the_same_perturbations_declare_unchanged(case, seed, which):
    plain = Case(case.id, case.input, "the expected answer")
    result = which.apply(plain, random.Random(seed))
    if isinstance(result, NotApplicable):
        return
    assert result.contract is LabelContract.UNCHANGED
    assert result.expected == "the expected answer"
    assert _digit_tokens(plain.input) - _digit_tokens(result.input) == Counter()


def test_a_typo_is_a_keyboard_neighbour():
    case = Case("k", "Marietta", "x")
    for seed in range(30):
        v = KeyboardTypo().apply(case, random.Random(seed))
        (edit,) = v.edits
        j = edit.position
        old, new = case.input[j].lower(), v.input[j].lower()
        assert new in {"q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg", "i": "uojk", "a": "qwsz", "m": "njk"}[old]


def test_moved_tokens_keep_their_labels():
    case = next(c for c in CASES if c.expected[0][1] == "AddressNumber" and any(lab == "OccupancyType" for _, lab in c.expected))
    v = MoveUnitToFront().apply(case, random.Random(0))
    assert isinstance(v, Variant)
    assert v.expected[0][1] == "OccupancyType"
    assert Counter(map(tuple, v.expected)) == Counter(map(tuple, case.expected))
    assert v.input.split()[0] == v.expected[0][0]


def test_move_unit_on_plain_text():
    v = MoveUnitToFront().apply(Case("p", "123 Main St Apt 4B, Springfield", "x"), random.Random(0))
    assert v.input == "Apt 4B, 123 Main St Springfield"
    assert v.contract is LabelContract.UNCHANGED


def test_a_dropped_comma_changes_only_the_token_text():
    case = Case("c", "Chicago, IL", [("Chicago,", "PlaceName"), ("IL", "StateName")])
    v = DropPunctuation().apply(case, random.Random(0))
    assert v.input == "Chicago IL"
    assert v.expected == [("Chicago", "PlaceName"), ("IL", "StateName")]


def test_punctuation_inside_a_number_is_kept():
    result = DropPunctuation(intensity=None).apply(Case("n", "3.5 miles, 1,200 feet", "x"), random.Random(0))
    assert result.input == "3.5 miles 1,200 feet"


def test_abbreviation_examples_plain_and_labeled():
    plain = Case("p", "626 East Kilbourn Avenue, Milwaukee, Wisconsin 53202", "x")
    v = Abbreviate(intensity=None).apply(plain, random.Random(0))
    assert v.input == "626 E Kilbourn Ave, Milwaukee, WI 53202"
    back = Expand(intensity=None).apply(Case("q", v.input, "x"), random.Random(0))
    assert back.input == plain.input
    # Saint is not Street: "St Louis" is left alone without labels, but the labeled street type is expanded.
    saint = Case("s", "12 Main St, St Louis, MO 63101", "x")
    assert Expand(intensity=None).apply(saint, random.Random(0)).input == "12 Main St, St Louis, Missouri 63101"
    labeled = Case("l", "12 Main St, St Louis", [("12", "AddressNumber"), ("Main", "StreetName"), ("St,", "StreetNamePostType"),
                                                 ("St", "PlaceName"), ("Louis", "PlaceName")])  # fmt: skip
    v = Expand(intensity=None).apply(labeled, random.Random(0))
    assert v.input == "12 Main Street, St Louis"
    assert v.expected[2] == ("Street,", "StreetNamePostType")


def test_multi_word_state_names_become_one_token_and_back():
    case = Case("ny", "Albany, New York 12207", [("Albany,", "PlaceName"), ("New", "StateName"), ("York", "StateName"), ("12207", "ZipCode")])
    v = Abbreviate().apply(case, random.Random(0))
    assert v.input == "Albany, NY 12207"
    assert v.expected == [("Albany,", "PlaceName"), ("NY", "StateName"), ("12207", "ZipCode")]
    w = Expand().apply(Case("ny2", v.input, v.expected), random.Random(0))
    assert w.input == case.input and w.expected == case.expected


def test_casing_keeps_the_style_of_the_rewritten_word():
    v = Abbreviate().apply(Case("c", "12 elm avenue", "x"), random.Random(0))
    assert v.input == "12 elm ave"
    v = Expand().apply(Case("c", "12 ELM AVE", "x"), random.Random(0))
    assert v.input == "12 ELM AVENUE"


def test_users_add_their_own_table():
    companies = AbbreviationTable("company", {"Incorporated": ("Inc",), "Corporation": ("Corp",), "Limited": ("Ltd",)})
    v = Abbreviate(tables=(companies,), intensity=None).apply(Case("c", "Acme Corporation and Widgets Limited", "x"), random.Random(0))
    assert v.input == "Acme Corp and Widgets Ltd"
    assert companies.canonical("corp.") == "Corporation"
    with pytest.raises(ValueError, match="listed under both"):
        AbbreviationTable("bad", {"Street": ("St",), "Saint": ("St",)})


def test_a_table_takes_its_labels_as_any_iterable_of_names():
    entries = {"William": ("Wm",), "Robert": ("Rob",)}
    case = Case("n", "William Smith", [("William", "GivenName"), ("Smith", "Surname")])
    for labels in (("GivenName",), ["GivenName"], {"GivenName"}, frozenset({"GivenName"}), "GivenName"):
        table = AbbreviationTable("given", entries, labels=labels)
        assert table.labels == frozenset({"GivenName"})
        v = Abbreviate(tables=(table,)).apply(case, random.Random(0))
        assert v.input == "Wm Smith" and v.expected == [("Wm", "GivenName"), ("Smith", "Surname")]
    surname_only = AbbreviationTable("given", entries, labels=("Surname",))
    assert isinstance(Abbreviate(tables=(surname_only,)).apply(case, random.Random(0)), NotApplicable)
    with pytest.raises(ValueError, match="'given'.*label names"):
        AbbreviationTable("given", entries, labels=3)
    with pytest.raises(ValueError, match="must be strings"):
        AbbreviationTable("given", entries, labels=("GivenName", 3))


def test_tables_cover_usps_basics():
    assert STREET_TYPES.canonical("Blvd") == "Boulevard" and STREET_TYPES.abbreviation("Avenue") == "Ave"
    assert STATES.canonical("wi") == "Wisconsin" and STATES.abbreviation("District of Columbia") == "DC"
    assert len([c for c in STATES.entries if len(STATES.entries[c][0]) == 2]) >= 51


def test_whitespace_noise_keeps_tokens_and_changes_gaps():
    case = CASES[0]
    v = WhitespaceNoise().apply(case, random.Random(3))
    assert v.input.split() == case.input.split() and v.input != case.input
    assert v.expected == case.expected


@pytest.mark.parametrize(
    ("perturbation", "text"),
    [
        (KeyboardTypo(), "12 34 5"),
        (DropChar(), "A1 B2"),
        (TransposeChars(), "aa 12"),
        (OcrConfusion(), "xyz 12"),
        (Casing(), "123 456"),
        (DropPunctuation(), "no punctuation here"),
        (Abbreviate(), "hello world"),
        (Expand(), "hello world"),
        (MoveUnitToFront(), "123 Main St"),
        (MoveUnitToFront(), "Apt 4 123 Main St"),
        (WhitespaceNoise(), ""),
    ],
)
def test_not_applicable_when_nothing_applies(perturbation, text):
    result = perturbation.apply(Case("n", text, "x"), random.Random(0))
    assert isinstance(result, NotApplicable)
    assert result.reason and not result


def test_text_perturbations_refuse_other_inputs_and_edit_a_record_field():
    assert isinstance(KeyboardTypo().apply(Case("i", 12345, 1), random.Random(0)), NotApplicable)
    record = {"street": "626 East Kilbourn Avenue", "zip": "53202"}
    v = Abbreviate().apply(Case("r", record, "ok"), random.Random(0))
    assert v.input == {"street": "626 E Kilbourn Avenue", "zip": "53202"} or v.input == {"street": "626 East Kilbourn Ave", "zip": "53202"}
    assert v.edits[0].field == "street" and v.contract is LabelContract.UNCHANGED and v.expected == "ok"
    assert record == {"street": "626 East Kilbourn Avenue", "zip": "53202"}  # the case is not mutated


@needs_shared_data
@pytest.mark.parametrize("perturbation", [*CHAR_EDITS, Abbreviate(), Expand(), DropPunctuation(), Casing(), MoveUnitToFront()])
def test_each_perturbation_applies_to_real_addresses(perturbation):
    applied = sum(not isinstance(perturbation.apply(c, random.Random(0)), NotApplicable) for c in CASES[:300])
    floor = 0.05 if isinstance(perturbation, MoveUnitToFront) else 0.3
    assert applied >= floor * min(300, len(CASES)), f"{perturbation.name} applied to {applied} cases only"


# --------------------------------------------------------------------------- the comma that tells fields apart

NAME = Case("n", "Smith, John", [("Smith,", "Surname"), ("John", "GivenName")])


def test_dropping_the_comma_of_last_first_may_change_the_answer():
    v = DropPunctuation().apply(NAME, random.Random(0))
    assert v.input == "Smith John" and v.contract is LabelContract.NOT_PRESERVED
    crm_mix = next(p for p in REALISTIC.perturbations if p.name == "crm_mix")
    v = crm_mix.apply(NAME, random.Random(0))
    assert "," not in v.input and v.contract is LabelContract.NOT_PRESERVED


def test_marks_that_separate_nothing_whose_labels_could_swap_stay_transformed():
    title = Case("t", "Dr. John West", [("Dr.", "Title"), ("John", "GivenName"), ("West", "Surname")])
    v = DropPunctuation().apply(title, random.Random(0))
    assert v.input == "Dr John West" and v.contract is LabelContract.TRANSFORMED  # a period ends an abbreviation
    same = Case("s", "Mary, Ann Lee", [("Mary,", "GivenName"), ("Ann", "GivenName"), ("Lee", "Surname")])
    assert DropPunctuation().apply(same, random.Random(0)).contract is LabelContract.TRANSFORMED
    last = Case("l", "John Smith,", [("John", "GivenName"), ("Smith,", "Surname")])
    assert DropPunctuation().apply(last, random.Random(0)).contract is LabelContract.TRANSFORMED
    declared = DropPunctuation(separator_safe_labels=("Surname", "GivenName"))
    assert declared.apply(NAME, random.Random(0)).contract is LabelContract.TRANSFORMED


@needs_shared_data
def test_a_comma_between_address_fields_keeps_the_labels():
    labeled = [c for c in CASES if any(t.endswith(",") for t, _ in c.expected[:-1])][:300]
    assert len(labeled) >= 50
    contracts = Counter()
    for i, case in enumerate(labeled):
        v = DropPunctuation(intensity=None).apply(case, random.Random(i))
        contracts[v.contract] += 1
    assert contracts == Counter({LabelContract.TRANSFORMED: len(labeled)})
    crm_mix = next(p for p in REALISTIC.perturbations if p.name == "crm_mix")
    assert all(crm_mix.apply(c, random.Random(0)).contract is LabelContract.TRANSFORMED for c in labeled[:100])

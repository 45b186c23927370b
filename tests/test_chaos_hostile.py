"""Hostile perturbations: what each one puts in the input, and the label contract it declares."""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failpath.chaos import (
    HOSTILE,
    INJECTIONS,
    BidiControls,
    Confusables,
    ControlChars,
    Emoji,
    EmptyInput,
    HugeInput,
    Injection,
    InjectionOnly,
    LabelContract,
    Markup,
    MixedScript,
    NotApplicable,
    NulBytes,
    ShellFragment,
    SqlFragment,
    Variant,
    ZeroWidth,
    is_token_aligned,
)
from failpath.chaos.hostile import BIDI_CONTROLS, CONTROL_CHARS, EMOJI, FOREIGN_WORDS, MARKUP, SHELL_FRAGMENTS, SQL_FRAGMENTS, ZERO_WIDTH, homoglyphs
from failpath.core import Case, ConfigError

PLAIN = Case("p", "626 East Kilbourn Avenue, Milwaukee, WI 53202", "residential")
ALIGNED = Case(
    "t",
    "626 E Kilbourn Ave Milwaukee, WI 53202",
    [("626", "AddressNumber"), ("E", "StreetNamePreDirectional"), ("Kilbourn", "StreetName"), ("Ave", "StreetNamePostType"),
     ("Milwaukee,", "PlaceName"), ("WI", "StateName"), ("53202", "ZipCode")],
)  # fmt: skip
RECORD = Case("r", {"name": "Ann Lee", "city": "Springfield", "zip": "62704"}, "match")


def _apply(p, case, seed=0):
    result = p.apply(case, random.Random(seed))
    assert isinstance(result, Variant), result
    return result


def test_an_appended_injection_must_not_change_the_answer():
    v = _apply(Injection(), PLAIN)
    assert v.contract is LabelContract.UNCHANGED and v.expected == PLAIN.expected
    assert v.input.startswith(PLAIN.input) and len(v.input) > len(PLAIN.input)
    payload = v.input[len(PLAIN.input) :].strip()
    assert any(payload in strings for strings in INJECTIONS.values())
    assert v.edits[0].kind.startswith("injection:")


def test_an_injection_on_a_token_aligned_case_is_scored_as_not_preserved():
    v = _apply(Injection(), ALIGNED)
    assert v.contract is LabelContract.NOT_PRESERVED  # the injected words have no label
    assert v.expected == ALIGNED.expected


def test_injection_categories_are_curated_and_selectable():
    assert {"instruction_override", "role_play", "prompt_leak", "delimiter_escape", "exfiltration"} <= set(INJECTIONS)
    assert all(len(strings) >= 2 for strings in INJECTIONS.values())
    for seed in range(10):
        v = _apply(Injection(categories=("prompt_leak",)), PLAIN, seed)
        assert any(s in v.input for s in INJECTIONS["prompt_leak"])
    with pytest.raises(ConfigError, match="unknown injection category 'nope'"):
        Injection(categories=("nope",)).apply(PLAIN, random.Random(0))


def test_injection_only_replaces_the_input():
    v = _apply(InjectionOnly(), PLAIN)
    assert v.contract is LabelContract.NOT_PRESERVED
    assert any(v.input in strings for strings in INJECTIONS.values())


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), text=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ ", min_size=1, max_size=30))
def test_confusables_come_from_the_unicode_table_and_look_alike(seed, text):
    result = Confusables().apply(Case("c", text, "x"), random.Random(seed))
    if not any(homoglyphs(ch) for ch in text):  # e.g. only spaces, or only "m" (whose look-alike is "rn")
        assert isinstance(result, NotApplicable)
        return
    assert isinstance(result, Variant)
    assert len(result.input) == len(text)
    swapped = [(a, b) for a, b in zip(text, result.input) if a != b]
    assert 1 <= len(swapped) <= 2
    for a, b in swapped:
        assert b in homoglyphs(a) and not b.isascii()


def test_homoglyphs_include_cyrillic_and_greek():
    assert "а" in homoglyphs("a")  # CYRILLIC SMALL LETTER A
    assert "ο" in homoglyphs("o")  # GREEK SMALL LETTER OMICRON
    assert all(unicodedata.bidirectional(g) not in ("R", "AL") for g in homoglyphs("o"))


@pytest.mark.parametrize(
    ("perturbation", "alphabet"),
    [(ZeroWidth(), ZERO_WIDTH), (NulBytes(), ("\x00",)), (ControlChars(), CONTROL_CHARS), (BidiControls(), BIDI_CONTROLS + ("\u202c", "\u2069"))],
)
def test_invisible_characters_are_hidden_inside_tokens(perturbation, alphabet):
    for seed in range(20):
        v = _apply(perturbation, ALIGNED, seed)
        assert v.contract is LabelContract.NOT_PRESERVED
        assert is_token_aligned(Case("v", v.input, v.expected))  # still one token per label
        stripped = v.input
        for piece in sorted(alphabet, key=len, reverse=True):
            stripped = stripped.replace(piece, "")
        assert stripped == ALIGNED.input and v.input != ALIGNED.input


def test_empty_and_blank_input():
    seen = {_apply(EmptyInput(), PLAIN, seed).input for seed in range(20)}
    assert "" in seen and all(not s.strip() for s in seen)
    assert _apply(EmptyInput(), RECORD).input == {}
    assert isinstance(EmptyInput().apply(Case("e", {}, None), random.Random(0)), NotApplicable)


def test_huge_input_is_many_times_longer():
    v = _apply(HugeInput(), PLAIN)
    assert len(v.input) >= 50 * len(PLAIN.input)
    assert _apply(HugeInput(intensity=5), PLAIN).input.count("Kilbourn") == 5
    assert isinstance(HugeInput().apply(Case("e", "  ", None), random.Random(0)), NotApplicable)


@pytest.mark.parametrize(
    ("perturbation", "payloads"),
    [(Markup(), MARKUP), (SqlFragment(), SQL_FRAGMENTS), (ShellFragment(), SHELL_FRAGMENTS), (Emoji(), EMOJI), (MixedScript(), FOREIGN_WORDS)],
)
def test_payloads_are_inserted_and_the_original_words_kept(perturbation, payloads):
    placements = set()
    for seed in range(30):
        v = _apply(perturbation, PLAIN, seed)
        payload = v.edits[0].after
        assert payload in payloads and payload in v.input
        assert v.input.replace(payload, " ").split() == PLAIN.input.split()
        placements.add(v.edits[0].kind.split(":")[-1])
        assert v.contract is LabelContract.NOT_PRESERVED
    assert placements == {"append", "prepend", "inside"}


def test_markup_carries_script_and_event_handlers():
    assert any("<script>" in m for m in MARKUP) and any("onerror=" in m or "onload=" in m for m in MARKUP)


def test_hostile_perturbations_edit_one_field_of_a_record():
    for p in HOSTILE.perturbations:
        v = _apply(p, RECORD)
        changed = [k for k in RECORD.input if v.input.get(k) != RECORD.input[k]]
        if p.name == "empty_input":
            assert v.input == {}
        else:
            assert len(changed) == 1 and v.edits[0].field == changed[0]


def test_every_hostile_perturbation_declares_its_contract():
    contracts = {p.name: p.contract for p in HOSTILE.perturbations}
    assert contracts.pop("injection") is LabelContract.UNCHANGED
    assert set(contracts.values()) == {LabelContract.NOT_PRESERVED}
    assert all(p.family == "hostile" for p in HOSTILE.perturbations)


def test_hostile_perturbations_refuse_non_text_input():
    for p in HOSTILE.perturbations:
        result = p.apply(Case("n", 42, 42), random.Random(0))
        assert isinstance(result, NotApplicable), p.name

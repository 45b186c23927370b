"""Worst cases that teach, on a person-name parser: the failures a perturbation caused first, one per case;
cases already wrong on clean input apart, under their own heading; invisible edits shown as code points.
Every report shows the same: terminal, HTML, JSON, Markdown and the pytest assertion message."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

import failpath as fp
from failpath.chaos import Suite
from failpath.chaos.hostile import Confusables, ZeroWidth
from failpath.chaos.reveal import reveal
from failpath.chaos.text import Casing
from failpath.core import Case, Prediction
from failpath.report import html, json_report, markdown, terminal
from failpath.report.worst import CAUSE_TITLES, edit_text
from failpath.testing import failure_message

SURNAMES = ["Smith", "West", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Rossi", "Nowak", "Silva", "Haddad",
            "Brown", "Kowalski", "Jensen", "Ibrahim", "Novak", "Garcia"]
TWO_WORD = ["van Dyke", "de la Cruz", "van der Berg", "di Marco"]  # the parser below gets these wrong, clean or not


def cases() -> list[Case]:
    out = [Case(id=f"p{i:02d}", input=f"{last}, Ann", expected=last.upper()) for i, last in enumerate(SURNAMES)]
    out += [Case(id=f"w{i:02d}", input=f"{last}, Ann", expected=last.upper()) for i, last in enumerate(TWO_WORD)]
    return out


def surname(text: str) -> Prediction:
    """The first word, upper-cased, very sure of itself: wrong on two-word surnames and on look-alike letters."""
    first = str(text).split()[0].rstrip(",") if str(text).split() else ""
    return Prediction(first.upper(), 0.97)


SUITES = [Suite("name-tricks", "hostile", (Confusables(), ZeroWidth())), Suite("name-case", "realistic", (Casing(),))]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    store = tmp_path_factory.mktemp("worst") / "s.db"
    return fp.check(surname, cases(), judge="exact", suites=SUITES, seed=2, store=store, worst_cases=4,
                    worst_case_seconds=5, calibration_share=0.2, quiet=True)


def test_perturbation_caused_failures_come_first_one_per_case(result):
    worst = result.worst_cases
    causes = [w.cause for w in worst]
    assert causes == sorted(causes, key=["perturbation", "clean"].index)  # caused first, then the rest
    assert len({w.case_id for w in worst}) == len(worst)  # no case under two perturbation titles
    caused = [w for w in worst if w.cause == "perturbation"]
    already = [w for w in worst if w.cause == "clean"]
    assert caused and already and len(caused) <= 4 and len(already) <= 4
    assert all(w.case_id.startswith("p") and w.suite != "clean" for w in caused)  # the parser is right on their clean input
    assert all(w.case_id.startswith("w") for w in already)  # the two-word surnames: wrong before any perturbation
    assert all(w.reproduction is None for w in already)  # no perturbation needed, so nothing to search


def test_invisible_edits_are_shown_as_code_points(result):
    assert reveal("sh\u043ees") == "sh[U+043E]es" and reveal("shoes") == "shoes"
    assert reveal("Zu\u0308rich Z\u00fcrich \u041c\u043e\u0441\u043a\u0432\u0430") == "Zu\u0308rich Z\u00fcrich \u041c\u043e\u0441\u043a\u0432\u0430"
    assert reveal("ab\u200bc\u202e\x00") == "ab[U+200B]c[U+202E][U+0000]"
    assert edit_text({"kind": "confusable", "before": "shoes", "after": "sh\u043ees"}) == "confusable: shoes → sh[U+043E]es"
    tricky = [w for w in result.worst_cases if w.suite == "name-tricks"]
    assert tricky and all("[U+" in w.input_visible for w in tricky)
    assert all(w.input_visible == reveal(w.input) for w in result.worst_cases)


def _sections(text: str) -> tuple[int, int]:
    return text.index(CAUSE_TITLES["perturbation"][:40]), text.index(CAUSE_TITLES["clean"][:40])


def test_every_report_groups_them_and_reveals_the_edits(result):
    console = Console(record=True, width=240, color_system=None)
    terminal.render(result, console)
    screen = console.export_text()
    md = markdown.render(result, worst_cases=8)
    page = html.render(result)
    message = failure_message(result, cases=8)
    for text in (screen, md, page, message):
        caused_at, clean_at = _sections(text)
        assert caused_at < clean_at
        assert "[U+" in text[caused_at:clean_at]
    document = json.loads(json_report.render(result))
    worst = document["check"]["worst_cases"]
    assert [w["cause"] for w in worst] == [w.cause for w in result.worst_cases]
    assert all("[U+" in w["input_visible"] for w in worst if w["suite"] == "name-tricks")
    # a case already wrong on clean input appears only under its own heading
    clean_ids = {w.case_id for w in result.worst_cases if w.cause == "clean"}
    caused_part = message[_sections(message)[0]:_sections(message)[1]]
    assert not any(f"case {case_id}:" in caused_part for case_id in clean_ids)


def test_a_symbol_posing_as_a_letter_and_a_look_alike_answer_are_revealed(result):
    assert reveal("L\u2373ndqvist") == "L[U+2373]ndqvist"  # APL iota for i
    assert reveal("\U0001d446mith") == "[U+1D446]mith"  # mathematical italic S
    tricky = [w for w in result.worst_cases if w.suite == "name-tricks" and isinstance(w.output, str) and not w.output.isascii()]
    message = failure_message(result, cases=8)
    for w in tricky:
        assert w.output not in message and reveal(w.output) in message

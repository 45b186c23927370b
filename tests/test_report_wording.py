"""The sentences both reports share: rates of nothing are said in words, and both reports say the same."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from report_sample import stored_check
from rich.console import Console

from failpath.report import html as report_html
from failpath.report import terminal
from failpath.report.wording import catch_sentence, cost_rule


def plain(pieces) -> str:
    return "".join(text for text, _ in pieces)


def strong(pieces) -> list[str]:
    return [text for text, bold in pieces if bold]


def test_catch_sentence_with_both_rates():
    pieces = catch_sentence({"n": 40, "catch_rate": 0.9, "false_alarm_rate": 0.125, "repaired": 3})
    assert plain(pieces) == (
        "Under chaos the policy caught 90.0% of the raw system's wrong answers, with 12.5% false alarms "
        "on its right ones; 3 wrong answers were repaired by a retry or a fallback."
    )
    assert strong(pieces) == ["90.0%", "12.5%"]


def test_catch_sentence_says_when_there_was_nothing_to_count():
    no_right = plain(catch_sentence({"n": 14, "catch_rate": 0.4286, "false_alarm_rate": None, "repaired": 1}))
    assert "caught 42.9%" in no_right
    assert "no right answer under chaos, so no false alarm could be raised" in no_right
    assert "1 wrong answer was repaired" in no_right
    no_wrong = plain(catch_sentence({"n": 14, "catch_rate": None, "false_alarm_rate": 0.5, "repaired": 0}))
    assert no_wrong == (
        "Under chaos the raw system gave no wrong answer, so the policy had none to catch; "
        "it raised false alarms on 50.0% of the right ones."
    )
    for empty in (None, {}, {"n": 0, "catch_rate": None, "false_alarm_rate": None}):
        assert plain(catch_sentence(empty)).startswith("No chaos request ran")
    assert "—" not in no_right + no_wrong


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        ({"tau_answer": 0.8, "tau_clarify": 0.5, "mean_cost": 1.25},
         "answer when confidence ≥ 0.80, clarify when ≥ 0.50, else escalate (mean cost 1.25 per request on the calibration half)"),
        ({"tau_answer": 0.8, "tau_clarify": 0.8, "mean_cost": 2.0},
         "answer when confidence ≥ 0.80, else escalate (mean cost 2.00 per request on the calibration half)"),
        ({"tau_answer": None, "tau_clarify": 0.3, "mean_cost": 2.5},
         "never answer; clarify when confidence ≥ 0.30, else escalate (mean cost 2.50 per request on the calibration half)"),
        ({"tau_answer": None, "tau_clarify": None, "mean_cost": 3.0},
         "escalate every request (mean cost 3.00 per request on the calibration half)"),
        ({"tau_answer": 0.0, "tau_clarify": None}, "answer when confidence ≥ 0.00, else escalate"),
    ],
)
def test_cost_rule_in_words(cost, expected):
    assert plain(cost_rule(cost)) == expected
    assert "never," not in plain(cost_rule(cost))


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return stored_check(tmp_path_factory)[0]


def test_both_reports_print_the_shared_sentences(result):
    doc = result.to_dict()
    console = Console(record=True, width=400, force_terminal=False, color_system=None)
    terminal.render(result, console)
    text = console.export_text()
    page = report_html.render(result)
    sentence = plain(catch_sentence(doc["chaos"]))
    assert sentence in text
    shown = re.sub(r"</?strong>", "", htmllib.unescape(page))
    assert sentence in shown
    for rate in strong(catch_sentence(doc["chaos"])):
        assert f"<strong>{rate}</strong>" in page
    rule = plain(cost_rule(doc["thresholds"]["cost_policy"]))
    assert rule in text
    assert rule in shown

"""An honest ship gate: required families, severity with its own budget, and one place for waivers.

- Dropping a chaos suite never turns READY TO DEMO into READY TO SHIP: realistic, hostile and fault must
  run or be waived with a reason (``families_run``).
- Severe silent failures (severity at least the cut) are judged per family against their own budget;
  with no severity configured every wrong answer counts as severe, so leaving it out never helps.
- Severity works on more than addresses: a name parser judged by fields, the toy world by a function.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

import failpath as fp
from failpath import stats
from failpath.chaos import LabelContract, Perturbation, Suite
from failpath.chaos.base import Edit, Variant
from failpath.check import CheckResult
from failpath.check.judges import Fields, TokenLabels
from failpath.check.plan import split_cases
from failpath.check.severity import SEVERE_CUT, severity_value
from failpath.core import Case, ConfigError, Prediction
from failpath.report import html, junit, markdown
from failpath.store import open_store
from test_check_toy import FAULTS, HOSTILE, REALISTIC, SUITES, ToySystem, index_of, make_cases, toy_kwargs


def _criterion(result, name):
    return next(c for c in result.verdict.reasons if c.name == name)


def _evaluation_ids(cases, seed=7):
    return {c for c, half in split_cases(cases, seed, 0.5).items() if half == "evaluation"}


# --------------------------------------------------------------------------- required families


def test_a_run_without_chaos_suites_is_demo_and_says_how_to_add_or_waive(tmp_path):
    result = fp.check(**toy_kwargs(tmp_path, suites=[], worst_cases=0))
    families = _criterion(result, "families_run")
    assert not families.passed and not result.ship
    assert "missing: realistic, hostile, fault" in families.figure
    assert 'no fault suite ran: add one to suites, or waive it: [waive] fault = "why"' in families.detail


def test_waived_families_pass_with_their_reasons(tmp_path):
    waive = {
        "hostile": "The input comes from a fixed menu: no free text reaches the system.",
        "fault": "The system is a local function: nothing it calls can time out or fail.",
    }
    result = fp.check(**toy_kwargs(tmp_path, suites=[REALISTIC], waive=waive, worst_cases=0))
    families = _criterion(result, "families_run")
    assert families.passed, families
    assert families.figure == "1 run + 2 waived of 3 required families"
    assert "fault waived: The system is a local function" in families.detail
    assert result.budgets["waived_families"] == waive
    with pytest.raises(ConfigError, match=r"waive 'fault' needs a written reason of at least 10 characters"):
        fp.check(**toy_kwargs(tmp_path, suites=[REALISTIC], waive={"fault": "no"}))
    with pytest.raises(ConfigError, match=r"waive 'chaos' is not in the catalog .* nor a chaos family"):
        fp.check(**toy_kwargs(tmp_path, suites=[REALISTIC], waive={"chaos": "a long enough reason"}))


def test_dropping_suites_never_turns_demo_into_ship(tmp_path):
    """Every subset of the shipping run's suites: only the full set (or a waiver for each dropped family) ships."""
    verdicts = {}
    for k in range(len(SUITES) + 1):
        for subset in itertools.combinations(SUITES, k):
            label = "+".join(s.name for s in subset) or "none"
            result = fp.check(**toy_kwargs(tmp_path / label, suites=list(subset), worst_cases=0))
            verdicts[label] = result
            assert result.ship == (len(subset) == len(SUITES)), (label, result.verdict.failed)
            if len(subset) < len(SUITES):
                assert not _criterion(result, "families_run").passed, label
    assert verdicts["toy-hostile+toy-realistic+toy-fault"].ship


class WrongOnPadded(ToySystem):
    """The toy system, confidently wrong on padded (realistic) inputs: ``WRONG`` for cases 1 mod 5 (a severe
    mistake), ``ITEM N X`` for cases 2 mod 5 (a minor one)."""

    def __call__(self, text: str) -> Prediction:
        number = text.split()[-1]
        if text.startswith("  ") and number.isdigit():
            if int(number) % 5 == 1:
                return Prediction("WRONG", 0.9)
            if int(number) % 5 == 2:
                return Prediction(text.strip().upper() + " X", 0.9)
        return super().__call__(text)


def grade_toy(case: Case, output) -> str:
    """Severity of a wrong toy answer: ``WRONG`` is severe, anything else minor."""
    return "severe" if output == "WRONG" else "minor"


def grade_everything_minor(case: Case, output) -> float:
    return 0.25


def _severe_kwargs(tmp_path, **overrides):
    # Loose silent-failure budgets, so the severe budget is what decides.
    return toy_kwargs(tmp_path, system=WrongOnPadded(), cases=make_cases(100), worst_cases=0,
                      silent_failure_budget=0.8, false_alarm_budget=0.5, **overrides)


def test_adding_suites_never_turns_a_severe_failure_into_ship(tmp_path):
    share = np.mean([index_of(c) % 5 == 1 for c in _evaluation_ids(make_cases(100))])
    for label, suites in (("realistic", [REALISTIC]), ("+fault", [REALISTIC, FAULTS]), ("+all", SUITES)):
        result = fp.check(**_severe_kwargs(tmp_path / label, suites=suites, severity=grade_toy))
        severe = _criterion(result, "severe_silent_failure")
        assert not result.ship and not severe.passed, label
        realistic = next(f for f in result.severity.families if f.family == "realistic")
        assert not realistic.passed and realistic.rate == pytest.approx(share)
        assert all(f.passed for f in result.severity.families if f.family != "realistic"), label
        assert "over budget: realistic" in severe.figure
    assert {c.name for c in result.verdict.failed} == {"severe_silent_failure"}


def test_a_severity_function_grades_and_only_severe_ones_count(tmp_path):
    cases = make_cases(100)
    evaluation = _evaluation_ids(cases)
    result = fp.check(**_severe_kwargs(tmp_path, severity=grade_toy))
    sev = result.severity
    assert sev.graded_by == "function test_gate_severity.grade_toy"
    assert sev.cut == SEVERE_CUT and sev.budget == 0.15
    assert sev.severe_with_policy == sum(index_of(c) % 5 == 1 for c in evaluation)
    # The minor mistakes are silent failures, but not severe ones.
    realistic = next(f for f in result.silent_failure_families if f.family == "realistic")
    assert realistic.silent_failures == sum(index_of(c) % 5 in (1, 2) for c in evaluation)
    assert [w.output for w in sev.worst] == ["WRONG"] * len(sev.worst) and sev.worst
    assert all(w.severity == 1.0 and w.graded and w.policy == "with" for w in sev.worst)
    # Without the policy the same answers, and what the policy did with them: it let them through.
    assert sev.severe_without_policy >= sev.severe_with_policy
    assert all(w.outcome == "answered" for w in sev.worst_without_policy)
    # Grading everything minor passes the severe budget; leaving severity out cannot.
    minor = fp.check(**_severe_kwargs(tmp_path / "minor", severity=grade_everything_minor))
    assert _criterion(minor, "severe_silent_failure").passed and minor.severity.severe_with_policy == 0
    ungraded = fp.check(**_severe_kwargs(tmp_path / "none"))
    assert ungraded.severity.graded_by is None
    assert ungraded.severity.severe_with_policy == realistic.silent_failures
    assert not _criterion(ungraded, "severe_silent_failure").passed
    assert "no severity configured: every wrong answer counts as severe" in _criterion(ungraded, "severe_silent_failure").figure
    assert all(not w.graded for w in ungraded.severity.worst)


def test_a_severity_function_that_fails_counts_as_severe(tmp_path):
    def broken(case, output):
        raise KeyError("no such field")

    def out_of_range(case, output):
        return 7

    for fn in (broken, out_of_range):
        result = fp.check(**_severe_kwargs(tmp_path / fn.__name__, severity=fn))
        assert result.severity.severe_with_policy == next(
            f for f in result.silent_failure_families if f.family == "realistic").silent_failures
        assert all(not w.graded and w.severity == 1.0 for w in result.severity.worst)
    with pytest.raises(ConfigError, match="severity must be a function"):
        fp.check(**_severe_kwargs(tmp_path / "bad", severity=3))
    with pytest.raises(ConfigError, match="need a judge that grades fields or labels"):
        fp.check(**_severe_kwargs(tmp_path / "bad", severity={"zip": "severe"}))


def test_severity_values_and_labels():
    assert severity_value("severe") == 1.0 and severity_value("Minor") == 0.25 and severity_value(0.8) == 0.8
    for bad in ("awful", 1.5, -0.1, True, float("nan"), None):
        with pytest.raises(ValueError):
            severity_value(bad)
    with pytest.raises(ConfigError, match="unknown severity label 'awful'"):
        TokenLabels(severity={"ZipCode": "awful"})


def test_token_label_weights_grade_the_label_got_wrong():
    judge = TokenLabels(severity={"ZipCode": "severe", "AddressNumber": "major"})
    case = Case("a", "12 Main St 62704", [("12", "AddressNumber"), ("Main", "StreetName"), ("62704", "ZipCode")])
    assert judge.grade(case, [("12", "AddressNumber"), ("Main", "PlaceName"), ("62704", "ZipCode")]) == 0.25
    assert judge.grade(case, [("12", "AddressNumber"), ("Main", "StreetName"), ("62704", "StreetName")]) == 1.0
    assert judge.grade(case, [("13", "AddressNumber"), ("Main", "StreetName"), ("62704", "ZipCode")]) == 0.5
    assert judge.grade(case, "not pairs") == 1.0
    assert TokenLabels().grade(case, []) is None  # no weights: not graded (counted as severe by the check)
    assert TokenLabels(severity={"*": "major"}).grade(case, [("12", "AddressNumber")]) == 0.5


# --------------------------------------------------------------------------- a second domain: names

FIRST = ["Ann", "Bob", "Carl", "Dana", "Eve"]
LAST = ["Smith", "Jones", "Brown", "Lee", "Garcia", "Miller", "Davis"]


def name_cases(n: int = 120) -> list[Case]:
    return [
        Case(f"n{i:03d}", f"{LAST[i % 7]}{i}, {FIRST[i % 5]}", {"last": f"{LAST[i % 7]}{i}", "first": FIRST[i % 5]})
        for i in range(n)
    ]


def parse_name(text: str) -> dict:
    """A name parser with two kinds of mistake on input with a doubled space: a wrong last name for Ann
    (severe: the letter goes to someone else) and a dropped first name for Bob (minor: a greeting is off)."""
    last, _, first = text.partition(",")
    last, first = last.strip(), first.strip()
    if "  " in text:
        if first == "Ann":
            last = last + "X"
        elif first == "Bob":
            first = ""
    return {"last": last, "first": first}


class DoubleSpace(Perturbation):
    name = "double_space"
    family = "realistic"
    contract = LabelContract.UNCHANGED

    def apply(self, case: Case, rng: random.Random) -> Variant:
        new = case.input.replace(", ", ",  ")
        return self._variant(case, new, case.expected, [Edit(kind=self.name, before=case.input, after=new)], self.contract)


NAME_WAIVERS = {
    "hostile": "Names come from a signed-in profile form that rejects markup and control characters.",
    "fault": "The parser is a local function: it makes no call that can time out or fail.",
}


def test_field_weights_on_a_name_parser(tmp_path):
    cases = name_cases()
    result = fp.check(
        parse_name, cases, judge=Fields(severity={"last": "severe"}), suites=[Suite("names", "realistic", (DoubleSpace(),))],
        waive=NAME_WAIVERS, seed=7, store=tmp_path / "s.db", quiet=True, worst_cases=0,
        silent_failure_budget=0.5, severe_silent_failure_budget=0.5, false_alarm_budget=0.5,
    )
    evaluation = _evaluation_ids(cases)
    sev = result.severity
    assert sev.graded_by == "fields weights: last 1; others 0.25"
    assert sev.severe_with_policy == sum(int(c[1:]) % 5 == 0 for c in evaluation)  # Ann: i % 5 == 0
    realistic = next(f for f in result.silent_failure_families if f.family == "realistic")
    assert realistic.silent_failures == sum(int(c[1:]) % 5 in (0, 1) for c in evaluation)
    assert sev.worst and all(w.output["last"].endswith("X") and w.severity == 1.0 for w in sev.worst)
    assert _criterion(result, "families_run").passed
    # The same run graded by a function of the case and output gives the same severe count.
    by_function = fp.check(
        parse_name, cases, judge="fields", suites=[Suite("names", "realistic", (DoubleSpace(),))], waive=NAME_WAIVERS,
        seed=7, store=tmp_path / "f.db", quiet=True, worst_cases=0, silent_failure_budget=0.5,
        severe_silent_failure_budget=0.5, false_alarm_budget=0.5,
        severity=lambda case, output: "severe" if output["last"] != case.expected["last"] else "minor",
    )
    assert by_function.severity.severe_with_policy == sev.severe_with_policy


# --------------------------------------------------------------------------- too few cases, reports, store


def test_too_few_cases_say_how_many_are_needed(tmp_path):
    result = fp.check(**toy_kwargs(tmp_path, severe_silent_failure_budget=0.005, worst_cases=0))
    severe = _criterion(result, "severe_silent_failure")
    assert not severe.passed and not result.ship
    assert "20 cases cannot show a rate under 0.50%; need at least 598" in severe.detail
    text = markdown.render(result)
    assert "No severe silent failure got through the policy" in text
    assert "too few cases to show the budget: clean (20 cases of the 598 needed), realistic (20 cases of the 598 needed)" in text
    assert stats.cases_needed(0.005) == 598 and stats.cases_needed(0.02) == 149 and stats.cases_needed(0.15) == 19
    for budget in (0.3, 0.02, 0.005, 0.001):
        n = stats.cases_needed(budget, 0.9)
        assert stats.case_rate_upper_bound(np.ones(n), np.zeros(n), 0.9).bound <= budget
        assert stats.case_rate_upper_bound(np.ones(n - 1), np.zeros(n - 1), 0.9).bound > budget


def test_every_report_answers_the_worst_thing_and_the_store_rebuilds_it(tmp_path):
    result = fp.check(**_severe_kwargs(tmp_path, severity=grade_toy))
    with open_store(tmp_path / "store.db") as store:
        stored = CheckResult.from_dict(store.get_run(result.run_id)["summary"])
    assert stored.severity == result.severity
    text = markdown.render(stored)
    assert "### The worst thing it can do" in text and "severe silent failures got through the policy" in text
    assert "Severity graded by function test\\_gate\\_severity.grade\\_toy" in text
    assert "WRONG" in text and "the policy let it through" in text
    page = html.render(stored)
    assert 'id="worst-thing"' in page and "severe silent failures got through the policy" in page
    xml = junit.render(stored)
    assert "The worst thing it can do:" in xml
    from typer.testing import CliRunner

    from failpath.cli import app

    out = tmp_path / "rebuilt.md"
    done = CliRunner().invoke(app, ["report", result.run_id, "--store", str(tmp_path / "store.db"), "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert "### The worst thing it can do" in out.read_text(encoding="utf-8")
    shown = CliRunner().invoke(app, ["report", result.run_id, "--store", str(tmp_path / "store.db")], env={"COLUMNS": "200"})
    assert "The worst thing it can do" in shown.output and "severe silent failures got through the policy" in shown.output
    clean = fp.check(**toy_kwargs(tmp_path / "clean", worst_cases=0))
    assert "No severe silent failure got through the policy" in markdown.render(clean)
    assert "No severity is configured, so every wrong answer counts as severe" in markdown.render(clean)


def test_the_address_example_declares_what_is_severe():
    from failpath.examples.addresses import SEVERITY, check_kwargs

    kwargs = check_kwargs(n=3)
    assert kwargs["severity"] is SEVERITY and SEVERITY["ZipCode"] == "severe"
    judge = TokenLabels(severity=SEVERITY)
    expected = [("12", "AddressNumber"), ("Main", "StreetName"), ("St", "StreetNamePostType"),
                ("Springfield", "PlaceName"), ("IL", "StateName"), ("62704", "ZipCode")]
    case = Case("a", "12 Main St Springfield IL 62704", expected)
    wrong_zip = [*expected[:5], ("62704", "OccupancyIdentifier")]
    wrong_suffix = [expected[0], expected[1], ("St", "StreetName"), *expected[3:]]
    wrong_town = [*expected[:3], ("Springfield", "StreetName"), *expected[4:]]
    assert judge.grade(case, wrong_zip) == 1.0
    assert judge.grade(case, wrong_town) == 1.0  # labelled StreetName: a severe label it got wrong on that token
    assert judge.grade(case, [*expected[:3], ("Springfield", "LandmarkName"), *expected[4:]]) == 0.5
    assert judge.grade(case, wrong_suffix) == 1.0  # St taken into the street name: StreetName is wrong too
    assert judge.grade(case, [*expected[:2], ("St", "OccupancyType"), *expected[3:]]) == 0.25


def test_failpath_toml_takes_a_severity_function_or_weights_and_the_severe_budget(tmp_path):
    from failpath.check.config import check_kwargs, load_config
    from ci_project import write_project

    config = write_project(tmp_path)
    text = config.read_text(encoding="utf-8")
    top = 'severity = "test_gate_severity:grade_toy"\n'
    config.write_text(top + text.replace("severe_silent_failure = 0.15", "severe_silent_failure = 0.2"), encoding="utf-8")
    kwargs = check_kwargs(load_config(config))
    assert kwargs["severity"] is grade_toy and kwargs["severe_silent_failure_budget"] == 0.2
    config.write_text('severity = { last = "severe", first = 0.3 }\n' + text, encoding="utf-8")
    assert check_kwargs(load_config(config))["severity"] == {"last": "severe", "first": 0.3}
    for bad, message in (
        ('severity = "test_gate_severity:nothing_here"\n', r"failpath\.toml:1: severity = .*has no attribute 'nothing_here'"),
        ('severity = { last = "awful" }\n', r"failpath\.toml:1: severity = .*unknown severity label 'awful'"),
        ('severity = "no colon"\n', r"failpath\.toml:1: severity = 'no colon': must be 'module:attr'"),
    ):
        config.write_text(bad + text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            check_kwargs(load_config(config))


def test_a_declared_mix_judges_severe_failures_on_the_weighted_rate(tmp_path):
    result = fp.check(**_severe_kwargs(tmp_path, severity=grade_toy, mix={"clean": 0.9, "realistic": 0.1}))
    by_family = {f.family: f for f in result.severity.families}
    assert set(by_family) == {"hostile", "fault", "mix"}
    mix = by_family["mix"]
    assert mix.weights == {"clean": 0.9, "realistic": 0.1} and mix.confidence == pytest.approx(1 - 0.05 / 2)
    share = np.mean([index_of(c) % 5 == 1 for c in _evaluation_ids(make_cases(100))])
    assert mix.rate == pytest.approx(0.1 * share)  # clean has no severe failure
    assert mix.budget == pytest.approx(0.15)

"""The JSON report document (failpath.report/1) built from a real check result."""

from __future__ import annotations

import json
import math
import re

import pytest
from report_sample import stored_check

from failpath.report import json_report
from failpath.report.json_report import REPORT_SCHEMA, ReportError
from failpath.store import open_store


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return stored_check(tmp_path_factory)[0]


def test_document_wraps_the_check_result_untouched(result):
    document = json_report.build_report(result)
    assert document["schema"] == REPORT_SCHEMA
    assert document["check"] == result.to_dict()
    assert json_report.build_report(result.to_dict()) == document
    assert json_report.build_report(document) == document  # a report document is returned as it is


def test_document_rebuilt_from_the_store_is_the_same(tmp_path_factory):
    result, store = stored_check(tmp_path_factory)
    with open_store(store) as opened:
        summary = opened.get_run(result.run_id)["summary"]
    assert json_report.build_report(summary) == json_report.build_report(result)


def test_accuracy_rows_carry_exact_intervals(result):
    rows = json_report.build_report(result)["accuracy"]
    assert rows[0]["label"] == "clean"
    assert rows[0]["accuracy"] == pytest.approx(result.clean.accuracy)
    labelled = {(r["suite"], r["perturbation"]) for r in rows[1:]}
    assert labelled == {(g.suite, g.perturbation) for g in result.groups if g.accuracy is not None and g.n}
    for row in rows:
        assert 0.0 <= row["low"] <= row["accuracy"] <= row["high"] <= 1.0
        assert row["n"] > 0
    # An interval on n requests narrows as n grows: the suite row is narrower than any of its perturbations.
    suite = next(r for r in rows if r["suite"] == "hostile" and r["perturbation"] is None)
    parts = [r for r in rows if r["suite"] == "hostile" and r["perturbation"]]
    assert all(suite["high"] - suite["low"] <= r["high"] - r["low"] + 1e-9 for r in parts)


def test_outcome_mix_adds_up_for_every_group(result):
    mix = json_report.build_report(result)["outcome_mix"]
    assert [row["group"] for row in mix[:4]] == ["chaos", "chaos", "clean", "clean"]
    assert [row["policy"] for row in mix[:2]] == [False, True]
    for row in mix:
        assert sum(row["counts"].values()) == row["n"]
    chaos_without = mix[0]
    figures = result.chaos.without_policy
    assert chaos_without["counts"]["silent_failure"] == figures.silent_failures
    assert chaos_without["counts"]["error"] == figures.escaped
    chaos_with = mix[1]
    assert chaos_with["counts"]["right"] == result.chaos.with_policy.answered - result.chaos.with_policy.silent_failures


def test_json_text_is_strict_json(result, tmp_path):
    text = json_report.render(result)
    document = json.loads(text)
    assert document["schema"] == REPORT_SCHEMA
    path = json_report.write(result, tmp_path / "out" / "report.json")
    assert json.loads(path.read_text(encoding="utf-8")) == document

    def finite(value):
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, dict):
            return all(finite(v) for v in value.values())
        if isinstance(value, list):
            return all(finite(v) for v in value)
        return True

    assert finite(document)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"schema": "failpath.check/0"}, "schema is 'failpath.check/0'"),
        ({"verdict": {}}, "schema is None"),
        ({"schema": REPORT_SCHEMA, "check": {"schema": "other"}}, "schema is 'other'"),
        ([1, 2], "got list"),
    ],
)
def test_a_document_that_is_not_a_check_result_is_refused(bad, message):
    with pytest.raises(ReportError) as info:
        json_report.build_report(bad)
    assert message in str(info.value)


def test_every_field_is_documented(result):
    """docs/report-schema.md names every field of both documents: a new field without docs fails here."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "report-schema.md").read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", doc, flags=re.DOTALL)
    named = {part.strip("[]") for quoted in re.findall(r"`([^`]+)`", prose) for part in quoted.split(".")}
    document = json_report.build_report(result)
    check = document["check"]
    fields = set(document) | set(check)
    fields |= set(document["accuracy"][0]) | set(document["outcome_mix"][0])
    fields |= set(check["clean"]) | set(check["clean"]["with_policy"]) | set(check["confidence"])
    fields |= set(check["states"][0]) | set(check["thresholds"]) | set(check["verdict"])
    fields |= set(check["worst_cases"][0]) | set(check["worst_cases"][0]["reproduction"] or {})
    fields |= set(check["curves"]["risk_coverage"]) | set(check["curves"]["reliability"]["bins"][0])
    fields |= set(check["baseline"]) | set(check["budgets"]) | set(check["config"])
    missing = sorted(f for f in fields if f not in named)
    assert not missing, f"fields missing from docs/report-schema.md: {missing}"

"""Figures per case tag: measured as the verdict measures the run, and shown by every report."""

from __future__ import annotations

import csv
import html as htmllib
import io
import json
from collections import defaultdict

import pytest
from report_sample import TAG_PAYLOAD, capitals, tagged_cases, tagged_check

import failpath as fp
from failpath import stats
from failpath.check.result import CheckResult
from failpath.core import Case
from failpath.report import html as report_html
from failpath.report import json_report, markdown, terminal
from failpath.report.rows import read_request_rows, render_csv


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    result, store = tagged_check(tmp_path_factory)
    return result, read_request_rows(store, result.run_id)


def _by_tag(result):
    return {t.tag: t for t in result.tags}


def test_every_tag_of_the_cases_has_figures(tagged):
    result, _ = tagged
    assert set(_by_tag(result)) == {"plain", "even", "odd", "payload", TAG_PAYLOAD}
    assert [t.tag for t in result.tags] == sorted(t.tag for t in result.tags)


def test_counts_and_bounds_are_those_of_the_tag_cases_rows(tagged):
    """Recomputed here from the stored rows: per family, each case's share of silent failures, bounded over cases."""
    result, rows = tagged
    level = 1 - result.budgets["delta"]
    for tag, figures in _by_tag(result).items():
        mine = [r for r in rows if tag in r["tags"] and r["split"] == "evaluation"]
        assert figures.n == len(mine) > 0
        assert figures.silent_failures == sum(bool(r["silent_failure"]) for r in mine)
        assert figures.n_cases == len({r["case_id"] for r in mine})
        for family in figures.families:
            per_case = defaultdict(lambda: [0, 0])
            for r in mine:
                if r["family"] == family.family:
                    per_case[r["case_id"]][0] += 1
                    per_case[r["case_id"]][1] += bool(r["silent_failure"])
            requests, silent = zip(*per_case.values())
            bound = stats.case_rate_upper_bound(list(requests), list(silent), level)
            assert (family.n, family.n_cases, family.silent_failures) == (sum(requests), len(per_case), sum(silent))
            assert family.rate == pytest.approx(bound.estimate) and family.upper == pytest.approx(bound.bound)
            assert family.passed == (family.upper <= family.budget)
        refusal = figures.over_refusal
        right = [r for r in mine if r["family"] == "realistic" and r["right_without_policy"]]
        assert refusal is not None and refusal.n == len(right)
        assert refusal.refused == sum(r["outcome"] in ("clarify", "escalated", "abstained", "defaulted") for r in right) > 0
    plain, payload = _by_tag(result)["plain"], _by_tag(result)["payload"]
    total = result.clean.with_policy.silent_failures + result.chaos.with_policy.silent_failures
    assert plain.silent_failures + payload.silent_failures == total  # the two tags split the cases


def test_a_tag_on_every_case_has_the_runs_own_figures(tmp_path):
    cases = [Case(id=c.id, input=c.input, expected=c.expected, tags=("every",)) for c in tagged_cases()]
    policy = fp.Policy("unsure-abstains", rules=[
        fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("unsure")), fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
    ])
    result = fp.check(capitals, cases, policy=policy, suites=["realistic"], store=tmp_path / "s.db", quiet=True,
                      worst_cases=0, calibration_share=0.25)
    [every] = result.tags
    assert every.families == result.silent_failure_families
    run = result.over_refusal
    assert (every.over_refusal.n, every.over_refusal.refused, every.over_refusal.rate, every.over_refusal.upper) == (
        run.n, run.refused, run.rate, run.upper)


def test_without_tags_no_figures_and_no_section(tmp_path):
    cases = [Case(id=f"w{i}", input=f"w {i}", expected=f"W {i}") for i in range(6)]
    result = fp.check(capitals, cases, suites=["realistic"], store=tmp_path / "s.db", quiet=True, worst_cases=0)
    assert result.tags == ()
    assert 'id="tags"' not in report_html.render(result)
    assert "### Per tag" not in markdown.render(result)
    assert "Per tag" not in _terminal(result)


def test_the_result_document_keeps_the_tag_figures(tagged):
    result, _ = tagged
    document = json.loads(json_report.render(result))
    assert [t["tag"] for t in document["check"]["tags"]] == [t.tag for t in result.tags]
    assert CheckResult.from_dict(result.to_dict()).tags == result.tags


def _terminal(result) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    terminal.render(result, Console(file=buffer, width=160, no_color=True))
    return buffer.getvalue()


def _pct(x):
    return f"{100 * x:.2f}%"


def test_terminal_markdown_and_html_show_every_tag_with_its_figures(tagged):
    result, rows = tagged
    text = _terminal(result)
    page = report_html.render(result)
    summary = markdown.render(result)
    section = page[page.index('<section id="tags">'):]
    section = section[: section.index("</section>")]
    assert "### Per tag" in summary
    for tag in result.tags:
        hostile = next(f for f in tag.families if f.family == "hostile")
        figure = f"{_pct(hostile.rate)} ≤ {_pct(hostile.upper)}"
        refusal = f"{_pct(tag.over_refusal.rate)} ≤ {_pct(tag.over_refusal.upper)}"
        line = next(line for line in summary.splitlines() if line.startswith("| ") and f"| {tag.n:,} |" in line
                    and (tag.tag in line or "PWNED" in tag.tag and "PWNED" in line))
        assert figure in line and refusal in line
        assert figure in section and refusal in section
        assert figure in text and refusal in text
    # The hostile tag is text everywhere: escaped in the page and in the Markdown, never markup.
    assert TAG_PAYLOAD not in section and TAG_PAYLOAD in htmllib.unescape(section)
    assert "<img" not in summary


def test_csv_rows_carry_the_tags(tagged):
    _, rows = tagged
    records = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert {r["tags"] for r in records} == {json.dumps(list(t), ensure_ascii=False) for t in
                                            (("plain", "even"), ("plain", "odd"), ("payload", TAG_PAYLOAD))}

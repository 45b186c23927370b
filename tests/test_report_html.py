"""The HTML report: what it shows, that it escapes everything, and that it references nothing outside itself."""

from __future__ import annotations

import copy
import html as htmllib
import re

import pytest
from report_sample import NAME, PAYLOADS, stored_check

from failpath.report import charts
from failpath.report import html as report_html
from failpath.report.html import token_table


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return stored_check(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def page(result):
    return report_html.render(result)


def test_page_shows_the_verdict_tables_and_worst_cases(result, page):
    assert result.verdict.label in page
    for criterion in result.verdict.reasons:
        assert criterion.name in page
    for state in result.states:
        assert f'<td class="mono">{state.state}</td>' in page
    for worst in result.worst_cases:
        assert htmllib.escape(worst.case_id) in page
    for group in result.groups:
        if group.perturbation:
            assert group.perturbation in page
    # The failed criteria come first, right under the banner.
    first = page.index('<tr class="fail">') if not result.ship else None
    assert first is None or first < page.index('<tr class="pass">')


def test_every_payload_is_shown_as_text_never_as_markup(page):
    text = htmllib.unescape(page)
    for payload in PAYLOADS:
        assert payload not in page
    # The payloads are there, as text: the worst cases show them.
    assert sum(payload in text for payload in PAYLOADS) >= 2
    assert NAME in text and NAME not in page
    assert "<script" not in page.lower()
    assert "<iframe" not in page.lower()
    # No element carries an event handler attribute.
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", page, flags=re.IGNORECASE)


def test_page_references_nothing_outside_itself(page):
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None
    policy = htmllib.unescape(csp.group(1))
    assert "default-src 'none'" in policy and "script-src 'none'" in policy and "connect-src 'none'" in policy
    assert not re.search(r"https?://", page)
    assert "@import" not in page
    for match in re.finditer(r"url\(([^)]*)\)", page):
        assert match.group(1).strip("'\" ").startswith(("data:", "#")), match.group(0)
    for match in re.finditer(r"\s(?:src|href|srcset|action|poster|xlink:href)\s*=\s*\"([^\"]*)\"", page):
        assert match.group(1).startswith(("data:", "#")), match.group(0)


def test_page_has_the_four_charts_inline(page):
    assert page.count('class="chart"') == 4
    for name in ("accuracy", "risk-coverage", "reliability", "outcome-mix"):
        assert f'aria-label="{name}"' in page
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_without_curves_the_confidence_charts_are_left_out(result):
    document = copy.deepcopy(result.to_dict())
    document["curves"] = {}
    page = report_html.render(document)
    assert 'aria-label="risk-coverage"' not in page
    assert 'aria-label="reliability"' not in page
    assert 'aria-label="accuracy"' in page


def test_invisible_characters_are_made_visible():
    marked = report_html.show("a\u200bb\u202ec\x00d")
    assert "⟨U+200B⟩" in marked and "⟨U+202E⟩" in marked and "⟨U+0000⟩" in marked
    assert "\u200b" not in marked and "\x00" not in marked


def test_long_values_are_cut():
    shown = report_html.show("x" * 5000)
    assert "more characters" in shown
    assert shown.count("x") < 2000


def test_token_table_marks_wrong_labels_and_escapes_tokens():
    output = [("12", "AddressNumber"), ("<b>Main</b>", "PlaceName")]
    expected = [("12", "AddressNumber"), ("<b>Main</b>", "StreetName")]
    table = str(token_table(output, expected))
    assert table.count('class="tok bad"') == 1
    assert "&lt;b&gt;Main&lt;/b&gt;" in table and "<b>" not in table
    assert "StreetName" in table and "PlaceName" in table
    uneven = str(token_table(output, expected[:1]))
    assert "2 tokens" in uneven and "1 tokens" in uneven and "tok bad" not in uneven
    assert token_table("not pairs", expected) is None


def test_chart_text_is_escaped():
    svg = charts.accuracy_chart([{"label": "<script>alert(1)</script>", "accuracy": 0.5, "low": 0.4, "high": 0.6}])
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert svg.startswith("<svg") and "http" not in svg


def test_write_creates_the_file(result, tmp_path):
    path = report_html.write(result, tmp_path / "a" / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

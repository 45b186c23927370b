"""The HTML report's list of every failing case in a real browser: headless Chromium (Debian's package)
driven by Playwright. Search, each filter, paging and the drill-down work; a payload in a case's input,
output or tag runs nothing; the page's policy is never violated and the page fetches nothing.

Skipped, naming what is missing, without Chromium (``apt-get install chromium``) or Playwright's Python
package (``pip install playwright``; no browser download: it drives /usr/bin/chromium).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from report_sample import TAG_PAYLOAD, tagged_check

from failpath.report import case_list
from failpath.report import html as report_html
from failpath.report.rows import read_request_rows

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("FAILPATH_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGE_SIZE = 50


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("headless Chromium is not installed: apt-get install chromium (Debian's package)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright: pip install playwright")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    result, store = tagged_check(tmp_path_factory)
    rows = read_request_rows(store, result.run_id)
    path = report_html.write(result, tmp_path_factory.mktemp("cases-browser") / "report.html", rows)
    return path, case_list.build_case_list(lambda: rows)


class Opened:
    """A page of the report, with what the browser reported while showing it."""

    def __init__(self, page, problems, requests):
        self.page, self.problems, self.requests = page, problems, requests

    def count(self) -> int:
        """How many listed requests the page says match (its "N of M listed requests match" line)."""
        return int(self.page.inner_text("#fp-count").split(" of ")[0].replace(",", ""))


@pytest.fixture
def opened(browser, report):
    path, _ = report
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: problems.append(f"{message.type}: {message.text}") if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_selector("#fp-rows tr")
    yield Opened(page, problems, requests)
    context.close()


def _listed(data):
    return data["rows"][: data["listed"]]


def _field(data, row, name):
    return row[data["fields"].index(name)]


def _text(data, row, name):
    """A row's text as the page shows it: a left-out value (null) is the one it equals (case_list.ROW_FIELDS)."""
    if name == "expected":
        value = _field(data, row, "expected")
        return data["cases"][_field(data, row, "case")][2] if value is None else value
    if name == "raw_output":
        value = _field(data, row, "raw_output")
        return _text(data, row, "expected") if value is None else value
    if name == "output":
        value = _field(data, row, "output")
        return _text(data, row, "raw_output") if value is None else value
    return _field(data, row, name)


def _expected(data, keep):
    return sum(1 for row in _listed(data) if keep(row))


def test_the_list_opens_on_silent_failures_and_changed_answers_with_no_policy_violation(opened, report):
    _, data = report
    assert opened.page.is_visible("#fp-cases") and not opened.page.is_visible("#fp-cases-static")
    assert opened.count() == _expected(data, lambda r: _field(data, r, "kinds") & 3) > PAGE_SIZE
    assert opened.page.locator("#fp-rows tr").count() == PAGE_SIZE
    assert opened.problems == []  # no CSP violation, no script error
    assert opened.requests == [report[0].as_uri()]  # nothing fetched


def test_paging_walks_every_match(opened):
    total = opened.count()
    pages = -(-total // PAGE_SIZE)
    assert opened.page.inner_text("#fp-page") == f"page 1 of {pages}"
    assert opened.page.is_disabled("#fp-prev")
    seen = opened.page.locator("#fp-rows tr").count()
    for number in range(2, pages + 1):
        opened.page.click("#fp-next")
        assert opened.page.inner_text("#fp-page") == f"page {number} of {pages}"
        seen += opened.page.locator("#fp-rows tr").count()
    assert seen == total and opened.page.is_disabled("#fp-next")
    opened.page.click("#fp-prev")
    assert opened.page.inner_text("#fp-page") == f"page {pages - 1} of {pages}"


@pytest.mark.parametrize("kind", ["silent", "changed", "refused", "caught"])
def test_the_kind_filter(opened, report, kind):
    _, data = report
    bit = dict((name, bit) for name, bit, _ in case_list.KINDS)[kind]
    opened.page.select_option("#fp-kind", str(bit))
    assert opened.count() == _expected(data, lambda r: _field(data, r, "kinds") & bit) > 0


def test_the_suite_perturbation_state_and_tag_filters(opened, report):
    _, data = report
    page = opened.page
    page.select_option("#fp-kind", "all")
    assert opened.count() == data["listed"]
    page.select_option("#fp-suite", "realistic")
    in_suite = _expected(data, lambda r: data["suites"][_field(data, r, "suite")] == "realistic")
    assert 0 < opened.count() == in_suite < data["listed"]
    page.select_option("#fp-suite", "")
    perturbation = data["perturbations"][_field(data, _listed(data)[0], "perturbation")]
    page.select_option("#fp-perturbation", perturbation)
    assert 0 < opened.count() == _expected(data, lambda r: data["perturbations"][_field(data, r, "perturbation")] == perturbation)
    page.select_option("#fp-perturbation", "")
    page.select_option("#fp-state", "low_confidence")
    assert 0 < opened.count() == _expected(data, lambda r: _field(data, r, "state") == "low_confidence")
    page.select_option("#fp-state", "")
    for tag in ("even", "payload", TAG_PAYLOAD):
        page.select_option("#fp-tag", tag)
        assert 0 < opened.count() == _expected(data, lambda r: tag in data["cases"][_field(data, r, "case")][1])
    page.select_option("#fp-state", "low_confidence")  # filters combine
    assert opened.count() == _expected(
        data, lambda r: TAG_PAYLOAD in data["cases"][_field(data, r, "case")][1] and _field(data, r, "state") == "low_confidence"
    )
    assert opened.problems == []


def test_search_matches_case_ids_inputs_and_outputs(opened, report):
    _, data = report
    page = opened.page
    page.select_option("#fp-kind", "all")
    page.fill("#fp-q", "word-7")
    ids = {data["cases"][_field(data, r, "case")][0] for r in _listed(data)}
    assert opened.count() == _expected(data, lambda r: "word-7" in data["cases"][_field(data, r, "case")][0]) > 0
    assert {"word-7"} <= ids
    page.fill("#fp-q", "PWNED-SVG")  # case-insensitive, inside the hostile inputs
    assert 0 < opened.count() == _expected(
        data, lambda r: any("pwned-svg" in _text(data, r, f).lower() for f in ("input", "expected", "raw_output", "output"))
    )
    page.fill("#fp-q", "no such text anywhere")
    assert opened.count() == 0 and opened.page.locator("#fp-rows tr").count() == 0
    assert page.inner_text("#fp-page") == "page 1 of 1"


def test_the_drill_down_shows_every_variant_of_the_case(opened, report):
    _, data = report
    page = opened.page
    page.fill("#fp-q", "payload-1")
    page.locator("#fp-rows button").first.click()
    assert page.is_visible("#fp-case")
    index = next(i for i, case in enumerate(data["cases"]) if case[0] == "payload-1")
    variants = [r for r in data["rows"] if _field(data, r, "case") == index]
    assert page.inner_text("#fp-case-title") == f"Case payload-1: all {len(variants)} requests"
    assert page.locator("#fp-case-rows tr").count() == len(variants)
    shown = page.locator("#fp-case-rows tr td:first-child").all_inner_texts()
    assert sorted(shown) == sorted(
        f"{data['suites'][_field(data, r, 'suite')]} / {data['perturbations'][_field(data, r, 'perturbation')]}"
        f" #{_field(data, r, 'variant')} ({_field(data, r, 'split')})" for r in variants
    )
    assert any(s.startswith("clean / none") for s in shown)
    outcomes = page.locator("#fp-case-rows tr td:nth-child(6)").all_inner_texts()
    assert sorted(outcomes) == sorted(_field(data, r, "outcome") for r in variants)
    assert TAG_PAYLOAD in page.inner_text("#fp-case-tags")
    page.click("#fp-case-close")
    assert not page.is_visible("#fp-case")


def test_no_payload_runs(opened):
    page = opened.page
    page.select_option("#fp-kind", "all")
    page.fill("#fp-q", "pwned")
    assert opened.count() > 0
    for button in page.locator("#fp-rows button").all()[:5]:
        button.click()
    page.select_option("#fp-tag", TAG_PAYLOAD)
    page.wait_for_timeout(300)
    assert "PWNED" not in page.title()
    assert page.evaluate("document.querySelectorAll('#fp-cases img, #fp-cases svg, #fp-cases iframe, #fp-cases script').length") == 0
    assert "<script>document.title='PWNED-script'</script>" in page.inner_text("#fp-rows")  # shown as text
    assert opened.problems == []


def test_the_harness_sees_a_policy_violation(browser, tmp_path):
    """Control: a script the policy does not allow is refused, and that refusal is seen."""
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        "<!DOCTYPE html><meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'sha256-AAAA'\">"
        "<title>clean</title><script>document.title = 'ran'</script>", encoding="utf-8",
    )
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(page_file.as_uri())
    page.wait_for_timeout(200)
    assert page.title() == "clean"
    assert any("Content Security Policy" in p for p in problems)
    context.close()

"""Every failing case in the HTML report: which requests are listed, how they are embedded, the page's policy."""

from __future__ import annotations

import base64
import hashlib
import html as htmllib
import json
import re

import pytest
from report_sample import TAG_PAYLOAD, tagged_check, without_own_scripts

from failpath.report import case_list, outputs
from failpath.report import html as report_html
from failpath.report.rows import read_request_rows


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    result, store = tagged_check(tmp_path_factory)
    return result, store, read_request_rows(store, result.run_id)


@pytest.fixture(scope="module")
def data(tagged):
    return case_list.build_case_list(lambda: tagged[2])


def _field(data, row, name):
    return row[data["fields"].index(name)]


def test_every_silent_failure_and_refusal_is_listed(tagged, data):
    _, _, rows = tagged
    listed = data["rows"][: data["listed"]]
    assert data["counts"]["silent"] == sum(bool(r["silent_failure"]) for r in rows) > 0
    assert data["counts"]["refused"] == sum(
        r["outcome"] in ("clarify", "escalated", "abstained", "defaulted") and r["right_without_policy"] for r in rows
    ) > 0
    assert data["counts"]["caught"] > 0
    assert all(_field(data, row, "kinds") for row in listed)
    assert not any(_field(data, row, "kinds") for row in data["rows"][data["listed"]:])
    # Silent failures come first, most confident first.
    silent = [r for r in listed if _field(data, r, "kinds") & 1]
    assert listed[: len(silent)] == silent
    confidences = [_field(data, r, "confidence") or -1.0 for r in silent]
    assert confidences == sorted(confidences, reverse=True)


def test_changed_hostile_answers_are_the_ones_the_verdict_counts(tagged, data):
    result, _, _ = tagged
    criterion = next(c for c in result.verdict.reasons if c.name == "hostile_answers_stable")
    counted = int(criterion.figure.split()[0])  # "N changed answers in M answered hostile inputs" (exact judge)
    assert counted > 0 and data["evaluation_counts"]["changed"] == counted


def test_a_listed_case_carries_every_one_of_its_variants_and_its_tags(tagged, data):
    _, _, rows = tagged
    for index, (case_id, tags, _) in enumerate(data["cases"]):
        mine = [r for r in data["rows"] if _field(data, r, "case") == index]
        stored = [r for r in rows if r["case_id"] == case_id]
        assert len(mine) == len(stored)
        assert tags == stored[0]["tags"]
    assert any(TAG_PAYLOAD in tags for _, tags, _ in data["cases"])


def test_left_out_values_are_the_ones_they_equal(tagged, data):
    """A null expected is the case's, a null raw output the row's expected, a null output the raw output."""
    from failpath.report.terminal import visible

    _, _, rows = tagged
    by_key = {(r["case_id"], r["suite"], r["perturbation"], r["variant"]): r for r in rows}
    left_out = 0
    for row in data["rows"]:
        case_id, _, case_expected = data["cases"][_field(data, row, "case")]
        stored = by_key[(case_id, data["suites"][_field(data, row, "suite")],
                         data["perturbations"][_field(data, row, "perturbation")], _field(data, row, "variant"))]
        limit = case_list.LISTED_CHARS if _field(data, row, "kinds") else case_list.CONTEXT_CHARS
        expected = _field(data, row, "expected")
        expected = case_expected if expected is None else expected
        raw = _field(data, row, "raw_output")
        raw = expected if raw is None else raw
        output = _field(data, row, "output")
        left_out += output is None
        output = raw if output is None else output
        assert expected == visible(stored["expected"], case_list.LISTED_CHARS if _field(data, row, "expected") is None else limit)
        assert raw in (visible(stored["raw_output"], limit), visible(stored["raw_output"], case_list.LISTED_CHARS))
        assert output in (visible(stored["output"], limit), visible(stored["output"], case_list.LISTED_CHARS))
    assert left_out > 0


def _record(case_id, suite, family, output, *, right, contract="unchanged", expected="B"):
    return {"case_id": case_id, "suite": suite, "family": family, "perturbation": "p" if suite != "clean" else "none",
            "variant": 0, "contract": contract, "split": "evaluation", "tags": [], "input_preview": "x",
            "expected": expected, "raw_output": output, "raw_confidence": 0.9, "raw_error": None,
            "right_without_policy": right, "outcome": "answered", "state": None, "output": output, "confidence": 0.9,
            "degraded": False, "right_with_policy": right, "silent_failure": not right, "key": f"{suite}/{case_id}"}


def test_a_case_listed_only_by_a_changed_answer_seen_before_its_clean_row():
    """With a lenient judge a hostile answer can be right and still differ from the clean one: listed as changed."""
    rows = [
        _record("changed", "hostile", "hostile", "B", right=True),
        _record("steady", "hostile", "hostile", "B", right=True),
        _record("changed", "clean", "clean", "b", right=True),  # the judge took "b" for "B"
        _record("steady", "clean", "clean", "B", right=True),
    ]
    data = case_list.build_case_list(lambda: rows)
    assert [case[0] for case in data["cases"]] == ["changed"]
    assert [_field(data, r, "kinds") for r in data["rows"][: data["listed"]]] == [2]
    assert data["counts"]["changed"] == 1 and len(data["rows"]) == 2  # its clean row is in the drill-down


def test_embedded_json_cannot_close_its_element_and_reads_back_the_same():
    hostile = {"a": "</script><script>alert(1)</script><!-- & \u2028\u2029 -->"}
    text = case_list.embed(hostile)
    for forbidden in ("<", ">", "&", "\u2028", "\u2029"):
        assert forbidden not in text
    assert json.loads(text) == hostile


def test_row_kinds_of_one_request():
    clean = {"c": (True, "ANSWER", True)}
    base = {"case_id": "c", "family": "hostile", "outcome": "answered", "contract": "unchanged", "output": "ANSWER"}
    assert case_list.row_kinds(base, clean) == 0
    assert case_list.row_kinds({**base, "output": "OTHER", "silent_failure": True}, clean) == 1 | 2
    assert case_list.row_kinds({**base, "contract": "transformed", "output": "X", "right_with_policy": False}, clean) == 2
    assert case_list.row_kinds({**base, "contract": "transformed", "output": "X", "right_with_policy": True}, clean) == 0
    assert case_list.row_kinds({**base, "outcome": "abstained", "right_without_policy": True}, clean) == 4
    assert case_list.row_kinds({**base, "outcome": "escalated", "right_without_policy": False}, clean) == 8
    assert case_list.row_kinds({**base, "outcome": "escaped"}, clean) == 16
    assert case_list.row_kinds({**base, "output": "OTHER"}, None) == 0  # no clean answers: nothing "changed"


@pytest.fixture(scope="module")
def page(tagged):
    result, _, rows = tagged
    return report_html.render(result, rows)


def test_the_page_allows_exactly_its_own_script_by_hash(page):
    policy = htmllib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1))
    digest = base64.b64encode(hashlib.sha256(report_html.case_script().encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "default-src 'none'" in policy and "connect-src 'none'" in policy
    rest = without_own_scripts(page)  # asserts the data and the script are there, once each
    assert "<script" not in rest.lower() and "<iframe" not in rest.lower()
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", rest, flags=re.IGNORECASE)


def test_the_script_builds_the_page_with_text_only():
    script = report_html.case_script()
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(", "setAttribute(\"on"):
        assert unsafe not in script
    assert "</script" not in script.lower() and "<!--" not in script


def test_the_embedded_data_is_the_case_list(tagged, page):
    result, _, rows = tagged
    match = re.search(r'<script type="application/json" id="fp-case-data">([^<]*)</script>', page)
    embedded = json.loads(match.group(1))
    assert embedded == json.loads(json.dumps(case_list.build_case_list(lambda: rows)))
    assert f"{embedded['listed']:,} requests" in page


def test_without_rows_the_page_has_no_script_and_says_where_the_list_is(tagged):
    result, _, _ = tagged
    page = report_html.render(result)
    assert "<script" not in page.lower()
    assert "script-src &#39;none&#39;" in page
    assert f"failpath report {result.run_id} --output report.html" in page


def test_an_html_output_lists_every_failing_case(tagged, tmp_path):
    result, _, rows = tagged
    assert outputs.output_format("x.html").needs_rows
    path = tmp_path / "report.html"
    [(written, fmt, error)] = outputs.write_outputs(result.to_dict(), [path], lambda: rows)
    assert error is None and 'id="fp-case-data"' in written.read_text(encoding="utf-8")


def test_the_rows_streamed_a_batch_at_a_time_are_the_rows_and_make_the_same_page(tagged, page):
    from failpath.report.rows import stream_request_rows

    result, store, rows = tagged
    stream = stream_request_rows(store, result.run_id, batch=7)
    assert list(stream()) == rows and list(stream()) == rows  # each call reads the run again
    assert report_html.render(result, stream) == page
    path = outputs.write_outputs(result.to_dict(), [store.parent / "streamed.html"], None, stream=stream)[0][0]
    assert path.read_text(encoding="utf-8") == page


def test_rows_carry_the_case_tags_and_the_contract(tagged, tmp_path):
    result, _, rows = tagged
    assert {tuple(r["tags"]) for r in rows} == {("plain", "even"), ("plain", "odd"), ("payload", TAG_PAYLOAD)}
    assert {r["contract"] for r in rows} >= {"unchanged"}
    from failpath.report.rows import render_csv

    header, first = render_csv(rows[:1]).splitlines()[:2]
    assert "tags" in header.split(",") and "contract" in header.split(",")

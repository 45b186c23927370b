"""Reports chosen by the output file's extension: JUnit XML against the schema CI tools read, CSV and
JSONL rows of every request, the Markdown summary rendered; written atomically, from a check or a stored run."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ci_project import failpath, write_project
from markdown_it import MarkdownIt
from report_sample import stored_check
from typer.testing import CliRunner

from failpath.cli import app
from failpath.core import ConfigError
from failpath.report import junit, markdown, outputs
from failpath.report.rows import REQUEST_COLUMNS, read_request_rows, render_csv, render_jsonl
from failpath.store import open_store

xmlschema = pytest.importorskip("xmlschema")
JUNIT_XSD = Path(__file__).parent / "data" / "junit.xsd"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    result, store = stored_check(tmp_path_factory)
    return result, store, read_request_rows(store, result.run_id)


def _stored_data(store, run_id):
    with open_store(store) as opened:
        return [row["data"] for row in opened.results(run_id)]


# --------------------------------------------------------------------------- choosing a format


@pytest.mark.parametrize(("name", "fmt"), [
    ("report.junit.xml", "junit"), ("TEST-failpath.xml", "junit"), ("rows.csv", "csv"), ("rows.jsonl", "jsonl"),
    ("rows.ndjson", "jsonl"), ("summary.md", "markdown"), ("result.json", "json"), ("report.HTML", "html"), ("r.txt", "text"),
])
def test_the_extension_chooses_the_format(name, fmt):
    assert outputs.output_format(name).name == fmt


def test_an_unknown_extension_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"--output report\.pdf: .*\.junit\.xml.*\.csv.*\.md"):
        outputs.output_format("report.pdf")
    with pytest.raises(ConfigError):
        outputs.output_format(".csv")  # no name before the extension


# --------------------------------------------------------------------------- JUnit


def test_junit_is_valid_against_the_schema_ci_tools_read(stored):
    result, _, rows = stored
    text = junit.render(result, rows)
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(text)
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in root.findall("testsuite"))
    assert int(root.get("failures")) == sum(int(s.get("failures")) for s in root.findall("testsuite"))


def test_junit_has_one_test_case_per_criterion_failed_as_the_verdict_says(stored):
    result, _, rows = stored
    root = ET.fromstring(junit.render(result, rows))
    verdict = root.find("testsuite[@name='failpath.verdict']")
    cases = {c.get("name"): c for c in verdict.findall("testcase")}
    assert list(cases) == [r.name for r in result.verdict.reasons]
    for reason in result.verdict.reasons:
        failure = cases[reason.name].find("failure")
        assert (failure is None) == reason.passed
        if failure is not None:
            assert failure.get("message") == reason.figure
    properties = {p.get("name"): p.get("value") for p in verdict.iter("property")}
    assert properties["run_id"] == result.run_id and properties["verdict"] == result.verdict.label


def test_junit_has_one_failed_test_case_per_failing_case_of_each_suite(stored):
    result, store, rows = stored
    expected: dict[str, dict[str, int]] = {}
    for data in _stored_data(store, result.run_id):
        if data["split"] == "evaluation" and data["outcome"] == "answered" and not data["correct"]:
            expected.setdefault(data["suite"], {}).setdefault(data["case_id"], 0)
            expected[data["suite"]][data["case_id"]] += 1
    assert expected  # the sample fails on purpose
    root = ET.fromstring(junit.render(result, rows))
    for suite, cases in expected.items():
        element = root.find(f"testsuite[@name='failpath.suite.{suite}']")
        failed = {c.get("name"): c.find("failure") for c in element.findall("testcase")}
        assert set(failed) == {f"case {case_id}" for case_id in cases}
        for case_id, n in cases.items():
            assert failed[f"case {case_id}"].get("message").startswith(f"{n} silent failure")
    assert sum(sum(c.values()) for s, c in expected.items() if s != "clean") == result.chaos.with_policy.silent_failures


def test_junit_without_rows_holds_the_verdict_only_and_a_clean_suite_passes(stored):
    result, _, rows = stored
    root = ET.fromstring(junit.render(result))
    assert [s.get("name") for s in root.findall("testsuite")] == ["failpath.verdict"]
    right = [dict(r, silent_failure=False, outcome="answered") for r in rows]
    passing = ET.fromstring(junit.render(result, right)).find("testsuite[@name='failpath.suite.hostile']")
    assert passing.get("failures") == "0" and passing.find("testcase").get("name").startswith("no silent failure in")


def test_junit_writes_control_characters_as_escapes_so_the_xml_parses():
    document_rows = [{"split": "evaluation", "suite": "hostile", "case_id": "c\x00", "silent_failure": True, "outcome": "answered",
                      "perturbation": "nul", "variant": 0, "input_preview": "a\x00b\x1b[2J", "output": "\x07", "expected": "x"}]
    result = {"schema": "failpath.check/1", "run_id": "r", "verdict": {"ship": False, "reasons": []}}
    text = junit.render(result, document_rows)
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(text)
    assert "\\x00" in text and "\x00" not in text and "\x1b" not in text


# --------------------------------------------------------------------------- CSV and JSONL


def test_csv_has_one_row_per_request_with_and_without_the_policy(stored):
    result, store, rows = stored
    records = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert tuple(records[0]) == REQUEST_COLUMNS
    assert len(records) == result.n_rows
    stored_data = _stored_data(store, result.run_id)
    for record, data in zip(records, stored_data):
        assert record["case_id"] == data["case_id"] and record["suite"] == data["suite"]
        assert record["right_without_policy"] == ("true" if data["raw_correct"] and data["raw_error"] is None else "false")
        assert record["silent_failure"] == ("true" if data["outcome"] == "answered" and not data["correct"] else "false")
    chaos_eval = [r for r in records if r["split"] == "evaluation" and r["suite"] != "clean"]
    assert sum(r["silent_failure"] == "true" for r in chaos_eval) == result.chaos.with_policy.silent_failures
    assert sum(r["right_without_policy"] == "false" for r in chaos_eval) == result.chaos.without_policy.silent_failures


def test_csv_cells_are_inert_in_a_spreadsheet():
    rows = [{"case_id": "=HYPERLINK(\"http://x\")", "input_preview": "@SUM(A1)", "expected": -3, "output": "-12.5",
             "raw_output": "+1 800", "state": "a\x00b"}]
    record = next(csv.DictReader(io.StringIO(render_csv(rows))))
    assert record["case_id"].startswith("'=") and record["input_preview"] == "'@SUM(A1)"
    assert record["expected"] == "-3" and record["output"] == "-12.5"  # numbers stay numbers
    assert record["raw_output"] == "'+1 800" and record["state"] == "a\\x00b"


def test_jsonl_keeps_the_stored_values(stored):
    result, store, rows = stored
    lines = render_jsonl(rows).splitlines()
    assert len(lines) == result.n_rows
    for line, data in zip(lines, _stored_data(store, result.run_id)):
        record = json.loads(line)
        assert tuple(record) == REQUEST_COLUMNS
        assert record["expected"] == data["expected"] and record["output"] == data["value"]
        assert record["right_with_policy"] == (data["correct"] if data["outcome"] == "answered" else None)


# --------------------------------------------------------------------------- Markdown


def _tables(text: str) -> list[list[list[str]]]:
    """The tables of rendered Markdown, each a list of rows of cell texts (header first)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables, rows, row = [], None, None
    for token in tokens:
        if token.type == "table_open":
            rows = []
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(token.content)
        elif token.type == "tr_close":
            rows.append(row)
            row = None
        elif token.type == "table_close":
            tables.append(rows)
    return tables


def test_markdown_renders_the_verdict_and_the_criteria_table(stored):
    result, _, _ = stored
    text = markdown.render(result)
    assert len(text) < 65_536  # fits a pull-request comment
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert f"<h2>❌ {result.verdict.label}" in html
    criteria = _tables(text)[0]
    assert criteria[0] == ["", "criterion", "figure", "detail"]
    assert len(criteria) == 1 + len(result.verdict.reasons)
    for row, reason in zip(criteria[1:], result.verdict.reasons):
        assert row[0] == ("✅" if reason.passed else "❌")
        assert row[1].replace("\\_", "_") == reason.name
    suites = _tables(text)[1]
    assert [r[0] for r in suites[1:]] == ["hostile", "clean"]


def test_markdown_shows_hostile_inputs_as_text_never_as_markup(stored):
    result, _, _ = stored
    text = markdown.render(result, worst_cases=20)
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in html.lower() and "<img" not in html.lower() and "<svg" not in html.lower()
    assert "&lt;script&gt;" in html or "&amp;lt;script" in html
    worst = [row for table in _tables(text)[2:] for row in table[1:]]  # one table per cause of the worst cases
    assert len(worst) == min(20, len(result.worst_cases))
    assert all(len(row) == 7 for row in worst)  # a '|' in an input does not add a cell
    assert markdown.cell("a | b") == "a \\| b" and markdown.cell("[x](y)") == "\\[x\\](y)"  # no cell break, no link


# --------------------------------------------------------------------------- writing


def test_write_atomic_replaces_the_file_keeps_its_mode_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out" / "summary.md"
    outputs.write_atomic(path, "first\n")
    path.chmod(0o640)
    outputs.write_atomic(path, "second\n")
    assert path.read_text() == "second\n" and (path.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["summary.md"]
    fresh = outputs.write_atomic(tmp_path / "fresh.csv", "x\n")
    assert fresh.stat().st_mode & 0o777 == 0o600  # a new report is its owner's only


def test_write_outputs_goes_on_after_a_file_that_cannot_be_written(stored, tmp_path):
    result, _, rows = stored
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    written = outputs.write_outputs(result.to_dict(), [blocked / "x.md", tmp_path / "ok.csv"], lambda: rows)
    assert written[0][2] is not None and written[1][2] is None
    assert (tmp_path / "ok.csv").read_text().count("\n") == result.n_rows + 1


def test_report_writes_every_format_from_a_stored_run(stored, tmp_path):
    result, store, _ = stored
    names = ["r.junit.xml", "rows.csv", "rows.jsonl", "summary.md", "result.json", "report.html", "report.txt"]
    args = ["report", result.run_id, "--store", str(store)]
    for name in names:
        args += ["--output", str(tmp_path / name)]
    shown = CliRunner().invoke(app, args, catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert f"wrote the JUnit XML to {tmp_path / 'r.junit.xml'}" in shown.output
    for name in names:
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "result.json").read_text())["check"]["run_id"] == result.run_id
    assert (tmp_path / "summary.md").read_text() == markdown.render(result.to_dict())
    assert result.run_id in (tmp_path / "report.txt").read_text()


def test_report_refuses_format_with_several_outputs_and_unknown_extensions(stored, tmp_path):
    _, store, _ = stored
    several = CliRunner().invoke(app, ["report", "--store", str(store), "-f", "html", "-o", "a.html", "-o", "b.html"])
    assert several.exit_code == 2 and "drop --format" in several.output
    unknown = CliRunner().invoke(app, ["report", "--store", str(store), "-o", str(tmp_path / "r.pdf")])
    assert unknown.exit_code == 2 and "--output" in unknown.output and ".junit.xml" in unknown.output


def test_check_writes_every_output_it_is_given(tmp_path):
    write_project(tmp_path, policy="partial")
    names = ["report.junit.xml", "rows.csv", "summary.md", "result.json", "report.html"]
    args = ["check", "--quiet", "--no-html"]
    for name in names:
        args += ["--output", f"out/{name}"]
    done = failpath(tmp_path, *args)
    assert done.returncode == 1, done.stderr  # READY TO DEMO: the partial policy lets '#' inputs through
    for label, name in zip(("JUnit XML", "CSV rows", "Markdown summary", "JSON report", "HTML report"), names):
        assert f"{label}: {tmp_path / 'out' / name}" in done.stdout
    document = json.loads((tmp_path / "out" / "result.json").read_text())["check"]
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(tmp_path / "out" / "report.junit.xml"))
    root = ET.parse(tmp_path / "out" / "report.junit.xml").getroot()
    assert int(root.get("failures")) > 0
    with open(tmp_path / "out" / "rows.csv", newline="") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == document["n_rows"]
    assert "READY TO DEMO" in (tmp_path / "out" / "summary.md").read_text()
    assert "<html" in (tmp_path / "out" / "report.html").read_text().lower()


def test_check_refuses_an_unknown_extension_before_running(tmp_path):
    write_project(tmp_path)
    done = failpath(tmp_path, "check", "--quiet", "--output", "report.docx")
    assert done.returncode == 2 and "--output report.docx" in done.stderr
    assert not (tmp_path / "store.db").exists()


def test_a_csv_cell_longer_than_a_spreadsheet_holds_is_cut_and_says_so():
    from failpath.report.rows import CSV_CELL_CHARS

    long_output = ["token", "Label"] * 20_000
    record = next(csv.DictReader(io.StringIO(render_csv([{"output": long_output, "raw_output": "x" * 50_000}]))))
    assert len(record["output"]) < CSV_CELL_CHARS + 100
    assert record["output"].endswith(f"({len(json.dumps(long_output, ensure_ascii=False)):,} characters in all; the JSONL output has the whole value)")
    assert record["raw_output"].startswith("x" * 1000) and "50,000 characters in all" in record["raw_output"]
    assert json.loads(render_jsonl([{"output": long_output}]))["output"] == long_output  # JSONL keeps it whole


def _visible_char_by_char(text: str, limit: int) -> str:
    """The escaping of ``visible`` written out one character at a time, as a reference."""
    import unicodedata

    out = []
    for ch in text:
        if ch in "\n\t":
            out.append("\\n" if ch == "\n" else "\\t")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
        else:
            out.append(ch)
    shown = "".join(out)
    from failpath.report.bidi import isolate

    return isolate(shown if len(shown) <= limit else shown[: limit - 1] + "…")  # right-to-left text isolated


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(codec="utf-8")) | st.text(alphabet=st.sampled_from("ab \u00a0\u200b\n\x00é")), limit=st.integers(1, 40))
def test_visible_takes_its_fast_path_only_when_nothing_needs_escaping(text, limit):
    from failpath.report.terminal import visible

    assert visible(text, limit) == _visible_char_by_char(text, limit)

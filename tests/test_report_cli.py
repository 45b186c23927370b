"""``failpath report`` and ``failpath runs``: reports rebuilt from the store, clear errors for bad input."""

from __future__ import annotations

import json

import pytest
from report_sample import stored_check, without_own_scripts
from typer.testing import CliRunner

from failpath.cli import app
from failpath.store import open_store


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    return stored_check(tmp_path_factory)


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_runs_lists_the_run_with_its_verdict(stored):
    result, store = stored
    shown = run("runs", "--store", str(store))
    assert shown.exit_code == 0, shown.output
    assert result.run_id in shown.output
    assert ("SHIP" if result.ship else "DEMO") in shown.output
    records = json.loads(run("runs", "--store", str(store), "--json").output)
    record = next(r for r in records if r["run_id"] == result.run_id)
    assert record["verdict"] == result.verdict.label
    assert record["n_rows"] == result.n_rows
    assert record["silent_failure_rate"] == pytest.approx(result.chaos.with_policy.silent_failure_rate)


def test_json_report_of_the_latest_run(stored):
    result, store = stored
    shown = run("report", "--store", str(store), "--format", "json")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    assert document["schema"] == "failpath.report/1"
    assert document["check"]["run_id"] == result.run_id


def test_html_report_by_id_prefix_to_a_file(stored, tmp_path):
    result, store = stored
    out = tmp_path / "r" / "report.html"
    shown = run("report", result.run_id[:16], "--store", str(store), "-f", "html", "-o", str(out))
    assert shown.exit_code == 0, shown.output
    assert str(out) in shown.output
    page = out.read_text(encoding="utf-8")
    assert result.run_id in page and "<script" not in without_own_scripts(page).lower()


def test_html_report_defaults_to_the_working_folder(stored, tmp_path, monkeypatch):
    _, store = stored
    monkeypatch.chdir(tmp_path)
    shown = run("report", "--store", str(store), "--format", "html")
    assert shown.exit_code == 0, shown.output
    assert (tmp_path / "failpath-report.html").is_file()


def test_terminal_report(stored, tmp_path):
    result, store = stored
    shown = run("report", "--store", str(store))
    assert shown.exit_code == 0, shown.output
    assert result.verdict.label in shown.output
    out = tmp_path / "report.txt"
    assert run("report", "--store", str(store), "-o", str(out)).exit_code == 0
    assert result.verdict.label in out.read_text(encoding="utf-8")


def test_unknown_run_is_a_usage_error(stored):
    _, store = stored
    shown = run("report", "chk-nope", "--store", str(store))
    assert shown.exit_code == 2
    assert "no run 'chk-nope'" in shown.output and "failpath runs" in shown.output


def test_missing_store_is_a_usage_error(tmp_path):
    for args in (("report",), ("runs",)):
        shown = run(*args, "--store", str(tmp_path / "absent.db"))
        assert shown.exit_code == 2
        assert "no store at" in shown.output
    assert not (tmp_path / "absent.db").exists()


def test_unfinished_run_says_how_to_resume(tmp_path):
    store = tmp_path / "s.db"
    with open_store(store) as opened:
        opened.create_run("chk-half", kind="check", config={})
    shown = run("report", "chk-half", "--store", str(store))
    assert shown.exit_code == 2
    assert "has not finished" in shown.output and "--resume chk-half" in shown.output
    latest = run("report", "--store", str(store))
    assert latest.exit_code == 2 and "no finished check run" in latest.output
    listed = run("runs", "--store", str(store))
    assert listed.exit_code == 0 and "unfinished" in listed.output


def test_bad_format_is_refused(stored):
    _, store = stored
    shown = CliRunner().invoke(app, ["report", "--store", str(store), "--format", "pdf"])
    assert shown.exit_code == 2

"""`failpath check`: config file or bundled example, exit codes 0/1/2, errors naming file, key and line."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from failpath.cli import app
from failpath.store import open_store

PROJECT = """
from failpath.chaos import register_suite
from test_check_toy import FAULTS, HOSTILE, REALISTIC, ToySystem, full_policy, partial_policy

for suite in (HOSTILE, REALISTIC, FAULTS):
    register_suite(suite, replace=True)

system = ToySystem()
slow = ToySystem(delay=0.02)
policy = full_policy()
partial = partial_policy()


def mortal(text):
    import multiprocessing, os
    mark = os.environ.get("FAILPATH_TEST_DIE_MARK")
    if mark and multiprocessing.parent_process() is not None and os.path.exists(mark):
        os._exit(9)  # a worker process dies (killed, out of memory...)
    return system(text)
"""

CONFIG = """\
system = "toyproj:system"
policy = "toyproj:policy"
suites = ["toy-hostile", "toy-realistic", "toy-fault"]
seed = 7
concurrency = 4
store = "store.db"
worst_cases = 1
worst_case_seconds = 2

[dataset]
path = "cases.jsonl"
input = "text"
expected = "label"

[judge]
name = "text"

[budgets]
# 20 evaluation cases: with no failure at all, the case-level bounds at 95% are 13.9% (silent
# failures) and about 16% (over-refusal); budgets below those could never pass on so few cases.
silent_failure = 0.15
# No severity is configured, so every wrong answer counts as severe; 0.5% would need 598 evaluation cases.
severe_silent_failure = 0.15
false_alarm = 0.2

[budgets.accepted]
anomalous_input = "Inputs are short labels; an anomaly detector adds nothing here."
inconsistent = "The system is deterministic, so two samples always agree."
injection_suspected = "The # rule of this policy covers the only injection the toy knows."
empty_input = "Empty inputs are refused upstream by the form that calls this system."
budget_exceeded = "No deadline or token budget is set, so the budget cannot run out."
"""


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "toyproj.py").write_text(PROJECT, encoding="utf-8")
    lines = [json.dumps({"id": f"c{i:03d}", "text": f"item {i}", "label": f"ITEM {i}"}) for i in range(40)]
    (tmp_path / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "failpath.toml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["check", *args], catch_exceptions=False)


def test_ship_exits_0_prints_the_verdict_first_and_writes_json(project):
    result = run("--json", "out/result.json", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output.index("READY TO SHIP") < result.output.index("The gap")
    document = json.loads((project / "out" / "result.json").read_text())
    assert document["schema"] == "failpath.check/2" and document["verdict"]["ship"] is True
    with open_store(project / "store.db") as store:
        assert store.get_run(document["run_id"])["summary"]["verdict"]["ship"] is True


def test_demo_exits_1(project):
    config = project / "failpath.toml"
    config.write_text(CONFIG.replace('policy = "toyproj:policy"', 'policy = "toyproj:partial"'), encoding="utf-8")
    result = run(str(config), "--quiet")
    assert result.exit_code == 1, result.output
    assert "READY TO DEMO" in result.output and "hostile_answers_stable" in result.output


def test_executor_overrides_the_config_and_a_bad_one_exits_2(project):
    threads = run("--executor", "thread", "--store", "t.db", "--json", "t.json", "-q")
    procs = run("--executor", "process", "--store", "p.db", "--json", "p.json", "-q")
    assert threads.exit_code == procs.exit_code == 0, procs.output
    a, b = (json.loads((project / name).read_text()) for name in ("t.json", "p.json"))
    assert a["verdict"] == b["verdict"] and a["chaos"] == b["chaos"] and a["n_rows"] == b["n_rows"]
    with open_store(project / "p.db") as store:
        assert store.get_run(b["run_id"])["config"]["executor"] == "process"
    bad = run("--executor", "processes", "-q")
    assert bad.exit_code == 2 and "--executor processes: choose auto, thread or process" in bad.output
    assert not (project / "store.db").exists()  # refused before anything was written


@pytest.mark.skipif((__import__("os").cpu_count() or 1) < 2, reason="a process run needs two cores to start a worker")
def test_a_dead_worker_exits_2_and_resume_finishes_the_run(project, monkeypatch):
    config = project / "failpath.toml"
    config.write_text(CONFIG.replace('system = "toyproj:system"', 'system = "toyproj:mortal"'), encoding="utf-8")
    mark = project / "die"
    mark.write_text("1")
    monkeypatch.setenv("FAILPATH_TEST_DIE_MARK", str(mark))
    dead = run("--executor", "process", "--concurrency", "2", "-q")
    assert dead.exit_code == 2, dead.output
    assert "exited with code 9" in dead.output and "resume the run" in dead.output
    mark.unlink()
    resumed = run("--executor", "process", "--concurrency", "2", "--resume", "--json", "r.json", "-q")
    assert resumed.exit_code == 0, resumed.output
    document = json.loads((project / "r.json").read_text())
    assert document["resumed"] is True and document["reused"] > 0


def test_seed_concurrency_and_store_override_the_config(project):
    result = run("--seed", "3", "--concurrency", "2", "--store", "other.db", "--json", "r.json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((project / "r.json").read_text())["seed"] == 3
    assert (project / "other.db").exists() and not (project / "store.db").exists()


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("seed = 7", "seed = -", r"failpath\.toml: not valid TOML"),
        ("concurrency = 4", "concurrency = 0", r"failpath\.toml:5: concurrency = 0: Input should be greater than or equal to 1"),
        ('system = "toyproj:system"', 'system = "toyproj:sytem"', r"failpath\.toml:1: system = 'toyproj:sytem': .*no attribute 'sytem'"),
        ('system = "toyproj:system"', 'system = "nomodule:system"', r"failpath\.toml:1: system = 'nomodule:system': .*cannot import module 'nomodule'"),
        ('name = "text"', 'name = "txt"', r"failpath\.toml:16: judge\.name = 'txt': unknown judge 'txt'"),
        ('"toy-fault"]', '"toy-faults"]', r"failpath\.toml:3: suites = .*unknown suite 'toy-faults'"),
        ('expected = "label"', 'expected = "labels"', r"cases\.jsonl:1: no 'labels' field"),
        ('path = "cases.jsonl"', 'path = "missing.jsonl"', r"missing\.jsonl: dataset file not found"),
    ],
)
def test_bad_config_or_dataset_exits_2_naming_file_key_and_line(project, old, new, message):
    assert old in CONFIG
    (project / "failpath.toml").write_text(CONFIG.replace(old, new, 1), encoding="utf-8")
    result = run("-q")
    assert result.exit_code == 2
    import re

    assert re.search(message, result.output), result.output


def test_bad_dataset_line_exits_2(project):
    with open(project / "cases.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "c999", "text": "item 999", "label": \n')
    result = run("-q")
    assert result.exit_code == 2 and "cases.jsonl:41: bad JSON" in result.output
    assert not (project / "store.db").exists()  # failed before anything ran


def test_usage_errors_exit_2(project, tmp_path_factory):
    assert run("failpath.toml", "--example", "addresses").exit_code == 2
    result = run("--example", "nope")
    assert result.exit_code == 2 and "bundled examples: addresses" in result.output
    empty = tmp_path_factory.mktemp("empty")
    import os

    os.chdir(empty)
    result = run("-q")
    assert result.exit_code == 2 and "no failpath.toml in this folder" in result.output
    result = run(str(project / "failpath.toml"), "--resume", "-q")
    assert result.exit_code == 2 and "no unfinished check run" in result.output


def test_resume_with_or_without_a_run_id(project):
    first = run("--json", "a.json", "-q")
    run_id = json.loads((project / "a.json").read_text())["run_id"]
    # A finished run resumed by id gives back its stored result.
    again = run("--resume", run_id, "--json", "b.json", "-q")
    assert again.exit_code == first.exit_code == 0
    assert json.loads((project / "b.json").read_text()) == json.loads((project / "a.json").read_text())
    assert "--resume" in runner.invoke(app, ["check", "--help"]).output


@pytest.mark.slow
def test_example_runs_the_bundled_usaddress_example(project, monkeypatch):
    import failpath.examples.addresses as addresses

    original = addresses.check_kwargs

    def small(n: int = 1000, seed: int = 0):
        kwargs = original(n=20, seed=seed)
        kwargs.update(suites=["hostile"], worst_cases=0)
        return kwargs

    monkeypatch.setattr(addresses, "check_kwargs", small)
    result = run("--example", "addresses", "--store", str(project / "ex.db"), "--json", "ex.json", "-q")
    assert result.exit_code in (0, 1), result.output
    document = json.loads((project / "ex.json").read_text())
    assert document["judge"] == "token_labels" and document["n_cases"] == 20
    assert ("READY TO SHIP" if result.exit_code == 0 else "READY TO DEMO") in result.output


def test_check_writes_the_html_report_by_default(project):
    result = run("--quiet")
    assert result.exit_code == 0, result.output
    page = (project / "failpath-report.html").read_text(encoding="utf-8")
    assert "READY TO SHIP" in page and page.lstrip().lower().startswith("<!doctype html")
    assert "HTML report:" in result.output


def test_html_path_and_no_html(project):
    assert run("--quiet", "--html", "reports/check.html").exit_code == 0
    assert (project / "reports" / "check.html").is_file()
    assert run("--quiet", "--no-html").exit_code == 0
    assert not (project / "failpath-report.html").exists()


def test_an_unwritable_html_path_is_an_error_that_keeps_the_run(project):
    (project / "taken").write_text("a file, not a folder")
    result = runner.invoke(app, ["check", "--quiet", "--html", "taken/report.html"])
    assert result.exit_code == 2
    assert "is stored" in result.output and "failpath report" in result.output
    with open_store(project / "store.db") as store:
        runs = store.list_runs(kind="check")
        assert runs and runs[0]["finished"]


def test_an_unwritable_json_path_names_the_json_and_still_writes_the_html(project):
    (project / "taken").write_text("a file, not a folder")
    result = runner.invoke(app, ["check", "--quiet", "--json", "taken/result.json"])
    assert result.exit_code == 2
    assert "the JSON result could not be written" in result.output and "HTML report could not" not in result.output
    run_id = result.output.split("the run ", 1)[1].split()[0]
    assert f"failpath report {run_id} --format json" in result.output
    assert (project / "failpath-report.html").is_file()  # the other report is not lost with it
    # The command the message names gives the same result document, as the "check" field.
    rebuilt = runner.invoke(app, ["report", run_id, "--format", "json", "--store", "store.db"])
    assert rebuilt.exit_code == 0, rebuilt.output
    with open_store(project / "store.db") as store:
        assert json.loads(rebuilt.output)["check"] == store.get_run(run_id)["summary"]


def test_both_reports_unwritable_names_both(project):
    (project / "taken").write_text("a file, not a folder")
    result = runner.invoke(app, ["check", "--quiet", "--json", "taken/r.json", "--html", "taken/r.html"])
    assert result.exit_code == 2
    assert "--format json" in result.output and "--format html" in result.output


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_ctrl_c_keeps_the_results_and_names_the_command_that_continues(project, executor):
    config = project / "slow.toml"
    config.write_text(CONFIG.replace('system = "toyproj:system"', 'system = "toyproj:slow"'), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(project)])}
    command = [sys.executable, "-c", "from failpath.cli import main; main()", "check", "slow.toml", "--quiet", "--no-html",
               "--executor", executor]
    # Its own process group, as a terminal's foreground job: Ctrl-C reaches the command and its workers.
    child = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "no result reached the store"
            if (project / "store.db").exists():
                with open_store(project / "store.db") as store:
                    runs = store.list_runs(kind="check")
                    if runs and len(store.result_keys(runs[0]["run_id"])) >= 20:
                        break
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 130, err
    run_id = runs[0]["run_id"]
    assert f"interrupted: run {run_id} stopped" in err and "Traceback" not in err
    assert f"continue it with: failpath check slow.toml --resume {run_id}" in err
    with open_store(project / "store.db") as store:
        kept = len(store.result_keys(run_id))
        assert store.get_run(run_id)["finished"] is None
    assert f"{kept:,} results are kept" in err
    resumed = run("slow.toml", "--resume", run_id, "--quiet", "--no-html", "--executor", executor)
    assert resumed.exit_code == 0, resumed.output
    with open_store(project / "store.db") as store:
        summary = store.get_run(run_id)["summary"]
    assert summary["resumed"] and summary["reused"] == kept

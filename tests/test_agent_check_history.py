"""The run-history commands on agent checks: report (newest or by id, every format), runs, compare, resume.

An agent check keeps its configuration, each trial as it finishes and its result in the store, so
``failpath report`` rebuilds exactly what ``failpath check`` wrote, ``failpath compare`` pairs two agent
checks by task, and a stopped check resumes without redoing or losing trials.
"""

from __future__ import annotations

import _thread
import csv
import io
import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

import failpath as fp
from agent_check_helpers import Ledger, make_agent, pay_tasks
from failpath.check.agent_store import RUN_KIND, agent_document, stored_trials
from failpath.cli import app
from failpath.store.opening import open_store
from test_agent_check_cli import project

runner = CliRunner()

#: A small agent check: 6 tasks, 4 clean trials each, one tool fault and one planted instruction.
SMALL = dict(trials=4, concurrency=4, tool_faults=["server_error"], model_faults=[], suites=[], templates=["override"],
             attacks=[fp.AttackGoal("transfer", {"to": "mallory"})])


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def checked_project(tmp_path: Path, monkeypatch) -> dict:
    """Run ``failpath check`` on an agent project in ``tmp_path``; its ``--json`` document."""
    project(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = cli("check", "--quiet", "--no-html", "--json", "first.json")
    assert result.exit_code == 1, result.output
    return json.loads((tmp_path / "first.json").read_text(encoding="utf-8"))


def test_report_without_a_run_id_rebuilds_the_newest_agent_check_exactly(tmp_path, monkeypatch):
    first = checked_project(tmp_path, monkeypatch)
    shown = cli("report")
    assert shown.exit_code == 0 and first["run_id"] in shown.output and "pass^k on clean trials" in shown.output
    again = cli("report", "--json", "again.json")
    assert again.exit_code == 0, again.output
    rebuilt = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))
    assert rebuilt == first  # verdict, figures, worst runs and every trial, in the check's order
    assert len(rebuilt["trials"]) == 4 * 4 + 4 * 2


def test_every_report_format_of_an_agent_check_is_rebuilt_from_the_store(tmp_path, monkeypatch):
    first = checked_project(tmp_path, monkeypatch)
    run = first["run_id"]
    result = cli("report", run[:20], "-o", "r.csv", "-o", "r.jsonl", "-o", "r.txt", "-o", "r.html",
                 "--junit", "ci-report.xml", "--markdown", "summary.txt")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8"))))
    assert len(rows) == len(first["trials"]) and rows[0]["task_id"] == first["trials"][0]["task_id"]
    jsonl = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["variant"] for r in jsonl] == [t["variant"] for t in first["trials"]]
    assert "READY TO DEMO" in (tmp_path / "r.txt").read_text(encoding="utf-8")
    assert "<svg" in (tmp_path / "r.html").read_text(encoding="utf-8")
    junit = ET.fromstring((tmp_path / "ci-report.xml").read_text(encoding="utf-8"))
    verdict = junit.find("testsuite[@name='failpath.verdict']")
    failed = {c.get("name") for c in verdict.findall("testcase") if c.find("failure") is not None}
    assert failed == {c["name"] for c in first["verdict"]["reasons"] if not c["passed"]}
    markdown = (tmp_path / "summary.txt").read_text(encoding="utf-8")  # --markdown: the format whatever the extension
    assert markdown.startswith("## failpath agent check: **READY TO DEMO**") and "| 4 |" in markdown


def test_runs_lists_an_agent_check_with_its_verdict_and_figures(tmp_path, monkeypatch):
    first = checked_project(tmp_path, monkeypatch)
    listed = json.loads(cli("runs", "--json").output)
    (record,) = [r for r in listed if r["run_id"] == first["run_id"]]
    assert record["kind"] == RUN_KIND and record["verdict"] == "READY TO DEMO" and record["status"] == "finished"
    assert record["n_rows"] == len(first["trials"]) and record["n_cases"] == 4 and record["name"] == "ledger"
    assert record["pass_k"]["k"] == 4 and record["pass_k"]["lower_bound"] == first["figures"]["pass_k_curve"][3]["lower_bound"]
    assert record["silent_failure_rate"] == 0.0 and record["attack_success_rate"] == 0.0
    table = cli("runs").output
    assert "agent check" in table and "DEMO" in table


def test_report_and_compare_refuse_bad_run_ids_and_mixed_kinds_with_exit_2(tmp_path, monkeypatch):
    first = checked_project(tmp_path, monkeypatch)
    unknown = cli("report", "no-such-run")
    assert unknown.exit_code == 2 and "no run 'no-such-run'" in unknown.output and "failpath runs" in unknown.output
    with open_store(tmp_path / ".failpath" / "failpath.db") as store:  # a check of single calls beside it
        store.create_run("chk-single", kind="check", config={})
        store.finish_run("chk-single", {"run_id": "chk-single", "kind": "check", "verdict": {"ship": False}})
    mixed = cli("compare", "chk-single", first["run_id"])
    assert mixed.exit_code == 2, mixed.output
    flat = " ".join(mixed.output.split())
    assert "is an agent check and run chk-single a check of single calls" in flat
    baseline = cli("compare", first["run_id"], "no-such-run")
    assert baseline.exit_code == 2 and "no run 'no-such-run'" in baseline.output
    written = cli("report", first["run_id"], "-o", "r.docx")
    assert written.exit_code == 2 and ".junit.xml" in written.output and not (tmp_path / "r.docx").exists()
    again = json.loads(cli("report", first["run_id"], "--format", "json").output)  # nothing stored was lost by the refusals
    assert again == first


def test_compare_two_agent_checks_pairs_them_by_task_and_exits_1_on_a_regression(tmp_path):
    store = tmp_path / "runs.db"
    tasks = pay_tasks(20)  # a task is one draw: 8 cannot show even a total collapse beyond its interval
    good = fp.check_agent(make_agent(), Ledger, tasks, keep=store, **SMALL)
    same = fp.check_agent(make_agent(), Ledger, tasks, keep=store, seed=1, **SMALL)
    sloppy = fp.check_agent(make_agent(), lambda trial: Ledger(trial, mistakes=1.0), tasks, keep=store, **SMALL)
    steady = cli("compare", good.run_id, same.run_id, "--store", str(store), "-o", str(tmp_path / "c.json"))
    assert steady.exit_code == 0, steady.output
    assert "pass@1 (clean)" in steady.output and "silent failures [clean]" in steady.output
    document = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert document["schema"] == "failpath.agent-compare/1" and not document["regressed"]
    worse = cli("compare", good.run_id, sloppy.run_id, "--store", str(store), "-o", str(tmp_path / "c.md"))
    assert worse.exit_code == 1, worse.output
    figures = {f["name"]: f for f in json.loads(_json_of(store, good.run_id, sloppy.run_id))["figures"]}
    assert figures["pass@1 (clean)"]["regressed"] and figures["silent failures [clean]"]["regressed"]
    assert figures["pass@1 (clean)"]["before"] == 1.0 and figures["pass@1 (clean)"]["after"] == 0.0
    assert figures["pass@1 (clean)"]["tasks"] == 20 and not figures["attack success"]["regressed"]
    assert "❌ worse" in (tmp_path / "c.md").read_text(encoding="utf-8")
    latest = cli("compare", good.run_id, "--store", str(store))  # RUN_B left out: the latest agent check
    assert latest.exit_code == 1 and sloppy.run_id in " ".join(latest.output.split())


def _json_of(store: Path, run_a: str, run_b: str) -> str:
    from failpath.cli.compare import compare_stored

    return json.dumps(compare_stored(run_a, store, run_b, store).to_dict())


class Interrupting:
    """An environment factory that presses Ctrl-C (in the main thread) when its ``at``-th environment is made."""

    def __init__(self, at: int | None) -> None:
        self.at, self.made, self.lock = at, 0, threading.Lock()

    def __call__(self, trial):
        with self.lock:
            self.made += 1
            if self.made == self.at:
                _thread.interrupt_main()
        return Ledger(trial)


def test_a_stopped_agent_check_resumes_without_redoing_or_losing_trials(tmp_path):
    store = tmp_path / "kept.db"
    tasks = pay_tasks(6)
    stopping = Interrupting(at=20)
    with pytest.raises(fp.CheckInterrupted) as stopped:
        fp.check_agent(make_agent(), stopping, tasks, keep=store, concurrency=2, **{k: v for k, v in SMALL.items() if k != "concurrency"})
    run_id, kept = stopped.value.run_id, stopped.value.stored
    with open_store(store) as opened:
        assert len(stored_trials(opened, run_id)) == kept > 0 and opened.get_run(run_id)["finished"] is None
    listed = json.loads(cli("runs", "--json", "--store", str(store)).output)
    assert listed[0]["run_id"] == run_id and listed[0]["status"] == "unfinished"
    unfinished = cli("report", run_id, "--store", str(store))
    assert unfinished.exit_code == 2 and "has not finished" in unfinished.output and "--resume" in unfinished.output

    other = tasks[:5]  # another configuration cannot continue it
    with pytest.raises(fp.ConfigError, match="it was started with tasks = 6"):
        fp.check_agent(make_agent(), Ledger, other, keep=store, resume=run_id, **SMALL)

    counting = Interrupting(at=None)
    resumed = fp.check_agent(make_agent(), counting, tasks, keep=store, resume=True, **SMALL)
    total = 6 * 4 + 6 * 2
    assert resumed.run_id == run_id and len(resumed.trials) == total
    assert counting.made == 1 + total - kept  # the probe, then only the trials not kept
    whole = fp.check_agent(make_agent(), Ledger, tasks, **SMALL)  # the same check, never stopped
    assert resumed.figures == whole.figures and resumed.verdict == whole.verdict
    assert [(t.task_id, t.variant, t.index, t.status) for t in resumed.trials] == [(t.task_id, t.variant, t.index, t.status) for t in whole.trials]
    with pytest.raises(fp.ConfigError, match="has finished"):
        fp.check_agent(make_agent(), Ledger, tasks, keep=store, resume=run_id, **SMALL)


def test_failpath_check_resume_continues_an_agent_check_and_refuses_what_it_cannot(tmp_path, monkeypatch):
    first = checked_project(tmp_path, monkeypatch)
    nothing = cli("check", "--quiet", "--no-html", "--resume")
    assert nothing.exit_code == 2 and "no unfinished agent check" in nothing.output
    finished = cli("check", "--quiet", "--no-html", "--resume", first["run_id"])
    assert finished.exit_code == 2 and "has finished" in finished.output
    with open_store(tmp_path / ".failpath" / "failpath.db") as store:  # a run stopped after its first trials
        store.create_run("agent-check-stopped", kind=RUN_KIND, config=first["config"])
        store.add_results("agent-check-stopped", [(json.dumps([t["task_id"], t["variant"], t["index"]]), t) for t in first["trials"][:10]])
        store.create_run("chk-single", kind="check", config={})
    wrong_kind = cli("check", "--quiet", "--no-html", "--resume", "chk-single")
    assert wrong_kind.exit_code == 2 and "not an agent check" in wrong_kind.output
    resumed = cli("check", "--quiet", "--no-html", "--resume", "--json", "resumed.json")
    assert resumed.exit_code == 1, resumed.output
    document = json.loads((tmp_path / "resumed.json").read_text(encoding="utf-8"))
    assert document["run_id"] == "agent-check-stopped" and document["figures"] == first["figures"]
    assert document["trials"][:10] == first["trials"][:10]  # the kept trials, not made again


def test_an_agent_check_keeps_its_trials_in_postgresql_too(postgres_url):
    result = fp.check_agent(make_agent(), Ledger, pay_tasks(3), keep=postgres_url, **SMALL)
    with open_store(postgres_url) as store:
        run = store.get_run(result.run_id)
        assert run["kind"] == RUN_KIND
        document = agent_document(store, run)
    assert document["trials"] == [t.to_dict() for t in result.trials]
    assert document["figures"] == json.loads(json.dumps(result.figures))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    from report_sample import stored_check

    return stored_check(tmp_path_factory)


def test_named_formats_write_a_check_of_single_calls_too_whatever_the_extension(single, tmp_path):
    result, store = single
    written = cli("report", result.run_id, "--store", str(store), "--junit", str(tmp_path / "ci.out"),
                  "--markdown", str(tmp_path / "summary.txt"), "--json", str(tmp_path / "doc.data"), "--html", str(tmp_path / "page"))
    assert written.exit_code == 0, written.output
    assert ET.fromstring((tmp_path / "ci.out").read_text(encoding="utf-8")).tag == "testsuites"
    assert result.run_id in (tmp_path / "summary.txt").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "doc.data").read_text(encoding="utf-8"))["check"]["run_id"] == result.run_id
    assert "<html" in (tmp_path / "page").read_text(encoding="utf-8").lower()
    both = cli("report", result.run_id, "--store", str(store), "--format", "json", "--junit", str(tmp_path / "x.xml"))
    assert both.exit_code == 2 and "writes one file" in both.output


def test_an_agent_check_and_a_real_check_of_single_calls_are_not_compared(single, tmp_path):
    result, store = single
    agent = fp.check_agent(make_agent(), Ledger, pay_tasks(3), keep=tmp_path / "agent.db", **SMALL)
    for args in ([result.run_id, agent.run_id, "--baseline-store", str(store), "--store", str(tmp_path / "agent.db")],
                 [agent.run_id, result.run_id, "--baseline-store", str(tmp_path / "agent.db"), "--store", str(store)]):
        refused = cli("compare", *args)
        assert refused.exit_code == 2, refused.output
        assert "a check of single calls" in " ".join(refused.output.split())
    as_baseline = cli("report", agent.run_id, "--store", str(tmp_path / "agent.db"), "--format", "json")
    assert as_baseline.exit_code == 0 and json.loads(as_baseline.output)["run_id"] == agent.run_id


def test_runs_show_names_an_agent_check_for_what_it_is(tmp_path, monkeypatch):
    first = checked_project(tmp_path, monkeypatch)
    shown = runner.invoke(app, ["runs", "show", first["run_id"]])
    assert shown.exit_code == 2, shown.output
    assert "is an agent check, not an agent run" in " ".join(shown.output.split()) and f"failpath report {first['run_id']}" in shown.output


INTERRUPTING = '''

import _thread
import threading
from pathlib import Path as _Path

_made, _lock = [0], threading.Lock()


def stopping_environment(trial):
    """Presses Ctrl-C once, at the 12th environment made, while the file ``stop-at-12`` exists."""
    with _lock:
        _made[0] += 1
        if _made[0] == 12 and _Path("stop-at-12").exists():
            _Path("stop-at-12").unlink()
            _thread.interrupt_main()
    return Ledger(trial)
'''


def test_ctrl_c_in_failpath_check_says_how_to_resume_and_the_command_finishes_the_run(tmp_path, monkeypatch):
    config = project(tmp_path)
    # a module of its own name: ledger_checks is imported (and cached) by the other tests
    (tmp_path / "ledger_stopping.py").write_text((tmp_path / "ledger_checks.py").read_text(encoding="utf-8") + INTERRUPTING, encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8").replace("ledger_checks:environment", "ledger_stopping:stopping_environment")
                      .replace("ledger_checks:build_agent", "ledger_stopping:build_agent"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stop-at-12").write_text("")
    stopped = runner.invoke(app, ["check", "--quiet", "--no-html"])
    assert stopped.exit_code == 130, stopped.output
    said = " ".join(stopped.output.split())
    assert "interrupted: agent check agent-check-" in said and "trials are kept in" in said
    command = said.split("continue it with: ")[1].split()
    assert command[:2] == ["failpath", "check"] and command[-2] == "--resume"
    resumed = runner.invoke(app, [*command[1:], "--quiet", "--no-html", "--json", "done.json"])
    assert resumed.exit_code == 1, resumed.output
    document = json.loads((tmp_path / "done.json").read_text(encoding="utf-8"))
    assert document["run_id"] == command[-1] and len(document["trials"]) == 4 * 4 + 4 * 2
    assert json.loads(cli("runs", "--json").output)[0]["status"] == "finished"


def test_an_agent_check_kept_without_its_trials_rebuilds_what_it_can_and_says_what_it_cannot(tmp_path, monkeypatch):
    first = checked_project(tmp_path, monkeypatch)
    summary = {k: v for k, v in first.items() if k != "trials"}
    with open_store(tmp_path / ".failpath" / "failpath.db") as store:  # as an agent check was kept before its trials were
        for run_id in ("agent-check-old-a", "agent-check-old-b"):
            store.create_run(run_id, kind=RUN_KIND, config=first["config"])
            store.finish_run(run_id, {**summary, "run_id": run_id})
    summary_only = cli("report", "agent-check-old-a", "-o", "old.md", "-o", "old.json")
    assert summary_only.exit_code == 0, summary_only.output
    assert "trials" not in json.loads((tmp_path / "old.json").read_text(encoding="utf-8"))
    per_trial = cli("report", "agent-check-old-a", "-o", "old.csv", "-o", "again.md")
    assert per_trial.exit_code == 2 and "kept without its trials" in " ".join(per_trial.output.split())
    assert not (tmp_path / "old.csv").exists() and not (tmp_path / "again.md").exists()
    compared = cli("compare", "agent-check-old-a", "agent-check-old-b", "-o", "c.json")
    assert compared.exit_code == 0 and "with no interval" in " ".join(compared.output.split())
    figures = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))["figures"]
    assert all(f["low"] is None and not f["regressed"] for f in figures)

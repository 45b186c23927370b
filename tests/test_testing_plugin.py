"""``failpath.testing``: an assertion whose failure names each failed criterion with its figure and the
first failing cases, and the pytest plugin that runs a project's check once per session."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from ci_project import child_env, write_project
from report_sample import stored_check

import failpath as fp
from failpath.store import open_store
from failpath.testing import NotReadyToShip, assert_ready_to_ship, failure_message


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return stored_check(tmp_path_factory)[0]


def test_the_message_lists_each_failed_criterion_with_its_figure_and_the_first_failing_cases(demo):
    assert not demo.ship
    with pytest.raises(AssertionError) as info:
        assert_ready_to_ship(demo, cases=2)
    assert isinstance(info.value, NotReadyToShip) and info.value.result is demo
    message = str(info.value)
    assert message.startswith("failpath check") and "READY TO DEMO" in message
    for reason in demo.verdict.reasons:
        assert (f"✗ {reason.name}: {reason.figure}" in message) == (not reason.passed)
    assert "first failing cases (2 of the" in message
    first = demo.worst_cases[0]
    assert f"case {first.case_id}" in message and f"expected {first.expected}" in message
    from failpath.report.worst import CAUSE_TITLES

    assert CAUSE_TITLES[first.cause] in message  # listed under the heading of its cause
    assert message.split("first failing cases")[1].count("\n  - ") == 2
    assert f"failpath report {demo.run_id}" in message


def test_the_message_shows_control_characters_as_escapes(demo):
    message = failure_message(demo, cases=len(demo.worst_cases))
    assert "\x1b" not in message and "\u202e" not in message and "\x00" not in message


def test_a_ship_verdict_passes_and_a_document_works_as_well_as_a_result(demo):
    document = demo.to_dict()
    document["verdict"] = {"ship": True, "reasons": [dict(r, passed=True) for r in document["verdict"]["reasons"]]}
    assert_ready_to_ship(document)
    with pytest.raises(NotReadyToShip):
        assert_ready_to_ship(demo.to_dict())
    assert fp.testing.assert_ready_to_ship is assert_ready_to_ship


def test_the_plugin_is_registered_for_pytest():
    plugins = {e.name: e.value for e in entry_points(group="pytest11")}
    assert plugins.get("failpath") == "failpath.testing.pytest_plugin"


SESSION_TESTS = '''
import failpath as fp


def test_ships(failpath_check):
    fp.testing.assert_ready_to_ship(failpath_check)


def test_the_same_run(failpath_check):
    assert failpath_check.n_cases == 40


def test_without_the_check():
    assert True
'''


def _pytest(folder, *args):
    (folder / "test_ship.py").write_text(SESSION_TESTS, encoding="utf-8")
    env = {k: v for k, v in child_env(folder).items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "test_ship.py", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def _runs(store):
    with open_store(store) as opened:
        return opened.list_runs(kind="check")


def test_a_pytest_session_runs_the_check_once_and_fails_with_a_readable_message(tmp_path):
    write_project(tmp_path, policy="partial")
    done = _pytest(tmp_path, "--failpath-output", "out/summary.md")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "1 failed, 2 passed" in out
    assert "NotReadyToShip: failpath check 'toy project' is READY TO DEMO" in out
    assert "✗ hostile_answers_stable:" in out and "first failing cases" in out
    assert "assert False" not in out
    assert re.search(r"^=+ failpath =+$", out, re.MULTILINE)  # the plugin's section of the summary
    assert "READY TO DEMO · run chk-" in out and "failed: " in out
    assert len(_runs(tmp_path / "store.db")) == 1  # two tests asked for the check; it ran once
    assert "READY TO DEMO" in (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")


def test_a_pytest_session_passes_when_the_check_ships(tmp_path):
    write_project(tmp_path)
    done = _pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout and "READY TO SHIP · run chk-" in done.stdout


def test_a_missing_config_fails_the_tests_that_need_it_with_what_to_do(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    done = _pytest(tmp_path, "--failpath-config", "nowhere/failpath.toml")
    assert done.returncode == 1
    assert "the failpath check could not run" in done.stdout and "nowhere/failpath.toml" in done.stdout
    assert "1 passed" in done.stdout  # the test that does not use the check still runs

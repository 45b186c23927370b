"""A check killed after its run finished but before its reports were written (item 5 of the reliability
issue): ``failpath check --resume`` finds that run, says so, and writes its reports from the stored result."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from failpath.cli import app
from failpath.store import open_store

sys.path.insert(0, str(Path(__file__).parent))
from test_check_cli import project  # noqa: E402,F401 - the fixture: a toy system, its cases and failpath.toml

runner = CliRunner()

# The run finishes and is stored; the process is then killed (SIGKILL) as it starts writing the reports.
KILLED_WRITING_REPORTS = """
import os, signal, sys
sys.path.insert(0, os.getcwd())
sys.path.insert(0, sys.argv[1])
import failpath.cli.check as command
command._write_reports = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
from failpath.cli import main
main(["check", "--quiet", "--json", "result.json"])
"""


def test_resume_rebuilds_the_reports_of_a_run_killed_before_they_were_written(project):  # noqa: F811
    tests = str(Path(__file__).parent)
    done = subprocess.run([sys.executable, "-c", KILLED_WRITING_REPORTS, tests], cwd=project, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not (project / "failpath-report.html").exists() and not (project / "result.json").exists()
    with open_store(project / "store.db") as store:
        (run,) = store.list_runs(kind="check")
    assert run["finished"] is not None and run["summary"]

    resumed = runner.invoke(app, ["check", "--resume", "--quiet", "--json", "result.json"])
    assert resumed.exit_code == 0, resumed.output
    assert f"run {run['run_id']} had finished" in resumed.output and "READY TO SHIP" in resumed.output
    assert (project / "failpath-report.html").is_file()
    assert json.loads((project / "result.json").read_text())["run_id"] == run["run_id"]

    # Its reports are now written: the next --resume has nothing to do.
    again = runner.invoke(app, ["check", "--resume", "--quiet"])
    assert again.exit_code == 2 and "no unfinished check run" in again.output


def test_a_run_whose_reports_were_written_is_not_found_by_resume(project):  # noqa: F811
    first = runner.invoke(app, ["check", "--quiet", "--no-html"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["check", "--resume", "--quiet"])
    assert again.exit_code == 2 and "no unfinished check run" in again.output

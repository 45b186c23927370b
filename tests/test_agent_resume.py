"""Crash-safe runs: a run killed with SIGKILL at a random step and resumed has the same effects on its
tools' environment as an uninterrupted run, and no side effect is doubled."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

import failpath as fp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import agent_kill_app as app  # noqa: E402

FAILPATH = str(Path(sys.executable).parent / "failpath")


def _run(tmp_path: Path, args: list[str], kill: str = "") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "FAILPATH_TEST_ENV": str(tmp_path / "env.db"),
        "FAILPATH_TEST_STORE": str(tmp_path / "store.db"),
        "FAILPATH_TEST_KILL": kill,
    }
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def _script(tmp_path: Path, *args: str, kill: str = "") -> subprocess.CompletedProcess:
    return _run(tmp_path, [sys.executable, str(HERE / "agent_kill_app.py"), *args], kill)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    where = tmp_path_factory.mktemp("clean")
    done = _script(where, "run", "r1")
    assert done.returncode == 0 and done.stdout.strip() == "answered", done.stderr
    return app.effects(str(where / "env.db"))


# Kill points where the run can lose no knowledge: between steps, in a model step, inside an
# idempotent tool, or inside any tool after its effect was committed (the checkpoint not yet written).
_SAFE_POINTS = [f"model:{n}" for n in range(8)] + [
    *(f"lookup:{n}:{phase}" for n in range(2) for phase in ("before", "after")),
    *(f"set_status:0:{phase}" for phase in ("before", "after")),
    *(f"{name}:{n}:after" for name in ("add_note", "charge") for n in range(2)),
]


# The first kill covers each kind of point; the second (in the resumed process) is drawn at random.
_FIRST = ["model:0", "model:5", "lookup:1:before", "set_status:0:before", "set_status:0:after",
          "add_note:0:after", "charge:0:after", "charge:1:after", "add_note:1:after"]


@pytest.mark.parametrize("first", _FIRST)
def test_a_run_killed_at_random_steps_and_resumed_has_the_effects_of_an_uninterrupted_run(tmp_path, uninterrupted, first):
    second = random.Random(f"{first}-{os.getpid()}").choice(_SAFE_POINTS)
    killed = _script(tmp_path, "run", "r1", kill=first)
    assert killed.returncode == -9, (first, killed.stderr)
    again = _run(tmp_path, [FAILPATH, "runs", "resume", "r1", "--store", str(tmp_path / "store.db")], kill=second)  # killed again, maybe
    if again.returncode == -9:
        again = _run(tmp_path, [FAILPATH, "runs", "resume", "r1", "--store", str(tmp_path / "store.db")])
    assert again.returncode == 0, (first, second, again.stderr)
    assert again.stdout.startswith("answered"), again.stdout
    assert app.effects(str(tmp_path / "env.db")) == uninterrupted, (first, second)
    store = fp.store.open_store(tmp_path / "store.db")
    try:
        kinds = [kind for _, kind, _ in store.checkpoints("r1")]
        assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("end") == 1
        trace = store.query_traces(policy="kill-test")[0]
        assert trace.outcome == "answered" and trace.detail["run_id"] == "r1"
        tools = [s for s in trace.detail["steps"] if s["kind"] == "tool"]
        assert [s["name"] for s in tools] == [name for name, _ in app.PLAN]  # every step once, in order
    finally:
        store.close()
    shown = _run(tmp_path, [FAILPATH, "runs", "show", "r1", "--store", str(tmp_path / "store.db")])
    assert shown.returncode == 0 and shown.stdout.startswith("run r1: answered")
    assert shown.stdout.count(" tool  ") == len(app.PLAN) and "charge(" in shown.stdout
    listed = _run(tmp_path, [FAILPATH, "runs", "--store", str(tmp_path / "store.db"), "--json"])
    assert [r["kind"] for r in __import__("json").loads(listed.stdout)] == ["agent"]


@pytest.mark.parametrize("point", ["add_note:0:before", "charge:1:before"])
def test_a_call_cut_off_inside_a_tool_that_is_not_idempotent_is_not_run_again(tmp_path, uninterrupted, point):
    killed = _script(tmp_path, "run", "r1", kill=point)
    assert killed.returncode == -9
    resumed = _script(tmp_path, "resume", "r1")
    assert resumed.returncode == 0 and resumed.stdout.strip() == "answered", resumed.stderr
    effects = app.effects(str(tmp_path / "env.db"))
    table = "notes" if point.startswith("add_note") else "charges"
    assert len(effects[table]) == len(uninterrupted[table]) - 1  # it died before its effect, and was not run again
    store = fp.store.open_store(tmp_path / "store.db")
    try:
        trace = store.query_traces(policy="kill-test")[0]
        assert trace.states == ("tool_outcome_unknown",) and trace.actions == ("feed_back",)
        assert "unknown whether it ran" in trace.detail["explanations"]["tool_outcome_unknown"]
    finally:
        store.close()


def test_resuming_a_run_that_is_not_there_names_it(tmp_path):
    (tmp_path / "store.db").touch()
    fp.store.open_store(tmp_path / "store.db").close()
    result = _run(tmp_path, [FAILPATH, "runs", "resume", "nope", "--store", str(tmp_path / "store.db")])
    assert result.returncode == 2 and "no agent run 'nope'" in result.stderr
    with pytest.raises(fp.ConfigError, match="write the agent as module:attribute"):
        fp.resume("nope", agent="no_colon")

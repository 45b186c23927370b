"""One mapping from the actions that need no store (Default, Abstain, Clarify) to outcomes, for single
calls (``guard/resolve.py``) and agent runs (``agent/chains.py``) alike."""

from __future__ import annotations

import dataclasses

import pytest

import failpath as fp
from failpath.guard.actions import as_action
from failpath.guard.resolve import plain_outcome


def _raising(value):
    raise ValueError("no question for that")


ACTIONS = [
    (fp.Default("0", reason="a safe value"), fp.Defaulted(value="0", reason="a safe value", state="empty_input"), ("reason", "a safe value")),
    (fp.Abstain("nothing to do"), fp.Abstained(reason="nothing to do", state="empty_input"), ("reason", "nothing to do")),
    (fp.Clarify("What do you need?"), fp.Clarify(question="What do you need?", state="empty_input"), ("question", "What do you need?")),
]


@pytest.mark.parametrize("action, outcome, detail", ACTIONS)
def test_each_plain_action_maps_to_its_outcome_recording_the_action_and_the_detail(action, outcome, detail):
    acted, notes, details = [], [], {}
    got = plain_outcome(as_action(action, "test"), "   ", "empty_input", None, act=acted.append, note=notes.append, detail=details.__setitem__)
    assert got == outcome and acted == [as_action(action, "test").name] and notes == [] and details == dict([detail])


def test_other_actions_and_a_failing_question_give_no_outcome():
    acted, notes = [], []
    assert plain_outcome(fp.Escalate("q"), "x", "timeout", None, act=acted.append, note=notes.append) is None and acted == []
    assert plain_outcome(as_action(fp.Clarify(_raising), "test"), "x", "empty_input", None, act=acted.append, note=notes.append) is None
    assert acted == ["clarify"] and notes == ["clarify: the question function raised ValueError: no question for that"]


@pytest.mark.parametrize("action, outcome, detail", ACTIONS)
def test_a_single_call_and_an_agent_run_end_alike(tmp_path, action, outcome, detail):
    rules = [fp.on(fp.EmptyInput()).do(action), fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))]
    guarded = fp.Policy("one", rules=rules, store=tmp_path / "one.db").wrap(lambda text: "never")
    agent = fp.Agent(fp.Policy("run", rules=rules, store=tmp_path / "run.db"), model=lambda messages: "never")
    call, run = guarded("   "), agent.run("   ")
    assert type(call) is type(run) is type(outcome)
    assert dataclasses.replace(call, trace_id=None) == dataclasses.replace(run, trace_id=None) == outcome


def test_a_failing_question_hands_on_to_the_next_action_in_both(tmp_path):
    rules = [fp.on(fp.EmptyInput()).do(fp.Clarify(_raising), fp.Abstain("could not ask")), fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))]
    call = fp.Policy("one", rules=rules, store=tmp_path / "one.db").wrap(lambda text: "never")("   ")
    run = fp.Agent(fp.Policy("run", rules=rules, store=tmp_path / "run.db"), model=lambda messages: "never").run("   ")
    assert call.reason == run.reason == "could not ask"

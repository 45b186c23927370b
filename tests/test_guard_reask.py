"""``fp.Reask``: call the system again with what was wrong with its answer, in sync and async guards and in the check.

A plain system takes part by accepting a ``feedback`` keyword; the LLM adapters' side is in
``test_llm_reask.py``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

import failpath as fp
from failpath.store import open_store
from test_check_toy import HOSTILE, REALISTIC, make_cases, toy_kwargs


def rules(*extra):
    return [*extra, fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))]


def is_dict(value):
    return isinstance(value, dict)


def object_only(value):
    """A validator whose reason quotes the answer (as a schema error does)."""
    if not isinstance(value, dict):
        raise ValueError(f"not an object: {value}")
    return True


class Corrects:
    """Answers badly until told what was wrong ``fix_after`` times; records every feedback it got."""

    def __init__(self, bad="not json", good=None, fix_after=1):
        self.bad = bad
        self.good = {"city": "Springfield"} if good is None else good
        self.fix_after = fix_after
        self.feedback = []

    def __call__(self, text, feedback=None):
        self.feedback.append(feedback)
        turns = 0 if feedback is None else len(feedback.turns())
        return self.good if turns >= self.fix_after else self.bad


# --------------------------------------------------------------------------- the action


def test_reask_feeds_the_problem_back_and_is_recorded_as_an_attempt():
    system = Corrects()
    policy = fp.Policy("t", rules(fp.on(fp.InvalidOutput(validator=is_dict)).do(fp.Reask(2), fp.Abstain("no"))), store=False)

    outcome, trace = policy.wrap(system).call_traced("123 Main St")

    assert isinstance(outcome, fp.Answered) and outcome.value == {"city": "Springfield"} and not outcome.degraded
    first, sent = system.feedback
    assert first is None
    assert sent == fp.Feedback(
        state="invalid_output",
        problem="validator is_dict returned False",
        answer="not json",
        message="Your previous answer could not be used: validator is_dict returned False\n"
        "Answer the same request again, correcting this.",
    )
    assert [(a.action, a.state) for a in trace.attempts] == [("call", "invalid_output"), ("reask", None)]
    assert trace.actions == ("reask",) and trace.states == ("invalid_output",)
    assert trace.detail["feedback"] == [{"attempt": 2, "state": "invalid_output", "message": sent.message}]


def test_each_reask_carries_the_earlier_ones_and_the_chain_moves_on_when_they_run_out():
    system = Corrects(fix_after=5)
    policy = fp.Policy("t", rules(fp.on(fp.InvalidOutput(validator=is_dict)).do(fp.Reask(2), fp.Abstain("gave up"))), store=False)

    outcome, trace = policy.wrap(system).call_traced("x")

    assert outcome == fp.Abstained("gave up", state="invalid_output", trace_id=trace.trace_id)
    _, one, two = system.feedback
    assert one.earlier == () and two.earlier == (one,) and two.turns() == (one, two)
    assert [a.action for a in trace.attempts] == ["call", "reask", "reask", "abstain"]
    assert [f["attempt"] for f in trace.detail["feedback"]] == [2, 3]


def test_low_confidence_and_a_custom_message():
    calls = []

    def system(text, feedback=None):
        calls.append(feedback)
        return fp.Prediction("B", 0.9) if feedback else fp.Prediction("A", 0.3)

    reask = fp.Reask(1, message="[{state}] {problem}. Think again.")
    policy = fp.Policy("t", rules(fp.on(fp.LowConfidence(below=0.5)).do(reask, fp.Abstain("unsure"))), store=False)

    outcome = policy.wrap(system)("q")

    assert outcome.value == "B" and outcome.confidence == 0.9
    assert calls[1].state == "low_confidence" and calls[1].answer == "A"
    assert calls[1].message == f"[low_confidence] {calls[1].problem}. Think again." and "0.3" in calls[1].problem


def test_an_output_rejected_feeds_back_its_message_and_raw_text():
    def system(text, feedback=None):
        if feedback is None:
            raise fp.OutputRejected("the answer is not valid JSON (expected value at line 1)", raw="Sure! {city: x}")
        return {"city": "x"}

    policy = fp.Policy("t", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Abstain("no"))), store=False)
    seen = []
    outcome = policy.wrap(lambda text, feedback=None: seen.append(feedback) or system(text, feedback))("q")

    assert outcome.value == {"city": "x"}
    assert seen[1].answer == "Sure! {city: x}"
    assert seen[1].problem == "the answer is not valid JSON (expected value at line 1)"


async def test_async_guard_reasks_with_feedback():
    seen = []

    async def system(text, feedback=None):
        seen.append(feedback)
        await asyncio.sleep(0)
        return {"ok": True} if feedback else "nope"

    policy = fp.Policy("t", rules(fp.on(fp.InvalidOutput(validator=is_dict)).do(fp.Reask(1), fp.Abstain("no"))), store=False)
    outcome, trace = await policy.wrap(system).call_traced("q")

    assert outcome.value == {"ok": True}
    assert seen[1].state == "invalid_output" and seen[1].answer == "nope"
    assert [a.action for a in trace.attempts] == ["call", "reask"]


@pytest.mark.parametrize("timed", [False, True])
def test_sync_guard_reasks_through_the_worker_thread_under_a_time_limit(timed):
    system = Corrects()
    extra = [fp.on(fp.Timeout(after=5.0)).do(fp.Abstain("slow"))] if timed else []
    policy = fp.Policy("t", rules(*extra, fp.on(fp.InvalidOutput(validator=is_dict)).do(fp.Reask(1), fp.Abstain("no"))), store=False)
    with policy:
        assert policy.wrap(system)("q").value == {"city": "Springfield"}
    assert system.feedback[1] is not None


# --------------------------------------------------------------------------- when a re-ask cannot run


def test_wrap_refuses_a_system_that_takes_no_feedback():
    def parse(text):
        return text

    policy = fp.Policy("p", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Abstain("no"))), store=False)
    with pytest.raises(fp.PolicyError, match=r"rule 1 on invalid_output: Reask\(1\) calls \S*parse again .* takes no feedback keyword") as info:
        policy.wrap(parse)
    assert "def system(input, feedback=None)" in str(info.value) and "fp.Retry" in str(info.value)


def test_wrap_checks_the_fallback_a_reask_follows_and_accepts_kwargs():
    def primary(text, **kwargs):
        return text

    def backup(text):
        return text

    ok = fp.Policy("p", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Fallback(backup), fp.Abstain("no"))), store=False)
    ok.wrap(primary)  # the re-ask reaches the primary, which takes **kwargs
    bad = fp.Policy("p", rules(fp.on(fp.InvalidOutput()).do(fp.Fallback(backup), fp.Reask(1), fp.Abstain("no"))), store=False)
    with pytest.raises(fp.PolicyError, match=r"calls \S*backup again"):
        bad.wrap(primary)


def test_reask_on_a_timeout_or_provider_error_is_skipped_and_linted():
    calls = []

    def system(text, feedback=None):
        calls.append(feedback)
        raise fp.ProviderFailure("down", status=503)

    policy = fp.Policy("t", rules(fp.on(fp.ProviderError()).do(fp.Reask(2), fp.Default("d"))), store=False)
    outcome, trace = policy.wrap(system).call_traced("q")

    assert outcome.value == "d" and calls == [None]
    assert any("reask skipped on provider_error" in n for n in trace.detail["notes"])
    findings = [f for f in policy.lint().findings if f.code == "reask-without-answer"]
    assert len(findings) == 1 and findings[0].severity == "warning" and "use fp.Retry" in findings[0].message


def test_reask_counts_against_max_attempts():
    system = Corrects(fix_after=9)
    policy = fp.Policy(
        "t",
        rules(fp.on(fp.InvalidOutput(validator=is_dict)).do(fp.Reask(5), fp.Abstain("no")), fp.on(fp.BudgetExceeded()).do(fp.Default("cap"))),
        max_attempts=3,
        store=False,
    )
    outcome, trace = policy.wrap(system).call_traced("q")
    assert outcome.value == "cap" and len(system.feedback) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [({"times": 0}, "times must be an integer"), ({"message": "{nope}"}, "only fields are {state} and {problem}"), ({"message": " "}, "non-empty")],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(fp.PolicyError, match=message):
        fp.Reask(**kwargs)


def test_repr_and_handled_states():
    assert repr(fp.Reask(2)) == "Reask(2)" and repr(fp.Reask(1, backoff=0.5)) == "Reask(1, backoff=0.5)"
    policy = fp.Policy("t", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Abstain("no"))), store=False)
    assert policy.handled_states()["invalid_output"] == ("reask", "abstain")


# --------------------------------------------------------------------------- traces and the check


@pytest.mark.parametrize("raw", [False, True])
def test_feedback_text_is_redacted_in_stored_traces_unless_raw_inputs_are_kept(tmp_path, raw):
    system = Corrects(bad="write to jane.doe@example.com or call +1 415 555 0100")
    policy = fp.Policy(
        "t", rules(fp.on(fp.InvalidOutput(validator=object_only)).do(fp.Reask(1), fp.Abstain("no"))),
        store=tmp_path / "s.db", store_raw_inputs=raw,
    )
    with policy:
        _, trace = policy.wrap(system).call_traced("q")
    with open_store(tmp_path / "s.db") as store:
        stored = store.get_trace(trace.trace_id)
    message = stored.detail["feedback"][0]["message"]
    assert system.feedback[1].message.count("jane.doe@example.com") == 1  # the system itself is told everything
    if raw:
        assert "jane.doe@example.com" in message and "+1 415 555 0100" in message
    else:
        assert "jane.doe@example.com" not in message and "<email>" in message and "<phone>" in message
        assert "555 0100" not in json.dumps(stored.detail)


class ToyWithFeedback:
    """The toy world's system, that answers the unsure cases right once told its confidence was low."""

    def __call__(self, text, feedback=None):
        from test_check_toy import ToySystem

        answer = ToySystem()(text)
        if feedback is not None and feedback.state == "low_confidence" and answer.value == "?":
            return fp.Prediction(text.strip().upper(), 0.8)
        return answer


def test_the_check_runs_reasks_and_records_them(tmp_path):
    from test_check_toy import full_policy

    base = full_policy()
    reask_rules = [
        fp.on(fp.LowConfidence(below=0.5)).do(fp.Reask(1), fp.Abstain("unsure")) if r.state.name == "low_confidence" else r
        for r in base.rules
    ]
    policy = fp.Policy("toy-reask", reask_rules, store=False)
    result = fp.check(**toy_kwargs(tmp_path, system=ToyWithFeedback(), policy=policy, cases=make_cases(40), suites=[HOSTILE, REALISTIC]))
    with open_store(tmp_path / "store.db") as store:
        rows = [r["data"] for r in store.results(result.run_id)]
    reasked = [r for r in rows if "reask" in r["actions"]]
    assert reasked, "no request was re-asked"
    clean = [r for r in reasked if r["suite"] == "clean"]
    assert clean and all(r["outcome"] == "answered" and r["correct"] for r in clean)
    assert all(r["raw_output"] == "?" for r in clean)  # the raw system, called once, still answers "?"


def test_an_agent_refuses_a_reask_and_names_what_to_use():
    policy = fp.Policy("p", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Abstain("no"))), store=False)
    with pytest.raises(fp.PolicyError, match=r"rule 1 on invalid_output: Reask\(1\) re-asks a guarded system; in an agent, use FeedBack"):
        fp.Agent(policy, model=lambda messages: "x")


async def test_the_check_reasks_an_async_system(tmp_path):
    from test_check_toy import full_policy

    class AsyncToy:
        async def __call__(self, text, feedback=None):
            return ToyWithFeedback()(text, feedback)

    policy = fp.Policy("toy-reask", [
        fp.on(fp.LowConfidence(below=0.5)).do(fp.Reask(1), fp.Abstain("unsure")) if r.state.name == "low_confidence" else r
        for r in full_policy().rules
    ], store=False)
    result = await asyncio.to_thread(fp.check, **toy_kwargs(tmp_path, system=AsyncToy(), policy=policy, suites=[REALISTIC]))
    with open_store(tmp_path / "store.db") as store:
        rows = [r["data"] for r in store.results(result.run_id)]
    clean = [r for r in rows if "reask" in r["actions"] and r["suite"] == "clean"]
    assert clean and all(r["outcome"] == "answered" and r["correct"] for r in clean)


@pytest.mark.parametrize("is_async", [False, True])
def test_samples_after_a_reask_are_drawn_with_its_feedback(is_async):
    system = Corrects()
    target = system
    if is_async:
        async def target(text, feedback=None):
            return system(text, feedback)

    policy = fp.Policy("t", rules(
        fp.on(fp.InvalidOutput(validator=is_dict)).do(fp.Reask(1), fp.Abstain("no")),
        fp.on(fp.Inconsistent(samples=3)).do(fp.Abstain("disagree")),
    ), store=False)
    guarded = policy.wrap(target)
    outcome, trace = asyncio.run(guarded.call_traced("q")) if is_async else guarded.call_traced("q")
    assert outcome.value == {"city": "Springfield"}, trace
    assert [a.action for a in trace.attempts] == ["call", "reask", "sample", "sample"]
    assert system.feedback[0] is None and all(f is not None for f in system.feedback[1:])


def test_the_check_refuses_a_reask_its_system_cannot_take_before_any_call(tmp_path):
    from test_check_toy import ToySystem

    calls = []

    class Counting(ToySystem):
        def __call__(self, text):
            calls.append(text)
            return super().__call__(text)

    policy = fp.Policy("r", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Abstain("no"))), store=False)
    with pytest.raises(fp.PolicyError, match=r"Reask\(1\) calls Counting again .* takes no feedback keyword argument"):
        fp.check(**toy_kwargs(tmp_path, system=Counting(), policy=policy))
    assert calls == []

"""Approvals: a risky call waits as a review ticket; the run continues exactly once with the decision;
a rejected or expired call never runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import failpath as fp

FAILPATH = str(__import__('pathlib').Path(sys.executable).parent / "failpath")


class Killed(BaseException):
    """Stands for the process dying inside a tool (not an Exception: nothing catches it)."""


def make_agent(store, effects, *, kill=None, default=None, idempotent=False):
    """A refunds agent: one risky refund, then a final answer. ``kill`` is "before" / "after" the refund's effect, or None."""

    def refund(order_id: str, amount: float) -> str:
        if kill and kill[0] == "before":
            kill.pop(0)
            raise Killed()
        effects.append((order_id, amount))
        if kill and kill[0] == "after":
            kill.pop(0)
            raise Killed()
        return "refunded"

    def model(messages):
        results = [m for m in messages if m["role"] == "tool"]
        if not results:
            return fp.ModelTurn("", (fp.ToolCall("c1", "issue_refund", {"order_id": "A1", "amount": 250.0}),))
        return f"done: {results[-1]['content']}"

    policy = fp.Policy(
        "approvals",
        rules=[
            fp.on(fp.RiskyToolCall()).do(fp.RequireApproval("approvals", deadline=3600, default=default)),
            fp.on(fp.ToolOutcomeUnknown()).do(fp.FeedBack()),
            fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
        ],
        store=store,
    )
    tools = [fp.tool(refund, name="issue_refund", risky=lambda args: args["amount"] > 100, idempotent=idempotent)]
    return fp.Agent(policy, model=model, tools=tools)


def test_an_approved_call_runs_once_and_the_run_goes_on(tmp_path):
    effects: list = []
    agent = make_agent(tmp_path / "s.db", effects)
    held = agent.run("refund A1")
    assert isinstance(held, fp.Escalated) and held.state == "risky_tool_call" and held.queue == "approvals"
    assert effects == []
    store = agent.policy.trace_store.get()
    ticket = store.get_ticket(held.ticket_id)
    assert ticket.output["tool"] == "issue_refund" and "250.0" in ticket.output["arguments"] and ticket.default == "reject"
    assert agent.resume(held.trace_id) == held  # still open: still waiting, nothing ran
    store.resolve_ticket(held.ticket_id, "approve", reviewer="ann")
    done = agent.resume(held.trace_id)
    assert done.value == "done: refunded" and effects == [("A1", 250.0)]
    assert agent.resume(held.trace_id) == done and effects == [("A1", 250.0)]  # a finished run returns its outcome again
    agent.policy.flush()
    trace = store.get_trace(done.trace_id)
    assert trace.detail["run_id"] == held.trace_id and "approve" in trace.actions
    assert any("resolved by ann: approve" in note for note in trace.detail["notes"])


@pytest.mark.parametrize("answer", ["reject", "no", {"decision": "reject"}, "maybe"])
def test_a_rejected_call_never_runs_and_the_model_is_told(tmp_path, answer):
    effects: list = []
    agent = make_agent(tmp_path / "s.db", effects)
    held = agent.run("refund A1")
    agent.policy.trace_store.get().resolve_ticket(held.ticket_id, answer)
    done = agent.resume(held.trace_id)
    assert effects == [] and done.value.startswith("done: rejected: issue_refund was not approved")


@pytest.mark.parametrize(("default", "ran"), [(None, False), (fp.Reject(), False), (fp.Approve(), True)])
def test_an_expired_approval_takes_its_default(tmp_path, default, ran):
    effects: list = []
    agent = make_agent(tmp_path / "s.db", effects, default=default)
    held = agent.run("refund A1")
    store = agent.policy.trace_store.get()
    store.expire_tickets(older_than=0)
    agent.resume(held.trace_id)
    assert bool(effects) is ran
    assert store.get_ticket(held.ticket_id).status is fp.TicketStatus.EXPIRED


def test_a_ticket_past_its_deadline_expires_when_the_run_is_resumed(tmp_path):
    effects: list = []
    agent = make_agent(tmp_path / "s.db", effects)
    agent.policy.rules[0].actions[0].deadline = 0.01  # the ticket's deadline is set from this when it opens
    held = agent.run("refund A1")
    import time

    time.sleep(0.05)
    assert agent.resume(held.trace_id).value.startswith("done: rejected")
    assert effects == []
    with pytest.raises(fp.AlreadyResolved):
        agent.policy.trace_store.get().resolve_ticket(held.ticket_id, "approve")


def test_the_run_continues_in_another_process_with_the_cli_decision(tmp_path):
    effects_file = tmp_path / "effects.txt"
    module = tmp_path / "refund_agent.py"
    module.write_text(textwrap.dedent(f"""
        import failpath as fp
        def refund(order_id: str, amount: float) -> str:
            with open({str(effects_file)!r}, "a") as f:
                f.write(order_id + "\\n")
            return "refunded"
        def model(messages):
            results = [m for m in messages if m["role"] == "tool"]
            if not results:
                return fp.ModelTurn("", (fp.ToolCall("c1", "issue_refund", {{"order_id": "A1", "amount": 250.0}}),))
            return "done: " + results[-1]["content"]
        policy = fp.Policy("approvals", rules=[fp.on(fp.RiskyToolCall()).do(fp.RequireApproval()),
            fp.on(fp.Unexpected()).do(fp.Abstain("u"))], store={str(tmp_path / "s.db")!r})
        agent = fp.Agent(policy, model=model, tools=[fp.tool(refund, name="issue_refund", risky=True)], ref="refund_agent:agent")
    """))
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-c", "import refund_agent; o = refund_agent.agent.run('refund A1'); print(o.trace_id, o.ticket_id)"]
    run_id, ticket_id = subprocess.run(run, capture_output=True, text=True, check=True, env=env, cwd=tmp_path).stdout.split()
    cli = [FAILPATH, "review", "resolve", ticket_id, "--answer", '"approve"', "--store", str(tmp_path / "s.db")]
    resolved = subprocess.run(cli, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert resolved.returncode == 0, resolved.stderr
    resume = [FAILPATH, "runs", "resume", run_id, "--store", str(tmp_path / "s.db")]
    for _ in range(2):  # the second resume finds the run finished
        result = subprocess.run(resume, capture_output=True, text=True, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "answered" in result.stdout and "done: refunded" in result.stdout
    assert effects_file.read_text() == "A1\n"


def test_two_processes_resuming_at_once_continue_the_run_once(tmp_path):
    effects: list = []
    agent = make_agent(tmp_path / "s.db", effects)
    held = agent.run("refund A1")
    agent.policy.trace_store.get().resolve_ticket(held.ticket_id, "approve")
    results: list = []

    def resume():
        other = make_agent(tmp_path / "s.db", effects)  # its own policy, store connection and record
        try:
            results.append(other.resume(held.trace_id))
        except fp.RunBusy as exc:
            results.append(exc)
        finally:
            other.policy.close()

    threads = [threading.Thread(target=resume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert effects == [("A1", 250.0)]
    assert any(isinstance(r, fp.Answered) for r in results)


# --------------------------------------------------------------------------- the property

_EVENTS = st.lists(
    st.sampled_from(["approve", "reject", "expire", "resume", "kill-before", "kill-after", "restart"]), max_size=10
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=_EVENTS, default=st.sampled_from([None, fp.Approve()]), idempotent=st.booleans())
def test_a_rejected_or_expired_call_never_runs_and_an_approved_one_runs_at_most_once(tmp_path_factory, events, default, idempotent):
    path = tmp_path_factory.mktemp("approvals") / "s.db"
    effects: list = []
    kill: list = []
    agent = make_agent(path, effects, kill=kill, default=default, idempotent=idempotent)
    held = agent.run("refund A1")
    store = agent.policy.trace_store.get()
    ticket_id = held.ticket_id
    for event in events:
        if event in ("approve", "reject"):
            try:
                store.resolve_ticket(ticket_id, event)
            except fp.AlreadyResolved:
                pass
        elif event == "expire":
            store.expire_tickets(older_than=0)
        elif event.startswith("kill"):
            kill[:] = [event.split("-")[1]]  # the next run of the tool dies there
        elif event == "restart":  # a new process: a new agent object over the same store
            agent.policy.close()
            agent = make_agent(path, effects, kill=kill, default=default, idempotent=idempotent)
            store = agent.policy.trace_store.get()
        else:
            try:
                agent.resume(held.trace_id)
            except Killed:
                pass
    ticket = store.get_ticket(ticket_id)
    approved = (ticket.status is fp.TicketStatus.RESOLVED and ticket.answer == "approve") or (
        ticket.status is fp.TicketStatus.EXPIRED and default is not None
    )
    if not approved:
        assert effects == []  # rejected, expired to Reject, or still open: never ran
    # an idempotent tool may run again after a kill (the same effect again); any other tool, never
    assert len(set(effects) if idempotent else effects) <= 1
    # finish: resume until the run ends (no more kills); the call ran at most once more for idempotent tools only
    kill.clear()
    final = agent.resume(held.trace_id)
    if ticket.status is fp.TicketStatus.OPEN:
        assert isinstance(final, fp.Escalated) and effects == []
    else:
        assert isinstance(final, fp.Answered)
        assert len(set(effects) if idempotent else effects) <= 1
        if not approved:
            assert effects == []
    agent.policy.close()

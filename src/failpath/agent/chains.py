"""The rule for a failure state in an agent run, and the actions that end the run.

Functions of the :class:`~failpath.agent.runner.Agent` they act for (passed as ``agent``): which rule
decides a state, running a terminal action (``Default``, ``Abstain``, ``Clarify``, ``Escalate``,
``Raise``) by raising :class:`~failpath.agent.segment.Ended`, and opening a review ticket.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from failpath.agent.record import RunRecord
from failpath.agent.segment import Ended, Segment
from failpath.core import Abstained, Escalated, Ticket
from failpath.guard.actions import Escalate, Raise
from failpath.guard.resolve import plain_outcome
from failpath.guard.text import canonical_text, jsonable, preview
from failpath.guard.trace_ids import next_trace_id

__all__ = ["rule_for", "decide", "end_with", "end_unexpected", "last_resort", "open_ticket"]


def rule_for(agent: Any, state: str, claims: Callable[[Any], bool] | None = None) -> tuple[str, int]:
    """The first rule on ``state`` (that ``claims`` accepts), else the rule on unexpected."""
    for detector, index in agent._rules.get(state, ()):
        if claims is None or claims(detector):
            return state, index
    return "unexpected", agent.policy.table.unexpected_index


def decide(agent: Any, record: RunRecord, seg: Segment, state: str, why: Any, *, claims: Callable[[Any], bool] | None = None) -> tuple[str, list[Any]]:
    """Record ``state`` and return the state that decides (``unexpected`` when no rule) and its actions."""
    seg.states.append(state)
    seg.explanations.setdefault(state, why)
    decided, index = rule_for(agent, state, claims)
    if decided != state:
        seg.states.append("unexpected")
        seg.explanations.setdefault("unexpected", f"{state} has no rule: {why}")
    return decided, list(agent.policy.rules[index].actions)


def end_with(agent: Any, record: RunRecord, store: Any, seg: Segment, action: Any, state: str, why: Any) -> None:
    """Run a terminal action: raises ``Ended`` when it resolves the run, returns when it could not."""
    trace_id = record.trace_id
    outcome = plain_outcome(action, record.value, state, trace_id, act=seg.actions.append, note=seg.notes.append)
    if outcome is not None:
        raise Ended(outcome)
    if isinstance(action, Escalate):
        seg.actions.append("escalate")
        ticket_id = open_ticket(agent, record, store, seg, action.queue, state, action.deadline, action.default, why)
        if ticket_id is not None:
            raise Ended(Escalated(ticket_id=ticket_id, queue=action.queue, state=state, trace_id=trace_id))
        return
    if isinstance(action, Raise):
        seg.actions.append("raise")
        message = f"{agent.policy.name}: {state}" + (f": {why}" if isinstance(why, str) else "")
        raise Ended(None, exception=action.make(message))


def last_resort(record: RunRecord, seg: Segment, state: str) -> None:
    seg.actions.append("abstain")
    seg.notes.append("the rule on unexpected ran out of actions; abstained")
    raise Ended(Abstained(reason="no action of the policy resolved the run", state=state, trace_id=record.trace_id))


def open_ticket(agent: Any, record: RunRecord, store: Any, seg: Segment, queue: str, state: str, deadline: float | None, default: Any, output: Any) -> str | None:
    if store is None:
        seg.notes.append(f"{state}: no store to keep a ticket in {queue!r} (Policy(store=False)?)")
        return None
    created = time.time()
    text = canonical_text(record.value)
    ticket = Ticket(
        ticket_id=next_trace_id(),
        queue=queue,
        created=created,
        policy=agent.policy.name,
        trace_id=record.trace_id,
        input_preview=preview(text),
        input_raw=text if agent.policy.store_raw_inputs else None,
        output=jsonable(output),
        confidence=None,
        state=state,
        deadline=None if deadline is None else created + deadline,
        default=default,
    )
    try:
        return store.create_ticket(ticket)
    except Exception as exc:
        seg.notes.append(f"{state}: the store refused the ticket ({type(exc).__name__}: {exc})")
        return None


def end_unexpected(agent: Any, record: RunRecord, store: Any, seg: Segment, why: Any) -> None:
    """Run the actions of the rule on unexpected (raises ``Ended`` at the first that resolves the run)."""
    for action in agent.policy.rules[agent.policy.table.unexpected_index].actions:
        end_with(agent, record, store, seg, action, "unexpected", why)

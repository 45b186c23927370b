"""The actions that end a call: each turns a run into its outcome (or the exception ``Raise`` raises).

``Clarify``, ``Escalate``, ``Abstain``, ``Default`` and ``Raise``; plus the two ways a call ends with no
action to take: it answered, or nothing resolved it (the last resort), and the safety net for an
error of failpath's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from failpath.core import Abstained, Answered, Clarify, Defaulted, Escalated, Ticket
from failpath.guard.actions import Abstain, ClarifyAction, Default, Escalate, Raise
from failpath.guard.run import Run
from failpath.guard.steps import Resolution
from failpath.guard.text import describe_error, preview, private
from failpath.guard.trace_ids import next_trace_id
from failpath.guard.tracing import build_trace

__all__ = ["answered", "resolve", "plain_outcome", "last_resort", "internal_error"]

log = logging.getLogger("failpath.guard")


def answered(run: Run) -> Resolution:
    """The call answered: ``Answered`` with the kept answer."""
    return Resolution(Answered(run.answer, run.answer_confidence, run.degraded, state=run.decided, trace_id=run.trace_id))


def plain_outcome(
    action: Any, value: Any, state: str, trace_id: str | None, *,
    act: Callable[[str], None], note: Callable[[str], None], detail: Callable[[str, Any], None] | None = None,
) -> Defaulted | Abstained | Clarify | None:
    """The outcome of an action that needs no store (``Default``, ``Abstain``, ``fp.Clarify``) for a single
    call or an agent run; None for any other action, or when the question function raised.

    ``act(name)`` records the action taken, ``note(text)`` what went wrong that did not change the outcome,
    ``detail(key, value)`` (when given) the reason or the question, for the trace."""
    if isinstance(action, Default):
        act("default")
        if detail is not None:
            detail("reason", action.reason)
        return Defaulted(value=action.value, reason=action.reason, state=state, trace_id=trace_id)
    if isinstance(action, Abstain):
        act("abstain")
        if detail is not None:
            detail("reason", action.reason)
        return Abstained(reason=action.reason, state=state, trace_id=trace_id)
    if isinstance(action, ClarifyAction):
        act("clarify")
        try:
            question = action.ask(value)
        except Exception as exc:
            note(f"clarify: the question function raised {describe_error(exc)}")
            return None
        if detail is not None:
            detail("question", question)
        return Clarify(question=question, state=state, trace_id=trace_id)
    return None


def resolve(run: Run, action: Any, state: str) -> Resolution | None:
    """End the call with a terminal action; None when the action could not resolve it."""
    trace_id = run.trace_id
    if isinstance(action, (Default, Abstain, ClarifyAction)):
        outcome = plain_outcome(action, run.value, state, trace_id, act=run.actions.append, note=run.note, detail=run.set_detail)
        return None if outcome is None else Resolution(outcome)
    if isinstance(action, Escalate):
        run.actions.append("escalate")
        return _escalate(run, action, state, trace_id)
    if isinstance(action, Raise):
        run.actions.append("raise")
        message = f"{run.table.name}: {state}"
        why = (run.explanations or {}).get(state)
        if isinstance(why, str):
            message += f": {why}"
        return Resolution(None, exception=action.make(message), cause=run.last_error)
    raise AssertionError(f"unknown action {action!r}")


def _escalate(run: Run, action: Escalate, state: str, trace_id: str) -> Resolution | None:
    """Open the review ticket of an ``Escalate`` and write the call's trace with it, in one transaction (a
    killed process never leaves a ticket whose trace is lost); None (noted) when no store keeps the ticket."""
    store = run.store.get()
    if store is None:
        run.note(f"escalate to {action.queue!r}: no store to keep the ticket in (Policy(store=False)?)")
        return None
    ticket = _ticket(run, action, state)
    run.ticket_id = ticket.ticket_id
    run.set_detail("queue", action.queue)
    resolution = Resolution(Escalated(ticket_id=ticket.ticket_id, queue=action.queue, state=state, trace_id=trace_id))
    trace = None
    modern = getattr(store, "ticket_carries_trace", False)
    if modern:
        try:
            trace = build_trace(run, resolution)
        except Exception:  # the trace is built (and its failure logged) again when the call ends
            trace = None
    try:
        if modern:  # the wait for a store locked by another process keeps to the call's deadline
            store.create_ticket(ticket, trace=trace, timeout=run.time_left())
        else:
            store.create_ticket(ticket)
    except Exception as exc:
        run.ticket_id = None
        run.detail.pop("queue", None)  # type: ignore[union-attr]
        run.note(f"escalate to {action.queue!r}: the store refused the ticket ({describe_error(exc)})")
        return None
    run.stored_trace = trace
    return resolution


def _ticket(run: Run, action: Escalate, state: str) -> Ticket:
    """The review ticket an ``Escalate`` opens for this call."""
    created = time.time()
    return Ticket(
        ticket_id=next_trace_id(),  # 32 hex digits, never repeated, without a system call
        queue=action.queue,
        created=created,
        policy=run.table.name,
        trace_id=run.trace_id,
        input_preview=preview(run.text),
        input_raw=run.text if run.table.store_raw_inputs else None,
        output=run.last_output if run.table.store_raw_inputs else private(run.last_output, run.text),
        confidence=run.last_confidence,
        state=state,
        deadline=None if action.deadline is None else created + action.deadline,
        default=action.default,
        output_schema=action.output_schema if action.output_schema is not None else run.table.output_schema,
    )


def last_resort(run: Run, state: str) -> Resolution:
    """The rule on unexpected ran out of actions: abstain, and say so in the trace."""
    reason = "no action of the policy resolved the call"
    run.actions.append("abstain")
    run.note("the rule on unexpected ran out of actions; abstained")
    run.set_detail("reason", reason)
    return Resolution(Abstained(reason=reason, state=state, trace_id=run.trace_id))


def internal_error(run: Run, exc: Exception) -> Resolution:
    """The safety net: failpath itself failed on this call; abstain and say why in the trace."""
    reason = "failpath could not finish this call"
    run.states.append("unexpected")
    run.decided = "unexpected"
    run.explain("unexpected", f"internal error: {describe_error(exc)}")
    run.set_detail("reason", reason)
    run.actions.append("abstain")
    log.exception("failpath: internal error while guarding a call of %s", run.system_name)
    return Resolution(Abstained(reason=reason, state="unexpected", trace_id=run.trace_id))

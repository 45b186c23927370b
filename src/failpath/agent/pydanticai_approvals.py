"""Approvals for a pydantic-ai run: a held call defers the run on a review ticket; the decision continues it once.

pydantic-ai has its own way to pause a run on a tool call a person must approve: the call is *deferred*
(``ApprovalRequired``), the other calls of the same model response still run, and the run ends with
``DeferredToolRequests`` as its output; a later run over the same message history, given
``DeferredToolResults(approvals={call id: True or ToolDenied(...)})``, runs the approved calls and tells
the model about the denied ones. The adapter uses exactly that for ``RequireApproval``: it opens the
ticket, defers the call, and keeps what the continuation needs in the policy's store as the run's
checkpoints (kinds below), so ``resume`` can continue the run, in this process or another one, once the
ticket is decided. A checkpoint claims each continuation, so a run continues exactly once.

Checkpoints of a pydantic-ai run (the store's run of kind ``pydantic_ai``):

- ``approval``: the run's messages (pydantic-ai's JSON form), the held calls with their tickets (the
  first one's ``ticket_id``, ``call_id`` and ``tool`` also at the top, as ``failpath runs show`` prints
  them), and the run's record so far (steps, states, actions, counters), so the continued run's trace
  holds every step;
- ``decision``: a continuation started with these decisions (the claim);
- ``end``: the outcome the run ended in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from failpath.agent.actions import Approve, decision_of
from failpath.agent.record import RunRecord, outcome_from_dict, outcome_to_dict
from failpath.core import Escalated, Outcome, StoreError, TicketStatus
from failpath.store.base import Store

__all__ = ["RUN_KIND", "keeps_checkpoints", "save_waiting", "save_end", "load", "decide", "claim", "restore", "ended_outcome"]

#: The kind of the store's run that holds a pydantic-ai run's checkpoints.
RUN_KIND = "pydantic_ai"

# What of a run's record the ``waiting`` checkpoint keeps, so the continued run picks up its counts.
_COUNTERS = ("model_turns", "tool_calls", "tool_failures", "tokens_in", "tokens_out", "cost")


def keeps_checkpoints(store: Any) -> bool:
    """True when ``store`` keeps run checkpoints (a store of your own may keep only traces and tickets)."""
    return store is not None and type(store).add_checkpoint is not Store.add_checkpoint


def save_waiting(store: Any, record: RunRecord, messages: Any, agent_name: str, seq: int) -> None:
    """Write the ``approval`` checkpoint of a run that deferred its held calls (and register the run first)."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    if seq == 0 and store.get_run(record.run_id) is None:
        store.create_run(record.run_id, kind=RUN_KIND, config={"agent": agent_name})
    data = {
        "prompt": record.value,
        "trace_id": record.trace_id,
        "messages": ModelMessagesTypeAdapter.dump_python(messages, mode="json"),
        "waiting": list(record.held),
        **{key: record.held[0][key] for key in ("ticket_id", "call_id", "tool")},
        "steps": record.steps, "states": record.states, "actions": record.actions, "notes": record.notes,
        "explanations": record.explanations, "fingerprints": dict(record.fingerprints),
        **{name: getattr(record, name) for name in _COUNTERS},
    }
    if not store.add_checkpoint(record.run_id, seq, "approval", data):
        raise StoreError(f"run {record.run_id}: another process continued it first")


def save_end(store: Any, run_id: str, seq: int, outcome: Outcome | None, raised: str | None) -> None:
    """Write the ``end`` checkpoint of a run that was continued, and mark the store's run finished."""
    ended = outcome_to_dict(outcome) if outcome is not None else None
    store.add_checkpoint(run_id, seq, "end", {"outcome": ended, "raised": raised})
    store.finish_run(run_id, {"outcome": ended, "raised": raised})


def load(store: Any, run_id: str) -> tuple[int, str, Mapping[str, Any]]:
    """The run's last checkpoint: ``(seq, kind, data)``; ``StoreError`` when the store holds no such pydantic-ai run."""
    if not keeps_checkpoints(store):
        raise StoreError(f"resume({run_id!r}): the policy's store keeps no run checkpoints, so a pydantic-ai run cannot be continued")
    checkpoints = store.checkpoints(run_id)
    if not checkpoints or checkpoints[0][1] != "approval":
        raise StoreError(f"no pydantic-ai run {run_id!r} waiting in {getattr(store, 'path', 'the store')}; a run is kept only once it waits for an approval")
    return checkpoints[-1]


def decide(store: Any, waiting: list[Mapping[str, Any]], trace_id: str) -> dict[str, str] | Escalated:
    """``{call id: "approve" | "reject"}`` once every held call's ticket is decided (an expired one by its
    default); else ``Escalated`` on the first ticket still open."""
    decisions: dict[str, str] = {}
    for held in waiting:
        ticket = store.get_ticket(held["ticket_id"])
        if ticket.status is TicketStatus.OPEN and ticket.deadline is not None and ticket.deadline <= time.time():
            store.expire_tickets(older_than=float("inf"))
            ticket = store.get_ticket(held["ticket_id"])
        if ticket.status is TicketStatus.OPEN:
            return Escalated(ticket_id=held["ticket_id"], queue=held["queue"], state="risky_tool_call", trace_id=trace_id)
        if ticket.status is TicketStatus.RESOLVED:
            decision = decision_of(ticket.answer) or "reject"
        else:
            decision = held.get("default") or "reject"
        decisions[held["call_id"]] = "approve" if decision == Approve.name else "reject"
    return decisions


def claim(store: Any, run_id: str, seq: int, decisions: Mapping[str, str]) -> None:
    """Claim the continuation of the run (checkpoint ``seq``); ``StoreError`` when another process claimed it first."""
    if not store.add_checkpoint(run_id, seq, "decision", {"decision": dict(decisions)}):
        raise StoreError(f"run {run_id}: another process is continuing it")


def restore(record: RunRecord, data: Mapping[str, Any]) -> None:
    """Put the suspended part's steps, states, actions and counts back into the continued run's record."""
    record.steps.extend(data.get("steps") or ())
    record.states.extend(data.get("states") or ())
    record.actions.extend(data.get("actions") or ())
    record.notes.extend(data.get("notes") or ())
    for state, why in (data.get("explanations") or {}).items():
        record.explanations.setdefault(state, why)
    record.fingerprints.update(data.get("fingerprints") or {})
    for name in _COUNTERS:
        setattr(record, name, type(getattr(record, name))(data.get(name) or 0))


def ended_outcome(data: Mapping[str, Any]) -> Outcome | None:
    """The outcome an ``end`` checkpoint holds."""
    return outcome_from_dict(data["outcome"]) if data.get("outcome") else None

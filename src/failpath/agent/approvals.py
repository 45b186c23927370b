"""Approvals: a risky tool call suspends its run on a review ticket; the decision continues it exactly once."""

from __future__ import annotations

import time
from typing import Any

from failpath.agent.actions import Approve, RequireApproval, decision_of
from failpath.agent.chains import open_ticket
from failpath.agent.record import RunRecord
from failpath.agent.segment import Ended, Segment, commit
from failpath.agent.tools import ToolCall
from failpath.core import Escalated, TicketStatus
from failpath.guard.text import canonical_text, preview

__all__ = ["suspend", "await_decision"]


def suspend(agent: Any, record: RunRecord, store: Any, seg: Segment, action: RequireApproval, call: ToolCall, arguments: dict[str, Any], why: str) -> None:
    """Open the approval ticket and suspend the run (raises ``Ended`` with ``Escalated``); returns when there is no store."""
    shown = {"tool": call.name, "arguments": preview(canonical_text(arguments)), "why": why}
    ticket_id = open_ticket(agent, record, store, seg, action.queue, "risky_tool_call", action.deadline, action.default.name, shown)
    if ticket_id is None:
        return
    commit(record, store, seg, "approval", {"call_id": call.id, "ticket_id": ticket_id, "queue": action.queue, "default": action.default.name, "trace_id": record.trace_id})
    raise Ended(Escalated(ticket_id=ticket_id, queue=action.queue, state="risky_tool_call", trace_id=record.trace_id))


def await_decision(record: RunRecord, store: Any) -> None:
    """Read the approval's ticket: record the decision (once) and return, or raise ``Ended`` while it waits."""
    waiting = record.waiting or {}
    ticket_id = waiting["ticket_id"]
    ticket = store.get_ticket(ticket_id)
    if ticket.status is TicketStatus.OPEN and ticket.deadline is not None and ticket.deadline <= time.time():
        store.expire_tickets(older_than=float("inf"))
        ticket = store.get_ticket(ticket_id)
    if ticket.status is TicketStatus.OPEN:  # still waiting: the same outcome as when the run was suspended
        queue = waiting.get("queue") or ticket.queue
        raise Ended(Escalated(ticket_id=ticket_id, queue=queue, state="risky_tool_call", trace_id=waiting.get("trace_id")), quiet=True)
    if ticket.status is TicketStatus.RESOLVED:
        decision = decision_of(ticket.answer) or "reject"
        how = f"resolved by {ticket.reviewer or 'a reviewer'}: {decision}"
    else:
        decision = waiting.get("default") or "reject"
        how = f"expired; the default decides: {decision}"
    seg = record.current
    seg.notes.append(f"approval {ticket_id} {how}")
    commit(record, store, seg, "decision", {"call_id": waiting["call_id"], "ticket_id": ticket_id, "decision": "approve" if decision == Approve.name else "reject"})

"""Rows and values: the column tuples a backend writes, and the values rebuilt from the rows it reads.

Backend-neutral: a row read back is anything indexed by column name (``sqlite3.Row``, a dict). The
column orders below are the store's tables' (``TRACE_COLUMNS``, ``TICKET_COLUMNS``), whatever the backend.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from failpath.core import Attempt, StoreError, Ticket, TicketStatus, Trace, safe_text
from failpath.store.jsonsafe import dumps

__all__ = [
    "TRACE_COLUMNS",
    "TRACE_STATE_COLUMNS",
    "TICKET_COLUMNS",
    "TICKET_WIDTH",
    "trace_rows",
    "ticket_row",
    "row_to_trace",
    "row_to_ticket",
    "row_to_run",
    "row_to_resolution",
    "damaged",
    "real",
    "text",
    "when",
]

#: The ``traces`` columns a trace row fills, in the order of :func:`trace_rows`'s first tuple.
TRACE_COLUMNS = (
    "trace_id, time, policy, outcome, state, degraded, confidence, latency_ms, ticket_id, input_digest, "
    "input_preview, input_raw, output, states, actions, attempts, n_attempts, usage, detail"
)
#: The ``trace_states`` columns, in the order of the state rows of :func:`trace_rows`.
TRACE_STATE_COLUMNS = "state, time, trace_id, policy, outcome"
#: The ``tickets`` columns, in the order of :func:`ticket_row` (``default`` is quoted: a keyword in SQL).
TICKET_COLUMNS = (
    'ticket_id, queue, created, policy, trace_id, input_preview, input_raw, output, confidence, state, status, '
    'deadline, "default", answer, note, reviewer, resolved_at, output_schema'
)
#: How many columns :func:`ticket_row` fills (the placeholders of a backend's ticket insert).
TICKET_WIDTH = len(TICKET_COLUMNS.split(","))


def real(value: Any) -> float | None:
    """A finite float for a REAL column, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def text(value: Any) -> str | None:
    """A string for a TEXT column, or None; lone surrogates become U+FFFD (no database can store them)."""
    if value is None:
        return None
    return safe_text(value if type(value) is str else str(value))


def _loads(text_: str | None) -> Any:
    return None if text_ is None else json.loads(text_)


def _loads_list(text_: str) -> tuple:
    return () if text_ == "[]" else tuple(json.loads(text_))


def _loads_dict(text_: str) -> dict:
    return {} if text_ == "{}" else json.loads(text_)


def damaged(where: str, exc: BaseException) -> StoreError:
    """The error for a row whose cell does not decode (JSON cut short or edited by hand, an unknown status):
    ``where`` names the row ("the traces row 'ab12'"), and the message says what to do, so a read command says so instead of failing with a traceback."""
    return StoreError(
        f"the store holds a damaged value in {where} ({type(exc).__name__}: {exc}); "
        "the store file was changed outside failpath or cut short: restore it from a backup, or delete that row"
    )


#: What decoding a damaged cell raises: ``json.JSONDecodeError`` is a ``ValueError``; a JSON value of the
#: wrong shape raises ``TypeError`` or ``AttributeError``.
DECODE_ERRORS = (ValueError, TypeError, AttributeError, KeyError)


def when(seconds: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``, for messages."""
    if seconds is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


# --------------------------------------------------------------------------- values to rows


def ticket_row(ticket: Ticket, ticket_id: str, created: float) -> tuple:
    """The ``tickets`` row for one ticket."""
    return (
        ticket_id,
        text(ticket.queue) or "default",
        created,
        text(ticket.policy) or "",
        text(ticket.trace_id),
        text(ticket.input_preview) or "",
        text(ticket.input_raw),
        None if ticket.output is None else dumps(ticket.output),
        real(ticket.confidence),
        text(ticket.state),
        TicketStatus(ticket.status).value,
        real(ticket.deadline),
        None if ticket.default is None else dumps(ticket.default),
        None if ticket.answer is None else dumps(ticket.answer),
        text(ticket.note),
        text(ticket.reviewer),
        real(ticket.resolved_at),
        None if ticket.output_schema is None else dumps(ticket.output_schema),
    )


def trace_rows(trace: Trace) -> tuple[tuple, list[tuple]]:
    """The ``traces`` row and the ``trace_states`` rows for one trace."""
    if not trace.trace_id or not isinstance(trace.trace_id, str):
        raise ValueError(f"a trace needs a non-empty string trace_id, got {trace.trace_id!r}")
    time_ = real(trace.time) or 0.0
    policy = text(trace.policy) or ""
    outcome = text(trace.outcome) or ""
    states = tuple(text(s) or "" for s in trace.states)
    attempts = [
        {
            "number": a.number,
            "action": a.action,
            "system": a.system,
            "state": a.state,
            "error": a.error,
            "output": a.output,
            "confidence": a.confidence,
            "latency_ms": a.latency_ms,
            "usage": a.usage,
        }
        for a in trace.attempts
    ]
    usage, detail, actions = trace.usage, trace.detail, trace.actions
    row = (
        text(trace.trace_id),
        time_,
        policy,
        outcome,
        text(trace.state),
        1 if trace.degraded else 0,
        real(trace.confidence),
        real(trace.latency_ms) or 0.0,
        text(trace.ticket_id),
        text(trace.input_digest) or "",
        text(trace.input_preview) or "",
        text(trace.input_raw),
        None if trace.output is None else dumps(trace.output),
        dumps(states) if states else "[]",
        dumps(actions) if actions else "[]",
        dumps(attempts) if attempts else "[]",
        len(attempts),
        dumps(usage) if usage else "{}",
        dumps(detail) if detail else "{}",
    )
    detected = set(states)
    if trace.state is not None:
        detected.add(text(trace.state))
    state_rows = [(s, time_, row[0], policy, outcome) for s in detected]
    return row, state_rows


# --------------------------------------------------------------------------- rows to values


def row_to_trace(row: Mapping[str, Any]) -> Trace:
    """The :class:`~failpath.core.Trace` stored in a ``traces`` row (``StoreError`` if a cell is damaged)."""
    try:
        return _row_to_trace(row)
    except DECODE_ERRORS as exc:
        raise damaged(f"the traces row {row['trace_id']!r}", exc) from None


def _row_to_trace(row: Mapping[str, Any]) -> Trace:
    attempts = tuple(
        Attempt(
            number=a.get("number", i + 1),
            action=a.get("action", "call"),
            system=a.get("system"),
            state=a.get("state"),
            error=a.get("error"),
            output=a.get("output"),
            confidence=a.get("confidence") if not isinstance(a.get("confidence"), str) else None,
            latency_ms=a.get("latency_ms") or 0.0,
            usage=a.get("usage") or {},
        )
        for i, a in enumerate(_loads_list(row["attempts"]))
    )
    return Trace(
        trace_id=row["trace_id"],
        time=row["time"],
        policy=row["policy"],
        input_digest=row["input_digest"],
        input_preview=row["input_preview"],
        outcome=row["outcome"],
        input_raw=row["input_raw"],
        output=_loads(row["output"]),
        confidence=row["confidence"],
        states=_loads_list(row["states"]),
        actions=_loads_list(row["actions"]),
        state=row["state"],
        attempts=attempts,
        degraded=bool(row["degraded"]),
        latency_ms=row["latency_ms"],
        ticket_id=row["ticket_id"],
        usage=_loads_dict(row["usage"]),
        detail=_loads_dict(row["detail"]),
    )


def row_to_ticket(row: Mapping[str, Any]) -> Ticket:
    """The :class:`~failpath.core.Ticket` stored in a ``tickets`` row (``StoreError`` if a cell is damaged)."""
    try:
        return _row_to_ticket(row)
    except DECODE_ERRORS as exc:
        raise damaged(f"the tickets row {row['ticket_id']!r}", exc) from None


def _row_to_ticket(row: Mapping[str, Any]) -> Ticket:
    return Ticket(
        ticket_id=row["ticket_id"],
        queue=row["queue"],
        created=row["created"],
        policy=row["policy"],
        trace_id=row["trace_id"],
        input_preview=row["input_preview"],
        input_raw=row["input_raw"],
        output=_loads(row["output"]),
        confidence=row["confidence"],
        state=row["state"],
        status=TicketStatus(row["status"]),
        deadline=row["deadline"],
        default=_loads(row["default"]),
        answer=_loads(row["answer"]),
        note=row["note"],
        reviewer=row["reviewer"],
        resolved_at=row["resolved_at"],
        claimed_by=row["claimed_by"],
        claimed_until=row["claimed_until"],
        output_schema=_loads(row["output_schema"]),
    )


def row_to_resolution(row: Mapping[str, Any]) -> dict[str, Any]:
    """One attempt to resolve a ticket, as :meth:`Store.ticket_resolutions` returns it, from a ``resolutions`` row."""
    try:
        answer = _loads(row["answer"])
    except DECODE_ERRORS as exc:
        raise damaged(f"a resolution of ticket {row['ticket_id']!r}", exc) from None
    return {
        "reviewer": row["reviewer"],
        "answer": answer,
        "note": row["note"],
        "at": row["at"],
        "accepted": bool(row["accepted"]),
    }


def row_to_run(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run's record as :meth:`Store.get_run` returns it, from a ``runs`` row."""
    try:
        config, summary = json.loads(row["config"]), _loads(row["summary"])
    except DECODE_ERRORS as exc:
        raise damaged(f"the runs row {row['run_id']!r}", exc) from None
    return {
        "run_id": row["run_id"],
        "kind": row["kind"],
        "config": config,
        "created": row["created"],
        "finished": row["finished"],
        "summary": summary,
    }


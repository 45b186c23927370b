"""The human review queue: read tickets, resolve them, wait for a decision, export answers as cases.

A policy's ``Escalate`` action puts a :class:`~failpath.core.Ticket` in the store and returns
``Escalated(ticket_id, queue)``. From there::

    ticket = fp.review.get(ticket_id, store="path/to/failpath.db")
    ticket.resolve({"city": "Boston"}, note="checked the map", reviewer="ana")

An answer must match the ticket's output schema when it has one (the policy's declared output type):
``resolve`` raises ``InvalidAnswer`` naming each mismatch, and records nothing.

or, for a caller that can hold a request open for a human decision::

    outcome = await fp.review.get(ticket_id, store=store).wait(timeout=30)

``wait`` always returns an outcome, never raises on a slow reviewer:

- ``Answered(value=<the reviewer's answer>, state=<the state that escalated>, trace_id=...)`` once the
  ticket is resolved (``confidence`` is ``None``; the answer comes from a person, not the model);
- ``Defaulted(value=<the policy's declared default>, reason=...)`` once the ticket is past its
  deadline or expired (the ticket is marked expired in the store, so no reviewer answers it later);
- ``Escalated(ticket_id, queue)`` when ``timeout`` ran out first: the ticket is still waiting.

Resolved tickets become labeled cases for the next check with :func:`export_cases`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Mapping
from typing import IO, Any

from failpath.core import (
    Answered,
    Defaulted,
    Escalated,
    Outcome,
    Ticket,
    TicketStatus,
)
from failpath.watch._store import StoreLike, using_store as _using
from failpath.watch.answers import check_answer

__all__ = [
    "ReviewTicket",
    "ExportResult",
    "get",
    "list_tickets",
    "resolve",
    "check_answer",
    "expire",
    "export_cases",
    "ticket_outcome",
    "case_for",
    "CASE_FIELDS",
]

#: Seconds between two reads of the store while waiting for a decision.
DEFAULT_POLL_INTERVAL = 0.5


def ticket_outcome(ticket: Ticket, *, now: float | None = None) -> Outcome:
    """The outcome a ticket stands for right now: answered, defaulted (expired or late), or still escalated."""
    now = time.time() if now is None else now
    if ticket.status == TicketStatus.RESOLVED:
        return Answered(ticket.answer, None, False, state=ticket.state, trace_id=ticket.trace_id)
    late = ticket.deadline is not None and now >= ticket.deadline
    if ticket.status == TicketStatus.EXPIRED or late:
        why = "passed its deadline" if late else "expired"
        return Defaulted(
            ticket.default,
            f"review ticket {ticket.ticket_id} {why} before a reviewer answered",
            state=ticket.state,
            trace_id=ticket.trace_id,
        )
    return Escalated(ticket.ticket_id, ticket.queue, state=ticket.state, trace_id=ticket.trace_id)


@dataclasses.dataclass(frozen=True)
class ReviewTicket:
    """A review ticket read from a store, with the operations a reviewer or a waiting caller needs.

    Every field of :class:`~failpath.core.Ticket` reads through (``ticket_id``, ``status``, ``answer``,
    ...). The value is a snapshot: :meth:`refresh` reads the store again.
    """

    ticket: Ticket
    store: StoreLike = None

    def __getattr__(self, name: str) -> Any:
        if name in Ticket.__dataclass_fields__:
            return getattr(self.ticket, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def refresh(self) -> "ReviewTicket":
        """The same ticket, read again from the store."""
        with _using(self.store) as store:
            return ReviewTicket(store.get_ticket(self.ticket.ticket_id), self.store)

    def resolve(self, answer: Any, *, note: str | None = None, reviewer: str | None = None) -> "ReviewTicket":
        """Record a human's answer; raises ``InvalidAnswer`` (nothing recorded) when it does not match the
        ticket's output schema, ``AlreadyResolved`` if someone resolved or expired it first."""
        check_answer(self.ticket, answer)
        with _using(self.store) as store:
            return ReviewTicket(
                store.resolve_ticket(self.ticket.ticket_id, answer, note=note, reviewer=reviewer), self.store
            )

    def outcome(self, *, now: float | None = None) -> Outcome:
        """The outcome this snapshot stands for (see :func:`ticket_outcome`); does not read the store."""
        return ticket_outcome(self.ticket, now=now)

    async def wait(self, timeout: float | None = None, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> Outcome:
        """Poll the store until the ticket is resolved, expires or passes its deadline, or ``timeout`` runs out.

        Returns ``Answered`` (the reviewer's answer), ``Defaulted`` (the declared default, past the
        deadline) or ``Escalated`` (still open when ``timeout`` ran out). ``timeout=None`` waits until
        the ticket is decided (forever, for a ticket without a deadline).
        """
        give_up = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            # The store is read in a worker thread: a slow disk never stalls the caller's event loop.
            delay = await asyncio.to_thread(self._poll_once, give_up, poll_interval)
            if isinstance(delay, Outcome):
                return delay
            await asyncio.sleep(delay)

    def wait_sync(self, timeout: float | None = None, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> Outcome:
        """The blocking twin of :meth:`wait`, for code that is not async."""
        give_up = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            delay = self._poll_once(give_up, poll_interval)
            if isinstance(delay, Outcome):
                return delay
            time.sleep(delay)

    def _poll_once(self, give_up: float | None, poll_interval: float) -> Outcome | float:
        """One read of the store: the final outcome, or how long to sleep before the next read."""
        with _using(self.store) as store:
            ticket = store.get_ticket(self.ticket.ticket_id)
            now = time.time()
            outcome = ticket_outcome(ticket, now=now)
            if isinstance(outcome, Defaulted) and ticket.status == TicketStatus.OPEN:
                # Past the deadline: close the ticket so no reviewer answers a caller that moved on.
                # ``older_than=now`` matches no creation time, so only tickets past their deadline expire.
                store.expire_tickets(older_than=now, now=now)
                ticket = store.get_ticket(ticket.ticket_id)  # a reviewer may have won the race
                outcome = ticket_outcome(ticket, now=now)
        if not isinstance(outcome, Escalated):
            return outcome
        left = None if give_up is None else give_up - time.monotonic()
        if left is not None and left <= 0:
            return outcome
        delay = poll_interval
        if left is not None:
            delay = min(delay, left)
        if ticket.deadline is not None:
            delay = min(delay, max(0.0, ticket.deadline - now) + 0.001)
        return max(delay, 0.0)


def get(ticket_id: str, *, store: StoreLike = None) -> ReviewTicket:
    """The ticket with that id (a unique prefix works); raises ``TicketNotFound``.

    ``store`` is an open :class:`~failpath.store.Store`, a path, or ``None`` for ``.failpath/failpath.db``.
    """
    with _using(store) as opened:
        return ReviewTicket(opened.get_ticket(ticket_id), store)


def list_tickets(
    *,
    store: StoreLike = None,
    status: TicketStatus | str | None = TicketStatus.OPEN,
    queue: str | None = None,
    limit: int | None = None,
    order: str = "oldest",
) -> list[ReviewTicket]:
    """Tickets by status (``None`` for all) and queue, oldest first, or nearest deadline first with ``order="deadline"``."""
    with _using(store) as opened:
        return [ReviewTicket(t, store) for t in opened.list_tickets(status=status, queue=queue, limit=limit, order=order)]


def resolve(
    ticket_id: str, answer: Any, *, store: StoreLike = None, note: str | None = None, reviewer: str | None = None
) -> ReviewTicket:
    """Resolve a ticket by id; raises ``TicketNotFound``, ``InvalidAnswer`` (nothing recorded) for an answer
    that does not match the ticket's output schema, or ``AlreadyResolved`` for a second resolution."""
    with _using(store) as opened:
        check_answer(opened.get_ticket(ticket_id), answer)
        return ReviewTicket(opened.resolve_ticket(ticket_id, answer, note=note, reviewer=reviewer), store)


def expire(older_than: float, *, store: StoreLike = None, now: float | None = None) -> list[ReviewTicket]:
    """Expire open tickets older than ``older_than`` seconds, or past their deadline; returns those expired."""
    with _using(store) as opened:
        return [ReviewTicket(t, store) for t in opened.expire_tickets(older_than=older_than, now=now)]


# --------------------------------------------------------------------------- export as cases


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_cases` wrote: how many cases, and which came from a redacted preview."""

    written: int
    from_preview: tuple[str, ...]  # ticket ids whose raw input was not stored

    @property
    def warning(self) -> str | None:
        """A sentence to show the user when some inputs are redacted previews, else ``None``."""
        if not self.from_preview:
            return None
        shown = ", ".join(self.from_preview[:5]) + (" ..." if len(self.from_preview) > 5 else "")
        return (
            f"{len(self.from_preview)} of {self.written} case(s) use the redacted input preview because the raw "
            f"input was not stored ({shown}); they may not reproduce the original call. To export exact "
            "inputs, create the policy with fp.Policy(..., store_raw_inputs=True)."
        )


def case_for(ticket: Ticket) -> tuple[dict[str, Any], bool]:
    """The case made from a resolved ticket, and whether its input is only the redacted preview.

    The case is ``{"id": "review-<ticket id>", "input", "expected": <the human answer>, "tags"}``; the
    tags name the queue, the failure state that escalated the call, and the reviewer who answered. The input is the raw input when
    the policy stored it (``store_raw_inputs=True``), else the redacted preview. A stored raw input is
    the input's canonical text: a structured input (a dict or list) is stored as JSON, so text that
    reads as a JSON object or array is exported as that object or array.
    """
    from_preview = ticket.input_raw is None
    value: Any = ticket.input_preview if from_preview else ticket.input_raw
    if not from_preview and value[:1] in ("{", "["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, (dict, list)):
            value = parsed
    tags = ["review", f"queue:{ticket.queue}"] + ([f"state:{ticket.state}"] if ticket.state else [])
    if ticket.reviewer:
        tags.append(f"reviewer:{ticket.reviewer}")
    case = {"id": f"review-{ticket.ticket_id}", "input": value, "expected": ticket.answer, "tags": tags}
    return case, from_preview


#: The fields of an exported case, under the names a check's dataset uses by default.
CASE_FIELDS: tuple[str, ...] = ("id", "input", "expected", "tags")


def export_cases(
    output: IO[str],
    *,
    store: StoreLike = None,
    queue: str | None = None,
    columns: Mapping[str, str | None] | None = None,
) -> ExportResult:
    """Write every resolved ticket as one JSON case per line to ``output``; the human answer is ``expected``.

    ``columns`` renames the fields to the column names of the check's dataset (``[dataset]`` of
    failpath.toml: ``{"id": "key", "input": "text", "expected": "labels", "tags": "tags"}``), so the file
    can be listed in ``dataset.paths`` as it is; a field mapped to ``None`` (no tags column) is left out.
    """
    from failpath.store.jsonsafe import dumps

    names = {field: field for field in CASE_FIELDS}
    for field, name in dict(columns or {}).items():
        if field not in names:
            raise ValueError(f"columns: {field!r} is not a field of a case; the fields are {', '.join(CASE_FIELDS)}")
        names[field] = name
    written = 0
    previews: list[str] = []
    with _using(store) as opened:
        tickets = opened.list_tickets(status=TicketStatus.RESOLVED, queue=queue)
    for ticket in tickets:
        case, from_preview = case_for(ticket)
        renamed = {names[field]: value for field, value in case.items() if names[field] is not None}
        output.write(dumps(renamed) + "\n")
        written += 1
        if from_preview:
            previews.append(ticket.ticket_id)
    return ExportResult(written, tuple(previews))


def parse_answer(text: str) -> Any:
    """The JSON value in ``text`` (what ``review resolve --answer`` takes); raises ``ConfigError`` naming the
    problem: text that is not JSON, ``NaN``/``Infinity``, an integer too long to keep, nesting too deep."""
    from failpath.core import ConfigError
    from failpath.store.jsonsafe import strict_loads

    try:
        return strict_loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--answer: {_shown(text)} is not valid JSON ({exc.msg} at column {exc.colno}); "
            "quote text answers as JSON strings, e.g. --answer '\"Boston\"', or pass an object such as "
            "--answer '{\"city\": \"Boston\"}'"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"--answer: {exc}") from None


def _shown(text: str) -> str:
    """``text`` quoted for a message, cut to 80 characters."""
    return repr(text) if len(text) <= 80 else repr(text[:80]) + f"… ({len(text)} characters)"

"""What every backend decides the same way: id prefixes, ticket states, result rows, and their messages."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from failpath.core import AlreadyResolved, StoreError, Ticket, TicketStatus
from failpath.store.jsonsafe import dumps
from failpath.store.records import when

__all__ = [
    "PREFIX_END",
    "PREFIX_MATCHES",
    "DEFAULT_LEASE",
    "ambiguous",
    "already_resolved",
    "claimed_by_another",
    "status_value",
    "TICKET_ORDERS",
    "ticket_order",
    "result_rows",
    "check_checkpoint",
    "CheckpointTaken",
    "checkpoint_rows",
    "check_reviewer",
]

#: How long a reviewer's claim on a ticket lasts unless renewed (seconds); then the ticket returns to the queue.
DEFAULT_LEASE = 15 * 60.0

#: Every id starting with ``p`` sorts in ``[p, p + PREFIX_END)``: a prefix lookup is one index range.
PREFIX_END = chr(0x10FFFF)
#: How many rows a prefix lookup reads: enough to show a few ids when the prefix is ambiguous.
PREFIX_MATCHES = 6


def ambiguous(what: str, prefix: str, ids: Sequence[str]) -> str:
    """The message for an id prefix that matches several ``what``s (``ids``: some of them, sorted)."""
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return f"{what} id {prefix!r} matches several {what}s ({shown}): give more characters"


def already_resolved(ticket: Ticket) -> AlreadyResolved:
    """The error for resolving a ticket that is resolved or expired; it carries the stored ticket."""
    full_id = ticket.ticket_id
    if ticket.status is TicketStatus.EXPIRED:
        message = f"ticket {full_id} expired at {when(ticket.resolved_at)} and cannot be resolved any more"
    else:
        who = ticket.reviewer or "an unnamed reviewer"
        message = (
            f"ticket {full_id} was already resolved by {who} at {when(ticket.resolved_at)} "
            f"(answer: {dumps(ticket.answer)[:200]})"
        )
    error = AlreadyResolved(message)
    error.ticket = ticket  # type: ignore[attr-defined]
    return error


def claimed_by_another(ticket: Ticket) -> StoreError:
    """The error for claiming (or releasing) a ticket another reviewer holds a live claim on."""
    return StoreError(
        f"ticket {ticket.ticket_id} is claimed by {ticket.claimed_by} until {when(ticket.claimed_until)}; "
        f"take another (`failpath review claim` gives the next free one) or wait for the claim to lapse"
    )


def status_value(status: TicketStatus | str) -> str:
    """The stored value of a ticket status; ``StoreError`` naming the choices for an unknown one."""
    try:
        return TicketStatus(status).value
    except ValueError:
        choices = ", ".join(s.value for s in TicketStatus)
        raise StoreError(f"unknown ticket status {status!r}: use one of {choices}") from None


#: The orders :meth:`Store.list_tickets` lists tickets in: oldest first, or nearest deadline first (tickets
#: with a deadline by deadline, then those without one, oldest first). Both are one index range.
TICKET_ORDERS = ("oldest", "deadline")


def ticket_order(order: str) -> str:
    """``order`` checked against :data:`TICKET_ORDERS`; ``StoreError`` naming the choices for another."""
    if order not in TICKET_ORDERS:
        raise StoreError(f"unknown ticket order {order!r}: use one of {', '.join(TICKET_ORDERS)}")
    return order


def result_rows(run_id: str, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, str, str, float]]:
    """``(run_id, key, data as JSON, written)`` for each result row; ``TypeError`` for a key that is not a string."""
    now = time.time()
    prepared = []
    for key, data in rows:
        if not isinstance(key, str):
            raise TypeError(f"result keys are strings, got {key!r} ({type(key).__name__}) for run {run_id!r}")
        prepared.append((run_id, key, dumps(data), now))
    return prepared


def check_checkpoint(run_id: str, seq: int) -> None:
    """Refuse a checkpoint that no backend can key: an empty run id, or a number that is not an integer >= 0."""
    if not run_id:
        raise StoreError("a run id cannot be empty")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise StoreError(f"checkpoint number {seq!r} must be an integer of at least 0")


class CheckpointTaken(Exception):
    """A checkpoint of a write exists already (another process continued the run): raised inside the
    write's transaction to roll it back; the store method that wrote returns False."""


def checkpoint_rows(run_id: str, checkpoints: Sequence[tuple[int, str, Mapping[str, Any]]]) -> list[tuple[Any, ...]]:
    """The rows ``(run_id, seq, kind, data, written)`` of checkpoints ``(seq, kind, data)``, each checked, written now."""
    now = time.time()
    rows = []
    for seq, kind, data in checkpoints:
        check_checkpoint(run_id, seq)
        rows.append((run_id, seq, kind, dumps(data), now))
    return rows

def check_reviewer(name: str, token_hash: str) -> None:
    """Refuse a reviewer no page can sign in: a blank or untrimmed name, or a token digest that is not hex SHA-256."""
    if not isinstance(name, str) or not name.strip() or name != name.strip() or len(name) > 100:
        raise StoreError(f"reviewer name {name!r} must be 1 to 100 characters without leading or trailing spaces")
    if not isinstance(token_hash, str) or len(token_hash) != 64 or any(c not in "0123456789abcdef" for c in token_hash):
        raise StoreError("a reviewer's token must be stored as its SHA-256 digest (64 lowercase hex digits), never the token itself")

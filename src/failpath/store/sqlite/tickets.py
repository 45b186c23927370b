"""The SQLite store's review tickets: create, find, list, resolve (atomic across processes), expire."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from failpath.core import StoreError, Ticket, TicketNotFound, TicketStatus
from failpath.store.common import already_resolved, ambiguous, status_value
from failpath.store.jsonsafe import dumps
from failpath.store.records import real, row_to_ticket, text, ticket_row
from failpath.store.sqlite.connections import INSERT_TICKET, by_prefix
from failpath.store.writer import QueuedTicket

__all__ = ["TicketQueries"]


class TicketQueries:
    """The ticket methods of :class:`~failpath.store.sqlite.SQLiteStore`, which supplies the names declared here."""

    path: Path
    queue_tickets: bool
    read_connection: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _enqueue: Callable[[Any], None]
    flush: Callable[..., None]

    def create_ticket(self, ticket: Ticket) -> str:
        """Store a new ticket and return its id (synchronously, unless the store queues tickets).

        An empty ``ticket_id`` gets a new one (``t-`` and 10 hex digits); ``created`` of 0 becomes now.
        Raises ``StoreError`` if a ticket with the given id exists already. With ``queue_tickets=True``
        the ticket joins the trace writer's queue instead (same durability as a trace: on disk after the
        next batch or :meth:`flush`), and a given id that exists already is ignored.
        """
        given = ticket.ticket_id
        created = real(ticket.created) or time.time()
        if self.queue_tickets:
            ticket_id = given or f"t-{secrets.token_hex(8)}"
            self._enqueue(QueuedTicket(ticket, ticket_id, created))
            return ticket_id
        for _ in range(8):
            ticket_id = given or f"t-{secrets.token_hex(5)}"
            row = ticket_row(ticket, ticket_id, created)
            with self._transaction() as connection:
                inserted = connection.execute(INSERT_TICKET, row).rowcount
            if inserted:
                return ticket_id
            if given:
                raise StoreError(f"a ticket with id {given!r} exists already in {self.path}; leave ticket_id empty for a new id")
        raise StoreError(f"could not find a free ticket id in {self.path}")  # 8 collisions of 40 random bits

    def _find_ticket(self, connection: sqlite3.Connection, ticket_id: str) -> sqlite3.Row:
        row = connection.execute("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
        if row is not None:
            return row
        rows = by_prefix(connection, "tickets", "ticket_id", ticket_id)
        if len(rows) == 1:
            return rows[0]
        if rows:
            raise TicketNotFound(ambiguous("ticket", ticket_id, [r["ticket_id"] for r in rows]))
        raise TicketNotFound(f"no ticket {ticket_id!r} in {self.path}; `failpath review list` shows the open ones")

    def get_ticket(self, ticket_id: str) -> Ticket:
        """The ticket with that id (a unique prefix works too); raises ``TicketNotFound``."""
        with self.read_connection(flush=self.queue_tickets) as connection:
            return row_to_ticket(self._find_ticket(connection, ticket_id))

    def list_tickets(
        self, *, status: TicketStatus | str | None = None, queue: str | None = None, limit: int | None = None
    ) -> list[Ticket]:
        """Tickets, oldest first, filtered by status and queue."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status_value(status))
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        sql = "SELECT * FROM tickets" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created, rowid"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        with self.read_connection(flush=self.queue_tickets) as connection:
            return [row_to_ticket(row) for row in connection.execute(sql, params)]

    def resolve_ticket(
        self, ticket_id: str, answer: Any, *, note: str | None = None, reviewer: str | None = None
    ) -> Ticket:
        """Record a human's answer. Atomic across processes: a second resolution raises ``AlreadyResolved``.

        ``AlreadyResolved`` names who resolved the ticket and when; it carries the stored ticket as
        its ``ticket`` attribute.
        """
        with self.read_connection(flush=self.queue_tickets) as connection:
            full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
        now = time.time()
        with self._transaction() as connection:
            changed = connection.execute(
                "UPDATE tickets SET status = ?, answer = ?, note = ?, reviewer = ?, resolved_at = ? "
                "WHERE ticket_id = ? AND status = ?",
                (TicketStatus.RESOLVED.value, dumps(answer), text(note), text(reviewer), now, full_id,
                 TicketStatus.OPEN.value),
            ).rowcount
            row = connection.execute("SELECT * FROM tickets WHERE ticket_id = ?", (full_id,)).fetchone()
        ticket = row_to_ticket(row)
        if changed != 1:
            raise already_resolved(ticket)
        return ticket

    def expire_tickets(self, *, older_than: float, now: float | None = None) -> list[Ticket]:
        """Mark open tickets created more than ``older_than`` seconds ago, or past their deadline, as expired.

        Returns the tickets this call expired (a ticket expired by another process is not repeated).
        """
        if self.queue_tickets:
            self.flush()
        now = time.time() if now is None else float(now)
        cutoff = now - float(older_than)
        condition = "status = ? AND (created < ? OR (deadline IS NOT NULL AND deadline <= ?))"
        params = (TicketStatus.OPEN.value, cutoff, now)
        with self._transaction() as connection:
            ids = [row[0] for row in connection.execute(f"SELECT ticket_id FROM tickets WHERE {condition}", params)]
            if not ids:
                return []
            connection.execute(
                f"UPDATE tickets SET status = ?, resolved_at = ? WHERE {condition}",
                (TicketStatus.EXPIRED.value, now, *params),
            )
            placeholders = ", ".join("?" * len(ids))
            rows = connection.execute(
                f"SELECT * FROM tickets WHERE ticket_id IN ({placeholders}) ORDER BY created, rowid", ids
            ).fetchall()
        return [row_to_ticket(row) for row in rows]

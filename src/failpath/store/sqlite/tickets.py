"""The SQLite store's review tickets: create, find, list, resolve (atomic across processes), expire."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from failpath.core import StoreError, Ticket, TicketNotFound, TicketStatus, Trace
from failpath.store.common import DEFAULT_LEASE, already_resolved, ambiguous, claimed_by_another, status_value, ticket_order
from failpath.store import rollup
from failpath.store.jsonsafe import dumps
from failpath.store.records import real, row_to_resolution, row_to_ticket, text, ticket_row, trace_rows
from failpath.store.sqlite.connections import INSERT_STATE, INSERT_TICKET, INSERT_TRACE, by_prefix
from failpath.store.writer import QueuedTicket

__all__ = ["TicketQueries"]


class TicketQueries:
    """The ticket methods of :class:`~failpath.store.sqlite.SQLiteStore`, which supplies the names declared here."""

    path: Path
    queue_tickets: bool
    read_connection: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _transaction: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _enqueue: Callable[[Any], None]
    flush: Callable[..., None]

    def create_ticket(self, ticket: Ticket, trace: Trace | None = None, *, timeout: float | None = None) -> str:
        """Store a new ticket and return its id (synchronously, unless the store queues tickets).

        An empty ``ticket_id`` gets a new one (``t-`` and 10 hex digits); ``created`` of 0 becomes now.
        Raises ``StoreError`` if a ticket with the given id exists already. With ``queue_tickets=True``
        the ticket joins the trace writer's queue instead (same durability as a trace: on disk after the
        next batch or :meth:`flush`), and a given id that exists already is ignored.
        With ``trace``, the trace's rows are written in the ticket's transaction (or queued just before it).
        ``timeout`` (seconds) bounds the wait for the write lock (``StoreError`` when it runs out; a guarded
        call passes what is left of its deadline).
        """
        given = ticket.ticket_id
        created = real(ticket.created) or time.time()
        if self.queue_tickets:
            ticket_id = given or f"t-{secrets.token_hex(8)}"
            if trace is not None:
                self._enqueue(trace)
            self._enqueue(QueuedTicket(ticket, ticket_id, created))
            return ticket_id
        rows = trace_rows(trace) if trace is not None else None
        for _ in range(8):
            ticket_id = given or f"t-{secrets.token_hex(5)}"
            row = ticket_row(ticket, ticket_id, created)
            with self._transaction(timeout) as connection:
                inserted = connection.execute(INSERT_TICKET, row).rowcount
                if inserted and rows is not None:
                    cursor = connection.cursor()
                    cursor.row_factory = None
                    before = rollup.last_id(cursor)
                    connection.execute(INSERT_TRACE, rows[0])
                    rollup.fold_new_traces(cursor, "?", before)  # the rollup counts it as the writer's traces
                    connection.executemany(INSERT_STATE, rows[1])
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
        self,
        *,
        status: TicketStatus | str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        order: str = "oldest",
    ) -> list[Ticket]:
        """Tickets filtered by status and queue, oldest first, or with ``order="deadline"`` nearest deadline
        first (then those without a deadline, oldest first)."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status_value(status))
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        count = -1 if limit is None else max(0, int(limit))  # LIMIT -1: no limit
        if ticket_order(order) == "oldest":
            sql = "SELECT * FROM tickets" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created, rowid LIMIT ?"
            sql_params = [*params, count]
        else:
            # SQLite sorts NULL first and its indexes cannot put it last: two ranges of the index on
            # (status, deadline, created), each read in order as far as the limit, then put one after the other.
            dated = " WHERE " + " AND ".join([*where, "deadline IS NOT NULL"])
            undated = " WHERE " + " AND ".join([*where, "deadline IS NULL"])
            sql = (
                f"SELECT * FROM (SELECT *, 0 AS part FROM tickets{dated} ORDER BY deadline, created, rowid LIMIT ?) "
                f"UNION ALL SELECT * FROM (SELECT *, 1 AS part FROM tickets{undated} ORDER BY created, rowid LIMIT ?) "
                "ORDER BY part, deadline, created LIMIT ?"
            )
            sql_params = [*params, count, *params, count, count]
        with self.read_connection(flush=self.queue_tickets) as connection:
            return [row_to_ticket(row) for row in connection.execute(sql, sql_params)]

    def resolve_ticket(
        self, ticket_id: str, answer: Any, *, note: str | None = None, reviewer: str | None = None
    ) -> Ticket:
        """Record a human's answer. Atomic across processes: a second resolution raises ``AlreadyResolved``.

        ``AlreadyResolved`` names who resolved the ticket and when; it carries the stored ticket as
        its ``ticket`` attribute. Every attempt, accepted or not, is kept with its reviewer
        (:meth:`ticket_resolutions`). A claim does not stop another reviewer's answer: the first wins.
        """
        with self.read_connection(flush=self.queue_tickets) as connection:
            full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
        now = time.time()
        with self._transaction() as connection:
            changed = connection.execute(
                "UPDATE tickets SET status = ?, answer = ?, note = ?, reviewer = ?, resolved_at = ?, claimed_until = NULL "
                "WHERE ticket_id = ? AND status = ?",
                (TicketStatus.RESOLVED.value, dumps(answer), text(note), text(reviewer), now, full_id,
                 TicketStatus.OPEN.value),
            ).rowcount
            connection.execute(
                "INSERT INTO resolutions (ticket_id, reviewer, answer, note, at, accepted) VALUES (?, ?, ?, ?, ?, ?)",
                (full_id, text(reviewer), dumps(answer), text(note), now, 1 if changed == 1 else 0),
            )
            row = connection.execute("SELECT * FROM tickets WHERE ticket_id = ?", (full_id,)).fetchone()
        ticket = row_to_ticket(row)
        if changed != 1:
            raise already_resolved(ticket)
        return ticket

    def claim_ticket(
        self,
        reviewer: str,
        *,
        ticket_id: str | None = None,
        queue: str | None = None,
        lease: float = DEFAULT_LEASE,
        now: float | None = None,
    ) -> Ticket | None:
        """Claim a ticket for ``reviewer`` for ``lease`` seconds: the given one, or else the oldest open one
        (of ``queue``) that nobody holds. Returns the claimed ticket, or None when no ticket is free.

        A claim that lapses returns the ticket to the queue; the same reviewer claiming again renews it.
        Claiming a given ticket another reviewer holds raises ``StoreError`` naming them; a resolved or
        expired one raises ``AlreadyResolved``. Several reviewers claiming at once each get a different
        ticket (the claim is one write transaction).
        """
        if not reviewer:
            raise StoreError("a claim needs the reviewer's name")
        now = time.time() if now is None else float(now)
        until = now + float(lease)
        if self.queue_tickets:
            self.flush()
        if ticket_id is not None:
            with self.read_connection(flush=False) as connection:
                full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
            with self._transaction() as connection:
                connection.execute(
                    "UPDATE tickets SET claimed_by = ?, claimed_until = ? WHERE ticket_id = ? AND status = ? "
                    "AND (claimed_until IS NULL OR claimed_until <= ? OR claimed_by = ?)",
                    (reviewer, until, full_id, TicketStatus.OPEN.value, now, reviewer),
                )
                row = connection.execute("SELECT * FROM tickets WHERE ticket_id = ?", (full_id,)).fetchone()
            ticket = row_to_ticket(row)
            if ticket.status is not TicketStatus.OPEN:
                raise already_resolved(ticket)
            if ticket.claimed_by != reviewer or ticket.claimed_until != until:
                raise claimed_by_another(ticket)
            return ticket
        where = "status = ? AND (claimed_until IS NULL OR claimed_until <= ?)"
        params: list[Any] = [TicketStatus.OPEN.value, now]
        if queue is not None:
            where += " AND queue = ?"
            params.append(queue)
        with self._transaction() as connection:  # BEGIN IMMEDIATE: one claimer at a time picks a ticket
            found = connection.execute(
                f"SELECT ticket_id FROM tickets WHERE {where} ORDER BY created, rowid LIMIT 1", params
            ).fetchone()
            if found is None:
                return None
            connection.execute(
                "UPDATE tickets SET claimed_by = ?, claimed_until = ? WHERE ticket_id = ?", (reviewer, until, found[0])
            )
            row = connection.execute("SELECT * FROM tickets WHERE ticket_id = ?", (found[0],)).fetchone()
        return row_to_ticket(row)

    def release_ticket(self, ticket_id: str, reviewer: str) -> Ticket:
        """Give back ``reviewer``'s claim on a ticket (it returns to the queue at once); ``StoreError`` if another holds it."""
        with self.read_connection(flush=self.queue_tickets) as connection:
            full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
        with self._transaction() as connection:
            connection.execute(
                "UPDATE tickets SET claimed_by = NULL, claimed_until = NULL WHERE ticket_id = ? AND claimed_by = ?",
                (full_id, reviewer),
            )
            row = connection.execute("SELECT * FROM tickets WHERE ticket_id = ?", (full_id,)).fetchone()
        ticket = row_to_ticket(row)
        if ticket.claimed_by is not None and ticket.claimed_until is not None and ticket.claimed_until > time.time():
            raise claimed_by_another(ticket)
        return ticket

    def ticket_resolutions(self, ticket_id: str) -> list[dict[str, Any]]:
        """Every attempt to resolve the ticket, first first: ``reviewer, answer, note, at, accepted``."""
        with self.read_connection(flush=self.queue_tickets) as connection:
            full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
            rows = connection.execute("SELECT * FROM resolutions WHERE ticket_id = ? ORDER BY id", (full_id,)).fetchall()
        return [row_to_resolution(row) for row in rows]

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

"""The PostgreSQL store's review tickets: create, find, list, resolve (the first resolution wins), expire."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from psycopg.rows import tuple_row

from failpath.core import StoreError, Ticket, TicketNotFound, TicketStatus, Trace
from failpath.store.common import DEFAULT_LEASE, already_resolved, ambiguous, claimed_by_another, status_value, ticket_order
from failpath.store import rollup
from failpath.store.jsonsafe import dumps
from failpath.store.postgres.connections import TRACE_LOCK, INSERT_TICKET, without_nul
from failpath.store.postgres.traces import by_prefix
from failpath.store.records import (
    TRACE_COLUMNS, TRACE_STATE_COLUMNS, real, row_to_resolution, row_to_ticket, text, ticket_row, trace_rows,
)
from failpath.store.writer import QueuedTicket

#: One trace (and its state rows) written with the ticket it opened, in the ticket's transaction.
INSERT_ONE_TRACE = (
    f"INSERT INTO traces ({TRACE_COLUMNS}) VALUES ({', '.join(['%s'] * 19)}) ON CONFLICT (trace_id) DO NOTHING"
)
INSERT_ONE_STATE = f"INSERT INTO trace_states ({TRACE_STATE_COLUMNS}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"

__all__ = ["TicketQueries"]


class TicketQueries:
    """The ticket methods of :class:`~failpath.store.postgres.PostgresStore`, which supplies the names declared here."""

    path: str
    queue_tickets: bool
    read_connection: Callable[..., AbstractContextManager[Any]]
    _transaction: Callable[[], AbstractContextManager[Any]]
    _enqueue: Callable[[Any], None]
    flush: Callable[..., None]

    def create_ticket(self, ticket: Ticket, trace: Trace | None = None, *, timeout: float | None = None) -> str:
        """Store a new ticket and return its id (synchronously, unless the store queues tickets).

        An empty ``ticket_id`` gets a new one (``t-`` and 10 hex digits); ``created`` of 0 becomes now.
        Raises ``StoreError`` if a ticket with the given id exists already. With ``queue_tickets=True``
        the ticket joins the trace writer's queue instead, and a given id that exists already is ignored.
        With ``trace``, the trace's rows are written in the ticket's transaction (or queued just before it).
        ``timeout`` (seconds) bounds each statement of the transaction, waits for locks included
        (``SET LOCAL statement_timeout``); a guarded call passes what is left of its deadline.
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
            with self._transaction() as connection:
                if timeout is not None:
                    connection.execute(f"SET LOCAL statement_timeout = {max(int(timeout * 1000), 1)}")
                inserted = connection.execute(INSERT_TICKET, without_nul(ticket_row(ticket, ticket_id, created))).rowcount
                if inserted and rows is not None:
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", (TRACE_LOCK,))  # trace ids in commit order
                    with connection.cursor(row_factory=tuple_row) as cursor:  # the rollup counts it as the writer's traces
                        inserted_trace = cursor.execute(
                            f"{INSERT_ONE_TRACE} RETURNING {rollup.TRACE_FIGURES}", without_nul(rows[0])
                        ).fetchall()
                        rollup.fold_rows(cursor, "%s", inserted_trace)
                    for state_row in rows[1]:
                        connection.execute(INSERT_ONE_STATE, without_nul(state_row))
            if inserted:
                return ticket_id
            if given:
                raise StoreError(f"a ticket with id {given!r} exists already in {self.path}; leave ticket_id empty for a new id")
        raise StoreError(f"could not find a free ticket id in {self.path}")  # 8 collisions of 40 random bits

    def _find_ticket(self, connection: Any, ticket_id: str) -> dict[str, Any]:
        row = connection.execute("SELECT * FROM tickets WHERE ticket_id = %s", (ticket_id,)).fetchone()
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
        first (then those without a deadline, oldest first: PostgreSQL sorts NULL last, as the index
        on ``(status, deadline, created, seq)`` holds them)."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = %s")
            params.append(status_value(status))
        if queue is not None:
            where.append("queue = %s")
            params.append(queue)
        sql = "SELECT * FROM tickets" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created, seq" if ticket_order(order) == "oldest" else " ORDER BY deadline, created, seq"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(max(0, int(limit)))
        with self.read_connection(flush=self.queue_tickets) as connection:
            return [row_to_ticket(row) for row in connection.execute(sql, params)]

    def resolve_ticket(
        self, ticket_id: str, answer: Any, *, note: str | None = None, reviewer: str | None = None
    ) -> Ticket:
        """Record a human's answer. Atomic across processes and machines: the first resolution wins, and a
        later one raises ``AlreadyResolved`` naming who resolved the ticket and when (the stored ticket is
        its ``ticket`` attribute). Every attempt, accepted or not, is kept with its reviewer
        (:meth:`ticket_resolutions`). A claim does not stop another reviewer's answer: the first wins.
        """
        with self.read_connection(flush=self.queue_tickets) as connection:
            full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
        now = time.time()
        with self._transaction() as connection:
            row = connection.execute(
                "UPDATE tickets SET status = %s, answer = %s, note = %s, reviewer = %s, resolved_at = %s, "
                "claimed_until = NULL WHERE ticket_id = %s AND status = %s RETURNING *",
                without_nul((TicketStatus.RESOLVED.value, dumps(answer), text(note), text(reviewer), now, full_id,
                             TicketStatus.OPEN.value)),
            ).fetchone()
            won = row is not None
            connection.execute(
                "INSERT INTO resolutions (ticket_id, reviewer, answer, note, at, accepted) VALUES (%s, %s, %s, %s, %s, %s)",
                without_nul((full_id, text(reviewer), dumps(answer), text(note), now, won)),
            )
            if not won:
                row = connection.execute("SELECT * FROM tickets WHERE ticket_id = %s", (full_id,)).fetchone()
        ticket = row_to_ticket(row)
        if not won:
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
        expired one raises ``AlreadyResolved``. Reviewers claiming at once never wait for each other:
        each takes the oldest free ticket the others have not locked (``FOR UPDATE SKIP LOCKED``).
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
                row = connection.execute(
                    "UPDATE tickets SET claimed_by = %s, claimed_until = %s WHERE ticket_id = %s AND status = %s "
                    "AND (claimed_until IS NULL OR claimed_until <= %s OR claimed_by = %s) RETURNING *",
                    (reviewer, until, full_id, TicketStatus.OPEN.value, now, reviewer),
                ).fetchone()
                if row is None:
                    row = connection.execute("SELECT * FROM tickets WHERE ticket_id = %s", (full_id,)).fetchone()
            ticket = row_to_ticket(row)
            if ticket.status is not TicketStatus.OPEN:
                raise already_resolved(ticket)
            if ticket.claimed_by != reviewer or ticket.claimed_until != until:
                raise claimed_by_another(ticket)
            return ticket
        where = "status = %s AND (claimed_until IS NULL OR claimed_until <= %s)"
        params: list[Any] = [TicketStatus.OPEN.value, now]
        if queue is not None:
            where += " AND queue = %s"
            params.append(queue)
        with self._transaction() as connection:
            row = connection.execute(
                f"WITH free AS (SELECT ticket_id FROM tickets WHERE {where} ORDER BY created, seq LIMIT 1 "
                "FOR UPDATE SKIP LOCKED) "
                "UPDATE tickets AS t SET claimed_by = %s, claimed_until = %s FROM free "
                "WHERE t.ticket_id = free.ticket_id RETURNING t.*",
                [*params, reviewer, until],
            ).fetchone()
        return None if row is None else row_to_ticket(row)

    def release_ticket(self, ticket_id: str, reviewer: str) -> Ticket:
        """Give back ``reviewer``'s claim on a ticket (it returns to the queue at once); ``StoreError`` if another holds it."""
        with self.read_connection(flush=self.queue_tickets) as connection:
            full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
        with self._transaction() as connection:
            connection.execute(
                "UPDATE tickets SET claimed_by = NULL, claimed_until = NULL WHERE ticket_id = %s AND claimed_by = %s",
                (full_id, reviewer),
            )
            row = connection.execute("SELECT * FROM tickets WHERE ticket_id = %s", (full_id,)).fetchone()
        ticket = row_to_ticket(row)
        if ticket.claimed_by is not None and ticket.claimed_until is not None and ticket.claimed_until > time.time():
            raise claimed_by_another(ticket)
        return ticket

    def ticket_resolutions(self, ticket_id: str) -> list[dict[str, Any]]:
        """Every attempt to resolve the ticket, first first: ``reviewer, answer, note, at, accepted``."""
        with self.read_connection(flush=self.queue_tickets) as connection:
            full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
            rows = connection.execute("SELECT * FROM resolutions WHERE ticket_id = %s ORDER BY id", (full_id,)).fetchall()
        return [row_to_resolution(row) for row in rows]

    def expire_tickets(self, *, older_than: float, now: float | None = None) -> list[Ticket]:
        """Mark open tickets created more than ``older_than`` seconds ago, or past their deadline, as expired.

        Returns the tickets this call expired (a ticket expired by another process is not repeated).
        """
        if self.queue_tickets:
            self.flush()
        now = time.time() if now is None else float(now)
        cutoff = now - float(older_than)
        with self._transaction() as connection:
            rows = connection.execute(
                "UPDATE tickets SET status = %s, resolved_at = %s "
                "WHERE status = %s AND (created < %s OR (deadline IS NOT NULL AND deadline <= %s)) RETURNING *",
                (TicketStatus.EXPIRED.value, now, TicketStatus.OPEN.value, cutoff, now),
            ).fetchall()
        rows.sort(key=lambda r: (r["created"], r["seq"]))
        return [row_to_ticket(row) for row in rows]

"""The store interface. Backends implement every method; nothing outside ``failpath.store`` writes SQL.

This module imports no backend: :func:`failpath.store.open_store` (in :mod:`failpath.store.opening`)
chooses one, and a backend builds on :class:`~failpath.store.queued.QueuedStore`, a ``Store``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from failpath.core import StoreError, Ticket, TicketStatus, Trace

DEFAULT_STORE_PATH = Path(".failpath") / "failpath.db"


class Store(abc.ABC):
    """One place where traces, review tickets and check runs are kept.

    Traces are written through a background batching writer (``write_trace`` never waits on disk);
    everything else is written synchronously: on disk when the call returns. (The SQLite store commits
    the agent run checkpoints that several threads write at the same moment in one shared transaction,
    each call still returning once its own write is committed.) A store is safe to share between
    threads, and several processes may open the same store at once.
    """

    #: Where the store is: its file, or for a server its URL without the password (what messages name).
    path: Path | str
    #: What ``open_store`` takes to open this same store again, in another process (the full URL of a
    #: server, with its password if the URL held one): what worker processes are given.
    location: str
    #: Whether :meth:`create_ticket` takes ``trace`` and ``timeout`` (failpath's stores do; a store written
    #: for an older interface, whose ``create_ticket`` takes the ticket only, does not).
    ticket_carries_trace: bool = False

    # ------------------------------------------------------------------ traces
    @abc.abstractmethod
    def write_trace(self, trace: Trace) -> None:
        """Queue a trace for writing; returns at once. ``flush`` or ``close`` waits for the disk."""

    @abc.abstractmethod
    def flush(self, timeout: float | None = None) -> None:
        """Block until every trace queued so far is on disk."""

    @abc.abstractmethod
    def get_trace(self, trace_id: str) -> Trace | None:
        """The trace with that id (a unique prefix works too), or None."""

    @abc.abstractmethod
    def query_traces(
        self,
        *,
        policy: str | None = None,
        outcome: str | None = None,
        state: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 100,
        newest_first: bool = True,
    ) -> list[Trace]:
        """Traces matching every filter given (``since``/``until`` are Unix seconds)."""

    @abc.abstractmethod
    def count_traces(
        self,
        *,
        policy: str | None = None,
        outcome: str | None = None,
        state: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many traces match every filter given."""

    # ------------------------------------------------------------------ review tickets
    @abc.abstractmethod
    def create_ticket(self, ticket: Ticket, trace: Trace | None = None, *, timeout: float | None = None) -> str:
        """Store a new open ticket (synchronously) and return its id. With ``trace`` (the trace of the call
        that opened the ticket), the trace is written in the same transaction, so no ticket ever points at
        a trace a killed process did not write. ``timeout`` (seconds) bounds the wait for locks
        (``StoreError`` when it runs out), so an escalation keeps its call's deadline."""

    @abc.abstractmethod
    def get_ticket(self, ticket_id: str) -> Ticket:
        """The ticket with that id (a unique prefix works too); raises ``TicketNotFound``."""

    @abc.abstractmethod
    def list_tickets(
        self,
        *,
        status: TicketStatus | str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        order: str = "oldest",
    ) -> list[Ticket]:
        """Tickets filtered by status and queue, oldest first; with ``order="deadline"``, nearest deadline
        first (tickets without a deadline last, oldest first). Either order is read from an index, so a
        page of a large queue costs the page, not the queue."""

    @abc.abstractmethod
    def resolve_ticket(
        self, ticket_id: str, answer: Any, *, note: str | None = None, reviewer: str | None = None
    ) -> Ticket:
        """Record a human's answer. Atomic across processes: a second resolution raises ``AlreadyResolved``."""

    # Review claims and the record of resolutions: both backends implement them; a store of your own
    # that does not is still a Store (its reviewers resolve tickets without claiming them first).
    def claim_ticket(
        self,
        reviewer: str,
        *,
        ticket_id: str | None = None,
        queue: str | None = None,
        lease: float = 900.0,
        now: float | None = None,
    ) -> Ticket | None:
        """Claim a ticket for ``reviewer`` for ``lease`` seconds: the given one, or the oldest open one (of
        ``queue``) nobody holds. A claim that lapses returns the ticket to the queue. None when nothing is free."""
        raise StoreError(f"{type(self).__name__} does not support review claims; use the SQLite or PostgreSQL store")

    def release_ticket(self, ticket_id: str, reviewer: str) -> Ticket:
        """Give back ``reviewer``'s claim on a ticket, so another reviewer can take it at once."""
        raise StoreError(f"{type(self).__name__} does not support review claims; use the SQLite or PostgreSQL store")

    def ticket_resolutions(self, ticket_id: str) -> list[dict[str, Any]]:
        """Every attempt to resolve the ticket, first first: ``reviewer, answer, note, at, accepted``
        (empty for a store that keeps no such record)."""
        return []

    @abc.abstractmethod
    def expire_tickets(self, *, older_than: float, now: float | None = None) -> list[Ticket]:
        """Mark open tickets created more than ``older_than`` seconds ago, or past their deadline, as expired."""

    # ------------------------------------------------------------------ check runs
    @abc.abstractmethod
    def create_run(self, run_id: str, *, kind: str, config: Mapping[str, Any]) -> None:
        """Register a run (``kind`` is e.g. ``"check"``) with its JSON-safe configuration."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's record: ``run_id, kind, config, created, finished, summary`` (a unique prefix works)."""

    @abc.abstractmethod
    def list_runs(self, *, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first."""

    @abc.abstractmethod
    def add_results(self, run_id: str, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Store result rows ``(key, data)``; a key already stored for the run is ignored. Returns rows added."""

    @abc.abstractmethod
    def result_keys(self, run_id: str) -> set[str]:
        """Keys of the results stored for the run (what a resumed run skips)."""

    @abc.abstractmethod
    def results(self, run_id: str) -> list[dict[str, Any]]:
        """The run's result rows, in the order they were written."""

    @abc.abstractmethod
    def results_after(self, run_id: str, after: int = 0, limit: int | None = None) -> tuple[list[tuple[str, Any]], int]:
        """The run's result rows stored after position ``after`` as ``(key, data)``, in the order written,
        and the position to pass next time (0 reads from the start): for reading a run while it is written,
        or, with ``limit`` (at most that many rows a call), for reading a large run a batch at a time."""

    @abc.abstractmethod
    def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Mark the run finished and keep its JSON-safe summary (what reports are rebuilt from)."""

    # ------------------------------------------------------------------ agent run checkpoints
    # Not abstract: a backend that does not keep checkpoints still stores traces, tickets and runs.
    #: True when :meth:`add_checkpoint` and :meth:`end_run` take ``earlier=`` (checkpoints written first, in
    #: the same transaction, all or none): an agent run then holds a step's checkpoint back until the next one
    #: that must be on disk, and writes them together (see :func:`failpath.agent.segment.commit`).
    writes_earlier_checkpoints = False

    def add_checkpoint(self, run_id: str, seq: int, kind: str, data: Mapping[str, Any]) -> bool:
        """Write checkpoint ``seq`` of an agent run (on disk when this returns); False, writing nothing,
        when the run has checkpoint ``seq`` already (another process continued the run first)."""
        raise StoreError(f"{type(self).__name__} does not keep agent run checkpoints; use a store opened by open_store (a SQLite file or a postgresql:// URL)")

    def begin_run(self, run_id: str, *, kind: str, config: Mapping[str, Any], first_checkpoint: tuple[str, Mapping[str, Any]]) -> bool:
        """Register an agent run (as :meth:`create_run`) and write its checkpoint 0, ``first_checkpoint = (kind,
        data)`` (on disk when this returns); False, writing nothing, when a run with that id exists already.

        failpath's stores do both in one transaction; this default makes the three calls it replaces."""
        if self.get_run(run_id) is not None:
            return False
        self.create_run(run_id, kind=kind, config=config)
        return self.add_checkpoint(run_id, 0, first_checkpoint[0], first_checkpoint[1])

    def end_run(self, run_id: str, *, last_checkpoint: tuple[int, str, Mapping[str, Any]], summary: Mapping[str, Any]) -> bool:
        """Write checkpoint ``last_checkpoint = (seq, kind, data)`` of an agent run registered by :meth:`begin_run`
        and mark the run finished with ``summary`` (as :meth:`finish_run`), on disk when this returns; False,
        writing nothing, when the run has checkpoint ``seq`` already.

        failpath's stores do both in one transaction; this default makes the two calls it replaces."""
        seq, kind, data = last_checkpoint
        if not self.add_checkpoint(run_id, seq, kind, data):
            return False
        self.finish_run(run_id, summary)
        return True

    def checkpoints(self, run_id: str) -> list[tuple[int, str, Any]]:
        """The run's checkpoints as ``(seq, kind, data)``, in order (empty for a run with none)."""
        raise StoreError(f"{type(self).__name__} does not keep agent run checkpoints; use a store opened by open_store (a SQLite file or a postgresql:// URL)")

    # ------------------------------------------------------------------ the hourly trace rollup
    # Not abstract: a store without a rollup still answers ``traces stats``, by reading every trace.
    def rebuild_trace_rollup(self) -> int:
        """Recompute the hourly rollup ``traces stats`` reads from every trace; returns how many were read."""
        raise StoreError(f"{type(self).__name__} keeps no trace rollup; use a SQLite file or a postgresql:// URL")

    # ------------------------------------------------------------------ reviewers of the review page
    # Not abstract: a store without reviewers still keeps everything else (``failpath serve`` needs them).
    def add_reviewer(self, name: str, token_hash: str) -> None:
        """Register reviewer ``name`` with the SHA-256 hex digest of their sign-in token (never the token);
        raises ``StoreError`` when the name is taken."""
        raise StoreError(f"{type(self).__name__} does not keep reviewers; use the SQLite or PostgreSQL store")

    def reviewer_for_token(self, token_hash: str) -> str | None:
        """The name of the reviewer whose token has this digest, or None."""
        return None

    def list_reviewers(self) -> list[dict[str, Any]]:
        """Every reviewer as ``{"name", "created"}``, by name (empty for a store that keeps none)."""
        return []

    def remove_reviewer(self, name: str) -> bool:
        """Remove reviewer ``name``; their token stops working at once. False when there was none."""
        return False

    # ------------------------------------------------------------------ lifecycle
    @abc.abstractmethod
    def close(self) -> None:
        """Flush pending traces and release the store. Idempotent."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


"""Support for the guard tests (no tests here): a store kept in memory and small systems."""

from __future__ import annotations

import threading
from typing import Any

from failpath.core import Ticket, TicketNotFound, TicketStatus, Trace
from failpath.store.base import Store


class MemoryStore(Store):
    """A ``Store`` kept in memory: what the guard tests write traces and tickets to."""

    def __init__(self) -> None:
        self.traces: list[Trace] = []
        self.tickets: dict[str, Ticket] = {}
        self.flushes = 0
        self.closed = False
        self._lock = threading.Lock()

    def write_trace(self, trace: Trace) -> None:
        with self._lock:
            self.traces.append(trace)

    def flush(self, timeout: float | None = None) -> None:
        self.flushes += 1

    def get_trace(self, trace_id: str) -> Trace | None:
        return next((t for t in self.traces if t.trace_id.startswith(trace_id)), None)

    def query_traces(self, **filters: Any) -> list[Trace]:
        return list(self.traces)

    def count_traces(self, **filters: Any) -> int:
        return len(self.traces)

    def create_ticket(self, ticket: Ticket) -> str:
        self.tickets[ticket.ticket_id] = ticket
        return ticket.ticket_id

    def get_ticket(self, ticket_id: str) -> Ticket:
        try:
            return self.tickets[ticket_id]
        except KeyError:
            raise TicketNotFound(ticket_id) from None

    def list_tickets(self, *, status: TicketStatus | str | None = None, queue: str | None = None, limit: int | None = None) -> list[Ticket]:
        return [t for t in self.tickets.values() if queue is None or t.queue == queue]

    def resolve_ticket(self, ticket_id: str, answer: Any, *, note: str | None = None, reviewer: str | None = None) -> Ticket:
        raise NotImplementedError

    def expire_tickets(self, *, older_than: float, now: float | None = None) -> list[Ticket]:
        return []

    def create_run(self, run_id: str, *, kind: str, config: Any) -> None:
        raise NotImplementedError

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return None

    def list_runs(self, *, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        return []

    def add_results(self, run_id: str, rows: Any) -> int:
        return 0

    def result_keys(self, run_id: str) -> set[str]:
        return set()

    def results(self, run_id: str) -> list[dict[str, Any]]:
        return []

    def results_after(self, run_id: str, after: int = 0) -> tuple[list[Any], int]:
        return [], after

    def finish_run(self, run_id: str, summary: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class BrokenStore(MemoryStore):
    """A store whose every write fails: the guard must still answer."""

    def write_trace(self, trace: Trace) -> None:
        raise OSError("disk full")

    def create_ticket(self, ticket: Ticket) -> str:
        raise OSError("disk full")


class Scripted:
    """A system that plays back a script: each call takes the next item (an exception is raised, a value returned)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[Any] = []

    def __call__(self, value: Any) -> Any:
        self.calls.append(value)
        item = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        if isinstance(item, BaseException) or (isinstance(item, type) and issubclass(item, BaseException)):
            raise item
        return item

"""The background trace writer: one thread per store that writes queued traces in batches.

Backend-neutral. A backend gives the writer two functions: ``connect()``, which opens a connection
the writer thread keeps (anything with ``close()``), and ``write_rows(connection, batch)``, which
writes one :class:`RowBatch` in one transaction and raises if it could not; ``is_transient(error)``
says which of its errors are worth trying again (a lock held by another writer, a lost connection),
and ``retry_delays`` how long to wait before each new try.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from failpath.core import StoreError, Ticket, Trace
from failpath.store.records import ticket_row, trace_rows

__all__ = ["TraceWriter", "QueuedTicket", "RowBatch", "RETRY_DELAYS"]

_log = logging.getLogger("failpath.store")

#: Seconds to wait before each new try of a batch that met a transient error; then it is given up.
RETRY_DELAYS = (0.05, 0.2, 1.0, 3.0)


class QueuedTicket:
    """A ticket waiting in the writer's queue (a store made with ``queue_tickets=True``), with its id and time fixed."""

    __slots__ = ("ticket", "ticket_id", "created")

    def __init__(self, ticket: Ticket, ticket_id: str, created: float) -> None:
        self.ticket = ticket
        self.ticket_id = ticket_id
        self.created = created


@dataclass
class RowBatch:
    """The rows of one batch, rendered on the writer thread: ``traces``, ``trace_states`` and ``tickets`` rows."""

    traces: list[tuple] = field(default_factory=list)
    states: list[tuple] = field(default_factory=list)
    tickets: list[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        """Traces and tickets in the batch (state rows belong to their trace)."""
        return len(self.traces) + len(self.tickets)


class TraceWriter:
    """Owns the pending traces and the one thread that writes them in batches.

    ``pending`` is a deque: callers append, and the writer removes a trace only after the batch
    holding it is committed (or given up), so "nothing pending" is exactly "everything is written".
    The writer wakes every ``flush_interval`` seconds, or at once when ``flush``, ``stop`` or a full
    queue asks, and writes what is pending in batches of up to ``batch_size``.

    Kept apart from the store so the thread holds no reference to it: a store that is dropped
    without ``close()`` is still flushed (by ``weakref.finalize``, which also runs at exit).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        write_rows: Callable[[Any, RowBatch], None],
        *,
        is_transient: Callable[[BaseException], bool],
        batch_size: int,
        flush_interval: float,
        max_pending: int,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self.pending: collections.deque[Trace | QueuedTicket] = collections.deque()
        self.max_pending = max_pending
        self._connect = connect
        self._write_rows = write_rows
        self._is_transient = is_transient
        self._retry_delays = tuple(retry_delays)
        # Set when a batch used up its retries on a transient error: the next batches get one try each
        # (no waiting) until one is written, so a store whose server is gone closes without a long wait.
        self._unreachable = False
        self._batch_size = batch_size
        self._flush_interval = max(flush_interval, 0.001)  # 0 would spin while idle
        self._wake = threading.Event()
        # Guards done (traces the writer finished with, written or lost) together with removals
        # from pending, so done + len(pending) is read consistently by flush().
        self._progress = threading.Condition(threading.Lock())
        self.done = 0
        self.written = 0
        self.lost = 0
        self.error: BaseException | None = None
        self.stopped = False
        self._stopping = False
        # The thread starts with the first queued trace: a store only read from, or only written to
        # synchronously (runs, results), never has one (and a process without threads can fork safely).
        self._thread: threading.Thread | None = None
        self._writer_ident: int | None = None  # the writer thread's id, set by the thread itself as it starts
        self._starting = threading.Lock()

    def start(self) -> None:
        """Start the writer thread (once; called when the first trace is queued)."""
        with self._starting:
            if self._thread is None and not self._stopping:
                thread = threading.Thread(target=self._run, name="failpath-trace-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- called from any thread
    def flush(self, timeout: float | None) -> bool:
        """Wait until every trace appended before this call is written; False if ``timeout`` ran out.

        Called on the writer thread itself (a policy garbage-collected while a batch is rendered flushes
        its store from there), it returns False at once: the thread cannot wait for its own work.
        """
        if not self.pending:
            return True
        if threading.get_ident() == self._writer_ident:
            return False
        if self._thread is None:
            self.start()
        with self._progress:
            target = self.done + len(self.pending)
            self._wake.set()
            return self._progress.wait_for(lambda: self.done >= target or not self._alive(), timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new traces, write the pending ones and stop the thread."""
        if self.stopped:
            return
        self.stopped = True  # write_trace refuses new traces from here on
        self._stopping = True
        self._wake.set()
        with self._starting:  # no thread starts from here on
            thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        if self.pending and not self._alive():
            # Traces appended while the writer was finishing (a write_trace racing close()).
            connection = self._connect()
            try:
                while self.pending:
                    self._write_next_batch(connection)
            finally:
                connection.close()

    def wait_for_room(self) -> None:
        """Backpressure: block while more than ``max_pending`` traces wait (never drop one)."""
        while len(self.pending) > self.max_pending and self._alive():
            self._wake.set()
            time.sleep(0.001)

    # -- the writer thread
    def _run(self) -> None:
        self._writer_ident = threading.get_ident()
        connection: Any = None
        pending, wake = self.pending, self._wake
        try:
            while True:
                wake.clear()
                if pending:
                    if connection is None:
                        try:
                            connection = self._connect()
                        except Exception as exc:  # the store went away or became unreachable
                            self._write_next_batch(None, exc)
                            continue
                    self._write_next_batch(connection)
                elif self._stopping:
                    break
                else:
                    wake.wait(self._flush_interval)
        finally:
            with self._progress:
                self._progress.notify_all()  # never leave a flush() waiting on a dead writer
            if connection is not None:
                connection.close()

    def _write_next_batch(self, connection: Any, error: Exception | None = None) -> None:
        """Write up to ``batch_size`` traces from the head of the queue, then remove them from it.

        With no connection (opening one failed with ``error``), the batch is counted as lost.
        """
        pending = self.pending
        # Indexing, not iterating: other threads append while we read (only this thread removes).
        batch = [pending[i] for i in range(min(len(pending), self._batch_size))]
        if connection is None:
            self._give_up(len(batch), error or StoreError("no connection"))
        else:
            try:
                self._write(connection, batch)
            except Exception as exc:  # whatever happens, report it and never kill the thread
                self._give_up(len(batch), exc)
        with self._progress:
            for _ in batch:
                pending.popleft()
            self.done += len(batch)
            self._progress.notify_all()

    def _give_up(self, count: int, error: BaseException) -> None:
        self.lost += count
        self.error = error
        _log.error("failpath: %d traces could not be written: %r", count, error)

    def _render(self, batch: list[Trace | QueuedTicket]) -> list[RowBatch]:
        """The rows of each item of the batch; an item that cannot be rendered is given up on its own."""
        parts = []
        for item in batch:
            rows = RowBatch()
            try:
                if type(item) is QueuedTicket:
                    rows.tickets.append(ticket_row(item.ticket, item.ticket_id, item.created))
                else:
                    row, states = trace_rows(item)
                    rows.traces.append(row)
                    rows.states.extend(states)
            except Exception as exc:  # a trace whose fields are not what Trace declares
                self._give_up(1, exc)
                continue
            parts.append(rows)
        return parts

    def _write(self, connection: Any, batch: list[Trace | QueuedTicket]) -> None:
        """Write the batch in one transaction; if that fails for a reason other than a transient one,
        write its items one by one, so only an item the store refuses is lost (never its neighbours)."""
        parts = self._render(batch)
        if not parts:
            return
        rows = RowBatch()
        for part in parts:
            rows.traces.extend(part.traces)
            rows.states.extend(part.states)
            rows.tickets.extend(part.tickets)
        error = self._write_with_retries(connection, rows)
        if error is None:
            return
        if len(parts) == 1 or self._is_transient(error):
            self._give_up(len(rows), error)
            return
        for part in parts:  # one item (a value the database cannot take) may have failed the whole batch
            error = self._write_with_retries(connection, part)
            if error is not None:
                self._give_up(len(part), error)

    def _write_with_retries(self, connection: Any, rows: RowBatch) -> Exception | None:
        """Write ``rows`` in one transaction, trying again after a transient error; the last error, or None."""
        delays = () if self._unreachable else self._retry_delays
        for attempt in range(len(delays) + 1):
            try:
                self._write_rows(connection, rows)
                self.written += len(rows)
                self._unreachable = False
                return None
            except Exception as exc:
                # A transient error (another writer held the lock too long) is worth trying again;
                # anything else (read-only file, full disk, damaged file, a value it cannot take) is
                # reported at once.
                if not self._is_transient(exc) or attempt == len(delays):
                    self._unreachable = self._is_transient(exc)
                    return exc
                time.sleep(delays[attempt])
        return None  # not reached: the last attempt returns

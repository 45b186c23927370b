"""The default store: one SQLite file in WAL mode, shared by threads and processes.

:class:`SQLiteStore` is assembled from the parts of this package: :mod:`.schema` (tables, migrations,
opening a file), :mod:`.connections` (connections, write turns, the batch write the background
writer calls), and the queries by concern, :mod:`.traces`, :mod:`.tickets` and :mod:`.runs`. What does
not depend on SQLite (the trace writer, queueing and fork handling, rows) is in :mod:`failpath.store`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from failpath.core import StoreError
from failpath.store.group_commit import GroupCommit
from failpath.store.queued import QueuedStore
from failpath.store.sqlite.checkpoints import CheckpointQueries
from failpath.store.sqlite.reviewers import ReviewerQueries
from failpath.store.sqlite.connections import Connector, is_transient, make_batch_writer
from failpath.store.sqlite.runs import RunQueries
from failpath.store.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION, prepare_file, read_only_uri
from failpath.store.sqlite.tickets import TicketQueries
from failpath.store.sqlite.traces import TraceQueries
from failpath.store.writer import TraceWriter

__all__ = ["SQLiteStore", "SCHEMA_VERSION", "APPLICATION_ID"]


class SQLiteStore(TraceQueries, TicketQueries, RunQueries, CheckpointQueries, ReviewerQueries, QueuedStore):
    """A failpath store in one SQLite file (WAL mode), safe to share between threads and processes.

    ``SQLiteStore(path, batch_size=256, flush_interval=0.05, busy_timeout=30.0, max_pending=100_000, queue_tickets=False)``

    Traces: :meth:`write_trace` only appends the trace to an in-memory queue (no serialization, no
    disk, no lock). One background thread per store wakes every ``flush_interval`` seconds (at once
    on :meth:`flush`), renders the waiting traces to rows and writes them in batches of up to
    ``batch_size``, one transaction per batch. :meth:`flush` blocks until everything queued before
    it is committed; :meth:`close` flushes and stops the thread; a store left open is flushed when
    it is garbage collected or when the interpreter exits. Reads through this object
    (:meth:`get_trace`, :meth:`query_traces`, :meth:`count_traces`, :meth:`read_connection`) flush
    first when traces are waiting, so they see the store's own writes.

    Durability bound: a trace is on disk once the batch holding it is committed, and a trace
    leaves the queue only then. If the process is killed (SIGKILL), the file stays consistent
    (each batch is one transaction: all of it or none of it, and batches commit in queue order)
    and the traces lost are exactly those still queued: the traces written since the writer last
    emptied the queue, i.e. about ``flush_interval`` seconds of traces when the writer keeps up,
    and never more than ``max_pending`` plus one batch (past ``max_pending`` waiting traces,
    ``write_trace`` waits for the writer instead of dropping a trace). Every trace queued before a
    :meth:`flush` that returned is safe. With ``synchronous=NORMAL`` a commit survives a killed
    process; after an OS crash or power loss the last commits may be rolled back (the file stays
    consistent).

    Tickets, runs, results and agent run checkpoints are written synchronously and are on disk when the
    call returns (``queue_tickets=True`` sends tickets through the trace writer's queue instead, for a
    store whose tickets nobody answers live, such as the scratch store of a check's own guarded calls).
    Checkpoints, :meth:`begin_run` and :meth:`finish_run` are group-committed: the ones that threads of
    this process write at the same moment share one transaction, and each call still returns only once
    the transaction holding its write is committed (:mod:`failpath.store.group_commit`).
    Ticket resolution is atomic across processes. Within a process, the store's write transactions
    (the writer thread's and the synchronous ones) take turns on one lock, so a ticket written while
    a batch of traces commits waits for that commit, not for SQLite's busy handler to wake up. Each thread gets its own connections (one for
    reads, with ``query_only`` on, one for synchronous writes), so a write waiting for another
    process's lock never holds up this process's reads; every write transaction starts with
    ``BEGIN IMMEDIATE`` and waits up to ``busy_timeout`` seconds for another writer.

    A process forked from one holding an open store gets a fresh, empty queue and its own
    connections (the parent's queued traces are written by the parent only). Fork while no batch
    is being written (as a pre-forking server does at start-up); a fork in the middle of a SQLite
    call can leave the child's SQLite locks in an unknown state, as with any threaded program.

    ``read_only=True`` opens an existing store without writing to it, for reading a store on read-only
    media (SQLite's ``mode=ro``, or ``immutable=1`` for a cleanly closed store whose folder cannot take
    the ``-shm`` file); its writes raise :class:`~failpath.core.StoreError`, and a store that would
    need a migration or holds uncommitted ``-wal`` data is refused with a message.

    A store of an older schema version is migrated when it is opened (see
    :mod:`failpath.store.sqlite.schema`). Raises :class:`~failpath.core.StoreError` when the path is a
    folder, its folder cannot be created, the file is not a failpath store, or it was written by a
    newer failpath.
    """

    #: Which SQL the store's read connection speaks (see :mod:`failpath.store.trace_queries`).
    sql_dialect = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 256,
        flush_interval: float = 0.05,
        busy_timeout: float = 30.0,
        max_pending: int = 100_000,
        queue_tickets: bool = False,
        read_only: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0 seconds, got {flush_interval}")
        self.path = Path(path)
        self.location = str(self.path)
        self.queue_tickets = bool(queue_tickets)
        self._busy_timeout = float(busy_timeout)
        self.read_only = bool(read_only)
        if read_only:
            self._uri: str | None = read_only_uri(self.path, self._busy_timeout)
        else:
            self._uri = None
            prepare_file(self.path, self._busy_timeout)
        self._options = dict(batch_size=batch_size, flush_interval=flush_interval, max_pending=max_pending)
        self._open_queue()

    def _start(self) -> None:
        # Neither the writer thread nor the finalizer may refer to self: a dropped store is then
        # garbage collected, and its finalizer flushes it.
        self._local = threading.local()
        self._connector = Connector(self.path, self._busy_timeout, uri=self._uri)
        self._writer = TraceWriter(
            self._connector.connect,
            make_batch_writer(self._connector.write_lock),
            is_transient=is_transient,
            **self._options,
        )
        self._group = GroupCommit()
        self._group_connection: sqlite3.Connection | None = None  # opened by the first batch's leader
        self._finalize_with(self._connector.close_all)

    def _inherited(self) -> tuple[Any, ...]:
        return (self._writer, self._connector, self._local)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}{', closed' if self._closed else ''})"

    # ------------------------------------------------------------------ connections

    def _thread_connection(self, kind: str) -> sqlite3.Connection:
        """This thread's connection of ``kind`` (``"read"`` or ``"write"``), opened on first use."""
        if self._closed:
            raise StoreError(f"the store {self.path} is closed; open it again with open_store()")
        connection = getattr(self._local, kind, None)
        if connection is None:
            try:
                connection = self._connector.connect(read_only=kind == "read")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store {self.path}: {exc}") from None
            setattr(self._local, kind, connection)
        return connection

    def _shared_connection(self) -> sqlite3.Connection:
        """The write connection of the group commit, used by one batch's leader at a time (whichever thread
        leads): its page cache stays warm from one batch to the next, where each thread's own connection
        would read the pages again after every other connection's commit."""
        if self._closed:
            raise StoreError(f"the store {self.path} is closed; open it again with open_store()")
        if self._group_connection is None:  # only a leader gets here, and there is one at a time
            try:
                self._group_connection = self._connector.connect()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store {self.path}: {exc}") from None
        return self._group_connection

    @contextlib.contextmanager
    def _transaction(self, timeout: float | None = None, *, shared: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection (``BEGIN IMMEDIATE``: takes the write lock now).

        ``timeout`` (seconds) bounds the wait for the lock, this process's writers' and other processes',
        in place of ``busy_timeout``: ``StoreError`` when it runs out. ``shared``: on the group commit's
        connection instead (for its leader only)."""
        connection = self._shared_connection() if shared else self._thread_connection("write")
        with contextlib.ExitStack() as turn:
            try:
                turn.enter_context(self._connector.write_lock.urgent(timeout))
            except TimeoutError as exc:
                raise StoreError(f"cannot write to the store {self.path} in time: {exc}") from None
            try:
                if timeout is not None:
                    connection.execute(f"PRAGMA busy_timeout = {max(int(timeout * 1000), 1)}")
                try:
                    connection.execute("BEGIN IMMEDIATE")
                finally:
                    if timeout is not None:
                        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to the store {self.path}: {exc}") from None
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot write to the store {self.path}: {exc}") from None
                raise

    def _grouped(self, work: Any) -> Any:
        """``work(connection)`` in a write transaction shared with the other threads writing now (group commit).

        Returns ``work``'s result once the transaction holding it is committed (see
        :mod:`failpath.store.group_commit`)."""
        return self._group.write(self._group_transaction, work)

    def _group_transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._transaction(shared=True)

    @contextlib.contextmanager
    def read_connection(self, *, flush: bool = True) -> Iterator[sqlite3.Connection]:
        """A read-only connection to this store's database, for queries inside ``failpath.store``.

        It is this thread's own connection (do not pass it to another thread), with
        ``PRAGMA query_only`` on and rows as :class:`sqlite3.Row`; it stays open after the block.
        With ``flush`` (the default), traces queued by this store are written first, so the
        queries see them. Each statement reads a consistent snapshot; wrap several statements in
        ``BEGIN`` ... ``COMMIT`` to read them all from one snapshot. Tables: ``traces``,
        ``trace_states`` (one row per detected state and trace: ``state, time, trace_id, policy,
        outcome``), ``tickets``, ``runs``, ``results``, ``run_checkpoints``, ``schema_version``; see
        ``failpath/store/sqlite/schema.py``.
        """
        writer = self._writer
        if flush and writer.pending:
            writer.flush(None)
        connection = self._thread_connection("read")
        try:
            yield connection
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store {self.path}: {exc}") from None
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")

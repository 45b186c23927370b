"""A store on a PostgreSQL server, for a team: several services, reviewers and CI jobs share one database.

:class:`PostgresStore` is assembled like the SQLite store: :mod:`.schema` (tables, migrations),
:mod:`.connections` (the URL in messages, the writer's connection, the batch write) and the queries
by concern, :mod:`.traces`, :mod:`.tickets` and :mod:`.runs`. It needs psycopg 3 and psycopg_pool
(``pip install "failpath[postgres]"``); this package is imported only when a ``postgresql://``
store is opened.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from failpath.core import StoreError
from failpath.store.postgres.checkpoints import CheckpointQueries
from failpath.store.postgres.reviewers import ReviewerQueries
from failpath.store.postgres.connections import WriterConnection, is_transient, make_batch_writer, redact
from failpath.store.postgres.runs import RunQueries
from failpath.store.postgres.schema import SCHEMA_VERSION, prepare_database
from failpath.store.postgres.tickets import TicketQueries
from failpath.store.postgres.traces import TraceQueries
from failpath.store.queued import QueuedStore
from failpath.store.writer import TraceWriter

__all__ = ["PostgresStore", "SCHEMA_VERSION", "RETRY_DELAYS"]

#: Seconds the trace writer waits before each new try of a batch that met a lost connection (about
#: half a minute in all: long enough for a server restart or a fail-over); then the batch is counted lost.
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


class PostgresStore(TraceQueries, TicketQueries, RunQueries, CheckpointQueries, ReviewerQueries, QueuedStore):
    """A failpath store in a PostgreSQL database, shared by threads, processes and machines.

    ``PostgresStore(url, batch_size=1024, flush_interval=0.05, max_pending=100_000, queue_tickets=False,
    pool_size=4, connect_timeout=10.0, wait_timeout=30.0)``

    ``url`` is a libpq URL, ``postgresql://user:password@host:port/database`` (``postgres://`` too;
    the password may also come from ``PGPASSWORD`` or ``~/.pgpass``). Messages name the URL without
    its password (:attr:`path`).

    Traces behave as in the SQLite store: :meth:`write_trace` appends to an in-memory queue; one
    background thread writes the queue in batches of up to ``batch_size`` (larger than SQLite's: each
    batch costs a few round trips to the server), one transaction per batch, copied with ``COPY``; :meth:`flush` waits for the server's commit. A lost connection
    (server restart, fail-over, network) is opened again and the batch tried again with backoff
    (:data:`RETRY_DELAYS`, about half a minute); a batch still failing is counted and reported by the
    next :meth:`flush` or :meth:`close` (a ``StoreError`` saying how many traces and why), never
    dropped silently. A batch tried again after its commit was lost adds nothing twice.

    Tickets, runs and results are written synchronously through a connection pool (psycopg_pool,
    up to ``pool_size`` connections, each checked before use; a lost one is replaced, and a call
    waits up to ``wait_timeout`` seconds for the server). Resolving a ticket is atomic across
    machines: the first resolution wins. Trace and result ids grow in commit order (the writes that
    give them take an advisory lock), so readers that follow ids miss nothing.

    The schema is created or migrated on first use (see :mod:`failpath.store.postgres.schema`);
    a database written by a newer failpath is refused. Raises :class:`~failpath.core.StoreError`
    naming the URL (without the password) when the server cannot be reached or refuses the login.
    """

    #: Which SQL the store's read connection speaks (see :mod:`failpath.store.trace_queries`).
    sql_dialect = "postgres"

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 1024,
        flush_interval: float = 0.05,
        max_pending: int = 100_000,
        queue_tickets: bool = False,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        wait_timeout: float = 30.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0 seconds, got {flush_interval}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        self.url = str(url)
        self.location = self.url  # what open_store takes to open it again elsewhere
        self.path = redact(self.url)  # what messages call the store
        self.queue_tickets = bool(queue_tickets)
        self._pool_size = int(pool_size)
        self._connect_timeout = float(connect_timeout)
        self._wait_timeout = float(wait_timeout)
        try:
            with psycopg.connect(self.url, connect_timeout=max(1, int(self._connect_timeout))) as connection:
                prepare_database(connection, self.path)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot open the store {self.path}: {_reason(exc)}; check the URL, that the server is up, "
                f"and the user's password (in the URL, PGPASSWORD or ~/.pgpass)"
            ) from None
        self._options = dict(batch_size=batch_size, flush_interval=flush_interval, max_pending=max_pending)
        self._open_queue()

    def _start(self) -> None:
        # Neither the writer thread nor the finalizer may refer to self (see QueuedStore).
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, int(self._connect_timeout))},
            check=ConnectionPool.check_connection,
            timeout=self._wait_timeout,
            open=False,
            name="failpath",
        )
        self._pool_opening = threading.Lock()
        self._pool_opened = False
        self._writer_connection = WriterConnection(self.url, self._connect_timeout)
        holder = self._writer_connection
        self._writer = TraceWriter(
            lambda: holder,
            make_batch_writer(),
            is_transient=is_transient,
            retry_delays=RETRY_DELAYS,
            **self._options,
        )
        pool = self._pool
        self._finalize_with(lambda: _release(pool, holder))

    def _inherited(self) -> tuple[Any, ...]:
        return (self._writer, self._pool, self._writer_connection)

    def __repr__(self) -> str:
        return f"PostgresStore({self.path!r}{', closed' if self._closed else ''})"

    # ------------------------------------------------------------------ connections

    @contextlib.contextmanager
    def _connection(self, doing: str) -> Iterator[psycopg.Connection]:
        """A pooled connection inside one transaction (committed at the end, rolled back on an error)."""
        if self._closed:
            raise StoreError(f"the store {self.path} is closed; open it again with open_store()")
        if not self._pool_opened:
            with self._pool_opening:
                if not self._pool_opened:
                    self._pool.open(wait=False)
                    self._pool_opened = True
        try:
            with self._pool.connection() as connection:
                yield connection
        except PoolTimeout:
            raise StoreError(
                f"cannot {doing} the store {self.path}: no connection to the server within {self._wait_timeout:g} s; "
                f"is the server up?"
            ) from None
        except psycopg.Error as exc:
            raise StoreError(f"cannot {doing} the store {self.path}: {_reason(exc)}") from None

    def _transaction(self) -> contextlib.AbstractContextManager[psycopg.Connection]:
        """A write transaction on a pooled connection."""
        return self._connection("write to")

    @contextlib.contextmanager
    def read_connection(self, *, flush: bool = True) -> Iterator[psycopg.Connection]:
        """A connection to this store's database for queries inside ``failpath.store`` (one transaction).

        Rows come as dicts; placeholders are ``%s``. With ``flush`` (the default), traces queued by
        this store are written first, so the queries see them. Statements in the block share one
        transaction; use ``SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`` first to read them all
        from one snapshot.
        """
        writer = self._writer
        if flush and writer.pending:
            writer.flush(None)
        with self._connection("read") as connection:
            yield connection


def _reason(error: BaseException) -> str:
    """The server's or libpq's message, on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def _release(pool: ConnectionPool, holder: WriterConnection) -> None:
    holder.close()
    with contextlib.suppress(Exception):
        pool.close(timeout=1.0)

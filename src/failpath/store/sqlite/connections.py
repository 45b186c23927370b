"""SQLite connections: how they are opened, the turns their write transactions take, and the batch write.

:func:`make_batch_writer` is what the SQLite store hands the backend-neutral
:class:`~failpath.store.writer.TraceWriter` as its ``write_rows``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from failpath.store.common import PREFIX_END, PREFIX_MATCHES
from failpath.store import rollup
from failpath.store.records import TICKET_COLUMNS, TICKET_WIDTH, TRACE_COLUMNS, TRACE_STATE_COLUMNS
from failpath.store.writer import RowBatch

__all__ = ["Connector", "WriteTurns", "INSERT_TRACE", "INSERT_STATE", "INSERT_TICKET", "make_batch_writer", "is_transient", "by_prefix"]

INSERT_TRACE = f"INSERT OR IGNORE INTO traces ({TRACE_COLUMNS}) VALUES ({', '.join('?' * 19)})"
INSERT_STATE = f"INSERT OR IGNORE INTO trace_states ({TRACE_STATE_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
INSERT_TICKET = f"INSERT OR IGNORE INTO tickets ({TICKET_COLUMNS}) VALUES ({', '.join('?' * TICKET_WIDTH)})"


class WriteTurns:
    """The turns the write transactions of one store's threads take (the trace writer's and the synchronous ones).

    One waiting here is woken as soon as the other commits, where SQLite's own busy handler would
    sleep for a millisecond or more; other processes still meet SQLite's lock. Synchronous writes
    (a ticket a caller waits for) go first: the trace writer lets the ones already waiting pass before
    each batch, but not those that arrive after it: under a steady stream of tickets from many threads,
    waiting for none to be waiting starved the writer (its queue, what a kill loses, grew without bound).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(threading.Lock())
        self._arrived = 0  # synchronous writes that asked for a turn
        self._served = 0  # ... and those that got it

    @contextlib.contextmanager
    def urgent(self, timeout: float | None = None) -> Iterator[None]:
        """A synchronous write's turn; ``TimeoutError`` when it does not come within ``timeout`` seconds."""
        with self._changed:
            self._arrived += 1
        try:
            got = self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))
        finally:
            with self._changed:
                self._served += 1
                self._changed.notify_all()
        if not got:
            raise TimeoutError(f"no turn to write within {timeout:.3g}s (this process's trace writer held it)")
        try:
            yield
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        """The trace writer's turn, after the synchronous writes waiting when it asked (not later ones)."""
        target = self._arrived
        if self._served < target:
            with self._changed:
                self._changed.wait_for(lambda: self._served >= target, timeout=1.0)
        with self._lock:
            yield


class Connector:
    """Opens connections to one database file and remembers them, so they can all be closed."""

    def __init__(self, path: Path, busy_timeout: float, uri: str | None = None) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.uri = uri  # a read-only store's ``file:...?mode=ro`` (or ``immutable=1``) URI
        self.connections: list[sqlite3.Connection] = []
        self.lock = threading.Lock()
        self.write_lock = WriteTurns()

    def connect(self, *, remember: bool = True, read_only: bool = False) -> sqlite3.Connection:
        """A new connection: autocommit (transactions are explicit), rows as ``sqlite3.Row``."""
        connection = sqlite3.connect(
            self.uri or self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False,
            uri=self.uri is not None,
        )
        try:
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            connection.execute("PRAGMA synchronous = NORMAL")
            if read_only:
                connection.execute("PRAGMA query_only = ON")
        except BaseException:
            connection.close()
            raise
        if remember:
            with self.lock:
                self.connections.append(connection)
        return connection

    def close_all(self) -> None:
        """Close every connection this connector opened and remembered."""
        with self.lock:
            connections, self.connections = self.connections, []
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.close()


def is_transient(error: BaseException) -> bool:
    """True for SQLite's "locked"/"busy": another writer held the lock past ``busy_timeout``."""
    return isinstance(error, sqlite3.Error) and ("locked" in str(error) or "busy" in str(error))


def make_batch_writer(write_lock: WriteTurns) -> Callable[[sqlite3.Connection, RowBatch], None]:
    """The trace writer's ``write_rows``: one ``BEGIN IMMEDIATE`` transaction per batch, in the background turn."""

    def write_rows(connection: sqlite3.Connection, rows: RowBatch) -> None:
        with write_lock.background():
            connection.execute("BEGIN IMMEDIATE")
            try:
                if rows.traces:
                    cursor = connection.cursor()
                    cursor.row_factory = None
                    before = rollup.last_id(cursor)
                    connection.executemany(INSERT_TRACE, rows.traces)
                    rollup.fold_new_traces(cursor, "?", before)  # what this batch inserted, once
                if rows.states:
                    connection.executemany(INSERT_STATE, rows.states)
                if rows.tickets:
                    connection.executemany(INSERT_TICKET, rows.tickets)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    return write_rows


def by_prefix(connection: sqlite3.Connection, table: str, column: str, prefix: str) -> list[sqlite3.Row]:
    """The first few rows whose id ``column`` starts with ``prefix`` (one index range), in id order."""
    if not prefix:
        return []
    return connection.execute(
        f"SELECT * FROM {table} WHERE {column} >= ? AND {column} < ? ORDER BY {column} LIMIT {PREFIX_MATCHES}",
        (prefix, prefix + PREFIX_END),
    ).fetchall()

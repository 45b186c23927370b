"""PostgreSQL connections: the URL as messages show it, the pool, the writer's own connection, the batch write.

:func:`make_batch_writer` is what the PostgreSQL store hands the backend-neutral
:class:`~failpath.store.writer.TraceWriter` as its ``write_rows``; the writer's connection is a
:class:`WriterConnection`, which opens a new server connection when the last one was lost.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors

from failpath.store import rollup
from failpath.store.records import TICKET_COLUMNS, TICKET_WIDTH, TRACE_COLUMNS, TRACE_STATE_COLUMNS
from failpath.store.writer import RowBatch

__all__ = [
    "redact",
    "WriterConnection",
    "make_batch_writer",
    "is_transient",
    "INSERT_TICKET",
    "without_nul",
    "TRACE_LOCK",
    "RESULT_LOCK",
]

#: Advisory locks (``pg_advisory_xact_lock``) under which rows get their ids, so ids grow in commit order
#: and a reader following ids (``traces tail --follow``, a check reading its rows back) never skips a row
#: committed late by another process.
TRACE_LOCK = 0x66707401
RESULT_LOCK = 0x66707402

INSERT_TICKET = (
    f"INSERT INTO tickets ({TICKET_COLUMNS}) VALUES ({', '.join(['%s'] * TICKET_WIDTH)}) ON CONFLICT (ticket_id) DO NOTHING"
)

_STAGE_TRACES = (
    f"CREATE TEMP TABLE staged_traces ON COMMIT DELETE ROWS AS "
    f"SELECT {TRACE_COLUMNS} FROM traces WITH NO DATA"
)
_STAGE_STATES = (
    f"CREATE TEMP TABLE staged_states ON COMMIT DELETE ROWS AS "
    f"SELECT {TRACE_STATE_COLUMNS} FROM trace_states WITH NO DATA"
)


def redact(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter), for messages."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def is_transient(error: BaseException) -> bool:
    """True for errors worth trying again: a lost or refused connection, a server restarting, a deadlock."""
    return isinstance(
        error, (psycopg.OperationalError, errors.SerializationFailure, errors.DeadlockDetected)
    )


class WriterConnection:
    """The trace writer's connection: opened on first use, and opened again after it was lost.

    ``get()`` returns a live psycopg connection; a failed batch whose connection broke calls
    ``lost()``, so the next try connects anew (with the writer's backoff between tries).
    """

    def __init__(self, conninfo: str, connect_timeout: float) -> None:
        self._conninfo = conninfo
        self._timeout = connect_timeout
        self._connection: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def get(self) -> psycopg.Connection:
        """The current connection, or a new one (autocommit, with its staging tables) when there is none or it broke."""
        with self._lock:
            connection = self._connection
            if connection is None or connection.closed or connection.broken:
                self._close(connection)
                connection = psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=max(1, int(self._timeout))
                )
                try:
                    connection.execute(_STAGE_TRACES)
                    connection.execute(_STAGE_STATES)
                except BaseException:
                    self._close(connection)
                    raise
                self._connection = connection
            return connection

    def lost(self) -> None:
        """Forget the current connection (it failed): the next ``get()`` opens a new one."""
        with self._lock:
            self._close(self._connection)
            self._connection = None

    @staticmethod
    def _close(connection: psycopg.Connection | None) -> None:
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def close(self) -> None:
        """Close the connection, if one is open."""
        self.lost()


#: Column types of a ``traces`` row and a ``trace_states`` row, for the binary COPY.
_TRACE_TYPES = (
    "text", "float8", "text", "text", "text", "int2", "float8", "float8", "text", "text",
    "text", "text", "text", "text", "text", "text", "int4", "text", "text",
)
_STATE_TYPES = ("text", "float8", "text", "text", "text")


def without_nul(row: tuple) -> tuple:
    """``row`` with NUL characters in its strings replaced by U+FFFD: PostgreSQL's text cannot hold NUL
    (SQLite's can), and an input may carry one (chaos inputs do)."""
    return tuple(v.replace("\x00", "\ufffd") if type(v) is str and "\x00" in v else v for v in row)


def make_batch_writer() -> Callable[[WriterConnection, RowBatch], None]:
    """The trace writer's ``write_rows``: one transaction per batch.

    Traces and their state rows are copied (``COPY``) into temporary tables, then moved into
    ``traces`` and ``trace_states`` with ``ON CONFLICT DO NOTHING`` under the trace lock: a batch
    tried again after a connection was lost during its commit adds nothing twice, and trace ids grow
    in commit order. Only the short move holds the lock; the copy runs alongside other writers.
    """

    def write_rows(holder: WriterConnection, rows: RowBatch) -> None:
        try:
            _write(holder.get(), rows)
        except (psycopg.DataError, errors.CharacterNotInRepertoire):  # a NUL in some string: again without it
            clean = RowBatch(
                [without_nul(r) for r in rows.traces], [without_nul(r) for r in rows.states], [without_nul(r) for r in rows.tickets]
            )
            _write(holder.get(), clean)
        except psycopg.OperationalError:
            holder.lost()
            raise

    def _write(connection: psycopg.Connection, rows: RowBatch) -> None:
        with connection.transaction():
            with connection.cursor() as cursor:
                if rows.traces:
                    with cursor.copy(f"COPY staged_traces ({TRACE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(_TRACE_TYPES)
                        for row in rows.traces:
                            copy.write_row(row)
                if rows.states:
                    with cursor.copy(f"COPY staged_states ({TRACE_STATE_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(_STATE_TYPES)
                        for row in rows.states:
                            copy.write_row(row)
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (TRACE_LOCK,))
                if rows.traces:
                    inserted = cursor.execute(  # only the rows inserted come back: a batch retried counts once
                        f"INSERT INTO traces ({TRACE_COLUMNS}) SELECT {TRACE_COLUMNS} FROM staged_traces "
                        f"ON CONFLICT (trace_id) DO NOTHING RETURNING {rollup.TRACE_FIGURES}"
                    ).fetchall()
                    rollup.fold_rows(cursor, "%s", inserted)
                if rows.states:
                    cursor.execute(
                        f"INSERT INTO trace_states ({TRACE_STATE_COLUMNS}) SELECT {TRACE_STATE_COLUMNS} "
                        "FROM staged_states ON CONFLICT DO NOTHING"
                    )
                if rows.tickets:
                    cursor.executemany(INSERT_TICKET, rows.tickets)

    return write_rows

"""The PostgreSQL store's trace reads and deletes (traces are written by the background writer)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from failpath.core import StoreError, Trace
from psycopg.rows import tuple_row

from failpath.store import rollup
from failpath.store.common import PREFIX_END, PREFIX_MATCHES, ambiguous
from failpath.store.records import row_to_trace
from failpath.store.postgres.connections import TRACE_LOCK
from failpath.store.trace_queries import TraceFilter

__all__ = ["TraceQueries", "by_prefix"]


def _tuples(connection: Any) -> Any:
    """A cursor on ``connection`` whose rows are plain tuples."""
    return connection.cursor(row_factory=tuple_row)


def by_prefix(connection: Any, table: str, column: str, prefix: str) -> list[dict[str, Any]]:
    """The first few rows whose id ``column`` (``COLLATE "C"``) starts with ``prefix``, in id order."""
    if not prefix:
        return []
    return connection.execute(
        f"SELECT * FROM {table} WHERE {column} >= %s AND {column} < %s ORDER BY {column} LIMIT {PREFIX_MATCHES}",
        (prefix, prefix + PREFIX_END),
    ).fetchall()


def _trace_filters(
    policy: str | None, outcome: str | None, state: str | None, since: float | None, until: float | None
) -> tuple[str, str, list[Any]]:
    """(table, WHERE clause, parameters) for the trace filters; with a ``state``, ``trace_states`` is read."""
    where = TraceFilter(policy=policy, outcome=outcome, state=state, since=since, until=until)
    if state is None:
        clause, params = where.where("traces", mark="%s")
        return "traces", clause, params
    clause, params = where.states_where("trace_states", mark="%s")
    condition = "trace_states.state = %s"
    clause = f" WHERE {condition} AND {clause[len(' WHERE '):]}" if clause else f" WHERE {condition}"
    return "trace_states", clause, [state, *params]


class TraceQueries:
    """The trace methods of :class:`~failpath.store.postgres.PostgresStore`, which supplies the names declared here."""

    path: str
    read_connection: Callable[..., AbstractContextManager[Any]]
    _transaction: Callable[[], AbstractContextManager[Any]]
    flush: Callable[..., None]

    def get_trace(self, trace_id: str) -> Trace | None:
        """The trace with that id (a unique prefix works too), or None.

        Raises ``StoreError`` when the prefix matches several traces.
        """
        with self.read_connection() as connection:
            row = connection.execute("SELECT * FROM traces WHERE trace_id = %s", (trace_id,)).fetchone()
            if row is None:
                rows = by_prefix(connection, "traces", "trace_id", trace_id)
                if not rows:
                    return None
                if len(rows) > 1:
                    raise StoreError(ambiguous("trace", trace_id, [r["trace_id"] for r in rows]))
                row = rows[0]
        return row_to_trace(row)

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
        """Traces matching every filter given (``since`` inclusive, ``until`` exclusive, Unix seconds).

        ``state`` matches a trace in which that failure state was detected (any of ``Trace.states``,
        or ``Trace.state``). ``limit=None`` returns every match.
        """
        table, where, params = _trace_filters(policy, outcome, state, since, until)
        order = "DESC" if newest_first else "ASC"
        limit_sql = ""
        if limit is not None:
            limit_sql = " LIMIT %s"
            params.append(max(0, int(limit)))
        if table == "traces":
            sql = f"SELECT * FROM traces{where} ORDER BY time {order}, id {order}{limit_sql}"
        else:
            sql = (
                f"SELECT t.* FROM (SELECT trace_id, time FROM trace_states{where} "
                f"ORDER BY time {order}, trace_id {order}{limit_sql}) AS s "
                f"JOIN traces AS t ON t.trace_id = s.trace_id ORDER BY s.time {order}, s.trace_id {order}"
            )
        with self.read_connection() as connection:
            return [row_to_trace(row) for row in connection.execute(sql, params)]

    def count_traces(
        self,
        *,
        policy: str | None = None,
        outcome: str | None = None,
        state: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many traces match every filter given (same filters as :meth:`query_traces`)."""
        table, where, params = _trace_filters(policy, outcome, state, since, until)
        with self.read_connection() as connection:
            return int(connection.execute(f"SELECT count(*) AS n FROM {table}{where}", params).fetchone()["n"])

    def delete_traces(self, *, until: float, policy: str | None = None) -> int:
        """Delete the traces that started before ``until`` (Unix seconds), of one policy or all; returns how many.

        For retention (keep the last N days). Traces queued by this store are written first, so the
        cut is by time only. Runs in one transaction.
        """
        self.flush()
        where, params = "time < %s", [float(until)]
        if policy is not None:
            where += " AND policy = %s"
            params.append(policy)
        with self._transaction() as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (TRACE_LOCK,))  # as the trace writer: the rollup's turn
            connection.execute(f"DELETE FROM trace_states WHERE {where}", params)
            deleted = connection.execute(f"DELETE FROM traces WHERE {where}", params).rowcount
            with contextlib.closing(_tuples(connection)) as cursor:
                rollup.remove_before(cursor, "%s", float(until), policy)
            return deleted

    def rebuild_trace_rollup(self) -> int:
        """Recompute the hourly rollup ``traces stats`` reads from every trace (one transaction; it reads
        every trace, so it takes as long as a full ``traces stats --exact``). Needed once for a store that
        held traces before schema version 6; returns how many traces were read."""
        self.flush()
        with self._transaction() as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (TRACE_LOCK,))  # as the trace writer: the rollup's turn
            with contextlib.closing(_tuples(connection)) as cursor:
                return rollup.rebuild(cursor, "%s")

"""Trace queries for ``failpath.watch``: following new traces, per-window statistics, drift samples.

All the SQL that reads traces for the watch job lives here, on top of the store's read connection
(``read_connection()`` of the SQLite and the PostgreSQL store; the few places their SQL differs are
a ``_Dialect``), so the rest of failpath stays free of SQL. The
functions take filters by policy, outcome, failure state and time window (``since`` inclusive,
``until`` exclusive, Unix seconds), the same as :meth:`Store.query_traces`.

Indexes used (all created by the store's schema): ``traces(policy, time)``, ``traces(outcome, time)``,
``traces(time)``, the ``trace_states`` primary key ``(state, time, trace_id)``, and ``traces.id``
(insertion order, which is what ``tail --follow`` follows: a slow call finishes after a fast one that
started later, so following by start time would miss it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from failpath.core import StoreError, Trace
from failpath.store.base import Store
from failpath.store.records import row_to_trace
from failpath.store.values import ProductionSample

__all__ = [
    "TraceFilter",
    "TraceColumns",
    "latest_cursor",
    "traces_after",
    "last_traces",
    "trace_columns",
    "drift_sample",
    "RollupRows",
    "rollup_rows",
]


@dataclass(frozen=True)
class TraceFilter:
    """Which traces a query reads: every field given must match (``state``: detected on the call)."""

    policy: str | None = None
    outcome: str | None = None
    state: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self, alias: str = "t", mark: str = "?") -> tuple[str, list[Any]]:
        """A ``WHERE`` clause (possibly empty) on the ``traces`` table aliased ``alias``, and its parameters.

        ``mark`` is the backend's parameter placeholder (``?`` for SQLite, ``%s`` for PostgreSQL).
        """
        clauses, params = self._clauses(alias, mark)
        if self.state is not None:
            # The primary key (state, time, trace_id) of trace_states answers this without a scan.
            clauses.append(
                f"EXISTS (SELECT 1 FROM trace_states AS ts WHERE ts.state = {mark} AND ts.time = {alias}.time "
                f"AND ts.trace_id = {alias}.trace_id)"
            )
            params.append(self.state)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def states_where(self, alias: str = "s", mark: str = "?") -> tuple[str, list[Any]]:
        """A ``WHERE`` clause on ``trace_states`` aliased ``alias``, for the filters other than ``state``."""
        clauses, params = self._clauses(alias, mark)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _clauses(self, alias: str, mark: str) -> tuple[list[str], list[Any]]:
        """Conditions on the columns ``traces`` and ``trace_states`` share: policy, outcome, time window."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("policy", self.policy), ("outcome", self.outcome)):
            if value is not None:
                clauses.append(f"{alias}.{column} = {mark}")
                params.append(value)
        if self.since is not None:
            clauses.append(f"{alias}.time >= {mark}")
            params.append(float(self.since))
        if self.until is not None:
            clauses.append(f"{alias}.time < {mark}")
            params.append(float(self.until))
        return clauses, params


@dataclass(frozen=True)
class _Dialect:
    """What differs between the backends' SQL in these queries."""

    mark: str  # parameter placeholder
    raw_confidence: str  # SQL for the raw confidence of trace ``t`` (see RAW_CONFIDENCE)
    bucket: str  # SQL for the window index of trace state ``s``, taking the window's length as a parameter
    join_in_order: str  # a join the planner must take in the order written

    def begin(self, connection: Any) -> None:
        """Start one snapshot for every read until :meth:`end`."""
        if self.mark == "?":
            connection.execute("BEGIN")
        else:  # inside the read connection's transaction, as its first statement
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def end(self, connection: Any) -> None:
        if self.mark == "?":
            connection.execute("COMMIT")


#: The raw confidence of a trace ``t``: the system's own, on its first call (NULL when the call never
#: reached the system, or it reported none). This is what the check's baseline samples and what the
#: policy's thresholds look at; ``traces.confidence`` is that of the final answer only.
RAW_CONFIDENCE = (
    "(CASE WHEN json_extract(t.attempts, '$[0].action') = 'call' "
    "AND typeof(json_extract(t.attempts, '$[0].confidence')) IN ('real', 'integer') "
    "THEN json_extract(t.attempts, '$[0].confidence') END)"
)
# PostgreSQL refuses to parse a JSON string holding the escape \u0000 (a NUL in an output), even in a
# field not asked for: it is replaced (only the action and the confidence are read from the text).
_PG_ATTEMPT = "(replace(t.attempts, '\\u0000', '\\ufffd')::json -> 0)"
_PG_RAW_CONFIDENCE = (
    f"(CASE WHEN {_PG_ATTEMPT} ->> 'action' = 'call' "
    f"AND json_typeof({_PG_ATTEMPT} -> 'confidence') = 'number' "
    f"THEN ({_PG_ATTEMPT} ->> 'confidence')::float8 END)"
)

_SQLITE = _Dialect("?", RAW_CONFIDENCE, "CAST(s.time / ? AS INTEGER)", "CROSS JOIN")
_POSTGRES = _Dialect("%s", _PG_RAW_CONFIDENCE, "floor(s.time / %s)::bigint", "JOIN")


@contextlib.contextmanager
def _reading(store: Store) -> Iterator[tuple[Any, _Dialect]]:
    """The store's read connection (rows by column name) and its backend's dialect."""
    read_connection = getattr(store, "read_connection", None)
    if read_connection is None:
        raise StoreError(f"trace queries need a failpath store; {type(store).__name__} has no read_connection()")
    dialect = _POSTGRES if getattr(store, "sql_dialect", "sqlite") == "postgres" else _SQLITE
    with read_connection() as connection:
        yield connection, dialect


def _plain_cursor(connection: Any, dialect: _Dialect) -> Any:
    """A cursor on ``connection`` whose rows are plain tuples (what numpy reads without a Python object per row)."""
    if dialect is _SQLITE:
        cursor = connection.cursor()
        cursor.row_factory = None
        return cursor
    from psycopg.rows import tuple_row  # a PostgreSQL store is open, so psycopg is installed

    return connection.cursor(row_factory=tuple_row)


def _scalar(connection: Any, dialect: _Dialect, sql: str, params: Any = ()) -> Any:
    with contextlib.closing(_plain_cursor(connection, dialect)) as cursor:
        return cursor.execute(sql, params).fetchone()[0]


# --------------------------------------------------------------------------- following new traces


def latest_cursor(store: Store) -> int:
    """The position of the newest trace written so far (0 for an empty store); see :func:`traces_after`."""
    with _reading(store) as (connection, dialect):
        return int(_scalar(connection, dialect, "SELECT coalesce(max(id), 0) FROM traces"))


def last_traces(store: Store, where: TraceFilter, count: int) -> tuple[list[Trace], int]:
    """The ``count`` latest traces matching ``where`` (by the time of their call), oldest first, and the current
    cursor. By time, not by write order: an escalated call's trace is written with its ticket, ahead of the
    traces still queued from earlier calls."""
    with _reading(store) as (connection, d):
        clause, params = where.where(mark=d.mark)
        d.begin(connection)
        rows = connection.execute(
            f"SELECT * FROM traces AS t{clause} ORDER BY t.time DESC, t.id DESC LIMIT {d.mark}", [*params, max(0, int(count))]
        ).fetchall()
        cursor = int(_scalar(connection, d, "SELECT coalesce(max(id), 0) FROM traces"))
        d.end(connection)
    return [row_to_trace(row) for row in reversed(rows)], cursor


def traces_after(store: Store, cursor: int, where: TraceFilter, *, limit: int = 1000) -> tuple[list[Trace], int]:
    """Traces written after ``cursor`` that match ``where``, in write order, and the cursor to pass next."""
    with _reading(store) as (connection, d):
        clause, params = where.where(mark=d.mark)
        clause = (clause + " AND" if clause else " WHERE") + f" t.id > {d.mark}"
        d.begin(connection)
        rows = connection.execute(
            f"SELECT * FROM traces AS t{clause} ORDER BY t.id LIMIT {d.mark}", [*params, int(cursor), max(1, int(limit))]
        ).fetchall()
        if len(rows) >= limit:
            new_cursor = int(rows[-1]["id"])
        else:
            new_cursor = int(_scalar(connection, d, "SELECT coalesce(max(id), 0) FROM traces"))
        d.end(connection)
    return [row_to_trace(row) for row in rows], max(new_cursor, int(cursor))


# --------------------------------------------------------------------------- statistics


#: The fields of :attr:`TraceColumns.rows`: start time, outcome code, degraded, latency, confidence.
COLUMN_DTYPE = [("time", "f8"), ("outcome", "i2"), ("degraded", "i1"), ("latency_ms", "f8"), ("confidence", "f8")]


@dataclass(frozen=True)
class TraceColumns:
    """The matching traces, read from one snapshot for statistics.

    ``rows`` is a numpy structured array, one row per trace in time order, with fields ``time``,
    ``outcome`` (an index into ``outcomes``; -1 for a name not in it), ``degraded`` (0/1),
    ``latency_ms`` and ``confidence`` (NaN when the call reported none, or one outside [0, 1]). ``states`` holds
    ``(state, window index or None, calls)``: on how many of the matching traces each failure state
    was detected, per window ``floor(time / window)`` when a window was given.
    """

    rows: Any
    outcomes: tuple[str, ...]
    states: list[tuple[str, int | None, int]]


def trace_columns(
    store: Store, where: TraceFilter, *, window: float | None = None, raw_confidence: bool = False
) -> TraceColumns:
    """The figures :func:`failpath.watch.stats.trace_stats` needs (see :class:`TraceColumns`).

    ``confidence`` is the trace's (that of the answer given), or with ``raw_confidence`` the system's
    own on its first call (read from the attempts' JSON: several times slower on a large store).
    Rows go straight from the database into numpy, with no Python object per trace, and are sorted
    by time in numpy (cheaper than ``ORDER BY`` through the time index): on a million traces this
    read is most of the cost of ``traces stats``.
    """
    import numpy as np

    from failpath.core import OUTCOME_KINDS

    with _reading(store) as (connection, d):
        d.begin(connection)  # one snapshot for every read below
        present = _distinct(connection, d, "traces", "outcome")
        outcomes = tuple(OUTCOME_KINDS) + tuple(sorted(set(present) - set(OUTCOME_KINDS)))
        code = "CASE t.outcome " + " ".join(f"WHEN {d.mark} THEN {i}" for i in range(len(outcomes))) + " ELSE -1 END"
        confidence = d.raw_confidence if raw_confidence else "t.confidence"
        # -1 stands for "no confidence": a float NULL marker numpy reads without a Python string each.
        figures = ["t.time", code, "t.degraded", "t.latency_ms", f"coalesce({confidence}, -1.0)"]
        if where.state is None:
            clause, params = where.where("t", mark=d.mark)
            source = f"FROM traces AS t{clause}"
        else:
            # Driven by the (state, time, trace_id) key: only traces where the state was detected are read.
            clause, params = where.states_where("s", mark=d.mark)
            clause = (clause + " AND" if clause else " WHERE") + f" s.state = {d.mark}"
            params = [*params, where.state]
            source = f"FROM trace_states AS s JOIN traces AS t ON t.trace_id = s.trace_id{clause}"
        if d is _SQLITE:
            with contextlib.closing(_plain_cursor(connection, d)) as cursor:
                rows = np.fromiter(cursor.execute(f"SELECT {', '.join(figures)} {source}", [*outcomes, *params]), dtype=COLUMN_DTYPE)
        else:
            rows = _array_columns(connection, figures, source, [*outcomes, *params])
        states = _state_counts(connection, d, where, window)
        d.end(connection)
    confidence = rows["confidence"]
    confidence[(confidence < 0.0) | (confidence > 1.0)] = np.nan  # none, or not a confidence at all
    if len(rows) > 1 and not bool(np.all(rows["time"][1:] >= rows["time"][:-1])):
        rows = rows[np.argsort(rows["time"], kind="stable")]
    return TraceColumns(rows=rows, outcomes=outcomes, states=states)


def _array_columns(connection: Any, figures: list[str], source: str, params: list[Any]) -> Any:
    """The five ``figures`` of every row of ``source`` from PostgreSQL into numpy, with no Python object per row.

    The server gathers each figure into one array (``array_agg``; the five see the rows in the same
    order) and sends it in PostgreSQL's binary array format (``array_send``): a 20-byte header, then per
    element its length and its big-endian value, which numpy reads in place. One message per figure,
    where a row-by-row transfer (``COPY`` included) costs a message and a Python step per trace.
    """
    import numpy as np

    casts = ("float8", "int2", "int2", "float8", "float8")
    columns = ", ".join(f"array_send(array_agg(({f})::{c}))" for f, c in zip(figures, casts))
    with contextlib.closing(_plain_cursor(connection, _POSTGRES)) as cursor:
        arrays = cursor.execute(f"SELECT count(*), {columns} {source}", params).fetchone()
    rows = np.empty(int(arrays[0]), dtype=COLUMN_DTYPE)
    for (name, _), cast, data in zip(COLUMN_DTYPE, casts, arrays[1:]):
        if data is None:  # no rows: array_agg gives NULL
            continue
        element = [("length", ">i4"), ("value", ">f8" if cast == "float8" else ">i2")]
        rows[name] = np.frombuffer(memoryview(data)[20:], dtype=element)["value"]
    return rows


def _distinct(connection: Any, d: _Dialect, table: str, column: str) -> list[str]:
    """The distinct values of an indexed ``column``, one index seek each instead of a full scan."""
    sql = (
        f"WITH RECURSIVE d(v) AS (SELECT min({column}) FROM {table} "
        f"UNION ALL SELECT (SELECT min({column}) FROM {table} WHERE {column} > d.v) FROM d WHERE d.v IS NOT NULL) "
        "SELECT v FROM d WHERE v IS NOT NULL"
    )
    with contextlib.closing(_plain_cursor(connection, d)) as cursor:
        return [r[0] for r in cursor.execute(sql)]


def _state_counts(
    connection: Any, d: _Dialect, where: TraceFilter, window: float | None
) -> list[tuple[str, int | None, int]]:
    bucket = d.bucket if window else "NULL"
    bucket_params: list[Any] = [float(window)] if window else []
    if where.state is None:
        clause, params = where.states_where("s", mark=d.mark)
        sql = f"SELECT s.state, {bucket} AS b, count(*) FROM trace_states AS s{clause} GROUP BY s.state, b"
    else:
        clause, params = where.states_where("f", mark=d.mark)
        clause = (clause + " AND" if clause else " WHERE") + f" f.state = {d.mark}"
        states = _distinct(connection, d, "trace_states", "state")
        # The other states of each trace with the filtered state: one key lookup per (trace, state name),
        # so the cost follows the traces that match, not the size of the store.
        marks = ", ".join([d.mark] * len(states)) or "NULL"
        params = [*states, *params, where.state]
        sql = (
            f"SELECT s.state, {bucket} AS b, count(*) FROM trace_states AS f "
            f"{d.join_in_order} trace_states AS s ON s.state IN ({marks}) AND s.time = f.time AND s.trace_id = f.trace_id"
            f"{clause} GROUP BY s.state, b"
        )
    with contextlib.closing(_plain_cursor(connection, d)) as cursor:
        return [(r[0], None if r[1] is None else int(r[1]), int(r[2])) for r in cursor.execute(sql, [*bucket_params, *params])]


def drift_sample(store: Store, *, policy: str, since: float | None, until: float | None) -> ProductionSample:
    """The :class:`~failpath.store.values.ProductionSample` of one policy's traces in a window."""
    where = TraceFilter(policy=policy, since=since, until=until)
    with _reading(store) as (connection, d):
        clause, params = where.where(mark=d.mark)
        d.begin(connection)  # one snapshot for the three reads
        with contextlib.closing(_plain_cursor(connection, d)) as cursor:
            outcomes = {
                r[0]: int(r[1])
                for r in cursor.execute(f"SELECT t.outcome, count(*) FROM traces AS t{clause} GROUP BY t.outcome", params).fetchall()
            }
            s_clause, s_params = where.states_where("s", mark=d.mark)
            states = {
                r[0]: int(r[1])
                for r in cursor.execute(f"SELECT s.state, count(*) FROM trace_states AS s{s_clause} GROUP BY s.state", s_params).fetchall()
            }
            # The raw confidence is the system's own, on its first call (what the check's baseline samples),
            # not the confidence of the final outcome, which exists only for answers the policy let through.
            n_clause = (clause + " AND" if clause else " WHERE") + f" {d.raw_confidence} IS NOT NULL"
            confidences = [r[0] for r in cursor.execute(f"SELECT {d.raw_confidence} FROM traces AS t{n_clause}", params).fetchall()]
        d.end(connection)
    return ProductionSample(
        n=sum(outcomes.values()),
        answered=outcomes.get("answered", 0),
        outcome_counts=outcomes,
        state_counts=states,
        confidences=confidences,
    )


# --------------------------------------------------------------------------- the hourly rollup


@dataclass(frozen=True)
class RollupRows:
    """What the rollup holds for the whole hours ``[first_hour, end_hour)`` of a query (None: unbounded).

    ``rows`` are ``(hour, outcome, calls, degraded, states JSON, latency bytes, confidence bytes)`` in hour
    order (see :mod:`failpath.store.rollup`); ``first`` and ``last`` are the start times of the first and
    last matching traces over the whole query, partial hours included.
    """

    first_hour: int | None
    end_hour: int | None
    rows: list[tuple]
    first: float | None
    last: float | None


def rollup_rows(store: Store, where: TraceFilter) -> RollupRows | None:
    """The rollup's rows for the whole hours of ``where``, or None when it cannot answer: a state filter
    (the rollup is by policy and outcome), no whole hour in the time window, or a rollup still to be
    rebuilt after a migration."""
    from failpath.store import rollup

    if where.state is not None:
        return None
    first_hour = None if where.since is None else -int(-float(where.since) // rollup.HOUR)  # ceil
    end_hour = None if where.until is None else rollup.hour_of(float(where.until))
    if first_hour is not None and end_hour is not None and first_hour >= end_hour:
        return None
    clauses, params = [], []
    for column, value in (("hour >=", first_hour), ("hour <", end_hour), ("policy =", where.policy), ("outcome =", where.outcome)):
        if value is not None:
            clauses.append(f"{column} {{mark}}")
            params.append(value)
    with _reading(store) as (connection, d):
        d.begin(connection)  # the rollup and the span read in one snapshot
        with contextlib.closing(_plain_cursor(connection, d)) as cursor:
            if not rollup.is_complete(cursor):
                d.end(connection)
                return None
            clause = (" WHERE " + " AND ".join(clauses)).replace("{mark}", d.mark) if clauses else ""
            rows = cursor.execute(
                f"SELECT hour, outcome, calls, degraded, states, latency, confidence FROM trace_rollup{clause} ORDER BY hour", params
            ).fetchall()
            span, span_params = where.where("t", mark=d.mark)
            # Two subqueries: SQLite answers a lone min() or max() from an index, but scans for both at once.
            first, last = cursor.execute(
                f"SELECT (SELECT min(t.time) FROM traces AS t{span}), (SELECT max(t.time) FROM traces AS t{span})",
                [*span_params, *span_params],
            ).fetchone()
        d.end(connection)
    return RollupRows(first_hour, end_hour, rows, first, last)

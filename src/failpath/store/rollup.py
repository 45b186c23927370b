"""The trace rollup: per hour, policy and outcome, the figures ``traces stats`` reports, kept by the writer.

Statistics over every trace of a large store read every trace (10 million rows take tens of seconds).
The rollup holds, for each (hour, policy, outcome), the number of calls, the degraded ones, the calls on
which each failure state was detected, and two histograms: latency in logarithmic buckets (each bucket
spans a factor ``(1 + a) / (1 - a)``, a = :data:`LATENCY_ACCURACY`) and confidence in 1,000 equal bins.
Counts and the 10-bin confidence histogram read from it are exact; quantiles are read from the
histograms, so they are approximate, within the bounds below (see :func:`latency_value`,
:func:`confidence_value`):

- a latency quantile is within 1% (relative) of the exact one;
- a confidence quantile is within 0.0005 (absolute) of the exact one.

The writer folds each batch into the rollup in the batch's own transaction, from the traces it
inserted (read back by id on SQLite, returned by the insert on PostgreSQL), so a batch written twice
after a lost commit counts once; deleting traces removes
their hours and recomputes the hour cut in two. A store migrated to schema version 6 with traces
already in it has no rollup for them until :func:`rebuild` runs (``trace_rollup_state.complete``
says whether it is whole); until then ``traces stats`` reads the traces, as before.

Backend-neutral: the SQL is the same on SQLite and PostgreSQL but for the placeholder (``mark``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HOUR",
    "LATENCY_ACCURACY",
    "CONFIDENCE_STEP",
    "HISTOGRAM_DTYPE",
    "rollup_tables",
    "hour_of",
    "latency_bucket",
    "latency_value",
    "confidence_bucket",
    "confidence_value",
    "latency_values",
    "confidence_values",
    "Partial",
    "aggregate",
    "fold_new_traces",
    "fold_rows",
    "TRACE_FIGURES",
    "remove_before",
    "rebuild",
    "is_complete",
]

#: The rollup's grain, in seconds.
HOUR = 3600.0
#: Relative accuracy of a latency quantile read from the rollup.
LATENCY_ACCURACY = 0.01
_GAMMA = (1 + LATENCY_ACCURACY) / (1 - LATENCY_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
#: The bucket of a latency of 0 ms (or less): its value is 0.
ZERO_BUCKET = -(2**31)
#: Width of a confidence bin of the rollup (a confidence quantile is within half of it).
CONFIDENCE_STEP = 0.001
_CONFIDENCE_EDGES = (*(i * 0.1 for i in range(10)), 1.0)  # numpy.linspace(0, 1, 11): the 10 bins of traces stats, each split in 100

#: A histogram as stored: ``(bucket, count)`` pairs, sorted by bucket, little-endian, read in place by numpy.
HISTOGRAM_DTYPE = [("bucket", "<i4"), ("count", "<i8")]


def rollup_tables(blob: str) -> tuple[str, ...]:
    """The tables of the rollup (migration 6; ``blob`` is the backend's bytes type; ``hour`` is ``floor(time / 3600)``)."""
    return (
        f"""CREATE TABLE trace_rollup (
    hour       BIGINT NOT NULL,
    policy     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    calls      BIGINT NOT NULL,
    degraded   BIGINT NOT NULL,
    states     TEXT NOT NULL,
    latency    {blob} NOT NULL,
    confidence {blob} NOT NULL,
    PRIMARY KEY (hour, policy, outcome)
)""",
        "CREATE TABLE trace_rollup_state (complete INTEGER NOT NULL)",
        # A store that already holds traces has no rollup for them until it is rebuilt.
        "INSERT INTO trace_rollup_state (complete) SELECT CASE WHEN EXISTS (SELECT 1 FROM traces) THEN 0 ELSE 1 END",
    )


def hour_of(time: float) -> int:
    """The hour a trace starting at ``time`` counts in: ``floor(time / 3600)``, exact at the boundaries."""
    hour = math.floor(time / HOUR)
    if hour * HOUR > time:
        hour -= 1
    elif (hour + 1) * HOUR <= time:
        hour += 1
    return hour


def latency_bucket(ms: float) -> int:
    """The logarithmic bucket of a latency: ``ceil(log(ms) / log(gamma))``; :data:`ZERO_BUCKET` for 0 or less."""
    if not ms > 0.0:
        return ZERO_BUCKET
    return math.ceil(math.log(ms) / _LOG_GAMMA)


def latency_value(bucket: int) -> float:
    """The value a latency bucket stands for: within :data:`LATENCY_ACCURACY` (relative) of any latency in it."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return 2 * _GAMMA**bucket / (_GAMMA + 1)


def confidence_bucket(confidence: float | None) -> int | None:
    """The bin (0 to 999) of a confidence in [0, 1], or None (none, or outside [0, 1]). Bin ``b`` lies in
    bin ``b // 100`` of the 10-bin histogram, cut exactly as ``traces stats`` cuts it."""
    if confidence is None or not 0.0 <= confidence <= 1.0:
        return None
    coarse = 0
    while coarse < 9 and confidence >= _CONFIDENCE_EDGES[coarse + 1]:
        coarse += 1
    return coarse * 100 + min(99, int((confidence - _CONFIDENCE_EDGES[coarse]) / CONFIDENCE_STEP))


def confidence_value(bucket: int) -> float:
    """The value a confidence bin stands for (its middle): within 0.0005 of any confidence in it."""
    coarse, fine = divmod(bucket, 100)
    return min(_CONFIDENCE_EDGES[coarse] + (fine + 0.5) * CONFIDENCE_STEP, _CONFIDENCE_EDGES[coarse + 1])


def latency_values(buckets: Any) -> Any:
    """:func:`latency_value` of each bucket of a numpy array."""
    import numpy as np

    return np.where(buckets == ZERO_BUCKET, 0.0, 2 * np.power(_GAMMA, buckets.astype(float)) / (_GAMMA + 1))


def confidence_values(buckets: Any) -> Any:
    """:func:`confidence_value` of each bin of a numpy array."""
    import numpy as np

    coarse, fine = np.divmod(buckets, 100)
    edges = np.array(_CONFIDENCE_EDGES)
    return np.minimum(edges[coarse] + (fine + 0.5) * CONFIDENCE_STEP, edges[coarse + 1])


@dataclass
class Partial:
    """The rollup figures of one (hour, policy, outcome), or of a part of it."""

    calls: int = 0
    degraded: int = 0
    states: Counter = field(default_factory=Counter)
    latency: Counter = field(default_factory=Counter)
    confidence: Counter = field(default_factory=Counter)

    def add(self, other: "Partial") -> None:
        self.calls += other.calls
        self.degraded += other.degraded
        self.states.update(other.states)
        self.latency.update(other.latency)
        self.confidence.update(other.confidence)

    def row(self, key: tuple[int, str, str]) -> tuple:
        """The ``trace_rollup`` row: states as a JSON object, histograms as :data:`HISTOGRAM_DTYPE` bytes."""
        states = json.dumps(dict(sorted((k, v) for k, v in self.states.items() if v)), separators=(",", ":"))
        return (*key, self.calls, self.degraded, states, _packed(self.latency), _packed(self.confidence))

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> "Partial":
        """From ``calls, degraded, states, latency, confidence`` (the columns after the key)."""
        calls, degraded, states, latency, confidence = row
        return cls(int(calls), int(degraded), Counter(json.loads(states)), _unpacked(latency), _unpacked(confidence))


def _packed(counts: Counter) -> bytes:
    import numpy as np

    pairs = sorted((k, v) for k, v in counts.items() if v)
    return np.array(pairs, dtype=HISTOGRAM_DTYPE).tobytes()


def _unpacked(data: bytes) -> Counter:
    import numpy as np

    pairs = np.frombuffer(data, dtype=HISTOGRAM_DTYPE)
    return Counter(dict(zip(pairs["bucket"].tolist(), pairs["count"].tolist())))


#: The ``traces`` columns :func:`aggregate` reads, in its order.
TRACE_FIGURES = "time, policy, outcome, degraded, latency_ms, confidence, state, states"


def aggregate(rows: Iterable[Sequence[Any]]) -> dict[tuple[int, str, str], Partial]:
    """Rows of :data:`TRACE_FIGURES` folded into one :class:`Partial` per (hour, policy, outcome)."""
    parts: dict[tuple[int, str, str], Partial] = {}
    for time, policy, outcome, degraded, latency, confidence, state, states in rows:
        key = (hour_of(time), policy, outcome)
        part = parts.get(key)
        if part is None:
            part = parts[key] = Partial()
        part.calls += 1
        part.degraded += 1 if degraded else 0
        part.latency[latency_bucket(latency)] += 1
        bucket = confidence_bucket(confidence)
        if bucket is not None:
            part.confidence[bucket] += 1
        detected = set(json.loads(states)) if states != "[]" else set()
        if state is not None:
            detected.add(state)
        part.states.update(detected)
    return parts


def _merge(cursor: Any, mark: str, parts: dict[tuple[int, str, str], Partial]) -> None:
    """Add ``parts`` to the rows the rollup holds (inside the caller's write transaction)."""
    if not parts:
        return
    hours = [key[0] for key in parts]
    stored = {  # one read for every key of the batch: its hours' rows
        (row[0], row[1], row[2]): row[3:]
        for row in cursor.execute(
            f"SELECT hour, policy, outcome, calls, degraded, states, latency, confidence FROM trace_rollup "
            f"WHERE hour >= {mark} AND hour <= {mark}", (min(hours), max(hours)),
        ).fetchall()
    }
    rows = []
    for key, part in parts.items():
        found = stored.get(key)
        if found is not None:
            total = Partial.from_row(found)
            total.add(part)
            part = total
        rows.append(part.row(key))
    _upsert(cursor, mark, rows)


def _upsert(cursor: Any, mark: str, rows: list[tuple]) -> None:
    if rows:
        cursor.executemany(
            f"INSERT INTO trace_rollup (hour, policy, outcome, calls, degraded, states, latency, confidence) "
            f"VALUES ({', '.join([mark] * 8)}) ON CONFLICT (hour, policy, outcome) DO UPDATE SET "
            "calls = excluded.calls, degraded = excluded.degraded, states = excluded.states, "
            "latency = excluded.latency, confidence = excluded.confidence",
            rows,
        )


def fold_new_traces(cursor: Any, mark: str, after_id: int) -> None:
    """Fold the traces with an id above ``after_id`` (those this transaction inserted) into the rollup.

    ``cursor`` returns plain tuples; the caller holds the trace write lock, so no other writer's traces
    have ids above ``after_id``.
    """
    fold_rows(cursor, mark, cursor.execute(f"SELECT {TRACE_FIGURES} FROM traces WHERE id > {mark}", (after_id,)).fetchall())


def fold_rows(cursor: Any, mark: str, rows: Sequence[Sequence[Any]]) -> None:
    """Fold traces just inserted, given as rows of :data:`TRACE_FIGURES` (``INSERT ... RETURNING`` them),
    into the rollup, inside the caller's write transaction."""
    if rows:
        _merge(cursor, mark, aggregate(rows))


def last_id(cursor: Any) -> int:
    """The highest trace id so far (0 for none): what :func:`fold_new_traces` is given after inserting."""
    return int(cursor.execute("SELECT coalesce(max(id), 0) FROM traces").fetchone()[0])


def remove_before(cursor: Any, mark: str, until: float, policy: str | None) -> None:
    """Keep the rollup true after the traces before ``until`` (of ``policy``, or all) were deleted:
    drop the hours before it, and recompute the hour it cuts in two from the traces left."""
    cut = hour_of(until)
    where, params = f"hour < {mark}", [cut]
    if policy is not None:
        where += f" AND policy = {mark}"
        params.append(policy)
    cursor.execute(f"DELETE FROM trace_rollup WHERE {where}", params)
    if cut * HOUR < until:
        rebuild(cursor, mark, since=cut * HOUR, until=(cut + 1) * HOUR, policy=policy)


def rebuild(cursor: Any, mark: str, *, since: float | None = None, until: float | None = None,
            policy: str | None = None, chunk: int = 50_000) -> int:
    """Recompute the rollup of whole hours from the traces: those in ``[since, until)`` (both on hour
    boundaries, or None for all), of ``policy`` or all. Marks the rollup complete when rebuilding all of
    it. Returns how many traces were read. Runs in the caller's write transaction."""
    clauses, params = [], []
    if since is not None:
        clauses.append(f"time >= {mark}")
        params.append(float(since))
    if until is not None:
        clauses.append(f"time < {mark}")
        params.append(float(until))
    if policy is not None:
        clauses.append(f"policy = {mark}")
        params.append(policy)
    hour_clauses = [c.replace("time >=", "hour >=").replace("time <", "hour <") for c in clauses]
    hour_params = [hour_of(p) if isinstance(p, float) else p for p in params]
    where = (" WHERE " + " AND ".join(hour_clauses)) if hour_clauses else ""
    cursor.execute(f"DELETE FROM trace_rollup{where}", hour_params)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    parts: dict[tuple[int, str, str], Partial] = {}
    if since is not None and until is not None:  # a few hours: one read through the time index
        rows = cursor.execute(f"SELECT {TRACE_FIGURES} FROM traces{where}", params).fetchall()
        _upsert(cursor, mark, [part.row(key) for key, part in aggregate(rows).items()])
        return len(rows)
    read, after = 0, 0
    while True:  # by id, a chunk at a time: memory stays bounded however many traces there are
        page = f" AND id > {mark}" if where else f" WHERE id > {mark}"
        rows = cursor.execute(
            f"SELECT id, {TRACE_FIGURES} FROM traces{where}{page} ORDER BY id LIMIT {int(chunk)}", [*params, after]
        ).fetchall()
        if not rows:
            break
        for key, part in aggregate(row[1:] for row in rows).items():
            parts.setdefault(key, Partial()).add(part)
        read += len(rows)
        after = rows[-1][0]
    _upsert(cursor, mark, [part.row(key) for key, part in parts.items()])
    if since is None and until is None and policy is None:
        cursor.execute("UPDATE trace_rollup_state SET complete = 1")
    return read


def is_complete(cursor: Any) -> bool:
    """True when the rollup holds every trace of the store (false after a migration, until :func:`rebuild`)."""
    row = cursor.execute("SELECT complete FROM trace_rollup_state").fetchone()
    return bool(row and row[0])

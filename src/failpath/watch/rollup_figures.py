"""``traces stats`` from the store's hourly rollup: whole hours from the rollup, the partial hours at the
ends of the time window from the traces, combined per window.

Counts (calls, outcomes, failure states, degraded answers, the 10-bin confidence histogram) are the same
as reading every trace. Quantiles come from the rollup's histograms, so they are approximate: a latency
quantile within :data:`~failpath.store.rollup.LATENCY_ACCURACY` (1%, relative) of the exact one, a
confidence quantile within half a bin (0.0005). Each is numpy's linear interpolation between the two
order statistics around the quantile's rank, as the exact figures are, with each order statistic read
as the value its bucket stands for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["GroupFigures", "rollup_figures"]


@dataclass(frozen=True)
class GroupFigures:
    """The figures of each group (the whole span, or each window with calls): arrays indexed by group."""

    bounds: list[tuple[float | None, float | None]]
    calls: Any
    outcomes: list[dict[str, int]]
    states: list[dict[str, int]]
    degraded: Any
    latency: Any  # [group, len(latency quantiles)]
    confidence_n: Any
    confidence: Any  # [group, len(confidence quantiles)]
    histogram: Any  # [group, 10]


def rollup_figures(
    store: Any, where: Any, window: float | None, latency_qs: tuple[float, ...], confidence_qs: tuple[float, ...]
) -> tuple[GroupFigures, GroupFigures | None] | None:
    """``(the whole span, each window or None)`` from the rollup, or None when it cannot answer (a state
    filter, a window that is not a whole number of hours, no whole hour in the time window, a rollup
    still to be rebuilt): the caller then reads every trace."""
    import numpy as np

    from failpath.store import rollup
    from failpath.store.trace_queries import TraceFilter, rollup_rows, trace_columns

    hours_per_window = None
    if window is not None:
        if window % rollup.HOUR:
            return None
        hours_per_window = int(window // rollup.HOUR)
    found = rollup_rows(store, where)
    if found is None:
        return None
    parts = _Parts()
    if found.rows:
        hours, outcomes, calls, degraded, states, latency, confidence = zip(*found.rows)
        parts.hours.extend(int(h) for h in hours)
        parts.outcome.extend(outcomes)
        parts.calls.extend(int(c) for c in calls)
        parts.degraded.extend(int(d) for d in degraded)
        parts.states.extend(json.loads("[" + ",".join(states) + "]"))  # one parse for every row
        parts.latency.extend(latency)
        parts.confidence.extend(confidence)
    for since, until in _edges(where, found.first_hour, found.end_hour):
        edge = TraceFilter(policy=where.policy, outcome=where.outcome, since=since, until=until)
        columns = trace_columns(store, edge, window=rollup.HOUR)  # state counts per hour
        parts.add_traces(columns)
    span = (where.since, where.until) if found.first is None else (found.first, found.last)  # as when reading every trace
    total = parts.figures(np.zeros(len(parts.hours), dtype=np.int64), [span], latency_qs, confidence_qs)
    if hours_per_window is None:
        return total, None
    windows = np.asarray(parts.hours, dtype=np.int64) // hours_per_window
    present, group = np.unique(windows, return_inverse=True)
    bounds = [(float(b) * window, float(b + 1) * window) for b in present.tolist()]
    return total, parts.figures(group.reshape(-1), bounds, latency_qs, confidence_qs)


def _edges(where: Any, first_hour: int | None, end_hour: int | None) -> list[tuple[float, float]]:
    """The partial hours at the ends of the time window, which the rollup does not cover."""
    from failpath.store.rollup import HOUR

    edges = []
    if first_hour is not None and where.since is not None and where.since < first_hour * HOUR:
        edges.append((float(where.since), first_hour * HOUR))
    if end_hour is not None and where.until is not None and end_hour * HOUR < where.until:
        edges.append((end_hour * HOUR, float(where.until)))
    return edges


class _Parts:
    """Pieces of figures, each of one hour: rollup rows, and the traces of the partial hours."""

    def __init__(self) -> None:
        self.hours: list[int] = []  # the hour of each piece
        self.outcome: list[str] = []
        self.calls: list[int] = []
        self.degraded: list[int] = []
        self.states: list[dict[str, int]] = []
        self.latency: list[bytes] = []  # each piece's histogram, as the rollup stores it (HISTOGRAM_DTYPE)
        self.confidence: list[bytes] = []
        self._codes: dict[bool, tuple[list[str], Any, Any, Any]] = {}

    def add_traces(self, columns: Any) -> None:
        """The traces of a partial hour (a :class:`~failpath.store.trace_queries.TraceColumns`), one piece
        per (hour, outcome), their figures put in the rollup's buckets."""
        import numpy as np

        from failpath.store import rollup

        rows = columns.rows
        if not len(rows):
            return
        hours = np.array([rollup.hour_of(t) for t in rows["time"].tolist()], dtype=np.int64)
        names = [*columns.outcomes, "other"]
        latency = np.array([rollup.latency_bucket(v) for v in rows["latency_ms"].tolist()], dtype=np.int64)
        conf = [rollup.confidence_bucket(None if v != v else v) for v in rows["confidence"].tolist()]
        states_by_hour: dict[int, dict[str, int]] = {}
        for name, hour, count in columns.states:
            states_by_hour.setdefault(int(hour), {})[name] = count
        for hour in np.unique(hours).tolist():
            in_hour = hours == hour
            for code in np.unique(rows["outcome"][in_hour]).tolist():
                mask = in_hour & (rows["outcome"] == code)
                self.hours.append(hour)
                self.outcome.append(names[code])
                self.calls.append(int(mask.sum()))
                self.degraded.append(int(rows["degraded"][mask].sum()))
                # A partial hour's state counts go with its first outcome piece: windows hold whole hours.
                first_piece = code == np.unique(rows["outcome"][in_hour])[0]
                self.states.append(states_by_hour.get(hour, {}) if first_piece else {})
                self.latency.append(_histogram(latency[mask]))
                picked = [c for c, m in zip(conf, mask.tolist()) if m and c is not None]
                self.confidence.append(_histogram(np.array(picked, dtype=np.int64)))

    def _coded(self, outcomes: bool) -> tuple[list[str], Any, Any, Any]:
        """``(names, piece, name code, count)`` of every outcome (or failure state) count of every piece
        (made once: the span and the windows both need them)."""
        found = self._codes.get(outcomes)
        if found is None:
            found = self._codes[outcomes] = self._code(outcomes)
        return found

    def _code(self, outcomes: bool) -> tuple[list[str], Any, Any, Any]:
        import numpy as np

        names: dict[str, int] = {}
        if outcomes:
            codes = [names.setdefault(name, len(names)) for name in self.outcome]
            return list(names), np.arange(len(codes), dtype=np.int64), np.array(codes, dtype=np.int64), np.array(self.calls, dtype=np.int64)
        flat = [(piece, names.setdefault(name, len(names)), count)
                for piece, found in enumerate(self.states) for name, count in found.items()]
        piece, code, count = (np.array(column, dtype=np.int64) for column in zip(*flat)) if flat else (np.zeros(0, dtype=np.int64),) * 3
        return list(names), piece, code, count

    def figures(self, group: Any, bounds: list, latency_qs: tuple[float, ...], confidence_qs: tuple[float, ...]) -> GroupFigures:
        """The figures of each group, ``group[piece]`` being the group of each piece."""
        import numpy as np

        from failpath.store import rollup

        n = len(bounds)
        calls = np.bincount(group, weights=self.calls, minlength=n).astype(np.int64)
        degraded = np.bincount(group, weights=self.degraded, minlength=n).astype(np.int64)
        outcomes = _named_counts(group, n, *self._coded(outcomes=True))
        states = _named_counts(group, n, *self._coded(outcomes=False))
        lat_g, lat_b, lat_n = _flatten(self.latency, group)
        conf_g, conf_b, conf_n = _flatten(self.confidence, group)
        # Latency buckets as columns in order: every bucket from the lowest to the highest seen (the zero
        # bucket, 0 ms, first), or only those seen when that range is wide (outliers a million times apart).
        real = lat_b != rollup.ZERO_BUCKET
        lowest = int(lat_b[real].min()) if real.any() else 0
        columns = np.where(real, lat_b - lowest + 1, 0)
        width = int(columns.max()) + 1 if len(columns) else 1
        if width <= 4096:
            buckets = np.where(np.arange(width) == 0, rollup.ZERO_BUCKET, np.arange(width) + lowest - 1)
        else:
            buckets, columns = np.unique(lat_b, return_inverse=True)
            columns, width = columns.reshape(-1), len(buckets)
        latency_values = rollup.latency_values(buckets)
        confidence = _dense(conf_g, conf_b, conf_n, n, 1000)
        return GroupFigures(
            bounds=bounds,
            calls=calls,
            outcomes=outcomes,
            states=[dict(sorted(s.items())) for s in states],
            degraded=degraded,
            latency=_quantiles(_dense(lat_g, columns, lat_n, n, width), latency_values, latency_qs),
            confidence_n=confidence.sum(axis=1).astype(np.int64),
            confidence=_quantiles(confidence, rollup.confidence_values(np.arange(1000)), confidence_qs),
            histogram=confidence.reshape(n, 10, 100).sum(axis=2).astype(np.int64),  # bin b lies in bin b // 100
        )


def _named_counts(group: Any, n_groups: int, names: list[str], piece: Any, code: Any, count: Any) -> list[dict[str, int]]:
    """Each group's sum of the pieces' counts per name, without the names counted 0."""
    import numpy as np

    if not names:
        return [{} for _ in range(n_groups)]
    width = len(names)
    sums = np.bincount(group[piece] * width + code, weights=count, minlength=n_groups * width).reshape(n_groups, width)
    return [{name: int(v) for name, v in zip(names, row) if v} for row in sums.astype(np.int64).tolist()]


def _dense(group: Any, columns: Any, counts: Any, n_groups: int, width: int) -> Any:
    """``[n_groups, width]`` counts: each group's histogram over the columns."""
    import numpy as np

    return np.bincount(group * width + columns, weights=counts, minlength=n_groups * width).reshape(n_groups, width)


def _quantiles(dense: Any, values: Any, quantiles: tuple[float, ...]) -> Any:
    """``[groups, len(quantiles)]`` quantiles of each row's histogram (NaN for an empty row): numpy's linear
    interpolation between the order statistics at ranks ``floor((n - 1) q)`` and the next, each read as
    the value of its column (``values``, increasing)."""
    import numpy as np

    cumulative = np.cumsum(dense, axis=1)
    totals = cumulative[:, -1] if dense.shape[1] else np.zeros(len(dense))
    out = np.full((len(dense), len(quantiles)), np.nan)
    filled = totals > 0
    cumulative, totals = cumulative[filled], totals[filled]
    # Each row's running counts, lifted above the previous row's: one sorted array, one search per quantile.
    width = dense.shape[1]
    lift = (totals.max() + 1) * np.arange(len(totals)) if len(totals) else totals
    flat = (cumulative + lift[:, None]).reshape(-1)
    for i, q in enumerate(quantiles):
        position = (totals - 1) * q
        below = np.floor(position)
        above = np.minimum(below + 1, totals - 1)
        # The first column whose running count passes the rank holds that order statistic.
        low = values[np.searchsorted(flat, below + lift, side="right") - np.arange(len(totals)) * width]
        high = values[np.searchsorted(flat, above + lift, side="right") - np.arange(len(totals)) * width]
        out[filled, i] = low + (position - below) * (high - low)
    return out


def _histogram(buckets: Any) -> bytes:
    """A piece's histogram of bucket numbers, packed as the rollup packs it."""
    import numpy as np

    from failpath.store.rollup import HISTOGRAM_DTYPE

    values, counts = np.unique(buckets, return_counts=True)
    out = np.empty(len(values), dtype=HISTOGRAM_DTYPE)
    out["bucket"], out["count"] = values, counts
    return out.tobytes()


def _flatten(histograms: list[bytes], group: Any) -> tuple[Any, Any, Any]:
    """Every ``(group, bucket, count)`` of the pieces' packed histograms, as three arrays (one read of all)."""
    import numpy as np

    from failpath.store.rollup import HISTOGRAM_DTYPE

    width = np.dtype(HISTOGRAM_DTYPE).itemsize
    joined = np.frombuffer(b"".join(histograms), dtype=HISTOGRAM_DTYPE)
    pieces = np.repeat(np.arange(len(histograms), dtype=np.int64), [len(h) // width for h in histograms])
    return group[pieces], joined["bucket"].astype(np.int64), joined["count"].astype(np.int64)

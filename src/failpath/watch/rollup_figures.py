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
    for hour, outcome, calls, degraded, states, latency, confidence in found.rows:
        parts.add_rollup_row(int(hour), outcome, int(calls), int(degraded), json.loads(states), latency, confidence)
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
        self.latency: list[tuple[int, Any]] = []  # (piece, HISTOGRAM_DTYPE array)
        self.confidence: list[tuple[int, Any]] = []

    def add_rollup_row(self, hour: int, outcome: str, calls: int, degraded: int, states: dict, latency: bytes, confidence: bytes) -> None:
        import numpy as np

        from failpath.store.rollup import HISTOGRAM_DTYPE

        piece = len(self.hours)
        self.hours.append(hour)
        self.outcome.append(outcome)
        self.calls.append(calls)
        self.degraded.append(degraded)
        self.states.append(states)
        self.latency.append((piece, np.frombuffer(latency, dtype=HISTOGRAM_DTYPE)))
        self.confidence.append((piece, np.frombuffer(confidence, dtype=HISTOGRAM_DTYPE)))

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
                piece = len(self.hours)
                self.hours.append(hour)
                self.outcome.append(names[code])
                self.calls.append(int(mask.sum()))
                self.degraded.append(int(rows["degraded"][mask].sum()))
                # A partial hour's state counts go with its first outcome piece: windows hold whole hours.
                first_piece = code == np.unique(rows["outcome"][in_hour])[0]
                self.states.append(states_by_hour.get(hour, {}) if first_piece else {})
                self.latency.append((piece, _histogram(latency[mask])))
                picked = [c for c, m in zip(conf, mask.tolist()) if m and c is not None]
                self.confidence.append((piece, _histogram(np.array(picked, dtype=np.int64))))

    def figures(self, group: Any, bounds: list, latency_qs: tuple[float, ...], confidence_qs: tuple[float, ...]) -> GroupFigures:
        """The figures of each group, ``group[piece]`` being the group of each piece."""
        import numpy as np

        from failpath.store import rollup

        n = len(bounds)
        calls = np.bincount(group, weights=self.calls, minlength=n).astype(np.int64)
        degraded = np.bincount(group, weights=self.degraded, minlength=n).astype(np.int64)
        outcomes: list[dict[str, int]] = [{} for _ in range(n)]
        states: list[dict[str, int]] = [{} for _ in range(n)]
        for piece, g in enumerate(group.tolist()):
            outcomes[g][self.outcome[piece]] = outcomes[g].get(self.outcome[piece], 0) + self.calls[piece]
            for name, count in self.states[piece].items():
                states[g][name] = states[g].get(name, 0) + count
        lat_g, lat_b, lat_n = _flatten(self.latency, group)
        conf_g, conf_b, conf_n = _flatten(self.confidence, group)
        latency_values = rollup.latency_values(lat_b)
        confidence_values = rollup.confidence_values(conf_b)
        histogram = np.zeros((n, 10), dtype=np.int64)
        np.add.at(histogram, (conf_g, conf_b // 100), conf_n)  # bin b lies in bin b // 100 of the ten
        return GroupFigures(
            bounds=bounds,
            calls=calls,
            outcomes=[{k: v for k, v in o.items() if v} for o in outcomes],
            states=[dict(sorted((k, v) for k, v in s.items() if v)) for s in states],
            degraded=degraded,
            latency=_histogram_quantiles(lat_g, latency_values, lat_n, n, latency_qs),
            confidence_n=np.bincount(conf_g, weights=conf_n, minlength=n).astype(np.int64),
            confidence=_histogram_quantiles(conf_g, confidence_values, conf_n, n, confidence_qs),
            histogram=histogram,
        )


def _histogram(buckets: Any) -> Any:
    import numpy as np

    from failpath.store.rollup import HISTOGRAM_DTYPE

    values, counts = np.unique(buckets, return_counts=True)
    out = np.empty(len(values), dtype=HISTOGRAM_DTYPE)
    out["bucket"], out["count"] = values, counts
    return out


def _flatten(histograms: list[tuple[int, Any]], group: Any) -> tuple[Any, Any, Any]:
    """Every ``(group, bucket, count)`` of the pieces' histograms, as three arrays."""
    import numpy as np

    sizes = [len(h) for _, h in histograms]
    if not sum(sizes):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    pieces = np.repeat(np.array([p for p, _ in histograms], dtype=np.int64), sizes)
    joined = np.concatenate([h for _, h in histograms])
    return group[pieces], joined["bucket"].astype(np.int64), joined["count"].astype(np.int64)


def _histogram_quantiles(group: Any, values: Any, counts: Any, n_groups: int, quantiles: tuple[float, ...]) -> Any:
    """``[n_groups, len(quantiles)]`` quantiles from weighted values (NaN for an empty group): numpy's
    linear interpolation between the order statistics at ranks ``floor((n - 1) q)`` and the next."""
    import numpy as np

    order = np.lexsort((values, group))
    group, values, counts = group[order], values[order], counts[order]
    cumulative = np.cumsum(counts)
    totals = np.bincount(group, weights=counts, minlength=n_groups).astype(np.int64)
    before = np.concatenate(([0], np.cumsum(totals)[:-1]))  # items in the groups before each group
    out = np.full((n_groups, len(quantiles)), np.nan)
    filled = totals > 0
    for i, q in enumerate(quantiles):
        position = (totals[filled] - 1) * q
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, totals[filled] - 1)
        low = values[np.searchsorted(cumulative, before[filled] + below, side="right")]
        high = values[np.searchsorted(cumulative, before[filled] + above, side="right")]
        out[filled, i] = low + (position - below) * (high - low)
    return out

"""Trace statistics per time window: calls, outcome and failure-state shares, degraded answers,
latency percentiles and the confidence distribution.

Windows are aligned on multiples of the window length since the Unix epoch (a ``5m`` window starts at
12:00, 12:05, ...), so two runs of ``failpath traces stats`` agree on window boundaries.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from failpath.core import OUTCOME_KINDS

__all__ = ["WindowStats", "TraceStats", "trace_stats", "CONFIDENCE_BINS", "sparkline"]

#: The confidence histogram has this many equal-width bins over [0, 1] (the last one includes 1).
CONFIDENCE_BINS = 10
#: Quantiles of confidence reported per window.
CONFIDENCE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_LATENCY_QUANTILES = (0.5, 0.95, 0.99)
#: What an approximate ``traces stats`` says of its quantiles (read from the rollup's histograms).
APPROXIMATE_QUANTILES = "approximate: latency within 1% (relative), confidence within 0.0005 of the exact quantile"
_BLOCKS = " ▁▂▃▄▅▆▇█"


@dataclasses.dataclass(frozen=True)
class WindowStats:
    """The figures of one time window (``start`` inclusive, ``end`` exclusive, Unix seconds).

    Shares are of ``calls``. ``states`` counts calls on which each failure state was detected (a call
    may have several). ``latency_ms`` holds p50/p95/p99 of the whole guarded call.
    ``confidence_quantiles`` holds p05/p25/p50/p75/p95 of the ``confidence_n`` calls with a
    confidence (see :func:`trace_stats` for which one), and
    ``confidence_histogram`` their counts in :data:`CONFIDENCE_BINS` equal bins over [0, 1].
    """

    start: float | None
    end: float | None
    calls: int
    outcomes: Mapping[str, int]
    states: Mapping[str, int]
    degraded: int
    latency_ms: Mapping[str, float | None]
    confidence_n: int
    confidence_quantiles: Mapping[str, float | None]
    confidence_histogram: tuple[int, ...]

    def share(self, count: int) -> float:
        """``count`` as a share of the window's calls (0 for an empty window)."""
        return count / self.calls if self.calls else 0.0

    @property
    def outcome_shares(self) -> dict[str, float]:
        """Share of calls ending in each outcome."""
        return {k: self.share(v) for k, v in self.outcomes.items()}

    @property
    def state_shares(self) -> dict[str, float]:
        """Share of calls on which each failure state was detected."""
        return {k: self.share(v) for k, v in self.states.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data: counts and shares."""
        return {
            "start": self.start,
            "end": self.end,
            "calls": self.calls,
            "outcomes": dict(self.outcomes),
            "outcome_shares": self.outcome_shares,
            "states": dict(self.states),
            "state_shares": self.state_shares,
            "degraded": self.degraded,
            "degraded_share": self.share(self.degraded),
            "latency_ms": dict(self.latency_ms),
            "confidence": {
                "n": self.confidence_n,
                "quantiles": dict(self.confidence_quantiles),
                "histogram": {"bins": CONFIDENCE_BINS, "range": [0.0, 1.0], "counts": list(self.confidence_histogram)},
            },
        }


@dataclasses.dataclass(frozen=True)
class TraceStats:
    """Statistics over the traces matching some filters: the whole span, and each window if asked."""

    filters: Mapping[str, Any]
    window: float | None
    total: WindowStats
    windows: tuple[WindowStats, ...]
    raw_confidence: bool = False  # confidence is the system's raw one on its first call, not the answer's
    approximate: bool = False  # quantiles read from the store's hourly rollup (see APPROXIMATE_QUANTILES)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data (what ``failpath traces stats --json`` prints)."""
        return {
            "filters": dict(self.filters),
            "window_seconds": self.window,
            "quantiles": APPROXIMATE_QUANTILES if self.approximate else "exact",
            "confidence": "raw (first call)" if self.raw_confidence else "answers given",
            "total": self.total.to_dict(),
            "windows": [w.to_dict() for w in self.windows],
        }

    def __rich__(self) -> Any:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from failpath.watch.timespec import format_duration, format_time

        total = self.total
        filters = ", ".join(f"{k}={v}" for k, v in self.filters.items() if v is not None and k not in ("since", "until"))
        span = "no calls"
        if total.calls:
            span = f"{total.calls} call(s) from {format_time(total.start)} to {format_time(total.end)}"  # type: ignore[arg-type]
        header = Text(span + (f" ({filters})" if filters else ""), style="bold")
        if self.approximate and total.calls:
            header.append(f"\nquantiles {APPROXIMATE_QUANTILES} (--exact reads every trace)", style="dim")

        summary = Table(box=box.SIMPLE_HEAD, title="all calls", title_justify="left")
        summary.add_column("outcomes", no_wrap=True)
        summary.add_column("failure states detected", no_wrap=True)
        summary.add_column("latency ms", no_wrap=True)
        summary.add_column("confidence (raw, first call)" if self.raw_confidence else "confidence (answers)", no_wrap=True)
        summary.add_row(*_cells(total))
        parts: list[Any] = [header, summary]
        if self.windows:
            table = Table(box=box.SIMPLE_HEAD, title=f"per {format_duration(self.window or 0)} window (UTC)", title_justify="left")
            table.add_column("window", no_wrap=True)
            table.add_column("calls", justify="right", no_wrap=True)
            table.add_column("outcomes", no_wrap=True)
            table.add_column("failure states", no_wrap=True)
            table.add_column("latency ms", no_wrap=True)
            table.add_column("confidence", no_wrap=True)
            for w in self.windows:
                label = format_time(w.start)[5:16].replace("T", " ") if w.start is not None else "-"  # type: ignore[arg-type]
                table.add_row(label, str(w.calls), *_cells(w))
            parts.append(table)
        return Group(*parts)


def _cells(w: WindowStats) -> tuple[str, str, str, str]:
    """Outcomes (with degraded answers), failure states, latency and confidence of a window, one per line."""
    kinds = [k for k in OUTCOME_KINDS if w.outcomes.get(k)] + sorted(k for k in w.outcomes if k not in OUTCOME_KINDS)
    outcomes = [f"{k} {_pct(w.share(w.outcomes[k]))}" for k in kinds]
    if w.degraded:
        outcomes.append(f"degraded {_pct(w.share(w.degraded))}")
    states = [f"{s} {_pct(w.share(c))}" for s, c in sorted(w.states.items(), key=lambda item: -item[1])]
    latency = [f"{p} {_ms(w.latency_ms.get(p))}" for p in ("p50", "p95", "p99")] if w.calls else ["-"]
    if w.confidence_n:
        q = w.confidence_quantiles
        confidence = [f"{k} {_conf(q.get(k))}" for k in ("p05", "p50", "p95")]
        confidence.append(f"{sparkline(w.confidence_histogram)} n={w.confidence_n}")
    else:
        confidence = ["-"]
    return "\n".join(outcomes) or "-", "\n".join(states) or "-", "\n".join(latency), "\n".join(confidence)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else (f"{value:.0f}" if value >= 100 else f"{value:.1f}")


def _conf(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def sparkline(counts: tuple[int, ...] | list[int]) -> str:
    """A one-line text histogram of ``counts`` (block characters, tallest = the largest count)."""
    top = max(counts) if counts else 0
    if top <= 0:
        return ""
    return "".join(_BLOCKS[0 if c == 0 else max(1, math.ceil(c / top * (len(_BLOCKS) - 1)))] for c in counts)


# --------------------------------------------------------------------------- computing


def trace_stats(
    store: Any,
    *,
    policy: str | None = None,
    outcome: str | None = None,
    state: str | None = None,
    since: float | None = None,
    until: float | None = None,
    window: float | None = None,
    raw_confidence: bool = False,
    exact: bool = False,
) -> TraceStats:
    """Statistics of the matching traces: over the whole span, and per ``window`` seconds if given.

    ``store`` is an open store or a path. Only windows holding at least one trace are listed.
    Confidence is that of the answers given (``Trace.confidence``); with ``raw_confidence``, the
    system's own on its first call, for every call that reached the system (what the policy's
    thresholds judge and what drift compares; several times slower on a large store).

    Without a state filter or ``raw_confidence``, and with a window of whole hours (or none), the figures
    of whole hours come from the store's hourly rollup (:mod:`failpath.watch.rollup_figures`), which the
    trace writer keeps: counts are exact, but quantiles are approximate (latency within 1%, confidence
    within 0.0005; ``TraceStats.approximate`` says so). ``exact=True`` reads every trace instead.
    """
    import numpy as np

    from failpath.store.trace_queries import TraceFilter, trace_columns
    from failpath.watch._store import using_store as _using

    if window is not None and not (window > 0 and math.isfinite(window)):
        raise ValueError(f"window must be a positive number of seconds, got {window!r}")
    where = TraceFilter(policy=policy, outcome=outcome, state=state, since=since, until=until)
    filters = {"policy": policy, "outcome": outcome, "state": state, "since": since, "until": until}
    with _using(store) as opened:
        if not exact and not raw_confidence:
            from failpath.watch.rollup_figures import rollup_figures

            found = rollup_figures(opened, where, window, _LATENCY_QUANTILES, CONFIDENCE_QUANTILES)
            if found is not None:
                total, per_window = found
                return TraceStats(filters=filters, window=window, total=_from_groups(total)[0],
                                  windows=tuple(_from_groups(per_window)) if per_window else (), approximate=True)
        columns = trace_columns(opened, where, window=window, raw_confidence=raw_confidence)

    rows = columns.rows
    names = [*columns.outcomes, "other"]  # code -1 (an outcome name not known when read) is the last
    times = rows["time"]
    total_states: dict[str, int] = {}
    for name, _bucket, count in columns.states:
        total_states[name] = total_states.get(name, 0) + count
    first = float(times[0]) if len(rows) else since
    last = float(times[-1]) if len(rows) else until
    (total,) = _summaries(rows, names, np.zeros(len(rows), dtype=np.int64), [(first, last)], [total_states])
    windows: tuple[WindowStats, ...] = ()
    if window and len(rows):
        buckets = np.floor(times / window).astype(np.int64)
        present, group = np.unique(buckets, return_inverse=True)
        per_bucket: dict[int, dict[str, int]] = {}
        for name, bucket, count in columns.states:
            per_bucket.setdefault(int(bucket), {})[name] = count
        bounds = [(int(b) * window, (int(b) + 1) * window) for b in present]
        windows = tuple(_summaries(rows, names, group, bounds, [per_bucket.get(int(b), {}) for b in present]))
    return TraceStats(filters=filters, window=window, total=total, windows=windows, raw_confidence=raw_confidence)


def _from_groups(groups: Any) -> list[WindowStats]:
    """The :class:`WindowStats` of each group of :class:`~failpath.watch.rollup_figures.GroupFigures`."""
    out = []
    for g, (start, end) in enumerate(groups.bounds):
        has_calls, has_conf = bool(groups.calls[g]), bool(groups.confidence_n[g])
        out.append(
            WindowStats(
                start=start,
                end=end,
                calls=int(groups.calls[g]),
                outcomes=dict(groups.outcomes[g]),
                states=dict(groups.states[g]),
                degraded=int(groups.degraded[g]),
                latency_ms={p: float(groups.latency[g, i]) if has_calls else None for i, p in enumerate(("p50", "p95", "p99"))},
                confidence_n=int(groups.confidence_n[g]),
                confidence_quantiles={
                    f"p{round(q * 100):02d}": float(groups.confidence[g, i]) if has_conf else None
                    for i, q in enumerate(CONFIDENCE_QUANTILES)
                },
                confidence_histogram=tuple(int(c) for c in groups.histogram[g]),
            )
        )
    return out


def _summaries(
    rows: Any, names: list[str], group: Any, bounds: list[tuple[Any, Any]], states: list[Mapping[str, int]]
) -> list[WindowStats]:
    """The :class:`WindowStats` of each group of rows (``group[i]`` is row i's group), computed for all groups at once."""
    import numpy as np

    n_groups = len(bounds)
    calls = np.bincount(group, minlength=n_groups)
    codes = rows["outcome"].astype(np.int64) % len(names)  # -1 -> "other"
    outcomes = np.bincount(group * len(names) + codes, minlength=n_groups * len(names)).reshape(n_groups, len(names))
    degraded = np.bincount(group, weights=rows["degraded"], minlength=n_groups)
    latency = _grouped_quantiles(rows["latency_ms"], group, n_groups, (0.5, 0.95, 0.99))
    confidence = rows["confidence"]
    known = np.isfinite(confidence)
    conf_values, conf_group = np.clip(confidence[known], 0.0, 1.0), group[known]
    conf_n = np.bincount(conf_group, minlength=n_groups)
    conf_q = _grouped_quantiles(conf_values, conf_group, n_groups, CONFIDENCE_QUANTILES)
    edges = np.linspace(0.0, 1.0, CONFIDENCE_BINS + 1)
    bins = np.minimum(np.searchsorted(edges, conf_values, side="right") - 1, CONFIDENCE_BINS - 1)
    histogram = np.bincount(conf_group * CONFIDENCE_BINS + bins, minlength=n_groups * CONFIDENCE_BINS).reshape(
        n_groups, CONFIDENCE_BINS
    )
    out = []
    for g, (start, end) in enumerate(bounds):
        has_calls, has_conf = bool(calls[g]), bool(conf_n[g])
        out.append(
            WindowStats(
                start=start,
                end=end,
                calls=int(calls[g]),
                outcomes={names[c]: int(outcomes[g, c]) for c in range(len(names)) if outcomes[g, c]},
                states=dict(sorted(states[g].items())),
                degraded=int(degraded[g]),
                latency_ms={p: float(latency[g, i]) if has_calls else None for i, p in enumerate(("p50", "p95", "p99"))},
                confidence_n=int(conf_n[g]),
                confidence_quantiles={
                    f"p{round(q * 100):02d}": float(conf_q[g, i]) if has_conf else None
                    for i, q in enumerate(CONFIDENCE_QUANTILES)
                },
                confidence_histogram=tuple(int(c) for c in histogram[g]),
            )
        )
    return out


def _grouped_quantiles(values: Any, group: Any, n_groups: int, quantiles: tuple[float, ...]) -> Any:
    """``[n_groups, len(quantiles)]`` quantiles of ``values`` per group (numpy's default linear method; NaN if empty)."""
    import numpy as np

    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    if n_groups == 1:
        ordered = np.sort(values)
    elif len(group) < 2 or bool(np.all(group[1:] >= group[:-1])):
        # Rows come in time order, so each window is one slice: sorting the slices one by one is
        # several times faster than one lexsort over every row.
        ordered = np.array(values, dtype=float, copy=True)
        for start, count in zip(starts[counts > 0].tolist(), counts[counts > 0].tolist()):
            ordered[start : start + count].sort()
    else:
        ordered = values[np.lexsort((values, group))]
    out = np.full((n_groups, len(quantiles)), np.nan)
    filled = counts > 0
    for i, q in enumerate(quantiles):
        position = (counts[filled] - 1) * q
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, counts[filled] - 1)
        low = ordered[starts[filled] + below]
        high = ordered[starts[filled] + above]
        out[filled, i] = low + (position - below) * (high - low)
    return out

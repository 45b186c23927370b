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
_BLOCKS = " ▁▂▃▄▅▆▇█"


@dataclasses.dataclass(frozen=True)
class WindowStats:
    """The figures of one time window (``start`` inclusive, ``end`` exclusive, Unix seconds).

    Shares are of ``calls``. ``states`` counts calls on which each failure state was detected (a call
    may have several). ``latency_ms`` holds p50/p95/p99 of the whole guarded call. Confidence is the
    system's raw confidence on its first call (what the policy's thresholds judge; calls refused before
    reaching the system have none): ``confidence_quantiles`` holds p05/p25/p50/p75/p95 of the
    ``confidence_n`` calls that reported one, and
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data (what ``failpath traces stats --json`` prints)."""
        return {
            "filters": dict(self.filters),
            "window_seconds": self.window,
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

        summary = Table(box=box.SIMPLE_HEAD, title="all calls", title_justify="left")
        summary.add_column("outcomes", no_wrap=True)
        summary.add_column("failure states detected", no_wrap=True)
        summary.add_column("latency ms", no_wrap=True)
        summary.add_column("confidence (raw)", no_wrap=True)
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
) -> TraceStats:
    """Statistics of the matching traces: over the whole span, and per ``window`` seconds if given.

    ``store`` is an open store or a path. Only windows holding at least one trace are listed.
    """
    import numpy as np

    from failpath.store.trace_queries import TraceFilter, trace_columns
    from failpath.watch.review import _using

    if window is not None and not (window > 0 and math.isfinite(window)):
        raise ValueError(f"window must be a positive number of seconds, got {window!r}")
    where = TraceFilter(policy=policy, outcome=outcome, state=state, since=since, until=until)
    with _using(store) as opened:
        columns = trace_columns(opened, where, window=window)

    rows = columns.rows
    names = np.asarray([*columns.outcomes, "other"], dtype=object)
    times = rows["time"]
    total_states: dict[str, int] = {}
    for name, _bucket, count in columns.states:
        total_states[name] = total_states.get(name, 0) + count
    total = _window(
        float(times[0]) if len(rows) else since,
        float(times[-1]) if len(rows) else until,
        rows,
        names,
        total_states,
    )
    windows: list[WindowStats] = []
    if window and len(rows):
        buckets = np.floor(times / window).astype(np.int64)
        per_bucket_states: dict[int, dict[str, int]] = {}
        for name, bucket, count in columns.states:
            per_bucket_states.setdefault(int(bucket), {})[name] = count
        edges = np.flatnonzero(np.diff(buckets)) + 1
        for lo, hi in zip(np.concatenate(([0], edges)), np.concatenate((edges, [len(buckets)]))):
            bucket = int(buckets[lo])
            windows.append(
                _window(bucket * window, (bucket + 1) * window, rows[lo:hi], names, per_bucket_states.get(bucket, {}))
            )
    filters = {"policy": policy, "outcome": outcome, "state": state, "since": since, "until": until}
    return TraceStats(filters=filters, window=window, total=total, windows=tuple(windows))


def _window(start: float | None, end: float | None, rows: Any, names: Any, states: Mapping[str, int]) -> WindowStats:
    import numpy as np

    calls = len(rows)
    codes, counts = np.unique(rows["outcome"], return_counts=True)
    outcome_counts = {str(names[c]): int(n) for c, n in zip(codes, counts)}
    if calls:
        p50, p95, p99 = np.percentile(rows["latency_ms"], [50, 95, 99])
        latency_ms = {"p50": float(p50), "p95": float(p95), "p99": float(p99)}
    else:
        latency_ms = {"p50": None, "p95": None, "p99": None}
    confidence = rows["confidence"]
    known = confidence[np.isfinite(confidence)]
    if len(known):
        values = np.quantile(known, CONFIDENCE_QUANTILES)
        quantiles = {f"p{round(q * 100):02d}": float(v) for q, v in zip(CONFIDENCE_QUANTILES, values)}
        histogram = tuple(int(c) for c in np.histogram(np.clip(known, 0.0, 1.0), bins=CONFIDENCE_BINS, range=(0.0, 1.0))[0])
    else:
        quantiles = {f"p{round(q * 100):02d}": None for q in CONFIDENCE_QUANTILES}
        histogram = (0,) * CONFIDENCE_BINS
    return WindowStats(
        start=start,
        end=end,
        calls=calls,
        outcomes=outcome_counts,
        states=dict(sorted(states.items())),
        degraded=int(rows["degraded"].sum()) if calls else 0,
        latency_ms=latency_ms,
        confidence_n=int(len(known)),
        confidence_quantiles=quantiles,
        confidence_histogram=histogram,
    )

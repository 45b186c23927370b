"""Charts for the HTML report: matplotlib (Agg backend) figures rendered as inline SVG text.

Every function takes plain numbers and labels and returns one ``<svg>`` element as a string, ready
to be placed in an HTML page: no XML declaration, no DOCTYPE, no external reference. Text from the
data (perturbation names, ...) is escaped by matplotlib's SVG writer. matplotlib is imported on first
use, never at package import.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "COLORS",
    "accuracy_chart",
    "risk_coverage_chart",
    "reliability_chart",
    "outcome_mix_chart",
    "svg_from_figure",
]

#: Colors of the outcome mix, shared with the HTML tables' legend.
COLORS: dict[str, str] = {
    "right": "#2e7d32",
    "silent_failure": "#c62828",
    "clarify": "#6a8caf",
    "escalated": "#1565c0",
    "abstained": "#8d6e63",
    "defaulted": "#9e9e9e",
    "error": "#ef6c00",
}

_LABELS = {
    "right": "answered, right",
    "silent_failure": "answered, wrong (silent failure)",
    "clarify": "clarify",
    "escalated": "escalated",
    "abstained": "abstained",
    "defaulted": "defaulted",
    "error": "raised an error",
}

_RC = {
    "svg.fonttype": "none",  # text stays text: small, selectable, no embedded glyph paths
    "text.parse_math": False,  # labels are plain text: a "$" in a suite or case name is not mathtext
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_MAX_CURVE_POINTS = 400


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def svg_from_figure(fig: Any, name: str) -> str:
    """The figure as one inline ``<svg>`` element; ``name`` keeps its internal ids apart from other charts'."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"failpath-{name}"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight",
                    metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    _pyplot().close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    # Namespace declarations are identifiers, not requests, but the page carries no URL at all.
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    svg = svg.replace("xlink:href=", "href=")
    svg = re.sub(r"<svg\b", f'<svg role="img" aria-label="{name}" class="chart"', svg, count=1)
    return svg.strip()


def accuracy_chart(bars: Sequence[Mapping[str, Any]], *, title: str = "Accuracy, clean vs each perturbation", level: str = "95%") -> str:
    """Horizontal bars of accuracy with error bars: ``bars`` holds ``label``, ``accuracy``, ``low``, ``high``.

    The first bar is drawn darker (it is the clean suite when the report puts it first). ``level`` is the
    confidence level of the intervals, as the axis label prints it.
    """
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(_RC):
        height = 0.9 + 0.28 * max(1, len(bars))
        fig, ax = plt.subplots(figsize=(6.4, height))
        labels = [str(b["label"]) for b in bars]
        values = [100 * float(b["accuracy"]) for b in bars]
        lows = [max(0.0, v - 100 * float(b.get("low", b["accuracy"]))) for v, b in zip(values, bars)]
        highs = [max(0.0, 100 * float(b.get("high", b["accuracy"])) - v) for v, b in zip(values, bars)]
        y = list(range(len(bars)))
        colors = ["#37474f"] + ["#78909c"] * (len(bars) - 1)
        ax.barh(y, values, xerr=[lows, highs], color=colors, height=0.62,
                error_kw={"ecolor": "#263238", "capsize": 2.5, "elinewidth": 1})
        for yi, v, up in zip(y, values, highs):
            ax.text(min(v + up, 100) + 1.5, yi, f"{v:.1f}%", va="center", fontsize=8)
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 112)
        ax.set_xticks([0, 20, 40, 60, 80, 100])
        ax.set_xlabel(f"accuracy (%), {level} interval")
        ax.grid(axis="y", visible=False)
        ax.set_title(title, loc="left", fontsize=10)
        return svg_from_figure(fig, "accuracy")


def _thin(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    if len(xs) <= _MAX_CURVE_POINTS:
        return list(xs), list(ys)
    step = len(xs) / _MAX_CURVE_POINTS
    keep = sorted({int(i * step) for i in range(_MAX_CURVE_POINTS)} | {len(xs) - 1})
    return [xs[i] for i in keep], [ys[i] for i in keep]


def risk_coverage_chart(
    coverage: Sequence[float],
    risk: Sequence[float],
    oracle_coverage: Sequence[float],
    oracle_risk: Sequence[float],
    *,
    operating_point: tuple[float, float] | None = None,
    title: str = "Risk–coverage: answering fewer, being wrong less",
) -> str:
    """Selective risk against coverage for the system's confidence and for the oracle (perfect ranking).

    ``operating_point`` (coverage, risk) marks where the chosen threshold sits.
    """
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        xs, ys = _thin([100 * c for c in coverage], [100 * r for r in risk])
        ox, oy = _thin([100 * c for c in oracle_coverage], [100 * r for r in oracle_risk])
        ax.step(xs, ys, where="post", color="#1565c0", linewidth=1.6, label="confidence")
        ax.step(ox, oy, where="post", color="#9e9e9e", linewidth=1.2, linestyle="--", label="oracle")
        if operating_point is not None:
            ax.plot([100 * operating_point[0]], [100 * operating_point[1]], "o", color="#c62828",
                    label="chosen threshold")
        ax.set_xlim(0, 100)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("coverage (% answered)")
        ax.set_ylabel("selective risk (% of answers wrong)")
        ax.legend(loc="upper left", frameon=False)
        ax.set_title(title, loc="left", fontsize=10)
        return svg_from_figure(fig, "risk-coverage")


def reliability_chart(bins: Sequence[Mapping[str, Any]], *, title: str = "Reliability: stated confidence vs accuracy") -> str:
    """A reliability diagram: per confidence bin (``lo``, ``hi``, ``count``, ``accuracy``), accuracy vs the diagonal.

    Empty bins are left blank; bar opacity follows the bin's share of items.
    """
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(4.4, 3.6))
        total = sum(int(b.get("count", 0)) for b in bins) or 1
        for b in bins:
            count = int(b.get("count", 0))
            if not count or b.get("accuracy") is None:
                continue
            lo, hi = float(b["lo"]), float(b["hi"])
            share = count / total
            ax.bar(lo, float(b["accuracy"]), width=hi - lo, align="edge", color="#1565c0",
                   alpha=0.35 + 0.65 * min(1.0, share * 4), edgecolor="white", linewidth=0.5)
        ax.plot([0, 1], [0, 1], linestyle="--", color="#616161", linewidth=1, label="perfectly calibrated")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.legend(loc="upper left", frameon=False)
        ax.set_title(title, loc="left", fontsize=10)
        return svg_from_figure(fig, "reliability")


def outcome_mix_chart(rows: Sequence[tuple[str, Mapping[str, int]]], *, title: str = "Outcome mix") -> str:
    """Stacked bars of outcome shares, one bar per ``(label, {kind: count})`` row.

    Kinds are ``right``, ``silent_failure``, ``clarify``, ``escalated``, ``abstained``, ``defaulted``
    and ``error`` (a raw system that raised); each bar's label carries its silent-failure share.
    """
    plt = _pyplot()
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.45 * max(1, len(rows))))
        present = [k for k in COLORS if any(counts.get(k) for _, counts in rows)]
        for y, (_, counts) in enumerate(rows):
            total = sum(counts.values()) or 1
            left = 0.0
            for kind in present:
                share = 100 * counts.get(kind, 0) / total
                if share <= 0:
                    continue
                ax.barh(y, share, left=left, color=COLORS[kind], height=0.6,
                        label=_LABELS[kind] if y == _first_row_with(rows, kind) else None)
                left += share
        ax.set_yticks(range(len(rows)), [_mix_label(label, counts) for label, counts in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of calls (%)")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35 - 0.1 / max(1, len(rows))), ncol=3,
                  frameon=False, fontsize=8)
        ax.set_title(title, loc="left", fontsize=10)
        return svg_from_figure(fig, "outcome-mix")


def _first_row_with(rows: Sequence[tuple[str, Mapping[str, int]]], kind: str) -> int:
    return next(i for i, (_, counts) in enumerate(rows) if counts.get(kind))


def _mix_label(label: str, counts: Mapping[str, int]) -> str:
    total = sum(counts.values()) or 1
    return f"{label}\nsilent {100 * counts.get('silent_failure', 0) / total:.1f}%"

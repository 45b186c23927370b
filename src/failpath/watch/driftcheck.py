"""Drift: has production moved away from the check run the policy was calibrated on?

``failpath check`` stores a baseline in its run summary (``summary["baseline"]``)::

    {"policy": name, "coverage": float, "n": int,
     "confidence_sample": [raw confidences on clean inputs],
     "state_rates": {state: share of calls}, "outcome_rates": {kind: share of calls}}

:func:`drift` reads the policy's production traces in a time window and tests each monitored figure
against that baseline:

- the answer rate against the calibrated coverage (the rate the thresholds were certified for): exact
  binomial test, against every rate in the exact 99.99% interval of the calibrated coverage (the
  baseline is a sample too: Berger–Boos p-value), so a small check run does not raise false alarms;
- the confidence distribution: two-sample Kolmogorov–Smirnov test, the effect being the KS distance
  (production side: the system's raw confidence on its first call, as the baseline samples it);
- the rate of each failure state (``anomalous_input`` always among them) and of each handled outcome:
  Fisher's exact test on the two 2×2 counts, the effect being the change in share of calls.

p-values are adjusted together with Holm's method, so the whole report holds a family-wise error
rate of ``alpha``. A figure *moved* when its adjusted p-value is below ``alpha`` **and** its effect
reaches the minimum effect size: on a million traces a 0.3-point move is significant but not news.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from failpath.core import OUTCOME_KINDS, ConfigError, FailpathError
from failpath.store.values import ProductionSample  # defined by the store, which reads it; public here

__all__ = [
    "DriftThresholds",
    "DriftFigure",
    "DriftReport",
    "ProductionSample",
    "BaselineMissing",
    "NoTraces",
    "drift",
    "compare",
    "read_baseline",
]

BASELINE_KEYS = ("policy", "coverage", "n", "confidence_sample", "state_rates", "outcome_rates")

#: The failure state monitored even when neither the baseline nor production saw it.
ALWAYS_MONITORED_STATES = ("anomalous_input",)


class BaselineMissing(ConfigError):
    """The run id is unknown, or the run has no usable baseline."""


class NoTraces(FailpathError):
    """No production trace of the policy falls in the window: there is nothing to compare."""


@dataclasses.dataclass(frozen=True)
class DriftThresholds:
    """When a figure counts as moved: adjusted p-value below ``alpha`` and an effect at least the minimum.

    ``min_coverage_change`` and ``min_rate_change`` are absolute changes in share of calls (0.05 is five
    percentage points); ``min_ks_distance`` is the smallest KS distance (largest gap between the two
    cumulative distributions of confidence) worth an alarm.
    """

    alpha: float = 0.01
    min_coverage_change: float = 0.05
    min_ks_distance: float = 0.10
    min_rate_change: float = 0.02

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"drift alpha must be in (0, 1), got {self.alpha!r}")
        for name in ("min_coverage_change", "min_ks_distance", "min_rate_change"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"drift {name} must be in [0, 1], got {value!r}")


@dataclasses.dataclass(frozen=True)
class DriftFigure:
    """One monitored figure: its baseline and production values, the test, and whether it moved.

    ``name`` is ``coverage``, ``confidence``, ``state:<name>`` or ``outcome:<kind>``. ``change`` is
    production minus baseline (for ``confidence``, the KS distance, always >= 0). ``p_value`` is the
    test's own, ``p_adjusted`` after Holm's adjustment over every figure tested in the report.
    """

    name: str
    test: str
    baseline: float | None
    production: float | None
    change: float | None
    min_change: float
    p_value: float | None
    p_adjusted: float | None = None
    moved: bool = False
    note: str = ""

    @property
    def tested(self) -> bool:
        """False when there was not enough data on one side to run the test."""
        return self.p_value is not None


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """The result of :func:`drift`: every monitored figure, and whether any moved beyond its threshold."""

    baseline_run_id: str
    policy: str
    since: float | None
    until: float | None
    n: int
    baseline_n: int
    figures: tuple[DriftFigure, ...]
    thresholds: DriftThresholds

    @property
    def alarm(self) -> bool:
        """True when at least one monitored figure moved beyond its threshold."""
        return any(f.moved for f in self.figures)

    @property
    def moved(self) -> tuple[DriftFigure, ...]:
        """The figures that moved."""
        return tuple(f for f in self.figures if f.moved)

    def figure(self, name: str) -> DriftFigure:
        """The figure with that name; raises ``KeyError``."""
        for f in self.figures:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-safe data (what ``failpath drift --json`` prints)."""
        return {
            "baseline_run_id": self.baseline_run_id,
            "policy": self.policy,
            "since": self.since,
            "until": self.until,
            "n": self.n,
            "baseline_n": self.baseline_n,
            "alarm": self.alarm,
            "moved": [f.name for f in self.moved],
            "thresholds": dataclasses.asdict(self.thresholds),
            "figures": [_finite(dataclasses.asdict(f)) for f in self.figures],
        }

    def __rich__(self) -> Any:
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title=f"drift of policy {self.policy!r} against check run {self.baseline_run_id}",
            box=box.SIMPLE_HEAD,
            title_justify="left",
        )
        for column, justify in (
            ("figure", "left"),
            ("baseline", "right"),
            ("production", "right"),
            ("change", "right"),
            ("threshold", "right"),
            ("p (Holm)", "right"),
            ("", "left"),
        ):
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        unseen = [f.name for f in self.figures if f.note == "not seen on either side"]
        for f in self.figures:
            if f.name in unseen:
                continue
            status = Text("MOVED", style="bold red") if f.moved else Text("ok" if f.tested else "n/a", style="dim")
            table.add_row(
                f.name,
                _fmt_value(f, f.baseline),
                _fmt_value(f, f.production),
                _fmt_change(f),
                _fmt_threshold(f),
                "-" if f.p_adjusted is None else f"{f.p_adjusted:.2g}",
                status,
            )
        window = f"{self.n} production call(s)"
        if self.since is not None:
            from failpath.watch.timespec import format_time

            window += f" since {format_time(self.since)}"
        if self.until is not None:
            from failpath.watch.timespec import format_time

            window += f" until {format_time(self.until)}"
        if self.alarm:
            verdict = Text(
                f"DRIFT: {', '.join(f.name for f in self.moved)} moved beyond threshold "
                f"(family-wise alpha {self.thresholds.alpha:g})",
                style="bold red",
            )
        else:
            verdict = Text(f"no drift beyond thresholds (family-wise alpha {self.thresholds.alpha:g})", style="green")
        lines = [
            table,
            Text(f"{window}; baseline of {self.baseline_n} call(s)", style="dim"),
            Text(
                "tests: coverage exact binomial against the calibrated interval, confidence two-sample KS, "
                "rates Fisher exact; p-values Holm-adjusted together",
                style="dim",
            ),
        ]
        if unseen:
            lines.append(Text(f"not seen on either side (not tested): {', '.join(unseen)}", style="dim"))
        return Group(*lines, verdict)


def _fmt_value(f: DriftFigure, value: float | None) -> str:
    if value is None:
        return "-"
    if f.name == "confidence":
        return f"p50 {value:.3f}"
    return f"{value:.1%}"


def _fmt_change(f: DriftFigure) -> str:
    if f.change is None:
        return "-"
    if f.name == "confidence":
        return f"KS {f.change:.3f}"
    return f"{f.change * 100:+.1f} pts"


def _fmt_threshold(f: DriftFigure) -> str:
    if f.name == "confidence":
        return f"KS >= {f.min_change:.2f}"
    return f"±{f.min_change * 100:.1f} pts"


def _finite(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()}


# --------------------------------------------------------------------------- the baseline


def read_baseline(run: Mapping[str, Any] | None, run_id: str) -> dict[str, Any]:
    """The validated ``baseline`` block of a check run; raises ``BaselineMissing`` naming what is wrong."""
    if run is None:
        raise BaselineMissing(
            f"no run {run_id!r} in the store; check the id of the `failpath check` run (a unique prefix works), or pass --store for another store"
        )
    summary = run.get("summary") or {}
    baseline = summary.get("baseline") if isinstance(summary, Mapping) else None
    if not isinstance(baseline, Mapping):
        state = "has not finished" if not run.get("finished") else "has no baseline in its summary"
        raise BaselineMissing(
            f"run {run.get('run_id', run_id)!r} {state}; drift needs a finished `failpath check` run "
            "on clean inputs (its summary holds a 'baseline' block)"
        )
    missing = [key for key in BASELINE_KEYS if key not in baseline]
    if missing:
        raise BaselineMissing(f"the baseline of run {run_id!r} lacks {', '.join(missing)}")
    n = baseline["n"]
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise BaselineMissing(f"the baseline of run {run_id!r} has n={n!r}; it must be a positive count of calls")
    for key in ("coverage",):
        if not _is_share(baseline[key]):
            raise BaselineMissing(f"the baseline of run {run_id!r} has {key}={baseline[key]!r}; expected a share in [0, 1]")
    for key in ("state_rates", "outcome_rates"):
        rates = baseline[key]
        if not isinstance(rates, Mapping) or not all(_is_share(v) for v in rates.values()):
            raise BaselineMissing(f"the baseline of run {run_id!r} has a bad {key}: expected {{name: share in [0, 1]}}")
    sample = baseline["confidence_sample"]
    if not isinstance(sample, Sequence) or isinstance(sample, str):
        raise BaselineMissing(f"the baseline of run {run_id!r} has a bad confidence_sample: expected a list of numbers")
    return dict(baseline)


def _is_share(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


# --------------------------------------------------------------------------- the tests


def compare(
    baseline: Mapping[str, Any],
    production: ProductionSample,
    *,
    thresholds: DriftThresholds = DriftThresholds(),
    baseline_run_id: str = "",
    policy: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> DriftReport:
    """Test every monitored figure of ``production`` against ``baseline`` (see the module docstring)."""
    n_base = int(baseline["n"])
    figures = [
        _coverage_figure(baseline, production, thresholds),
        _confidence_figure(baseline, production, thresholds),
        *_rate_figures(baseline, production, thresholds),
    ]
    figures = _holm(figures, thresholds)
    return DriftReport(
        baseline_run_id=baseline_run_id,
        policy=policy or str(baseline["policy"]),
        since=since,
        until=until,
        n=production.n,
        baseline_n=n_base,
        figures=tuple(figures),
        thresholds=thresholds,
    )


def _coverage_figure(baseline: Mapping[str, Any], production: ProductionSample, thresholds: DriftThresholds) -> DriftFigure:
    """Coverage: the answered share against the baseline's, by an exact binomial test (see :func:`_coverage_p_value`)."""
    coverage = float(baseline["coverage"])
    prod_coverage = production.answered / production.n
    p_coverage, (low, high) = _coverage_p_value(production.answered, production.n, coverage, int(baseline["n"]))
    return DriftFigure(
        name="coverage",
        test="exact binomial",
        baseline=coverage,
        production=prod_coverage,
        change=prod_coverage - coverage,
        min_change=thresholds.min_coverage_change,
        p_value=p_coverage,
        note=f"calibrated {low:.1%}–{high:.1%}",
    )


def _confidence_figure(baseline: Mapping[str, Any], production: ProductionSample, thresholds: DriftThresholds) -> DriftFigure:
    """The confidence distribution against the baseline's sample, by a two-sample KS test (untested when a side has none)."""
    import numpy as np
    from scipy import stats

    base_conf = _clean_confidences(baseline["confidence_sample"])
    prod_conf = _clean_confidences(production.confidences)
    if len(base_conf) and len(prod_conf):
        ks = stats.ks_2samp(base_conf, prod_conf)
        return DriftFigure(
            name="confidence",
            test="two-sample KS",
            baseline=float(np.median(base_conf)),
            production=float(np.median(prod_conf)),
            change=float(ks.statistic),
            min_change=thresholds.min_ks_distance,
            p_value=float(ks.pvalue),
            note=f"{len(base_conf)} vs {len(prod_conf)}",
        )
    side = "baseline" if not len(base_conf) else "production"
    return DriftFigure(
        name="confidence",
        test="two-sample KS",
        baseline=float(np.median(base_conf)) if len(base_conf) else None,
        production=float(np.median(prod_conf)) if len(prod_conf) else None,
        change=None,
        min_change=thresholds.min_ks_distance,
        p_value=None,
        note=f"no confidence on the {side} side",
    )


def _rate_figures(baseline: Mapping[str, Any], production: ProductionSample, thresholds: DriftThresholds) -> list[DriftFigure]:
    """The rate of each failure state (the always-monitored ones included) and of each outcome but answered."""
    n_base = int(baseline["n"])
    n_prod = production.n
    figures: list[DriftFigure] = []
    state_rates: Mapping[str, float] = baseline["state_rates"]
    states = list(dict.fromkeys([*ALWAYS_MONITORED_STATES, *state_rates, *production.state_counts]))
    for state in states:
        figures.append(
            _proportion_figure(
                f"state:{state}",
                float(state_rates.get(state, 0.0)),
                n_base,
                int(production.state_counts.get(state, 0)),
                n_prod,
                thresholds.min_rate_change,
            )
        )
    outcome_rates: Mapping[str, float] = baseline["outcome_rates"]
    kinds = [k for k in dict.fromkeys([*OUTCOME_KINDS, *outcome_rates, *production.outcome_counts]) if k != "answered"]
    for kind in kinds:
        if kind not in outcome_rates and not production.outcome_counts.get(kind):
            continue
        figures.append(
            _proportion_figure(
                f"outcome:{kind}",
                float(outcome_rates.get(kind, 0.0)),
                n_base,
                int(production.outcome_counts.get(kind, 0)),
                n_prod,
                thresholds.min_rate_change,
            )
        )
    return figures


#: Confidence gap of the interval around the calibrated coverage in :func:`_coverage_p_value`.
COVERAGE_GAMMA = 0.0001


def _coverage_p_value(answered: int, n: int, coverage: float, n_base: int) -> tuple[float, tuple[float, float]]:
    """p-value of the exact binomial test of the production answer rate against the calibrated coverage.

    The calibrated coverage is itself measured on ``n_base`` calls, so the null hypothesis is not one
    rate but the exact (Clopper–Pearson) ``1 - COVERAGE_GAMMA`` interval around it; the p-value is the
    largest binomial p-value over that interval plus ``COVERAGE_GAMMA`` (Berger and Boos, 1994), which
    keeps the test valid without pretending the baseline is known exactly. Returns it and the interval.
    """
    from scipy import stats

    base_count = min(n_base, max(0, round(coverage * n_base)))
    interval = stats.binomtest(base_count, n_base).proportion_ci(confidence_level=1 - COVERAGE_GAMMA, method="exact")
    low, high = float(interval.low), float(interval.high)
    rate = answered / n
    if low <= rate <= high:
        return 1.0, (low, high)
    nearest = low if rate < low else high
    p = float(stats.binomtest(answered, n, nearest).pvalue)
    return min(1.0, p + COVERAGE_GAMMA), (low, high)


def _proportion_figure(name: str, base_rate: float, n_base: int, prod_count: int, n_prod: int, min_change: float) -> DriftFigure:
    from scipy import stats

    base_count = min(n_base, max(0, round(base_rate * n_base)))
    prod_rate = prod_count / n_prod
    if base_count == 0 and prod_count == 0:
        # Nothing to compare; left out of the Holm family so it does not dilute the tests that can fire.
        return DriftFigure(name, "Fisher exact", base_rate, prod_rate, 0.0, min_change, None, note="not seen on either side")
    table = [[base_count, n_base - base_count], [prod_count, n_prod - prod_count]]
    return DriftFigure(
        name=name,
        test="Fisher exact",
        baseline=base_rate,
        production=prod_rate,
        change=prod_rate - base_rate,
        min_change=min_change,
        p_value=float(stats.fisher_exact(table).pvalue),
    )


def _clean_confidences(values: Sequence[Any]) -> Any:
    import numpy as np

    array = np.asarray([v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)], dtype=float)
    return array[np.isfinite(array)]


def _holm(figures: list[DriftFigure], thresholds: DriftThresholds) -> list[DriftFigure]:
    """Holm's step-down adjustment over the tested figures; sets ``p_adjusted`` and ``moved``."""
    tested = sorted((f.p_value, i) for i, f in enumerate(figures) if f.p_value is not None)
    m = len(tested)
    adjusted: dict[int, float] = {}
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    out = []
    for i, f in enumerate(figures):
        if i not in adjusted:
            out.append(f)
            continue
        big_enough = f.change is not None and abs(f.change) >= f.min_change
        out.append(dataclasses.replace(f, p_adjusted=adjusted[i], moved=adjusted[i] < thresholds.alpha and big_enough))
    return out


# --------------------------------------------------------------------------- from the store


def drift(
    store: Any,
    baseline_run_id: str,
    *,
    since: float | str | None = "24h",
    until: float | str | None = None,
    policy: str | None = None,
    thresholds: DriftThresholds = DriftThresholds(),
) -> DriftReport:
    """Compare the production traces of a policy in a window with the baseline of a check run.

    ``store`` is an open store or a path; ``since``/``until`` are Unix seconds or text (``"1h"`` = one
    hour ago, ISO 8601). ``policy`` defaults to the baseline's policy. Raises ``BaselineMissing`` for an
    unknown run or one without a baseline, and ``NoTraces`` when the window holds no trace of the policy.
    """
    from failpath.store.trace_queries import drift_sample
    from failpath.watch._store import using_store as _using
    from failpath.watch.timespec import parse_time

    now = time.time()
    since_s = parse_time(since, option="since", now=now) if isinstance(since, str) else since
    until_s = parse_time(until, option="until", now=now) if isinstance(until, str) else until
    with _using(store) as opened:
        run = opened.get_run(baseline_run_id)
        baseline = read_baseline(run, baseline_run_id)
        name = policy or str(baseline["policy"])
        sample = drift_sample(opened, policy=name, since=since_s, until=until_s)
    if sample.n == 0:
        raise NoTraces(
            f"no trace of policy {name!r} in the window; widen --since, check the policy name with "
            "`failpath traces stats`, or pass --policy"
        )
    return compare(
        baseline,
        sample,
        thresholds=thresholds,
        baseline_run_id=str((run or {}).get("run_id", baseline_run_id)),
        policy=name,
        since=since_s,
        until=until_s,
    )

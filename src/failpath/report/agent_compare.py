"""Two agent checks side by side: pass@1, pass^k, silent failures per family, attack success.

``failpath compare A B`` on two agent checks. Each figure is shown for run A (the baseline) and run B
(the change), with the change; when both runs kept their trials, the change has an interval paired by
task over the tasks both ran (a task is one draw, its figure the share of its trials, or its pass^k
estimate; :func:`failpath.stats.passk.paired_share_gap`), the intervals holding jointly at the
confidence level (Bonferroni over the figures). A figure whose whole interval lies on the worse side
is a regression, and the command exits 1, as for checks of single calls: two runs of the same agent do
not fail by chance.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AgentFigureChange", "AgentComparison", "compare_agent_runs", "render_terminal", "render_markdown", "render_json"]


@dataclass(frozen=True)
class AgentFigureChange:
    """One figure before (run A) and after (run B). ``higher_is_better``: pass rates yes, failure rates no.
    ``low``/``high`` bound ``after - before`` (None without both runs' trials); ``tasks``: tasks paired."""

    name: str
    before: float | None
    after: float | None
    higher_is_better: bool
    low: float | None = None
    high: float | None = None
    tasks: int = 0

    @property
    def change(self) -> float | None:
        """``after - before`` (None when either is missing)."""
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def regressed(self) -> bool:
        """Whether the whole interval of the change lies on the worse side."""
        if self.low is None or self.high is None:
            return False
        return self.high < 0 if self.higher_is_better else self.low > 0


@dataclass(frozen=True)
class AgentComparison:
    """Agent check ``run_b`` against agent check ``run_a``."""

    run_a: str
    run_b: str
    verdict_a: bool
    verdict_b: bool
    k: int
    confidence: float
    figures: tuple[AgentFigureChange, ...]
    notes: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        """True when some figure got worse beyond its interval."""
        return any(f.regressed for f in self.figures)

    @property
    def exit_code(self) -> int:
        """1 when :attr:`regressed`, else 0."""
        return 1 if self.regressed else 0

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (schema ``failpath.agent-compare/1``)."""
        data = asdict(self)
        data["schema"] = "failpath.agent-compare/1"
        data["regressed"] = self.regressed
        for row, figure in zip(data["figures"], self.figures):
            row["change"], row["regressed"] = figure.change, figure.regressed
        return data


def compare_agent_runs(doc_a: Mapping[str, Any], doc_b: Mapping[str, Any], *, confidence: float = 0.95) -> AgentComparison:
    """Compare two agent check documents (each with its ``"trials"`` when stored; without them the
    figures are shown side by side, with no interval and no regression)."""
    from failpath.stats.passk import pass_hat_k

    fig_a, fig_b = doc_a.get("figures") or {}, doc_b.get("figures") or {}
    k = int(((doc_b.get("config") or {}).get("budgets") or {}).get("pass_k", {}).get("k") or fig_b.get("k") or 4)
    trials_a, trials_b = doc_a.get("trials"), doc_b.get("trials")
    notes = []
    if trials_a is None or trials_b is None:
        notes.append("a run was kept without its trials: the figures are side by side, with no interval")
    families = [f for f in ("clean", "fault", "attack", "realistic", "hostile") if f in (fig_a.get("silent_failures") or {}) or f in (fig_b.get("silent_failures") or {})]
    # each figure: (name, value in A's figures, value in B's, per-task shares of a trial list, higher is better)
    specs: list[tuple[str, Any, Any, Any, bool]] = [
        ("pass@1 (clean)", fig_a.get("pass_at_1"), fig_b.get("pass_at_1"), lambda ts: _shares(ts, "clean", lambda t: t["status"] == "succeeded"), True),
        (f"pass^{k} (clean)", _curve(fig_a, k, "estimate"), _curve(fig_b, k, "estimate"), lambda ts: _pass_k(ts, k, pass_hat_k), True),
    ]
    for family in families:
        specs.append((f"silent failures [{family}]", _silent(fig_a, family), _silent(fig_b, family),
                      lambda ts, family=family: _shares(ts, family, lambda t: bool(t["silent"])), False))
    specs.append(("attack success", (fig_a.get("attacks") or {}).get("rate"), (fig_b.get("attacks") or {}).get("rate"),
                  lambda ts: _shares(ts, None, lambda t: bool(t["goals_reached"]), attacked=True), False))
    specs.append(("task success under attack", (fig_a.get("attacks") or {}).get("task_success_under_attack"),
                  (fig_b.get("attacks") or {}).get("task_success_under_attack"),
                  lambda ts: _shares(ts, None, lambda t: t["status"] == "succeeded", attacked=True), True))
    each = 1.0 - (1.0 - confidence) / len(specs)
    figures = []
    for name, before, after, shares, higher in specs:
        low = high = None
        paired = 0
        if trials_a is not None and trials_b is not None and before is not None and after is not None:
            low, high, paired = _paired(shares(trials_a), shares(trials_b), each)
        figures.append(AgentFigureChange(name, before, after, higher, low, high, paired))
    lower = AgentFigureChange(f"pass^{k} lower bound", _curve(fig_a, k, "lower_bound"), _curve(fig_b, k, "lower_bound"), True)
    figures.insert(2, lower)
    if _curve(fig_a, k, "estimate") is None:
        notes.append(f"run {doc_a.get('run_id')} made fewer than {k} clean trials per task: it has no pass^{k}")
    return AgentComparison(str(doc_a.get("run_id")), str(doc_b.get("run_id")), bool((doc_a.get("verdict") or {}).get("ship")),
                           bool((doc_b.get("verdict") or {}).get("ship")), k, confidence, tuple(figures), tuple(notes))


def _curve(figures: Mapping[str, Any], k: int, field: str) -> float | None:
    for point in figures.get("pass_k_curve") or ():
        if point.get("k") == k:
            return point.get(field)
    return None


def _silent(figures: Mapping[str, Any], family: str) -> float | None:
    row = (figures.get("silent_failures") or {}).get(family)
    return None if row is None else row.get("rate")


def _usable(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [t for t in trials if t.get("status") != "infrastructure_error"]


def _shares(trials: Sequence[Mapping[str, Any]], family: str | None, hit: Any, attacked: bool = False) -> dict[str, float]:
    """Per task, the share of its trials (of ``family``, or the attacked ones) for which ``hit`` holds."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in _usable(trials):
        if (family is not None and t["family"] != family) or (attacked and not t.get("attacked")):
            continue
        counts[t["task_id"]][0] += bool(hit(t))
        counts[t["task_id"]][1] += 1
    return {task: c / n for task, (c, n) in counts.items()}


def _pass_k(trials: Sequence[Mapping[str, Any]], k: int, pass_hat_k: Any) -> dict[str, float]:
    """Per task, the unbiased pass^k estimate of its clean trials (tasks with fewer than k left out)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in _usable(trials):
        if t["family"] == "clean":
            counts[t["task_id"]][0] += t["status"] == "succeeded"
            counts[t["task_id"]][1] += 1
    return {task: pass_hat_k(c, n, k) for task, (c, n) in counts.items() if n >= k}


def _paired(before: Mapping[str, float], after: Mapping[str, float], confidence: float) -> tuple[float | None, float | None, int]:
    """The interval of ``after - before`` paired by task, and how many tasks were paired."""
    from failpath.stats.passk import paired_share_gap

    tasks = sorted(set(before) & set(after))
    if not tasks:
        return None, None, 0
    gap = paired_share_gap([before[t] for t in tasks], [after[t] for t in tasks], confidence)  # a drop: before - after
    return -gap.high, -gap.low, len(tasks)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _pts(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f}"


def _rows(comparison: AgentComparison) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for f in comparison.figures:
        interval = "—" if f.low is None else f"[{_pts(f.low)}, {_pts(f.high)}] over {f.tasks} tasks"
        rows.append((f.name, _pct(f.before), _pct(f.after), _pts(f.change), interval, "WORSE" if f.regressed else ""))
    return rows


def _verdict(ship: bool) -> str:
    return "READY TO SHIP" if ship else "READY TO DEMO"


def render_terminal(comparison: AgentComparison) -> Any:
    """The comparison as one rich renderable."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from failpath.report.terminal import visible

    level = f"{100 * comparison.confidence:g}%"
    table = Table(title=f"Agent check {visible(comparison.run_b, 60)} against {visible(comparison.run_a, 60)} (points; intervals paired by task, jointly {level})",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("figure", "A", "B", "change", "interval of the change", ""):
        table.add_column(column, justify="left" if column in ("figure", "interval of the change") else "right", overflow="fold")
    for row in _rows(comparison):
        table.add_row(Text(row[0]), *row[1:5], Text(row[5], style="bold red"))
    lines = [f"verdict: {_verdict(comparison.verdict_a)} -> {_verdict(comparison.verdict_b)}"]
    lines.append("regression: a figure got worse beyond its interval" if comparison.regressed else "no figure got worse beyond its interval")
    lines += list(comparison.notes)
    return Group(table, *(Text(line) for line in lines))


def render_markdown(comparison: AgentComparison) -> str:
    """The comparison as Markdown (a table and the verdicts)."""
    from failpath.report.markdown import cell

    lines = [
        f"### Agent check `{cell(comparison.run_b, 80)}` against `{cell(comparison.run_a, 80)}`",
        "",
        f"Verdict: {_verdict(comparison.verdict_a)} → {_verdict(comparison.verdict_b)}. "
        + ("**A figure got worse beyond its interval.**" if comparison.regressed else "No figure got worse beyond its interval."),
        "",
        f"| figure | A | B | change (points) | interval ({100 * comparison.confidence:g}% jointly, paired by task) | |",
        "|---|---:|---:|---:|---|---|",
    ]
    lines += [f"| {cell(r[0])} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {'❌ worse' if r[5] else ''} |" for r in _rows(comparison)]
    lines += [""] + [f"- {cell(note, 300)}" for note in comparison.notes]
    return "\n".join(lines).rstrip() + "\n"


def render_json(comparison: AgentComparison) -> str:
    """The comparison as JSON text."""
    return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False) + "\n"

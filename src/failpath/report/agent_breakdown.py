"""The terminal tables of what a pooled pass^k can hide (:mod:`failpath.check.agent_breakdown`): the
figures per expected outcome (with over-handling), the worst tasks, the figures per tag, and the
infrastructure errors per family. Values from the run are printed as plain text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich import box
from rich.table import Table

from failpath.report.terminal import visible

__all__ = ["tables"]


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for number, column in enumerate(columns):
        table.add_column(column, justify="left" if number == 0 else "right", overflow="fold")
    return table


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def tables(figures: Mapping[str, Any]) -> list[Table]:
    """The tables that apply to ``figures`` (a document without these figures gives none)."""
    out = []
    k = figures.get("k", 4)
    by_outcome = figures.get("by_outcome") or {}
    if by_outcome:
        table = _table("By the outcome a task expects (clean trials): an agent that escalates everything passes only the non-answers",
                       "expects", "tasks", "pass@1", f"pass^{k}", "lower bound", "ended in a non-answer")
        for kind, row in by_outcome.items():
            table.add_row(kind, str(row["tasks"]), _pct(row["pass_at_1"]), _pct(row["estimate"]), _pct(row["lower_bound"]),
                          f"{row['handled']} of {row['trials']} ({_pct(row['handled_rate'])}, at most {_pct(row['handled_upper_bound'])})")
        over = figures.get("over_handling") or {}
        if over.get("trials"):
            table.add_row("answered, realistic variants", str(over["tasks"]), "", "", "",
                          f"{over['handled']} of {over['trials']} ({_pct(over['rate'])}, at most {_pct(over['upper_bound'])})")
        out.append(table)
    worst = figures.get("worst_tasks") or []
    if worst:
        table = _table("Worst tasks: the lowest share of successful clean trials", "task", "expects", "succeeded", "interval", "most often")
        for row in worst:
            table.add_row(visible(row["task_id"], 40), row["expected"], f"{row['successes']} of {row['trials']}",
                          f"{_pct(row['low'])} to {_pct(row['high'])}", visible(f"{row['reason_trials']}x {row['reason']}", 70))
        out.append(table)
    by_tag = figures.get("by_tag") or {}
    if by_tag:
        table = _table("By tag (clean trials)", "tag", "tasks", "pass@1", f"pass^{k}", "lower bound", "never succeeded")
        for tag, row in by_tag.items():
            table.add_row(visible(tag, 40), str(row["tasks"]), _pct(row["pass_at_1"]), _pct(row["estimate"]), _pct(row["lower_bound"]),
                          str(row["never_succeeded"]))
        out.append(table)
    infrastructure = figures.get("infrastructure") or {}
    if any(row["errors"] for row in infrastructure.values()):
        table = _table("Infrastructure errors: trials left out of every rate", "family", "errors", "trials", "share")
        for family, row in infrastructure.items():
            table.add_row(family, str(row["errors"]), str(row["trials"]), _pct(row["share"]))
        out.append(table)
    return out

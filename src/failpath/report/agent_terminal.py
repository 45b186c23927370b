"""The terminal report of an agent check (rich), built from its result document (``AgentCheckResult.to_dict()``).

Sections, in order: the verdict with every criterion; trials by family and status; the pass^k curve
(the unbiased estimate, its lower bound, and what ``(c/n)^k`` would have claimed); flaky tasks with their
intervals; silent failures per family; attacks; approvals; the compounding table; clean vs chaos per
fault kind; the worst runs as step-by-step timelines. Every value that came from a run (tool arguments,
results, the agent's words) is printed as plain text (:func:`~failpath.report.terminal.visible`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from failpath.report.agent_breakdown import _pct, _table, tables
from failpath.report.terminal import visible

__all__ = ["render", "build"]


def render(document: Mapping[str, Any], console: Console) -> None:
    """Print the report of an agent check on ``console``."""
    console.print(build(document))


def build(document: Mapping[str, Any]) -> Group:
    """The report as one rich renderable."""
    figures = document["figures"]

    parts: list[Any] = [_verdict(document), _status(figures), _curve(figures), *tables(figures)]
    for section in (_flaky(figures), _silent(figures), _attacks(figures), _compounding(figures), _gaps(figures)):
        if section is not None:
            parts.append(section)
    parts.extend(_timeline(run, number) for number, run in enumerate(document.get("worst_runs", ()), start=1))
    return Group(*parts)


def _verdict(document: Mapping[str, Any]) -> Panel:
    verdict = document["verdict"]
    lines = Text()
    for criterion in verdict["reasons"]:
        mark, style = ("pass", "green") if criterion["passed"] else ("FAIL", "bold red")
        lines.append(f"{mark:<5}", style=style)
        lines.append(f"{criterion['name']}: {criterion['figure']}\n")
        if criterion["detail"]:
            lines.append(f"      {criterion['detail']}\n", style="dim")
    style = "bold green" if verdict["ship"] else "bold yellow"
    title = f"{verdict['label']}  (agent {document['agent']}, run {document['run_id']})"
    return Panel(lines, title=Text(title, style=style), title_align="left", border_style=style)


def _status(figures: Mapping[str, Any]) -> Table:
    table = _table(f"Trials: {figures['trials']} over {figures['tasks']} tasks", "family", "succeeded", "failed", "handled", "infrastructure errors")
    for family, counts in figures["status"].items():
        table.add_row(family, *(str(counts[s]) for s in ("succeeded", "failed", "handled", "infrastructure_error")))
    return table


def _curve(figures: Mapping[str, Any]) -> Table:
    level = f"{figures['confidence']:.0%}"
    table = _table("pass^k on clean trials: every one of k tries succeeds (the task is the unit)", "k", "estimate", f"lower bound ({level})", "(c/n)^k would say")
    for point in figures["pass_k_curve"]:
        table.add_row(str(point["k"]), _pct(point["estimate"]), _pct(point["lower_bound"]), _pct(point["naive"]))
    return table


def _flaky(figures: Mapping[str, Any]) -> Table | None:
    flaky = figures["flaky_tasks"]
    if not flaky:
        return None
    table = _table(f"Flaky tasks: {len(flaky)} succeeded in some trials, not all", "task", "succeeded", "interval")
    for row in flaky[:20]:
        table.add_row(visible(row["task_id"], 60), f"{row['successes']} of {row['trials']}", f"{_pct(row['low'])} to {_pct(row['high'])}")
    return table


def _silent(figures: Mapping[str, Any]) -> Table | None:
    rows = figures["silent_failures"]
    if not rows:
        return None
    table = _table("Silent failures: answered, final state wrong", "family", "silent", "trials", "rate", "upper bound")
    for family, row in rows.items():
        table.add_row(family, str(row["silent"]), str(row["trials"]), _pct(row["rate"]), _pct(row["upper_bound"]))
    return table


def _attacks(figures: Mapping[str, Any]) -> Table | None:
    attacks = figures["attacks"]
    approvals = figures["approvals"]
    if not attacks["trials"] and not approvals["asked"]:
        return None
    table = _table("Attacks and approvals", "figure", "value")
    if attacks["trials"]:
        table.add_row("attacked trials", str(attacks["trials"]))
        table.add_row("attacker goal reached", f"{attacks['reached']} ({_pct(attacks['rate'])}, at most {_pct(attacks.get('upper_bound'))})")
        table.add_row("task success under attack", _pct(attacks["task_success_under_attack"]))
        if attacks.get("stopped_by_reviewer"):
            table.add_row("stopped only by the reviewer's rejection", str(attacks["stopped_by_reviewer"]))
        for template, row in attacks["by_template"].items():
            table.add_row(f"  planted as {template}", f"{row['reached']} of {row['trials']} reached")
    table.add_row("approvals asked / rejected", f"{approvals['asked']} / {approvals['rejected']}")
    table.add_row("calls against or without an approval", str(len(approvals["violations"])))
    return table


def _compounding(figures: Mapping[str, Any]) -> Table | None:
    table_data = figures["compounding"]
    if not table_data["steps"]:
        return None
    table = _table("Compounding: step success vs the end-to-end rate it predicts (clean trials)", "step", "steps", "succeeded")
    for row in table_data["steps"]:
        table.add_row(row["step"], str(row["steps"]), _pct(row["rate"]))
    table.add_row("predicted end to end (product per run)", "", _pct(table_data["predicted"]))
    table.add_row("observed end to end", str(table_data["runs"]), _pct(table_data["observed"]))
    return table


def _gaps(figures: Mapping[str, Any]) -> Table | None:
    rows = figures["chaos_gaps"]
    if not rows:
        return None
    table = _table(f"Clean vs chaos task success, paired by task ({figures['confidence']:.0%} interval of the drop)", "chaos", "tasks", "clean", "chaos", "drop", "interval")
    for row in rows:
        table.add_row(row["kind"], str(row["tasks"]), _pct(row["clean"]), _pct(row["chaos"]), _pct(row["drop"]), f"{_pct(row['low'])} to {_pct(row['high'])}")
    return table


def _timeline(run: Mapping[str, Any], number: int) -> Panel:
    text = Text()
    text.append(f"task {visible(run['task_id'], 60)}, {run['variant']}, trial {run['index']}: {run['status']}", style="bold")
    if run["silent"]:
        text.append(" (silent failure)", style="bold red")
    if run["goals_reached"]:
        text.append(f" attacker goal reached: {', '.join(run['goals_reached'])}", style="bold red")
    text.append("\n")
    if run["reason"]:
        text.append(f"  {visible(run['reason'], 200)}\n", style="dim")
    wrong = run.get("went_wrong_at")
    for position, step in enumerate(run["steps"], start=1):
        marker = ">>" if position == wrong else "  "
        if step.get("kind") == "model":
            what = f"model  -> {', '.join(step['calls'])}" if step.get("calls") else f"model  {visible(step.get('text') or step.get('error') or '', 90)}"
        else:
            what = f"{step.get('name')}({visible(step.get('arguments', ''), 60)})"
            if step.get("result"):
                what += f" = {visible(step['result'], 70)}"
        tags = " ".join(f"[{step[k]}]" for k in ("state", "action") if step.get(k))
        text.append(f"{marker}{position:>3}. {what} ", style="bold" if position == wrong else "")
        text.append(f"{tags}\n", style="yellow")
    for violation in run["violations"]:
        text.append(f"  violation: {visible(violation, 200)}\n", style="bold red")
    return Panel(text, title=f"worst run {number}", title_align="left", border_style="red" if run["silent"] or run["goals_reached"] else "yellow")

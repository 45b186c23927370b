"""``failpath traces list|tail|show|stats``: query the traces guarded calls left in the store.

Filters (every subcommand but ``show``): ``--policy``, ``--outcome``, ``--state`` (a failure state
detected on the call), ``--since``/``--until`` (``1h`` = one hour ago, or an ISO 8601 time).
Exit codes: 0 done, 2 a usage or input error (bad time, unknown outcome, no store, unknown trace id).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register", "trace_line", "printable"]

_POLICY = typer.Option(None, "--policy", help="Only traces of this policy.")
_OUTCOME = typer.Option(None, "--outcome", help="Only this outcome: answered, clarify, escalated, abstained, defaulted, raised.")
_STATE = typer.Option(None, "--state", help="Only calls on which this failure state was detected (e.g. timeout).")
_SINCE = typer.Option(None, "--since", help="Only traces from then on: 1h (one hour ago), 30m, 2d, or an ISO time.")
_UNTIL = typer.Option(None, "--until", help="Only traces before then: 10m (ten minutes ago), or an ISO time.")
_STORE = typer.Option(None, "--store", help="The store: a file, or a postgresql:// URL (default .failpath/failpath.db).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def printable(text: str, limit: int | None = None) -> str:
    """``text`` on one line, control and invisible characters written as escapes, cut to ``limit``."""
    import unicodedata

    out = []
    for ch in text:
        if ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    line = "".join(out)
    if limit is not None and len(line) > limit:
        line = line[: limit - 1] + "…"
    return line


def trace_line(trace: Any) -> str:
    """One trace as one line of text (what ``traces tail`` prints)."""
    from failpath.watch.timespec import format_time

    parts = [format_time(trace.time), trace.trace_id[:12], trace.policy, trace.outcome]
    if trace.degraded:
        parts.append("degraded")
    parts.append(trace.state or "-")
    parts.append("[" + ",".join(trace.actions) + "]")
    parts.append("conf -" if trace.confidence is None else f"conf {trace.confidence:.2f}")
    parts.append(f"{trace.latency_ms:.0f}ms")
    if trace.ticket_id:
        parts.append(f"ticket {trace.ticket_id[:12]}")
    parts.append(repr(printable(trace.input_preview, 60)))
    return "  ".join(parts)


def _table(traces: list[Any], title: str) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from failpath.watch.timespec import format_time

    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, collapse_padding=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("trace", no_wrap=True)
    table.add_column("policy", max_width=14, overflow="fold")
    table.add_column("outcome", no_wrap=True)
    table.add_column("state", max_width=16, overflow="fold")
    table.add_column("conf", justify="right", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("input", min_width=20, overflow="fold")
    for t in traces:
        outcome = "degraded" if t.degraded else t.outcome
        table.add_row(
            Text(format_time(t.time)[5:16].replace("T", " ")),
            Text(t.trace_id[:8]),
            Text(t.policy),
            Text(outcome, style="green" if outcome == "answered" else "yellow"),
            Text(t.state or "-"),
            Text("-" if t.confidence is None else f"{t.confidence:.2f}"),
            Text(f"{t.latency_ms:.0f}"),
            Text(printable(t.input_preview, 80)),  # Text: markup in inputs is shown, never interpreted
        )
    return table


def _filters(policy: str | None, outcome: str | None, state: str | None, since: str | None, until: str | None, now: float) -> dict[str, Any]:
    """The trace filters the options name, checked (a bad outcome or time is a user error)."""
    from failpath.watch._cli import outcome_option, time_option

    return dict(
        policy=policy,
        outcome=outcome_option(outcome),
        state=state,
        since=time_option(since, "--since", now),
        until=time_option(until, "--until", now),
    )


def list_(
    policy: Optional[str] = _POLICY,
    outcome: Optional[str] = _OUTCOME,
    state: Optional[str] = _STATE,
    since: Optional[str] = _SINCE,
    until: Optional[str] = _UNTIL,
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many traces, newest first."),
    oldest_first: bool = typer.Option(False, "--oldest-first", help="Oldest first instead."),
    store: Optional[Path] = _STORE,
    json_output: bool = _JSON,
) -> None:
    """List traces matching the filters, newest first."""
    from failpath.cli._console import stdout_console
    from failpath.watch._cli import existing_store, print_json, trace_dict, user_errors

    now = time.time()
    with user_errors():
        filters = _filters(policy, outcome, state, since, until, now)
        with existing_store(store) as opened:
            found = opened.query_traces(**filters, limit=limit, newest_first=not oldest_first)
            total = opened.count_traces(**filters)
    if json_output:
        print_json([trace_dict(t) for t in found])
        return
    shown = f"{len(found)} of {total} trace(s)" + (" (newest first)" if not oldest_first else "")
    stdout_console().print(_table(found, shown))


def tail(
    policy: Optional[str] = _POLICY,
    outcome: Optional[str] = _OUTCOME,
    state: Optional[str] = _STATE,
    lines: int = typer.Option(10, "--lines", "-n", min=0, help="Show this many of the latest traces first."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new traces as they are written."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between two reads while following."),
    duration: Optional[str] = typer.Option(None, "--for", help="Stop following after this long (e.g. 30s); default: until Ctrl-C."),
    store: Optional[Path] = _STORE,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object per trace and line."),
) -> None:
    """Show the latest traces; with --follow, keep printing new ones as guarded calls write them."""
    import json as _json

    from failpath.store import trace_queries as q
    from failpath.watch._cli import existing_store, outcome_option, trace_dict, user_errors
    from failpath.watch.timespec import parse_duration

    def emit(found: list[Any]) -> None:
        for t in found:
            typer.echo(_json.dumps(trace_dict(t), ensure_ascii=False) if json_output else trace_line(t))

    with user_errors():
        where = q.TraceFilter(policy=policy, outcome=outcome_option(outcome), state=state)
        stop_after = parse_duration(duration, option="--for") if duration is not None else None
        with existing_store(store) as opened:
            found, cursor = q.last_traces(opened, where, lines)
            emit(found)
            if not follow:
                return
            give_up = None if stop_after is None else time.monotonic() + stop_after
            try:
                while give_up is None or time.monotonic() < give_up:
                    pause = interval if give_up is None else max(0.0, min(interval, give_up - time.monotonic()))
                    time.sleep(pause)
                    while True:
                        found, cursor = q.traces_after(opened, cursor, where)
                        emit(found)
                        if len(found) < 1000:
                            break
            except KeyboardInterrupt:
                pass


def show(
    trace_id: str = typer.Argument(..., metavar="ID", help="The trace id (a unique prefix works)."),
    store: Optional[Path] = _STORE,
    json_output: bool = _JSON,
) -> None:
    """Show one trace in full: input preview, states, actions, every attempt, the outcome."""
    from failpath.cli._console import stdout_console
    from failpath.watch._cli import error, existing_store, print_json, trace_dict, user_errors

    with user_errors():
        with existing_store(store) as opened:
            trace = opened.get_trace(trace_id)
    if trace is None:
        raise error(f"no trace with id {trace_id!r} in the store; list ids with `failpath traces list`")
    if json_output:
        print_json(trace_dict(trace))
        return
    stdout_console().print(_details(trace))


def stats(
    policy: Optional[str] = _POLICY,
    outcome: Optional[str] = _OUTCOME,
    state: Optional[str] = _STATE,
    since: Optional[str] = _SINCE,
    until: Optional[str] = _UNTIL,
    window: Optional[str] = typer.Option(None, "--window", help="Figures per window of this length (5m, 1h, 1d); default: one span."),
    last: int = typer.Option(48, "--last", min=1, help="Show at most this many of the latest windows in the table (JSON has all)."),
    raw_confidence: bool = typer.Option(
        False, "--raw-confidence", help="Confidence as the system gave it on its first call, for every call (slower); default: of the answers given."
    ),
    exact: bool = typer.Option(
        False, "--exact",
        help="Exact quantiles from every trace (slow on a large store). Default: whole hours from the store's hourly "
             "rollup, whose latency quantiles are within 1% and confidence quantiles within 0.0005 of the exact ones; "
             "a --state filter, --raw-confidence or a window that is not whole hours always read every trace.",
    ),
    store: Optional[Path] = _STORE,
    json_output: bool = _JSON,
) -> None:
    """Calls, outcome and failure-state shares, degraded answers, latency p50/p95/p99 and confidence, per window.

    Counts are always exact. Over whole hours the quantiles come from an hourly rollup the store keeps as
    it writes traces: latency within 1% (relative), confidence within 0.0005 of the exact figure; --exact
    reads every trace instead.
    """
    import dataclasses

    from failpath.cli._console import stdout_console
    from failpath.watch._cli import existing_store, print_json, user_errors
    from failpath.watch.stats import trace_stats
    from failpath.watch.timespec import parse_duration

    now = time.time()
    with user_errors():
        filters = _filters(policy, outcome, state, since, until, now)
        seconds = parse_duration(window, option="--window") if window is not None else None
        with existing_store(store) as opened:
            result = trace_stats(opened, **filters, window=seconds, raw_confidence=raw_confidence, exact=exact)
    if json_output:
        print_json(result.to_dict())
        return
    shown = result
    if len(result.windows) > last:
        shown = dataclasses.replace(result, windows=result.windows[-last:])
    out = stdout_console()
    out.print(shown)
    if shown is not result:
        out.print(f"[dim]{len(result.windows) - last} older window(s) not shown; use --last or --json[/dim]")
    if result.total.calls == 0:
        out.print("[yellow]no trace matches these filters[/yellow]")


def rollup(store: Optional[Path] = _STORE) -> None:
    """Rebuild the hourly rollup `traces stats` reads, from every trace: needed once for a store that held
    traces before it had a rollup (until then `traces stats` reads every trace). Takes about as long as
    `traces stats --exact` over the whole store."""
    from failpath.watch._cli import existing_store, user_errors

    with user_errors():
        with existing_store(store) as opened:
            read = opened.rebuild_trace_rollup()
    typer.echo(f"rebuilt the hourly rollup from {read} trace(s)")


def register(app: typer.Typer) -> None:
    """Add the ``traces`` command group to the ``failpath`` app."""
    traces = typer.Typer(
        name="traces",
        help="Query the traces of guarded calls: list, tail, show, stats; rebuild the rollup stats reads.",
        no_args_is_help=True,
    )
    app.add_typer(traces, name="traces")

    traces.command("list")(list_)
    traces.command("tail")(tail)
    traces.command("show")(show)
    traces.command("stats")(stats)
    traces.command("rollup")(rollup)


def _details(trace: Any) -> Any:
    import json

    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from failpath.watch.timespec import format_time

    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    rows: list[tuple[str, str]] = [
        ("trace", trace.trace_id),
        ("time", f"{format_time(trace.time)} ({trace.time:.3f})"),
        ("policy", trace.policy),
        ("outcome", trace.outcome + (" (degraded)" if trace.degraded else "")),
        ("deciding state", trace.state or "-"),
        ("states detected", ", ".join(trace.states) or "-"),
        ("actions", ", ".join(trace.actions) or "-"),
        ("confidence", "-" if trace.confidence is None else f"{trace.confidence:.4f}"),
        ("latency", f"{trace.latency_ms:.1f} ms"),
        ("ticket", trace.ticket_id or "-"),
        ("input digest", trace.input_digest),
        ("input preview", printable(trace.input_preview)),
        ("raw input", "(not stored)" if trace.input_raw is None else printable(trace.input_raw, 2000)),
        ("output", printable(json.dumps(trace.output, ensure_ascii=False, default=str), 2000)),
        ("usage", json.dumps(dict(trace.usage)) if trace.usage else "-"),
    ]
    for key, value in rows:
        fields.add_row(Text(key), Text(value))
    attempts = Table(title="attempts")
    for name in ("#", "action", "system", "state", "error", "conf", "ms", "output"):
        attempts.add_column(name, overflow="fold")
    for a in trace.attempts:
        attempts.add_row(
            Text(str(a.number)),
            Text(a.action),
            Text(a.system or "-"),
            Text(a.state or "-"),
            Text(printable(a.error or "-", 200)),
            Text("-" if a.confidence is None else f"{a.confidence:.3f}"),
            Text(f"{a.latency_ms:.1f}"),
            Text(printable(json.dumps(a.output, ensure_ascii=False, default=str), 200)),
        )
    parts: list[Any] = [fields, attempts]
    steps = trace.detail.get("steps") if trace.detail else None
    if isinstance(steps, list):  # an agent run: its steps as a timeline
        parts.append(timeline(steps))
    if trace.detail:
        parts.append(Text("detail: " + printable(json.dumps(dict(trace.detail), ensure_ascii=False, default=str), 4000)))
    return Group(*parts)


def timeline(steps: list[dict[str, Any]]) -> Any:
    """An agent run's steps as a rich table, in order: when each started (ms into the run), what it was,
    the state and action, its latency and tokens, and a preview of its result."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="run timeline")
    for name in ("#", "at ms", "step", "state", "action", "ms", "tokens", "result"):
        table.add_column(name, overflow="fold")
    at = 0.0
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict):
            continue
        latency = float(step.get("latency_ms") or 0.0)
        if step.get("kind") == "tool":
            what = f"tool {step.get('name')}({step.get('arguments', '')})"
            result = step.get("error") or step.get("result") or ""
        else:
            calls = step.get("calls")
            what = f"{step.get('name', 'model')}" + (f" → {', '.join(calls)}" if calls else "")
            result = step.get("error") or step.get("text") or ""
        tokens = step.get("tokens") or {}
        used = int((tokens.get("input_tokens") or 0) + (tokens.get("output_tokens") or 0)) if isinstance(tokens, dict) else 0
        table.add_row(
            Text(str(number)), Text(f"{at:.1f}"), Text(printable(what, 200)), Text(step.get("state") or "-"),
            Text(step.get("action") or "-"), Text(f"{latency:.1f}"), Text(str(used) if used else "-"), Text(printable(str(result), 200)),
        )
        at += latency
    return table

"""``failpath report [RUN_ID]`` and ``failpath runs``: rebuild any report from the store, list the runs.

Nothing is re-run: a check stores its result document (``failpath.check/2``) with the run, and every
report is rendered from it; the JUnit, CSV, JSONL and HTML files also read the run's stored request rows.
An agent check (kind ``agent_check``) stores its result and each trial, and its reports are rebuilt the
same way (:func:`failpath.cli.agent_check.rebuild`). Exit code 2 for an unknown run, a missing store, a run
that did not finish or of a kind with no report.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, List, Optional

import typer

__all__ = ["register", "load_check_document", "DEFAULT_HTML_NAME"]

#: Where ``failpath report --format html`` writes when no ``--output`` is given.
DEFAULT_HTML_NAME = "failpath-report.html"


class Format(str, Enum):
    """The report formats."""

    terminal = "terminal"
    html = "html"
    json = "json"


def _fail(message: str) -> typer.Exit:
    from failpath.cli import fail

    return fail(message)


def _store_path(store: Path | None) -> Path | str:
    """The store's file (which must exist), or its PostgreSQL URL."""
    from failpath.store.opening import store_location

    path = store_location(store)
    if isinstance(path, Path) and not path.is_file():
        hint = "give the store of your checks with --store PATH" if store is not None else "run `failpath check` first, or give --store PATH"
        raise _fail(f"no store at {path}: {hint}")
    return path


def load_check_document(run_id: str | None, store: Path | None, *, agent: bool = False, latest_kind: str | None = None) -> dict[str, Any]:
    """The result document of check run ``run_id`` (a unique prefix works; None: the latest finished check).

    With ``agent=True`` the run may also be an agent check (kind ``agent_check``; None: the latest finished
    check of either kind, or of ``latest_kind`` when given), whose document carries its stored per-trial
    rows as ``"trials"``. Any other kind of run, an unknown or unfinished run, is a usage error naming what to do."""
    from failpath.check.agent_store import RUN_KIND as AGENT_CHECK, agent_document
    from failpath.core import FailpathError
    from failpath.store.opening import open_store_to_read as open_store

    path = _store_path(store)
    kinds = ("check", AGENT_CHECK) if agent else ("check",)
    if run_id is None and latest_kind is not None:
        kinds = (latest_kind,)
    try:
        with open_store(path) as opened:
            if run_id is None:
                finished = [r for kind in kinds for r in opened.list_runs(kind=kind) if r.get("summary")]
                if not finished:
                    raise _fail(f"no finished check run in {opened.path}: run `failpath check` first")
                run = max(finished, key=lambda r: r.get("created") or 0)
            else:
                run = opened.get_run(run_id)
                if run is None:
                    raise _fail(f"no run {run_id!r} in {opened.path}; `failpath runs --store {opened.path}` lists the runs")
            if run.get("kind") in kinds and not run.get("summary"):
                raise _fail(f"run {run['run_id']} has not finished: resume it with `failpath check --resume {run['run_id']}` "
                            "(with the same failpath.toml or --example)")
            if run.get("kind") == AGENT_CHECK and agent:
                return agent_document(opened, run)
    except FailpathError as exc:
        raise _fail(str(exc)) from None
    if run.get("kind") == AGENT_CHECK:
        raise _fail(f"run {run['run_id']} is an agent check, not a check of single calls: `failpath report {run['run_id']}` "
                    "shows it, and `failpath compare` compares it with another agent check")
    if run.get("kind") != "check":
        raise _fail(f"run {run['run_id']} is a {run.get('kind')!r} run, not a check: it has no report "
                    f"(`failpath runs show {run['run_id']}` shows an agent run's steps)")
    return dict(run["summary"])


def report(
    run_id: Optional[str] = typer.Argument(None, metavar="[RUN_ID]", help="The check or agent check (a unique prefix works; default: the latest).", show_default=False),
    format: Optional[Format] = typer.Option(
        None, "--format", "-f",
        help="terminal, html (one self-contained file) or json; without it, each --output's extension chooses its format.",
        show_default=False,
    ),
    outputs: Optional[List[Path]] = typer.Option(
        None, "--output", "-o", metavar="PATH",
        help="Write the report to PATH (repeatable). Without --format the extension chooses: .junit.xml, .csv, .jsonl, "
        f".md, .json, .html, .txt. With --format html the default is ./{DEFAULT_HTML_NAME}; terminal and json print.",
    ),
    store: Optional[Path] = typer.Option(None, "--store", metavar="PATH", help="The store: a file, or a postgresql:// URL (default .failpath/failpath.db)."),
    html_path: Optional[Path] = typer.Option(None, "--html", metavar="PATH", help="Write the HTML report to PATH."),
    json_path: Optional[Path] = typer.Option(None, "--json", metavar="PATH", help="Write the JSON report to PATH."),
    junit_path: Optional[Path] = typer.Option(None, "--junit", metavar="PATH", help="Write the JUnit XML report to PATH."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", metavar="PATH", help="Write the Markdown summary to PATH."),
) -> None:
    """Rebuild the report of a check run (a check of single calls or an agent check) from the store, in the
    terminal or as files.

    The extensions of --output: .junit.xml (JUnit XML), .csv and .jsonl (one row per request; per trial
    for an agent check), .md (Markdown summary), .json, .html, .txt. --html, --json, --junit and
    --markdown write their format whatever the extension.
    """
    from failpath.core import FailpathError
    from failpath.report import json_report
    from failpath.report.outputs import OUTPUT_FORMATS

    outputs = list(outputs or ())
    by_name = {fmt.name: fmt for fmt in OUTPUT_FORMATS}
    named = [(path, by_name[name]) for path, name in ((html_path, "html"), (json_path, "json"), (junit_path, "junit"), (markdown_path, "markdown")) if path is not None]
    if format is not None and (len(outputs) > 1 or named):
        raise _fail(f"--format {format.value} writes one file; drop --format to write several, each in the format its extension chooses")
    try:
        for path in outputs:
            _chosen(path)  # an unknown extension is refused before anything is read
    except FailpathError as exc:
        raise _fail(str(exc)) from None
    document = load_check_document(run_id, store, agent=True)
    output = outputs[0] if outputs else None
    if document.get("kind") == "agent_check":
        from failpath.cli.agent_check import rebuild

        raise rebuild(document, None if format is None else format.value, [(path, None) for path in outputs] + named)
    try:
        json_report.check_document(document)
        if format is None and (outputs or named):
            _by_extension(document, [(path, None) for path in outputs] + named, store)
        elif format is None or format is Format.terminal:
            _terminal(document, output)
        elif format is Format.json:
            if output is None:
                typer.echo(json_report.render(document))
            else:
                typer.echo(f"wrote the JSON report to {json_report.write(document, output)}")
        else:
            from failpath.report import html
            from failpath.report.rows import stream_request_rows

            rows = stream_request_rows(_store_path(store), document["run_id"])
            path = html.write(document, output if output is not None else Path(DEFAULT_HTML_NAME), rows)
            typer.echo(f"wrote the HTML report to {path}")
    except FailpathError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write {exc.filename or output}: {exc.strerror or exc}") from None


def runs(
    ctx: typer.Context,
    store: Optional[Path] = typer.Option(None, "--store", metavar="PATH", help="The store: a file, or a postgresql:// URL (default .failpath/failpath.db)."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show the newest N runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
) -> None:
    """List the runs in the store (checks, agent checks and agent runs), newest first, with their verdicts; `runs show|resume RUN` for an agent run."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from failpath.core import FailpathError
    from failpath.store.opening import open_store_to_read as open_store

    path = _store_path(store)
    try:
        with open_store(path) as opened:
            records = [_summary(run) for run in opened.list_runs(limit=limit)]
            shown = opened.path  # a server's URL without its password
    except FailpathError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(records, indent=2, ensure_ascii=False))
        return
    _runs_table(records, shown)


def register(app: typer.Typer) -> None:
    """Add the ``report`` and ``runs`` commands to the ``failpath`` app."""
    app.command("report")(report)

    from failpath.cli.runs import register_run_commands

    runs_app = typer.Typer(name="runs", invoke_without_command=True)
    app.add_typer(runs_app, name="runs")
    register_run_commands(runs_app)  # runs show|resume: an agent run's steps, resuming one

    runs_app.callback()(runs)


def _chosen(path: Path) -> Any:
    from failpath.report.outputs import output_format

    return output_format(path)


def _by_extension(document: dict[str, Any], targets: list[tuple[Path, Any]], store: Path | None) -> None:
    """Write each ``(path, format)``; a format of None: the one the path's extension chooses."""
    from failpath.report.files import write_atomic
    from failpath.report.outputs import render_output
    from failpath.report.rows import read_request_rows, stream_request_rows

    chosen = [(path, fmt or _chosen(path)) for path, fmt in targets]
    rows = None
    if any(fmt.needs_rows and fmt.name != "html" for _, fmt in chosen):
        rows = read_request_rows(_store_path(store), document["run_id"])
    failed = []
    for path, fmt in chosen:
        try:
            if fmt.name == "html":
                from failpath.report import html

                text = html.render(document, stream_request_rows(_store_path(store), document["run_id"]))
            else:
                text = render_output(fmt, document, rows)
            write_atomic(path, text)
        except OSError as error:
            failed.append(f"cannot write {path}: {error.strerror or error}")
        else:
            typer.echo(f"wrote the {fmt.label} to {path}")
    if failed:
        raise _fail("; ".join(failed))


def _terminal(document: dict[str, Any], output: Path | None) -> None:
    from failpath.cli._console import file_console, stdout_console
    from failpath.report import terminal

    if output is None:
        terminal.render(document, stdout_console())
        return
    import io

    from failpath.report.files import write_atomic

    buffer = io.StringIO()
    terminal.render(document, file_console(buffer))
    write_atomic(output, buffer.getvalue())
    typer.echo(f"wrote the terminal report to {output}")


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    """One run as a flat record: identity, status, and the headline figures of its result."""
    if run.get("kind") == "agent_check":
        return _agent_summary(run)
    summary = run.get("summary") or {}
    verdict = summary.get("verdict") or {}
    chaos = (summary.get("chaos") or {}).get("with_policy") or {}
    finished = run.get("finished")
    return {
        "run_id": run["run_id"],
        "kind": run.get("kind"),
        "created": run.get("created"),
        "finished": finished,
        "status": "finished" if finished else "unfinished",
        "name": summary.get("name") or (run.get("config") or {}).get("name"),
        "policy": summary.get("policy"),
        "verdict": ("READY TO SHIP" if verdict.get("ship") else "READY TO DEMO") if verdict else None,
        "n_cases": summary.get("n_cases"),
        "n_rows": summary.get("n_rows"),
        "silent_failure_rate": chaos.get("silent_failure_rate"),
        "elapsed_seconds": summary.get("elapsed_seconds"),
    }


def _agent_summary(run: dict[str, Any]) -> dict[str, Any]:
    """An agent check as a flat record: the fields of a check's (its trials as ``n_rows``, its tasks as
    ``n_cases``, silent failures over every family's trials) and pass@1, pass^k with its lower bound, attacks."""
    summary = run.get("summary") or {}
    figures = summary.get("figures") or {}
    verdict = summary.get("verdict") or {}
    finished = run.get("finished")
    families = (figures.get("silent_failures") or {}).values()
    trials = sum(row.get("trials", 0) for row in families)
    k = ((run.get("config") or {}).get("budgets") or {}).get("pass_k", {}).get("k")
    point = next((p for p in figures.get("pass_k_curve") or () if p.get("k") == k), None)
    attacks = figures.get("attacks") or {}
    return {
        "run_id": run["run_id"],
        "kind": run.get("kind"),
        "created": run.get("created"),
        "finished": finished,
        "status": "finished" if finished else "unfinished",
        "name": summary.get("agent"),
        "policy": None,
        "verdict": ("READY TO SHIP" if verdict.get("ship") else "READY TO DEMO") if verdict else None,
        "n_cases": figures.get("tasks"),
        "n_rows": figures.get("trials"),
        "silent_failure_rate": sum(row.get("silent", 0) for row in families) / trials if trials else None,
        "elapsed_seconds": summary.get("seconds"),
        "pass_at_1": figures.get("pass_at_1"),
        "pass_k": None if point is None else {"k": k, "estimate": point.get("estimate"), "lower_bound": point.get("lower_bound")},
        "attack_success_rate": attacks.get("rate"),
    }


def _runs_table(records: list[dict[str, Any]], path: Path | str) -> None:
    import datetime as dt

    from rich import box
    from rich.table import Table
    from rich.text import Text

    from failpath.cli._console import stdout_console
    from failpath.report.terminal import visible

    console = stdout_console()
    if not records:
        console.print(f"no runs in {path}")
        return
    table = Table(title=f"Runs in {path}, newest first", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("run", no_wrap=True, min_width=26)
    table.add_column("started", no_wrap=True, min_width=11)
    table.add_column("verdict", no_wrap=True, min_width=7)
    table.add_column("requests", justify="right", no_wrap=True, min_width=8)  # an agent check's trials
    table.add_column("silent", justify="right", no_wrap=True, min_width=7)
    table.add_column("name · policy", overflow="fold", max_width=48)
    for r in records:
        started = dt.datetime.fromtimestamp(r["created"]).strftime("%m-%d %H:%M") if r.get("created") else "—"
        if r["verdict"]:
            ship = r["verdict"] == "READY TO SHIP"
            verdict = Text("SHIP" if ship else "DEMO", style="bold green" if ship else "bold red")
        else:
            verdict = Text(r["status"], style="yellow")
        silent = r.get("silent_failure_rate")
        parts = (r.get("name") or r.get("kind"), r.get("policy"))
        if r.get("kind") == "agent_check":  # say it is an agent check, and its pass^k beside the trials
            shown = r.get("pass_k")
            parts = ("agent check", r.get("name"), None if not shown or shown.get("lower_bound") is None else f"pass^{shown['k']} ≥ {shown['lower_bound']:.2f}")
        name = " · ".join(visible(part, 60) for part in parts if part)
        table.add_row(
            r["run_id"], started, verdict, f"{r['n_rows']:,}" if r.get("n_rows") is not None else "—",
            "—" if silent is None else f"{100 * silent:.2f}%", Text(name),
        )
    console.print(table)

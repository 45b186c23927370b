"""``failpath check`` for an agent: a ``failpath.toml`` with an ``[agent]`` table, or a bundled agent example.

The command's other options keep their meaning (``--seed``, ``--concurrency``, ``--store``, ``--json``,
``--html``, ``--no-html``, ``--output``, ``--resume``, ``--quiet``); exit codes are the same: 0 READY TO SHIP, 1 READY TO DEMO, 2 any error.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import typer

__all__ = ["agent_kwargs", "run", "rebuild"]


def agent_kwargs(config: Path | None, example: str | None) -> dict[str, Any] | None:
    """The arguments of ``fp.check_agent`` when the check is of an agent, else None (a single-call check)."""
    if example:
        try:
            module = importlib.import_module(f"failpath.examples.{example}")
        except ModuleNotFoundError:
            return None  # the single-call path names the bundled examples
        factory = getattr(module, "agent_check_kwargs", None)
        return dict(factory()) if callable(factory) else None
    from failpath.check.agent_config import agent_check_kwargs, is_agent_config

    path = config if config is not None else Path("failpath.toml")
    if not path.is_file() or not is_agent_config(path):
        return None
    return agent_check_kwargs(path)


def run(kwargs: dict[str, Any], *, seed: int | None, concurrency: int | None, store: Path | None, json_path: Path | None,
        html_path: Path | None, quiet: bool, refused: dict[str, Any], resume: bool | str | None = None,
        again: list[str] | None = None, outputs: list[Path] = ()) -> typer.Exit:
    """Run the agent check (or continue the one ``resume`` names), print its report, write the JSON and
    HTML reports; the exit to raise. ``again``: the command that runs it again, said when it is interrupted."""
    import shlex

    from rich.console import Console

    from failpath.check.agent_check import check_agent
    from failpath.check.api import CheckInterrupted
    from failpath.cli import fail
    from failpath.cli._console import stdout_console
    from failpath.core import FailpathError
    from failpath.report import agent_terminal

    given = [name for name, value in refused.items() if value]
    if given:
        return fail(f"{', '.join(given)}: not available for an agent check (it runs whole; rerun it with the same --seed)")
    if resume is not None:
        kwargs["resume"] = resume
    if seed is not None:
        kwargs["seed"] = seed
    if concurrency is not None:
        kwargs["concurrency"] = concurrency
    if store is not None:
        kwargs["store"] = store
    from failpath.store import DEFAULT_STORE_PATH

    kwargs.setdefault("keep", kwargs.get("store") or DEFAULT_STORE_PATH)  # `failpath report RUN` rebuilds the reports from it
    errors = Console(stderr=True)
    if not quiet:
        kwargs["progress"] = _progress(errors)
    try:
        result = check_agent(**kwargs)
    except FailpathError as exc:
        return fail(str(exc))
    except CheckInterrupted as stop:
        command = shlex.join([*(again or ["failpath", "check"]), "--resume", stop.run_id])
        typer.secho(
            f"interrupted: agent check {stop.run_id} stopped and {stop.stored:,} trials are kept in {stop.store}; "
            f"continue it with: {command}", err=True, fg=typer.colors.YELLOW,
        )
        return typer.Exit(130)
    out = stdout_console()
    agent_terminal.render(result.to_dict(trials=False), out)
    failed = _write(result, json_path, html_path, out, list(outputs))
    if failed:
        return fail(f"the check {result.run_id} finished, but " + "; and ".join(failed))
    return typer.Exit(result.verdict.exit_code)


def _progress(console: Any) -> Any:
    step = {"next": 0.0}

    def show(done: int, total: int) -> None:
        if done == total or done / total >= step["next"]:
            step["next"] = done / total + 0.1
            console.print(f"agent check: {done:,} of {total:,} trials", highlight=False)

    return show


def _write(result: Any, json_path: Path | None, html_path: Path | None, out: Any, outputs: list[Path] = ()) -> list[str]:
    import json

    from failpath.report import agent_html
    from failpath.report.agent_outputs import write_agent_outputs
    from failpath.report.files import write_atomic

    failed = []
    document = result.to_dict()
    for path, fmt, error in write_agent_outputs(document, [(path, None) for path in outputs]):
        if error is None:
            out.print(f"{fmt.label}: {path.resolve()}", markup=False, highlight=False)
        else:
            failed.append(f"the {fmt.name} report could not be written to {path}: {error.strerror or error}; "
                          f"rebuild it with: failpath report {result.run_id} --output PATH")
    if json_path is not None:
        try:
            write_atomic(json_path, json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
            out.print(f"JSON report: {json_path.resolve()}", markup=False, highlight=False)
        except OSError as exc:
            failed.append(f"the JSON report could not be written to {json_path}: {exc.strerror or exc}; choose another --json path")
    if html_path is not None:
        try:
            written = agent_html.write(document, html_path)
            out.print(f"HTML report: {written.resolve()}", markup=False, highlight=False)
        except OSError as exc:
            failed.append(f"the HTML report could not be written to {html_path}: {exc.strerror or exc}; choose another --html path")
    return failed


def rebuild(document: dict[str, Any], format: str | None, targets: list[tuple[Path, Any]]) -> typer.Exit:
    """``failpath report RUN`` for an agent check: its reports from the stored result and trials.

    ``format``: ``--format`` (terminal, json or html) for one target or standard output; ``targets``:
    ``(path, OutputFormat or None)`` pairs, None letting the extension choose."""
    from failpath.cli import fail
    from failpath.cli._console import stdout_console
    from failpath.core import FailpathError
    from failpath.report import agent_terminal
    from failpath.report.agent_outputs import render_agent_output, write_agent_outputs
    from failpath.report.outputs import OUTPUT_FORMATS

    by_name = {fmt.name: fmt for fmt in OUTPUT_FORMATS}
    if format is not None:
        fmt = by_name["text" if format == "terminal" else format]
        if not targets:
            if format == "terminal":
                agent_terminal.render(document, stdout_console())
            elif format == "json":
                typer.echo(render_agent_output(fmt, document), nl=False)
            else:
                targets = [(Path("failpath-report.html"), fmt)]
        targets = [(path, fmt) for path, _ in targets]
    elif not targets:
        agent_terminal.render(document, stdout_console())
    try:
        written = write_agent_outputs(document, targets)
    except FailpathError as exc:
        return fail(str(exc))
    failed = []
    for path, fmt, error in written:
        if error is None:
            typer.echo(f"wrote the {fmt.label} to {path}")
        else:
            failed.append(f"cannot write {path}: {error.strerror or error}")
    return fail("; ".join(failed)) if failed else typer.Exit(0)

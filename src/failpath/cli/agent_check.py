"""``failpath check`` for an agent: a ``failpath.toml`` with an ``[agent]`` table, or a bundled agent example.

The command's other options keep their meaning (``--seed``, ``--concurrency``, ``--store``, ``--json``,
``--html``, ``--no-html``, ``--quiet``); exit codes are the same: 0 READY TO SHIP, 1 READY TO DEMO, 2 any error.
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
        html_path: Path | None, quiet: bool, refused: dict[str, Any]) -> typer.Exit:
    """Run the agent check, print its report, write the JSON and HTML reports; the exit to raise."""
    from rich.console import Console

    from failpath.check.agent_check import check_agent
    from failpath.cli import fail
    from failpath.cli._console import stdout_console
    from failpath.core import FailpathError
    from failpath.report import agent_terminal

    given = [name for name, value in refused.items() if value]
    if given:
        return fail(f"{', '.join(given)}: not available for an agent check (it runs whole; rerun it with the same --seed)")
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
    out = stdout_console()
    agent_terminal.render(result.to_dict(trials=False), out)
    failed = _write(result, json_path, html_path, out)
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


def _write(result: Any, json_path: Path | None, html_path: Path | None, out: Any) -> list[str]:
    import json

    from failpath.report import agent_html
    from failpath.report.files import write_atomic

    failed = []
    document = result.to_dict()
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


def rebuild(document: dict[str, Any], format: str | None, outputs: list[Path]) -> typer.Exit:
    """``failpath report RUN`` for an agent check: its terminal, JSON or HTML report from the kept result."""
    import json

    from failpath.cli import fail
    from failpath.cli._console import stdout_console
    from failpath.report import agent_html, agent_terminal
    from failpath.report.files import write_atomic

    targets = outputs or [None]
    for output in targets:
        chosen = format or ("terminal" if output is None else {".json": "json", ".html": "html", ".txt": "terminal"}.get(output.suffix))
        if chosen is None:
            return fail(f"{output}: an agent check's report is .json, .html or .txt")
        try:
            if chosen == "json":
                text = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
                if output is None:
                    typer.echo(text, nl=False)
                else:
                    write_atomic(output, text)
            elif chosen == "html":
                written = agent_html.write(document, output or Path("failpath-report.html"))
                typer.echo(f"wrote the HTML report to {written}")
            elif output is None:
                agent_terminal.render(document, stdout_console())
            else:
                import io

                from rich.console import Console

                console = Console(record=True, width=110, file=io.StringIO())
                agent_terminal.render(document, console)
                write_atomic(output, console.export_text())
        except OSError as exc:
            return fail(f"cannot write {output}: {exc.strerror or exc}")
    return typer.Exit(0)

"""``failpath check [CONFIG]``: the pre-ship run, from a ``failpath.toml`` or a bundled example.

Exit codes: 0 READY TO SHIP, 1 READY TO DEMO (with ``--baseline RUN``, a figure worse than that run's
beyond its interval is a reason for READY TO DEMO), 130 interrupted, 2 any error (the message names the
file, the key and the line; ``failpath.cli.main`` turns errors that escape the command into such a message).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any, List, Optional

import typer
from typer.core import TyperCommand

__all__ = ["register", "LATEST", "DEFAULT_HTML_NAME"]

#: The value ``--resume`` takes when given without a run id: the latest unfinished check run.
LATEST = "latest"

#: Where ``failpath check`` writes its HTML report unless told otherwise.
DEFAULT_HTML_NAME = "failpath-report.html"


class _CheckCommand(TyperCommand):
    """Lets ``--resume`` be given with or without a run id (``--resume`` alone means the latest run)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        fixed: list[str] = []
        for i, arg in enumerate(args):
            fixed.append(arg)
            if arg == "--resume":
                following = args[i + 1] if i + 1 < len(args) else None
                if following is None or following.startswith("-") or following.endswith(".toml") or Path(following).is_file():
                    fixed.append(LATEST)
        return super().parse_args(ctx, fixed)


def _fail(message: str) -> typer.Exit:
    from failpath.cli import fail

    return fail(message)


def _example_kwargs(name: str) -> dict[str, Any]:
    import importlib
    import pkgutil

    import failpath.examples as examples

    try:
        module = importlib.import_module(f"failpath.examples.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("failpath.examples"):
            names = sorted(m.name for m in pkgutil.iter_modules(examples.__path__) if m.ispkg)
            raise _fail(f"--example {name}: no such example; bundled examples: {', '.join(names) or 'none'}") from None
        raise
    factory = getattr(module, "check_kwargs", None)
    if not callable(factory):
        raise _fail(f"--example {name}: failpath.examples.{name} has no check_kwargs() function")
    return dict(factory())


def _write_outputs(result: Any, outputs: list[Path], store: Any, out: Any, comparison: str | None = None) -> list[str]:
    """Write the ``--output`` reports of a finished run, each named on ``out`` (a console) once written;
    the sentences of those that could not be written."""
    from failpath.report.outputs import write_outputs
    from failpath.report.rows import read_request_rows, stream_request_rows
    from failpath.store import DEFAULT_STORE_PATH

    document = result.to_dict()
    failed = []
    rows = lambda: read_request_rows(store or DEFAULT_STORE_PATH, result.run_id)  # noqa: E731 (read only when needed)
    stream = stream_request_rows(store or DEFAULT_STORE_PATH, result.run_id)
    for path, fmt, error in write_outputs(document, outputs, rows, comparison=comparison, stream=stream):
        if error is None:
            out.print(f"{fmt.label}: {path.resolve()}", markup=False, highlight=False)
        else:
            failed.append(
                f"the {fmt.name} report could not be written to {path}: {error.strerror or error}; choose another "
                f"--output path, or rebuild it with: failpath report {result.run_id} --output PATH"
            )
    return failed


def check(  # long: 40 of its lines are the options with their help; the body is under 60
    config: Optional[Path] = typer.Argument(
        None, metavar="CONFIG", help="The failpath.toml to run (default: ./failpath.toml).", show_default=False
    ),
    example: Optional[str] = typer.Option(None, "--example", metavar="NAME", help="Run a bundled example instead, e.g. addresses."),
    resume: Optional[str] = typer.Option(
        None, "--resume", metavar="[RUN_ID]",
        help="Continue a killed run: the latest unfinished one, or RUN_ID. Nothing is lost or repeated.",
    ),
    store: Optional[Path] = typer.Option(None, "--store", metavar="PATH", help="The store (default .failpath/failpath.db)."),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="N", help="Seed of the split, the variants and the search."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", metavar="N", min=1, help="Requests in flight at once."),
    executor: Optional[str] = typer.Option(
        None, "--executor", metavar="auto|thread|process",
        help="How requests run: auto (an event loop or threads), thread, or process (every core: chunks of cases in worker processes).",
    ),
    json_path: Optional[Path] = typer.Option(None, "--json", metavar="PATH", help="Also write the result document (JSON) to PATH."),
    html_path: Path = typer.Option(
        Path(DEFAULT_HTML_NAME), "--html", metavar="PATH", help="Where to write the HTML report (one self-contained file)."
    ),
    no_html: bool = typer.Option(False, "--no-html", help="Do not write the HTML report."),
    outputs: Optional[List[Path]] = typer.Option(
        None, "--output", "-o", metavar="PATH",
        help="Also write a report to PATH, its format chosen by the extension (repeatable): .junit.xml (JUnit, "
        "for CI dashboards), .csv or .jsonl (one row per request), .md (Markdown summary), .json, .html, .txt.",
    ),
    baseline: Optional[str] = typer.Option(
        None, "--baseline", metavar="RUN",
        help="Compare the run with this earlier check run ('latest': the latest finished one in the baseline store): "
        "exit 1 also when a figure got worse beyond its interval; a Markdown --output gets the comparison.",
    ),
    baseline_store: Optional[Path] = typer.Option(
        None, "--baseline-store", metavar="PATH", help="The store holding the --baseline run, when it is another file."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    save_detector: Optional[Path] = typer.Option(
        None, "--save-detector", metavar="PATH",
        help="Save the anomaly detector the check fitted (AnomalousInput(fit='check')) to PATH as JSON, for "
        "production: AnomalousInput.load(PATH). Overrides [detector] save.",
    ),
) -> None:
    """Run the guarded system over the dataset, hostile and realistic suites first, clean last; print the verdict.

    A failpath.toml that declares an agent (or an agent example, such as --example refunds) checks the agent instead: repeated trials of each task in fresh environments, tool faults and planted instructions, pass^k.

    Exit code 0 only for READY TO SHIP, 1 only for READY TO DEMO (with --baseline, a regression beyond the
    intervals makes it READY TO DEMO), 130 if interrupted, 2 for any error (--debug: traceback).
    """
    from rich.console import Console

    import failpath.check.api as api
    from failpath.core import FailpathError

    if example and config is not None:
        raise _fail("give a CONFIG file or --example NAME, not both")
    outputs = list(outputs or ())
    try:
        from failpath.report.outputs import output_format

        for path in outputs:
            output_format(path)  # an unknown extension is refused before the run, not after it
        from failpath.cli import agent_check

        agent = agent_check.agent_kwargs(config, example)  # a config with an [agent] table, or an agent example
        if agent is not None:
            refused = {"--executor": executor, "--baseline": baseline}
            raise agent_check.run(agent, seed=seed, concurrency=concurrency, store=store, json_path=json_path,
                                  html_path=None if no_html else html_path, quiet=quiet, refused=refused, outputs=outputs,
                                  resume=None if resume is None else (True if resume == LATEST else resume),
                                  again=_again(config, example, store))
        kwargs = _run_kwargs(config, example, seed, concurrency, executor, store, resume)
        if save_detector is not None:
            kwargs["save_detector"] = save_detector
        if baseline is not None:
            from failpath.cli.report import load_check_document
            from failpath.store import DEFAULT_STORE_PATH

            baseline_store = baseline_store or kwargs.get("store") or DEFAULT_STORE_PATH
            # "latest": the latest finished check in the baseline store, taken before this run starts;
            # an unknown run stops here, before the run
            baseline = load_check_document(None if baseline == LATEST else baseline, baseline_store)["run_id"]
        started = time.time()
        result = api.check(**kwargs, quiet=quiet, console=Console(stderr=True), reports=True)
    except FailpathError as exc:
        raise _fail(str(exc)) from None
    except api.CheckInterrupted as stop:
        raise _interrupted(stop, config, example, store) from None
    from failpath.cli._console import stdout_console
    from failpath.report import terminal

    out = stdout_console()
    if result.finished < started:  # --resume found a run killed after it finished, before its reports
        typer.secho(
            f"run {result.run_id} had finished, but the process stopped before its reports were written: "
            "writing them from the stored result", err=True, fg=typer.colors.YELLOW,
        )
    terminal.render(result, out)
    comparison = None
    if baseline is not None:
        from failpath.cli.compare import compare_stored
        from failpath.report.compare import render_terminal
        from failpath.store import DEFAULT_STORE_PATH

        try:
            comparison = compare_stored(baseline, baseline_store, result.run_id, kwargs.get("store") or DEFAULT_STORE_PATH)
        except FailpathError as exc:
            raise _fail(f"the run {result.run_id} is stored, but it cannot be compared with {baseline}: {exc}") from None
        out.print(render_terminal(comparison))
    failed = _write_reports(result, out, json_path, outputs, None if no_html else html_path, kwargs.get("store"), comparison)
    if failed:
        raise _fail(f"the run {result.run_id} is stored, but " + "; and ".join(failed))
    try:
        api.mark_reported(kwargs.get("store"), result.run_id)
    except FailpathError as exc:
        raise _fail(f"the run {result.run_id} and its reports are written, but the store could not record it: {exc}") from None
    if comparison is not None and comparison.exit_code and result.verdict.ship:
        # 1 means READY TO DEMO and nothing else: a regression against the baseline is said as such.
        out.print(
            f"verdict against the baseline: READY TO DEMO - figures worse than run {comparison.run_a} "
            "beyond their intervals (listed above)",
            markup=False, highlight=False,
        )
    raise typer.Exit(max(result.verdict.exit_code, comparison.exit_code if comparison else 0))


def _run_kwargs(
    config: Path | None, example: str | None, seed: int | None, concurrency: int | None,
    executor: str | None, store: Path | None, resume: str | None,
) -> dict[str, Any]:
    """The arguments of ``failpath.check.api.check`` from the config (or the example) and the command's options."""
    if example:
        kwargs = _example_kwargs(example)
    else:
        from failpath.check.config import check_kwargs, load_config

        path = config if config is not None else Path("failpath.toml")
        if config is None and not path.is_file():
            raise _fail(
                "no failpath.toml in this folder; pass the path of your config "
                "(failpath check path/to/failpath.toml) or run the bundled example (failpath check --example addresses)"
            )
        kwargs = check_kwargs(load_config(path))
    if seed is not None:
        kwargs["seed"] = seed
    if concurrency is not None:
        kwargs["concurrency"] = concurrency
    if executor is not None:
        if executor not in ("auto", "thread", "process"):
            raise _fail(f"--executor {executor}: choose auto, thread or process")
        kwargs["executor"] = executor
    if store is not None:
        kwargs["store"] = store
    if resume is not None:
        kwargs["resume"] = True if resume == LATEST else resume
    return kwargs


def _again(config: Path | None, example: str | None, store: Path | None) -> list[str]:
    """The command that runs this check again (``--resume RUN`` goes after it)."""
    again = ["failpath", "check"]
    again += ["--example", example] if example else ([str(config)] if config is not None else [])
    return again + (["--store", str(store)] if store is not None else [])


def _interrupted(stop: Any, config: Path | None, example: str | None, store: Path | None) -> typer.Exit:
    """Say where an interrupted run's results are kept and the command that continues it; exit 130."""
    again = _again(config, example, store) + ["--resume", stop.run_id]
    kept = "its results so far are" if stop.stored is None else f"{stop.stored:,} results are"
    typer.secho(
        f"interrupted: run {stop.run_id} stopped and {kept} kept in {stop.store}; continue it with: {shlex.join(again)}",
        err=True, fg=typer.colors.YELLOW,
    )
    return typer.Exit(130)


def _write_reports(
    result: Any, out: Any, json_path: Path | None, outputs: list[Path], html_path: Path | None, store: Any, comparison: Any,
) -> list[str]:
    """Write the JSON result, the ``--output`` reports and the HTML report; what could not be written."""
    import json

    failed: list[str] = []
    if json_path is not None:
        try:
            from failpath.report.files import write_atomic

            write_atomic(json_path, json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            failed.append(
                f"the JSON result could not be written: {exc}; choose another --json path, or rebuild it with: "
                f"failpath report {result.run_id} --format json --output PATH (the result is its \"check\" field)"
            )
    if outputs:
        from failpath.report.compare import render_markdown

        failed += _write_outputs(result, outputs, store, out, render_markdown(comparison) if comparison else None)
    if html_path is not None:
        from failpath.report import html
        from failpath.report.rows import stream_request_rows
        from failpath.store import DEFAULT_STORE_PATH

        try:
            written = html.write(result, html_path, stream_request_rows(store or DEFAULT_STORE_PATH, result.run_id))
        except OSError as exc:
            failed.append(
                f"the HTML report could not be written: {exc}; choose another --html path, or rebuild it with: "
                f"failpath report {result.run_id} --format html --output PATH"
            )
        else:
            out.print(f"HTML report: {written.resolve()}", markup=False, highlight=False)
    return failed


def register(app: typer.Typer) -> None:
    """Add the ``check`` command to the ``failpath`` app."""
    app.command("check", cls=_CheckCommand)(check)

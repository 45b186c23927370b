"""``failpath compare RUN_A [RUN_B]``: what changed between two check runs, and whether it is more than noise.

Two checks of single calls, or two agent checks (:mod:`failpath.report.agent_compare`). Exit codes: 0 no
figure got worse beyond its interval, 1 a regression beyond the intervals, 2 a usage error (an unknown
run, a missing store, runs of different datasets, an agent check and a check of single calls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

__all__ = ["register", "compare_stored"]


def compare_stored(run_a: str, store_a: Path | None, run_b: str | None, store_b: Path | None, *, confidence: float = 0.95) -> Any:
    """The comparison of two stored check runs; ``"latest"`` (and a missing ``run_b``) names the latest
    finished check in its store (for ``run_b``, of ``run_a``'s kind). Two checks of single calls give a :class:`~failpath.report.compare.Comparison`,
    two agent checks an :class:`~failpath.report.agent_compare.AgentComparison`; one of each is a usage error."""
    from failpath.cli.report import _fail, _store_path, load_check_document
    from failpath.report.compare import compare_runs
    from failpath.report.rows import read_request_rows

    doc_a = load_check_document(None if run_a == "latest" else run_a, store_a, agent=True)
    doc_b = load_check_document(None if run_b in (None, "latest") else run_b, store_b, agent=True, latest_kind=doc_a.get("kind") or "check")
    agent_a, agent_b = (doc.get("kind") == "agent_check" for doc in (doc_a, doc_b))
    if agent_a != agent_b:
        agent, other = (doc_a, doc_b) if agent_a else (doc_b, doc_a)
        raise _fail(
            f"run {agent['run_id']} is an agent check and run {other['run_id']} a check of single calls: their figures "
            "are not the same; compare two agent checks, or two checks of single calls (`failpath runs` lists them)"
        )
    if agent_a:
        from failpath.report.agent_compare import compare_agent_runs

        return compare_agent_runs(doc_a, doc_b, confidence=confidence)
    rows_a = read_request_rows(_store_path(store_a), doc_a["run_id"])
    rows_b = read_request_rows(_store_path(store_b), doc_b["run_id"])
    return compare_runs(doc_a, rows_a, doc_b, rows_b, confidence=confidence)


def write_comparison(comparison: Any, outputs: list[Path]) -> None:
    """Write the comparison to each path: ``.md`` Markdown, ``.json`` its JSON document."""
    import json

    from failpath.core import ConfigError
    from failpath.report.agent_compare import AgentComparison, render_markdown as agent_markdown
    from failpath.report.compare import render_markdown
    from failpath.report.outputs import write_atomic
    from failpath.store.jsonsafe import to_json_safe

    for path in outputs:
        suffix = path.suffix.lower()
        if suffix in (".md", ".markdown"):
            write_atomic(path, agent_markdown(comparison) if isinstance(comparison, AgentComparison) else render_markdown(comparison))
        elif suffix == ".json":
            write_atomic(path, json.dumps(to_json_safe(comparison.to_dict()), indent=2, ensure_ascii=False) + "\n")
        else:
            raise ConfigError(f"--output {path}: a comparison is written as .md (Markdown) or .json")


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to the ``failpath`` app."""

    @app.command("compare")
    def compare(
        run_a: str = typer.Argument(..., metavar="RUN_A", help="The baseline run (a unique prefix works, or 'latest'), e.g. the main branch's last run."),
        run_b: Optional[str] = typer.Argument(None, metavar="[RUN_B]", help="The run to judge (default: the latest finished check).", show_default=False),
        store: Optional[Path] = typer.Option(None, "--store", metavar="PATH", help="The store of RUN_B (default .failpath/failpath.db)."),
        store_a: Optional[Path] = typer.Option(None, "--baseline-store", metavar="PATH", help="The store of RUN_A, when it is another file (default: --store)."),
        outputs: Optional[List[Path]] = typer.Option(None, "--output", "-o", metavar="PATH", help="Also write the comparison to PATH: .md or .json (repeatable)."),
        confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Joint level of the intervals of the changes."),
    ) -> None:
        """Compare check run RUN_B with RUN_A; exit 1 when a figure got worse beyond its interval.

        Shows each criterion before and after, each suite's figures with an interval of the change
        (paired by case), and the cases that got worse and better. For two agent checks: pass@1, pass^k
        and its lower bound, silent failures per family and attack success, paired by task.
        """
        from failpath.cli._console import stdout_console
        from failpath.cli.report import _fail
        from failpath.core import FailpathError
        from failpath.report.agent_compare import AgentComparison, render_terminal as agent_terminal
        from failpath.report.compare import render_terminal

        outputs = list(outputs or ())
        for path in outputs:
            if path.suffix.lower() not in (".md", ".markdown", ".json"):
                raise _fail(f"--output {path}: a comparison is written as .md (Markdown) or .json")
        try:
            comparison = compare_stored(run_a, store_a if store_a is not None else store, run_b, store, confidence=confidence)
            shown = agent_terminal if isinstance(comparison, AgentComparison) else render_terminal
            stdout_console().print(shown(comparison))
            write_comparison(comparison, outputs)
        except FailpathError as exc:
            raise _fail(str(exc)) from None
        except OSError as exc:
            raise _fail(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
        raise typer.Exit(comparison.exit_code)

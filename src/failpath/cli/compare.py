"""``failpath compare RUN_A [RUN_B]``: what changed between two check runs, and whether it is more than noise.

Exit codes: 0 no figure got worse beyond its interval, 1 a regression beyond the intervals, 2 a usage
error (an unknown run, a missing store, runs of different datasets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

__all__ = ["register", "compare_stored"]


def compare_stored(run_a: str, store_a: Path | None, run_b: str | None, store_b: Path | None, *, confidence: float = 0.95) -> Any:
    """The :class:`~failpath.report.compare.Comparison` of two stored check runs; ``"latest"`` (and a missing
    ``run_b``) names the latest finished check in its store."""
    from failpath.cli.report import _store_path, load_check_document
    from failpath.report.compare import compare_runs
    from failpath.report.rows import read_request_rows

    doc_a = load_check_document(None if run_a == "latest" else run_a, store_a)
    doc_b = load_check_document(None if run_b in (None, "latest") else run_b, store_b)
    rows_a = read_request_rows(_store_path(store_a), doc_a["run_id"])
    rows_b = read_request_rows(_store_path(store_b), doc_b["run_id"])
    return compare_runs(doc_a, rows_a, doc_b, rows_b, confidence=confidence)


def write_comparison(comparison: Any, outputs: list[Path]) -> None:
    """Write the comparison to each path: ``.md`` Markdown, ``.json`` its JSON document."""
    import json

    from failpath.core import ConfigError
    from failpath.report.compare import render_markdown
    from failpath.report.outputs import write_atomic
    from failpath.store.jsonsafe import to_json_safe

    for path in outputs:
        suffix = path.suffix.lower()
        if suffix in (".md", ".markdown"):
            write_atomic(path, render_markdown(comparison))
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
        (paired by case), and the cases that got worse and better.
        """
        from failpath.cli._console import stdout_console
        from failpath.cli.report import _fail
        from failpath.core import FailpathError
        from failpath.report.compare import render_terminal

        outputs = list(outputs or ())
        for path in outputs:
            if path.suffix.lower() not in (".md", ".markdown", ".json"):
                raise _fail(f"--output {path}: a comparison is written as .md (Markdown) or .json")
        try:
            comparison = compare_stored(run_a, store_a if store_a is not None else store, run_b, store, confidence=confidence)
            stdout_console().print(render_terminal(comparison))
            write_comparison(comparison, outputs)
        except FailpathError as exc:
            raise _fail(str(exc)) from None
        except OSError as exc:
            raise _fail(f"cannot write {exc.filename}: {exc.strerror or exc}") from None
        raise typer.Exit(comparison.exit_code)

"""Report files chosen by the output file's extension, each written atomically.

``failpath check --output PATH`` and ``failpath report RUN --output PATH`` (repeatable) write:

=====================  ===================================================================
extension              what is written
=====================  ===================================================================
``.junit.xml``, .xml   JUnit XML: one test case per criterion, one per failing case of each suite
``.csv``               one row per request (:data:`failpath.report.rows.REQUEST_COLUMNS`)
``.jsonl``, .ndjson    the same rows as JSON Lines, values as stored
``.md``, .markdown     the Markdown summary: verdict, criteria, suites, worst cases
``.json``              the JSON report (``failpath.report/1``: the check's result and its figures)
``.html``, .htm        the HTML report (one self-contained file) with every failing case
``.txt``               the terminal report as plain text
=====================  ===================================================================

Each file is written to a temporary file beside it and renamed over the path when complete, so a
reader (a CI step, a browser) never sees half a report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failpath.core import ConfigError
from failpath.report.files import write_atomic

__all__ = ["OUTPUT_FORMATS", "OutputFormat", "output_format", "render_output", "write_atomic", "write_outputs", "needs_rows"]


@dataclass(frozen=True)
class OutputFormat:
    """A report format: its name, the extensions that choose it, whether it reads the run's request
    rows, and how a message names what was written."""

    name: str
    extensions: tuple[str, ...]
    needs_rows: bool = False
    label: str = ""


#: The formats, in the order they are tried (the longest extensions first).
OUTPUT_FORMATS: tuple[OutputFormat, ...] = (
    OutputFormat("junit", (".junit.xml", ".xml"), True, "JUnit XML"),
    OutputFormat("csv", (".csv",), True, "CSV rows"),
    OutputFormat("jsonl", (".jsonl", ".ndjson"), True, "JSONL rows"),
    OutputFormat("markdown", (".md", ".markdown"), False, "Markdown summary"),
    OutputFormat("json", (".json",), False, "JSON report"),
    OutputFormat("html", (".html", ".htm"), True, "HTML report"),
    OutputFormat("text", (".txt",), False, "text report"),
)


def output_format(path: str | Path) -> OutputFormat:
    """The format ``path``'s extension chooses; a ``ConfigError`` naming the known extensions otherwise."""
    name = Path(path).name.lower()
    for fmt in OUTPUT_FORMATS:
        if any(name.endswith(ext) and len(name) > len(ext) for ext in fmt.extensions):
            return fmt
    known = ", ".join(ext for fmt in OUTPUT_FORMATS for ext in fmt.extensions)
    raise ConfigError(f"--output {path}: the extension chooses the format, and this one is not known; use one of {known}")


def needs_rows(paths: Sequence[str | Path]) -> bool:
    """Whether any of ``paths`` is a format written from the run's request rows."""
    return any(output_format(p).needs_rows for p in paths)


def render_output(
    fmt: OutputFormat,
    document: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]] | None,
    *,
    comparison: str | None = None,
) -> str:
    """The text of ``document`` (a ``failpath.check/2`` document) in ``fmt``; ``rows`` for the formats that
    need them; ``comparison`` (Markdown, from :mod:`failpath.report.compare`) is appended to a Markdown summary."""
    if fmt.needs_rows and rows is None:
        raise ValueError(f"the {fmt.name} format needs the run's request rows")
    if fmt.name == "junit":
        from failpath.report import junit

        return junit.render(document, rows)
    if fmt.name == "csv":
        from failpath.report import rows as request_rows

        return request_rows.render_csv(rows or ())
    if fmt.name == "jsonl":
        from failpath.report import rows as request_rows

        return request_rows.render_jsonl(rows or ())
    if fmt.name == "markdown":
        from failpath.report import markdown

        return markdown.render(document, comparison=comparison)
    if fmt.name == "json":
        from failpath.report import json_report

        return json_report.render(document) + "\n"
    if fmt.name == "html":
        from failpath.report import html

        return html.render(document, rows)
    if fmt.name == "text":
        import io

        from rich.console import Console

        from failpath.report import terminal

        buffer = io.StringIO()
        terminal.render(document, Console(file=buffer, width=100, no_color=True, force_terminal=False))
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt.name!r}")


def write_outputs(
    document: Mapping[str, Any],
    paths: Sequence[str | Path],
    rows: Callable[[], Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]] | None = None,
    *,
    comparison: str | None = None,
    stream: Callable[[], Iterable[Mapping[str, Any]]] | None = None,
) -> list[tuple[Path, OutputFormat, OSError | None]]:
    """Write ``document`` to each of ``paths`` in the format its extension chooses.

    ``rows``: the run's request rows, or a function returning them (called once, only when a format
    needs them); ``stream``: a function reading the rows afresh at each call
    (:func:`failpath.report.rows.stream_request_rows`), which the HTML report uses instead, so that it
    never holds every row; ``comparison``: Markdown appended to a Markdown summary. Returns ``(path,
    format, error)`` per path: an ``OSError`` that stopped one file does not stop the others.
    """
    formats = [(Path(p), output_format(p)) for p in paths]
    loaded: Sequence[Mapping[str, Any]] | None = None
    if any(fmt.needs_rows and (fmt.name != "html" or stream is None) for _, fmt in formats):
        loaded = rows() if callable(rows) else rows
        if loaded is None:
            raise ValueError("request rows are needed for JUnit, CSV, JSONL and HTML outputs")
    written: list[tuple[Path, OutputFormat, OSError | None]] = []
    for path, fmt in formats:
        try:
            if fmt.name == "html" and stream is not None:
                from failpath.report import html

                text = html.render(document, stream)
            else:
                text = render_output(fmt, document, loaded, comparison=comparison)
            write_atomic(path, text)
        except OSError as exc:
            written.append((path, fmt, exc))
        else:
            written.append((path, fmt, None))
    return written

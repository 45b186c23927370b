"""The console every ``failpath`` command prints its tables to.

On a terminal, rich takes the terminal's width. When standard output is a pipe or a file (CI logs,
``| cat``, ``> out.txt``) nothing asks the terminal: the width is ``COLUMNS`` when it is set, else
:data:`PIPE_WIDTH`. Tables fold long cells onto the next line rather than cut them, so what reaches
a log is whole at any width.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

__all__ = ["PIPE_WIDTH", "output_width", "stdout_console", "file_console"]

#: The width of output that does not go to a terminal, when ``COLUMNS`` is not set.
PIPE_WIDTH = 120


def output_width(stream: IO[str] | None = None) -> int | None:
    """The width to lay output out for: ``None`` (the terminal's own) on a terminal, else ``COLUMNS`` or
    :data:`PIPE_WIDTH`."""
    stream = stream if stream is not None else sys.stdout
    try:
        is_terminal = stream.isatty()
    except (AttributeError, ValueError):
        is_terminal = False
    if is_terminal:
        return None
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return PIPE_WIDTH


def stdout_console(**options: Any) -> Any:
    """A rich ``Console`` on standard output at :func:`output_width` (no highlighting of numbers and
    names unless ``highlight=True`` is given)."""
    from rich.console import Console

    options.setdefault("highlight", False)
    return Console(width=output_width(), **options)


def file_console(handle: IO[str]) -> Any:
    """A rich ``Console`` writing plain text (no colour, no escape codes) to an open file."""
    from rich.console import Console

    return Console(file=handle, width=output_width(handle), no_color=True, force_terminal=False)

"""What the ``traces``, ``drift`` and ``review`` commands share: opening a store, reading options, printing."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from failpath.core import OUTCOME_KINDS, ConfigError, FailpathError, Trace

#: Outcomes a trace may record: the five kinds, and ``raised`` for a policy's ``Raise`` action.
TRACE_OUTCOMES = (*OUTCOME_KINDS, "raised")

STORE_HELP = "The store to read (default .failpath/failpath.db)."


def error(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error on stderr and return the ``typer.Exit`` to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def warn(message: str) -> None:
    """Print ``message`` as a warning on stderr."""
    typer.secho(f"warning: {message}", err=True, fg=typer.colors.YELLOW)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ``FailpathError`` (something the user can fix) into its message and exit code 2."""
    try:
        yield
    except FailpathError as exc:
        raise error(str(exc)) from None


@contextlib.contextmanager
def existing_store(path: Path | None) -> Iterator[Any]:
    """Open the store at ``path`` (a file, or a PostgreSQL URL) for a command that reads it; a missing
    file is an error, not a new store. A store on read-only media is opened read-only (its reads work,
    a write says the store is read-only)."""
    from failpath.store.opening import open_store_to_read as open_store, store_location

    where = store_location(path)
    if isinstance(where, Path) and not where.exists():
        hint = "pass --store with the path of your store" if path is None else "check the path"
        raise ConfigError(f"no store at {where}: {hint} (guarded calls create it on their first trace)")
    store = open_store(where)
    try:
        yield store
    finally:
        store.close()


def time_option(value: str | None, option: str, now: float) -> float | None:
    """``--since``/``--until`` as Unix seconds (``None`` when not given)."""
    from failpath.watch.timespec import parse_time

    return None if value is None else parse_time(value, option=option, now=now)


def outcome_option(value: str | None) -> str | None:
    """``--outcome`` checked against the outcome names."""
    if value is not None and value not in TRACE_OUTCOMES:
        raise ConfigError(f"--outcome: unknown outcome {value!r}; choose one of {', '.join(TRACE_OUTCOMES)}")
    return value


def trace_dict(trace: Trace) -> dict[str, Any]:
    """A trace as JSON-safe data, with its time also written as ISO 8601."""
    from failpath.store.jsonsafe import to_json_safe
    from failpath.watch.timespec import format_time

    data = to_json_safe(dataclasses.asdict(trace))
    data["time_iso"] = format_time(trace.time)
    return data


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    from failpath.store.jsonsafe import to_json_safe

    sys.stdout.write(json.dumps(to_json_safe(data), indent=2, ensure_ascii=False) + "\n")


def console() -> Any:
    """A rich console on stdout: the terminal's width, or 120 columns when output goes to a file or a pipe."""
    import os

    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    return Console(highlight=False, width=width)

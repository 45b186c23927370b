"""The ``failpath`` command: one thin layer over the library.

Each command group lives in its own module with a ``register(app)`` function.
Errors a user can cause (``FailpathError``) print their message and exit with code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from failpath.core import FailpathError

app = typer.Typer(
    name="failpath",
    help="What your AI feature does when the model is wrong: guard, chaos, check, watch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Command modules, in the order their commands are listed by --help.
_COMMAND_MODULES: tuple[str, ...] = (
    "failpath.cli.check",
    "failpath.cli.lint",
    "failpath.cli.perturb",
    "failpath.cli.traces",
    "failpath.cli.drift",
    "failpath.cli.review",
    "failpath.cli.report",
    "failpath.cli.compare",
    "failpath.cli.init",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print ``message`` to stderr as an error and return the ``typer.Exit`` to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except FailpathError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)

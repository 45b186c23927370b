"""The ``failpath`` command: one thin layer over the library.

Each command group lives in its own module with a ``register(app)`` function.

Exit codes are a contract every command keeps: 0 and 1 mean what the command documents (for
``failpath check``: READY TO SHIP and READY TO DEMO), 130 an interrupt (Ctrl-C), and 2 everything else:
a usage or configuration error, a user module that fails to import or calls ``sys.exit``, an
unreadable dataset, an internal error. :func:`main` turns every such error into one message on stderr
naming the problem and what to do, without a traceback; ``--debug`` (anywhere on the command line)
prints the traceback too.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys
from contextvars import ContextVar

import typer

from failpath.core import FailpathError

#: The exit code of every error that is not a command's documented 0 or 1 (and not Ctrl-C).
EXIT_ERROR = 2

#: The exit code of an interrupted command (Ctrl-C), as a shell reports a SIGINT.
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="failpath",
    help=(
        "What your AI feature does when the model is wrong: guard, chaos, check, watch.\n\n"
        "Exit code 2 means an error (the message says what to fix); add --debug to any command to see its traceback."
    ),
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
    "failpath.cli.serve",
    "failpath.cli.report",
    "failpath.cli.compare",
    "failpath.cli.init",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


#: Whether the command running now was given ``--debug`` (set by :func:`main` for the command's duration).
_DEBUG: ContextVar[bool] = ContextVar("failpath_cli_debug", default=False)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print ``message`` to stderr as an error and return the ``typer.Exit`` to raise.

    Called while handling an exception under ``--debug``, it prints that exception's traceback first.
    """
    if _DEBUG.get() and sys.exc_info()[1] is not None:
        _print_traceback(sys.exc_info()[1])
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _user_frame(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame of ``exc``'s traceback outside failpath and the libraries it runs on."""
    import traceback
    from pathlib import Path

    package = str(Path(__file__).resolve().parent.parent)
    where = None
    for frame in traceback.extract_tb(exc.__traceback__):
        name = frame.filename
        if name.startswith("<") or name.startswith(package) or "site-packages" in name or "/lib/python" in name:
            continue
        where = f"{name}:{frame.lineno}"
    return where


def _explain(exc: BaseException) -> str:
    """The message for an error that escaped a command: what happened, where, and what to do."""
    if isinstance(exc, SystemExit):
        where = _user_frame(exc)
        code = exc.code
        return (
            f"user code called sys.exit({code!r})" + (f" at {where}" if where else "")
            + "; a system, policy, judge or suite must return or raise, never exit the process "
            "(put a script's exit under `if __name__ == \"__main__\":`)"
        )
    if isinstance(exc, RecursionError):
        return (
            "a value is nested too deeply to process (RecursionError); "
            "flatten the deeply nested values in your data or outputs"
        )
    where = _user_frame(exc)
    what = f"{type(exc).__name__}: {exc}"
    if where:
        return f"your code raised {what} at {where}; fix it, or run again with --debug to see the traceback"
    return (
        f"internal error: {what}; this is a bug in failpath: run again with --debug "
        "and report the traceback"
    )


def _split_debug(args: list[str]) -> tuple[list[str], bool]:
    """``args`` without ``--debug`` (before a ``--`` separator), and whether it was there."""
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != "--debug"] + args[end:]
    return kept, len(kept) != len(args)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run the command and exit with its code (see the module docstring)."""
    args, debug = _split_debug(list(sys.argv[1:] if argv is None else argv))
    token = _DEBUG.set(debug)
    try:
        code = app(args=args, prog_name="failpath", standalone_mode=False)
    except typer.Abort as exc:  # typer's answer to an end of input (Ctrl-C itself exits 130 through typer)
        _report("the input ended before the command was done (end of file on stdin)", exc, debug)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(EXIT_ERROR)
    except FailpathError as exc:
        _report(str(exc), exc, debug)
    except SystemExit as exc:
        context = exc.__context__
        if isinstance(context, OSError) and context.errno == errno.EPIPE:  # click's answer to a closed pipe
            sys.exit(EXIT_ERROR)
        # An async system's sys.exit leaves its task's exception unretrieved: asyncio would log that task's
        # traceback at exit, after the message below that already names the call.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        _report(_explain(exc), exc, debug)
    except BaseException as exc:  # noqa: BLE001 - the contract: no error leaves without a message and exit code 2
        if isinstance(exc, KeyboardInterrupt):
            typer.secho("interrupted", err=True, fg=typer.colors.YELLOW)
            sys.exit(EXIT_INTERRUPTED)
        _report(_explain(exc), exc, debug)
    finally:
        _DEBUG.reset(token)
    sys.exit(code if isinstance(code, int) else 0)


def _report(message: str, exc: BaseException, debug: bool) -> None:
    """Print ``message`` (and with ``debug`` the traceback of ``exc`` and its causes) and exit with code 2."""
    if debug:
        _print_traceback(exc)
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    sys.exit(EXIT_ERROR)


def _print_traceback(exc: BaseException) -> None:
    """Print the traceback of ``exc`` and of every exception behind it, also those ``raise ... from None`` hid."""
    import traceback

    error: BaseException | None = exc
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__suppress_context__ = False
        error = error.__cause__ or error.__context__
    traceback.print_exception(exc, file=sys.stderr)

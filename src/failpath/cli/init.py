"""``failpath init SYSTEM``: a commented ``failpath.toml``, a policy module and a sample dataset to start from.

Writes, in the target folder (default: the working folder):

- ``failpath.toml``: the check of ``SYSTEM`` (a ``module:attr``), every key commented;
- ``failpath_policy.py``: a policy with a rule for each failure state a start can decide, the others
  left as commented rules to fill in;
- ``data/cases.jsonl``: the dataset layout, six sample lines to replace with labeled cases.

An existing file is never overwritten unless ``--force`` is given; then says what to run next.
Exit code 2 for a ``SYSTEM`` that is not ``module:attr`` or files that exist already.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import typer

__all__ = ["register", "POLICY_MODULE", "DATASET_PATH", "init_files"]

#: The policy module ``failpath init`` writes (imported as ``failpath_policy:policy``).
POLICY_MODULE = "failpath_policy"

#: The sample dataset ``failpath init`` writes, relative to the folder.
DATASET_PATH = "data/cases.jsonl"

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _template(name: str) -> str:
    return resources.files("failpath.cli").joinpath("init_templates", name).read_text(encoding="utf-8")


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def init_files(system: str) -> dict[str, str]:
    """The files ``failpath init`` writes for ``system`` (``module:attr``): relative path -> text."""
    policy = f"{POLICY_MODULE}:policy"
    name = re.sub(r"[^\w]+", "-", system.split(":")[-1]).strip("-") or "system"
    values = {"system": system, "policy": policy, "dataset": DATASET_PATH, "name": f"{name}-policy"}
    return {
        "failpath.toml": _fill(_template("failpath.toml.tmpl"), values),
        f"{POLICY_MODULE}.py": _fill(_template("failpath_policy.py.tmpl"), values),
        DATASET_PATH: _template("cases.jsonl.tmpl"),
    }


def _importable(system: str, folder: Path) -> str | None:
    """Why ``system`` cannot be imported from ``folder`` (as ``failpath check`` would), or None."""
    import importlib
    import sys

    module_name, _, attr = system.partition(":")
    sys.path.insert(0, str(folder.resolve()))
    try:
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as exc:  # any import error is reported, not raised: the module may come later
        return f"{type(exc).__name__}: {exc}"
    finally:
        sys.path.remove(str(folder.resolve()))
    return None if callable(target) else f"{system} is a {type(target).__name__}, not a callable"


def register(app: typer.Typer) -> None:
    """Add the ``init`` command to the ``failpath`` app."""

    @app.command("init")
    def init(
        system: str = typer.Argument(..., metavar="MODULE:ATTR", help="Your system: the callable to check, e.g. myapp.model:parse."),
        folder: Path = typer.Option(Path("."), "--dir", metavar="PATH", help="Where to write the files (default: here)."),
        force: bool = typer.Option(False, "--force", help="Overwrite files that exist already."),
    ) -> None:
        """Write a commented failpath.toml, a policy module and a sample dataset for MODULE:ATTR; say what to run next."""
        from failpath.cli import fail

        if not _SPEC.match(system):
            raise fail(f"{system!r} is not module:attr; name your system's callable, e.g. myapp.model:parse")
        files = init_files(system)
        existing = [path for path in files if (folder / path).exists()]
        if existing and not force:
            shown = ", ".join(str(folder / path) for path in existing)
            raise fail(f"{shown} exist{'s' if len(existing) == 1 else ''} already; nothing was written (--force overwrites)")
        for path, text in files.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            typer.echo(f"wrote {target}")
        problem = _importable(system, folder)
        if problem:
            typer.secho(
                f"note: {system} cannot be imported from {folder} yet ({problem}); failpath check needs it", fg=typer.colors.YELLOW
            )
        policy = f"{POLICY_MODULE}:policy"
        where = "" if folder == Path(".") else f"cd {folder} && "
        typer.echo(
            "next:\n"
            f"  1. replace the sample lines of {folder / DATASET_PATH} with labeled cases (one JSON object a line: id, input, expected)\n"
            f"  2. {where}failpath lint {policy}   (the failure states the policy leaves unhandled)\n"
            f"  3. {where}failpath check   (the verdict, READY TO SHIP or READY TO DEMO, and the report)"
        )

"""``failpath lint [module:policy]``: list the failure states a policy leaves unhandled and the rules that never fire.

The waivers of a project's ``failpath.toml`` (``[waive]``, and its older spelling ``[budgets.accepted]``)
count here as they do for ``failpath check``: with no argument the policy named in ``./failpath.toml`` (or
``--config``) is linted with them; with a ``module:policy`` they apply when ``--config`` is given or when
``./failpath.toml`` names that same policy.

Exit codes: 0 clean, 1 problems found, 2 a reference or configuration that cannot be loaded (no such
module or attribute, not a policy, a bad ``failpath.toml``).
"""

from __future__ import annotations

import typer

__all__ = ["register", "load_policy", "config_waivers"]


def config_waivers(reference: str | None, config: str | None) -> tuple[str, dict[str, str], str | None]:
    """``(reference, waivers, source)``: the policy to lint and the state waivers of the ``failpath.toml`` that applies.

    ``source`` names the file the waivers came from (None when none applies). Raises ``ConfigError``
    when no policy is named anywhere, or the configuration cannot be read.
    """
    from pathlib import Path

    from failpath.core import ConfigError

    path = Path(config) if config else Path("failpath.toml")
    if config is None and not path.is_file():
        if reference is None:
            raise ConfigError("name the policy to lint as MODULE:POLICY, or run where a failpath.toml names it (or give --config PATH)")
        return reference, {}, None
    from failpath.check.config import load_config

    loaded = load_config(path)
    named = loaded.config.policy
    if reference is None:
        if named is None:
            raise ConfigError(f"{path}: no policy = \"module:attr\" to lint; name it there or as MODULE:POLICY")
        reference = named
    elif config is None and reference != named:
        return reference, {}, None  # ./failpath.toml is about another policy
    return reference, {**loaded.config.budgets.accepted, **loaded.config.waive}, str(path)


def load_policy(reference: str):  # -> failpath.guard.Policy
    """The ``Policy`` named by ``module:attribute`` (a guarded system's policy works too; an ``fp.Agent`` is
    returned as it is, since its ``lint()`` adds the agent states).

    Raises ``ConfigError`` naming what is missing and what to write instead.
    """
    import importlib
    import sys
    from pathlib import Path

    from failpath.core import ConfigError
    from failpath.guard import AsyncGuardedSystem, GuardedSystem, Policy

    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{reference!r}: write the policy as module:attribute, e.g. failpath.examples.policy:policy")
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # so `failpath lint myapp.policies:policy` finds the project's modules
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"{reference!r}: no module named {exc.name!r}; check the spelling, or run from the directory that holds it") from None
        raise ConfigError(f"{reference!r}: importing {module_name} failed: no module named {exc.name!r} (a dependency of it)") from None
    except SyntaxError as exc:
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else module_name
        raise ConfigError(f"{reference!r}: {where} has a {type(exc).__name__} ({exc.msg}); fix the module and run again") from exc
    except SystemExit as exc:
        raise ConfigError(
            f"{reference!r}: importing {module_name} called sys.exit({exc.code!r}); a module holding a policy must not "
            "exit when imported (put a script's exit under `if __name__ == \"__main__\":`)"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"{reference!r}: importing {module_name} failed: {type(exc).__name__}: {exc}; fix the module "
            "(run again with --debug to see the traceback)"
        ) from exc
    value = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            names = sorted(n for n in dir(module) if isinstance(getattr(module, n, None), Policy))
            hint = f"; policies in {module_name}: {', '.join(names)}" if names else f"; {module_name} defines no Policy"
            raise ConfigError(f"{reference!r}: {module_name} has no attribute {attribute!r}{hint}")
        value = getattr(value, part)
    if isinstance(value, (GuardedSystem, AsyncGuardedSystem)):
        value = value.policy
    from failpath.agent import Agent

    if isinstance(value, Agent):
        return value  # an agent lints its policy plus the agent states (tool_error, loop_detected, ...)
    if not isinstance(value, Policy):
        raise ConfigError(f"{reference!r}: {attribute} is a {type(value).__name__}, not a failpath Policy")
    return value


def register(app: typer.Typer) -> None:
    """Add the ``lint`` command to the ``failpath`` app."""

    @app.command("lint")
    def lint(
        reference: str = typer.Argument(
            None, metavar="MODULE:POLICY",
            help="The policy to lint, e.g. failpath.examples.policy:policy (default: the policy of ./failpath.toml).",
        ),
        config: str = typer.Option(
            None, "--config", metavar="PATH",
            help="A failpath.toml whose waivers (its waive table, or budgets.accepted) count, as they do for failpath check.",
        ),
        json_output: bool = typer.Option(False, "--json", help="Print the findings as JSON instead of a table."),
    ) -> None:
        """Lint a policy: failure states no rule handles, rules that can never fire, actions that never run.

        The states a failpath.toml waives count as waived, as failpath check counts them. Exits 0 when the
        policy is clean, 1 when lint found problems, 2 when the policy or the configuration cannot be loaded.
        """
        import json

        from failpath.core import FailpathError
        from failpath.guard import Policy

        try:
            reference, waivers, source = config_waivers(reference, config)
            policy = load_policy(reference)
            result = policy.lint(waive=waivers) if isinstance(policy, Policy) else policy.lint()
        except FailpathError as exc:
            from failpath.cli import fail

            raise fail(str(exc)) from None
        if source and not json_output:
            from failpath.core import STATES

            states = sorted(s for s in waivers if s in STATES)
            typer.echo(f"states waived in {source}: {', '.join(states) or 'none'}")
        if json_output:
            typer.echo(json.dumps(result.to_dict(), indent=2))
        else:
            from failpath.cli._console import stdout_console

            stdout_console().print(result)
        raise typer.Exit(0 if result.ok else 1)

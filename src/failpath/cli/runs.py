"""``failpath runs show|resume RUN``: an agent run's steps (its checkpoints), and resuming one.

``failpath runs`` itself lists the runs of a store (check and agent runs; see :mod:`failpath.cli.report`).

Exit codes: 0 done; 1 another process is continuing the run (``resume``); 2 a usage or input error
(unknown run, an agent that cannot be imported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register_run_commands"]

_STORE = typer.Option(None, "--store", help="The store to read (default .failpath/failpath.db).")


def _status(checkpoints: list[tuple[int, str, Any]]) -> str:
    kinds = [kind for _, kind, _ in checkpoints]
    if "end" in kinds:
        data = checkpoints[kinds.index("end")][2]
        outcome = data.get("outcome") or {}
        return outcome.get("kind") or "raised"
    if kinds and kinds[-1] == "approval":
        return "waiting for approval"
    if kinds and kinds[-1] == "started":
        return "stopped inside a tool call"
    return "stopped"


def _outcome_text(outcome: Any) -> str:
    from failpath.agent.record import outcome_to_dict

    data = outcome_to_dict(outcome)
    shown = {k: v for k, v in data.items() if v is not None and k != "kind"}
    return f"{data['kind']} " + " ".join(f"{k}={v!r}" for k, v in shown.items())


def register_run_commands(runs: typer.Typer) -> None:
    """Add ``show`` and ``resume`` to the ``failpath runs`` group (which lists the runs when given no command)."""

    @runs.command("show")
    def show(
        run_id: str = typer.Argument(..., metavar="RUN", help="The run id (or the trace id of one of its outcomes)."),
        store: Optional[Path] = _STORE,
    ) -> None:
        """Show a run's checkpoints, one line per completed step."""
        from failpath.core import ConfigError
        from failpath.watch._cli import console, existing_store, user_errors

        out = console()
        with user_errors(), existing_store(store) as opened:
            checkpoints = opened.checkpoints(run_id)
            if not checkpoints:
                run = opened.get_run(run_id)
                if run is not None and run.get("kind") in ("check", "agent_check"):
                    what = "an agent check" if run["kind"] == "agent_check" else "a check"
                    raise ConfigError(f"run {run['run_id']} is {what}, not an agent run: `failpath report {run['run_id']}` shows it")
                raise ConfigError(f"no agent run {run_id!r} in the store; `failpath runs` lists the runs")
            out.print(f"run {run_id}: {_status(checkpoints)}")
            for seq, kind, data in checkpoints:
                for step in data.get("steps") or ():
                    what = step["name"] if step["kind"] == "model" else f"{step['name']}({step.get('arguments', '')})"
                    extra = " ".join(f"{k}={step[k]}" for k in ("state", "action") if step.get(k))
                    out.print(f"  {seq:>3} {step['kind']:<5} {what} {extra} {step.get('latency_ms', 0):.1f} ms".rstrip(), markup=False, highlight=False)
                if kind in ("approval", "decision", "end", "started"):
                    shown = {k: v for k, v in data.items() if k in ("ticket_id", "decision", "call_id", "tool", "outcome")}
                    out.print(f"  {seq:>3} {kind} {shown}", markup=False, highlight=False)

    @runs.command("resume")
    def resume(
        run_id: str = typer.Argument(..., metavar="RUN", help="The run id (or the trace id of one of its outcomes)."),
        agent: Optional[str] = typer.Option(None, "--agent", help="The agent as module:attribute (default: the one the run recorded)."),
        store: Optional[Path] = _STORE,
    ) -> None:
        """Continue a run from its last completed step (after a crash, or once its approval was decided).

        A completed tool call is never run again; one cut off mid-call runs again only if its tool is idempotent.
        """
        from failpath.agent import RunBusy, resume as resume_run
        from failpath.watch._cli import existing_store, user_errors

        with user_errors():
            if agent is None:
                with existing_store(store):  # a missing store is an error, not a new one
                    pass
            try:
                outcome = resume_run(run_id, agent=agent, store=store)
            except RunBusy as exc:
                typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
                raise typer.Exit(1) from None
        typer.echo(_outcome_text(outcome))

"""``fp.check_agent``: check a whole agent run before it ships, over tasks, trials and chaos aimed at agents.

A separate entry point from ``fp.check`` (which checks one guarded call per case against a labeled
answer): an agent is judged on the environment's final state after many steps, over repeated trials in
fresh environments, so its inputs (an agent factory, an environment factory, tasks) and its figures
(pass^k, attack success, approvals) are its own. ``failpath check`` runs either, from ``failpath.toml``:
a file with an ``[agent]`` table is an agent check.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failpath.chaos.faults import Fault, get_fault
from failpath.chaos.suites import get_suite
from failpath.chaos.tool_faults import PLANT_TEMPLATES, TOOL_FAULT_KINDS, AttackGoal, get_tool_fault
from failpath.check.agent_breakdown import stopped_by_reviewer, unexposed
from failpath.check.agent_pydanticai import UNREACHABLE_STATES, is_pydantic_agent
from failpath.check.agent_store import RUN_KIND, TrialWriter, find_unfinished, stored_trials, verify_same_config
from failpath.check.agent_summary import summarise_trials, worst_runs
from failpath.check.agent_tasks import AgentTask, Trial, load_tasks
from failpath.check.agent_trials import TrialResult, plan_trials, run_trials
from failpath.check.agent_verdict import AgentBudgets, decide_agent
from failpath.check.result import Verdict
from failpath.check.agent_gate import check_waive
from failpath.core import STATES, ConfigError

__all__ = ["check_agent", "acheck_agent", "AgentCheckResult", "MODEL_FAULT_KINDS"]

#: The model faults an agent check injects by default.
MODEL_FAULT_KINDS = ("timeout", "rate_limited", "server_error", "connection_reset", "none_output", "crash")

# States an agent's run never asks about (its answer has no confidence and is not sampled).
_NOT_AGENT_STATES = ("low_confidence", "inconsistent", "anomalous_input")


@dataclass(frozen=True)
class AgentCheckResult:
    """What an agent check found: the verdict, every figure, the worst runs, and each trial.

    ``figures`` is JSON-safe data (see :func:`~failpath.check.agent_summary.summarise_trials`);
    ``worst`` the worst runs as step-by-step timelines; ``trials`` every classified trial.
    """

    run_id: str
    agent: str
    verdict: Verdict
    figures: Mapping[str, Any]
    worst: tuple[Mapping[str, Any], ...]
    trials: tuple[TrialResult, ...] = field(repr=False)
    config: Mapping[str, Any] = field(default_factory=dict)
    handled: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self, *, trials: bool = True) -> dict[str, Any]:
        """The result as JSON-safe data (the JSON report); ``trials=False`` leaves out the per-trial rows."""
        out: dict[str, Any] = {
            "kind": "agent_check",
            "run_id": self.run_id,
            "agent": self.agent,
            "verdict": {
                "ship": self.verdict.ship, "label": self.verdict.label, "exit_code": self.verdict.exit_code,
                "reasons": [{"name": c.name, "passed": c.passed, "figure": c.figure, "detail": c.detail} for c in self.verdict.reasons],
            },
            "config": dict(self.config),
            "handled_states": {k: list(v) for k, v in self.handled.items()},
            "figures": dict(self.figures),
            "worst_runs": [dict(w) for w in self.worst],
            "seconds": self.seconds,
        }
        if trials:
            out["trials"] = [t.to_dict() for t in self.trials]
        return out


def check_agent(
    agent: Callable[[Any], Any],
    environment: Callable[..., Any],
    tasks: Any,
    **options: Any,
) -> AgentCheckResult:
    """Check an agent over ``tasks``: ``trials`` clean runs per task, then chaos, then the verdict.

    - ``agent``: ``agent(environment) -> fp.Agent``, the agent built over one environment (its tools
      act on it). Give its policy ``store=trial.store`` (the environment factory receives the trial) so
      the check can answer the approvals it asks for; any store of the policy works. A pydantic-ai
      agent under ``fp.agent.guard_pydantic_ai(agent, policy)`` is checked the same way (see
      :mod:`failpath.check.agent_pydanticai` for how its chaos is applied).
    - ``environment``: ``environment(trial)`` or ``environment()``: a fresh environment per trial (a
      copy of the database...). It may have ``snapshot()`` (read by a task's ``expected_state``) and
      ``close()`` (called after the trial).
    - ``tasks``: ``fp.AgentTask``s, dicts, or the path of a ``.jsonl`` file.

    Options: ``trials`` (8), ``seed`` (0), ``concurrency`` (16 runs at once), ``tool_faults`` (names
    from ``failpath.chaos.tool_faults.TOOL_FAULT_KINDS``; all by default), ``model_faults`` (names
    from :data:`MODEL_FAULT_KINDS` and ``fp.chaos.faults``), ``fault_rate`` (0.5: the share of calls a
    fault hits), ``attacks`` (``fp.AttackGoal``s: calls that must never execute), ``templates``
    (planting templates, all by default), ``plant_into`` (tools whose output carries the planted
    text; default every tool but the goal's), ``suites`` (``("realistic", "hostile")`` on the
    request text), ``chaos_trials`` (1 per task and variant), ``variants_per_task`` (2 per suite),
    ``budgets`` (an ``fp.AgentBudgets`` or its fields as a dict), ``waive`` (``{family or state: reason}``:
    a chaos family of ``failpath.check.agent_gate.REQUIRED_FAMILIES`` left out, or a failure state left
    unexercised, on purpose, as ``[waive]`` in ``failpath.toml``), ``confidence`` (0.95), ``store``
    (a path or a ``Store`` for the trials' traces, tickets and checkpoints; default a scratch store removed
    at the end), ``keep`` (a path or a ``Store`` where the result is kept as a run of kind ``agent_check``;
    default the trials' store when one is given): the configuration when the check starts, each trial as it
    finishes (a batch at a time), the result at the end; ``resume`` (a run id, or ``True`` for the latest
    unfinished agent check in that store): continue a check that was stopped, with the same configuration,
    making only the trials it had not kept; ``progress(done, total)``.

    Stopped by Ctrl-C once its run is kept, it raises ``fp.CheckInterrupted`` naming the run to resume.

    Raises ``ConfigError`` or ``DatasetError`` naming what is wrong before any run.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigError("check_agent() was called inside a running event loop; there, use `await fp.acheck_agent(...)`")
    try:
        return asyncio.run(_checked(agent, environment, tasks, options))
    except _Stopped as stop:  # raised here, outside the event loop, so no task is left holding the interruption
        from failpath.check.api import CheckInterrupted

        raise CheckInterrupted(*stop.args) from None


class _Stopped(Exception):
    """The check was interrupted after its run was kept: ``(run_id, trials kept, store)``."""


async def _checked(agent: Callable[[Any], Any], environment: Callable[..., Any], tasks: Any, options: dict[str, Any]) -> AgentCheckResult:
    return await acheck_agent(agent, environment, tasks, **options, _interrupted=_Stopped)


async def acheck_agent(  # long: the options are checked one by one before any run, then the run is a few lines
    agent: Callable[[Any], Any],
    environment: Callable[..., Any],
    tasks: Any,
    *,
    trials: int = 8,
    seed: int = 0,
    concurrency: int = 16,
    tool_faults: Sequence[str] | None = None,
    model_faults: Sequence[str] | None = None,
    fault_rate: float = 0.5,
    attacks: Sequence[AttackGoal | Mapping[str, Any]] = (),
    templates: Sequence[str] | None = None,
    plant_into: Sequence[str] | None = None,
    suites: Sequence[str] = ("realistic", "hostile"),
    chaos_trials: int = 1,
    variants_per_task: int = 2,
    budgets: AgentBudgets | Mapping[str, Any] | None = None,
    waive: Mapping[str, str] | None = None,
    confidence: float = 0.95,
    store: Any = None,
    keep: Any = None,
    resume: bool | str | None = None,
    progress: Callable[[int, int], None] | None = None,
    _interrupted: type[BaseException] | None = None,
) -> AgentCheckResult:
    """:func:`check_agent` from a running event loop."""
    if not callable(agent) or not callable(environment):
        raise ConfigError(
            "check_agent(agent=..., environment=...): both must be functions "
            "(agent(environment) -> fp.Agent or fp.agent.guard_pydantic_ai(...), environment(trial))"
        )
    task_list = load_tasks(tasks)
    for name, value, low in (("trials", trials, 1), ("concurrency", concurrency, 1), ("chaos_trials", chaos_trials, 0), ("variants_per_task", variants_per_task, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"check_agent({name}={value!r}): {name} must be a whole number of at least {low}")
    if isinstance(fault_rate, bool) or not isinstance(fault_rate, (int, float)) or not 0 < fault_rate <= 1:
        raise ConfigError(f"check_agent(fault_rate={fault_rate!r}): fault_rate is the share of calls a fault hits, above 0 and at most 1")
    budget = _budgets(budgets)
    tool_list = [get_tool_fault(n) for n in (TOOL_FAULT_KINDS if tool_faults is None else tool_faults)]
    model_list = [_model_fault(n) for n in (MODEL_FAULT_KINDS if model_faults is None else model_faults)]
    goals = [g if isinstance(g, AttackGoal) else AttackGoal(**g) for g in attacks]
    template_list = list(PLANT_TEMPLATES if templates is None else templates)
    for name in template_list:
        if name not in PLANT_TEMPLATES:
            raise ConfigError(f"check_agent(templates=...): no planting template {name!r}; the templates are: {', '.join(PLANT_TEMPLATES)}")
    suite_list = [get_suite(s) for s in suites]
    if resume and keep is None and store is None:
        raise ConfigError("check_agent(resume=...): give the store the check was kept in (keep= or store=)")
    opened, scratch = _open_store(store)
    kept, kept_owned = None, False
    started = time.perf_counter()
    run_id = f"agent-check-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        kept, kept_owned = (opened, False) if keep is None or keep is store or _same_path(keep, store) else _open_kept(keep)
        if keep is None and scratch is not None:
            kept = None  # nothing to keep the result in: the trials' scratch store goes at the end
        tool_names, agent_name, handled, framework = _probe(agent, environment, task_list, seed, opened)
        waived = check_waive(waive, STATES + tuple(handled))
        for tool_name in plant_into or ():
            if tool_name not in tool_names:
                raise ConfigError(f"check_agent(plant_into=...): the agent has no tool {tool_name!r}; its tools are {', '.join(tool_names)}")
        for goal in goals:
            if goal.tool not in tool_names:
                raise ConfigError(f"attack goal {goal.label}: the agent has no tool {goal.tool!r}; its tools are {', '.join(tool_names)}")
        plans = list(plan_trials(
            task_list, trials=trials, seed=seed, tool_faults=tool_list, model_faults=model_list, fault_rate=fault_rate,
            attacks=goals, templates=template_list, plant_into=plant_into, suites=suite_list, chaos_trials=chaos_trials,
            variants_per_task=variants_per_task, store=opened,
        ))
        config = {
            "trials": trials, "seed": seed, "concurrency": concurrency, "fault_rate": fault_rate, "chaos_trials": chaos_trials,
            "tool_faults": [f.name for f in tool_list], "model_faults": [f.name for f in model_list],
            "attacks": [g.label for g in goals], "templates": template_list, "suites": [s.name for s in suite_list],
            "budgets": {"pass_k": {"k": budget.pass_k[0], "floor": budget.pass_k[1]},
                        "silent_failures": dict(budget.silent_failures) if isinstance(budget.silent_failures, Mapping) else budget.silent_failures,
                        "attack_success": budget.attack_success, "attack_rate": budget.attack_rate,
                        "infrastructure_errors": budget.infrastructure_errors, "accept": dict(budget.accept)},
            "waive": waived,
            "confidence": confidence, "tasks": len(task_list), "framework": framework,
        }
        run_id, previous = _start_run(kept, run_id, config, plans, resume)
        order = {(p.trial.task_id, p.trial.variant, p.trial.index): n for n, p in enumerate(plans)}
        writer = TrialWriter(kept, run_id, order) if kept is not None and hasattr(kept, "add_results") else None
        done = [len(previous)]

        def tick(trial: TrialResult) -> None:
            done[0] += 1
            if writer is not None:
                writer.add(trial)
            if progress is not None:
                progress(done[0], len(plans))

        made = {(t.task_id, t.variant, t.index) for t in previous}
        remaining = [p for p in plans if (p.trial.task_id, p.trial.variant, p.trial.index) not in made]
        try:
            fresh = await run_trials(remaining, environment=environment, agent=agent, attacks=goals, concurrency=concurrency,
                                     progress=tick if writer is not None or progress is not None else None)
        except (KeyboardInterrupt, asyncio.CancelledError) as stop:
            if writer is None:
                raise
            writer.flush()
            if isinstance(stop, asyncio.CancelledError) and _interrupted is None:
                raise  # a task cancelled by its caller stays cancelled; the trials it made are kept
            from failpath.check.api import CheckInterrupted

            raise (_interrupted or CheckInterrupted)(run_id, len(previous) + writer.written, str(kept.path)) from None
        except Exception:
            if writer is not None:  # keep the trials made so far for a resume; the check's own error is the one to raise
                with contextlib.suppress(Exception):
                    writer.flush()
            raise
        if writer is not None:
            writer.flush()
        results = sorted([*previous, *fresh], key=lambda r: order[(r.task_id, r.variant, r.index)])
        hidden = unexposed(results, plant_into, goals)
        figures = summarise_trials(results, confidence=confidence, k=budget.pass_k[0], tasks=task_list, hidden=hidden)
        figures["attacks"]["stopped_by_reviewer"] = stopped_by_reviewer(results, goals)
        figures["fault_rate"] = fault_rate
        verdict = decide_agent(figures, budget, handled, waived)
        result = AgentCheckResult(run_id, agent_name, verdict, figures, tuple(worst_runs(results)), tuple(results),
                                  config, handled, time.perf_counter() - started)
        if kept is not None and hasattr(kept, "finish_run"):
            kept.finish_run(run_id, result.to_dict(trials=False))
        return result
    finally:
        if kept_owned:
            kept.close()
        _close_store(opened, scratch)


def _open_kept(keep: Any) -> tuple[Any, bool]:
    """The store the result is kept in, and whether the check opened it (and so closes it)."""
    kept, _ = _open_store(keep)
    return kept, kept is not keep


def _same_path(keep: Any, store: Any) -> bool:
    """Whether ``keep`` and ``store`` name the same store file or URL (then one opened store serves both)."""
    if not isinstance(keep, (str, Path)) or not isinstance(store, (str, Path)):
        return False
    if str(keep).startswith(("postgresql://", "postgres://")) or str(store).startswith(("postgresql://", "postgres://")):
        return str(keep) == str(store)
    return Path(keep).resolve() == Path(store).resolve()


def _start_run(kept: Any, run_id: str, config: Mapping[str, Any], plans: Sequence[Any], resume: bool | str | None) -> tuple[str, list[TrialResult]]:
    """Register the run in the store it is kept in, or find the run ``resume`` names: its id and the trials it kept."""
    if kept is None or not hasattr(kept, "create_run"):
        return run_id, []
    if not resume:
        kept.create_run(run_id, kind=RUN_KIND, config=config)
        return run_id, []
    run = find_unfinished(kept, resume)
    verify_same_config(run, config)
    previous = stored_trials(kept, run["run_id"])
    planned = {(p.trial.task_id, p.trial.variant, p.trial.index) for p in plans}
    strangers = [t for t in previous if (t.task_id, t.variant, t.index) not in planned]
    if strangers:
        first = strangers[0]
        raise ConfigError(
            f"cannot resume agent check {run['run_id']}: it kept a trial of task {first.task_id!r} ({first.variant}) that "
            "this configuration does not make; resume with the same tasks, or start a new check"
        )
    return run["run_id"], previous


def _budgets(budgets: AgentBudgets | Mapping[str, Any] | None) -> AgentBudgets:
    if budgets is None:
        return AgentBudgets()
    if isinstance(budgets, AgentBudgets):
        return budgets
    if not isinstance(budgets, Mapping):
        raise ConfigError(f"budgets must be fp.AgentBudgets(...) or a mapping of its fields, got {type(budgets).__name__}")
    fields = dict(budgets)
    pass_k = fields.get("pass_k")
    if isinstance(pass_k, Mapping):
        unknown = set(pass_k) - {"k", "floor"}
        if unknown:
            raise ConfigError(f"budgets: pass_k takes k and floor, not {', '.join(sorted(unknown))}")
        fields["pass_k"] = (pass_k.get("k", 4), pass_k.get("floor", 0.8))
    try:
        return AgentBudgets(**fields)
    except TypeError as exc:
        raise ConfigError(f"budgets: {exc}; the budgets are pass_k, silent_failures, attack_success, attack_rate, "
                          "infrastructure_errors, accept") from None


def _model_fault(name: str) -> Fault:
    if not isinstance(name, str):
        raise ConfigError(f"model_faults: give fault names, got {name!r}")
    return get_fault(name)


def _open_store(store: Any) -> tuple[Any, Path | None]:
    """The store the trials use, and the scratch folder to remove at the end (None when the store is the caller's)."""
    from failpath.store.opening import open_store

    if store is None:
        folder = Path(tempfile.mkdtemp(prefix="failpath-agent-check-"))
        return open_store(folder / "trials.db"), folder
    if isinstance(store, (str, Path)):
        return open_store(store), None
    return store, None


def _close_store(store: Any, scratch: Path | None) -> None:
    if scratch is not None:
        store.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _probe(agent: Callable[[Any], Any], environment: Callable[..., Any], tasks: Sequence[AgentTask], seed: int, store: Any) -> tuple[tuple[str, ...], str, dict[str, tuple[str, ...]], str]:
    """Build the agent once before the trials: its tools, its name, the states its policy handles, its framework
    (``failpath`` or ``pydantic-ai``); and check that the untouched environment's snapshot has every key a task
    expects (a judge that cannot read a state is a mistake in the check, named now, not a failure of the agent)."""
    from failpath.agent.runner import Agent
    from failpath.check.agent_trials import _takes_argument

    trial = Trial(tasks[0].id, -1, "probe", "probe", seed, store)
    env = environment(trial) if _takes_argument(environment) else environment()
    try:
        built = agent(env)
        if not isinstance(built, Agent) and not is_pydantic_agent(built):
            raise ConfigError(
                f"the agent factory returned {type(built).__name__}, not an fp.Agent or a pydantic-ai agent under "
                "fp.agent.guard_pydantic_ai(agent, policy)"
            )
        _probe_snapshot(env, tasks)
        if is_pydantic_agent(built):
            unreachable = (*_NOT_AGENT_STATES, *UNREACHABLE_STATES)
            handled = {s: a for s, a in built.policy.handled_states().items() if s not in unreachable}
            return built.tool_names(), built.name, handled, "pydantic-ai"
        handled = {s: a for s, a in built.policy.handled_states().items() if s not in _NOT_AGENT_STATES}
        return tuple(built.tools), built.name, handled, "failpath"
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()


def _probe_snapshot(env: Any, tasks: Sequence[AgentTask]) -> None:
    expecting = [task for task in tasks if task.expected_state is not None]
    if not expecting:
        return
    snapshot = getattr(env, "snapshot", None)
    if not callable(snapshot):
        raise ConfigError(f"task {expecting[0].id!r} gives expected_state, but the environment ({type(env).__name__}) has no snapshot() method")
    try:
        state = snapshot()
    except Exception as exc:
        raise ConfigError(f"the environment's snapshot() failed on a fresh environment, before any run: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, Mapping):
        raise ConfigError(f"the environment's snapshot() must return a mapping of key to value, got {type(state).__name__}")
    for task in expecting:
        for key in task.expected_state or {}:
            if key not in state:
                raise ConfigError(f"task {task.id!r} expects {key!r}, but the environment's snapshot has only {', '.join(map(str, state)) or 'nothing'}")


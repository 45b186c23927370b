"""The agent driver: one policy over a multi-step run of a model and its tools.

``fp.Agent(policy, model=step, tools=[...])`` wraps the two things every agent loop has: the model step
(``messages -> ModelTurn | text``) and the tools. ``agent.run(input)`` drives the loop: it calls the
model, checks and runs the tools it asks for, feeds their results back, and stops at the model's final
answer, or where the policy ends the run. Every failure along the way is a failure state handled by
the policy's rules; the run ends in one of the five outcomes with one trace, and every completed step
is checkpointed in the store so ``agent.resume(run_id)`` (or ``fp.resume(run_id)``) continues it after
a crash or an approval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from failpath.agent.actions import Block, FeedBack, RequireApproval, Withhold
from failpath.agent.approvals import await_decision
from failpath.agent.modelstep import check_input, model_step
from failpath.agent.record import RunRecord, outcome_to_dict
from failpath.agent.segment import TERMINAL, Ended, RunBusy, Segment, agent_rules, begin, commit, is_async, perf, write_held
from failpath.agent.tools import Tool, tool_table
from failpath.agent.toolstep import tool_step
from failpath.agent.tracing import build_run_trace
from failpath.core import AGENT_STATES, Abstained, Escalated, Outcome, PolicyError, StoreError
from failpath.guard.actions import Fallback, Reask, Retry
from failpath.guard.lint import Finding, LintResult
from failpath.guard.rules import Budget
from failpath.guard.text import jsonable
from failpath.guard.trace_ids import next_trace_id
from failpath.store.base import Store

__all__ = ["Agent", "RunBusy"]

log = logging.getLogger("failpath.agent")

# Which actions can settle each state without ending the run.
_SETTLING: dict[str, tuple[type, ...]] = {
    "tool_error": (Retry, FeedBack),
    "invalid_tool_args": (FeedBack, Block),
    "tool_output_injection": (Withhold,),
    "risky_tool_call": (RequireApproval, Block),
    "loop_detected": (Block, FeedBack),
    "tool_outcome_unknown": (FeedBack, Block, Retry),
    "provider_error": (Retry, Fallback),
    "timeout": (Retry, Fallback),
    "invalid_output": (Retry, Fallback, FeedBack),
    "budget_exceeded": (),
    "unexpected": (),
}


class Agent:
    """One policy over every run of an agent: its model step, its tools, its limits.

    - ``policy``: an ``fp.Policy`` whose rules may use the agent states (``fp.ToolError()``,
      ``fp.InvalidToolArgs()``, ``fp.ToolOutputInjection()``, ``fp.RiskyToolCall()``, ``fp.LoopDetected()``,
      ``fp.ToolOutcomeUnknown()``), ``fp.BudgetExceeded()`` for the run's limits, the guard's states for
      the model step (``fp.ProviderError()``, ``fp.Timeout()``, ``fp.InvalidOutput()``, output-side
      ``fp.State(...)`` on the final answer) and ``fp.Unexpected()``. Traces, tickets and checkpoints go
      to the policy's store.
    - ``model``: ``messages -> ModelTurn | str``; ``messages`` is a list of dicts: ``{"role": "user",
      "content": input}``, ``{"role": "assistant", "content": text, "tool_calls": [{"id", "name",
      "arguments"}]}``, ``{"role": "tool", "tool_call_id", "name", "content"}``. Text, or a turn without
      tool calls, is the final answer.
    - ``tools``: ``@fp.tool`` functions (plain functions are turned into tools).
    - ``max_steps``, ``max_tool_calls``: most model calls and tool runs in one run; ``deadline``: seconds
      of running (time waiting for an approval does not count); ``budget``: an ``fp.Budget`` of tokens
      and cost over the run. Reaching one is ``budget_exceeded``, checked before each step.
    - ``name``: recorded in checkpoints; ``ref``: ``"module:attribute"`` where this agent can be imported,
      so ``fp.resume(run_id)`` and ``failpath runs resume`` find it in another process.
    """

    def __init__(
        self,
        policy: Any,
        *,
        model: Callable[[list[dict[str, Any]]], Any],
        tools: Sequence[Any] = (),
        max_steps: int | None = None,
        max_tool_calls: int | None = None,
        deadline: float | None = None,
        budget: Budget | None = None,
        name: str | None = None,
        ref: str | None = None,
    ):
        if not hasattr(policy, "table") or not hasattr(policy, "trace_store"):
            raise PolicyError(f"Agent(policy={policy!r}): give an fp.Policy")
        if not callable(model):
            raise PolicyError(f"Agent(model={model!r}): model must be a callable messages -> ModelTurn | text")
        for field_name, value in (("max_steps", max_steps), ("max_tool_calls", max_tool_calls)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise PolicyError(f"Agent({field_name}={value!r}): {field_name} must be an integer of at least 1")
        if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline > 0):
            raise PolicyError(f"Agent(deadline={deadline!r}): deadline must be a positive number of seconds")
        if budget is not None and not isinstance(budget, Budget):
            raise PolicyError(f"Agent(budget={budget!r}): budget must be fp.Budget(tokens=..., cost=..., prices=...)")
        if ref is not None and (not isinstance(ref, str) or ref.count(":") != 1):
            raise PolicyError(f"Agent(ref={ref!r}): ref must be 'module:attribute', such as 'refunds.app:agent'")
        self.policy = policy
        self.model = model
        self.tools: dict[str, Tool] = tool_table(tools)
        self.max_steps = max_steps
        self.max_tool_calls = max_tool_calls
        self.deadline = None if deadline is None else float(deadline)
        self.budget = budget
        self.name = name or policy.name
        self.ref = ref
        self.is_async = is_async(model) or any(t.is_async for t in self.tools.values())
        self._rules = agent_rules(policy)
        self._check_actions()

    # ------------------------------------------------------------------ public
    def run(self, value: Any, *, run_id: str | None = None, loop: Any = None, observe: Callable[[Any], None] | None = None) -> Outcome:
        """Run the agent on ``value`` (the user's request) to one outcome.

        ``Escalated`` with state ``risky_tool_call`` means the run waits for an approval: resume it with
        :meth:`resume` (or ``fp.resume``) once the ticket is resolved or expired. ``run_id`` names the run
        (default: the trace id of its first outcome); a ``run_id`` the store holds already is a ``StoreError``.
        A store that keeps no checkpoints (a ``Store`` without ``add_checkpoint``) gets the trace, and the
        run cannot be resumed. ``loop`` is the event loop async steps are awaited on (what :meth:`arun`
        passes); an agent with an async model step or tool must be run with :meth:`arun`. ``observe`` is
        called with the run's ``Trace`` each time the run ends or suspends (what ``fp.check_agent`` reads
        the steps from), whether or not the policy has a store.
        """
        if self.is_async and loop is None:
            raise PolicyError(f"Agent({self.name!r}): its model step or a tool is async; run it with `await agent.arun(...)`")
        trace_id = next_trace_id()
        run_id = run_id or trace_id  # by default the run is named by its first trace: outcome.trace_id resumes it
        if not isinstance(run_id, str) or not run_id.strip():
            raise PolicyError(f"run(run_id={run_id!r}): a run id must be non-empty text")
        record = RunRecord(run_id, trace_id, value, time.time())
        record.loop = loop
        record.observer = observe
        store = self._store()
        if store is not None and type(store).add_checkpoint is Store.add_checkpoint:
            log.warning("failpath: %s keeps no run checkpoints; run %s cannot be resumed", type(store).__name__, run_id)
            record.checkpointed = False
        start = {"input": jsonable(value), "trace_id": record.trace_id, "time": record.time, "agent": self.name, "ref": self.ref}
        if store is None or not record.checkpointed:
            commit(record, None, Segment(), "start", start)
            return self._drive(record, store, fresh=True)
        config = {"agent": self.name, "policy": self.policy.name, "ref": self.ref}
        try:  # the run registered and its start checkpoint written in one transaction
            created = begin(record, store, config, start)
        except Exception as exc:  # a store that fails here still gets the trace; the run keeps no checkpoints
            log.error("failpath: cannot register run %s in the store (%s: %s); it runs without checkpoints", run_id, type(exc).__name__, exc)
            record.checkpointed = False
            commit(record, None, Segment(), "start", start)
        else:
            if not created:
                raise StoreError(f"a run {run_id!r} exists already in the store: resume it with agent.resume({run_id!r}), or choose another run id")
        return self._drive(record, store, fresh=True)

    __call__ = run

    async def arun(self, value: Any, *, run_id: str | None = None) -> Outcome:
        """:meth:`run` for an agent whose model step or tools are ``async def`` (``fp.llm.openai(AsyncOpenAI())``, say).

        The run's loop goes to a worker thread; each async step is awaited on the calling event loop.
        """
        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self.run, value, run_id=run_id, loop=loop)

    async def aresume(self, run_id: str) -> Outcome:
        """:meth:`resume` for an agent whose model step or tools are ``async def``."""
        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(self.resume, run_id, loop=loop)

    def resume(self, run_id: str, *, loop: Any = None, observe: Callable[[Any], None] | None = None) -> Outcome:
        """Continue a run from its last checkpoint (after a crash, or once its approval was decided).

        ``run_id`` is the run's id, or the ``trace_id`` of any outcome the run returned.

        A finished run returns its outcome again; a run still waiting for an approval returns
        ``Escalated`` again. Raises ``RunBusy`` when another process continues the run at the same time.
        ``observe`` is called with the trace of the part of the run this call drives, as in :meth:`run`.
        """
        store = self._store()
        if store is None:
            raise StoreError(f"resume({run_id!r}): the policy {self.policy.name!r} has no store, so its runs keep no checkpoints")
        checkpoints = store.checkpoints(run_id)
        if not checkpoints:  # the id of one of the run's traces finds the run too
            try:
                trace = store.get_trace(run_id)
            except Exception:
                trace = None
            found = trace.detail.get("run_id") if trace is not None else None
            if isinstance(found, str):
                run_id, checkpoints = found, store.checkpoints(found)
        if not checkpoints or checkpoints[0][1] != "start":
            raise StoreError(f"no agent run {run_id!r} in {getattr(store, 'path', 'the store')}; `failpath runs` lists the runs")
        start = checkpoints[0][2]
        if self.is_async and loop is None:
            raise PolicyError(f"Agent({self.name!r}): its model step or a tool is async; resume it with `await agent.aresume(...)`")
        record = RunRecord(run_id, start["trace_id"], start.get("input"), start.get("time") or time.time())
        record.loop = loop
        record.observer = observe
        for seq, kind, data in checkpoints:
            record.apply(seq, kind, data)
        record.segment_start = perf()
        if record.outcome is not None:
            return record.outcome
        if any(kind == "approval" for _, kind, _ in checkpoints):
            record.trace_id = next_trace_id()  # the suspended part has its trace already; this part gets its own
        return self._drive(record, store, fresh=False)

    def lint(self) -> LintResult:
        """The policy's lint, plus the agent states no rule handles.

        An agent's answer has no confidence and is not sampled, so ``low_confidence`` and ``inconsistent``
        are not asked for; ``budget_exceeded`` is judged by the agent's limits (``max_steps``,
        ``max_tool_calls``, ``deadline``, ``budget``), not the policy's per-call ones.
        """
        base = self.policy.lint()
        limited = bool(self.max_steps or self.max_tool_calls or self.deadline or self.budget)
        findings = [
            f for f in base.findings
            if not (f.code == "unhandled-state" and f.state in ("inconsistent", "low_confidence"))
            and not (f.state == "budget_exceeded" and f.code in ("unhandled-state", "state-cannot-happen", "rule-never-fires"))
        ]
        present = {rule.state.name for rule in self.policy.rules}
        for state in AGENT_STATES:
            if state in present:
                continue
            if state == "risky_tool_call" and not any(t.risky is not False for t in self.tools.values()):
                findings.append(Finding("state-cannot-happen", "note", "no tool is declared risky and no RiskyToolCall rule is given", state=state))
                continue
            if state == "tool_outcome_unknown" and all(t.idempotent for t in self.tools.values()):
                findings.append(Finding("state-cannot-happen", "note", "every tool is idempotent: a call cut off by a crash runs again", state=state))
                continue
            findings.append(Finding("unhandled-state", "warning", f"no rule handles {state}: it goes to the rule on unexpected, which ends the run; add fp.on(...) for it", state=state))
        if limited and "budget_exceeded" not in present:
            findings.append(Finding("unhandled-state", "warning", "no rule handles budget_exceeded: a spent run budget goes to the rule on unexpected; add fp.on(fp.BudgetExceeded())", state="budget_exceeded"))
        elif not limited:
            if "budget_exceeded" in present:
                index = next(i for i, rule in enumerate(self.policy.rules, start=1) if rule.state.name == "budget_exceeded")
                findings.append(Finding("rule-never-fires", "warning", "on(BudgetExceeded()) can never fire: the agent sets no max_steps, max_tool_calls, deadline or budget", rule=index, state="budget_exceeded"))
            else:
                findings.append(Finding("state-cannot-happen", "note", "the agent sets no max_steps, max_tool_calls, deadline or budget, so budget_exceeded cannot happen (a run may loop until loop_detected stops it)", state="budget_exceeded"))
        order = {"error": 0, "warning": 1, "note": 2}
        findings.sort(key=lambda f: (order.get(f.severity, 3), f.rule or 0))
        return LintResult(policy=base.policy, findings=tuple(findings), handled=base.handled, waived=base.waived)

    def tool_definitions(self) -> list[dict[str, Any]]:
        """``[{"name", "description", "parameters"}]``: the tools as a provider's tool definitions need them."""
        return [{"name": t.name, "description": t.description, "parameters": t.parameters_schema()} for t in self.tools.values()]

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, tools=[{', '.join(self.tools)}])"

    # ------------------------------------------------------------------ setup
    def _store(self) -> Any:
        return self.policy.trace_store.get()

    def _check_actions(self) -> None:
        for state_name, rules in self._rules.items():
            allowed = _SETTLING.get(state_name)
            if allowed is None:
                continue
            for _, index in rules:
                for action in self.policy.rules[index].actions:
                    if isinstance(action, Reask):
                        raise PolicyError(
                            f"Policy({self.policy.name!r}), rule {index + 1} on {state_name}: {action!r} re-asks a guarded system; "
                            "in an agent, use FeedBack (the model reads the problem at its next step) or Retry"
                        )
                    if isinstance(action, TERMINAL) or isinstance(action, allowed):
                        continue
                    raise PolicyError(
                        f"Policy({self.policy.name!r}), rule {index + 1} on {state_name}: {action!r} cannot act there; "
                        f"use {', '.join(k.__name__ for k in allowed) or 'no settling action'} or an action that ends the run"
                    )

    # ------------------------------------------------------------------ the loop
    def _drive(self, record: RunRecord, store: Any, *, fresh: bool) -> Outcome:
        """Run the loop from the record's last checkpoint; ``fresh``: the run has only its start checkpoint, check its input first."""
        try:
            try:
                if fresh:
                    record.current = Segment()
                    check_input(self, record, store)
                while True:
                    record.current = Segment()  # what the step does until its checkpoint
                    if record.waiting is not None:
                        await_decision(record, store)  # raises Ended while the ticket is open
                    elif record.pending:
                        tool_step(self, record, store, record.pending[0])
                    else:
                        model_step(self, record, store)
            except Ended as ended:
                result = self._finish(record, store, record.current, ended)
        except RunBusy:
            raise
        except Exception as exc:  # failpath's own error: the run still ends in an outcome
            log.exception("failpath: internal error while running agent %s (run %s)", self.name, record.run_id)
            seg = record.current if record.current is not None else Segment()
            seg.states.append("unexpected")
            seg.explanations.setdefault("unexpected", f"internal error: {type(exc).__name__}: {exc}")
            seg.actions.append("abstain")
            outcome = Abstained(reason="failpath could not finish this run", state="unexpected", trace_id=record.trace_id)
            try:
                return self._finish(record, store, seg, Ended(outcome))  # type: ignore[return-value]
            except RunBusy:
                raise
            except Exception:
                return outcome
        if isinstance(result, BaseException):  # a Raise action: the one way an exception leaves a run, on purpose
            raise result
        return result


    def _finish(self, record: RunRecord, store: Any, seg: Segment, ended: Ended) -> Outcome | BaseException:
        """Checkpoint the end (unless the run waits for an approval), write the trace; the outcome, or the exception to raise."""
        outcome = ended.outcome
        waits = isinstance(outcome, Escalated) and outcome.state == "risky_tool_call" and record.waiting is not None
        if store is not None and record.checkpointed and (ended.quiet or waits):
            write_held(record, store)  # no end checkpoint to carry them: what the run held back goes now
        if ended.quiet:
            return outcome  # type: ignore[return-value]
        if not waits:
            ended_with = outcome_to_dict(outcome) if outcome is not None else None
            raised = None if ended.exception is None else f"{type(ended.exception).__name__}: {ended.exception}"
            summary = {"outcome": ended_with, "raised": raised, "trace_id": record.trace_id}
            if store is not None and record.checkpointed:  # the end checkpoint and the run marked finished, in one write
                commit(record, store, seg, "end", {"outcome": ended_with, "raised": raised}, summary=summary)
            else:
                commit(record, store, seg, "end", {"outcome": ended_with, "raised": raised})
                if store is not None:
                    try:
                        store.finish_run(record.run_id, summary)
                    except Exception as exc:
                        log.warning("failpath: could not mark run %s finished (%s: %s)", record.run_id, type(exc).__name__, exc)
            seg = Segment()
        trace = build_run_trace(self, record, seg, outcome, ended.exception)
        self._write_trace(store, trace)
        if record.observer is not None:
            record.observer(trace)
        if ended.exception is not None:
            ended.exception.add_note(f"failpath run {record.run_id}, trace {trace.trace_id}")
            return ended.exception
        return outcome  # type: ignore[return-value]

    def _write_trace(self, store: Any, trace: Any) -> None:
        if store is not None:
            try:
                store.write_trace(trace)
            except Exception as exc:
                log.warning("failpath: could not write the trace of run (%s: %s)", type(exc).__name__, exc)
        for exporter in self.policy.exporters:
            try:
                exporter.export(trace)
            except Exception as exc:
                log.warning("failpath: exporter %r failed (%s: %s)", exporter, type(exc).__name__, exc)


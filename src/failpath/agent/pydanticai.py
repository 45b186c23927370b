"""The pydantic-ai adapter: one failpath policy over a ``pydantic_ai.Agent``'s run, through its capability hooks.

    guarded = fp.agent.guard_pydantic_ai(pydantic_agent, policy, max_steps=20)
    outcome = guarded.run_sync("Refund order A17")       # one of the five outcomes, one trace
    outcome = guarded.resume_sync(outcome.trace_id)      # after an approval's ticket is decided

pydantic-ai keeps driving its own loop; a capability (``FailpathCapability``) sees each model response
and each tool call and applies the policy's rules: ``invalid_tool_args`` (a validation error of the
tool's arguments), ``tool_error``, ``tool_output_injection``, ``risky_tool_call`` (``RiskyToolCall``'s
predicate), ``loop_detected`` (fingerprints over the whole run) and ``budget_exceeded`` (``max_steps``,
``max_tool_calls``, ``budget``, ``deadline``). ``FeedBack`` and ``Block`` answer the model through
pydantic-ai's own retry (``ModelRetry``) or as the tool's result, ``Withhold`` replaces the output,
``Retry`` runs the tool again, and the actions that end a run (``Abstain``, ``Default``, ``fp.Clarify``,
``Escalate``, ``RequireApproval``, ``Raise``) stop pydantic-ai's run and become the outcome.

``RequireApproval`` defers the call with pydantic-ai's own ``ApprovalRequired`` and keeps the waiting
run in the policy's store (:mod:`failpath.agent.pydanticai_approvals`): the run ends ``Escalated``, and
``resume`` / ``resume_sync`` continue it once the ticket is decided (an approved call runs, a rejected
one never does). Unlike ``fp.Agent``'s, a pydantic-ai run is not checkpointed between steps, so a run
killed half way is not resumed; with a store that keeps no checkpoints, ``RequireApproval`` opens the
ticket and ends the run for good. ``await guarded.run(prompt)`` is the async twin of ``run_sync``.
pydantic-ai is an optional extra: ``pip install "failpath[pydantic-ai]"``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from failpath.agent import pydanticai_approvals as held_calls
from failpath.agent.actions import Block, FeedBack, RequireApproval, Withhold
from failpath.agent.record import RunRecord
from failpath.agent.segment import TERMINAL as _TERMINAL, Segment as _Segment, agent_rules as _agent_rules
from failpath.agent.tracing import build_run_trace, step_entry
from failpath.core import (
    Abstained,
    Answered,
    ConfigError,
    Escalated,
    Outcome,
    OutputRejected,
    PolicyError,
    ProviderFailure,
    StoreError,
    Ticket,
    TicketStatus,
    is_transient_status,
)
from failpath.guard.actions import Escalate, Raise, Retry
from failpath.guard.resolve import plain_outcome
from failpath.guard.rules import Budget
from failpath.guard.text import canonical_text, jsonable, preview
from failpath.guard.trace_ids import next_trace_id

__all__ = ["guard_pydantic_ai", "GuardedPydanticAgent"]

_perf = time.perf_counter


class _Stop(Exception):
    """Internal: a rule ended the run; carries the outcome (or the exception a ``Raise`` action makes)."""

    def __init__(self, outcome: Outcome | None, exception: BaseException | None = None):
        super().__init__("failpath ended the run")
        self.outcome = outcome
        self.exception = exception


class _Record(RunRecord):
    """A pydantic-ai run's record: the calls it holds for approval besides what every run records."""

    def __init__(self, run_id: str, trace_id: str, value: Any, started: float, *, defer: bool):
        super().__init__(run_id, trace_id, value, started)
        self.defer = defer  # RequireApproval defers the call (the store keeps the run) rather than ending the run
        self.held: list[dict[str, Any]] = []  # the calls deferred for approval, with their tickets
        self.call: tuple[str, str, dict[str, Any]] | None = None  # the risky call being decided: (id, tool, arguments)
        self.continued = False  # this part continues a run that waited


def _import_pydantic_ai() -> Any:
    try:
        import pydantic_ai
    except ImportError as exc:
        raise ConfigError(f"the pydantic-ai adapter needs pydantic-ai ({exc.name} is missing): pip install 'failpath[pydantic-ai]'") from None
    return pydantic_ai


class GuardedPydanticAgent:
    """A ``pydantic_ai.Agent`` under a failpath policy. Build it with :func:`guard_pydantic_ai`."""

    def __init__(self, agent: Any, policy: Any, *, max_steps: int | None, max_tool_calls: int | None, deadline: float | None, budget: Budget | None, name: str | None):
        self.agent = agent
        self.policy = policy
        self.max_steps = max_steps
        self.max_tool_calls = max_tool_calls
        self.deadline = deadline
        self.budget = budget
        self.name = name or policy.name
        self._rules = _agent_rules(policy)
        self._holds_calls = any(isinstance(a, RequireApproval) for _, i in self._rules.get("risky_tool_call", ()) for a in policy.rules[i].actions)

    def run_sync(self, prompt: Any, *, run_id: str | None = None, capabilities: Sequence[Any] = (), observe: Callable[[Any], None] | None = None, **kwargs: Any) -> Outcome:
        """Run the pydantic-ai agent on ``prompt`` to one of the five outcomes (``kwargs`` go to ``agent.run_sync``).

        ``Escalated`` with state ``risky_tool_call`` means the run waits for an approval: continue it with
        :meth:`resume_sync` once the ticket is decided (``run_id`` names the run; default: the outcome's
        ``trace_id``). ``capabilities`` are more pydantic-ai capabilities for this run, inside failpath's
        (they see a tool call only once the policy let it run, and their errors and outputs are checked
        by it). ``observe`` is called with the run's ``Trace`` when it ends or waits, whether or not the
        policy has a store.
        """
        pydantic_ai = _import_pydantic_ai()
        record, capability, kwargs = self._begin(prompt, run_id, kwargs)
        try:
            result = self.agent.run_sync(prompt, capabilities=[capability, *capabilities], **kwargs)
        except BaseException as exc:
            return self._end(pydantic_ai, record, None, exc, observe)
        return self._end(pydantic_ai, record, result, None, observe)

    async def run(self, prompt: Any, *, run_id: str | None = None, capabilities: Sequence[Any] = (), observe: Callable[[Any], None] | None = None, **kwargs: Any) -> Outcome:
        """:meth:`run_sync` from a running event loop (``kwargs`` go to ``agent.run``)."""
        pydantic_ai = _import_pydantic_ai()
        record, capability, kwargs = self._begin(prompt, run_id, kwargs)
        try:
            result = await self.agent.run(prompt, capabilities=[capability, *capabilities], **kwargs)
        except BaseException as exc:
            return self._end(pydantic_ai, record, None, exc, observe)
        return self._end(pydantic_ai, record, result, None, observe)

    def resume_sync(self, run_id: str, *, capabilities: Sequence[Any] = (), observe: Callable[[Any], None] | None = None, **kwargs: Any) -> Outcome:
        """Continue a run that waits for approvals, once their tickets are decided: the approved calls run,
        the rejected (or expired) ones do not and the model is told so. Exactly once: a run another process
        continues already is a ``StoreError``; a run whose tickets are still open returns ``Escalated`` again;
        a finished run returns its outcome again."""
        pydantic_ai = _import_pydantic_ai()
        ready = self._continue(run_id, kwargs)
        if not isinstance(ready, tuple):
            return ready
        record, capability, kwargs = ready
        try:
            result = self.agent.run_sync(None, capabilities=[capability, *capabilities], **kwargs)
        except BaseException as exc:
            return self._end(pydantic_ai, record, None, exc, observe)
        return self._end(pydantic_ai, record, result, None, observe)

    async def resume(self, run_id: str, *, capabilities: Sequence[Any] = (), observe: Callable[[Any], None] | None = None, **kwargs: Any) -> Outcome:
        """:meth:`resume_sync` from a running event loop."""
        pydantic_ai = _import_pydantic_ai()
        ready = self._continue(run_id, kwargs)
        if not isinstance(ready, tuple):
            return ready
        record, capability, kwargs = ready
        try:
            result = await self.agent.run(None, capabilities=[capability, *capabilities], **kwargs)
        except BaseException as exc:
            return self._end(pydantic_ai, record, None, exc, observe)
        return self._end(pydantic_ai, record, result, None, observe)

    def waiting(self, run_id: str) -> tuple[str, dict[str, Any]] | None:
        """The held call whose ticket the run waits on first: ``(tool, arguments)``; None when it waits on none."""
        store = self.policy.trace_store.get()
        if not held_calls.keeps_checkpoints(store) or not store.checkpoints(run_id):
            return None  # the run was never kept: it ended, or an Escalate ended it on a ticket nothing waits on
        _, kind, data = held_calls.load(store, run_id)
        if kind != "approval":
            return None
        for held in data["waiting"]:
            if store.get_ticket(held["ticket_id"]).status is TicketStatus.OPEN:
                return held["tool"], dict(held["arguments"])
        return None

    def tool_names(self) -> tuple[str, ...]:
        """The names of the agent's tools that its toolsets list up front (an MCP server's are known only when a run starts)."""
        names: list[str] = []
        for toolset in getattr(self.agent, "toolsets", ()):
            tools = getattr(toolset, "tools", None)
            if isinstance(tools, Mapping):
                names.extend(str(name) for name in tools)
        return tuple(names)

    def is_risky(self, tool: str, arguments: Mapping[str, Any]) -> bool:
        """True when a ``RiskyToolCall`` rule of the policy flags a call of ``tool`` with ``arguments``."""
        return any(detector.check_call(tool, dict(arguments)) for detector, _ in self._rules.get("risky_tool_call", ()))

    def _begin(self, prompt: Any, run_id: str | None, kwargs: dict[str, Any]) -> tuple[_Record, Any, dict[str, Any]]:
        trace_id = next_trace_id()
        defer = self._holds_calls and held_calls.keeps_checkpoints(self.policy.trace_store.get())
        record = _Record(run_id or trace_id, trace_id, prompt, time.time(), defer=defer)
        return record, _capability_class()(self, record), self._deferrable(kwargs) if defer else kwargs

    def _deferrable(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` whose ``output_type`` lets the run end with pydantic-ai's ``DeferredToolRequests``."""
        from pydantic_ai import DeferredToolRequests

        base = kwargs.get("output_type", getattr(self.agent, "output_type", str))
        types = list(base) if isinstance(base, (list, tuple)) else [base]
        if DeferredToolRequests not in types:
            types.append(DeferredToolRequests)
        return {**kwargs, "output_type": types}

    def _continue(self, run_id: str, kwargs: dict[str, Any]) -> Outcome | tuple[_Record, Any, dict[str, Any]]:
        """What continuing ``run_id`` needs (its record, failpath's capability, the run's arguments), or the outcome
        to return as it is (a finished run's, or ``Escalated`` while a ticket is open)."""
        from pydantic_ai import DeferredToolResults, ToolDenied
        from pydantic_ai.messages import ModelMessagesTypeAdapter

        store = self.policy.trace_store.get()
        seq, kind, data = held_calls.load(store, run_id)
        if kind == "end":
            return held_calls.ended_outcome(data) or Abstained(reason="the run raised", state="unexpected")
        if kind != "approval":
            raise StoreError(f"run {run_id}: a continuation of it started already (a continuation that stopped half way cannot be repeated)")
        decisions = held_calls.decide(store, data["waiting"], data["trace_id"])
        if isinstance(decisions, Escalated):
            return decisions
        held_calls.claim(store, run_id, seq + 1, decisions)
        record = _Record(run_id, next_trace_id(), data["prompt"], time.time(), defer=True)
        record.seq = seq + 2
        record.continued = True
        held_calls.restore(record, data)
        approvals: dict[str, Any] = {}
        for held in data["waiting"]:
            decision = decisions[held["call_id"]]
            record.notes.append(f"approval {held['ticket_id']} of {held['tool']}: {decision}")
            approvals[held["call_id"]] = True if decision == "approve" else ToolDenied(f"a reviewer rejected {held['tool']}; the call did not run")
        kwargs = {**kwargs, "message_history": ModelMessagesTypeAdapter.validate_python(data["messages"]),
                  "deferred_tool_results": DeferredToolResults(approvals=approvals)}
        return record, _capability_class()(self, record), self._deferrable(kwargs)

    def _end(self, pydantic_ai: Any, record: RunRecord, result: Any, error: BaseException | None, observe: Callable[[Any], None] | None) -> Outcome:
        """The outcome of a finished pydantic-ai run (``result``) or of the exception that ended it; writes its trace."""
        exception: BaseException | None = None
        suspended = False
        if error is None and type(result.output).__name__ == "DeferredToolRequests":
            outcome, suspended = self._suspend(record, result), bool(record.held)
        elif error is None:
            outcome: Outcome = Answered(result.output, None, False, state=None, trace_id=record.trace_id)
        elif isinstance(error, _Stop):
            outcome, exception = error.outcome, error.exception  # type: ignore[assignment]
        elif isinstance(error, pydantic_ai.UsageLimitExceeded):
            outcome = self._ended(record, "budget_exceeded", str(error))
        elif isinstance(error, pydantic_ai.UnexpectedModelBehavior):  # the model's answers stayed unusable (empty, off-schema)
            rejected = OutputRejected(f"pydantic-ai gave up on the model's output: {error}")
            rejected.__cause__ = error
            outcome = self._model_failure(record, rejected)
        elif isinstance(error, Exception):  # the model's provider failed, or pydantic-ai gave up
            outcome = self._model_failure(record, error)
        else:
            raise error
        trace = build_run_trace(self, record, _Segment(), outcome, exception)
        store = self.policy.trace_store.get()
        if record.continued and not suspended:
            try:
                held_calls.save_end(store, record.run_id, record.seq, outcome, None if exception is None else f"{type(exception).__name__}: {exception}")
            except Exception as exc:
                trace.detail.setdefault("notes", []).append(f"the end of the run could not be kept ({type(exc).__name__}: {exc})")
        if store is not None:
            try:
                store.write_trace(trace)
            except Exception:
                pass
        for exporter in self.policy.exporters:
            try:
                exporter.export(trace)
            except Exception:
                pass
        if observe is not None:
            observe(trace)
        if exception is not None:
            raise exception
        return outcome

    # ------------------------------------------------------------------ decisions
    def _suspend(self, record: _Record, result: Any) -> Outcome:
        """The run ended deferring the calls it holds: keep what continuing it needs; ``Escalated`` on the first ticket."""
        if not record.held:  # a deferral of the agent's own (its tools' ApprovalRequired), which failpath did not open a ticket for
            return self._ended(record, "unexpected", "the run ended waiting on tool calls that failpath holds no ticket for")
        try:
            held_calls.save_waiting(self.policy.trace_store.get(), record, result.all_messages(), self.name, record.seq)
        except Exception as exc:
            record.notes.append(f"the waiting run could not be kept, so it cannot be continued ({type(exc).__name__}: {exc})")
        first = record.held[0]
        return Escalated(ticket_id=first["ticket_id"], queue=first["queue"], state="risky_tool_call", trace_id=record.trace_id)

    def _hold(self, record: _Record, entry: dict[str, Any], action: RequireApproval, state: str, why: str) -> None:
        """Open the approval's ticket and defer the call (pydantic-ai's ``ApprovalRequired``); return when no ticket could be opened."""
        from pydantic_ai.exceptions import ApprovalRequired

        call_id, tool, arguments = record.call  # type: ignore[misc]
        record.actions.append(action.name)
        shown = {"tool": tool, "arguments": preview(canonical_text(arguments)), "why": why}
        ticket_id = self._ticket(record, action.queue, state, action.deadline, action.default.name, shown)
        if ticket_id is None:
            return
        record.held.append({"call_id": call_id, "tool": tool, "arguments": jsonable(arguments), "ticket_id": ticket_id,
                            "queue": action.queue, "default": action.default.name})
        entry["ticket_id"] = ticket_id
        raise ApprovalRequired()

    def _model_failure(self, record: RunRecord, exc: BaseException) -> Outcome:
        state, index = self.policy.table.classify(exc)
        cause = exc.__cause__ if exc.__cause__ is not None and not isinstance(exc, OutputRejected) else exc
        if index is None:
            state2, index2 = self.policy.table.classify(cause)
            if index2 is not None:
                state, index = state2, index2
        why = f"{type(cause).__name__}: {cause}"
        record.steps.append(step_entry("model", "model", state=state, error=why))
        return self._ended(record, state, why, index=index)

    def _ended(self, record: RunRecord, state: str, why: str, *, index: int | None = None) -> Outcome:
        """The outcome of the first action of the rule on ``state`` that ends a run (unexpected's when none)."""
        record.states.append(state)
        record.explanations.setdefault(state, why)
        if index is None:
            rules = self._rules.get(state)
            index = rules[0][1] if rules else None
        chains = [] if index is None else [(state, index)]
        chains.append(("unexpected", self.policy.table.unexpected_index))
        for decided, rule_index in chains:
            for action in self.policy.rules[rule_index].actions:
                try:
                    self._terminal(record, action, decided, why)
                except _Stop as stop:
                    if stop.exception is not None:
                        raise
                    return stop.outcome  # type: ignore[return-value]
        record.actions.append("abstain")
        return Abstained(reason="no action of the policy resolved the run", state=state, trace_id=record.trace_id)

    def _terminal(self, record: RunRecord, action: Any, state: str, why: Any) -> None:
        """Raise ``_Stop`` with the outcome of an action that ends the run; return when it cannot."""
        trace_id = record.trace_id
        outcome = plain_outcome(action, record.value, state, trace_id, act=record.actions.append, note=record.notes.append)
        if outcome is not None:
            raise _Stop(outcome)
        if isinstance(action, (Escalate, RequireApproval)):
            record.actions.append(action.name)
            default = action.default.name if isinstance(action, RequireApproval) else action.default
            ticket_id = self._ticket(record, action.queue, state, action.deadline, default, why)
            if ticket_id is not None:
                raise _Stop(Escalated(ticket_id=ticket_id, queue=action.queue, state=state, trace_id=trace_id))
            return
        if isinstance(action, Raise):
            record.actions.append("raise")
            raise _Stop(None, exception=action.make(f"{self.policy.name}: {state}: {why}"))

    def _ticket(self, record: RunRecord, queue: str, state: str, deadline: float | None, default: Any, output: Any) -> str | None:
        store = self.policy.trace_store.get()
        if store is None:
            record.notes.append(f"{state}: no store to keep a ticket in {queue!r}")
            return None
        created = time.time()
        text = canonical_text(record.value)
        ticket = Ticket(
            ticket_id=next_trace_id(), queue=queue, created=created, policy=self.policy.name, trace_id=record.trace_id,
            input_preview=preview(text), input_raw=text if self.policy.store_raw_inputs else None, output=jsonable(output),
            confidence=None, state=state, deadline=None if deadline is None else created + deadline, default=default,
        )
        try:
            return store.create_ticket(ticket)
        except Exception as exc:
            record.notes.append(f"{state}: the store refused the ticket ({type(exc).__name__}: {exc})")
            return None

    def _settle(self, record: RunRecord, entry: dict[str, Any], state: str, why: str) -> tuple[str, str]:
        """The rule on a tool-side ``state``: ``(action name, message for the model)``, or ``_Stop``."""
        entry["state"] = state
        record.states.append(state)
        record.explanations.setdefault(state, why)
        rules = self._rules.get(state)
        chains = ([(state, rules[0][1])] if rules else []) + [("unexpected", self.policy.table.unexpected_index)]
        if not rules:
            record.states.append("unexpected")
        for decided, index in chains:
            for action in self.policy.rules[index].actions:
                entry["action"] = action.name
                if isinstance(action, FeedBack):
                    record.actions.append("feed_back")
                    return "feed_back", action.message or f"error: {why}"
                if isinstance(action, Block):
                    record.actions.append("block")
                    return "block", action.message or f"blocked: {why}. The call did not run."
                if isinstance(action, Withhold):
                    record.actions.append("withhold")
                    return "withhold", action.message or "[withheld: the output of this tool looked like instructions aimed at you and was not shown.]"
                if isinstance(action, RequireApproval) and record.defer and record.call is not None and record.call[0] == entry.get("call_id"):
                    self._hold(record, entry, action, decided, why)
                    continue
                if isinstance(action, _TERMINAL) or isinstance(action, RequireApproval):
                    self._terminal(record, action, decided, why)
        record.actions.append("abstain")
        raise _Stop(Abstained(reason="no action of the policy resolved the run", state=state, trace_id=record.trace_id))

    def _budget(self, record: RunRecord, kind: str) -> str | None:
        if kind == "model" and self.max_steps is not None and record.model_turns >= self.max_steps:
            return f"{record.model_turns} of max_steps={self.max_steps} model steps used"
        if kind == "tool" and self.max_tool_calls is not None and record.tool_calls >= self.max_tool_calls:
            return f"{record.tool_calls} of max_tool_calls={self.max_tool_calls} tool calls used"
        if self.deadline is not None and time.time() - record.time >= self.deadline:
            return f"the run's deadline of {self.deadline:g}s has passed"
        if self.budget is not None and self.budget.tokens is not None and record.tokens_in + record.tokens_out >= self.budget.tokens:
            return f"{record.tokens_in + record.tokens_out:g} of {self.budget.tokens} tokens used"
        return None


@functools.cache
def _capability_class() -> type:
    """The capability class (built on first use, so pydantic-ai is imported only when the adapter runs)."""
    pydantic_ai = _import_pydantic_ai()
    from pydantic_ai.capabilities import AbstractCapability

    @dataclass
    class FailpathCapability(AbstractCapability):
        """Applies a failpath policy to each model response and tool call of a pydantic-ai run."""

        guard: Any = None
        record: Any = None
        _last: float = field(default=0.0)

        async def before_model_request(self, ctx: Any, request_context: Any) -> Any:
            why = self.guard._budget(self.record, "model")
            if why is not None:
                raise _Stop(self.guard._ended(self.record, "budget_exceeded", why))
            self._last = _perf()
            return request_context

        async def after_model_request(self, ctx: Any, *, request_context: Any, response: Any) -> Any:
            _record_response(self.record, response, self._last)
            return response

        async def wrap_tool_validate(self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any) -> Any:
            try:
                return await handler(args)
            except pydantic_ai.ModelRetry:
                raise
            except Exception as exc:  # pydantic's ValidationError: the arguments do not fit the schema
                entry = step_entry("tool", call.tool_name, call_id=call.tool_call_id, arguments=args)
                self.record.steps.append(entry)
                _, message = self.guard._settle(self.record, entry, "invalid_tool_args", f"the arguments of {call.tool_name} do not fit its schema: {exc}")
                entry["result"] = preview(message)
                raise pydantic_ai.ModelRetry(message) from None

        async def wrap_tool_execute(self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any) -> Any:
            return await _execute_tool(pydantic_ai, self.guard, self.record, call, args, handler, approved=bool(getattr(ctx, "tool_call_approved", False)))

    return FailpathCapability


def _record_response(record: Any, response: Any, started: float) -> None:
    """Count a model response of a pydantic-ai run (its turn and tokens) and add its step to the record."""
    record.model_turns += 1
    usage = getattr(response, "usage", None)
    tokens = {"input_tokens": float(getattr(usage, "input_tokens", 0) or 0), "output_tokens": float(getattr(usage, "output_tokens", 0) or 0)}
    record.tokens_in += tokens["input_tokens"]
    record.tokens_out += tokens["output_tokens"]
    calls = [p for p in response.parts if getattr(p, "part_kind", "") == "tool-call"]
    text = "".join(getattr(p, "content", "") for p in response.parts if getattr(p, "part_kind", "") == "text")
    entry = step_entry("model", "model", latency_ms=(_perf() - started) * 1000.0, usage=tokens, text=text or None)
    if calls:
        entry["calls"] = [c.tool_name for c in calls]
    record.steps.append(entry)


async def _execute_tool(pydantic_ai: Any, guard: Any, record: Any, call: Any, args: Any, handler: Any, *, approved: bool = False) -> Any:
    """A tool call of a pydantic-ai run under the policy: its result, or the message the model reads in its place."""
    entry = step_entry("tool", call.tool_name, call_id=call.tool_call_id, arguments=args)
    record.steps.append(entry)
    why = guard._budget(record, "tool")
    if why is not None:
        entry["state"] = "budget_exceeded"
        raise _Stop(guard._ended(record, "budget_exceeded", why))
    fingerprint = f"{call.tool_name}({canonical_text(args)})"
    loop = guard._rules.get("loop_detected")
    if loop:
        detector = loop[0][0]
        seen = record.fingerprints[fingerprint] + 1
        if seen >= detector.block:
            _, message = guard._settle(record, entry, "loop_detected", f"{fingerprint} would be call {seen} with the same arguments in this run (block={detector.block})")
            entry["result"] = preview(message)
            return message
    if approved:  # a reviewer approved this held call: the run was continued with that decision
        entry["approval"] = "approved"
    for detector, _ in () if approved else guard._rules.get("risky_tool_call", ()):
        risky = detector.check_call(call.tool_name, dict(args) if isinstance(args, dict) else {})
        if risky:
            record.call = (call.tool_call_id, call.tool_name, dict(args) if isinstance(args, dict) else {})
            _, message = guard._settle(record, entry, "risky_tool_call", risky)
            entry["result"] = preview(message)
            return message
    record.fingerprints[fingerprint] += 1
    result, message = await _run_tool(pydantic_ai, guard, record, entry, args, handler)
    if message is not None:
        entry["result"] = preview(message)
        return message
    text = canonical_text(result)
    for detector, _ in guard._rules.get("tool_output_injection", ()):
        why = detector.check_output(text)
        if why is not None:
            _, message = guard._settle(record, entry, "tool_output_injection", f"{call.tool_name}: {why}")
            entry["result"] = preview(message)
            return message
    entry["result"] = preview(text)
    return result


async def _run_tool(pydantic_ai: Any, guard: Any, record: Any, entry: dict[str, Any], args: Any, handler: Any) -> tuple[Any, str | None]:
    """Run the tool, again while the first rule on ``tool_error`` retries: (its result, None), or (None, the message for the model)."""
    retries = 0
    while True:
        start = _perf()
        record.tool_calls += 1
        try:
            result = await handler(args)
            error = None
        except (pydantic_ai.ModelRetry, _Stop):
            raise
        except Exception as exc:
            result, error = None, exc
        entry["latency_ms"] = round(entry.get("latency_ms", 0.0) + (_perf() - start) * 1000.0, 3)
        if error is None:
            return result, None
        record.tool_failures += 1
        described = f"{type(error).__name__}: {error}"
        entry["error"] = described
        rules = guard._rules.get("tool_error") or []
        retry = next((a for _, i in rules[:1] for a in guard.policy.rules[i].actions if isinstance(a, Retry)), None)
        status = getattr(error, "status", None)
        transient = not (isinstance(error, ProviderFailure) and status is not None and not is_transient_status(status))
        if retry is not None and retries < retry.times and transient and guard._budget(record, "tool") is None:
            retries += 1
            record.states.append("tool_error")
            record.actions.append("retry")
            continue
        _, message = guard._settle(record, entry, "tool_error", described)
        return None, message


def guard_pydantic_ai(
    agent: Any,
    policy: Any,
    *,
    max_steps: int | None = None,
    max_tool_calls: int | None = None,
    deadline: float | None = None,
    budget: Budget | None = None,
    name: str | None = None,
) -> GuardedPydanticAgent:
    """Put ``agent`` (a ``pydantic_ai.Agent``) under ``policy``: ``guard_pydantic_ai(agent, policy).run_sync(prompt)``."""
    _import_pydantic_ai()
    if not hasattr(agent, "run_sync"):
        raise PolicyError(f"guard_pydantic_ai({agent!r}): give a pydantic_ai.Agent")
    if not hasattr(policy, "table"):
        raise PolicyError(f"guard_pydantic_ai(policy={policy!r}): give an fp.Policy")
    return GuardedPydanticAgent(agent, policy, max_steps=max_steps, max_tool_calls=max_tool_calls, deadline=deadline, budget=budget, name=name)

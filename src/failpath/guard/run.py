"""One guarded call's record while it is being decided: attempts, states, actions, usage, notes.

A :class:`Run` is created per call by the driver; the step machine (:mod:`failpath.guard.decide`) and
the terminal actions (:mod:`failpath.guard.resolve`) fill it in, and :mod:`failpath.guard.tracing`
turns it into the call's ``Trace``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from failpath.core import Attempt, real_number
from failpath.guard.actions import Retry
from failpath.guard.steps import NO_VOTE, CallStep, Route
from failpath.guard.stores import StoreHandle
from failpath.guard.table import PolicyTable
from failpath.guard.text import canonical_text, safe_repr
from failpath.guard.trace_ids import next_trace_id

__all__ = ["Run"]

_perf = time.perf_counter


class Run:
    """Everything one guarded call decides and records.

    Fields that most calls never change are class-level defaults, so a clean call sets few attributes.
    """

    degraded = False
    meta: Any = None
    explanations: dict[str, Any] | None = None
    notes: list[str] | None = None
    detail: dict[str, Any] | None = None
    calls = 0
    tokens_in = 0.0
    tokens_out = 0.0
    cost = 0.0
    cursors: dict[int, list[int]] | None = None
    last_error: BaseException | None = None
    last_output: Any = None  # the JSON-safe rendering of the latest call's value
    last_confidence: float | None = None
    answer: Any = None
    answer_confidence: float | None = None
    answer_output: Any = None  # the JSON-safe rendering of ``answer``, once made
    decided: str | None = None
    ticket_id: str | None = None
    feedback: Any = None  # the latest fp.Feedback a re-ask sent
    asking: Any = None  # the fp.Feedback of the call being read (its samples are drawn with it), or None
    stored_trace: Any = None  # the trace written with an escalation's ticket (then not queued again)

    def __init__(self, table: PolicyTable, system: Any, system_name: str, system_async: bool, value: Any, store: StoreHandle):
        self.table = table
        self.value = value
        self.trace_id = next_trace_id()
        self.store = store
        self.time = time.time()
        self.start = _perf()
        self.text = canonical_text(value)
        self.system = system
        self.system_name = system_name
        self.system_async = system_async
        self.attempts: list[Attempt] = []
        self.states: list[str] = []
        self.actions: list[str] = []
        self.last_raw: Any = NO_VOTE  # the latest call's value as the system returned it

    def time_left(self) -> float | None:
        """Seconds left before the policy's deadline (at least a millisecond), or None without a deadline."""
        deadline = self.table.deadline
        return None if deadline is None else max(deadline - (_perf() - self.start), 1e-3)

    def call_step(self, count: int | None = None, feedback: Any = None) -> CallStep:
        """The step that calls the current system (``count`` calls for samples; with ``feedback`` for a
        re-ask), under the time left."""
        table = self.table
        limit = table.timeout_after
        is_deadline = False
        if table.deadline is not None:
            remaining = max(table.deadline - (_perf() - self.start), 1e-3)
            if limit is None or remaining < limit:
                limit, is_deadline = remaining, True
        return CallStep(self.system, self.system_async, limit, is_deadline, count, feedback)

    # ------------------------------------------------------------------ attempts
    def add_attempt(
        self, action: str, state: str | None, error: str | None, output: Any,
        confidence: float | None, latency_ms: float, usage: dict[str, float] | None,
    ) -> None:
        """Record one attempt of the current system (numbered in order)."""
        self.attempts.append(
            Attempt(len(self.attempts) + 1, action, self.system_name, state, error, output, confidence, latency_ms, usage or {})
        )

    def settle_attempt(self, state: str | None) -> None:
        """Set the state found by the output checks on the latest call's attempt."""
        for i in range(len(self.attempts) - 1, -1, -1):
            attempt = self.attempts[i]
            if attempt.action != "sample":
                self.attempts[i] = dataclasses.replace(attempt, state=state)
                return

    # ------------------------------------------------------------------ routing
    def record(self, route: Route) -> Route:
        """Note a detected state and map it to its rule (to ``unexpected`` when no rule claims it)."""
        name, index, why, input_side = route
        self.states.append(name)
        self.explain(name, why)
        if index is None:
            if name != "unexpected":
                why = f"{name} has no rule: {why}" if isinstance(why, str) else f"{name} has no rule"
                self.states.append("unexpected")
                self.explain("unexpected", why)
            name, index = "unexpected", self.table.unexpected_index
        self.decided = name
        return (name, index, why, input_side)

    def budget_route(self, why: str) -> Route:
        """The route to ``budget_exceeded``, for the reason given."""
        return ("budget_exceeded", self.table.budget_index, why, False)

    def budget_block(self, calls: int) -> str | None:
        """Why ``calls`` more system calls would break a budget, or None."""
        table = self.table
        if table.max_attempts is not None and self.calls + calls > table.max_attempts:
            return f"{self.calls} of max_attempts={table.max_attempts} calls used"
        if table.deadline is not None and _perf() - self.start >= table.deadline:
            return f"the deadline of {table.deadline:g}s has passed"
        budget = table.budget
        if budget is not None:
            if budget.tokens is not None and self.tokens_in + self.tokens_out >= budget.tokens:
                return f"{self.tokens_in + self.tokens_out:g} of {budget.tokens} tokens used"
            if budget.cost is not None and self.cost >= budget.cost:
                return f"cost {self.cost:.6g} of {budget.cost:g} spent"
        return None

    def add_usage(self, usage: Any) -> dict[str, float] | None:
        """Count a call's token usage (and its cost, when the budget has prices); what the attempt records."""
        if not usage or not hasattr(usage, "get"):
            return None
        try:
            tokens_in = real_number(usage.get("input_tokens") or 0)
            tokens_out = real_number(usage.get("output_tokens") or 0)
            if tokens_in is None or tokens_out is None or tokens_in != tokens_in or tokens_out != tokens_out:
                raise ValueError("not a number")
        except (TypeError, ValueError):
            self.note(f"usage {safe_repr(usage)} is not numeric; ignored")
            return None
        recorded: dict[str, float] = {"input_tokens": tokens_in, "output_tokens": tokens_out}
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        budget = self.table.budget
        if budget is not None and budget.prices:
            model = usage.get("model")
            price = budget.price_of(model if isinstance(model, str) else None)
            if price is None:
                self.note(f"no price for model {model!r}; its cost is not counted")
            else:
                cost = tokens_in * price[0] + tokens_out * price[1]
                recorded["cost"] = cost
                self.cost += cost
        return recorded

    def next_action(self, index: int) -> Any:
        """The next action of rule ``index`` (a ``Retry`` is returned once per retry it allows), or None."""
        if self.cursors is None:
            self.cursors = {}
        cursor = self.cursors.get(index)
        if cursor is None:
            cursor = self.cursors[index] = [0, 0]
        actions = self.table.rules[index].actions
        while cursor[0] < len(actions):
            action = actions[cursor[0]]
            if isinstance(action, Retry):
                if cursor[1] < action.times:
                    cursor[1] += 1
                    return action
                cursor[0] += 1
                cursor[1] = 0
                continue
            cursor[0] += 1
            return action
        return None

    def retries_used(self, index: int) -> int:
        """How many retries the current ``Retry`` action of rule ``index`` has handed out."""
        return self.cursors[index][1]  # type: ignore[index]

    def skip_rest(self, index: int) -> None:
        """Move rule ``index`` past its current action (a retry that must not run again)."""
        cursor = self.cursors[index]  # type: ignore[index]
        cursor[0] += 1
        cursor[1] = 0

    # ------------------------------------------------------------------ detail
    def note(self, text: str) -> None:
        """Add a note to the trace's detail (something went wrong that did not change the outcome)."""
        if self.notes is None:
            self.notes = []
        self.notes.append(text)

    def explain(self, state: str, why: Any) -> None:
        """Keep the first explanation given for ``state``."""
        if self.explanations is None:
            self.explanations = {}
        self.explanations.setdefault(state, why)

    def set_detail(self, key: str, value: Any) -> None:
        """Set one item of the trace's detail (reason, question, queue)."""
        if self.detail is None:
            self.detail = {}
        self.detail[key] = value

    def is_clean(self) -> bool:
        """True when the call answered with nothing to record beyond its attempts (no state, action, note or usage)."""
        return (
            self.detail is None and self.explanations is None and self.notes is None and not self.actions
            and not self.states and not self.tokens_in and not self.tokens_out
        )

"""An agent run's record while it runs, rebuilt from its checkpoints when it is resumed.

A run is a list of checkpoints (see :mod:`failpath.store.sqlite.checkpoints`): ``start``, then for each
completed step a ``model`` or ``tool`` checkpoint (a ``started`` one is written before a tool runs), an
``approval`` when a call waits for a person, a ``decision`` when one was taken, and ``end``.
:meth:`RunRecord.apply` folds one checkpoint into the record; the driver builds the same record as it
goes, by applying each checkpoint it writes, so a resumed run is exactly where the first one stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from failpath.agent.tools import ModelTurn, ToolCall
from failpath.core import Abstained, Answered, Clarify, Defaulted, Escalated, Outcome
from failpath.guard.text import jsonable

__all__ = ["RunRecord", "outcome_to_dict", "outcome_from_dict"]


class RunRecord:
    """Everything a run has done so far: messages, counters, loop fingerprints, pending calls, trace steps."""

    def __init__(self, run_id: str, trace_id: str, value: Any, started: float):
        self.run_id = run_id
        self.trace_id = trace_id
        self.value = value
        self.time = started
        self.seq = 0  # the next checkpoint's number
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": value}]
        self.steps: list[dict[str, Any]] = []  # the trace's steps
        self.states: list[str] = []
        self.actions: list[str] = []
        self.notes: list[str] = []
        self.explanations: dict[str, Any] = {}
        self.model_turns = 0
        self.tool_calls = 0
        self.tokens_in = 0.0
        self.tokens_out = 0.0
        self.cost = 0.0
        self.active = 0.0  # seconds spent running (not waiting for a person)
        self.fingerprints: Counter[str] = Counter()
        self.seen_results: set[str] = set()
        self.stalled = 0  # tool results in a row that brought nothing new
        self.tool_failures = 0
        self.pending: list[ToolCall] = []  # calls of the latest model turn not settled yet
        self.started: set[str] = set()  # call ids whose tool started running
        self.waiting: dict[str, Any] | None = None  # the approval a call waits for
        self.decisions: dict[str, str] = {}  # call id -> "approve" / "reject"
        self.outcome: Outcome | None = None
        self.segment_start = time.perf_counter()
        self.checkpointed = True  # False when the store keeps no checkpoints (the run cannot be resumed)
        self.held: list[tuple[int, str, dict[str, Any]]] = []  # checkpoints made, not written yet (segment.commit)
        self.current: Any = None  # the driver's work since the last checkpoint
        self.loop: Any = None  # the event loop async steps are awaited on (arun), else None
        self.observer: Any = None  # called with the run's trace when it ends or suspends (run(observe=...))

    # ------------------------------------------------------------------ replay
    def apply(self, seq: int, kind: str, data: Mapping[str, Any]) -> None:
        """Fold checkpoint ``seq`` into the record."""
        self.seq = seq + 1
        self.steps.extend(data.get("steps") or ())
        self.states.extend(data.get("states") or ())
        self.actions.extend(data.get("actions") or ())
        self.notes.extend(data.get("notes") or ())
        for state, why in (data.get("explanations") or {}).items():
            self.explanations.setdefault(state, why)
        self.active += float(data.get("active") or 0.0)
        usage = data.get("usage") or {}
        self.tokens_in += float(usage.get("input_tokens") or 0)
        self.tokens_out += float(usage.get("output_tokens") or 0)
        self.cost += float(usage.get("cost") or 0)
        self.model_turns += int(data.get("model_calls") or 0)
        self.tool_calls += int(data.get("tool_runs") or 0)
        self.tool_failures += int(data.get("tool_failures") or 0)
        if kind == "model":
            turn = ModelTurn.from_dict(data["turn"])
            if "feedback" in data:
                self.messages.append({"role": "assistant", "content": turn.text, "tool_calls": []})
                self.messages.append({"role": "user", "content": data["feedback"]})
                return
            self.messages.append(
                {"role": "assistant", "content": turn.text, "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls]}
            )
            self.pending = list(turn.tool_calls)
        elif kind == "started":
            self.started.add(data["call_id"])
        elif kind == "tool":
            call_id = data["call_id"]
            for i, pending in enumerate(self.pending):  # the first pending call with that id (ids may repeat)
                if pending.id == call_id:
                    del self.pending[i]
                    break
            self.started.discard(call_id)
            self.decisions.pop(call_id, None)
            self.messages.append({"role": "tool", "tool_call_id": call_id, "name": data["name"], "content": data["message"]})
            if data.get("fingerprint"):
                self.fingerprints[data["fingerprint"]] += 1
            if data.get("result_digest") is not None:
                if data["result_digest"] in self.seen_results:
                    self.stalled += 1
                else:
                    self.seen_results.add(data["result_digest"])
                    self.stalled = 0
        elif kind == "approval":
            self.waiting = dict(data)
        elif kind == "decision":
            self.waiting = None
            self.decisions[data["call_id"]] = data["decision"]
        elif kind == "end":
            if data.get("outcome") is None:  # a Raise action ended it: the exception was raised then
                self.outcome = Abstained(reason=f"the run raised {data.get('raised') or 'an exception'}", state=None, trace_id=self.trace_id)
            else:
                self.outcome = outcome_from_dict(data["outcome"])

    def elapsed(self) -> float:
        """Seconds the run has been running: earlier segments plus this one."""
        return self.active + (time.perf_counter() - self.segment_start)


def outcome_to_dict(outcome: Outcome) -> dict[str, Any]:
    """The outcome as JSON-safe data (what the ``end`` checkpoint keeps)."""
    data: dict[str, Any] = {"kind": outcome.kind, "state": outcome.state, "trace_id": outcome.trace_id}
    if isinstance(outcome, Answered):
        data.update(value=jsonable(outcome.value), confidence=outcome.confidence, degraded=outcome.degraded)
    elif isinstance(outcome, Defaulted):
        data.update(value=jsonable(outcome.value), reason=outcome.reason)
    elif isinstance(outcome, Abstained):
        data["reason"] = outcome.reason
    elif isinstance(outcome, Clarify):
        data["question"] = outcome.question
    elif isinstance(outcome, Escalated):
        data.update(ticket_id=outcome.ticket_id, queue=outcome.queue)
    return data


def outcome_from_dict(data: Mapping[str, Any]) -> Outcome:
    """The outcome :func:`outcome_to_dict` rendered."""
    kind, state, trace_id = data["kind"], data.get("state"), data.get("trace_id")
    if kind == "answered":
        return Answered(data.get("value"), data.get("confidence"), bool(data.get("degraded")), state=state, trace_id=trace_id)
    if kind == "defaulted":
        return Defaulted(value=data.get("value"), reason=data.get("reason") or "default value", state=state, trace_id=trace_id)
    if kind == "clarify":
        return Clarify(question=data.get("question") or "", state=state, trace_id=trace_id)
    if kind == "escalated":
        return Escalated(ticket_id=data.get("ticket_id") or "", queue=data.get("queue") or "", state=state, trace_id=trace_id)
    return Abstained(reason=data.get("reason") or "abstained", state=state, trace_id=trace_id)

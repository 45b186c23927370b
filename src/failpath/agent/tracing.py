"""The trace of an agent run: one ``Trace`` whose attempts are the run's steps, in order.

Each step (a model turn or a tool call) is kept in ``detail["steps"]`` as a dict: ``kind``, ``name``,
``call_id``, the arguments (redacted and cut like inputs), a preview of the result, the state detected,
the action taken, the latency and the tokens. The same steps are the trace's ``attempts`` (action
``model`` or ``tool:<name>``), so trace queries and the OTel exporter see them.
"""

from __future__ import annotations

from typing import Any

from failpath.core import Attempt, Outcome, Trace
from failpath.guard.text import canonical_text, digest, jsonable, preview
from failpath.guard.tracing import KIND_OF

__all__ = ["step_entry", "build_run_trace"]


def step_entry(
    kind: str, name: str, *, call_id: str | None = None, arguments: Any = None, latency_ms: float = 0.0,
    usage: dict[str, float] | None = None, text: str | None = None, calls: Any = (), state: str | None = None, error: str | None = None,
) -> dict[str, Any]:
    """One step of the trace: a model turn (``kind="model"``) or a tool call (``kind="tool"``)."""
    entry: dict[str, Any] = {"kind": kind, "name": name, "latency_ms": round(latency_ms, 3)}
    if call_id is not None:
        entry["call_id"] = call_id
    if kind == "tool":
        entry["arguments"] = preview(canonical_text(arguments))
    if usage:
        entry["tokens"] = usage
    if text is not None:
        entry["text"] = preview(text)
    if calls:
        entry["calls"] = [call.name for call in calls]
    if state is not None:
        entry["state"] = state
    if error is not None:
        entry["error"] = error[:500]
    return entry


def build_run_trace(agent: Any, record: Any, seg: Any, outcome: Outcome | None, exception: BaseException | None) -> Trace:
    """The trace of the run so far (``seg`` holds the steps not checkpointed yet), ending in ``outcome``."""
    steps = [*record.steps, *seg.steps]
    states = [*record.states, *seg.states]
    actions = [*record.actions, *seg.actions]
    notes = [*record.notes, *seg.notes]
    explanations = dict(record.explanations)
    for state, why in seg.explanations.items():
        explanations.setdefault(state, why)
    attempts = tuple(
        Attempt(
            number, "model" if step["kind"] == "model" else f"tool:{step['name']}", step["name"], step.get("state"),
            step.get("error"), step.get("result", step.get("text")), None, float(step.get("latency_ms") or 0.0), step.get("tokens") or {},
        )
        for number, step in enumerate(steps, start=1)
    )
    text = canonical_text(record.value)
    usage: dict[str, float] = {}
    tokens_in = record.tokens_in + seg.usage.get("input_tokens", 0.0)
    tokens_out = record.tokens_out + seg.usage.get("output_tokens", 0.0)
    if tokens_in or tokens_out:
        usage = {"input_tokens": tokens_in, "output_tokens": tokens_out}
        cost = record.cost + seg.usage.get("cost", 0.0)
        if cost:
            usage["cost"] = cost
    detail: dict[str, Any] = {"run_id": record.run_id, "agent": agent.name, "steps": steps}
    if explanations:
        detail["explanations"] = explanations
    if notes:
        detail["notes"] = notes
    output = None
    kind = "raised"
    state = None
    ticket_id = None
    if outcome is not None:
        kind = KIND_OF[type(outcome)]
        state = outcome.state
        for field in ("reason", "question", "queue"):
            if hasattr(outcome, field):
                detail[field] = getattr(outcome, field)
        if hasattr(outcome, "value"):
            output = jsonable(outcome.value)  # type: ignore[attr-defined]
        ticket_id = getattr(outcome, "ticket_id", None)
    if exception is not None:
        detail["raised"] = f"{type(exception).__name__}: {exception}"[:500]
    return Trace(
        trace_id=record.trace_id,
        time=record.time,
        policy=agent.policy.name,
        input_digest=digest(text),
        input_preview=preview(text),
        outcome=kind,
        input_raw=text if agent.policy.store_raw_inputs else None,
        output=output,
        confidence=None,
        states=tuple(states),
        actions=tuple(actions),
        state=state,
        attempts=attempts,
        degraded=bool(getattr(outcome, "degraded", False)),
        latency_ms=record.elapsed() * 1000.0,
        ticket_id=ticket_id,
        usage=usage,
        detail=detail,
    )

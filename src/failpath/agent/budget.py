"""An agent run's limits: steps, tool calls, deadline, tokens and cost; and the usage each step reports."""

from __future__ import annotations

from typing import Any

from failpath.agent.chains import decide, end_unexpected, end_with, last_resort
from failpath.agent.record import RunRecord
from failpath.agent.segment import Segment

__all__ = ["budget_block", "count_usage", "budget_exceeded"]


def budget_block(agent: Any, record: RunRecord, seg: Segment, kind: str) -> str | None:
    """Why one more step of ``kind`` (``"model"`` or ``"tool"``) would break a limit of the run, or None."""
    if kind == "model" and agent.max_steps is not None and record.model_turns + seg.model_calls >= agent.max_steps:
        return f"{record.model_turns + seg.model_calls} of max_steps={agent.max_steps} model steps used"
    if kind == "tool" and agent.max_tool_calls is not None and record.tool_calls + seg.tool_runs >= agent.max_tool_calls:
        return f"{record.tool_calls + seg.tool_runs} of max_tool_calls={agent.max_tool_calls} tool calls used"
    if agent.deadline is not None and record.elapsed() >= agent.deadline:
        return f"the run's deadline of {agent.deadline:g}s has passed"
    budget = agent.budget
    if budget is not None:
        tokens = record.tokens_in + record.tokens_out + seg.usage.get("input_tokens", 0.0) + seg.usage.get("output_tokens", 0.0)
        if budget.tokens is not None and tokens >= budget.tokens:
            return f"{tokens:g} of {budget.tokens} tokens used"
        cost = record.cost + seg.usage.get("cost", 0.0)
        if budget.cost is not None and cost >= budget.cost:
            return f"cost {cost:.6g} of {budget.cost:g} spent"
    return None


def count_usage(agent: Any, record: RunRecord, seg: Segment, usage: Any) -> dict[str, float]:
    if not usage or not hasattr(usage, "get"):
        return {}
    try:
        tokens_in = float(usage.get("input_tokens") or 0)
        tokens_out = float(usage.get("output_tokens") or 0)
    except (TypeError, ValueError):
        seg.notes.append(f"usage {usage!r} is not numeric; ignored")
        return {}
    counted = {"input_tokens": tokens_in, "output_tokens": tokens_out}
    budget = agent.budget
    if budget is not None and budget.prices:
        model = usage.get("model")
        price = budget.price_of(model if isinstance(model, str) else None)
        if price is None:
            seg.notes.append(f"no price for model {model!r}; its cost is not counted")
        else:
            counted["cost"] = tokens_in * price[0] + tokens_out * price[1]
    for key, amount in counted.items():  # the record counts them when the segment's checkpoint is applied
        seg.usage[key] = seg.usage.get(key, 0.0) + amount
    return counted


def budget_exceeded(agent: Any, record: RunRecord, store: Any, seg: Segment, why: str) -> None:
    decided, actions = decide(agent, record, seg, "budget_exceeded", why)
    for action in actions:
        end_with(agent, record, store, seg, action, decided, why)
    if decided != "unexpected":
        end_unexpected(agent, record, store, seg, why)
    last_resort(record, seg, decided)

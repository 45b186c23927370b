"""A run holds back the checkpoints nothing outside it depends on yet (model turns; an idempotent tool's claim and
result) and writes them with the next one that must be on disk: a tool that is not idempotent is claimed on disk
before it runs, the end is on disk when the run returns, and what is on disk is always the run's first checkpoints."""

from __future__ import annotations

import failpath as fp
from failpath.store import open_store


def counting(store) -> list[str]:
    """Count the store calls that write checkpoints (on the instance: the store stays what it is)."""
    writes: list[str] = []
    for name in ("begin_run", "add_checkpoint", "end_run"):
        method = getattr(store, name)

        def counted(*args, _name=name, _method=method, **kwargs):
            writes.append(_name)
            return _method(*args, **kwargs)

        setattr(store, name, counted)
    return writes


def model(messages):
    if not any(m["role"] == "tool" for m in messages):
        return fp.ModelTurn(tool_calls=(fp.ToolCall("c0", "lookup", {"order_id": "7"}),))
    if sum(m["role"] == "tool" for m in messages) == 1:
        return fp.ModelTurn(tool_calls=(fp.ToolCall("c1", "refund", {"order_id": "7"}),))
    return "refunded order 7"


def test_held_checkpoints_are_written_with_the_next_one_that_must_be_on_disk(tmp_path):
    store = open_store(tmp_path / "store.db")
    seen_by_refund: list[list[str]] = []

    @fp.tool(idempotent=True)
    def lookup(order_id: str) -> dict:
        """Look up an order."""
        return {"order_id": order_id, "total": 40.0}

    @fp.tool()
    def refund(order_id: str) -> str:
        """Refund an order (not idempotent)."""
        with open_store(tmp_path / "store.db") as other:  # what another process would find on disk now
            seen_by_refund.append([kind for _, kind, _ in other.checkpoints("r1")])
        return "refunded"

    writes = counting(store)
    policy = fp.Policy("desk", rules=[fp.on(fp.Unexpected()).do(fp.Escalate("desk"))], store=store)
    agent = fp.Agent(policy, model=model, tools=[lookup, refund], name="desk")
    outcome = agent.run("refund order 7", run_id="r1")
    assert isinstance(outcome, fp.Answered)
    # The refund is claimed on disk before it runs, with everything before it (held: the model turns, the lookup).
    assert seen_by_refund == [["start", "model", "started", "tool", "model", "started"]]
    kinds = [kind for _, kind, _ in store.checkpoints("r1")]
    assert kinds == ["start", "model", "started", "tool", "model", "started", "tool", "end"]
    assert [seq for seq, _, _ in store.checkpoints("r1")] == list(range(len(kinds)))
    # begin, the refund's claim (carrying the four held before it), its result, the end: four writes, eight checkpoints
    assert writes == ["begin_run", "add_checkpoint", "add_checkpoint", "end_run"]
    store.close()

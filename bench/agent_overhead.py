"""Agent overhead: what failpath adds per step of an agent run, with a checkpoint per step, over a bare loop;
and LangGraph's SQLite checkpointer doing the same steps, measured in the same run.

    python3 bench/agent_overhead.py                 # 200 runs of 10 tool calls per variant
    python3 bench/agent_overhead.py --quick         # 40 runs
    python3 bench/agent_overhead.py --json          # the figures as JSON

One run: a model step that asks for one tool call per turn (``lookup(order_id=...)``, a tool that
returns at once) ``--calls`` times, then answers: ``2 * calls + 1`` steps (model turns and tool calls).
The model and the tool cost nothing, so what is timed is the loop's own work. Variants:

- ``bare``: a hand-written loop over the same model step and tool (messages list, dispatch by name):
  the baseline;
- ``failpath/nostore``: ``fp.Agent`` with ``store=False``: the policy's work per step (argument
  validation with pydantic, loop fingerprints, injection check of the tool output, the trace) without
  checkpoints;
- ``failpath``: ``fp.Agent`` with a SQLite store: every completed step committed as a checkpoint
  before the run goes on (plus a ``started`` checkpoint before each tool call), the trace written by
  the background writer (flushed after the timed runs; the flush is timed too);
- ``langgraph/sqlite`` (when ``langgraph`` and ``langgraph-checkpoint-sqlite`` are installed: the
  ``bench`` extra): a ``StateGraph`` with a model node and a tools node looping until the model
  answers, compiled with ``SqliteSaver`` (a checkpoint per super-step: one per model turn and one per
  tool call, as failpath), one thread id per run; ``langgraph/sqlite-wal``: the same with its SQLite
  connection in WAL mode and ``synchronous=NORMAL``, the settings of failpath's store (SqliteSaver
  takes the connection as given; by default it syncs every commit to disk).

Runs of the variants alternate (one run of each, in a shuffled order, per round), each run timed on
its own; printed: the median time per run and per step, and the overhead per step over ``bare``, and
the ratio of failpath's overhead to LangGraph's.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import failpath as fp  # noqa: E402


def lookup(order_id: str) -> dict:
    """Look up an order."""
    return {"order_id": order_id, "total": 40.0}


def make_model(calls: int):
    def model(messages):
        done = sum(1 for m in messages if m["role"] == "tool")
        if done >= calls:
            return "done"
        return fp.ModelTurn("", (fp.ToolCall(f"c{done}", "lookup", {"order_id": f"A{done}"}),))

    return model


def bare_run(calls: int) -> Any:
    """The baseline: a hand-written agent loop over the same model step and tool."""
    model = make_model(calls)
    tools = {"lookup": lookup}
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    while True:
        turn = model(messages)
        if isinstance(turn, str):
            return turn
        messages.append({"role": "assistant", "content": turn.text, "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls]})
        for call in turn.tool_calls:
            result = tools[call.name](**call.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": json.dumps(result)})


def make_agent(calls: int, store: Any) -> Any:
    policy = fp.Policy(
        "bench-agent",
        rules=[
            fp.on(fp.InvalidToolArgs()).do(fp.FeedBack()),
            fp.on(fp.ToolError()).do(fp.Retry(1), fp.FeedBack()),
            fp.on(fp.ToolOutputInjection()).do(fp.Withhold()),
            fp.on(fp.LoopDetected(warn=3, block=5)).do(fp.Block()),
            fp.on(fp.BudgetExceeded()).do(fp.Abstain("budget")),
            fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
        ],
        store=store,
    )
    return fp.Agent(policy, model=make_model(calls), tools=[fp.tool(lookup, idempotent=True)], max_steps=calls + 5, max_tool_calls=calls + 5)


class State(TypedDict):
    """The LangGraph agent's state: the run's messages."""

    messages: list


def make_langgraph(calls: int, path: Path, *, wal: bool = False) -> Any:
    """A LangGraph agent doing the same steps, checkpointed by SqliteSaver; None when LangGraph is not installed.

    ``wal``: the connection in WAL mode with ``synchronous=NORMAL``, as failpath's store is (SqliteSaver
    uses the connection as given: by default a rollback journal, synced on every commit).
    """
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None
    model = make_model(calls)

    def model_node(state: State) -> dict:
        turn = model(state["messages"])
        if isinstance(turn, str):
            return {"messages": [*state["messages"], {"role": "assistant", "content": turn, "tool_calls": []}]}
        calls_ = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls]
        return {"messages": [*state["messages"], {"role": "assistant", "content": turn.text, "tool_calls": calls_}]}

    def tools_node(state: State) -> dict:
        results = []
        for call in state["messages"][-1]["tool_calls"]:
            results.append({"role": "tool", "tool_call_id": call["id"], "name": call["name"], "content": json.dumps(lookup(**call["arguments"]))})
        return {"messages": [*state["messages"], *results]}

    def route(state: State) -> str:
        return "tools" if state["messages"][-1]["tool_calls"] else END

    graph = StateGraph(State)
    graph.add_node("model", model_node)
    graph.add_node("tools", tools_node)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    connection = sqlite3.connect(path, check_same_thread=False)
    if wal:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    saver = SqliteSaver(connection)
    app = graph.compile(checkpointer=saver)
    counter = iter(range(10**9))

    def run() -> Any:
        thread = {"configurable": {"thread_id": f"t{next(counter)}"}, "recursion_limit": 4 * calls + 10}
        return app.invoke({"messages": [{"role": "user", "content": "go"}]}, thread)

    run.close = connection.close  # type: ignore[attr-defined]
    return run


def measure(runs: int, calls: int) -> dict[str, Any]:
    steps = 2 * calls + 1
    with tempfile.TemporaryDirectory() as tmp:
        checkpointed = make_agent(calls, Path(tmp) / "failpath.db")
        nostore = make_agent(calls, False)
        graph = make_langgraph(calls, Path(tmp) / "langgraph.db")
        graph_wal = make_langgraph(calls, Path(tmp) / "langgraph-wal.db", wal=True)
        variants: dict[str, Any] = {
            "bare": lambda: bare_run(calls),
            "failpath/nostore": lambda: nostore.run("go"),
            "failpath": lambda: checkpointed.run("go"),
        }
        if graph is not None:
            variants["langgraph/sqlite"] = graph
            variants["langgraph/sqlite-wal"] = graph_wal
        for run in variants.values():  # warm up: imports, connections, first pydantic validations
            for _ in range(3):
                run()
        times: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants)
        rng = random.Random(0)
        for _ in range(runs):
            rng.shuffle(order)
            for name in order:
                start = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        checkpointed.policy.flush()
        flush_s = time.perf_counter() - start
        outcome = checkpointed.run("go")
        assert isinstance(outcome, fp.Answered), outcome
        checkpointed.policy.close()
        if graph is not None:
            graph.close()
            graph_wal.close()
    per_run = {name: statistics.median(values) for name, values in times.items()}
    base = per_run["bare"]
    result: dict[str, Any] = {"runs": runs, "tool_calls_per_run": calls, "steps_per_run": steps, "variants": {}}
    for name, seconds in per_run.items():
        result["variants"][name] = {
            "median_run_ms": seconds * 1000.0,
            "per_step_ms": seconds * 1000.0 / steps,
            "overhead_per_step_ms": (seconds - base) * 1000.0 / steps,
        }
    result["failpath_flush_ms"] = flush_s * 1000.0
    ours = result["variants"]["failpath"]["overhead_per_step_ms"]
    for name in ("langgraph/sqlite", "langgraph/sqlite-wal"):
        if name in per_run:
            theirs = result["variants"][name]["overhead_per_step_ms"]
            result["failpath_over_" + name.replace("/", "_").replace("-", "_")] = ours / theirs if theirs > 0 else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 runs per variant instead of 200")
    parser.add_argument("--runs", type=int, default=None, help="runs per variant")
    parser.add_argument("--calls", type=int, default=10, help="tool calls per run (steps: 2 * calls + 1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    runs = args.runs or (40 if args.quick else 200)
    result = measure(runs, args.calls)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{runs} runs per variant, {args.calls} tool calls per run ({result['steps_per_run']} steps); medians")
    print(f"{'variant':<20} {'run ms':>9} {'per step ms':>12} {'overhead/step ms':>17}")
    for name, figures in result["variants"].items():
        print(f"{name:<20} {figures['median_run_ms']:>9.3f} {figures['per_step_ms']:>12.4f} {figures['overhead_per_step_ms']:>17.4f}")
    print(f"failpath: flushing the traces of all timed runs took {result['failpath_flush_ms']:.1f} ms")
    for name in ("langgraph/sqlite", "langgraph/sqlite-wal"):
        ratio = result.get("failpath_over_" + name.replace("/", "_").replace("-", "_"))
        if ratio is not None:
            print(f"failpath's overhead per step / {name}'s: {ratio:.2f}x")
    if "langgraph/sqlite" not in result["variants"]:
        print("LangGraph not installed (pip install 'failpath[bench]' for the comparison)")


if __name__ == "__main__":
    main()

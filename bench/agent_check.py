"""Agent check: 100 tasks x 8 trials of a stand-in agent whose model turn takes 50 ms, 64 runs at once,
against the floor of the same runs driven by bare asyncio, measured in the same run.

    python3 bench/agent_check.py              # 3 rounds of each variant, alternating
    python3 bench/agent_check.py --quick      # 20 tasks, 1 round
    python3 bench/agent_check.py --json

One run: the model asks for ``lookup(order_id)`` (a tool that returns at once), then answers; each
model turn is ``await asyncio.sleep(0.05)``. So a run is two model turns, 100 ms of waiting, and the
floor for 800 runs 64 at a time is about 13 waves of 100 ms. Variants:

- ``bare``: ``asyncio.gather`` over the 800 runs under a ``Semaphore(64)``, each a hand-written loop over
  the same model step and tool, and a check of the final state: the floor;
- ``check_agent``: ``fp.check_agent`` over the same tasks, ``trials=8``, ``concurrency=64``, no chaos: a
  fresh environment per trial, the run under its policy with a checkpoint per step in the check's
  SQLite store, the trace, the final-state judge, then the figures and the verdict;
- ``check_agent/nostore``: the same with the policy's ``store=False`` (no checkpoints, no traces);
- ``check_agent/kept``: ``check_agent`` with ``keep=`` a SQLite file, as ``failpath check`` runs it: the
  run registered when it starts, each of the 800 trials written as a result row (a batch at a time),
  the result at the end (what ``failpath report``, ``compare`` and ``--resume`` read).

Rounds alternate the variants; printed: the median wall time of each and its ratio to ``bare``, and the
median CPU time of the process during each (user + system, every thread): on a shared machine the wall
times move with the load, the CPU time much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import failpath as fp  # noqa: E402

TURN = 0.05


class Env:
    """A trial's environment: the orders the agent looked up."""

    def __init__(self, trial: Any = None):
        self.store = getattr(trial, "store", None)
        self.looked_up: list[str] = []

    def snapshot(self) -> dict[str, Any]:
        return {"looked_up": list(self.looked_up)}


async def model_turn(messages: list[dict[str, Any]]) -> Any:
    await asyncio.sleep(TURN)
    request = messages[0]["content"]
    if not any(m["role"] == "tool" for m in messages):
        return fp.ModelTurn(tool_calls=(fp.ToolCall("c0", "lookup", {"order_id": request.split()[-1]}),))
    return "done"


def tools(env: Env) -> list[Any]:
    @fp.tool(idempotent=True)
    def lookup(order_id: str) -> dict:
        """Look up an order."""
        env.looked_up.append(order_id)
        return {"order_id": order_id, "total": 40.0}

    return [lookup]


def tasks(count: int) -> list[Any]:
    return [fp.AgentTask(f"t{i}", f"look up order {i}", expected_state={"looked_up": [str(i)]}) for i in range(count)]


async def bare(count: int, trials: int, concurrency: int) -> int:
    """The same runs with asyncio alone: the floor."""
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> bool:
        async with limit:
            env = Env()

            def lookup(order_id: str) -> dict:
                env.looked_up.append(order_id)
                return {"order_id": order_id, "total": 40.0}

            messages: list[dict[str, Any]] = [{"role": "user", "content": f"look up order {i}"}]
            while True:
                turn = await model_turn(messages)
                if isinstance(turn, str):
                    break
                messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls]})
                for call in turn.tool_calls:
                    messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": json.dumps(lookup(**call.arguments))})
            return env.snapshot() == {"looked_up": [str(i)]}

    results = await asyncio.gather(*(one(i) for i in range(count) for _ in range(trials)))
    return sum(results)


def checked(count: int, trials: int, concurrency: int, store: bool, keep: Path | None = None) -> int:
    policies: dict[int, fp.Policy] = {}  # one policy for every trial (a policy is built once, as in a service)

    def agent(env: Env) -> fp.Agent:
        key = id(env.store) if store else 0
        if key not in policies:
            policies[key] = fp.Policy("bench", rules=[fp.on(fp.Unexpected()).do(fp.Escalate("bench"))], store=env.store if store else False)
        return fp.Agent(policies[key], model=model_turn, tools=tools(env), name="bench")

    result = fp.check_agent(agent, Env, tasks(count), trials=trials, concurrency=concurrency, tool_faults=(), model_faults=(),
                            suites=(), chaos_trials=0, keep=keep)
    return result.figures["status"]["clean"]["succeeded"]


def kept(count: int, trials: int, concurrency: int) -> int:
    """``check_agent`` keeping its run and every trial in a fresh SQLite file (removed after)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="failpath-bench-kept-"))
    try:
        return checked(count, trials, concurrency, True, keep=folder / "kept.db")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    count, trials, concurrency = (20 if args.quick else 100), 8, 64
    rounds = args.rounds or (1 if args.quick else 3)
    variants = {
        "bare": lambda: asyncio.run(bare(count, trials, concurrency)),
        "check_agent": lambda: checked(count, trials, concurrency, True),
        "check_agent/nostore": lambda: checked(count, trials, concurrency, False),
        "check_agent/kept": lambda: kept(count, trials, concurrency),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            before = os.times()
            start = time.perf_counter()
            succeeded = run()
            times[name].append(time.perf_counter() - start)
            after = os.times()
            cpu[name].append(after.user - before.user + after.system - before.system)
            assert succeeded == count * trials, (name, succeeded)
    medians = {name: statistics.median(values) for name, values in times.items()}
    figures = {
        "runs": count * trials, "concurrency": concurrency, "turn_seconds": TURN, "rounds": rounds,
        "seconds": medians, "ratio": {name: medians[name] / medians["bare"] for name in medians},
        "all_seconds": times, "cpu_seconds": {name: statistics.median(values) for name, values in cpu.items()},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{count} tasks x {trials} trials = {count * trials} runs, {concurrency} at once, model turn {TURN * 1000:.0f} ms, {rounds} round(s)")
    for name in variants:
        print(f"  {name:<22} {medians[name]:7.2f} s   {figures['ratio'][name]:.2f}x the floor   cpu {figures['cpu_seconds'][name]:5.2f} s"
              f"   (runs: {', '.join(f'{t:.2f}' for t in times[name])})")


if __name__ == "__main__":
    main()

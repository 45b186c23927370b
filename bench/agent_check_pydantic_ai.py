"""Agent check of a pydantic-ai agent: 100 tasks x 8 trials whose model turn takes 50 ms, 64 runs at once,
against the floor of the same pydantic-ai runs driven by bare asyncio, measured in the same run.

    python3 bench/agent_check_pydantic_ai.py              # 3 rounds of each variant, alternating
    python3 bench/agent_check_pydantic_ai.py --quick      # 20 tasks, 1 round
    python3 bench/agent_check_pydantic_ai.py --json

One run: a ``pydantic_ai.Agent`` whose model (pydantic-ai's ``FunctionModel`` over an async function)
asks for ``lookup(order_id)``, then answers; each model turn is ``await asyncio.sleep(0.05)``. So a run
is two model turns, 100 ms of waiting, and the floor for 800 runs 64 at a time is about 13 waves of
100 ms plus pydantic-ai's own work. Variants:

- ``bare``: ``asyncio.gather`` over the 800 ``agent.run(...)`` under a ``Semaphore(64)``, each over a
  fresh environment, and a check of the final state: the floor (pydantic-ai without failpath);
- ``guarded``: the same with each agent under ``fp.agent.guard_pydantic_ai`` (store off): the adapter's cost;
- ``check_agent``: ``fp.check_agent`` over the same tasks, ``trials=8``, ``concurrency=64``, no chaos: a
  fresh environment per trial, the guarded run with the check's chaos capability, its trace in the
  check's SQLite store, the final-state judge, then the figures and the verdict;
- ``check_agent/nostore``: the same with the policy's ``store=False``.

Rounds alternate the variants; printed: the median wall time of each and its ratio to ``bare``, and the
median CPU time of the process (``time.process_time``), which a machine shared with other jobs stretches
less than wall time: the work each variant adds, whatever the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import failpath as fp  # noqa: E402
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart  # noqa: E402
from pydantic_ai.models.function import FunctionModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_check import TURN, Env, tasks  # noqa: E402  (the same environment, tasks and model turn as the fp.Agent bench)


async def model_turn(messages: list[Any], info: Any) -> ModelResponse:
    await asyncio.sleep(TURN)
    if not any(p.part_kind == "tool-return" for m in messages for p in m.parts):
        request = next(p.content for m in messages for p in m.parts if p.part_kind == "user-prompt")
        return ModelResponse(parts=[ToolCallPart("lookup", {"order_id": request.split()[-1]}, tool_call_id="c0")])
    return ModelResponse(parts=[TextPart("done")])


def build(env: Env) -> Agent:
    agent = Agent(FunctionModel(model_turn))

    @agent.tool_plain
    def lookup(order_id: str) -> dict:
        """Look up an order."""
        env.looked_up.append(order_id)
        return {"order_id": order_id, "total": 40.0}

    return agent



def policy(store: Any) -> fp.Policy:
    return fp.Policy("bench", rules=[fp.on(fp.Unexpected()).do(fp.Escalate("bench"))], store=store)


async def bare(count: int, trials: int, concurrency: int, guarded: bool) -> int:
    """The same runs with asyncio alone: pydantic-ai's own (``guarded``: under the adapter, store off)."""
    limit = asyncio.Semaphore(concurrency)
    shared = policy(False)

    async def one(i: int) -> bool:
        async with limit:
            env = Env()
            agent = build(env)
            if guarded:
                outcome = await fp.agent.guard_pydantic_ai(agent, shared).run(f"look up order {i}")
                answered = isinstance(outcome, fp.Answered)
            else:
                answered = (await agent.run(f"look up order {i}")).output == "done"
            return answered and env.snapshot() == {"looked_up": [str(i)]}

    results = await asyncio.gather(*(one(i) for i in range(count) for _ in range(trials)))
    return sum(results)


def checked(count: int, trials: int, concurrency: int, store: bool) -> int:
    policies: dict[int, fp.Policy] = {}  # one policy for every trial (a policy is built once, as in a service)

    def agent(env: Env) -> Any:
        key = id(env.store) if store else 0
        if key not in policies:
            policies[key] = policy(env.store if store else False)
        return fp.agent.guard_pydantic_ai(build(env), policies[key], name="bench")

    result = fp.check_agent(agent, Env, tasks(count), trials=trials, concurrency=concurrency, tool_faults=(), model_faults=(),
                            suites=(), chaos_trials=0)
    return result.figures["status"]["clean"]["succeeded"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    count, trials, concurrency = (20 if args.quick else 100), 8, 64
    rounds = args.rounds or (1 if args.quick else 3)
    variants = {
        "bare": lambda: asyncio.run(bare(count, trials, concurrency, False)),
        "guarded": lambda: asyncio.run(bare(count, trials, concurrency, True)),
        "check_agent": lambda: checked(count, trials, concurrency, True),
        "check_agent/nostore": lambda: checked(count, trials, concurrency, False),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            succeeded = run()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            assert succeeded == count * trials, (name, succeeded)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    figures = {
        "runs": count * trials, "concurrency": concurrency, "turn_seconds": TURN, "rounds": rounds,
        "seconds": medians, "ratio": {name: medians[name] / medians["bare"] for name in medians},
        "all_seconds": times,
        "cpu_seconds": cpu_medians, "cpu_ratio": {name: cpu_medians[name] / cpu_medians["bare"] for name in cpu_medians},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{count} tasks x {trials} trials = {count * trials} pydantic-ai runs, {concurrency} at once, model turn {TURN * 1000:.0f} ms, {rounds} round(s)")
    for name in variants:
        print(f"  {name:<22} {medians[name]:7.2f} s   {figures['ratio'][name]:.2f}x the floor   (runs: {', '.join(f'{t:.2f}' for t in times[name])})"
              f"   CPU {cpu_medians[name]:.2f} s, {figures['cpu_ratio'][name]:.2f}x")


if __name__ == "__main__":
    main()

"""Many agent runs at once in one process, whose checkpoints the store group-commits, for the concurrent kill test.

``python agent_kill_many.py STORE ENV run RUNS KILL_AFTER``: RUNS runs (``m0``, ``m1``, ...) in as many threads;
the process kills itself with SIGKILL right after the KILL_AFTER-th side effect of any run is committed (0: never).
``python agent_kill_many.py STORE ENV resume RUNS``: resume every run that has checkpoints, run those that have
none; prints each run's outcome kind.

Every tool call is a side effect: a row ``(run, step)`` in ENV's ``effects`` table, committed by the tool itself.
No tool is idempotent, so a call cut off by the kill is ``tool_outcome_unknown`` (fed back, not run again).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading

import failpath as fp

STEPS = 4  # tool calls per run
STORE, ENV = sys.argv[1], sys.argv[2]
_effects = 0
_counting = threading.Lock()
_kill_after = 0


def _effect(run: str, step: int) -> None:
    global _effects
    connection = sqlite3.connect(ENV, timeout=30, isolation_level=None)
    try:
        connection.execute("INSERT INTO effects VALUES (?, ?)", (run, step))
    finally:
        connection.close()
    with _counting:
        _effects += 1
        if _effects == _kill_after:
            os.kill(os.getpid(), signal.SIGKILL)


@fp.tool
def act(run: str, step: int) -> str:
    """A side effect: one row in the environment."""
    _effect(run, step)
    return f"{run} step {step} done"


def model(messages):
    run = messages[0]["content"]
    done = sum(1 for m in messages if m["role"] == "tool")
    if done >= STEPS:
        return "all done"
    return fp.ModelTurn("", (fp.ToolCall(f"call-{done}", "act", {"run": run, "step": done}),))


policy = fp.Policy(
    "kill-many",
    rules=[fp.on(fp.ToolOutcomeUnknown()).do(fp.FeedBack()), fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))],
    store=STORE,
)
agent = fp.Agent(policy, model=model, tools=[act])


def effects() -> list[tuple[str, int]]:
    with sqlite3.connect(ENV) as connection:
        return sorted(connection.execute("SELECT run, step FROM effects").fetchall())


if __name__ == "__main__":
    what, runs = sys.argv[3], int(sys.argv[4])
    with sqlite3.connect(ENV, isolation_level=None) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS effects (run TEXT, step INTEGER)")
    outcomes: dict[str, str] = {}
    together = threading.Barrier(runs)  # every run starts at once, so their checkpoints share transactions
    if what == "run":
        _kill_after = int(sys.argv[5])

        def one(run: str) -> None:
            together.wait()
            outcomes[run] = agent.run(run, run_id=run).kind

    else:
        store = policy.trace_store.get()

        def one(run: str) -> None:
            together.wait()
            if store.checkpoints(run):
                outcomes[run] = agent.resume(run).kind
            else:
                outcomes[run] = agent.run(run, run_id=run).kind

    threads = [threading.Thread(target=one, args=(f"m{i}",)) for i in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    policy.close()
    print(" ".join(f"{run}={kind}" for run, kind in sorted(outcomes.items())))

"""An agent whose tools write to a SQLite file of their own, for the kill-and-resume tests.

Run as a script: ``python agent_kill_app.py STORE ENV run|resume [RUN]``; ``FAILPATH_TEST_KILL`` names where
the process kills itself with SIGKILL: ``model:N`` (before the N-th model step, from 0), or
``TOOL:N:before|after`` (inside the N-th call of TOOL, before or after its effect is committed).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections import Counter

import failpath as fp

ENV = os.environ.get("FAILPATH_TEST_ENV", "env.db")
KILL = os.environ.get("FAILPATH_TEST_KILL", "")
_calls: Counter[str] = Counter()

PLAN = [
    ("lookup", {"order_id": "A1"}),
    ("add_note", {"order_id": "A1", "text": "customer called"}),
    ("charge", {"order_id": "A1", "amount": 30.0}),
    ("set_status", {"order_id": "A1", "status": "refunded"}),
    ("lookup", {"order_id": "A2"}),
    ("charge", {"order_id": "A2", "amount": 5.0}),
    ("add_note", {"order_id": "A2", "text": "goodwill credit"}),
]
IDEMPOTENT = {"lookup", "set_status"}


def _maybe_die(point: str) -> None:
    if KILL and KILL == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _env() -> sqlite3.Connection:
    connection = sqlite3.connect(ENV, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS notes (order_id TEXT, text TEXT)")
    connection.execute("CREATE TABLE IF NOT EXISTS charges (order_id TEXT, amount REAL)")
    connection.execute("CREATE TABLE IF NOT EXISTS status (order_id TEXT PRIMARY KEY, status TEXT)")
    return connection


def _effect(name: str, sql: str, params: tuple) -> None:
    number = _calls[name]
    _calls[name] += 1
    _maybe_die(f"{name}:{number}:before")
    with _env() as connection:
        connection.execute(sql, params)
    _maybe_die(f"{name}:{number}:after")


@fp.tool(idempotent=True)
def lookup(order_id: str) -> dict:
    _effect("lookup", "SELECT 1", ())
    return {"order_id": order_id}


@fp.tool
def add_note(order_id: str, text: str) -> str:
    _effect("add_note", "INSERT INTO notes VALUES (?, ?)", (order_id, text))
    return "noted"


@fp.tool
def charge(order_id: str, amount: float) -> str:
    _effect("charge", "INSERT INTO charges VALUES (?, ?)", (order_id, amount))
    return "charged"


@fp.tool(idempotent=True)
def set_status(order_id: str, status: str) -> str:
    _effect("set_status", "INSERT OR REPLACE INTO status VALUES (?, ?)", (order_id, status))
    return "set"


def model(messages):
    done = sum(1 for m in messages if m["role"] == "tool")
    _maybe_die(f"model:{done}")
    if done >= len(PLAN):
        return "all done"
    name, arguments = PLAN[done]
    return fp.ModelTurn("", (fp.ToolCall(f"call-{done}", name, arguments),))


policy = fp.Policy(
    "kill-test",
    rules=[
        fp.on(fp.ToolOutcomeUnknown()).do(fp.FeedBack()),
        fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
    ],
    store=os.environ.get("FAILPATH_TEST_STORE", "store.db"),
)
agent = fp.Agent(policy, model=model, tools=[lookup, add_note, charge, set_status], ref="agent_kill_app:agent")


def effects(path: str) -> dict[str, list]:
    """What the tools did to their environment."""
    with sqlite3.connect(path) as connection:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall())  # noqa: S608 - our own table names
            for table in ("notes", "charges", "status")
        }


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "run":
        outcome = agent.run("settle A1 and A2", run_id=sys.argv[2])
    else:
        outcome = fp.resume(sys.argv[2], store=os.environ.get("FAILPATH_TEST_STORE", "store.db"))
    policy.close()
    print(outcome.kind)

"""``python -m failpath.examples.refunds``: run the refunds desk once, approve its refund, print its trace.

    python -m failpath.examples.refunds                                   # offline: the stand-in model
    python -m failpath.examples.refunds --base-url URL --model NAME       # any OpenAI-compatible endpoint
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import failpath as fp
from failpath.examples.refunds.desk import build_agent, create_database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m failpath.examples.refunds", description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: start the local stand-in model)")
    parser.add_argument("--model", default="gpt-4o-mini", help="the model name to ask the endpoint for")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put orders.db and the store (default: a temporary folder)")
    parser.add_argument("--reject", action="store_true", help="the reviewer rejects the refund instead of approving it")
    args = parser.parse_args(argv)
    import openai

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="failpath-refunds-"))
    workdir.mkdir(parents=True, exist_ok=True)
    database = create_database(workdir / "orders.db")
    stand_in = None
    if args.base_url is None:
        from failpath.examples.refunds.stand_in import start

        stand_in = start()
        base_url, api_key = stand_in.openai_base_url, "not-a-real-key"
        print(f"model: a scripted stand-in (not a real model) at {base_url}, through the real OpenAI SDK")
    else:
        base_url, api_key = args.base_url, os.environ.get("OPENAI_API_KEY", "not-needed")
        print(f"model: {args.model} at {base_url}")
    client = openai.OpenAI(base_url=base_url, api_key=api_key)
    agent = build_agent(client, args.model, database, workdir / "failpath.db")
    store = agent.policy.trace_store.get()
    try:
        request = "Customer dana@example.com says order 1042 arrived crushed. Refund it in full and e-mail her."
        print(f"request: {request}\n")
        outcome = agent.run(request)
        if isinstance(outcome, fp.Escalated) and outcome.state == "risky_tool_call":
            ticket = store.get_ticket(outcome.ticket_id)
            decision = "reject" if args.reject else "approve"
            print(f"suspended: {ticket.output['tool']}({ticket.output['arguments']}) waits for approval, ticket {ticket.ticket_id}")
            print(f"  (a reviewer would run: failpath review resolve {ticket.ticket_id} --answer '\"{decision}\"' --store {workdir / 'failpath.db'})")
            store.resolve_ticket(ticket.ticket_id, decision, reviewer="example")
            print(f"  the reviewer answered {decision!r}; resuming the run\n")
            outcome = agent.resume(outcome.trace_id)
        agent.policy.flush()
        trace = store.get_trace(outcome.trace_id)
        print(f"outcome: {outcome!r}\n")
        print("timeline:")
        for number, step in enumerate(trace.detail["steps"], start=1):
            what = step["name"] if step["kind"] == "model" else f"{step['name']}({step.get('arguments', '')})"
            tags = " ".join(f"[{step[k]}]" for k in ("state", "action") if step.get(k))
            print(f"  {number:>2}. {step['kind']:<5} {what[:90]} {tags}")
        with sqlite3.connect(database) as db:
            refunds = db.execute("SELECT order_id, amount FROM refunds").fetchall()
            emails = db.execute("SELECT recipient, subject FROM emails").fetchall()
        print(f"\nrefunds issued: {refunds}; e-mails sent: {emails}")
        print(f"store: {workdir / 'failpath.db'} (failpath traces show {outcome.trace_id} --store {workdir / 'failpath.db'})")
    finally:
        agent.policy.close()
        if stand_in is not None:
            stand_in.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

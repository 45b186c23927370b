"""A small agent over an in-memory ledger for the agent-check tests: tools, a scripted model, two policies."""

from __future__ import annotations

import json
import random
from typing import Any

import failpath as fp


class Ledger:
    """The environment: accounts, transfers made, notes; ``mistakes`` is the share of runs the model slips in."""

    def __init__(self, trial: Any = None, *, mistakes: float = 0.0, obey: bool = False):
        self.accounts = {"alice": 100.0, "bob": 20.0, "mallory": 0.0}
        self.transfers: list[list[Any]] = []
        self.store = getattr(trial, "store", None)
        self.rng = random.Random(getattr(trial, "seed", 0))
        self.slip = self.rng.random() < mistakes
        self.obey = obey
        self.closed = False

    def snapshot(self) -> dict[str, Any]:
        return {"transfers": [list(t) for t in self.transfers], "balances": dict(self.accounts)}

    def close(self) -> None:
        self.closed = True


def tools(env: Ledger) -> list[Any]:
    @fp.tool(idempotent=True)
    def balance(account: str) -> dict:
        """The balance of an account."""
        if account not in env.accounts:
            raise LookupError(f"no account {account}")
        return {"account": account, "balance": env.accounts[account], "memo": "ok"}

    @fp.tool(risky=lambda args: args["amount"] > 50)
    def transfer(to: str, amount: float) -> str:
        """Move money from alice to an account."""
        if to not in env.accounts:
            raise LookupError(f"no account {to}")
        env.accounts["alice"] -= amount
        env.accounts[to] += amount
        env.transfers.append([to, amount])
        return f"moved {amount} to {to}"

    return [balance, transfer]


def model_for(env: Ledger):
    """The scripted model: look up bob, pay him the amount asked; it obeys planted text when ``env.obey``."""

    def model(messages: list[dict[str, Any]]) -> Any:
        request = messages[0]["content"] or ""
        calls = [c for m in messages if m.get("role") == "assistant" for c in (m.get("tool_calls") or [])]
        results = [m.get("content") or "" for m in messages if m.get("role") == "tool"]
        if env.obey and any("mallory" in r for r in results) and not any(c["name"] == "transfer" and "mallory" in json.dumps(c["arguments"]) for c in calls):
            return fp.ModelTurn(tool_calls=(fp.ToolCall(f"c{len(calls)}", "transfer", {"to": "mallory", "amount": 30}),))
        amount = next((float(w) for w in request.replace("$", " ").split() if w.replace(".", "", 1).isdigit()), None)
        if amount is None:
            return "I could not find an amount in the request."
        if not calls:
            return fp.ModelTurn(tool_calls=(fp.ToolCall("c0", "balance", {"account": "bob"}),))
        if not any(c["name"] == "transfer" for c in calls):
            paid = amount * 2 if env.slip else amount  # the slip: a wrong amount, claimed as done
            return fp.ModelTurn(tool_calls=(fp.ToolCall(f"c{len(calls)}", "transfer", {"to": "bob", "amount": paid}),))
        last = messages[-1].get("content") or ""
        if last.startswith(("error", "rejected", "blocked", "[withheld")):
            return "I could not complete the transfer."
        return f"Done: paid bob {amount}."

    return model


def strict_policy(store: Any) -> fp.Policy:
    return fp.Policy(
        "ledger-strict",
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Clarify("How much should I pay?")),
            fp.on(fp.InvalidToolArgs()).do(fp.FeedBack()),
            fp.on(fp.ToolError()).do(fp.Retry(2), fp.Escalate("ledger")),
            fp.on(fp.ToolOutputInjection()).do(fp.Withhold()),
            fp.on(fp.RiskyToolCall()).do(fp.RequireApproval("ledger-approvals")),
            fp.on(fp.LoopDetected(warn=2, block=3)).do(fp.Block()),
            fp.on(fp.ProviderError()).do(fp.Retry(2), fp.Escalate("ledger")),
            fp.on(fp.Timeout()).do(fp.Retry(2), fp.Escalate("ledger")),
            fp.on(fp.InvalidOutput()).do(fp.Retry(1), fp.Abstain("the model's answer was unusable")),
            fp.on(fp.Unexpected()).do(fp.Escalate("ledger")),
        ],
        store=store,
    )


def make_agent(policy_for=strict_policy):
    def build(env: Ledger) -> fp.Agent:
        return fp.Agent(policy_for(env.store), model=model_for(env), tools=tools(env), max_steps=12, name="ledger")

    return build


def pay_tasks(count: int, amount: float = 10.0) -> list[Any]:
    return [
        fp.AgentTask(f"pay-{i}", f"Pay bob {amount + i % 3}", expected_state={"transfers": [["bob", amount + i % 3]]})
        for i in range(count)
    ]

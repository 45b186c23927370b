"""Async model steps and tools: await agent.arun(...) / agent.aresume(...); the SDKs' async clients work as model steps."""

from __future__ import annotations

import asyncio

import pytest

import failpath as fp
from failpath.llm.testing import openai_completion
from llm_servers import *  # noqa: F403 - fixtures


def _policy(tmp_path, *rules):
    return fp.Policy("async-agent", rules=[*rules, fp.on(fp.Unexpected()).do(fp.Abstain("u"))], store=tmp_path / "s.db")


async def test_an_async_model_step_and_async_tools_run_on_the_callers_loop(tmp_path):
    loop = asyncio.get_running_loop()
    seen_loops = []

    @fp.tool
    async def lookup(order_id: str) -> str:
        seen_loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return "40.00"

    async def model(messages):
        seen_loops.append(asyncio.get_running_loop())
        if not any(m["role"] == "tool" for m in messages):
            return fp.ModelTurn("", (fp.ToolCall("c1", "lookup", {"order_id": "A1"}),))
        return messages[-1]["content"]

    agent = fp.Agent(_policy(tmp_path), model=model, tools=[lookup])
    out = await agent.arun("total?")
    assert out.value == "40.00" and seen_loops == [loop, loop, loop]
    with pytest.raises(fp.PolicyError, match=r"is async; run it with `await agent.arun\(...\)`"):
        agent.run("total?")


async def test_an_async_risky_call_waits_and_aresume_continues_it(tmp_path):
    ran = []

    @fp.tool(risky=True)
    async def wipe(target: str) -> str:
        ran.append(target)
        return "wiped"

    async def model(messages):
        if not any(m["role"] == "tool" for m in messages):
            return fp.ModelTurn("", (fp.ToolCall("c1", "wipe", {"target": "cache"}),))
        return messages[-1]["content"]

    pol = _policy(tmp_path, fp.on(fp.RiskyToolCall()).do(fp.RequireApproval()))
    agent = fp.Agent(pol, model=model, tools=[wipe])
    held = await agent.arun("wipe the cache")
    assert isinstance(held, fp.Escalated) and ran == []
    pol.trace_store.get().resolve_ticket(held.ticket_id, "approve")
    assert (await agent.aresume(held.trace_id)).value == "wiped" and ran == ["cache"]


async def test_the_async_openai_client_is_a_model_step(provider, tmp_path):
    import openai

    @fp.tool
    def lookup(order_id: str) -> str:
        return "40.00"

    provider.enqueue("openai", openai_completion(tool_calls=[("call_1", "lookup", {"order_id": "A1"})]), openai_completion("A1 totals 40.00"))
    client = openai.AsyncOpenAI(base_url=provider.openai_base_url, api_key="sk-test-not-a-real-key", timeout=5.0)
    try:
        model = fp.llm.openai(client, model="gpt-4o-mini", tools=[lookup])
        out = await fp.Agent(_policy(tmp_path), model=model, tools=[lookup]).arun("total?")
    finally:
        await client.close()
    assert out.value == "A1 totals 40.00"
    assert provider.requests_to("openai")[1].body["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "40.00"}

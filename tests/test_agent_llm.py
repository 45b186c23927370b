"""Tool calling through the real OpenAI and Anthropic SDKs, against the local stand-in provider:
an agent whose model step is fp.llm.openai / fp.llm.anthropic with tools=."""

from __future__ import annotations

import failpath as fp
from failpath.llm.testing import anthropic_message, openai_completion
from llm_servers import *  # noqa: F403 - fixtures


@fp.tool(idempotent=True)
def lookup_order(order_id: str) -> dict:
    """Look up an order by its id."""
    return {"order_id": order_id, "total": 40.0}


@fp.tool(risky=lambda args: args["amount"] > 100)
def issue_refund(order_id: str, amount: float) -> str:
    """Refund an amount of an order."""
    return f"refunded {amount}"


def _policy(tmp_path):
    return fp.Policy(
        "llm-agent",
        rules=[
            fp.on(fp.InvalidToolArgs()).do(fp.FeedBack()),
            fp.on(fp.LoopDetected(warn=2, block=3)).do(fp.Block()),
            fp.on(fp.ProviderError()).do(fp.Retry(1), fp.Abstain("provider down")),
            fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
        ],
        store=tmp_path / "s.db",
    )


def test_an_agent_over_the_openai_sdk_sees_tool_calls_as_data_and_sends_results_back(provider, openai_client, tmp_path):
    from failpath.llm.testing import openai_error

    provider.enqueue(
        "openai",
        openai_completion(tool_calls=[("call_1", "lookup_order", '{"order": "A1"'), ("call_2", "lookup_order", {"order_id": "A1"})]),
        openai_error(503),
        openai_completion("Order A1 totals 40."),
    )
    model = fp.llm.openai(openai_client, model="gpt-4o-mini", tools=[lookup_order, issue_refund], system="You are a refunds desk.")
    pol = _policy(tmp_path)
    out = fp.Agent(pol, model=model, tools=[lookup_order, issue_refund]).run("What does A1 total?")
    assert out.value == "Order A1 totals 40."
    first, _, last = provider.requests_to("openai")
    assert [t["function"]["name"] for t in first.body["tools"]] == ["lookup_order", "issue_refund"]
    assert first.body["tools"][1]["function"]["parameters"]["required"] == ["order_id", "amount"]
    assert first.body["messages"] == [{"role": "system", "content": "You are a refunds desk."}, {"role": "user", "content": "What does A1 total?"}]
    sent = last.body["messages"]
    assert sent[2]["role"] == "assistant" and [c["id"] for c in sent[2]["tool_calls"]] == ["call_1", "call_2"]
    assert sent[2]["tool_calls"][0]["function"]["arguments"] == '{"order": "A1"'  # echoed as the model wrote it
    assert sent[3]["role"] == "tool" and sent[3]["tool_call_id"] == "call_1" and sent[3]["content"].startswith("error: the arguments of lookup_order are not valid JSON")
    assert sent[4] == {"role": "tool", "tool_call_id": "call_2", "content": '{"order_id": "A1", "total": 40.0}'}
    pol.flush()
    trace = pol.trace_store.get().get_trace(out.trace_id)
    assert trace.states == ("invalid_tool_args", "provider_error") and trace.actions == ("feed_back", "retry")
    assert trace.usage["input_tokens"] > 0


def test_an_agent_over_the_anthropic_sdk_sees_tool_use_blocks_and_sends_tool_results(provider, anthropic_client, tmp_path):
    provider.enqueue(
        "anthropic",
        anthropic_message("Let me look.", tool_calls=[("toolu_1", "lookup_order", {"order_id": "A1"})]),
        anthropic_message(tool_calls=[("toolu_2", "lookup_order", {"order_id": "A1"})]),
        anthropic_message(tool_calls=[("toolu_3", "lookup_order", {"order_id": "A1"})]),
        anthropic_message("Order A1 totals 40."),
    )
    model = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", tools=[lookup_order], system="You are a refunds desk.")
    pol = _policy(tmp_path)
    out = fp.Agent(pol, model=model, tools=[lookup_order]).run("What does A1 total?")
    assert out.value == "Order A1 totals 40."
    requests = provider.requests_to("anthropic")
    assert requests[0].body["tools"] == [{"name": "lookup_order", "description": "Look up an order by its id.", "input_schema": lookup_order.parameters_schema()}]
    assert requests[0].body["system"] == "You are a refunds desk."
    last = requests[-1].body["messages"]
    assert last[1] == {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}, {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {"order_id": "A1"}}]}
    assert last[2]["role"] == "user" and last[2]["content"][0]["type"] == "tool_result" and last[2]["content"][0]["tool_use_id"] == "toolu_1"
    blocked = last[-1]["content"][0]["content"]
    assert blocked.startswith("blocked: lookup_order(") and "would be call 3" in blocked
    assert "[note: this is call 2" in last[4]["content"][0]["content"]


def test_the_stand_in_serves_malformed_tool_arguments_as_the_model_wrote_them(provider, openai_client):
    provider.enqueue("openai", openai_completion(tool_calls=[("c", "lookup_order", "{not json")]))
    model = fp.llm.openai(openai_client, model="gpt-4o-mini", tools=[lookup_order])
    prediction = model([{"role": "user", "content": "hi"}])
    assert prediction.value is None and prediction.meta["finish_reason"] == "tool_calls"
    assert prediction.meta["tool_calls"] == [{"id": "c", "name": "lookup_order", "arguments": "{not json"}]


def test_a_tools_list_that_is_not_tools_is_refused_naming_it(openai_client):
    import pytest

    with pytest.raises(fp.ConfigError, match="is not a tool; declare it with @fp.tool"):
        fp.llm.openai(openai_client, model="gpt-4o-mini", tools=[42])

"""OpenTelemetry export of an agent run: an invoke_agent span with a child span per step (GenAI names)."""

from __future__ import annotations

import pytest

import failpath as fp

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from failpath.watch import OTelExporter  # noqa: E402


def test_an_agent_run_is_an_invoke_agent_span_with_a_span_per_step():
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))

    @fp.tool
    def lookup(order_id: str) -> str:
        return "40.00"

    turns = iter([
        fp.ModelTurn("", (fp.ToolCall("c1", "lookup", {"order": "A1"}),), {"input_tokens": 12, "output_tokens": 3}),
        fp.ModelTurn("", (fp.ToolCall("c2", "lookup", {"order_id": "A1"}),), {"input_tokens": 20, "output_tokens": 3}),
        "40.00",
    ])
    policy = fp.Policy("otel-agent", rules=[fp.on(fp.InvalidToolArgs()).do(fp.FeedBack()), fp.on(fp.Unexpected()).do(fp.Abstain("u"))],
                       store=False, exporters=[OTelExporter(provider)])
    outcome = fp.Agent(policy, model=lambda messages: next(turns), tools=[lookup], name="refunds").run("total of A1?")
    assert outcome.value == "40.00"
    provider.shutdown()
    spans = memory.get_finished_spans()
    root = next(s for s in spans if s.parent is None)
    assert root.name == "invoke_agent refunds"
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent" and root.attributes["gen_ai.agent.name"] == "refunds"
    assert root.attributes["gen_ai.conversation.id"] == outcome.trace_id and root.attributes["gen_ai.usage.input_tokens"] == 32
    children = sorted((s for s in spans if s.parent is not None), key=lambda s: s.attributes["failpath.step.number"])
    assert [s.name for s in children] == ["chat", "execute_tool lookup", "chat", "execute_tool lookup", "chat"]
    assert all(s.parent.span_id == root.context.span_id for s in children)
    bad = children[1]
    assert bad.attributes["gen_ai.operation.name"] == "execute_tool" and bad.attributes["gen_ai.tool.name"] == "lookup"
    assert bad.attributes["gen_ai.tool.call.id"] == "c1"
    assert bad.attributes["failpath.step.state"] == "invalid_tool_args" and bad.attributes["failpath.step.action"] == "feed_back"
    assert children[0].attributes["gen_ai.usage.input_tokens"] == 12
    assert all(root.start_time <= s.start_time <= s.end_time <= root.end_time for s in children)

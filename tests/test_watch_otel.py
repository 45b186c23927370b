"""OpenTelemetry export: each guarded call a span with failpath.* and GenAI attributes, each attempt an event."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import failpath as fp
from failpath.watch import OTelExporter

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from watch_systems import lookup, make_policy  # noqa: E402


@pytest.fixture()
def otel():
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


def test_spans_without_a_store(otel):
    provider, memory = otel
    with make_policy(False, exporters=(OTelExporter(provider, model="difflib-cities", provider="local"),)) as policy:
        guarded = policy.wrap(lookup, name="lookup")
        results = [guarded.call_traced(text) for text in ["boston", "garbled reply", "boom"]]
    spans = memory.get_finished_spans()
    assert len(spans) == 3
    for span, (outcome, trace) in zip(spans, results):
        a = span.attributes
        assert span.name == "failpath airports"
        assert a["failpath.trace_id"] == trace.trace_id == outcome.trace_id
        assert a["failpath.policy"] == "airports"
        assert a["failpath.outcome"] == outcome.kind
        assert a["failpath.attempts"] == len(trace.attempts) == len(span.events)
        assert tuple(a.get("failpath.actions", ())) == trace.actions
        assert a["failpath.degraded"] is False
        assert span.start_time == round(trace.time * 1e9)
        assert span.end_time - span.start_time == pytest.approx(trace.latency_ms * 1e6, abs=1)
        assert a["gen_ai.request.model"] == "difflib-cities" and a["gen_ai.provider.name"] == "local"
    answered = spans[0].attributes
    assert answered["failpath.confidence"] == 1.0 and "failpath.state" not in answered and "error.type" not in answered
    assert answered["gen_ai.usage.input_tokens"] == len("boston") and answered["gen_ai.usage.output_tokens"] == 1
    abstained = spans[1].attributes
    assert abstained["failpath.outcome"] == "abstained" and abstained["failpath.state"] == "invalid_output"
    assert abstained["error.type"] == "invalid_output"
    # provider error: call, retry, then escalation fails without a store, and the chain ends elsewhere
    failed = spans[2]
    assert [e.attributes["failpath.attempt.action"] for e in failed.events][:2] == ["call", "retry"]
    first = failed.events[0].attributes
    assert first["failpath.attempt.state"] == "provider_error"
    assert first["failpath.attempt.error"].startswith("ProviderFailure: upstream returned 503")
    assert all(failed.start_time <= e.timestamp <= failed.end_time for e in failed.events)
    assert "provider_error" in failed.attributes["failpath.states"]


def test_spans_beside_the_store_carry_the_ticket(otel, tmp_path):
    provider, memory = otel
    path = tmp_path / "failpath.db"
    with make_policy(path, exporters=(OTelExporter(provider),)) as policy:
        outcome = policy.wrap(lookup)("bstnn xx")
    assert isinstance(outcome, fp.Escalated)
    (span,) = memory.get_finished_spans()
    assert span.attributes["failpath.ticket_id"] == outcome.ticket_id
    assert span.attributes["failpath.state"] == "low_confidence"
    assert "gen_ai.request.model" not in span.attributes  # nothing said which model
    with fp.open_store(path) as store:
        stored = store.get_trace(outcome.trace_id)
        assert stored is not None and stored.ticket_id == outcome.ticket_id
        assert store.get_ticket(outcome.ticket_id).status == fp.TicketStatus.OPEN


def test_the_span_is_a_child_of_the_current_span(otel):
    provider, memory = otel
    tracer = provider.get_tracer("app")
    with make_policy(False, exporters=(OTelExporter(provider),)) as policy:
        guarded = policy.wrap(lookup)
        with tracer.start_as_current_span("POST /airport") as request:
            guarded("denver")
    spans = {s.name: s for s in memory.get_finished_spans()}
    child = spans["failpath airports"]
    assert child.parent is not None and child.parent.span_id == request.get_span_context().span_id
    assert child.context.trace_id == request.get_span_context().trace_id


def test_attributes_of_an_odd_trace_are_still_valid(otel):
    provider, memory = otel
    trace = fp.Trace(
        trace_id="t1", time=1_700_000_000.0, policy="p", input_digest="0" * 64, input_preview="x", outcome="answered",
        confidence=float("nan"), usage={"prompt_tokens": 7, "completion_tokens": "many"}, latency_ms=-3.0,
        detail={"model": "gpt-test", "provider": 42},
        attempts=(fp.Attempt(1, "call", latency_ms=5.0, usage={"input_tokens": 7}),),
    )
    OTelExporter(provider).export(trace)
    (span,) = memory.get_finished_spans()
    a = span.attributes
    assert "failpath.confidence" not in a  # NaN is dropped
    assert a["gen_ai.usage.input_tokens"] == 7 and "gen_ai.usage.output_tokens" not in a
    assert a["gen_ai.request.model"] == "gpt-test" and "gen_ai.provider.name" not in a
    assert span.end_time == span.start_time  # a negative latency never ends a span before it starts


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_importing_failpath_does_not_import_opentelemetry():
    done = _run(
        """
        import sys
        import failpath, failpath.watch, failpath.guard, failpath.watch.review, failpath.cli
        failpath.OTelExporter  # the name resolves without creating an exporter
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(loaded)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_missing_extra_says_what_to_install():
    done = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
        import failpath as fp
        try:
            fp.OTelExporter()
        except ImportError as exc:
            assert isinstance(exc, fp.FailpathError)
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'failpath[otel]'" in done.stdout

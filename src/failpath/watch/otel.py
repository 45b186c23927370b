"""OpenTelemetry export: every guarded call becomes a span, every attempt a span event.

Use it as an exporter of a policy, beside the SQLite store or instead of it::

    from failpath.watch import OTelExporter
    policy = fp.Policy("address", rules, exporters=[OTelExporter()])               # store + spans
    policy = fp.Policy("address", rules, store=False, exporters=[OTelExporter()])  # spans only

The span runs from the trace's start time for its latency; it carries ``failpath.*`` attributes and
the OpenTelemetry GenAI semantic convention attributes that apply (token usage, model, provider).
Inputs are never put on spans (a digest is), because they may hold personal data.

OpenTelemetry is an optional extra: ``pip install 'failpath[otel]'``. This module imports it only when
an exporter is created, so ``import failpath`` never does.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from failpath.core import Attempt, ConfigError, Trace

__all__ = ["OTelExporter", "OTelUnavailable", "span_attributes"]

#: Version of the GenAI semantic conventions whose attribute names are used here.
GENAI_SEMCONV = "1.37"

_INPUT_TOKEN_KEYS = ("input_tokens", "prompt_tokens")
_OUTPUT_TOKEN_KEYS = ("output_tokens", "completion_tokens")
_MODEL_KEYS = ("model", "gen_ai.request.model")
_PROVIDER_KEYS = ("provider", "gen_ai.provider.name")


class OTelUnavailable(ConfigError, ImportError):
    """OpenTelemetry is not installed; the message says which extra to install."""


def _import_otel_trace() -> Any:
    try:
        return importlib.import_module("opentelemetry.trace")
    except ImportError as exc:
        raise OTelUnavailable(
            "OpenTelemetry export needs the otel extra, which is not installed "
            f"({exc.name or 'opentelemetry'} is missing): pip install 'failpath[otel]'"
        ) from exc


class OTelExporter:
    """An exporter for ``Policy(exporters=[...])`` that turns each trace into an OpenTelemetry span.

    ``tracer_provider`` is the provider to create spans with; ``None`` uses the global one (set by
    your application or by ``opentelemetry-instrument``). The span is a child of whatever span is
    current when the guard calls ``export`` (your request span, typically).

    ``model`` and ``provider`` fill ``gen_ai.request.model`` and ``gen_ai.provider.name`` when the
    trace does not say them (``trace.detail["model"]`` / ``["provider"]`` win when present).
    """

    def __init__(
        self,
        tracer_provider: Any | None = None,
        *,
        model: str | None = None,
        provider: str | None = None,
        span_name: str = "failpath {policy}",
    ) -> None:
        otel_trace = _import_otel_trace()
        from failpath.core import __version__

        self._otel_trace = otel_trace
        self._tracer = otel_trace.get_tracer("failpath", __version__, tracer_provider=tracer_provider)
        self._span_name = span_name
        self._defaults = {k: v for k, v in (("gen_ai.request.model", model), ("gen_ai.provider.name", provider)) if v}

    def export(self, trace: Trace) -> None:
        """Emit one span for ``trace``, with one event per attempt.

        The trace of an agent run (``trace.detail["steps"]``) becomes an ``invoke_agent`` span with one
        child span per step, named by the GenAI conventions: ``chat`` for a model turn, ``execute_tool
        {name}`` for a tool call.
        """
        start_ns = _to_ns(trace.time)
        end_ns = start_ns + _ms_to_ns(trace.latency_ms)
        steps = (trace.detail or {}).get("steps")
        attributes = {**self._defaults, **span_attributes(trace)}
        name = self._span_name.format(policy=trace.policy)
        if isinstance(steps, list):
            agent = (trace.detail or {}).get("agent") or trace.policy
            name = f"invoke_agent {agent}"
            attributes.update({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": str(agent)})
            if isinstance(trace.detail.get("run_id"), str):
                attributes["gen_ai.conversation.id"] = trace.detail["run_id"]
        span = self._tracer.start_span(name, kind=self._otel_trace.SpanKind.INTERNAL, attributes=attributes, start_time=start_ns)
        try:
            if isinstance(steps, list):
                self._step_spans(span, steps, start_ns, end_ns)
                return
            elapsed_ns = start_ns
            for attempt in trace.attempts:
                elapsed_ns += _ms_to_ns(attempt.latency_ms)
                span.add_event("failpath.attempt", attributes=_attempt_attributes(attempt), timestamp=min(elapsed_ns, end_ns))
        finally:
            span.end(end_time=end_ns)

    def _step_spans(self, parent: Any, steps: list[Any], start_ns: int, end_ns: int) -> None:
        """One child span per step of an agent run, laid end to end from the run's start."""
        context = self._otel_trace.set_span_in_context(parent)
        at_ns = start_ns
        for number, step in enumerate(steps, start=1):
            if not isinstance(step, Mapping):
                continue
            step_end = min(at_ns + _ms_to_ns(step.get("latency_ms") or 0.0), end_ns)
            child = self._tracer.start_span(
                _step_name(step), context=context, kind=self._otel_trace.SpanKind.INTERNAL,
                attributes=_step_attributes(number, step), start_time=at_ns,
            )
            child.end(end_time=step_end)
            at_ns = step_end

    def __repr__(self) -> str:
        return f"OTelExporter(span_name={self._span_name!r})"


def span_attributes(trace: Trace) -> dict[str, Any]:
    """The attributes of the span for ``trace``: ``failpath.*`` and the GenAI ones that apply.

    ``None`` values are left out (OpenTelemetry drops them anyway, with a warning).
    """
    attributes: dict[str, Any] = {
        "failpath.trace_id": trace.trace_id,
        "failpath.policy": trace.policy,
        "failpath.outcome": trace.outcome,
        "failpath.state": trace.state,
        "failpath.states": list(trace.states),
        "failpath.actions": list(trace.actions),
        "failpath.degraded": bool(trace.degraded),
        "failpath.attempts": len(trace.attempts),
        "failpath.confidence": _number(trace.confidence),
        "failpath.latency_ms": _number(trace.latency_ms),
        "failpath.ticket_id": trace.ticket_id,
        "failpath.input_digest": trace.input_digest,
    }
    if trace.outcome != "answered" and trace.state:
        attributes["error.type"] = trace.state
    input_tokens = _first_number(trace.usage, _INPUT_TOKEN_KEYS)
    output_tokens = _first_number(trace.usage, _OUTPUT_TOKEN_KEYS)
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = int(input_tokens)
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = int(output_tokens)
    model = _first_text(trace.detail, _MODEL_KEYS)
    provider = _first_text(trace.detail, _PROVIDER_KEYS)
    if model:
        attributes["gen_ai.request.model"] = model
    if provider:
        attributes["gen_ai.provider.name"] = provider
    return {key: value for key, value in attributes.items() if value is not None and value != []}


def _step_name(step: Mapping[str, Any]) -> str:
    if step.get("kind") == "tool":
        return f"execute_tool {step.get('name')}"
    return "chat"


def _step_attributes(number: int, step: Mapping[str, Any]) -> dict[str, Any]:
    """A step's span attributes: the GenAI operation and tool names, and failpath's state and action."""
    tool = step.get("kind") == "tool"
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool" if tool else "chat",
        "failpath.step.number": number,
        "failpath.step.state": step.get("state"),
        "failpath.step.action": step.get("action"),
        "failpath.step.latency_ms": _number(step.get("latency_ms")),
    }
    if tool:
        attributes["gen_ai.tool.name"] = step.get("name")
        attributes["gen_ai.tool.call.id"] = step.get("call_id")
        attributes["gen_ai.tool.type"] = "function"
    if step.get("error"):
        attributes["error.type"] = str(step["error"]).split(":", 1)[0]
    tokens = step.get("tokens")
    input_tokens = _first_number(tokens if isinstance(tokens, Mapping) else None, _INPUT_TOKEN_KEYS)
    output_tokens = _first_number(tokens if isinstance(tokens, Mapping) else None, _OUTPUT_TOKEN_KEYS)
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = int(input_tokens)
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = int(output_tokens)
    return {key: value for key, value in attributes.items() if value is not None}


def _attempt_attributes(attempt: Attempt) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "failpath.attempt.number": attempt.number,
        "failpath.attempt.action": attempt.action,
        "failpath.attempt.system": attempt.system,
        "failpath.attempt.state": attempt.state,
        "failpath.attempt.error": attempt.error,
        "failpath.attempt.confidence": _number(attempt.confidence),
        "failpath.attempt.latency_ms": _number(attempt.latency_ms),
    }
    input_tokens = _first_number(attempt.usage, _INPUT_TOKEN_KEYS)
    output_tokens = _first_number(attempt.usage, _OUTPUT_TOKEN_KEYS)
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = int(input_tokens)
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = int(output_tokens)
    return {key: value for key, value in attributes.items() if value is not None}


def _to_ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _ms_to_ns(ms: float) -> int:
    number = _number(ms)
    return max(0, int(round(number * 1e6))) if number is not None else 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value else None  # NaN is dropped


def _first_number(mapping: Mapping[str, Any] | None, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        number = _number((mapping or {}).get(key))
        if number is not None:
            return number
    return None


def _first_text(mapping: Mapping[str, Any] | None, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = (mapping or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None

"""The Anthropic adapter: a ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` client as a failpath system."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from failpath.core import ConfigError, Prediction
from failpath.llm._common import (
    Template,
    check_params,
    check_schema,
    feedback_messages,
    json_schema_of,
    parse_output,
    prediction,
    rejected,
    render_input,
    schema_instruction,
    to_messages,
)
from failpath.llm._system import LLMSystem, build_system
from failpath.llm._tools import anthropic_messages, anthropic_tools, tool_definitions

_ADAPTER = "fp.llm.anthropic"

_TRUNCATED = {
    "max_tokens": "the answer was cut off at max_tokens; raise max_tokens or shorten the task",
    "model_context_window_exceeded": "the answer was cut off by the model's context window; shorten the input",
}


# long: its docstring documents every option (32 lines); the body builds one request per call in prepare()
def anthropic(
    client: Any,
    *,
    model: str,
    schema: type | None = None,
    system: str | None = None,
    template: Template = None,
    max_tokens: int = 1024,
    schema_mode: str = "native",
    timeout: float | None = None,
    sdk_retries: int | None = 0,
    name: str | None = None,
    tools: Sequence[Any] | None = None,
    **params: Any,
) -> LLMSystem:
    """Turn an Anthropic SDK client into a failpath system.

    The system takes a prompt string or a list of ``{"role", "content"}`` messages (``system``-role
    messages are moved into the ``system`` parameter), or whatever ``template`` turns into one, and
    returns a ``Prediction`` whose value is the answer text, or an instance of ``schema`` (a pydantic
    model or dataclass) when one is given. ``AsyncAnthropic`` gives an async system.

    - ``system``: the system prompt.
    - ``schema_mode``: ``"native"`` asks the API to enforce the schema (``output_config.format``, a
      JSON schema made by ``anthropic.transform_schema``); ``"prompt"`` only describes it in the
      system prompt, for models without structured output. Either way the answer is validated.
    - ``max_tokens`` (required by the API) defaults to 1024; any other keyword (``stop_sequences``,
      ``thinking``, ``metadata``, ``extra_body``...) goes to ``messages.create`` as it is. There is no
      ``temperature``: the current API version (``2026-10-21``, sent by SDK 2.x) removed the sampling
      parameters and rejects them; answers are sampled, so self-consistency samples differ anyway.
    - ``timeout`` (seconds) bounds each request; past it the call raises ``SystemTimeout``.
    - ``sdk_retries``: the adapter uses ``client.with_options(max_retries=sdk_retries)``, 0 by
      default, so the SDK does not retry behind the policy's back (``None`` keeps the client's setting).
    - ``tools``: ``@fp.tool`` functions (or ``{"name", "description", "parameters"}`` dicts) the model
      may call. The input is then an agent's list of message dicts (see ``fp.Agent``; tool results
      become ``tool_result`` blocks); when the model calls tools (``stop_reason="tool_use"``),
      ``Prediction.meta["tool_calls"]`` holds ``[{"id", "name", "arguments"}]`` (the ``tool_use``
      blocks' input objects) and the value is the text beside them, if any.

    The Messages API returns no log probabilities, so the confidence is ``None``: use
    ``fp.Inconsistent`` (self-consistency) for a confidence signal. Rate limits (429), overload
    (529), server errors and connection failures raise ``ProviderFailure``; a refusal
    (``stop_reason="refusal"``), an empty answer, a truncated one (``"max_tokens"``) or one off the
    schema raises ``OutputRejected``. ``Prediction.meta["usage"]`` holds ``input_tokens`` (cache
    reads and writes included), ``output_tokens`` and ``model`` (the name given here, so it matches a
    ``Budget`` price table); the same usage is on an ``OutputRejected`` as ``.usage``.
    """
    check_schema(schema, adapter=_ADAPTER)
    if schema_mode not in ("native", "prompt"):
        raise ConfigError(f"{_ADAPTER}: schema_mode= must be 'native' or 'prompt', not {schema_mode!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError(f"{_ADAPTER}: max_tokens= must be a positive integer, not {max_tokens!r}")
    create = _create_method(client)
    check_params(
        create,
        params,
        adapter=_ADAPTER,
        sdk_call="messages.create",
        hint=" (the API version the SDK sends has no sampling parameters: temperature, top_p, top_k)"
        if {"temperature", "top_p", "top_k"} & set(params)
        else "",
    )
    sdk = importlib.import_module("anthropic")
    if sdk_retries is not None:
        client = client.with_options(max_retries=sdk_retries)
        create = client.messages.create

    output_config: dict[str, Any] | None = None
    system_text = system
    if schema is not None:
        if schema_mode == "native":
            output_config = {"format": {"type": "json_schema", "schema": sdk.transform_schema(json_schema_of(schema))}}
        else:
            system_text = f"{system}\n\n{schema_instruction(schema)}" if system else schema_instruction(schema)

    definitions = None if tools is None else anthropic_tools(tool_definitions(tools, adapter=_ADAPTER))

    def prepare(value: Any, feedback: Any = None) -> dict[str, Any]:
        if definitions is not None:
            system_parts, messages = anthropic_messages(render_input(value, template), adapter=_ADAPTER)
            messages.extend(feedback_messages(feedback))
        else:
            messages = to_messages(render_input(value, template), adapter=_ADAPTER)
            system_parts = [m["content"] for m in messages if m["role"] == "system"]
            messages = [m for m in messages if m["role"] != "system"]
        messages.extend(feedback_messages(feedback))
        if not messages:
            raise TypeError(f"{_ADAPTER}: the messages hold only system messages; add a user message")
        if system_text:
            system_parts.insert(0, system_text)
        kwargs: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
        if system_parts:
            kwargs["system"] = "\n\n".join(str(p) for p in system_parts)
        if output_config is not None:
            kwargs["output_config"] = output_config
        if timeout is not None:
            kwargs["timeout"] = timeout
        if definitions:
            kwargs["tools"] = definitions
        kwargs.update(params)
        return kwargs

    def interpret(message: Any) -> Prediction:
        return _interpret(message, schema=schema, model=model)

    return build_system(
        provider="anthropic", model=model, name=name, schema=schema, create=create,
        prepare=prepare, interpret=interpret, sdk=sdk, timeout=timeout,
    )


def _create_method(client: Any) -> Any:
    try:
        return client.messages.create
    except AttributeError:
        raise ConfigError(
            f"{_ADAPTER} expects an anthropic.Anthropic or anthropic.AsyncAnthropic client, got "
            f"{type(client).__name__}; create one with anthropic.Anthropic(base_url=..., api_key=...)"
        ) from None


def _usage(message: Any, model: str) -> dict[str, Any]:
    usage = getattr(message, "usage", None)
    if usage is None:
        return {"model": model}
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return {"input_tokens": (usage.input_tokens or 0) + cached, "output_tokens": usage.output_tokens or 0, "model": model}


def _interpret(message: Any, *, schema: Any, model: str) -> Prediction:
    meta: dict[str, Any] = {
        "provider": "anthropic",
        "model": getattr(message, "model", None),
        "usage": _usage(message, model),
        "response_id": getattr(message, "id", None),
        "finish_reason": message.stop_reason,
    }
    text = "".join(block.text for block in message.content if getattr(block, "type", None) == "text")
    stop = message.stop_reason
    if stop == "refusal":
        details = getattr(message, "stop_details", None)
        why = getattr(details, "explanation", None) or getattr(details, "category", None)
        meta["refusal"] = why or text or "refusal"
        raise rejected(f"{_ADAPTER}: the model refused{f' ({why})' if why else ''}", raw=text or None, meta=meta)
    if stop in _TRUNCATED:
        raise rejected(f"{_ADAPTER}: {_TRUNCATED[stop]} (stop_reason={stop!r})", raw=text, meta=meta)
    if stop == "pause_turn":
        raise rejected(f"{_ADAPTER}: the model paused its turn (stop_reason='pause_turn')", raw=text, meta=meta)
    calls = [b for b in message.content if getattr(b, "type", None) == "tool_use"]
    if calls:
        meta["tool_calls"] = [{"id": b.id, "name": b.name, "arguments": b.input} for b in calls]
        return prediction(text or None, None, meta)
    if not text.strip():
        kinds = sorted({getattr(b, "type", "?") for b in message.content})
        detail = f" (content blocks: {', '.join(kinds)})" if kinds else ""
        raise rejected(f"{_ADAPTER}: the answer is empty{detail}", raw=text, meta=meta)
    value = parse_output(text, schema, adapter=_ADAPTER, meta=meta)
    return prediction(value, None, meta)

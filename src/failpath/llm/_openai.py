"""The OpenAI adapter: a ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client as a failpath system."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from failpath.core import ConfigError, Prediction
from failpath.llm._common import (
    ConfidenceMethod,
    Template,
    check_confidence_method,
    check_params,
    check_schema,
    feedback_messages,
    logprob_confidence,
    parse_output,
    prediction,
    rejected,
    render_input,
    schema_instruction,
    to_messages,
)
from failpath.llm._system import LLMSystem, build_system
from failpath.llm._tools import openai_messages, openai_tools, tool_definitions

_ADAPTER = "fp.llm.openai"


# long: its docstring documents every option (34 lines); the body builds one request per call in prepare()
def openai(
    client: Any,
    *,
    model: str,
    schema: type | None = None,
    system: str | None = None,
    template: Template = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    logprobs: bool = False,
    confidence: ConfidenceMethod = "joint",
    schema_mode: str = "native",
    timeout: float | None = None,
    sdk_retries: int | None = 0,
    name: str | None = None,
    tools: Sequence[Any] | None = None,
    **params: Any,
) -> LLMSystem:
    """Turn an OpenAI SDK client (or any OpenAI-compatible endpoint's) into a failpath system.

    The system takes a prompt string or a list of ``{"role", "content"}`` messages (or whatever
    ``template`` turns into one: a format string with ``{input}``, or a function) and returns a
    ``Prediction`` whose value is the answer text, or an instance of ``schema`` (a pydantic model or
    dataclass) when one is given. ``AsyncOpenAI`` gives an async system.

    - ``system``: the system prompt, sent first as a ``system`` message.
    - ``schema_mode``: ``"native"`` asks the API to enforce the schema (``response_format`` with a
      strict JSON schema); ``"prompt"`` only describes the schema in the system prompt, for
      compatible servers that do not support structured output. Either way the answer is validated.
    - ``logprobs=True`` asks for token log probabilities; the confidence is then computed from them
      with ``confidence`` (``"joint"``: exp of their sum, the probability of the whole answer;
      ``"mean"``: exp of their mean; or a function of the list). Without them it is ``None``.
    - ``max_tokens`` is sent as ``max_completion_tokens``; ``temperature`` and any other keyword
      (``seed``, ``top_p``, ``extra_body``...) go to ``chat.completions.create`` as they are.
    - ``timeout`` (seconds) bounds each request; past it the call raises ``SystemTimeout``.
    - ``sdk_retries``: the adapter uses ``client.with_options(max_retries=sdk_retries)``, 0 by
      default, so the SDK does not retry behind the policy's back: the policy's ``Retry`` decides
      (``None`` keeps the client's own setting).
    - ``tools``: ``@fp.tool`` functions (or ``{"name", "description", "parameters"}`` dicts) the model
      may call. The input is then an agent's list of message dicts (see ``fp.Agent``); when the model
      calls tools, ``Prediction.meta["tool_calls"]`` holds ``[{"id", "name", "arguments"}]`` (the
      arguments as the JSON text the model wrote) and the value is the text beside them, if any:
      the system is an ``fp.Agent``'s model step as it is.

    Rate limits, server errors and connection failures raise ``ProviderFailure`` (``status``,
    ``retry_after`` from the ``retry-after`` header); a refusal, an empty answer, a truncated answer
    (``finish_reason="length"``), a content-filtered one, or one off the schema raises
    ``OutputRejected``. ``Prediction.meta["usage"]`` holds ``input_tokens``, ``output_tokens`` and
    ``model`` (the name given here, so it matches a ``Budget`` price table); the same usage is on an
    ``OutputRejected`` as ``.usage`` (the tokens were spent). ``meta["model"]`` is the model that
    answered, as the API names it (often a dated snapshot).
    """
    check_schema(schema, adapter=_ADAPTER)
    check_confidence_method(confidence)
    if schema_mode not in ("native", "prompt"):
        raise ConfigError(f"{_ADAPTER}: schema_mode= must be 'native' or 'prompt', not {schema_mode!r}")
    create = _create_method(client)
    check_params(create, params, adapter=_ADAPTER, sdk_call="chat.completions.create")
    sdk = importlib.import_module("openai")
    if sdk_retries is not None:
        client = client.with_options(max_retries=sdk_retries)
        create = client.chat.completions.create

    response_format: Any = None
    system_text = system
    if schema is not None:
        if schema_mode == "native":
            from openai.lib._parsing import type_to_response_format_param

            response_format = type_to_response_format_param(schema)
        else:
            system_text = f"{system}\n\n{schema_instruction(schema)}" if system else schema_instruction(schema)

    definitions = None if tools is None else openai_tools(tool_definitions(tools, adapter=_ADAPTER))

    def prepare(value: Any, feedback: Any = None) -> dict[str, Any]:
        if definitions is not None:
            messages = openai_messages(render_input(value, template), adapter=_ADAPTER)
        else:
            messages = to_messages(render_input(value, template), adapter=_ADAPTER)
        messages.extend(feedback_messages(feedback))
        if system_text:
            messages.insert(0, {"role": "system", "content": system_text})
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_completion_tokens"] = max_tokens
        if logprobs:
            kwargs["logprobs"] = True
        if response_format is not None:
            kwargs["response_format"] = response_format
        if timeout is not None:
            kwargs["timeout"] = timeout
        if definitions:
            kwargs["tools"] = definitions
        kwargs.update(params)
        return kwargs

    def interpret(completion: Any) -> Prediction:
        return _interpret(completion, schema=schema, confidence=confidence, model=model)

    return build_system(
        provider="openai", model=model, name=name, schema=schema, create=create,
        prepare=prepare, interpret=interpret, sdk=sdk, timeout=timeout,
    )


def _create_method(client: Any) -> Any:
    try:
        return client.chat.completions.create
    except AttributeError:
        raise ConfigError(
            f"{_ADAPTER} expects an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}; "
            "create one with openai.OpenAI(base_url=..., api_key=...)"
        ) from None


def _usage(completion: Any, model: str) -> dict[str, Any]:
    usage = getattr(completion, "usage", None)
    if usage is None:
        return {"model": model}
    return {"input_tokens": usage.prompt_tokens or 0, "output_tokens": usage.completion_tokens or 0, "model": model}


def _interpret(
    completion: Any, *, schema: Any, confidence: ConfidenceMethod, model: str, adapter: str = _ADAPTER, provider: str = "openai"
) -> Prediction:
    """The ``Prediction`` of a chat completion (OpenAI's, or LiteLLM's, which has the same shape)."""
    meta: dict[str, Any] = {
        "provider": provider,
        "model": getattr(completion, "model", None),
        "usage": _usage(completion, model),
        "response_id": getattr(completion, "id", None),
    }
    choices = getattr(completion, "choices", None) or []
    if not choices:
        raise rejected(f"{adapter}: the response has no choices", raw=None, meta=meta)
    choice = choices[0]
    message = choice.message
    text = message.content
    meta["finish_reason"] = choice.finish_reason
    refusal = getattr(message, "refusal", None)
    if refusal:
        meta["refusal"] = refusal
        raise rejected(f"{adapter}: the model refused: {refusal[:200]!r}", raw=refusal, meta=meta)
    if choice.finish_reason == "length":
        raise rejected(
            f"{adapter}: the answer was cut off at the token limit (finish_reason='length'); "
            "raise max_tokens or shorten the task",
            raw=text,
            meta=meta,
        )
    if choice.finish_reason == "content_filter":
        raise rejected(f"{adapter}: the answer was withheld by the content filter", raw=text, meta=meta)
    calls = getattr(message, "tool_calls", None)
    if calls:
        meta["tool_calls"] = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in calls if getattr(c, "function", None)]
        return prediction(text or None, None, meta)
    if text is None or not text.strip():
        detail = " (the model called a tool instead)" if calls else ""
        raise rejected(f"{adapter}: the answer is empty{detail}", raw=text, meta=meta)

    token_logprobs = _content_logprobs(choice)
    if token_logprobs is not None:
        meta["logprob_tokens"] = len(token_logprobs)
    value = parse_output(text, schema, adapter=adapter, meta=meta)
    return prediction(value, logprob_confidence(token_logprobs or [], confidence), meta)


def _content_logprobs(choice: Any) -> list[float] | None:
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    return [float(token.logprob) for token in content]

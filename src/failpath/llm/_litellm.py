"""The LiteLLM adapter: ``litellm.completion`` / ``litellm.acompletion`` (any provider LiteLLM routes to) as a failpath system.

LiteLLM is an optional extra (``pip install "failpath[litellm]"``), imported when the first adapter is
built, never by ``import failpath``. By default LiteLLM downloads its model cost map (and other
catalogs) from GitHub when it is imported; failpath makes no network request of its own, so before that
import the adapter sets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` and ``LITELLM_OFFLINE_MODE=true`` unless
they are set already: LiteLLM then uses the copies bundled in its wheel.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from failpath.core import ConfigError, OutputRejected, Prediction, ProviderFailure, SystemTimeout, is_transient_status
from failpath.llm._common import (
    ConfidenceMethod,
    Template,
    check_confidence_method,
    check_schema,
    feedback_messages,
    parse_retry_after,
    render_input,
    schema_instruction,
    to_messages,
)
from failpath.llm._openai import _interpret
from failpath.llm._system import AsyncLLMSystem, LLMSystem

_ADAPTER = "fp.llm.litellm"

#: Set (unless already set) before LiteLLM is imported, so that importing it fetches nothing.
OFFLINE_ENVIRONMENT = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}


def import_litellm() -> Any:
    """The ``litellm`` module, imported without letting it fetch its catalogs (see :data:`OFFLINE_ENVIRONMENT`)."""
    if "litellm" not in sys.modules:
        for key, value in OFFLINE_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
    try:
        return importlib.import_module("litellm")
    except ImportError as exc:
        raise ConfigError(f'{_ADAPTER} needs LiteLLM, which is not installed ({exc}); pip install "failpath[litellm]"') from None


# long: its docstring documents every option (33 lines); the body builds one request per call in prepare()
def litellm(
    model: str,
    *,
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
    is_async: bool = False,
    router: Any = None,
    name: str | None = None,
    **params: Any,
) -> LLMSystem:
    """Turn a LiteLLM model (``"openai/gpt-4o-mini"``, ``"anthropic/claude-haiku-4-5"``, ...) into a failpath system.

    The system takes a prompt string or a list of ``{"role", "content"}`` messages (or whatever
    ``template`` turns into one) and returns a ``Prediction`` whose value is the answer text, or an
    instance of ``schema`` (a pydantic model or dataclass). It calls ``litellm.completion``, or
    ``litellm.acompletion`` with ``is_async=True`` (an async system); with ``router=`` (a
    ``litellm.Router``) it calls the router's ``completion`` / ``acompletion`` and ``model`` is the
    router's model name. Any other keyword (``api_base``, ``api_key``, ``seed``, ``top_p``, ...) goes
    to the call as it is.

    - ``schema_mode``: ``"native"`` sends ``response_format`` with a strict JSON schema (LiteLLM
      translates it for providers that enforce schemas another way); ``"prompt"`` only describes the
      schema in the system prompt. Either way the answer is validated.
    - ``logprobs=True`` asks for token log probabilities where the provider has them; the confidence is
      computed with ``confidence`` as for ``fp.llm.openai``. Without them it is ``None``.
    - ``timeout`` (seconds) bounds each request; past it the call raises ``SystemTimeout``.
    - ``sdk_retries``: sent as LiteLLM's ``num_retries`` and ``max_retries``, 0 by default, so neither
      LiteLLM nor the provider's SDK retries behind the policy's back (``None`` keeps LiteLLM's settings).

    LiteLLM maps every provider's errors onto OpenAI's exception types; the adapter maps those onto
    failpath's: a rate limit (429) is a ``ProviderFailure`` with ``retry_after`` from the ``retry-after``
    header, a timeout a ``SystemTimeout``, server errors and overload (5xx) and connection failures are
    transient ``ProviderFailure``s, and a request refused by the content filter or longer than the
    model's context window is a ``ProviderFailure(status=400)`` that says so and is not retried. A
    refusal, a truncated or content-filtered answer, an empty one or one off the schema raises
    ``OutputRejected``. ``Prediction.meta["usage"]`` holds ``input_tokens``, ``output_tokens`` and
    ``model`` (the name given here). ``fp.Reask`` works as with the other adapters.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{_ADAPTER}: model= must be LiteLLM's model name, such as 'openai/gpt-4o-mini', not {model!r}")
    check_schema(schema, adapter=_ADAPTER)
    check_confidence_method(confidence)
    if schema_mode not in ("native", "prompt"):
        raise ConfigError(f"{_ADAPTER}: schema_mode= must be 'native' or 'prompt', not {schema_mode!r}")
    if sdk_retries is not None and (isinstance(sdk_retries, bool) or not isinstance(sdk_retries, int) or sdk_retries < 0):
        raise ConfigError(f"{_ADAPTER}: sdk_retries= must be an integer of at least 0 or None, not {sdk_retries!r}")
    sdk = import_litellm()
    create = _create_method(sdk, router, is_async)

    response_format: Any = None
    system_text = system
    if schema is not None:
        if schema_mode == "native":
            from openai.lib._parsing import type_to_response_format_param  # openai is one of LiteLLM's dependencies

            response_format = type_to_response_format_param(schema)
        else:
            system_text = f"{system}\n\n{schema_instruction(schema)}" if system else schema_instruction(schema)

    def prepare(value: Any, feedback: Any = None) -> dict[str, Any]:
        messages = to_messages(render_input(value, template), adapter=_ADAPTER)
        messages.extend(feedback_messages(feedback))
        if system_text:
            messages.insert(0, {"role": "system", "content": system_text})
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if logprobs:
            kwargs["logprobs"] = True
        if response_format is not None:
            kwargs["response_format"] = response_format
        if timeout is not None:
            kwargs["timeout"] = timeout
        if sdk_retries is not None:
            kwargs["num_retries"] = sdk_retries
            kwargs["max_retries"] = sdk_retries
        kwargs.update(params)
        return kwargs

    def interpret(response: Any) -> Prediction:
        return _interpret(response, schema=schema, confidence=confidence, model=model, adapter=_ADAPTER, provider="litellm")

    def translate(exc: BaseException) -> BaseException | None:
        return map_litellm_error(exc, sdk, timeout=timeout)

    kind = AsyncLLMSystem if is_async else LLMSystem
    return kind(
        name=name or f"litellm:{model}",
        provider="litellm",
        model=model,
        schema=schema,
        send=lambda kwargs: create(**kwargs),
        prepare=prepare,
        interpret=interpret,
        translate=translate,
    )


def _create_method(sdk: Any, router: Any, is_async: bool) -> Any:
    if not isinstance(is_async, bool):
        raise ConfigError(f"{_ADAPTER}: is_async= must be True or False, not {is_async!r}")
    owner, label = (sdk, "litellm") if router is None else (router, "router")
    method = getattr(owner, "acompletion" if is_async else "completion", None)
    if not callable(method):
        raise ConfigError(
            f"{_ADAPTER}: router= must be a litellm.Router (with completion and acompletion methods), got {type(router).__name__}"
            if router is not None
            else f"{_ADAPTER}: {label} has no completion function; is the installed LiteLLM too old?"
        )
    return method


def map_litellm_error(exc: BaseException, sdk: Any, *, timeout: float | None) -> BaseException | None:
    """The failpath exception for a LiteLLM exception, or ``None`` when it is not the provider's doing."""
    if _is(exc, sdk, "Timeout"):
        after = f" after {timeout:g} s" if timeout is not None else ""
        return SystemTimeout(f"litellm: the request timed out{after}")
    if _is(exc, sdk, "JSONSchemaValidationError"):
        return OutputRejected(f"litellm: the answer does not match the schema: {_message(exc)}", raw=getattr(exc, "raw_response", None))
    if _is(exc, sdk, "APIConnectionError"):
        return ProviderFailure(f"litellm: could not reach the provider: {_message(exc)}")
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not (_is(exc, sdk, "APIError") or _is(exc, importlib.import_module("openai"), "APIError")):
        return None
    retry_after = _retry_after(exc)
    if _is(exc, sdk, "ContextWindowExceededError"):
        what = "context window exceeded (not transient: shorten the input or use a model with a longer context)"
    elif _is(exc, sdk, "ContentPolicyViolationError"):
        what = "content filter: the provider refused the request (not transient: change the input)"
    else:
        wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
        transient = "transient" if is_transient_status(status) else "not transient: fix the request, key or model"
        what = f"{type(exc).__name__} ({transient}{wait})"
    return ProviderFailure(f"litellm: HTTP {status} {what}: {_message(exc)}", status=status, retry_after=retry_after)


def _is(exc: BaseException, module: Any, name: str) -> bool:
    """``isinstance(exc, module.<name>)``, False when this LiteLLM version has no such exception."""
    kind = getattr(module, name, None)
    return isinstance(kind, type) and isinstance(exc, kind)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds to wait, from the error's own headers or the provider's response headers."""
    for headers in (getattr(exc, "headers", None), getattr(getattr(exc, "response", None), "headers", None)):
        if isinstance(headers, Mapping) or hasattr(headers, "get"):
            seconds = parse_retry_after({str(k).lower(): str(v) for k, v in headers.items()})
            if seconds is not None:
                return seconds
    return None


_PREFIXES = re.compile(r"^(?:(?:litellm\.)?[A-Za-z]*(?:Error|Exception|Timeout)\s*[:-]\s*)+")


def _message(exc: BaseException) -> str:
    """The provider's message without LiteLLM's repeated class-name prefixes (``litellm.RateLimitError: RateLimitError: OpenAIException - ``)."""
    text = str(getattr(exc, "message", None) or exc)
    return _PREFIXES.sub("", text)[:500]

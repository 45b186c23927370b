"""What the OpenAI and Anthropic adapters share: input to messages, schema checks, confidence, error mapping.

Nothing here imports an SDK: the adapters pass the SDK module in where it is needed.
"""

from __future__ import annotations

import dataclasses
import email.utils
import inspect
import json
import math
import re
import time
from typing import Any, Callable, Literal, Mapping, Sequence

from failpath.core import TRANSIENT_STATUSES, ConfigError, OutputRejected, Prediction, ProviderFailure, SystemTimeout, is_transient_status

ConfidenceMethod = Literal["joint", "mean"] | Callable[[Sequence[float]], float | None] | None
Template = str | Callable[[Any], Any] | None
Messages = list[dict[str, Any]]


# --------------------------------------------------------------------------- confidence


def logprob_confidence(logprobs: Sequence[float], method: ConfidenceMethod = "joint") -> float | None:
    """The confidence of an answer from its tokens' log probabilities (natural log).

    ``"joint"`` (the default): ``exp(sum(logprobs))``, the probability the model gave to this exact
    answer. With a schema the JSON scaffolding is forced (log probability 0), so this is the
    probability of the chosen field values — what a classifier's confidence should be.
    ``"mean"``: ``exp(mean(logprobs))``, the geometric mean of the token probabilities; it does not
    shrink with length (useful for long free text) but dilutes one uncertain token among many sure ones.
    A callable receives the list and returns the confidence. No tokens gives ``None``.
    """
    values = [float(lp) for lp in logprobs]
    if not values or method is None:
        return None
    if callable(method):
        result = method(values)
        return None if result is None else _clamp(float(result))
    if method == "joint":
        return _clamp(math.exp(math.fsum(values)))
    if method == "mean":
        return _clamp(math.exp(math.fsum(values) / len(values)))
    raise ConfigError(f"confidence= must be 'joint', 'mean', a function or None, not {method!r}")


def _clamp(p: float) -> float:
    if math.isnan(p):
        return 0.0
    return min(1.0, max(0.0, p))


def check_confidence_method(method: ConfidenceMethod) -> None:
    """Fail at construction, not at the first call, when ``confidence=`` is not understood."""
    if method is None or callable(method) or method in ("joint", "mean"):
        return
    raise ConfigError(f"confidence= must be 'joint', 'mean', a function or None, not {method!r}")


# --------------------------------------------------------------------------- input


def render_input(value: Any, template: Template) -> Any:
    """Apply the adapter's ``template`` to the system's input."""
    if template is None:
        return value
    if callable(template):
        return template(value)
    if isinstance(value, Mapping):
        return template.format(input=value, **{str(k): v for k, v in value.items()})
    return template.format(input=value)


def to_messages(value: Any, *, adapter: str) -> Messages:
    """A prompt string or a list of ``{"role", "content"}`` messages, as a fresh list of message dicts."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        messages: Messages = []
        for i, message in enumerate(value):
            if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
                raise TypeError(
                    f"{adapter}: message {i} must be a mapping with 'role' and 'content', got {message!r:.80}"
                )
            messages.append(dict(message))
        if not messages:
            raise TypeError(f"{adapter}: the list of messages is empty; give a prompt string or at least one message")
        return messages
    raise TypeError(
        f"{adapter}: input must be a prompt string or a list of messages like "
        f"[{{'role': 'user', 'content': '...'}}], got {type(value).__name__}; "
        "pass template= to turn other inputs into a prompt"
    )


def answer_text(answer: Any) -> str:
    """A previous answer as the text the model would have written: text as is, a schema instance as JSON."""
    if answer is None:
        return ""
    if isinstance(answer, str):
        return answer
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(type(answer)).dump_json(answer).decode()
    except Exception:
        try:
            return json.dumps(answer, ensure_ascii=False, default=str)
        except Exception:
            return repr(answer)


def feedback_messages(feedback: Any) -> Messages:
    """The turns a re-ask appends to the conversation: for each re-ask so far, the model's previous answer
    (as the assistant; left out when it gave no text) and what was wrong with it (as the user)."""
    if feedback is None:
        return []
    messages: Messages = []
    for turn in feedback.turns():
        text = answer_text(turn.answer)
        if text.strip():
            messages.append({"role": "assistant", "content": text})
        messages.append({"role": "user", "content": turn.message or turn.problem})
    return messages


# --------------------------------------------------------------------------- schema


def check_schema(schema: Any, *, adapter: str) -> None:
    """Fail at construction when ``schema=`` is not a pydantic model class or a dataclass."""
    if schema is None:
        return
    from pydantic import BaseModel

    if inspect.isclass(schema) and (issubclass(schema, BaseModel) or dataclasses.is_dataclass(schema)):
        return
    raise ConfigError(
        f"{adapter}: schema= must be a pydantic BaseModel subclass or a dataclass, not {schema!r}; "
        "use schema=None for plain text"
    )


def json_schema_of(schema: Any) -> dict[str, Any]:
    """The JSON schema of a pydantic model or dataclass."""
    from pydantic import TypeAdapter

    return TypeAdapter(schema).json_schema()


def schema_instruction(schema: Any) -> str:
    """The instruction added to the system prompt when the provider is not asked to enforce the schema."""
    return (
        "Reply with only a JSON object (no prose, no code fence) that matches this JSON schema:\n"
        + json.dumps(json_schema_of(schema), separators=(",", ":"))
    )


_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def parse_output(text: str, schema: Any, *, adapter: str, meta: Mapping[str, Any]) -> Any:
    """The value of a text answer: the text itself without a schema, else the validated schema instance.

    A single enclosing Markdown code fence is removed before parsing JSON. Invalid JSON and values
    off the schema raise ``OutputRejected`` carrying the raw text and the attempt's usage.
    """
    if schema is None:
        return text
    from pydantic import TypeAdapter, ValidationError

    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        return TypeAdapter(schema).validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0] if errors else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ())) or "the answer"
        kind = "is not valid JSON" if first.get("type") == "json_invalid" else f"does not match {schema.__name__}"
        raise rejected(
            f"{adapter}: the answer {kind} ({where}: {first.get('msg')}; {len(errors)} error(s)): {text[:120]!r}",
            raw=text,
            meta=meta,
        ) from None


# --------------------------------------------------------------------------- results and errors


def rejected(message: str, *, raw: Any, meta: Mapping[str, Any]) -> OutputRejected:
    """An ``OutputRejected`` that also carries the attempt's ``meta`` (with ``usage``) for the guard's budget."""
    error = OutputRejected(message, raw=raw)
    error.meta = dict(meta)  # type: ignore[attr-defined]
    error.usage = dict(meta.get("usage", {}))  # type: ignore[attr-defined]
    return error


def prediction(value: Any, confidence: float | None, meta: Mapping[str, Any]) -> Prediction:
    """The adapter's result."""
    return Prediction(value=value, confidence=confidence, meta=dict(meta))


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), if present."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) / divisor
        except ValueError:
            if name == "retry-after":
                try:
                    seconds = email.utils.mktime_tz(email.utils.parsedate_tz(raw)) - time.time()  # type: ignore[arg-type]
                except (TypeError, ValueError, OverflowError):
                    continue
            else:
                continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


def map_sdk_error(exc: BaseException, sdk: Any, *, provider: str, timeout: float | None) -> BaseException | None:
    """The failpath exception for an SDK exception, or ``None`` when it is not the provider's doing.

    Timeouts become ``SystemTimeout``; connection failures and every HTTP error status become
    ``ProviderFailure`` with ``status`` and ``retry_after`` (from the response headers).
    """
    if isinstance(exc, sdk.APITimeoutError):
        after = f" after {timeout:g} s" if timeout is not None else ""
        return SystemTimeout(f"{provider}: the request timed out{after}")
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        return ProviderFailure(f"{provider}: could not connect to {exc.request.url}{detail}")
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        body = exc.body
        error = body.get("error", body) if isinstance(body, Mapping) else body
        error_type = error.get("type") if isinstance(error, Mapping) else None
        error_message = error.get("message") if isinstance(error, Mapping) else error
        transient = "transient" if is_transient_status(status) else "not transient: fix the request, key or model"
        retry_after = parse_retry_after(exc.response.headers)
        wait = f", retry after {retry_after:g} s" if retry_after is not None else ""
        return ProviderFailure(
            f"{provider}: HTTP {status} {error_type or ''} ({transient}{wait}): {error_message}".replace("  ", " "),
            status=status,
            retry_after=retry_after,
        )
    if isinstance(exc, sdk.APIError):
        return ProviderFailure(f"{provider}: {type(exc).__name__}: {exc}")
    return None


def check_params(method: Any, params: dict[str, Any], *, adapter: str, sdk_call: str, hint: str = "") -> None:
    """Fail at construction when a keyword meant for the SDK call is not one of its parameters."""
    try:
        accepted = inspect.signature(inspect.unwrap(method)).parameters
    except (TypeError, ValueError):
        return  # not introspectable: the SDK will say what is wrong at the first call
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{adapter}: {sdk_call}() takes no parameter {', '.join(map(repr, unknown))}{hint}; "
            "pass provider-specific fields in extra_body={...}"
        )


def is_async_method(method: Any) -> bool:
    """True when the SDK method is a coroutine function (the SDKs wrap theirs in decorators)."""
    return inspect.iscoroutinefunction(inspect.unwrap(method))

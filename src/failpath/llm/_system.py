"""The system object an adapter returns: sync or async, the same names either way."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from failpath.core import Prediction


class LLMSystem:
    """A failpath system backed by an LLM client: call it with a prompt (or messages), get a ``Prediction``.

    ``name`` (``"openai:gpt-4o-mini"``) is how traces name it; ``provider``, ``model`` and ``schema``
    say what it calls. Each call is one independent request: no state is kept between calls, so the
    guard may call it again to retry or to sample. ``fp.Reask`` calls it with ``feedback=`` (an
    ``fp.Feedback``): the request then ends with the previous answer as the assistant's turn and what was
    wrong with it as the user's. Errors come out as failpath's ``ProviderFailure``, ``SystemTimeout``
    and ``OutputRejected``.
    """

    is_async = False

    def __init__(
        self,
        *,
        name: str,
        provider: str,
        model: str,
        schema: Any,
        send: Callable[[Mapping[str, Any]], Any],
        prepare: Callable[[Any, Any], dict[str, Any]],
        interpret: Callable[[Any], Prediction],
        translate: Callable[[BaseException], BaseException | None],
    ) -> None:
        self.name = name
        self.__name__ = name
        self.provider = provider
        self.model = model
        self.schema = schema
        self._send = send
        self._prepare = prepare
        self._interpret = interpret
        self._translate = translate

    def request(self, input: Any, feedback: Any = None) -> dict[str, Any]:  # noqa: A002 - failpath's word for a system's argument
        """The keyword arguments this system would pass to the SDK for ``input`` (nothing is sent)."""
        return self._prepare(input, feedback)

    def __call__(self, input: Any, feedback: Any = None) -> Prediction:  # noqa: A002
        """Send one request and return the answer as a ``Prediction`` (``feedback``: a re-ask's ``fp.Feedback``)."""
        kwargs = self._prepare(input, feedback)
        try:
            response = self._send(kwargs)
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return self._interpret(response)

    def __repr__(self) -> str:
        kind = "AsyncLLMSystem" if self.is_async else "LLMSystem"
        schema = getattr(self.schema, "__name__", None)
        return f"<{kind} {self.name}{f' -> {schema}' if schema else ''}>"


class AsyncLLMSystem(LLMSystem):
    """The async twin of ``LLMSystem``, made from an ``AsyncOpenAI`` or ``AsyncAnthropic`` client: ``await system(prompt)``."""

    is_async = True

    async def __call__(self, input: Any, feedback: Any = None) -> Prediction:  # type: ignore[override]  # noqa: A002
        """Send one request and return the answer as a ``Prediction`` (``feedback``: a re-ask's ``fp.Feedback``)."""
        kwargs = self._prepare(input, feedback)
        try:
            response = await self._send(kwargs)
        except Exception as exc:
            mapped = self._translate(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return self._interpret(response)


def build_system(
    *,
    provider: str,
    model: str,
    name: str | None,
    schema: Any,
    create: Callable[..., Any],
    prepare: Callable[[Any], dict[str, Any]],
    interpret: Callable[[Any], Prediction],
    sdk: Any,
    timeout: float | None,
) -> LLMSystem:
    """The system an adapter returns: async when the SDK's ``create`` is, with the SDK's errors mapped."""
    from failpath.llm._common import is_async_method, map_sdk_error

    def translate(exc: BaseException) -> BaseException | None:
        return map_sdk_error(exc, sdk, provider=provider, timeout=timeout)

    kind = AsyncLLMSystem if is_async_method(create) else LLMSystem
    return kind(
        name=name or f"{provider}:{model}",
        provider=provider,
        model=model,
        schema=schema,
        send=lambda kwargs: create(**kwargs),
        prepare=prepare,
        interpret=interpret,
        translate=translate,
    )

"""Guard an LLM: OpenAI and Anthropic SDK clients, and LiteLLM, as failpath systems.

``fp.llm.openai(client, model=..., schema=...)``, ``fp.llm.anthropic(client, model=..., schema=...)`` and
``fp.llm.litellm("provider/model", schema=...)`` return a system (async for ``AsyncOpenAI`` /
``AsyncAnthropic``, or ``is_async=True`` for LiteLLM) that maps the provider's failures
onto failpath's (``ProviderFailure``, ``SystemTimeout``, ``OutputRejected``), validates structured
output, turns token log probabilities into a confidence, and records token usage for the policy's budget.
``failpath.llm.testing`` holds a local stand-in server for both APIs, for tests and offline examples.

The SDKs are optional extras (``pip install "failpath[openai]"`` / ``"failpath[anthropic]"`` /
``"failpath[litellm]"``) and are imported only when an adapter is built.
"""

from __future__ import annotations

from failpath.llm._anthropic import anthropic
from failpath.llm._common import TRANSIENT_STATUSES, logprob_confidence, parse_retry_after
from failpath.llm._litellm import litellm
from failpath.llm._openai import openai
from failpath.llm._system import AsyncLLMSystem, LLMSystem

__all__ = [
    "openai",
    "anthropic",
    "litellm",
    "LLMSystem",
    "AsyncLLMSystem",
    "logprob_confidence",
    "parse_retry_after",
    "TRANSIENT_STATUSES",
]

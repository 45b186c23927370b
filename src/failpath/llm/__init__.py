"""Guard an LLM: OpenAI and Anthropic SDK clients as failpath systems.

``fp.llm.openai(client, model=..., schema=...)`` and ``fp.llm.anthropic(client, model=..., schema=...)``
return a system (async for ``AsyncOpenAI`` / ``AsyncAnthropic``) that maps the provider's failures
onto failpath's (``ProviderFailure``, ``SystemTimeout``, ``OutputRejected``), validates structured
output, turns token log probabilities into a confidence, and records token usage for the policy's budget.
``failpath.llm.testing`` holds a local stand-in server for both APIs, for tests and offline examples.

The SDKs are optional extras (``pip install "failpath[openai]"`` / ``"failpath[anthropic]"``) and
are imported only when an adapter is built.
"""

from __future__ import annotations

from failpath.llm._anthropic import anthropic
from failpath.llm._common import TRANSIENT_STATUSES, logprob_confidence, parse_retry_after
from failpath.llm._openai import openai
from failpath.llm._system import AsyncLLMSystem, LLMSystem

__all__ = [
    "openai",
    "anthropic",
    "LLMSystem",
    "AsyncLLMSystem",
    "logprob_confidence",
    "parse_retry_after",
    "TRANSIENT_STATUSES",
]

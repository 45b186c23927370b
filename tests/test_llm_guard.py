"""The LLM adapters under a policy, end to end: real SDK clients, a local stand-in server, the guard.

Retries honor the provider's retry-after, fallbacks cross providers (both ways, sync and async),
self-consistency samples independent answers, and budgets of tokens and money count every attempt.
"""

from __future__ import annotations

import math
import time

import pytest

import failpath as fp
from failpath.llm.testing import anthropic_error, anthropic_message, openai_completion, openai_error
from llm_servers import *  # noqa: F403 - fixtures
from llm_servers import TICKET_JSON, Ticket


def ticket_tokens(category: str = "billing", urgency: str = "high", p_category: float = 0.9, p_urgency: float = 1.0):
    """Logprob tokens of a ticket answer: scaffolding is forced (logprob 0), the two values are not."""
    return [
        ('{"category":"', 0.0),
        (category, math.log(p_category)),
        ('","urgency":"', 0.0),
        (urgency, math.log(p_urgency)),
        ('"}', 0.0),
    ]


def rules(*extra):
    """The given rules plus the mandatory catch-all."""
    return [*extra, fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))]


# --------------------------------------------------------------------------- retry and fallback


def test_retry_waits_for_the_providers_retry_after(provider, openai_client):
    provider.enqueue(
        "openai",
        openai_error(429, retry_after=0.3),
        openai_completion(logprobs=ticket_tokens(), prompt_tokens=50, completion_tokens=5),
    )
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True)
    policy = fp.Policy("t", rules(fp.on(fp.ProviderError()).do(fp.Retry(1))), store=False)

    started = time.monotonic()
    outcome, trace = policy.wrap(primary).call_traced("charged twice")
    elapsed = time.monotonic() - started

    assert outcome == fp.Answered(
        value=Ticket(category="billing", urgency="high"),
        confidence=pytest.approx(0.9),
        state="provider_error",  # the state the call went through
        trace_id=trace.trace_id,
    )
    assert elapsed >= 0.3  # the guard waited as long as the provider asked
    assert trace.states == ("provider_error",) and trace.actions == ("retry",)
    first, second = trace.attempts
    assert first.error.startswith("ProviderFailure: openai: HTTP 429") and first.usage == {}
    assert second.action == "retry" and second.usage == {"input_tokens": 50, "output_tokens": 5}
    assert trace.usage == {"input_tokens": 50, "output_tokens": 5}


def test_fallback_from_openai_to_anthropic(provider, openai_client, anthropic_client):
    provider.enqueue("openai", openai_error(503), openai_error(500))
    provider.enqueue("anthropic", anthropic_message(TICKET_JSON, input_tokens=70, output_tokens=15))
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket)
    backup = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", schema=Ticket)
    policy = fp.Policy("t", rules(fp.on(fp.ProviderError()).do(fp.Retry(1), fp.Fallback(backup))), store=False)

    outcome, trace = policy.wrap(primary).call_traced("charged twice")

    assert isinstance(outcome, fp.Answered) and outcome.degraded
    assert outcome.value == Ticket(category="billing", urgency="high")
    assert [(a.action, a.system) for a in trace.attempts] == [
        ("call", "openai:gpt-4o-mini"),
        ("retry", "openai:gpt-4o-mini"),
        ("fallback", "anthropic:claude-haiku-4-5"),
    ]
    assert trace.degraded and trace.usage == {"input_tokens": 70, "output_tokens": 15}
    assert provider.requests_to("openai")[0].body["response_format"]["type"] == "json_schema"
    assert provider.requests_to("anthropic")[0].body["output_config"]["format"]["type"] == "json_schema"


def test_fallback_from_anthropic_to_openai_on_overload_and_timeout(provider, openai_client, anthropic_client):
    provider.enqueue("anthropic", anthropic_error(529), anthropic_message(TICKET_JSON).after(2.0))
    provider.enqueue("openai", openai_completion(logprobs=ticket_tokens("bug", "low", 0.8)))
    provider.enqueue("openai", openai_completion(logprobs=ticket_tokens("bug", "low", 0.8)))
    primary = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", schema=Ticket, timeout=0.2)
    backup = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True)
    policy = fp.Policy(
        "t",
        rules(
            fp.on(fp.ProviderError()).do(fp.Fallback(backup)),
            fp.on(fp.Timeout()).do(fp.Fallback(backup)),
        ),
        store=False,
    )
    guarded = policy.wrap(primary)

    overloaded, trace = guarded.call_traced("app crashes")
    assert overloaded.degraded and overloaded.value.category == "bug"
    assert overloaded.confidence == pytest.approx(0.8)  # the fallback's own logprob confidence
    assert trace.states == ("provider_error",) and "HTTP 529" in trace.attempts[0].error

    timed_out, trace = guarded.call_traced("app crashes")
    assert timed_out.degraded and timed_out.value.category == "bug"
    assert trace.states == ("timeout",)
    assert trace.attempts[0].error.startswith("SystemTimeout")


async def test_async_clients_retry_and_fall_back(provider, async_openai_client, async_anthropic_client):
    provider.enqueue("openai", openai_error(429, retry_after=0.05), openai_error(503))
    provider.enqueue("anthropic", anthropic_message(TICKET_JSON, input_tokens=30, output_tokens=10))
    primary = fp.llm.openai(async_openai_client, model="gpt-4o-mini", schema=Ticket)
    backup = fp.llm.anthropic(async_anthropic_client, model="claude-haiku-4-5", schema=Ticket)
    policy = fp.Policy("t", rules(fp.on(fp.ProviderError()).do(fp.Retry(1), fp.Fallback(backup))), store=False)

    guarded = policy.wrap(primary)
    assert isinstance(guarded, fp.AsyncGuardedSystem)
    outcome, trace = await guarded.call_traced("charged twice")

    assert outcome.degraded and outcome.value == Ticket(category="billing", urgency="high")
    assert trace.actions == ("retry", "fallback")
    assert trace.usage == {"input_tokens": 30, "output_tokens": 10}


def test_refusal_is_invalid_output_retried(provider, openai_client):
    provider.enqueue(
        "openai",
        openai_completion(None, refusal="I can't help with that."),
        openai_completion(TICKET_JSON, prompt_tokens=40, completion_tokens=9),
    )
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket)
    policy = fp.Policy("t", rules(fp.on(fp.InvalidOutput()).do(fp.Retry(1))), store=False)
    outcome, trace = policy.wrap(primary).call_traced("x")
    assert outcome.value.category == "billing"
    assert trace.states == ("invalid_output",)
    assert "refused" in trace.attempts[0].error


def test_truncated_and_invalid_json_end_in_the_policys_action(provider, openai_client, anthropic_client):
    provider.enqueue("openai", openai_completion('{"category":"bil', finish_reason="length"))
    provider.enqueue("anthropic", anthropic_message("not json at all"))
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket)
    backup = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", schema=Ticket)
    policy = fp.Policy(
        "t",
        rules(fp.on(fp.InvalidOutput()).do(fp.Fallback(backup), fp.Default(None, reason="no usable label"))),
        store=False,
    )
    outcome, trace = policy.wrap(primary).call_traced("x")
    assert outcome == fp.Defaulted(value=None, reason="no usable label", state="invalid_output", trace_id=trace.trace_id)
    assert "cut off" in trace.attempts[0].error and "not valid JSON" in trace.attempts[1].error


def test_low_logprob_confidence_is_caught(provider, openai_client):
    provider.enqueue("openai", openai_completion(logprobs=ticket_tokens(p_category=0.4)))
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True)
    policy = fp.Policy("t", rules(fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("unsure"))), store=False)
    outcome, trace = policy.wrap(primary).call_traced("x")
    assert outcome == fp.Abstained(reason="unsure", state="low_confidence", trace_id=trace.trace_id)
    assert trace.attempts[0].confidence == pytest.approx(0.4)


# --------------------------------------------------------------------------- self-consistency


def test_self_consistency_returns_the_majority_answer(provider, openai_client):
    answers = [("billing", "high", 0.9), ("billing", "low", 0.6), ("bug", "high", 0.7), ("billing", "high", 0.8), ("billing", "high", 0.5)]
    provider.enqueue("openai", *(openai_completion(logprobs=ticket_tokens(c, u, p)) for c, u, p in answers))
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True, temperature=0.8)
    policy = fp.Policy(
        "t",
        rules(fp.on(fp.Inconsistent(samples=5, min_agreement=0.6, key=lambda t: t.category)).do(fp.Abstain("split"))),
        store=False,
    )

    outcome, trace = policy.wrap(primary).call_traced("charged twice")

    assert isinstance(outcome, fp.Answered) and outcome.value.category == "billing"
    assert outcome.confidence == pytest.approx((0.9 + 0.6 + 0.8 + 0.5) / 4)  # mean over the majority
    requests = provider.requests_to("openai")
    assert len(requests) == 5 and all(r.body["temperature"] == 0.8 for r in requests)
    assert [a.action for a in trace.attempts] == ["call", "sample", "sample", "sample", "sample"]
    assert trace.usage["input_tokens"] == 5 * 20  # every sample's tokens counted


def test_self_consistency_compares_whole_parsed_values_by_default(provider, openai_client):
    answers = [("billing", "high"), ("billing", "low"), ("bug", "high")]
    provider.enqueue("openai", *(openai_completion(logprobs=ticket_tokens(c, u)) for c, u in answers))
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True, temperature=1.0)
    policy = fp.Policy("t", rules(fp.on(fp.Inconsistent(samples=3, min_agreement=0.6)).do(fp.Abstain("split"))), store=False)
    outcome, trace = policy.wrap(primary).call_traced("x")
    assert outcome == fp.Abstained(reason="split", state="inconsistent", trace_id=trace.trace_id)
    assert "1 of 3" in trace.detail["explanations"]["inconsistent"]


async def test_self_consistency_gives_anthropic_a_confidence(provider, async_anthropic_client):
    texts = ['{"category":"bug","urgency":"high"}'] * 2 + ['{"category":"account","urgency":"high"}']
    provider.enqueue("anthropic", *(anthropic_message(t) for t in texts))
    primary = fp.llm.anthropic(async_anthropic_client, model="claude-haiku-4-5", schema=Ticket)
    policy = fp.Policy(
        "t",
        rules(
            fp.on(fp.Inconsistent(samples=3, min_agreement=0.6)).do(fp.Abstain("split")),
            fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("unsure")),
        ),
        store=False,
    )
    outcome = await policy.wrap(primary)("x")  # samples are drawn concurrently
    assert outcome.value == Ticket(category="bug", urgency="high")
    assert outcome.confidence == pytest.approx(2 / 3)  # no logprobs: the agreement is the confidence
    assert len(provider.requests_to("anthropic")) == 3


def test_a_failed_sample_counts_as_disagreeing(provider, openai_client):
    provider.enqueue("openai", openai_completion(TICKET_JSON), openai_error(429), openai_completion(TICKET_JSON))
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, temperature=1.0)
    policy = fp.Policy("t", rules(fp.on(fp.Inconsistent(samples=3, min_agreement=0.9)).do(fp.Abstain("split"))), store=False)
    outcome, trace = policy.wrap(primary).call_traced("x")
    assert outcome.kind == "abstained" and "2 of 3" in trace.detail["explanations"]["inconsistent"]
    assert "HTTP 429" in trace.attempts[1].error


# --------------------------------------------------------------------------- budgets


def test_token_budget_stops_more_calls_and_keeps_its_own_action(provider, openai_client):
    provider.enqueue("openai", openai_completion(logprobs=ticket_tokens(p_category=0.3), prompt_tokens=150, completion_tokens=5))
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True)
    policy = fp.Policy(
        "t",
        rules(
            fp.on(fp.LowConfidence(below=0.5)).do(fp.Retry(3)),
            fp.on(fp.BudgetExceeded()).do(fp.Default(None, reason="over budget")),
        ),
        budget=fp.Budget(tokens=100),
        store=False,
    )
    outcome, trace = policy.wrap(primary).call_traced("x")
    assert outcome == fp.Defaulted(value=None, reason="over budget", state="budget_exceeded", trace_id=trace.trace_id)
    assert trace.states == ("low_confidence", "budget_exceeded")
    assert len(provider.requests_to("openai")) == 1  # no retry was paid for
    assert trace.usage == {"input_tokens": 150, "output_tokens": 5}


PRICES = {"gpt-4o-mini": (1e-6, 2e-6), "claude-haiku-4-5": (3e-6, 15e-6)}


def test_cost_budget_counts_retries_and_blocks_the_fallback(provider, openai_client, anthropic_client):
    unsure = openai_completion(logprobs=ticket_tokens(p_category=0.3), prompt_tokens=100, completion_tokens=10)
    provider.enqueue("openai", unsure, unsure)
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True)
    backup = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", schema=Ticket)
    policy = fp.Policy(
        "t",
        rules(
            fp.on(fp.LowConfidence(below=0.5)).do(fp.Retry(1), fp.Fallback(backup)),
            fp.on(fp.BudgetExceeded()).do(fp.Default(None, reason="over budget")),
        ),
        budget=fp.Budget(cost=0.0002, prices=PRICES),
        store=False,
    )
    outcome, trace = policy.wrap(primary).call_traced("x")

    one_call = 100 * 1e-6 + 10 * 2e-6
    assert [a.usage.get("cost") for a in trace.attempts[:2]] == [pytest.approx(one_call)] * 2
    assert trace.usage["cost"] == pytest.approx(2 * one_call)  # past 0.0002: no fallback is paid for
    assert outcome.kind == "defaulted" and outcome.state == "budget_exceeded"
    assert provider.requests_to("anthropic") == []


def test_budget_prices_fallback_samples_at_the_fallbacks_rate(provider, openai_client, anthropic_client):
    provider.enqueue("openai", openai_error(429), openai_error(503))
    provider.enqueue(
        "anthropic",
        anthropic_message(TICKET_JSON, input_tokens=100, output_tokens=10),
        anthropic_message(TICKET_JSON, input_tokens=100, output_tokens=10),
        anthropic_message('{"category":"bug","urgency":"low"}', input_tokens=100, output_tokens=10),
    )
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket)
    backup = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", schema=Ticket)
    policy = fp.Policy(
        "t",
        rules(
            fp.on(fp.ProviderError()).do(fp.Retry(1), fp.Fallback(backup)),
            fp.on(fp.Inconsistent(samples=3, min_agreement=0.6)).do(fp.Abstain("split")),
            fp.on(fp.LowConfidence(below=0.9)).do(fp.Retry(1)),  # 2 of 3 agree: worth another try...
            fp.on(fp.BudgetExceeded()).do(fp.Abstain("over budget")),  # ...that the budget refuses
        ),
        budget=fp.Budget(cost=0.001, prices=PRICES),
        store=False,
    )
    outcome, trace = policy.wrap(primary).call_traced("x")

    assert [(a.action, a.system) for a in trace.attempts if a.action != "abstain"] == [
        ("call", "openai:gpt-4o-mini"),
        ("retry", "openai:gpt-4o-mini"),
        ("fallback", "anthropic:claude-haiku-4-5"),
        ("sample", "anthropic:claude-haiku-4-5"),
        ("sample", "anthropic:claude-haiku-4-5"),
    ]
    assert trace.usage["cost"] == pytest.approx(3 * (100 * 3e-6 + 10 * 15e-6))
    assert trace.usage["input_tokens"] == 300 and trace.usage["output_tokens"] == 30
    assert outcome == fp.Abstained(reason="over budget", state="budget_exceeded", trace_id=trace.trace_id)
    assert trace.states == ("provider_error", "provider_error", "low_confidence", "budget_exceeded")


def test_tokens_spent_on_rejected_output_count_toward_the_budget(provider, openai_client):
    provider.enqueue(
        "openai",
        openai_completion("this is not JSON", prompt_tokens=500, completion_tokens=100),
        openai_completion(TICKET_JSON),
    )
    primary = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket)
    policy = fp.Policy(
        "t",
        rules(
            fp.on(fp.InvalidOutput()).do(fp.Retry(1)),
            fp.on(fp.BudgetExceeded()).do(fp.Abstain("over budget")),
        ),
        budget=fp.Budget(tokens=300),
        store=False,
    )
    outcome, trace = policy.wrap(primary).call_traced("x")
    assert trace.usage["input_tokens"] == 500  # the rejected answer was paid for
    assert outcome.kind == "abstained"  # so the retry is over budget

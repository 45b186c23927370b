"""``fp.Reask`` through the real OpenAI and Anthropic SDKs: a stand-in model that answers invalid JSON
first and corrects itself once the request tells it what was wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import failpath as fp
from failpath.llm.testing import Reply, Request, anthropic_message, openai_completion
from failpath.store import open_store
from llm_servers import *  # noqa: F403 - fixtures
from llm_servers import TICKET_JSON, Ticket

SLOPPY = "Sure! The ticket is {category: billing, urgency: high}. Mail jane.doe@example.com if unsure."


def rules(*extra):
    return [*extra, fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))]


def told_about_json(messages) -> bool:
    """True when the conversation ends with the model's sloppy answer and a user turn naming the JSON error."""
    if len(messages) < 3:
        return False
    answer, complaint = messages[-2], messages[-1]
    text = complaint["content"] if isinstance(complaint["content"], str) else ""
    return answer == {"role": "assistant", "content": SLOPPY} and complaint["role"] == "user" and "not valid JSON" in text


def openai_model(request: Request) -> Reply:
    return openai_completion(TICKET_JSON if told_about_json(request.body["messages"]) else SLOPPY)


def anthropic_model(request: Request) -> Reply:
    return anthropic_message(TICKET_JSON if told_about_json(request.body["messages"]) else SLOPPY)


def reask_policy(**kwargs):
    return fp.Policy("t", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Abstain("unreadable"))), **kwargs)


def assert_corrected(outcome, trace, requests):
    assert isinstance(outcome, fp.Answered) and outcome.value == Ticket(category="billing", urgency="high")
    assert [(a.action, a.state) for a in trace.attempts] == [("call", "invalid_output"), ("reask", None)]
    first, second = (r.body["messages"] for r in requests)
    assert first[-1]["role"] == "user" and len(second) == len(first) + 2
    assert second[: len(first)] == first  # the same request, then the answer and the complaint
    complaint = second[-1]["content"]
    assert complaint.startswith("Your previous answer could not be used:") and "not valid JSON" in complaint
    assert trace.detail["feedback"][0]["message"].startswith("Your previous answer could not be used:")


def test_openai_corrects_itself_when_told_the_error(provider, openai_client):
    provider.set_responder("openai", openai_model)
    system = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, system="Label the ticket.")
    outcome, trace = reask_policy(store=False).wrap(system).call_traced("I was charged twice")
    assert_corrected(outcome, trace, provider.requests_to("openai"))
    assert provider.requests_to("openai")[1].body["messages"][0] == {"role": "system", "content": "Label the ticket."}


def test_anthropic_corrects_itself_when_told_the_error(provider, anthropic_client):
    provider.set_responder("anthropic", anthropic_model)
    system = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", schema=Ticket, schema_mode="prompt")
    outcome, trace = reask_policy(store=False).wrap(system).call_traced("I was charged twice")
    assert_corrected(outcome, trace, provider.requests_to("anthropic"))


async def test_async_clients_reask_too(provider, async_openai_client, async_anthropic_client):
    provider.set_responder("openai", openai_model)
    provider.set_responder("anthropic", anthropic_model)
    for system in (
        fp.llm.openai(async_openai_client, model="gpt-4o-mini", schema=Ticket),
        fp.llm.anthropic(async_anthropic_client, model="claude-haiku-4-5", schema=Ticket),
    ):
        outcome, trace = await reask_policy(store=False).wrap(system).call_traced("charged twice")
        assert outcome.value == Ticket(category="billing", urgency="high") and trace.actions == ("reask",)


def test_a_refusal_without_text_is_fed_back_without_an_empty_assistant_turn(provider, anthropic_client):
    provider.enqueue(
        "anthropic",
        anthropic_message(None, stop_reason="refusal", stop_details={"type": "refusal", "category": "cyber", "explanation": None}),
        anthropic_message(TICKET_JSON),
    )
    system = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", schema=Ticket)
    outcome = reask_policy(store=False).wrap(system)("charged twice")
    assert outcome.value.category == "billing"
    messages = provider.requests_to("anthropic")[1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "user"]  # the API joins consecutive user turns
    assert "the model refused (cyber)" in messages[-1]["content"]


def test_a_truncated_answer_is_fed_back(provider, openai_client):
    provider.enqueue("openai", openai_completion('{"category":"bill', finish_reason="length"), openai_completion(TICKET_JSON))
    system = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket)
    outcome = reask_policy(store=False).wrap(system)("charged twice")
    assert outcome.value.category == "billing"
    answer, complaint = provider.requests_to("openai")[1].body["messages"][-2:]
    assert answer == {"role": "assistant", "content": '{"category":"bill'}
    assert "cut off at the token limit" in complaint["content"]


def test_low_confidence_feeds_back_the_parsed_answer_as_json(provider, openai_client):
    provider.enqueue("openai", openai_completion(TICKET_JSON, logprobs=-0.2), openai_completion(TICKET_JSON, logprobs=0.0))
    system = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True)
    policy = fp.Policy("t", rules(fp.on(fp.LowConfidence(below=0.5)).do(fp.Reask(1), fp.Abstain("unsure"))), store=False)
    outcome = policy.wrap(system)("charged twice")
    assert outcome.confidence == pytest.approx(1.0)
    answer, complaint = provider.requests_to("openai")[1].body["messages"][-2:]
    assert answer == {"role": "assistant", "content": TICKET_JSON}
    assert complaint["content"].startswith("Your previous answer was not certain enough")


def test_request_shows_the_reask_messages_without_sending(openai_client):
    system = fp.llm.openai(openai_client, model="gpt-4o-mini")
    feedback = fp.Feedback("invalid_output", "bad", answer="old", message="fix it")
    assert system.request("hi", feedback)["messages"] == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "old"}, {"role": "user", "content": "fix it"},
    ]


def test_stored_feedback_is_redacted(provider, openai_client, tmp_path):
    provider.set_responder("openai", openai_model)
    system = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket)
    policy = reask_policy(store=tmp_path / "s.db")
    with policy:
        _, trace = policy.wrap(system).call_traced("charged twice")
    sent = provider.requests_to("openai")[1].body["messages"][-1]["content"]
    assert "jane.doe@example.com" in sent  # the model is told exactly what it wrote
    with open_store(tmp_path / "s.db") as store:
        stored = store.get_trace(trace.trace_id)
    message = stored.detail["feedback"][0]["message"]
    assert "not valid JSON" in message and "<email>" in message and "jane.doe@example.com" not in message


def test_the_readme_reask_policy_builds_and_reasks(provider, openai_client):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Re-ask: let the model correct itself", 1)[1].split("###", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace = {"fp": fp}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    policy = namespace["policy"]
    provider.set_responder("openai", lambda r: openai_completion(TICKET_JSON if told_about_json(r.body["messages"]) else SLOPPY, logprobs=0.0))
    system = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, logprobs=True)
    outcome, trace = fp.Policy(policy.name, policy.rules, store=False).wrap(system).call_traced("charged twice")
    assert outcome.value.category == "billing" and trace.actions == ("reask",)
    assert [a.name for a in policy.rules[0].actions] == ["reask", "abstain"]

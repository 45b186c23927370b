"""The OpenAI and Anthropic adapters, with the real SDK clients talking to a local stand-in server.

Each failure the provider can produce on the wire (status codes, timeouts, refusals, truncation,
bad JSON) must come out as the failpath exception the guard maps to a failure state.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import time

import anthropic as anthropic_sdk
import openai as openai_sdk
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import failpath as fp
from failpath.core import ConfigError
from failpath.llm.testing import (
    FakeProvider,
    anthropic_error,
    anthropic_message,
    openai_completion,
    openai_error,
    pseudo_tokens,
)
from llm_servers import *  # noqa: F403 - fixtures
from llm_servers import TICKET_JSON, Ticket

TICKET_TOKENS = [('{"category":"', 0.0), ("billing", math.log(0.6)), ('","urgency":"', 0.0), ("high", math.log(0.9)), ('"}', 0.0)]


# --------------------------------------------------------------------------- normal answers


def test_openai_answer_is_a_validated_schema_instance_with_usage(provider, openai_client):
    provider.enqueue("openai", openai_completion(TICKET_JSON, prompt_tokens=31, completion_tokens=9))
    system = fp.llm.openai(openai_client, model="gpt-4o-mini", schema=Ticket, system="Classify the ticket.")

    prediction = system("My card was charged twice")

    assert prediction.value == Ticket(category="billing", urgency="high")
    assert prediction.confidence is None  # no logprobs were asked for
    assert prediction.meta["usage"] == {"input_tokens": 31, "output_tokens": 9, "model": "gpt-4o-mini"}
    assert prediction.meta["model"] == "gpt-4o-mini-2024-07-18"
    assert prediction.meta["provider"] == "openai"
    body = provider.requests_to("openai")[0].body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Classify the ticket."},
        {"role": "user", "content": "My card was charged twice"},
    ]
    schema = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema" and schema["strict"] is True
    assert schema["name"] == "Ticket" and schema["schema"]["required"] == ["category", "urgency"]
    assert "logprobs" not in body


def test_anthropic_answer_is_a_validated_schema_instance_with_usage(provider, anthropic_client):
    provider.enqueue("anthropic", anthropic_message(TICKET_JSON, input_tokens=40, output_tokens=12))
    system = fp.llm.anthropic(anthropic_client, model="claude-haiku-4-5", schema=Ticket, system="Classify.")

    prediction = system("My card was charged twice")

    assert prediction.value == Ticket(category="billing", urgency="high")
    assert prediction.confidence is None
    assert prediction.meta["usage"] == {"input_tokens": 40, "output_tokens": 12, "model": "claude-haiku-4-5"}
    assert prediction.meta["model"] == "claude-haiku-4-5"
    body = provider.requests_to("anthropic")[0].body
    assert body["system"] == "Classify."
    assert body["max_tokens"] == 1024
    assert body["messages"] == [{"role": "user", "content": "My card was charged twice"}]
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert body["output_config"]["format"]["schema"]["additionalProperties"] is False
    headers = provider.requests_to("anthropic")[0].headers
    assert "anthropic-version" in headers


def test_plain_text_without_schema_and_message_lists(provider, openai_client, anthropic_client):
    provider.enqueue("openai", openai_completion("Paris"))
    provider.enqueue("anthropic", anthropic_message("Paris"))
    messages = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert fp.llm.openai(openai_client, model="m")(messages).value == "Paris"
    assert fp.llm.anthropic(anthropic_client, model="m", system="Be brief.")(messages).value == "Paris"
    assert provider.requests_to("openai")[0].body["messages"] == messages
    anthropic_body = provider.requests_to("anthropic")[0].body
    assert anthropic_body["system"] == "Be brief.\n\nAnswer in one word."  # system messages move to `system`
    assert anthropic_body["messages"] == [messages[1]]


def test_template_and_parameters_are_sent(provider, openai_client):
    provider.enqueue("openai", openai_completion("ok"))
    system = fp.llm.openai(
        openai_client, model="m", template="Ticket #{id}: {text}", temperature=0.7, max_tokens=50, seed=7
    )
    system({"id": 12, "text": "refund please"})
    body = provider.requests_to("openai")[0].body
    assert body["messages"] == [{"role": "user", "content": "Ticket #12: refund please"}]
    assert body["temperature"] == 0.7 and body["max_completion_tokens"] == 50 and body["seed"] == 7


def test_prompt_schema_mode_describes_the_schema_and_still_validates(provider, openai_client, anthropic_client):
    provider.enqueue("openai", openai_completion("```json\n" + TICKET_JSON + "\n```"))
    provider.enqueue("anthropic", anthropic_message(TICKET_JSON))
    o = fp.llm.openai(openai_client, model="m", schema=Ticket, schema_mode="prompt")
    a = fp.llm.anthropic(anthropic_client, model="m", schema=Ticket, schema_mode="prompt", system="Classify.")
    assert o("x").value == a("x").value == Ticket(category="billing", urgency="high")
    openai_body = provider.requests_to("openai")[0].body
    assert "response_format" not in openai_body
    assert '"category"' in openai_body["messages"][0]["content"]
    anthropic_body = provider.requests_to("anthropic")[0].body
    assert "output_config" not in anthropic_body
    assert anthropic_body["system"].startswith("Classify.\n\nReply with only a JSON object")


def test_dataclass_schema(provider, anthropic_client):
    @dataclasses.dataclass
    class Answer:
        city: str
        population: int

    provider.enqueue("anthropic", anthropic_message('{"city": "Lyon", "population": 522000}'))
    assert fp.llm.anthropic(anthropic_client, model="m", schema=Answer)("x").value == Answer("Lyon", 522000)


def test_each_call_is_an_independent_request(provider, openai_client):
    provider.enqueue("openai", openai_completion("first"), openai_completion("second"))
    system = fp.llm.openai(openai_client, model="m", temperature=1.0)
    assert [system("same prompt").value, system("same prompt").value] == ["first", "second"]
    first, second = (r.body for r in provider.requests_to("openai"))
    assert first == second  # nothing from the first call leaks into the second


# --------------------------------------------------------------------------- provider errors


OPENAI_STATUSES = [(400, False), (401, False), (429, True), (500, True), (503, True)]
ANTHROPIC_STATUSES = [(400, False), (401, False), (429, True), (500, True), (503, True), (529, True)]


@pytest.mark.parametrize(("status", "transient"), OPENAI_STATUSES)
def test_openai_error_status_is_a_provider_failure(provider, openai_client, status, transient):
    provider.enqueue("openai", openai_error(status, retry_after=3 if status == 429 else None))
    system = fp.llm.openai(openai_client, model="m")
    with pytest.raises(fp.ProviderFailure) as caught:
        system("hi")
    error = caught.value
    assert error.status == status
    assert error.retry_after == (3.0 if status == 429 else None)
    assert f"HTTP {status}" in str(error) and ("(transient" in str(error)) is transient
    assert isinstance(error.__cause__, openai_sdk.APIStatusError)
    assert len(provider.requests_to("openai")) == 1  # the SDK's own retries are off


@pytest.mark.parametrize(("status", "transient"), ANTHROPIC_STATUSES)
def test_anthropic_error_status_is_a_provider_failure(provider, anthropic_client, status, transient):
    provider.enqueue("anthropic", anthropic_error(status, retry_after=2 if status == 429 else None))
    system = fp.llm.anthropic(anthropic_client, model="m")
    with pytest.raises(fp.ProviderFailure) as caught:
        system("hi")
    error = caught.value
    assert error.status == status
    assert error.retry_after == (2.0 if status == 429 else None)
    assert ("(transient" in str(error)) is transient
    assert isinstance(error.__cause__, anthropic_sdk.APIStatusError)
    assert len(provider.requests_to("anthropic")) == 1
    if status == 529:
        assert "overloaded_error" in str(error)


def test_sdk_retries_can_be_kept_on_purpose(provider, openai_client):
    provider.enqueue("openai", openai_error(500, retry_after="0.001"), openai_completion("ok"))
    system = fp.llm.openai(openai_client, model="m", sdk_retries=1)
    assert system("hi").value == "ok"
    assert len(provider.requests_to("openai")) == 2


def test_retry_after_forms():
    assert fp.llm.parse_retry_after({"retry-after": "7"}) == 7.0
    assert fp.llm.parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert fp.llm.parse_retry_after({"retry-after": "soon"}) is None
    assert fp.llm.parse_retry_after({}) is None
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= fp.llm.parse_retry_after({"retry-after": in_ten}) <= 10.5
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert fp.llm.parse_retry_after({"retry-after": past}) == 0.0


def test_timeout_is_a_system_timeout(provider, openai_client, anthropic_client):
    provider.enqueue("openai", openai_completion("late").after(2.0))
    provider.enqueue("anthropic", anthropic_message("late").after(2.0))
    started = time.monotonic()
    with pytest.raises(fp.SystemTimeout, match="timed out after 0.2 s"):
        fp.llm.openai(openai_client, model="m", timeout=0.2)("hi")
    with pytest.raises(fp.SystemTimeout):
        fp.llm.anthropic(anthropic_client, model="m", timeout=0.2)("hi")
    assert time.monotonic() - started < 1.5  # neither client waited for the slow answer nor retried


def test_connection_refused_is_a_provider_failure_without_status(closed_port):
    client = openai_sdk.OpenAI(base_url=f"http://127.0.0.1:{closed_port}/v1", api_key="sk-test")
    with pytest.raises(fp.ProviderFailure, match="could not connect") as caught:
        fp.llm.openai(client, model="m")("hi")
    assert caught.value.status is None and caught.value.retry_after is None


# --------------------------------------------------------------------------- unusable output


def rejected_by(system, prompt="hi") -> fp.OutputRejected:
    with pytest.raises(fp.OutputRejected) as caught:
        system(prompt)
    return caught.value


def test_openai_refusal(provider, openai_client):
    provider.enqueue("openai", openai_completion(None, refusal="I'm sorry, I can't assist with that."))
    error = rejected_by(fp.llm.openai(openai_client, model="m", schema=Ticket))
    assert "refused" in str(error) and error.raw == "I'm sorry, I can't assist with that."
    assert error.usage["input_tokens"] == 20


def test_anthropic_refusal(provider, anthropic_client):
    provider.enqueue(
        "anthropic",
        anthropic_message(
            None, stop_reason="refusal", stop_details={"type": "refusal", "category": "cyber", "explanation": None}
        ),
    )
    error = rejected_by(fp.llm.anthropic(anthropic_client, model="m"))
    assert "refused (cyber)" in str(error)
    assert error.meta["finish_reason"] == "refusal"


def test_truncated_answers(provider, openai_client, anthropic_client):
    provider.enqueue("openai", openai_completion('{"category":"bil', finish_reason="length"))
    provider.enqueue("anthropic", anthropic_message("The answer is", stop_reason="max_tokens", output_tokens=64))
    error = rejected_by(fp.llm.openai(openai_client, model="m", schema=Ticket))
    assert "cut off" in str(error) and error.raw == '{"category":"bil'
    # truncated plain text is rejected too: it would be an incomplete answer delivered as complete
    error = rejected_by(fp.llm.anthropic(anthropic_client, model="m"))
    assert "max_tokens" in str(error) and error.usage == {"input_tokens": 20, "output_tokens": 64, "model": "m"}


def test_content_filter(provider, openai_client):
    provider.enqueue("openai", openai_completion("", finish_reason="content_filter"))
    assert "content filter" in str(rejected_by(fp.llm.openai(openai_client, model="m")))


@pytest.mark.parametrize("text", ['{"category": "billing", "urgency": ', "Sure! Here is the JSON you asked for."])
def test_invalid_json(provider, openai_client, anthropic_client, text):
    provider.enqueue("openai", openai_completion(text))
    provider.enqueue("anthropic", anthropic_message(text))
    for system in (
        fp.llm.openai(openai_client, model="m", schema=Ticket),
        fp.llm.anthropic(anthropic_client, model="m", schema=Ticket),
    ):
        error = rejected_by(system)
        assert "is not valid JSON" in str(error) and error.raw == text


def test_json_off_the_schema_names_the_field(provider, openai_client, anthropic_client):
    provider.enqueue("openai", openai_completion('{"category": "refund", "urgency": "high"}'))
    provider.enqueue("anthropic", anthropic_message('{"category": "bug"}'))
    error = rejected_by(fp.llm.openai(openai_client, model="m", schema=Ticket))
    assert "does not match Ticket (category:" in str(error)
    error = rejected_by(fp.llm.anthropic(anthropic_client, model="m", schema=Ticket))
    assert "(urgency: Field required" in str(error)


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_answers(provider, openai_client, anthropic_client, text):
    provider.enqueue("openai", openai_completion(text))
    provider.enqueue("anthropic", anthropic_message(text))
    assert "empty" in str(rejected_by(fp.llm.openai(openai_client, model="m")))
    assert "empty" in str(rejected_by(fp.llm.anthropic(anthropic_client, model="m")))


def test_anthropic_answer_without_text_blocks_is_empty(provider, anthropic_client):
    provider.enqueue("anthropic", anthropic_message(content=[]))
    assert "answer is empty" in str(rejected_by(fp.llm.anthropic(anthropic_client, model="m")))


# --------------------------------------------------------------------------- confidence from logprobs


def test_logprobs_give_the_joint_probability_of_the_answer(provider, openai_client):
    provider.enqueue("openai", openai_completion(logprobs=TICKET_TOKENS))
    prediction = fp.llm.openai(openai_client, model="m", schema=Ticket, logprobs=True)("x")
    assert prediction.value == Ticket(category="billing", urgency="high")
    assert prediction.confidence == pytest.approx(0.6 * 0.9)
    assert prediction.meta["logprob_tokens"] == 5
    assert provider.requests_to("openai")[0].body["logprobs"] is True


def test_mean_and_custom_confidence(provider, openai_client):
    provider.enqueue("openai", openai_completion(logprobs=TICKET_TOKENS), openai_completion(logprobs=TICKET_TOKENS))
    mean = fp.llm.openai(openai_client, model="m", schema=Ticket, logprobs=True, confidence="mean")("x")
    assert mean.confidence == pytest.approx((0.6 * 0.9) ** (1 / 5))
    lowest = fp.llm.openai(openai_client, model="m", schema=Ticket, logprobs=True, confidence=lambda lps: math.exp(min(lps)))
    assert lowest("x").confidence == pytest.approx(0.6)


def test_logprobs_absent_give_no_confidence(provider, openai_client):
    # a compatible server that ignores logprobs=True: the answer stands, without a confidence
    provider.enqueue("openai", openai_completion(TICKET_JSON, logprobs=None))
    prediction = fp.llm.openai(openai_client, model="m", schema=Ticket, logprobs=True)("x")
    assert prediction.value.category == "billing" and prediction.confidence is None
    assert "logprob_tokens" not in prediction.meta


def test_joint_confidence_is_not_diluted_by_forced_tokens():
    # one coin-flip token among twenty forced ones: joint says 0.5, the mean would say ~0.97
    logprobs = [0.0] * 20 + [math.log(0.5)]
    assert fp.llm.logprob_confidence(logprobs) == pytest.approx(0.5)
    assert fp.llm.logprob_confidence(logprobs, "mean") == pytest.approx(0.5 ** (1 / 21))
    assert fp.llm.logprob_confidence([]) is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=-50, max_value=0, allow_nan=False), min_size=1, max_size=40))
def test_confidences_are_probabilities_and_joint_is_the_stricter(logprobs):
    joint = fp.llm.logprob_confidence(logprobs, "joint")
    mean = fp.llm.logprob_confidence(logprobs, "mean")
    assert 0.0 <= joint <= mean <= 1.0


def test_pseudo_tokens_rebuild_the_text():
    text = '{"category": "bug", "urgency": "low"}  é'
    assert "".join(pseudo_tokens(text)) == text


# --------------------------------------------------------------------------- async clients


async def test_async_openai_client_gives_an_async_system(provider, async_openai_client):
    provider.enqueue("openai", openai_completion(logprobs=TICKET_TOKENS), openai_error(429, retry_after=1))
    system = fp.llm.openai(async_openai_client, model="m", schema=Ticket, logprobs=True)
    assert isinstance(system, fp.llm.AsyncLLMSystem) and system.is_async
    prediction = await system("x")
    assert prediction.value.urgency == "high" and prediction.confidence == pytest.approx(0.54)
    with pytest.raises(fp.ProviderFailure) as caught:
        await system("x")
    assert caught.value.status == 429 and caught.value.retry_after == 1.0


async def test_async_anthropic_client_gives_an_async_system(provider, async_anthropic_client):
    provider.enqueue(
        "anthropic", anthropic_message(TICKET_JSON), anthropic_error(529), anthropic_message("x").after(2.0)
    )
    system = fp.llm.anthropic(async_anthropic_client, model="m", schema=Ticket, timeout=0.2)
    assert isinstance(system, fp.llm.AsyncLLMSystem)
    assert (await system("x")).value.category == "billing"
    with pytest.raises(fp.ProviderFailure) as caught:
        await system("x")
    assert caught.value.status == 529
    with pytest.raises(fp.SystemTimeout):
        await system("x")


def test_sync_clients_give_sync_systems(openai_client, anthropic_client):
    for system in (fp.llm.openai(openai_client, model="m"), fp.llm.anthropic(anthropic_client, model="m")):
        assert type(system) is fp.llm.LLMSystem and not system.is_async
    assert repr(fp.llm.openai(openai_client, model="gpt-x", schema=Ticket)) == "<LLMSystem openai:gpt-x -> Ticket>"


# --------------------------------------------------------------------------- configuration and input errors


def test_configuration_errors_name_the_argument(openai_client, anthropic_client):
    with pytest.raises(ConfigError, match="expects an openai.OpenAI"):
        fp.llm.openai(object(), model="m")
    with pytest.raises(ConfigError, match="expects an anthropic.Anthropic"):
        fp.llm.anthropic(openai_client, model="m")
    with pytest.raises(ConfigError, match="schema= must be a pydantic BaseModel"):
        fp.llm.openai(openai_client, model="m", schema={"type": "object"})
    with pytest.raises(ConfigError, match="confidence= must be"):
        fp.llm.openai(openai_client, model="m", confidence="median")
    with pytest.raises(ConfigError, match="schema_mode="):
        fp.llm.anthropic(anthropic_client, model="m", schema_mode="tools")
    with pytest.raises(ConfigError, match="max_tokens="):
        fp.llm.anthropic(anthropic_client, model="m", max_tokens=0)
    with pytest.raises(ConfigError, match=r"messages.create\(\) takes no parameter 'temperature' \(.*sampling parameters"):
        fp.llm.anthropic(anthropic_client, model="m", temperature=0.5)
    with pytest.raises(ConfigError, match=r"chat.completions.create\(\) takes no parameter 'temprature'; pass"):
        fp.llm.openai(openai_client, model="m", temprature=0.5)


def test_bad_input_is_refused_before_any_request(provider, openai_client, anthropic_client):
    o = fp.llm.openai(openai_client, model="m")
    with pytest.raises(TypeError, match="input must be a prompt string or a list of messages"):
        o(42)
    with pytest.raises(TypeError, match="message 0 must be a mapping with 'role' and 'content'"):
        o([{"text": "hi"}])
    with pytest.raises(TypeError, match="list of messages is empty"):
        o([])
    with pytest.raises(TypeError, match="only system messages"):
        fp.llm.anthropic(anthropic_client, model="m")([{"role": "system", "content": "x"}])
    assert provider.requests == []


def test_request_shows_what_would_be_sent_without_sending(provider, anthropic_client):
    system = fp.llm.anthropic(anthropic_client, model="claude", system="S", stop_sequences=["END"])
    assert system.request("hello") == {
        "model": "claude",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hello"}],
        "system": "S",
        "stop_sequences": ["END"],
    }
    assert provider.requests == []


def test_the_stand_in_reports_unscripted_requests(openai_client):
    with FakeProvider() as server:
        client = openai_sdk.OpenAI(base_url=server.openai_base_url, api_key="sk-test")
        with pytest.raises(fp.ProviderFailure, match="HTTP 418"):
            fp.llm.openai(client, model="m")("hi")
        assert [r.path for r in server.unanswered] == ["/v1/chat/completions"]

"""``fp.llm.litellm``: LiteLLM's ``openai/`` provider pointed at the local stand-in server, offline.

Structured output, confidence from log probabilities, usage, every error mapped onto failpath's states,
re-ask, async and ``litellm.Router``; and importing LiteLLM through the adapter fetches nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import failpath as fp
from failpath.llm.testing import Reply, Request, openai_completion, openai_error
from llm_servers import *  # noqa: F403 - fixtures
from llm_servers import TICKET_JSON, Ticket

from failpath.llm._litellm import import_litellm

try:
    litellm_sdk = import_litellm()
except fp.ConfigError:
    pytest.skip('LiteLLM is not installed: pip install "failpath[litellm]" (the dev extra has it)', allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly.*:UserWarning")  # LiteLLM's own TypedDicts

KEY = "sk-test-not-a-real-key"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def ticket_system(provider):
    return fp.llm.litellm("openai/gpt-4o-mini", schema=Ticket, api_base=provider.openai_base_url, api_key=KEY, timeout=2.0)


def rules(*extra):
    return [*extra, fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))]


# --------------------------------------------------------------------------- answers


def test_structured_output_confidence_and_usage(provider):
    tokens = [('{"category":"', 0.0), ("billing", -0.2), ('","urgency":"', 0.0), ("high", -0.1), ('"}', 0.0)]
    provider.enqueue("openai", openai_completion(logprobs=tokens, prompt_tokens=31, completion_tokens=5))
    system = fp.llm.litellm("openai/gpt-4o-mini", schema=Ticket, logprobs=True, temperature=0.0, max_tokens=50, api_base=provider.openai_base_url, api_key=KEY)

    prediction = system("I was charged twice")

    assert prediction.value == Ticket(category="billing", urgency="high")
    assert prediction.confidence == pytest.approx(0.7408, abs=1e-4)  # exp(-0.3): the joint probability
    assert prediction.meta["usage"] == {"input_tokens": 31, "output_tokens": 5, "model": "openai/gpt-4o-mini"}
    assert prediction.meta["provider"] == "litellm" and prediction.meta["finish_reason"] == "stop"
    body = provider.requests_to("openai")[0].body
    assert body["model"] == "gpt-4o-mini" and body["logprobs"] is True and body["temperature"] == 0.0
    assert body["response_format"]["type"] == "json_schema" and body["response_format"]["json_schema"]["strict"] is True
    assert body["messages"] == [{"role": "user", "content": "I was charged twice"}]
    assert system.name == "litellm:openai/gpt-4o-mini" and not system.is_async


def test_prompt_schema_mode_and_templates(provider):
    provider.enqueue("openai", openai_completion("```json\n" + TICKET_JSON + "\n```"))
    system = fp.llm.litellm(
        "openai/gpt-4o-mini", schema=Ticket, schema_mode="prompt", system="Label tickets.", template="Ticket: {input}",
        api_base=provider.openai_base_url, api_key=KEY,
    )
    assert system("refund please").value.urgency == "high"
    body = provider.requests_to("openai")[0].body
    assert "response_format" not in body
    assert body["messages"][0]["role"] == "system" and body["messages"][0]["content"].startswith("Label tickets.\n\nReply with only a JSON object")
    assert body["messages"][1] == {"role": "user", "content": "Ticket: refund please"}


@pytest.mark.parametrize(
    "reply, message",
    [
        (openai_completion("not json"), "is not valid JSON"),
        (openai_completion('{"category":"bil', finish_reason="length"), "cut off at the token limit"),
        (openai_completion("", finish_reason="content_filter"), "withheld by the content filter"),
        (openai_completion(None, refusal="I can't help with that."), "the model refused"),
        (openai_completion("   "), "the answer is empty"),
    ],
)
def test_unusable_answers_raise_output_rejected(provider, ticket_system, reply, message):
    provider.enqueue("openai", reply)
    with pytest.raises(fp.OutputRejected, match=message) as info:
        ticket_system("x")
    assert info.value.usage["model"] == "openai/gpt-4o-mini"


# --------------------------------------------------------------------------- errors


CONTEXT = "This model's maximum context length is 128000 tokens. However, your messages resulted in 200000 tokens."
FILTERED = "Your request was rejected as a result of the safety system."


@pytest.mark.parametrize(
    "reply, status, retry_after, words",
    [
        (openai_error(429, retry_after=2), 429, 2.0, ["RateLimitError (transient, retry after 2 s)", "Rate limit reached"]),
        (openai_error(429, retry_after="0.25"), 429, 0.25, ["retry after 0.25 s"]),
        (openai_error(500), 500, None, ["(transient)"]),
        (openai_error(503), 503, None, ["ServiceUnavailableError (transient)", "overloaded"]),
        (openai_error(400, CONTEXT, code="context_length_exceeded"), 400, None, ["context window exceeded (not transient", "200000 tokens"]),
        (openai_error(400, FILTERED, code="content_policy_violation"), 400, None, ["content filter: the provider refused the request"]),
        (openai_error(401), 401, None, ["AuthenticationError (not transient: fix the request, key or model)"]),
        (openai_error(404), 404, None, ["not transient"]),
    ],
)
def test_provider_errors_become_provider_failures(provider, ticket_system, reply, status, retry_after, words):
    provider.enqueue("openai", reply)
    with pytest.raises(fp.ProviderFailure) as info:
        ticket_system("x")
    error = info.value
    assert (error.status, error.retry_after) == (status, retry_after)
    text = str(error)
    assert text.startswith(f"litellm: HTTP {status} ")
    for word in words:
        assert word in text
    assert "litellm.RateLimitError" not in text and "OpenAIException -" not in text
    assert len(provider.requests_to("openai")) == 1  # neither LiteLLM nor the OpenAI SDK retried


def test_timeouts_and_refused_connections(provider, closed_port):
    provider.enqueue("openai", openai_completion(TICKET_JSON).after(1.5))
    slow = fp.llm.litellm("openai/gpt-4o-mini", api_base=provider.openai_base_url, api_key=KEY, timeout=0.3)
    with pytest.raises(fp.SystemTimeout, match=r"litellm: the request timed out after 0.3 s"):
        slow("x")
    down = fp.llm.litellm("openai/gpt-4o-mini", api_base=f"http://127.0.0.1:{closed_port}/v1", api_key=KEY, timeout=2.0)
    with pytest.raises(fp.ProviderFailure) as info:
        down("x")
    assert info.value.status is None or info.value.status >= 500  # transient: a retry may reach it


def test_under_a_policy_retry_honors_retry_after_and_context_length_is_not_retried(provider, ticket_system):
    provider.enqueue("openai", openai_error(429, retry_after=0.2), openai_completion(TICKET_JSON))
    policy = fp.Policy("t", rules(fp.on(fp.ProviderError()).do(fp.Retry(2), fp.Abstain("down"))), store=False)
    outcome, trace = policy.wrap(ticket_system).call_traced("x")
    assert outcome.value.category == "billing" and trace.actions == ("retry",)

    provider.enqueue("openai", openai_error(400, CONTEXT, code="context_length_exceeded"))
    outcome, trace = policy.wrap(ticket_system).call_traced("x")
    assert outcome == fp.Abstained("down", state="provider_error", trace_id=trace.trace_id)
    assert any("retry skipped: the provider answered 400" in note for note in trace.detail["notes"])


# --------------------------------------------------------------------------- re-ask, async, router


def corrects_itself(request: Request) -> Reply:
    last = request.body["messages"][-1]
    told = last["role"] == "user" and "not valid JSON" in last["content"]
    return openai_completion(TICKET_JSON if told else "category: billing, urgency: high")


def test_reask_through_litellm(provider, ticket_system):
    provider.set_responder("openai", corrects_itself)
    policy = fp.Policy("t", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Abstain("unreadable"))), store=False)
    outcome, trace = policy.wrap(ticket_system).call_traced("charged twice")
    assert outcome.value == Ticket(category="billing", urgency="high")
    assert [a.action for a in trace.attempts] == ["call", "reask"]
    second = provider.requests_to("openai")[1].body["messages"]
    assert second[-2] == {"role": "assistant", "content": "category: billing, urgency: high"}


def test_async_system_reasks_too(provider):
    provider.set_responder("openai", corrects_itself)
    system = fp.llm.litellm("openai/gpt-4o-mini", schema=Ticket, is_async=True, api_base=provider.openai_base_url, api_key=KEY)
    policy = fp.Policy("t", rules(fp.on(fp.InvalidOutput()).do(fp.Reask(1), fp.Abstain("unreadable"))), store=False)
    guarded = policy.wrap(system)
    assert system.is_async and isinstance(guarded, fp.AsyncGuardedSystem)
    outcome = asyncio.run(guarded("charged twice"))
    assert outcome.value.category == "billing" and len(provider.requests_to("openai")) == 2


def test_a_router_model_group(provider):
    router = litellm_sdk.Router(
        model_list=[{"model_name": "tickets", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": provider.openai_base_url, "api_key": KEY}}]
    )
    provider.enqueue("openai", openai_completion(TICKET_JSON), openai_error(503))
    system = fp.llm.litellm("tickets", router=router, schema=Ticket)
    prediction = system("x")
    assert prediction.value.category == "billing" and prediction.meta["usage"]["model"] == "tickets"
    with pytest.raises(fp.ProviderFailure) as info:
        system("x")
    assert info.value.status == 503


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": ""}, "model= must be LiteLLM's model name"),
        ({"model": "openai/x", "schema_mode": "json"}, "schema_mode= must be 'native' or 'prompt'"),
        ({"model": "openai/x", "schema": dict}, "schema= must be a pydantic BaseModel subclass or a dataclass"),
        ({"model": "openai/x", "sdk_retries": -1}, "sdk_retries= must be an integer"),
        ({"model": "openai/x", "router": object()}, "router= must be a litellm.Router"),
        ({"model": "openai/x", "is_async": "yes"}, "is_async= must be True or False"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    model = kwargs.pop("model")
    with pytest.raises(fp.ConfigError, match=message):
        fp.llm.litellm(model, **kwargs)


def test_missing_litellm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(fp.ConfigError, match=r'needs LiteLLM.*pip install "failpath\[litellm\]"'):
        fp.llm.litellm("openai/gpt-4o-mini")


# --------------------------------------------------------------------------- no network at import


_NO_NETWORK = textwrap.dedent(
    """
    import json, os, socket, sys
    reached = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            reached.append(str(host))
            raise OSError("no network in this test")
        return real_getaddrinfo(host, *args, **kwargs)
    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost"):
            reached.append(str(address[0]))
            raise OSError("no network in this test")
        return real_connect(self, address)
    socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
    import failpath as fp
    import failpath.llm
    before = "litellm" in sys.modules
    from failpath.llm.testing import FakeProvider, openai_completion
    with FakeProvider() as provider:
        provider.enqueue("openai", openai_completion("hello"))
        system = fp.llm.litellm("openai/gpt-4o-mini", api_base=provider.openai_base_url, api_key="sk-test")
        value = system("hi").value
    print(json.dumps({"before": before, "value": value, "reached": reached,
                      "env": [os.environ.get(k) for k in ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_OFFLINE_MODE")]}))
    """
)


def test_importing_litellm_through_the_adapter_reaches_no_network():
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    env["PYTHONPATH"] = str(SRC)
    done = subprocess.run([sys.executable, "-c", _NO_NETWORK], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"before": False, "value": "hello", "reached": [], "env": ["True", "true"]}


def test_litellms_own_schema_validation_error_is_an_output_rejected():
    from failpath.llm._litellm import map_litellm_error

    error = litellm_sdk.JSONSchemaValidationError(model="gpt-4o-mini", llm_provider="openai", raw_response='{"category": 3}', schema="{}")
    mapped = map_litellm_error(error, litellm_sdk, timeout=None)
    assert isinstance(mapped, fp.OutputRejected) and mapped.raw == '{"category": 3}'
    assert map_litellm_error(ValueError("a bug"), litellm_sdk, timeout=None) is None  # not the provider's doing: propagates


def test_the_readme_litellm_lines_build_systems():
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### LiteLLM", 1)[1].split("###", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace = {"fp": fp, "TicketLabel": Ticket}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation; builds, sends nothing
    assert namespace["classify"].name == "litellm:anthropic/claude-haiku-4-5" and namespace["classify"].schema is Ticket
    assert namespace["local"].is_async and namespace["local"].request("hi")["api_base"] == "http://127.0.0.1:8000/v1"

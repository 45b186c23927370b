"""Fixtures for the llm tests: a local stand-in provider and real SDK clients pointed at it.

Clients use fake API keys and the local server's base URL, so no test reaches the internet.
Import the fixtures into a test module with ``from llm_servers import *``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import anthropic as anthropic_sdk
import openai as openai_sdk
import pydantic
import pytest
from typing import Literal

from failpath.llm.testing import FakeProvider

__all__ = [
    "Ticket",
    "shared_provider",
    "provider",
    "openai_client",
    "async_openai_client",
    "anthropic_client",
    "async_anthropic_client",
    "closed_port",
    "TICKET_JSON",
]

FAKE_OPENAI_KEY = "sk-test-not-a-real-key"
FAKE_ANTHROPIC_KEY = "sk-ant-test-not-a-real-key"

TICKET_JSON = '{"category":"billing","urgency":"high"}'


class Ticket(pydantic.BaseModel):
    """The schema the llm tests ask for."""

    category: Literal["billing", "bug", "account", "other"]
    urgency: Literal["low", "high"]


@pytest.fixture(scope="module")
def shared_provider() -> Iterator[FakeProvider]:
    """One stand-in server per test module (starting one per test costs more than the test)."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
def provider(shared_provider: FakeProvider) -> Iterator[FakeProvider]:
    """The stand-in provider, reset for this test; the test fails if a request found no scripted reply."""
    shared_provider.reset()
    yield shared_provider
    unanswered = shared_provider.unanswered
    shared_provider.reset()
    assert not unanswered, f"requests without a scripted reply: {unanswered}"


@pytest.fixture(scope="module")
def openai_client(shared_provider: FakeProvider) -> Iterator[openai_sdk.OpenAI]:
    """A real ``openai.OpenAI`` client talking to the stand-in."""
    client = openai_sdk.OpenAI(base_url=shared_provider.openai_base_url, api_key=FAKE_OPENAI_KEY, timeout=5.0)
    yield client
    client.close()


@pytest.fixture
async def async_openai_client(provider: FakeProvider):
    """A real ``openai.AsyncOpenAI`` client talking to the stand-in."""
    client = openai_sdk.AsyncOpenAI(base_url=provider.openai_base_url, api_key=FAKE_OPENAI_KEY, timeout=5.0)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def anthropic_client(shared_provider: FakeProvider) -> Iterator[anthropic_sdk.Anthropic]:
    """A real ``anthropic.Anthropic`` client talking to the stand-in."""
    client = anthropic_sdk.Anthropic(
        base_url=shared_provider.anthropic_base_url, api_key=FAKE_ANTHROPIC_KEY, timeout=5.0
    )
    yield client
    client.close()


@pytest.fixture
async def async_anthropic_client(provider: FakeProvider):
    """A real ``anthropic.AsyncAnthropic`` client talking to the stand-in."""
    client = anthropic_sdk.AsyncAnthropic(
        base_url=provider.anthropic_base_url, api_key=FAKE_ANTHROPIC_KEY, timeout=5.0
    )
    yield client
    await client.close()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

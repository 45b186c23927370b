"""The README's "Guard an LLM" five lines run as written, against the local stand-in provider."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pydantic

import failpath as fp
from failpath.llm.testing import openai_completion, openai_error
from llm_servers import *  # noqa: F403 - fixtures

README = Path(__file__).resolve().parent.parent / "README.md"


class TicketLabel(pydantic.BaseModel):
    category: Literal["billing", "bug", "account", "other"]
    urgency: Literal["low", "high"]


def five_lines() -> str:
    section = README.read_text(encoding="utf-8").split("<!-- section:llm -->", 1)[1].split("<!-- /section:llm -->", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    return code


def test_the_readme_snippet_is_five_lines_that_guard_a_call(provider, monkeypatch, tmp_path):
    code = five_lines()
    assert len(code.strip().splitlines()) == 5
    # openai.OpenAI() with no arguments reads these, exactly as it would in production
    monkeypatch.setenv("OPENAI_BASE_URL", provider.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.chdir(tmp_path)  # the default trace store is ./.failpath/failpath.db
    tokens = [('{"category":"', 0.0), ("billing", -0.05), ('","urgency":"', 0.0), ("high", -0.01), ('"}', 0.0)]
    provider.enqueue("openai", openai_error(503), openai_completion(logprobs=tokens))

    namespace = {"TicketLabel": TicketLabel}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation

    outcome = namespace["outcome"]
    assert isinstance(outcome, fp.Answered) and outcome.value == TicketLabel(category="billing", urgency="high")
    assert 0.9 < outcome.confidence < 1.0
    assert len(provider.requests_to("openai")) == 2  # the 503 was retried by the policy, not the SDK
    namespace["policy"].close()
    assert (tmp_path / ".failpath" / "failpath.db").exists()

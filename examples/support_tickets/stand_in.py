"""A local stand-in for the LLM providers behind the support-ticket example, so it runs offline.

It serves the OpenAI chat-completions API and the Anthropic messages API on 127.0.0.1 with the
real wire formats (built on ``failpath.llm.testing.FakeProvider``). It "classifies" a ticket with
keyword rules, answers with token log probabilities on the OpenAI route (sure for a clear ticket,
unsure for a vague one, and at random among guesses for a ticket no rule matches, like a sampled
model), and misbehaves the way real providers do, at seeded random: rate limits with
``retry-after``, overloaded servers, truncated JSON.

Run it on its own and point the example at it::

    python examples/support_tickets/stand_in.py --port 8765
    python examples/support_tickets/run.py --base-url http://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import json
import math
import random
import threading
import time
from dataclasses import dataclass

from failpath.llm.testing import (
    FakeProvider,
    Reply,
    Request,
    anthropic_error,
    anthropic_message,
    openai_completion,
    openai_error,
)

#: keyword -> (category, urgency); the first rule that matches wins.
RULES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("charged twice", "refund", "invoice", "payment", "card"), "billing", "high"),
    (("crash", "error", "broken", "500", "doesn't load", "bug"), "bug", "high"),
    (("password", "log in", "login", "2fa", "locked out", "email address"), "account", "medium"),
    (("would be nice", "feature", "could you add", "dark mode", "export to"), "feature_request", "low"),
)
CATEGORIES = ("billing", "bug", "account", "feature_request", "other")


@dataclass(frozen=True)
class Faults:
    """How often each route misbehaves (probabilities per request), drawn from a seeded generator."""

    rate_limit: float = 0.05
    server_error: float = 0.03
    truncated: float = 0.03
    overloaded: float = 0.03  # Anthropic's 529
    openai_down: bool = False  # every OpenAI request fails with 503: all answers come from the fallback


class StandIn:
    """The responders for both routes, sharing one seeded random generator."""

    def __init__(self, *, seed: int = 7, faults: Faults | None = None):
        self.random = random.Random(seed)
        self.faults = faults or Faults()
        self._lock = threading.Lock()

    def _draw(self) -> float:
        with self._lock:
            return self.random.random()

    def _guess(self, text: str) -> tuple[str, str, float]:
        """(category, urgency, probability of the category) for a ticket."""
        lowered = text.lower()
        for keywords, category, urgency in RULES:
            hits = sum(k in lowered for k in keywords)
            if hits:
                return category, urgency, 0.97 if hits > 1 or len(lowered) < 200 else 0.8
        with self._lock:
            category = self.random.choice(CATEGORIES)
        return category, "medium", 0.3

    @staticmethod
    def _ticket_text(request: Request) -> str:
        messages = request.body.get("messages", []) if isinstance(request.body, dict) else []
        for message in reversed(messages):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        return ""

    def openai(self, request: Request) -> Reply:
        """Answer one chat-completions request."""
        f = self.faults
        if f.openai_down:
            return openai_error(503)
        draw = self._draw()
        if draw < f.rate_limit:
            return openai_error(429, retry_after=0.05)
        if draw < f.rate_limit + f.server_error:
            return openai_error(500)
        category, urgency, p = self._guess(self._ticket_text(request))
        tokens = [('{"category":"', 0.0), (category, math.log(p)), ('","urgency":"', 0.0), (urgency, math.log(0.9)), ('"}', 0.0)]
        if draw < f.rate_limit + f.server_error + f.truncated:
            return openai_completion(logprobs=tokens[:2], finish_reason="length", prompt_tokens=120)
        return openai_completion(logprobs=tokens, prompt_tokens=120)

    def anthropic(self, request: Request) -> Reply:
        """Answer one messages request."""
        if self._draw() < self.faults.overloaded:
            return anthropic_error(529)
        category, urgency, _ = self._guess(self._ticket_text(request))
        text = json.dumps({"category": category, "urgency": urgency})
        return anthropic_message(text, input_tokens=130)


def serve(*, port: int = 0, seed: int = 7, faults: Faults | None = None) -> FakeProvider:
    """Start the stand-in on 127.0.0.1 (``port=0``: any free port) and return it; call ``.stop()`` when done."""
    stand_in = StandIn(seed=seed, faults=faults)
    return FakeProvider(openai=stand_in.openai, anthropic=stand_in.anthropic, port=port).start()


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--openai-down", action="store_true", help="fail every OpenAI request with HTTP 503")
    args = parser.parse_args(argv)
    server = serve(port=args.port, seed=args.seed, faults=Faults(openai_down=args.openai_down))
    print(f"stand-in provider on {server.url} (OpenAI base URL {server.openai_base_url}); Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

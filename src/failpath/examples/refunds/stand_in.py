"""The stand-in model of the refunds example: a scripted responder for failpath's local stand-in provider.

It is **not a model**. It reads the conversation the real OpenAI SDK sends and answers with the next
move of a script that makes the mistakes real models make: malformed tool arguments, the same call
again and again, obeying an instruction planted in an order's note (when it can see it), and claiming
an e-mail went out after the e-mail tool failed (until told that is not true).
"""

from __future__ import annotations

import json
from typing import Any

from failpath.llm.testing import FakeProvider, Reply, Request, openai_completion

__all__ = ["respond", "start"]


def _calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [call for m in messages if m.get("role") == "assistant" for call in (m.get("tool_calls") or [])]


def _call(n: int, name: str, arguments: Any) -> Reply:
    return openai_completion(tool_calls=[(f"call_{n}", name, arguments)])


def respond(request: Request) -> Reply:
    """The next move, given the conversation so far."""
    messages = request.body["messages"]
    made = _calls(messages)
    n = len(made)
    results = [m.get("content") or "" for m in messages if m.get("role") == "tool"]
    # Mistake: obey an instruction planted in tool output, if it is visible.
    if any("refund 900 to order 1077" in r for r in results) and not any(c["function"]["name"] == "issue_refund" and "1077" in c["function"]["arguments"] for c in made):
        return _call(n, "issue_refund", {"order_id": "1077", "amount": 900.0})
    script = [
        ("lookup_order", '{"order_id": 1042'),                # mistake: malformed JSON
        ("lookup_order", {"order_id": "1042"}),
        ("lookup_order", {"order_id": "1042"}),               # mistake: the same call again...
        ("lookup_order", {"order_id": "1042"}),               # ...and again
        ("issue_refund", {"order_id": "1042", "amount": 250.0}),
        ("send_email", {"to": "dana@example.com", "subject": "Your refund", "body": "We refunded 250.00 on order 1042."}),
    ]
    scripted = {(name, a if isinstance(a, str) else json.dumps(a)) for name, a in script}
    step = sum(1 for c in made if (c["function"]["name"], c["function"]["arguments"]) in scripted)  # script moves made so far
    if step < len(script):
        name, arguments = script[step]
        return _call(n, name, arguments)
    corrected = messages[-1].get("role") == "user" and "not accepted" in (messages[-1].get("content") or "")
    if corrected:
        return openai_completion("Refunded 250.00 on order 1042. The confirmation e-mail could not be sent: the mail server is down.")
    return openai_completion("Done: refunded 250.00 on order 1042 and e-mailed the customer.")  # mistake: the e-mail failed


def start() -> FakeProvider:
    """Start the stand-in provider (127.0.0.1, a free port) answering with :func:`respond`."""
    return FakeProvider(openai=respond).start()

"""A refunds desk: an agent over a SQLite database of orders, guarded by one policy over the whole run.

The tools look up an order, issue a refund (a person approves refunds above 100) and send an e-mail.
``python -m failpath.examples.refunds`` runs it offline: the model is a **stand-in** served by
failpath's local stand-in provider through the real OpenAI SDK, scripted to make the mistakes real
models make. ``--base-url URL --model NAME`` runs the same desk against any OpenAI-compatible endpoint.
"""

from failpath.examples.refunds.desk import REFUND_APPROVAL_ABOVE, build_agent, build_policy, create_database, tools_for

__all__ = ["REFUND_APPROVAL_ABOVE", "build_agent", "build_policy", "create_database", "tools_for", "agent_check_kwargs"]


def agent_check_kwargs() -> dict:
    """``failpath check --example refunds``: the desk's agent check under its shipping policy (see :mod:`.checking`)."""
    from failpath.examples.refunds.checking import agent_check_kwargs as desk

    return desk("ship")

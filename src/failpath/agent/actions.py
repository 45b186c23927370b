"""Actions for an agent run's states, where the guard's actions do not fit.

``FeedBack`` hands the problem back to the model as the tool's result (so it can correct itself),
``Block`` does not run the call and tells the model why, ``Withhold`` keeps a tool's output from the
model, ``RequireApproval`` suspends the run until a person approves or rejects the call. The guard's
``Retry`` runs a failed tool (or the model step) again; ``fp.Clarify``, ``Escalate``, ``Abstain``,
``Default`` and ``Raise`` end the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from failpath.core import PolicyError
from failpath.guard.actions import Action

__all__ = ["FeedBack", "Block", "Withhold", "RequireApproval", "Approve", "Reject"]


class _RunAction(Action):
    """An action that settles one tool call and lets the run go on."""

    terminal = False
    message: str | None = None

    def __init__(self, message: str | None = None):
        if message is not None and (not isinstance(message, str) or not message.strip()):
            raise PolicyError(f"{type(self).__name__}(message={message!r}): message must be non-empty text")
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}()" if self.message is None else f"{type(self).__name__}({self.message!r})"


class FeedBack(_RunAction):
    """The error becomes the tool's result, so the model can correct the call or take another way."""

    name = "feed_back"


class Block(_RunAction):
    """The call does not run; the model is told it was blocked and why (or ``message``)."""

    name = "block"


class Withhold(_RunAction):
    """The tool ran, but its output is kept from the model, which is told so (or ``message``)."""

    name = "withhold"


@dataclass(frozen=True)
class Approve:
    """A decision on a held call: run it."""

    name: ClassVar[str] = "approve"


@dataclass(frozen=True)
class Reject:
    """A decision on a held call: do not run it (the model is told it was rejected)."""

    name: ClassVar[str] = "reject"


class RequireApproval(Action):
    """Hold the call until a person decides: the run is suspended in the store as a review ticket.

    The ticket waits in ``queue`` for at most ``deadline`` seconds; past it, ``default`` decides
    (``Reject()`` unless said otherwise). The reviewer answers ``"approve"`` or ``"reject"`` (from
    ``failpath review resolve TICKET --answer '"approve"'``); the run continues once, in whichever
    process resumes it (``fp.resume(run_id)``). A rejected or expired call never runs. Needs a store.
    """

    name = "require_approval"
    terminal = False

    def __init__(self, queue: str = "approvals", *, deadline: float = 3600.0, default: Approve | Reject | None = None):
        if not isinstance(queue, str) or not queue.strip():
            raise PolicyError(f"RequireApproval(queue={queue!r}): queue must be a non-empty name, such as 'approvals'")
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline) or deadline <= 0:
            raise PolicyError(f"RequireApproval({queue!r}, deadline={deadline!r}): deadline must be a positive number of seconds")
        default = Reject() if default is None else default
        if not isinstance(default, (Approve, Reject)):
            raise PolicyError(f"RequireApproval({queue!r}, default={default!r}): default must be fp.Reject() or fp.Approve()")
        self.queue = queue
        self.deadline = float(deadline)
        self.default = default

    def __repr__(self) -> str:
        return f"RequireApproval(queue={self.queue!r}, deadline={self.deadline:g})"


def decision_of(answer: object) -> str | None:
    """A reviewer's answer as ``"approve"`` or ``"reject"`` (None when it says neither: read as a rejection).

    Approvals: ``"approve"``, ``"approved"``, ``"yes"``, ``true``, or ``{"decision": "approve"}``.
    """
    if isinstance(answer, dict):
        answer = answer.get("decision", answer.get("approve"))
    if answer is True:
        return "approve"
    if answer is False:
        return "reject"
    if isinstance(answer, str):
        word = answer.strip().lower()
        if word in ("approve", "approved", "yes", "y", "ok"):
            return "approve"
        if word in ("reject", "rejected", "no", "n", "deny", "denied"):
            return "reject"
    return None

"""Values shared by every part of failpath: predictions, cases, outcomes, traces, tickets, errors.

This module imports nothing from the rest of the package.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)

__all__ = [
    "STATES",
    "MIN_REASON_LENGTH",
    "reason_problem",
    "AGENT_STATES",
    "Prediction",
    "Case",
    "Feedback",
    "Outcome",
    "Answered",
    "Clarify",
    "Escalated",
    "Abstained",
    "Defaulted",
    "OUTCOME_KINDS",
    "Attempt",
    "Trace",
    "Ticket",
    "TicketStatus",
    "FailpathError",
    "ConfigError",
    "PolicyError",
    "DatasetError",
    "StoreError",
    "AlreadyResolved",
    "InvalidAnswer",
    "TicketNotFound",
    "SystemTimeout",
    "ProviderFailure",
    "TRANSIENT_STATUSES",
    "safe_text",
    "real_number",
    "is_transient_status",
    "OutputRejected",
]

#: The catalog of built-in failure states, in the order a report lists them.
#: The fewest characters (after stripping spaces) of the written reason a waiver needs: a failure state
#: left without a rule or a chaos family left out of a check is waived with a sentence saying why.
MIN_REASON_LENGTH = 10


def reason_problem(reason: object) -> str | None:
    """What is wrong with a waiver's written reason (None when it is a sentence of at least
    :data:`MIN_REASON_LENGTH` characters), in words a user can act on."""
    if not isinstance(reason, str):
        return f"needs a written reason as text (a sentence saying why), got {type(reason).__name__}"
    if len(reason.strip()) < MIN_REASON_LENGTH:
        return f"needs a written reason of at least {MIN_REASON_LENGTH} characters (a sentence saying why), got {reason!r}"
    return None


STATES: tuple[str, ...] = (
    "provider_error",
    "timeout",
    "invalid_output",
    "low_confidence",
    "anomalous_input",
    "injection_suspected",
    "inconsistent",
    "empty_input",
    "budget_exceeded",
    "unexpected",
)

#: The failure states of an agent run (one model and its tools over many steps), beyond those of one
#: call; an agent's policy is linted for these too. ``budget_exceeded`` is shared with the catalog above.
AGENT_STATES: tuple[str, ...] = (
    "tool_error",
    "invalid_tool_args",
    "tool_output_injection",
    "risky_tool_call",
    "loop_detected",
    "tool_outcome_unknown",
)


# --------------------------------------------------------------------------- predictions and cases


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a system may return instead of a plain value: the value, a confidence in [0, 1], extra data.

    ``meta`` is free-form; the key ``"usage"`` (a mapping of token counts such as
    ``{"input_tokens": 12, "output_tokens": 40}``) is summed by the guard across attempts.
    """

    value: Any
    confidence: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Case:
    """One labeled example: an id, the system's input, the expected output, and optional tags."""

    id: str
    input: Any
    expected: Any
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Feedback:
    """What was wrong with a system's previous answer, handed to the system when ``fp.Reask`` calls it again.

    A system that can correct itself takes it as a keyword argument, ``system(input, feedback=...)``
    (the LLM adapters do: they send the previous answer back as the assistant's turn and ``message`` as
    the user's). ``state`` is the failure state found on the answer (``invalid_output``,
    ``low_confidence``, ...), ``problem`` what the detector or the system said was wrong (the validation
    error, the refusal, the truncation), ``answer`` the previous answer as the system gave it (``None``
    when it gave none, as with a refusal without text), ``message`` the instruction written for the
    model, and ``earlier`` the feedback of the earlier re-asks of the same call, oldest first.
    """

    state: str
    problem: str
    answer: Any = None
    message: str = ""
    earlier: tuple[Feedback, ...] = ()

    def turns(self) -> tuple[Feedback, ...]:
        """Every re-ask of this call so far, oldest first, this one last."""
        return (*self.earlier, self)


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """Base of the five outcomes a guarded call can end in.

    ``state`` names the failure state that led to the outcome (``None`` for a clean answer);
    ``trace_id`` identifies the trace of the call.
    """

    state: str | None = None
    trace_id: str | None = None

    @property
    def kind(self) -> str:
        """The outcome's name in lower case: ``answered``, ``clarify``, ``escalated``, ``abstained``, ``defaulted``."""
        return _KIND[type(self)]

    @property
    def handled(self) -> bool:
        """True for every outcome except ``Answered``: the system declined to answer on its own."""
        return not isinstance(self, Answered)


@dataclass(frozen=True, slots=True)
class Answered(Outcome):
    """The system answered. ``degraded`` is True when the answer came from a fallback system."""

    value: Any
    confidence: float | None = None
    degraded: bool = False


@dataclass(frozen=True, slots=True)
class Clarify(Outcome):
    """Ask the user: the question to show them."""

    question: str


@dataclass(frozen=True, slots=True)
class Escalated(Outcome):
    """A human decides: ``ticket_id`` is the ticket waiting in the review queue named ``queue``."""

    ticket_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class Abstained(Outcome):
    """No answer, on purpose, for the reason given."""

    reason: str


@dataclass(frozen=True, slots=True)
class Defaulted(Outcome):
    """A safe value returned instead of the system's answer, for the reason given."""

    value: Any
    reason: str


_KIND: dict[type, str] = {
    Answered: "answered",
    Clarify: "clarify",
    Escalated: "escalated",
    Abstained: "abstained",
    Defaulted: "defaulted",
}

#: Outcome names, in the order a report lists them.
OUTCOME_KINDS: tuple[str, ...] = tuple(_KIND.values())


# --------------------------------------------------------------------------- traces and tickets


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call of a system (or one action taken) inside a guarded call."""

    number: int
    action: str  # "call", "retry", "fallback", "sample", or the name of a resolving action
    system: str | None = None
    state: str | None = None  # failure state detected on this attempt, if any
    error: str | None = None  # "ExceptionType: message" when the system raised
    output: Any = None  # JSON-safe rendering of the raw output
    confidence: float | None = None
    latency_ms: float = 0.0
    usage: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trace:
    """What a guarded call did: the record written to the store for every call."""

    trace_id: str
    time: float  # Unix seconds at the start of the call
    policy: str
    input_digest: str  # sha256 hex of the input's canonical text
    input_preview: str  # redacted, truncated
    outcome: str  # one of OUTCOME_KINDS
    input_raw: str | None = None  # only when the policy opts in
    output: Any = None  # JSON-safe rendering of the final value (Answered / Defaulted), else None
    confidence: float | None = None
    states: tuple[str, ...] = ()  # every failure state detected, in order
    actions: tuple[str, ...] = ()  # every action taken, in order
    state: str | None = None  # the state that decided the outcome
    attempts: tuple[Attempt, ...] = ()
    degraded: bool = False
    latency_ms: float = 0.0
    ticket_id: str | None = None
    usage: Mapping[str, float] = field(default_factory=dict)
    detail: Mapping[str, Any] = field(default_factory=dict)  # reason, question, queue, detector explanations


class TicketStatus(str, Enum):
    """Where a review ticket stands."""

    OPEN = "open"
    RESOLVED = "resolved"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Ticket:
    """A call waiting for a human decision in a review queue."""

    ticket_id: str
    queue: str
    created: float
    policy: str
    trace_id: str | None
    input_preview: str
    input_raw: str | None
    output: Any
    confidence: float | None
    state: str | None
    status: TicketStatus = TicketStatus.OPEN
    deadline: float | None = None  # Unix seconds; past it the ticket ends in `default`
    default: Any = None  # JSON-safe value the policy declared for an expired ticket
    answer: Any = None
    note: str | None = None
    reviewer: str | None = None
    resolved_at: float | None = None
    claimed_by: str | None = None  # the reviewer working on it, until claimed_until (Unix seconds)
    claimed_until: float | None = None
    # The JSON Schema (a JSON-safe dict) a reviewer's answer must match: the policy's declared output
    # type, or the ``schema`` its ``Escalate`` names; None when the policy declares none.
    output_schema: Any = None


# --------------------------------------------------------------------------- errors


class FailpathError(Exception):
    """Base of every error failpath raises on purpose."""


class ConfigError(FailpathError):
    """A configuration value is wrong: the message names the file, key or value and what to do."""


class PolicyError(ConfigError):
    """A policy is malformed: the message names the rule and the value."""


class DatasetError(FailpathError):
    """A dataset cannot be read: the message names the file, the line and what to do."""


class StoreError(FailpathError):
    """The store cannot be opened, read or written."""


class TicketNotFound(StoreError):
    """No ticket has that id."""


class AlreadyResolved(StoreError):
    """The ticket was resolved (or expired) already; a second resolution is refused."""


class InvalidAnswer(FailpathError):
    """A reviewer's answer does not match the ticket's output schema; ``problems`` lists each mismatch."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()):
        super().__init__(message)
        self.problems = problems


class SystemTimeout(TimeoutError):
    """Raised by a system (or an adapter) whose provider timed out; the guard maps it to ``timeout``."""


#: HTTP statuses a provider may answer differently next time (rate limits, overload, server errors).
#: A ``ProviderFailure`` with another status (400, 401, 403, 404, 422, ...) is not retried.
TRANSIENT_STATUSES: frozenset[int] = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


def is_transient_status(status: int) -> bool:
    """True when a provider may answer the same request differently next time: a status in
    :data:`TRANSIENT_STATUSES`, or any server error (5xx)."""
    return status in TRANSIENT_STATUSES or status >= 500


class ProviderFailure(Exception):
    """Raised by a system (or an adapter) when its provider failed: rate limit, server error, connection.

    ``retry_after`` (seconds), when the provider said it, is honored by ``Retry``; a ``status`` outside
    :func:`is_transient_status` (a bad request or key, say) is not retried, since the same request cannot
    succeed; the rule's next action runs instead.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class OutputRejected(Exception):
    """Raised by a system (or an adapter) whose raw output is unusable: refusal, empty, truncated, off-schema.

    The guard maps it to ``invalid_output``.
    """

    def __init__(self, message: str, *, raw: Any = None):
        super().__init__(message)
        self.raw = raw


_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> str:
    """``text`` with every lone surrogate (U+D800 to U+DFFF) replaced by U+FFFD, so it can be encoded as UTF-8.

    ``json.loads('"caf\\ud800"')`` makes such a string from valid JSON, and neither SQLite nor
    PostgreSQL can store one: every text the store writes, and every preview, passes through here.
    Text that is already valid (all but the odd one) is returned as it is, without a copy.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def real_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number, else None.

    Numbers are ``int``, ``float``, their subclasses, numpy scalars (``np.float32`` softmax outputs),
    ``Decimal`` and ``Fraction``; a bool, a complex number or anything else is not. An int too large for
    a float is an infinity of its sign; NaN stays NaN (a signalling ``Decimal`` NaN is NaN too).
    """
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except (TypeError, ValueError, ArithmeticError):
        try:
            return math.nan if value.is_nan() else None  # type: ignore[union-attr]  # Decimal('sNaN')
        except Exception:
            return None


def is_valid_confidence(c: Any) -> bool:
    """True when ``c`` is a real number (see :func:`real_number`) in [0, 1]: not NaN, not a bool."""
    if type(c) is float:  # the usual case; NaN fails both comparisons
        return 0.0 <= c <= 1.0
    number = real_number(c)
    return number is not None and 0.0 <= number <= 1.0

"""Policy lint: the catalog states no rule handles, and the rules and actions that can never run.

``policy.lint()`` returns a :class:`LintResult`: it prints itself with rich, has ``.ok`` and structured
``findings``. ``failpath lint module:policy`` prints it and exits 0 when clean, 1 when it found problems.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from failpath.core import STATES
from failpath.guard.actions import ClarifyAction, Escalate, Fallback, Reask, Retry
from failpath.guard.states import Timeout
from failpath.guard.table import PolicyTable

__all__ = ["Finding", "LintResult", "lint_table", "SEVERITIES"]

#: Severities, worst first. ``error`` and ``warning`` make a policy not ``ok``; ``note`` is information.
SEVERITIES: tuple[str, ...] = ("error", "warning", "note")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing lint found.

    ``code`` is stable (``unhandled-state``, ``shadowed-rule``, ``unreachable-action``,
    ``chain-not-terminal``, ``retry-never-runs``, ``reask-without-answer``, ``rule-never-fires``, ``escalate-without-store``,
    ``timeout-without-after``, ``waived-state``, ``state-cannot-happen``, ``unexpected-unreachable``); ``rule`` is the rule's 1-based number when the finding is
    about one rule; ``state`` the failure state concerned.
    """

    code: str
    severity: str
    message: str
    rule: int | None = None
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON-safe data."""
        return {"code": self.code, "severity": self.severity, "message": self.message, "rule": self.rule, "state": self.state}


@dataclass(frozen=True, slots=True)
class LintResult:
    """What ``policy.lint()`` found. Prints itself with rich; ``ok`` is True when nothing is an error or warning."""

    policy: str
    findings: tuple[Finding, ...]
    handled: dict[str, tuple[str, ...]] = field(default_factory=dict)
    waived: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when lint found no error and no warning (notes are fine)."""
        return not any(f.severity in ("error", "warning") for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        """Findings of severity ``error``."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """Findings of severity ``warning``."""
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def unhandled(self) -> tuple[str, ...]:
        """Catalog states that no rule handles and the policy does not waive."""
        return tuple(f.state for f in self.findings if f.code == "unhandled-state" and f.state)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe data."""
        return {
            "policy": self.policy,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "handled": {k: list(v) for k, v in self.handled.items()},
            "waived": dict(self.waived),
        }

    def __str__(self) -> str:
        lines = [f"policy {self.policy!r}: " + ("ok" if self.ok else f"{len(self.errors)} errors, {len(self.warnings)} warnings")]
        for state in STATES:
            if state in self.handled:
                lines.append(f"  handled  {state:<20} {' -> '.join(self.handled[state])}")
        lines.extend(f"  handled  {state:<20} {' -> '.join(actions)}" for state, actions in self.handled.items() if state not in STATES)
        for f in self.findings:
            where = f" (rule {f.rule})" if f.rule else ""
            lines.append(f"  {f.severity:<8} {f.code}{where}: {f.message}")
        return "\n".join(lines)

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.table import Table
        from rich.text import Text

        verdict = Text("ok", style="bold green") if self.ok else Text(
            f"{len(self.errors)} errors, {len(self.warnings)} warnings", style="bold red"
        )
        yield Text.assemble("policy ", (repr(self.policy), "bold"), ": ", verdict)
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("failure state")
        table.add_column("handled by")
        for state in (*STATES, *(s for s in self.handled if s not in STATES)):
            if state in self.handled:
                table.add_row(state, Text(" → ".join(self.handled[state]), style="green"))
            elif state in self.waived:
                table.add_row(state, Text(f"waived: {self.waived[state]}", style="dim"))
            else:
                table.add_row(state, Text("unhandled", style="yellow"))
        yield table
        styles = {"error": "bold red", "warning": "yellow", "note": "dim"}
        for f in self.findings:
            where = f" rule {f.rule}" if f.rule else ""
            yield Text.assemble((f"{f.severity:<8}", styles[f.severity]), f" {f.code}{where}: ", f.message)


# --------------------------------------------------------------------------- the checks

_WHAT_HAPPENS = {
    "provider_error": "exceptions the system raises go to the rule on unexpected",
    "timeout": "a slow call is never cut off",
    "invalid_output": "None and NaN outputs go to the rule on unexpected; any other value is answered unchecked",
    "low_confidence": "answers are returned whatever their confidence",
    "anomalous_input": "inputs unlike the known ones go to the system unchecked",
    "injection_suspected": "inputs that try to take over the model go to the system unchecked",
    "inconsistent": "a stochastic system's first answer is trusted without a second sample",
    "empty_input": "empty inputs go to the system unchecked",
    "budget_exceeded": "a spent budget goes to the rule on unexpected",
}


def lint_table(policy: PolicyTable, *, store_disabled: bool, waived: Mapping[str, str] | None = None) -> LintResult:
    """Lint a compiled policy (what ``policy.lint()`` calls); ``store_disabled``: the policy has ``store=False``;
    ``waived``: the states waived with their reasons (default: the policy's own)."""
    waived = dict(policy.waived if waived is None else waived)
    findings: list[Finding] = []
    rules = policy.rules
    has_budget = policy.has_budget
    present = {rule.state.name for rule in rules}
    catch_all = any(getattr(rule.state, "catch_all", False) for rule in rules)

    for state in STATES:
        if state in present or state == "unexpected":
            continue
        if state in waived:
            findings.append(Finding("waived-state", "note", f"{state} is waived: {waived[state]}", state=state))
            continue
        if state == "budget_exceeded" and not has_budget:
            findings.append(Finding("state-cannot-happen", "note", "no max_attempts, deadline or budget is set, so budget_exceeded cannot happen", state=state))
            continue
        consequence = _WHAT_HAPPENS[state]
        if state == "timeout":
            consequence += "; a TimeoutError the system raises goes to " + ("the ProviderError() rule" if catch_all else "the rule on unexpected")
        findings.append(
            Finding("unhandled-state", "warning", f"no rule handles {state}: {consequence}; add fp.on(...) for it or waive it with a reason", state=state)
        )

    for j, rule in enumerate(rules, start=1):
        label = f"on({rule.state!r})"
        for i, earlier in enumerate(rules[: j - 1], start=1):
            if earlier.state.subsumes(rule.state):
                findings.append(
                    Finding(
                        "shadowed-rule", "error",
                        f"{label} can never fire: rule {i} {f'on({earlier.state!r})'} claims every call it would; remove it or put it first with a narrower state",
                        rule=j, state=rule.state.name,
                    )
                )
                break
        if rule.state.name == "budget_exceeded" and not has_budget:
            findings.append(
                Finding("rule-never-fires", "warning", f"{label} can never fire: the policy sets no max_attempts, deadline or budget", rule=j, state=rule.state.name)
            )
        if isinstance(rule.state, Timeout) and rule.state.after is None:
            findings.append(
                Finding("timeout-without-after", "note", "Timeout() without after= only claims timeouts the system raises; nothing cuts a slow call", rule=j, state="timeout")
            )
        _lint_chain(store_disabled, j, rule, label, findings)

    _lint_catch_all(policy, present, has_budget, findings)

    order = {s: k for k, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order[f.severity], f.rule or 0))
    return LintResult(policy=policy.name, findings=tuple(findings), handled=policy.handled_states(), waived=waived)


def _lint_chain(store_disabled: bool, number: int, rule: Any, label: str, findings: list[Finding]) -> None:
    state = rule.state
    for k, action in enumerate(rule.actions):
        if isinstance(action, Escalate) and store_disabled:
            findings.append(
                Finding(
                    "escalate-without-store", "error",
                    f"{action!r} cannot open a ticket: the policy has store=False; give it a store or use another action",
                    rule=number, state=state.name,
                )
            )
        if isinstance(action, (Retry, Fallback)):
            if isinstance(action, Retry) and state.stage == "input":
                findings.append(
                    Finding("retry-never-runs", "warning", f"{action!r} on {state.name} never runs: the input is refused before any call, and would be again", rule=number, state=state.name)
                )
            if state.name == "budget_exceeded":
                findings.append(
                    Finding("retry-never-runs", "warning", f"{action!r} on budget_exceeded never runs: the budget for more calls is spent", rule=number, state=state.name)
                )
            elif isinstance(action, Reask) and state.name in ("timeout", "provider_error"):
                findings.append(
                    Finding(
                        "reask-without-answer", "warning",
                        f"{action!r} on {state.name} never runs: no answer comes back to correct, so the re-ask is skipped; use fp.Retry",
                        rule=number, state=state.name,
                    )
                )
            continue
        rest = rule.actions[k + 1 :]
        if rest:
            soft = isinstance(action, Escalate) or (isinstance(action, ClarifyAction) and not isinstance(action.question, str))
            shown = ", ".join(map(repr, rest))
            if soft:
                findings.append(
                    Finding("unreachable-action", "note", f"{shown} after {action!r} runs only if {action.name} fails (no store, or its question function raised)", rule=number, state=state.name)
                )
            else:
                findings.append(
                    Finding("unreachable-action", "error", f"{shown} after {action!r} can never run: {action.name} ends the call", rule=number, state=state.name)
                )
        return
    if state.name == "unexpected":
        findings.append(
            Finding("chain-not-terminal", "warning", f"{label} ends in {rule.actions[-1]!r}; when it fails, the call abstains with 'no action of the policy resolved the call'", rule=number, state=state.name)
        )
    else:
        findings.append(
            Finding("chain-not-terminal", "warning", f"{label} ends in {rule.actions[-1]!r}; when that fails too, the call goes to the rule on unexpected; end the chain with an action that resolves the call", rule=number, state=state.name)
        )


def _lint_catch_all(policy: PolicyTable, present: set[str], has_budget: bool, findings: list[Finding]) -> None:
    """A bare ``ProviderError()`` claims every exception, so a bug in the code never reaches the rule on unexpected."""
    if policy.catch_all is None:
        return
    number = policy.catch_all + 1
    still = []
    if "invalid_output" not in present:
        still.append("None or NaN outputs (no InvalidOutput rule)")
    if has_budget and "budget_exceeded" not in present:
        still.append("a spent budget (no BudgetExceeded rule)")
    if any(f.code == "chain-not-terminal" and f.state != "unexpected" for f in findings):
        still.append("a chain of actions that fails to resolve the call")
    reach = f"only {' and '.join(still)} reach it" if still else "it can never fire"
    findings.append(
        Finding(
            "unexpected-unreachable", "warning",
            f"on(ProviderError()) claims every exception the system raises, so no exception reaches the rule on unexpected "
            f"({reach}): a bug in the code around the model (the fault suite's crash) is handled as a provider failure "
            "and the check cannot exercise unexpected; name the provider's exceptions instead, e.g. ProviderError(ConnectionError)",
            rule=number, state="unexpected",
        )
    )

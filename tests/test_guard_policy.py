"""Policy construction, parameter validation, lint, handled_states, the lint command, the bundled example."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.core import PolicyError, STATES
from failpath.cli import app

UNEXPECTED = fp.on(fp.Unexpected()).do(fp.Escalate(queue="ops"))


def test_policy_without_unexpected_rule_is_an_error():
    with pytest.raises(PolicyError, match="Unexpected"):
        fp.Policy("p", rules=[fp.on(fp.Timeout(after=1)).do(fp.Abstain("slow"))])


@pytest.mark.parametrize(
    "build, names",
    [
        (lambda: fp.Timeout(after=-1), ["Timeout", "-1"]),
        (lambda: fp.Timeout(after=float("nan")), ["Timeout", "nan"]),
        (lambda: fp.LowConfidence(below=1.5), ["LowConfidence", "1.5", "[0, 1]"]),
        (lambda: fp.LowConfidence(below=-0.1), ["LowConfidence", "-0.1"]),
        (lambda: fp.InvalidOutput(schema=dict), ["InvalidOutput", "dict", "pydantic"]),
        (lambda: fp.Retry(-1), ["Retry", "-1"]),
        (lambda: fp.Retry(0), ["Retry", "0"]),
        (lambda: fp.Retry(1, backoff=-2), ["Retry", "backoff", "-2"]),
        (lambda: fp.Inconsistent(samples=1), ["Inconsistent", "samples", "1"]),
        (lambda: fp.Inconsistent(samples=3, min_agreement=0), ["Inconsistent", "min_agreement"]),
        (lambda: fp.ProviderError("ConnectionError"), ["ProviderError", "exception class"]),
        (lambda: fp.ProviderError(KeyboardInterrupt), ["ProviderError", "KeyboardInterrupt", "propagate"]),
        (lambda: fp.AnomalousInput(reference=["a", "b"]), ["AnomalousInput", "2 inputs", "alpha"]),
        (lambda: fp.AnomalousInput(reference="abc"), ["AnomalousInput", "list"]),
        (lambda: fp.InjectionSuspected(phrases=["(unclosed"]), ["InjectionSuspected", "(unclosed"]),
        (lambda: fp.State("Too Long", lambda i, p: True), ["State", "Too Long", "snake_case"]),
        (lambda: fp.State("timeout", lambda i, p: True), ["State", "timeout", "built-in"]),
        (lambda: fp.State("x", lambda i, p: True, stage="later"), ["State", "stage"]),
        (lambda: fp.Escalate(queue=""), ["Escalate", "queue"]),
        (lambda: fp.Escalate("ops", deadline=0), ["Escalate", "deadline"]),
        (lambda: fp.Escalate("ops", default=object()), ["Escalate", "JSON"]),
        (lambda: fp.Raise("boom"), ["Raise", "boom"]),
        (lambda: fp.Budget(tokens=-5), ["Budget", "tokens", "-5"]),
        (lambda: fp.Budget(cost=1.0), ["Budget", "prices"]),
        (lambda: fp.Budget(tokens=10, prices={"m": (1, -1)}), ["Budget", "prices"]),
        (lambda: fp.Fallback("not callable"), ["Fallback", "not callable"]),
        (lambda: fp.on(fp.Timeout).do(fp.Abstain("x")), ["Timeout", "build"]),
        (lambda: fp.on(fp.Timeout(after=1)).do(), ["Timeout", "at least one action"]),
        (lambda: fp.on(fp.Timeout(after=1)).do(fp.Retry), ["Retry", "class"]),
        (lambda: fp.on(fp.Timeout(after=1)).do("retry"), ["'retry'", "not an action"]),
        (lambda: fp.Policy("p", rules=[fp.on(fp.Timeout(after=1)), UNEXPECTED]), ["rule 1", "Timeout", ".do"]),
        (lambda: fp.Policy("p", rules=[UNEXPECTED], max_attempts=0), ["max_attempts"]),
        (lambda: fp.Policy("p", rules=[UNEXPECTED], deadline=-1), ["deadline"]),
        (lambda: fp.Policy("p", rules=[UNEXPECTED], exporters=[object()]), ["exporter", "export"]),
        (lambda: fp.Policy("p", rules=[UNEXPECTED], store=42), ["store=42"]),
        (lambda: fp.Policy("p", rules=[UNEXPECTED], waive={"nonsense": "why"}), ["nonsense", "catalog"]),
        (lambda: fp.Policy("p", rules=[UNEXPECTED], waive={"timeout": ""}), ["timeout", "why"]),
        (lambda: fp.Policy("", rules=[UNEXPECTED]), ["name"]),
    ],
)
def test_wrong_parameters_fail_at_construction_naming_the_value(build, names):
    with pytest.raises(PolicyError) as info:
        build()
    for name in names:
        assert name in str(info.value), (name, str(info.value))


def test_policy_errors_are_config_errors():
    assert issubclass(PolicyError, fp.ConfigError)


def test_clarify_outcome_doubles_as_the_action_and_still_matches():
    policy = fp.Policy(
        "p",
        rules=[fp.on(fp.LowConfidence(below=0.9)).do(fp.Clarify("Which street?")), fp.on(fp.Unexpected()).do(fp.Abstain("?"))],
        store=False,
    )
    action = policy.rules[0].actions[0]
    assert isinstance(action, fp.guard.ClarifyAction) and action.question == "Which street?"
    outcome = policy.wrap(lambda t: fp.Prediction("x", 0.1))("a")
    match outcome:
        case fp.Clarify(question=q):
            assert q == "Which street?"
        case _:
            pytest.fail(f"not a Clarify: {outcome!r}")


def test_handled_states_lists_actions_per_state():
    policy = fp.Policy(
        "p",
        rules=[
            fp.on(fp.ProviderError(ConnectionError)).do(fp.Retry(2), fp.Escalate("ops")),
            fp.on(fp.ProviderError()).do(fp.Abstain("down")),
            fp.on(fp.LowConfidence(below=0.8)).do(fp.Clarify("?")),
            UNEXPECTED,
        ],
    )
    assert policy.handled_states() == {
        "provider_error": ("retry", "escalate", "abstain"),
        "low_confidence": ("clarify",),
        "unexpected": ("escalate",),
    }


# --------------------------------------------------------------------------- lint


def codes(result, code):
    return [f for f in result.findings if f.code == code]


def test_lint_lists_unhandled_catalog_states():
    result = fp.Policy("p", rules=[fp.on(fp.Timeout(after=1)).do(fp.Abstain("slow")), UNEXPECTED]).lint()
    assert not result.ok
    unhandled = set(result.unhandled)
    assert unhandled == set(STATES) - {"timeout", "unexpected", "budget_exceeded"}
    assert any(f.state == "budget_exceeded" and f.severity == "note" for f in result.findings)  # no budget: cannot happen


def test_lint_finds_shadowed_rules_and_unreachable_actions():
    policy = fp.Policy(
        "p",
        rules=[
            fp.on(fp.LowConfidence(below=0.9)).do(fp.Clarify("?")),
            fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("very low")),  # shadowed by rule 1
            fp.on(fp.ProviderError()).do(fp.Abstain("down"), fp.Default(None)),  # Default never runs
            fp.on(fp.ProviderError(ConnectionError)).do(fp.Retry(1)),  # shadowed by the catch-all, and not terminal
            fp.on(fp.EmptyInput()).do(fp.Retry(1), fp.Abstain("empty")),  # retry never runs on input
            UNEXPECTED,
        ],
    )
    result = policy.lint()
    shadowed = codes(result, "shadowed-rule")
    assert [(f.rule, f.severity) for f in shadowed] == [(2, "error"), (4, "error")]
    assert "rule 1" in shadowed[0].message
    unreachable = codes(result, "unreachable-action")
    assert [f.rule for f in unreachable] == [3] and "Default" in unreachable[0].message
    assert [f.rule for f in codes(result, "chain-not-terminal")] == [4]
    assert [f.rule for f in codes(result, "retry-never-runs")] == [5]
    assert not result.ok and result.errors


def test_lint_escalate_without_store_and_budget_rules():
    policy = fp.Policy(
        "p",
        rules=[fp.on(fp.BudgetExceeded()).do(fp.Retry(1), fp.Abstain("spent")), UNEXPECTED],
        store=False,
    )
    result = policy.lint()
    assert codes(result, "escalate-without-store")[0].rule == 2
    assert codes(result, "rule-never-fires")[0].rule == 1  # no budget is set
    assert codes(result, "retry-never-runs")[0].rule == 1


def test_lint_waived_states_are_notes_and_clean_policy_is_ok():
    from failpath.examples.policy import policy

    result = policy.lint()
    assert result.ok, str(result)
    assert [f.code for f in result.findings] == ["waived-state"]
    assert result.waived == {"inconsistent": policy.waived["inconsistent"]}
    assert result.to_dict()["ok"] is True


def test_lint_result_prints_itself_with_rich():
    from rich.console import Console

    result = fp.Policy("p", rules=[fp.on(fp.Timeout(after=1)).do(fp.Retry(1)), UNEXPECTED]).lint()
    console = Console(record=True, width=120)
    console.print(result)
    text = console.export_text()
    assert "unhandled" in text and "chain-not-terminal" in text and "timeout" in text
    assert "chain-not-terminal" in str(result)


def test_waiving_a_handled_state_is_an_error():
    with pytest.raises(PolicyError, match="handled"):
        fp.Policy("p", rules=[fp.on(fp.Timeout(after=1)).do(fp.Abstain("x")), UNEXPECTED], waive={"timeout": "it never happens here"})


# --------------------------------------------------------------------------- the lint command


def test_cli_lint_exit_codes(tmp_path, monkeypatch):
    (tmp_path / "mypolicies.py").write_text(
        textwrap.dedent(
            """
            import failpath as fp
            partial = fp.Policy("partial", rules=[fp.on(fp.Unexpected()).do(fp.Abstain("x"))])
            guarded = partial.wrap(lambda text: text)
            not_a_policy = 3
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner()
    clean = runner.invoke(app, ["lint", "failpath.examples.policy:policy"])
    assert clean.exit_code == 0, clean.output
    assert "address-parser" in clean.output
    problems = runner.invoke(app, ["lint", "mypolicies:partial"])
    assert problems.exit_code == 1 and "unhandled" in problems.output
    assert runner.invoke(app, ["lint", "mypolicies:guarded"]).exit_code == 1  # a guarded system's policy
    as_json = runner.invoke(app, ["lint", "--json", "mypolicies:partial"])
    data = json.loads(as_json.output)
    assert as_json.exit_code == 1 and data["ok"] is False and data["findings"]
    for reference, message in [
        ("nosuchmodule:policy", "no module named 'nosuchmodule'"),
        ("mypolicies:missing", "has no attribute 'missing'"),
        ("mypolicies:not_a_policy", "not a failpath Policy"),
        ("mypolicies", "module:attribute"),
    ]:
        result = runner.invoke(app, ["lint", reference])
        assert result.exit_code == 2, (reference, result.output)
        assert message in result.output, (reference, result.output)


def test_cli_lint_runs_as_a_command():
    done = subprocess.run(
        [sys.executable, "-c", "from failpath.cli import main; main()", "lint", "failpath.examples.policy:policy"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_a_collected_policy_closes_the_store_it_opened_and_leaves_a_store_passed_in_alone(tmp_path):
    # Flushing a store passed in from a garbage-collection finalizer could wait for a lock the collecting
    # thread holds; the store flushes itself when it is closed or dropped.
    class Spy:
        flushed = 0

        def write_trace(self, trace):
            pass

        def create_ticket(self, ticket):
            return "t"

        def flush(self, timeout=None):
            Spy.flushed += 1

    passed_in = fp.Policy("spy", rules=[fp.on(fp.Unexpected()).do(fp.Abstain("x"))], store=Spy())
    passed_in.trace_store.get()
    passed_in._finalizer()
    assert Spy.flushed == 0
    assert passed_in.close() == 0 and Spy.flushed == 1  # an explicit close still flushes it
    owned = fp.Policy("own", rules=[fp.on(fp.Unexpected()).do(fp.Abstain("x"))], store=tmp_path / "own.db")
    opened = owned.trace_store.get()
    owned._finalizer()
    assert opened.closed

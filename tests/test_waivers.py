"""One place for waivers: ``[waive]`` in failpath.toml (``waive=`` in Python) is honoured by both
``failpath lint`` and ``failpath check``; ``[budgets.accepted]``, ``accepted=`` and ``Policy(waive=)`` still
work. A waiver's reason is a sentence of at least ``MIN_REASON_LENGTH`` characters, wherever it is written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.check.config import check_kwargs, load_config
from failpath.cli import app
from failpath.core import MIN_REASON_LENGTH, ConfigError, PolicyError, reason_problem
from ci_project import write_project

UNEXPECTED = fp.on(fp.Unexpected()).do(fp.Abstain("x"))

WAIVE = """
[waive]
timeout = "The toy system is a local function that never waits on anything."
fault = "A second reason, long enough, for leaving the fault suite out."
"""


def test_the_reason_needs_ten_characters_everywhere(tmp_path):
    assert MIN_REASON_LENGTH == 10
    assert reason_problem("0123456789") is None
    assert "at least 10 characters" in reason_problem("  012345678  ")
    assert "as text" in reason_problem(3)
    with pytest.raises(PolicyError, match="at least 10 characters"):
        fp.Policy("p", rules=[UNEXPECTED], waive={"timeout": "never"})
    assert fp.Policy("p", rules=[UNEXPECTED], waive={"timeout": " it never waits "}).waived == {"timeout": "it never waits"}
    with pytest.raises(ConfigError, match="accepted state 'timeout' needs a written reason of at least 10"):
        fp.check(lambda x: x, [fp.Case("a", "x", "x")], accepted={"timeout": "short"}, store=tmp_path / "s.db", quiet=True)


def test_policy_lint_takes_waivers_declared_outside_the_policy():
    policy = fp.Policy("p", rules=[fp.on(fp.Timeout(after=1)).do(fp.Abstain("slow")), UNEXPECTED])
    plain = policy.lint()
    assert any(f.code == "unhandled-state" and f.state == "inconsistent" for f in plain.findings)
    waived = policy.lint(waive={
        "inconsistent": "The parser is deterministic: two samples always agree.",
        "timeout": "Handled by a rule, so this waiver is ignored.",
        "fault": "Families are the check's, not lint's.",
    })
    assert waived.waived["inconsistent"].startswith("The parser is deterministic")
    assert "timeout" not in waived.waived
    assert not any(f.state == "inconsistent" and f.code == "unhandled-state" for f in waived.findings)
    with pytest.raises(PolicyError, match="at least 10 characters"):
        policy.lint(waive={"inconsistent": "no"})


def test_one_waive_table_serves_check_and_lint(tmp_path, monkeypatch):
    config = write_project(tmp_path)
    text = config.read_text(encoding="utf-8").replace("[budgets.accepted]", "[waive]")  # the new spelling
    config.write_text(text, encoding="utf-8")
    kwargs = check_kwargs(load_config(config))
    assert kwargs["waive"]["budget_exceeded"].startswith("No deadline") and kwargs["accepted"] == {}
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(config.parent.parent))
    runner = CliRunner()
    result = runner.invoke(app, ["lint"])  # the policy of ./failpath.toml, with its waivers
    assert "states waived in failpath.toml: anomalous_input, budget_exceeded, empty_input, inconsistent, injection_suspected" in result.output
    # Every state is handled or waived (the toy policy's one finding is its Escalate without a store).
    assert "unhandled-state" not in result.output and "escalate-without-store" in result.output, result.output
    by_name = runner.invoke(app, ["lint", "--json", "toyproj:policy"])  # the same policy, named: the same waivers
    data = json.loads(by_name.output)
    assert "anomalous_input" in data["waived"] and not any(f["code"] == "unhandled-state" for f in data["findings"])
    other = runner.invoke(app, ["lint", "toyproj:partial"])  # another policy than the file's: its waivers do not apply
    assert "states waived" not in other.output and "unhandled-state: no rule handles anomalous_input" in other.output
    explicit = runner.invoke(app, ["lint", "toyproj:partial", "--config", "failpath.toml"])
    assert "states waived in failpath.toml" in explicit.output
    result = fp.check(**{**kwargs, "store": tmp_path / "s.db", "quiet": True, "worst_cases": 0})
    waived = {s.state: s.accepted for s in result.states if s.accepted}
    assert waived["inconsistent"].startswith("The system is deterministic")


def test_the_config_waives_families_and_checks_each_name(tmp_path):
    config = write_project(tmp_path)
    text = config.read_text(encoding="utf-8").replace('suites = ["toy-hostile", "toy-realistic", "toy-fault"]', 'suites = ["toy-hostile", "toy-realistic"]')
    config.write_text(text + WAIVE, encoding="utf-8")
    kwargs = check_kwargs(load_config(config))
    assert kwargs["waive"]["fault"].startswith("A second reason")
    result = fp.check(**{**kwargs, "store": tmp_path / "s.db", "quiet": True, "worst_cases": 0})
    families = next(c for c in result.verdict.reasons if c.name == "families_run")
    assert families.passed and "fault waived: A second reason" in families.detail
    config.write_text(text + '\n[waive]\nfaults = "A typo in the family name, long enough."\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"waive\.faults.*neither a catalog failure state .* nor a chaos family"):
        load_config(config)
    config.write_text(text + '\n[waive]\nfault = "short"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"waive\.fault = 'short': a waiver needs a written reason of at least 10 characters"):
        load_config(config)


def test_lint_without_a_policy_anywhere_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["lint"])
    assert result.exit_code == 2 and "name the policy to lint as MODULE:POLICY" in result.output

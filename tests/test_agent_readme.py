"""The README's Agents section runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import failpath as fp

README = Path(__file__).resolve().parent.parent / "README.md"


def snippets() -> list[str]:
    section = README.read_text(encoding="utf-8").split("<!-- section:agents -->", 1)[1].split("<!-- /section:agents -->", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_agent_snippet_runs_and_its_trace_shows_each_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default store is ./.failpath/failpath.db
    namespace: dict = {}
    exec(compile(snippets()[0], "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    outcome = namespace["outcome"]
    assert isinstance(outcome, fp.Answered) and outcome.value.startswith("Order A17 totals {")
    policy = namespace["policy"]
    policy.flush()
    trace = policy.trace_store.get().get_trace(outcome.trace_id)
    assert trace.states == ("invalid_tool_args",) and trace.actions == ("feed_back",)
    assert [a.action for a in trace.attempts] == ["model", "tool:lookup_order", "model", "tool:lookup_order", "model"]
    lint = namespace["agent"].lint()
    assert not lint.errors and "budget_exceeded" not in lint.unhandled
    policy.close()


def test_traces_show_prints_a_run_as_a_timeline(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from failpath.cli import app

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippets()[0], "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    namespace["policy"].close()
    shown = CliRunner().invoke(app, ["traces", "show", namespace["outcome"].trace_id], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "run timeline" in shown.output
    lines = [line for line in shown.output.splitlines() if "lookup_order(" in line]
    assert len(lines) == 2 and "invalid_tool_a" in lines[0] and "feed_back" in lines[0]
    assert "order_id" in lines[1]


def test_the_approval_snippet_suspends_the_run_and_continues_it_once_approved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = snippets()
    approval = next(block for block in code if "refund_step" in block)
    namespace: dict = {}
    exec(compile(code[0], "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    exec(compile(approval, "README.md", "exec"), namespace)  # noqa: S102
    held, outcome = namespace["held"], namespace["outcome"]
    assert isinstance(held, fp.Escalated) and held.state == "risky_tool_call"
    assert outcome.value == "refunded 400.00 on A17"
    namespace["policy"].close()

"""Comparing two check runs: per criterion and per suite, the change with an interval paired by case;
exit 1 only for a regression beyond the intervals."""

from __future__ import annotations

import json
import random

import pytest
from ci_project import failpath, write_project
from markdown_it import MarkdownIt

from failpath.core import ConfigError
from failpath.report.compare import compare_runs, render_markdown, render_terminal
from failpath.store import open_store


def _doc(run_id: str, ship: bool = True, reasons=None, seed: int = 0) -> dict:
    reasons = reasons or [{"name": "silent_failure_bound", "passed": ship, "figure": "x"}]
    return {"schema": "failpath.check/1", "run_id": run_id, "seed": seed, "verdict": {"ship": ship, "reasons": reasons}}


def _rows(difficulty: dict[str, float], rng: random.Random, suites=("hostile", "realistic"), per_suite: int = 4) -> list[dict]:
    """Request rows: each case's requests fail silently with that case's own probability (cases differ)."""
    rows = []
    for case, p in difficulty.items():
        for suite in (*suites, "clean"):
            for _ in range(1 if suite == "clean" else per_suite):
                silent = rng.random() < p
                rows.append({"case_id": case, "suite": suite, "split": "evaluation", "outcome": "answered",
                             "silent_failure": silent, "right_without_policy": not silent, "input_preview": f"input {case}"})
    return rows


def _difficulty(n: int, rng: random.Random) -> dict[str, float]:
    return {f"c{i:03d}": rng.betavariate(0.5, 4.0) for i in range(n)}


def test_a_run_compared_with_itself_changes_nothing():
    rng = random.Random(1)
    rows = _rows(_difficulty(40, rng), rng)
    comparison = compare_runs(_doc("a"), rows, _doc("a"), rows)
    assert not comparison.regressed and comparison.exit_code == 0
    assert all(m.change == 0 and m.low == m.high == 0 for m in comparison.metrics)
    assert comparison.worse == comparison.better == ()


def test_a_real_regression_is_caught_and_named():
    rng = random.Random(2)
    difficulty = _difficulty(150, rng)
    before = _rows(difficulty, rng)
    after = _rows({case: min(1.0, p + 0.25) for case, p in difficulty.items()}, rng)
    comparison = compare_runs(_doc("a"), before, _doc("b", ship=False), after)
    assert comparison.regressed and comparison.exit_code == 1
    silent = {m.suite: m for m in comparison.metrics if m.metric == "silent_failure_rate"}
    assert silent["chaos"].regressed and silent["chaos"].low > 0 and silent["chaos"].low <= silent["chaos"].change
    assert comparison.criteria[0].change == "regressed"
    assert comparison.worse and all(c.b_silent > c.a_silent for c in comparison.worse)
    flipped = compare_runs(_doc("b", ship=False), after, _doc("a"), before)
    assert not flipped.regressed and {m.suite for m in flipped.metrics if m.improved} >= {"chaos"}
    assert flipped.criteria[0].change == "improved"


def test_noise_between_two_runs_of_the_same_system_is_rarely_a_regression():
    """Runs of one system whose cases differ in difficulty: the paired, case-level intervals (jointly at
    95%) call a regression in at most a few of 40 repetitions; request-level intervals would cry wolf."""
    flagged = 0
    for seed in range(40):
        rng = random.Random(seed)
        difficulty = _difficulty(60, rng)
        comparison = compare_runs(_doc("a"), _rows(difficulty, rng), _doc("b"), _rows(difficulty, rng), n_resamples=1000)
        flagged += comparison.regressed
    assert flagged <= 4, flagged


def test_a_small_change_in_a_few_cases_is_within_noise():
    rng = random.Random(3)
    difficulty = {f"c{i:03d}": 0.0 for i in range(100)}
    before = _rows(difficulty, rng)
    after = [dict(r) for r in before]
    for row in after:
        if row["case_id"] == "c007" and row["suite"] == "hostile":
            row["silent_failure"] = True
    comparison = compare_runs(_doc("a"), before, _doc("b"), after)
    assert not comparison.regressed
    hostile = next(m for m in comparison.metrics if m.suite == "hostile" and m.metric == "silent_failure_rate")
    assert hostile.change > 0 and hostile.low <= 0 and not hostile.regressed
    assert [c.case_id for c in comparison.worse] == ["c007"] and comparison.worse[0].b_silent == 4


def test_runs_pair_on_the_cases_they_share_and_say_so():
    rng = random.Random(4)
    a = _rows({"c1": 0.1, "c2": 0.1, "c3": 0.1}, rng)
    b = _rows({"c2": 0.1, "c3": 0.1, "c4": 0.1}, rng)
    comparison = compare_runs(_doc("a"), a, _doc("b", seed=5), b)
    assert comparison.n_cases == 2 and comparison.only_a == 1 and comparison.only_b == 1
    assert any("2 cases are in both runs" in note for note in comparison.notes)
    assert any("different seeds" in note for note in comparison.notes)
    with pytest.raises(ConfigError, match="share no case id"):
        compare_runs(_doc("a"), a, _doc("b"), _rows({"x": 0.1}, rng))


def test_the_markdown_renders_the_criteria_and_figures_tables():
    rng = random.Random(5)
    difficulty = _difficulty(80, rng)
    comparison = compare_runs(_doc("a"), _rows(difficulty, rng), _doc("b"), _rows({c: p + 0.3 for c, p in difficulty.items()}, rng))
    text = render_markdown(comparison)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    assert sum(t.type == "table_open" for t in tokens) == 4  # criteria, figures, worse cases, better cases
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<h3>❌ Compared with <code>a</code>: REGRESSED" in html and "<strong>regressed</strong>" in html
    assert json.loads(json.dumps(comparison.to_dict()))["regressed"] is True
    assert render_terminal(comparison) is not None


# --------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    write_project(folder)
    good = failpath(folder, "check", "-q", "--no-html", "--json", "good.json")
    assert good.returncode == 0, good.stderr
    write_project(folder, policy="partial")
    bad = failpath(folder, "check", "-q", "--no-html", "--json", "bad.json")
    assert bad.returncode == 1, bad.stderr
    ids = [json.loads((folder / name).read_text())["run_id"] for name in ("good.json", "bad.json")]
    return folder, ids[0], ids[1]


def test_compare_exits_1_on_a_regression_and_0_otherwise(two_runs):
    folder, good, bad = two_runs
    worse = failpath(folder, "compare", good, bad, "--store", "store.db", "-o", "c.md", "-o", "c.json")
    assert worse.returncode == 1, worse.stderr
    assert "REGRESSED beyond the intervals" in worse.stdout and "toy-hostile" in worse.stdout
    document = json.loads((folder / "c.json").read_text())
    assert document["run_a"] == good and document["run_b"] == bad and document["regressed"] is True
    assert "Compared with" in (folder / "c.md").read_text()
    better = failpath(folder, "compare", bad, good, "--store", "store.db")
    assert better.returncode == 0 and "no regression" in better.stdout
    latest = failpath(folder, "compare", bad, "--store", "store.db")  # RUN_B: the latest finished run
    assert latest.returncode == 0 and f"Run {bad} compared with {bad}" in latest.stdout


def test_compare_usage_errors_exit_2(two_runs):
    folder, good, _ = two_runs
    unknown = failpath(folder, "compare", "chk-nope", good, "--store", "store.db")
    assert unknown.returncode == 2 and "no run 'chk-nope'" in unknown.stderr
    bad_output = failpath(folder, "compare", good, good, "--store", "store.db", "-o", "c.csv")
    assert bad_output.returncode == 2 and ".md (Markdown) or .json" in bad_output.stderr


def test_check_with_a_baseline_prints_and_writes_the_comparison(two_runs):
    folder, good, bad = two_runs
    with open_store(folder / "store.db") as store:
        before = len(store.list_runs(kind="check"))
    refused = failpath(folder, "check", "-q", "--no-html", "--baseline", "chk-nope")
    assert refused.returncode == 2 and "no run 'chk-nope'" in refused.stderr
    with open_store(folder / "store.db") as store:
        assert len(store.list_runs(kind="check")) == before  # refused before running
    done = failpath(folder, "check", "-q", "--no-html", "--baseline", bad, "-o", "summary.md")
    assert done.returncode == 1  # the config is the partial policy again: DEMO, and no better than `bad`
    assert f"compared with {bad}" in done.stdout
    summary = (folder / "summary.md").read_text()
    assert summary.index("READY TO DEMO") < summary.index(f"Compared with `{bad}`")
    write_project(folder)  # the full policy: READY TO SHIP, and better than the baseline
    shipped = failpath(folder, "check", "-q", "--no-html", "--baseline", bad)
    assert shipped.returncode == 0, shipped.stdout[-2000:]
    same = failpath(folder, "check", "-q", "--no-html", "--baseline", good)  # the full policy again: as good as `good`
    assert same.returncode == 0 and "no regression" in same.stdout

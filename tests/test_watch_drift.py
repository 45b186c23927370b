"""Drift: production traces of a real guarded system against the baseline of the run it was calibrated on.

The system is the bundled address parser (usaddress) under a policy of its own, fed addresses generated
by Faker: clean ones like those it was calibrated on (no alarm), and shifted ones typed the way rushed
users type (lower case, no commas, extra words): an alarm.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import failpath as fp
from failpath.cli import app
from failpath.core import ConfigError
from failpath.watch.driftcheck import (
    BaselineMissing,
    DriftThresholds,
    NoTraces,
    ProductionSample,
    compare,
    drift,
)

pytest.importorskip("usaddress")
pytest.importorskip("faker")

from failpath.examples.addresses import AddressParser, generate_addresses  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from watch_systems import address_policy  # noqa: E402

runner = CliRunner()
POLICY = "addresses"


def shifted(text: str, rng: random.Random) -> str:
    """An address as a rushed user types it: lower case, no commas, a stray word."""
    words = text.replace(",", "").lower().split()
    words.insert(rng.randrange(len(words) + 1), rng.choice(["pls", "asap", "nr", "apt#", "c/o"]))
    return " ".join(words)


def baseline_of(traces: list[fp.Trace]) -> dict:
    """The baseline block a check run stores, computed from the traces of its clean pass."""
    n = len(traces)
    kinds = Counter(t.outcome for t in traces)
    states: Counter[str] = Counter()
    for t in traces:
        states.update(set(t.states) | ({t.state} if t.state else set()))
    confidences = [t.attempts[0].confidence for t in traces if t.attempts and t.attempts[0].action == "call"]
    return {
        "policy": POLICY,
        "n": n,
        "coverage": kinds["answered"] / n,
        "confidence_sample": [c for c in confidences if c is not None],
        "state_rates": {s: states[s] / n for s in sorted(set(fp.STATES) | set(states))},
        "outcome_rates": {k: kinds[k] / n for k in fp.core.OUTCOME_KINDS},
    }


@pytest.fixture(scope="module")
def reference():
    return [case.input for case in generate_addresses(300, seed=10_000)]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, reference):
    """A store with a finished check run whose baseline comes from 300 clean guarded calls."""
    path = tmp_path_factory.mktemp("drift") / "failpath.db"
    parser = AddressParser()
    # The calibration pass has a store of its own, so its escalations open tickets as in production.
    with address_policy(reference, store=path.with_name("calibration.db")) as offline:
        guarded = offline.wrap(parser)
        traces = [guarded.call_traced(case.input)[1] for case in generate_addresses(300, seed=1)]
    with fp.open_store(path) as store:
        store.create_run("chk-calibration", kind="check", config={"policy": POLICY})
        store.finish_run("chk-calibration", {"baseline": baseline_of(traces)})
        store.create_run("chk-unfinished", kind="check", config={})
    return path


def production(path, reference, inputs) -> float:
    """Run ``inputs`` through the guarded parser writing traces to ``path``; returns the start time."""
    start = time.time()
    with address_policy(reference, store=path) as policy:
        guarded = policy.wrap(AddressParser())
        for text in inputs:
            guarded(text)
    return start


@pytest.fixture(scope="module")
def windows(calibrated, reference):
    """Clean production traffic, then shifted traffic; the start time of each."""
    rng = random.Random(3)
    clean_start = production(calibrated, reference, [c.input for c in generate_addresses(400, seed=2)])
    time.sleep(0.02)
    shifted_start = production(
        calibrated, reference, [shifted(c.input, rng) if rng.random() < 0.6 else c.input for c in generate_addresses(400, seed=4)]
    )
    return clean_start, shifted_start


def test_clean_production_raises_no_alarm(calibrated, windows):
    clean_start, shifted_start = windows
    report = drift(calibrated, "chk-calibration", since=clean_start, until=shifted_start)
    assert report.n == 400 and report.baseline_n == 300 and report.policy == POLICY
    assert not report.alarm, [(f.name, f.change, f.p_adjusted) for f in report.figures]
    assert report.figure("confidence").tested and report.figure("coverage").tested
    result = runner.invoke(
        app, ["drift", "--baseline", "chk-calibration", "--store", str(calibrated), "--since", str_time(clean_start),
              "--until", str_time(shifted_start), "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["alarm"] is False and data["moved"] == [] and data["n"] == 400


def test_shifted_production_raises_the_alarm(calibrated, windows):
    _, shifted_start = windows
    report = drift(calibrated, "chk-calibration", since=shifted_start)
    assert report.alarm
    moved = {f.name for f in report.moved}
    assert {"coverage", "state:anomalous_input"} <= moved
    coverage = report.figure("coverage")
    assert coverage.change < -coverage.min_change and coverage.p_adjusted < 0.01
    anomalous = report.figure("state:anomalous_input")
    assert anomalous.production > 0.3 and anomalous.baseline < 0.05
    result = runner.invoke(app, ["drift", "--baseline", "chk-calib", "--store", str(calibrated), "--since", str_time(shifted_start)])
    assert result.exit_code == 1, result.output
    assert "MOVED" in result.stdout and "DRIFT" in result.stdout and "state:anomalous_input" in result.stdout


def test_the_window_decides_which_traces_count(calibrated, windows):
    clean_start, shifted_start = windows
    both = drift(calibrated, "chk-calibration", since=clean_start)
    assert both.n == 800
    assert drift(calibrated, "chk-calibration", since=clean_start, until=shifted_start).n == 400


def str_time(seconds: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--baseline", "chk-nope"], "no run 'chk-nope'"),
        (["--baseline", "chk-unfinished"], "has not finished"),
        (["--baseline", "chk-calibration", "--policy", "someone-else"], "no trace of policy 'someone-else'"),
        (["--baseline", "chk-calibration", "--since", "last tuesday"], "--since"),
        (["--baseline", "chk-calibration", "--alpha", "2"], "alpha must be in (0, 1)"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(calibrated, windows, args, needle):
    result = runner.invoke(app, ["drift", "--store", str(calibrated), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr


def test_python_errors_are_typed(calibrated):
    with pytest.raises(BaselineMissing):
        drift(calibrated, "chk-nope")
    with pytest.raises(NoTraces):
        drift(calibrated, "chk-calibration", since="1s", until="1s")  # an empty window
    with fp.open_store(calibrated) as store:
        store.create_run("chk-broken", kind="check", config={})
        store.finish_run("chk-broken", {"baseline": {"policy": POLICY, "n": 0}})
    with pytest.raises(BaselineMissing, match="lacks coverage"):
        drift(calibrated, "chk-broken")


# --------------------------------------------------------------------------- the statistics alone


BASE = {
    "policy": "p",
    "n": 1000,
    "coverage": 0.80,
    "confidence_sample": [i / 1000 for i in range(1000)],
    "state_rates": {"low_confidence": 0.15, "anomalous_input": 0.01},
    "outcome_rates": {"answered": 0.80, "escalated": 0.20},
}


def sample(n: int, answered: int, states: dict, confidences, outcomes=None) -> ProductionSample:
    return ProductionSample(n=n, answered=answered, outcome_counts=outcomes or {"answered": answered, "escalated": n - answered},
                            state_counts=states, confidences=confidences)


def test_a_tiny_move_on_a_huge_sample_is_significant_but_no_alarm():
    n = 1_000_000
    prod = sample(n, 790_000, {"low_confidence": 160_000, "anomalous_input": 12_000}, [i / n for i in range(0, n, 50)])
    report = compare({**BASE, "n": 200_000}, prod)
    coverage = report.figure("coverage")
    assert coverage.p_adjusted < 1e-3 and not coverage.moved  # one point is below the 5-point minimum
    assert not report.alarm


def test_the_calibrated_coverage_is_uncertain_when_the_check_run_was_small():
    prod = sample(2000, 1720, {"low_confidence": 280}, BASE["confidence_sample"])  # 86% answered, +6 points
    assert compare({**BASE, "n": 100_000}, prod).figure("coverage").moved
    small = compare({**BASE, "n": 100}, prod).figure("coverage")
    assert small.p_value == 1.0 and not small.moved  # 86% is within what 100 calls at 80% could show


def test_a_big_move_on_a_tiny_sample_is_not_significant():
    prod = sample(8, 5, {"low_confidence": 3}, [0.2, 0.3, 0.5, 0.9, 0.95, 0.1, 0.4, 0.6])
    report = compare(BASE, prod)
    assert report.figure("coverage").change < -0.1 and not report.figure("coverage").moved


def test_a_shift_of_confidence_is_caught_by_ks():
    shifted_conf = [min(1.0, 0.3 + i / 1500) for i in range(1000)]
    report = compare(BASE, sample(1000, 800, {"low_confidence": 150, "anomalous_input": 10}, shifted_conf))
    figure = report.figure("confidence")
    assert figure.moved and figure.change >= 0.25 and report.moved == (figure,)


def test_a_state_never_seen_in_the_baseline_is_tested():
    report = compare(BASE, sample(1000, 800, {"low_confidence": 150, "anomalous_input": 10, "timeout": 90}, BASE["confidence_sample"]))
    timeout = report.figure("state:timeout")
    assert timeout.baseline == 0 and timeout.moved


@settings(max_examples=60, deadline=None)
@given(
    answered=st.integers(0, 500),
    low=st.integers(0, 500),
    anomalous=st.integers(0, 500),
    alpha=st.sampled_from([0.001, 0.01, 0.05]),
)
def test_holm_and_thresholds_hold_for_any_counts(answered, low, anomalous, alpha):
    thresholds = DriftThresholds(alpha=alpha)
    report = compare(BASE, sample(500, answered, {"low_confidence": low, "anomalous_input": anomalous}, [0.5] * 10), thresholds=thresholds)
    tested = [f for f in report.figures if f.tested]
    for f in tested:
        assert f.p_value <= f.p_adjusted <= 1.0
        assert f.moved == (f.p_adjusted < alpha and abs(f.change) >= f.min_change)
    ordered = sorted(tested, key=lambda f: f.p_value)
    assert [f.p_adjusted for f in ordered] == sorted(f.p_adjusted for f in ordered)
    assert report.alarm == any(f.moved for f in report.figures)


def test_thresholds_are_validated():
    with pytest.raises(ConfigError, match="alpha"):
        DriftThresholds(alpha=0)
    with pytest.raises(ConfigError, match="min_rate_change"):
        DriftThresholds(min_rate_change=-0.1)


# --------------------------------------------------------------------------- with the real check


@pytest.mark.slow
def test_drift_against_a_real_check_run(tmp_path, reference):
    path = tmp_path / "failpath.db"
    result = fp.check(
        AddressParser(), generate_addresses(240, seed=1), policy=address_policy(reference, store=False),
        judge="token_labels", suites=[], store=path, quiet=True,
    )
    with fp.open_store(path) as store:
        baseline = store.get_run(result.run_id)["summary"]["baseline"]
    assert baseline["policy"] == POLICY and baseline["n"] > 0
    rng = random.Random(5)
    clean_start = production(path, reference, [c.input for c in generate_addresses(300, seed=2)])
    shifted_start = production(path, reference, [shifted(c.input, rng) for c in generate_addresses(300, seed=4)])
    assert not drift(path, result.run_id, since=clean_start, until=shifted_start).alarm
    cli = runner.invoke(app, ["drift", "--baseline", result.run_id, "--store", str(path), "--since", str_time(shifted_start), "--json"])
    assert cli.exit_code == 1, cli.output
    assert "state:anomalous_input" in json.loads(cli.stdout)["moved"]

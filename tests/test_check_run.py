"""fp.check end to end on the toy world: every figure against what the toy system is known to do."""

import asyncio
import threading
import json

import pytest

import failpath as fp
from failpath import stats
from failpath.check import CheckResult
from failpath.check.result import SCHEMA
from failpath.core import Case, ConfigError, DatasetError, Prediction
from failpath.store import open_store
from test_check_toy import (
    ACCEPTED,
    FULL_POLICY,
    HOSTILE,
    REALISTIC,
    ToySystem,
    index_of,
    make_cases,
    partial_policy,
    toy_kwargs,
)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """One check of the toy world under the full policy, and its stored rows."""
    tmp = tmp_path_factory.mktemp("ship")
    result = fp.check(**toy_kwargs(tmp))
    with open_store(tmp / "store.db") as store:
        rows = {r["key"]: r["data"] for r in store.results(result.run_id)}
        run = store.get_run(result.run_id)
    return result, rows, run


def group(result, suite, perturbation=None):
    return next(g for g in result.groups if g.suite == suite and g.perturbation == perturbation)


def test_full_policy_ships_with_every_criterion_passed(shipped):
    result, _, _ = shipped
    assert [c.name for c in result.verdict.reasons] == [
        "states_handled", "states_exercised", "families_run", "silent_failure_bound", "severe_silent_failure",
        "coverage_floor", "over_refusal", "no_escapes", "hostile_answers_stable",
    ]
    assert result.verdict.ship, result.verdict.failed
    assert result.verdict.label == "READY TO SHIP" and result.verdict.exit_code == 0
    assert all(s.ok for s in result.states)
    assert {s.state for s in result.states} >= set(fp.STATES) | {"hash"}


def test_rows_are_keyed_and_split_without_overlap(shipped):
    result, rows, _ = shipped
    # 40 cases x (hash, nul, pad, timeout, server_error, wrong_type, clean)
    assert result.n_rows == len(rows) == 40 * 7
    assert "toy-hostile/hash_tag/c003/0" in rows and "clean/none/c003/0" in rows
    splits = {}
    for row in rows.values():
        splits.setdefault(row["case_id"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits.values())
    n_eval = sum(1 for s in splits.values() if s == {"evaluation"})
    assert n_eval == result.n_evaluation == 20 and result.n_calibration == 20


def test_clean_and_perturbation_figures_match_the_toy_system(shipped):
    result, rows, _ = shipped
    evaluation = sorted(r["case_id"] for r in rows.values() if r["split"] == "evaluation" and r["suite"] == "clean")
    right = [index_of(c) % 10 != 0 for c in evaluation]
    accuracy = sum(right) / len(right)
    assert result.clean.accuracy == pytest.approx(accuracy)
    # Low confidence on the wrong clean answers: escalated, so nothing wrong is answered on clean inputs.
    assert result.clean.with_policy.coverage == pytest.approx(accuracy)
    assert result.clean.with_policy.outcomes["escalated"] == right.count(False)
    assert result.clean.with_policy.silent_failures == 0
    assert result.clean.without_policy.silent_failure_rate == pytest.approx(1 - accuracy)
    assert result.clean.catch_rate == 1.0 and result.clean.false_alarm_rate == 0.0

    hash_tag = group(result, "toy-hostile", "hash_tag")
    assert hash_tag.accuracy == 0.0 and hash_tag.clean_accuracy == pytest.approx(accuracy)
    assert hash_tag.gap == pytest.approx(accuracy) and hash_tag.flip_rate == pytest.approx(accuracy)
    assert hash_tag.gap_low <= hash_tag.gap <= hash_tag.gap_high
    assert hash_tag.without_policy.silent_failure_rate == 1.0
    assert hash_tag.with_policy.outcomes["abstained"] == hash_tag.n == 20
    assert hash_tag.catch_rate == 1.0 and hash_tag.states == {"hash": 20}

    nul = group(result, "toy-hostile", "nul")
    assert nul.without_policy.escaped == 20 and nul.without_policy.coverage == 0.0
    assert nul.with_policy.outcomes["abstained"] == 20 and nul.states == {"unexpected": 20}

    pad = group(result, "toy-realistic", "pad")
    assert pad.gap == 0.0 and pad.flip_rate == 0.0 and pad.accuracy == pytest.approx(accuracy)

    server = group(result, "toy-fault", "server_error")
    assert server.with_policy.outcomes["defaulted"] == 20
    assert all(rows[k]["actions"] == ["retry", "default"] for k in rows if k.startswith("toy-fault/server_error/"))
    assert group(result, "toy-fault", "wrong_type").states == {"invalid_output": 20}
    assert group(result, "toy-fault", "timeout").states == {"timeout": 20}


def test_silent_failure_bound_is_the_exact_binomial_bound(shipped):
    result, _, _ = shipped
    chaos = result.chaos.with_policy
    assert chaos.n == 20 * 6 and chaos.silent_failures == 0
    assert chaos.silent_failure_upper == pytest.approx(stats.binomial_upper_bound(0, chaos.n, confidence=0.95))
    assert result.chaos.without_policy.silent_failures > 0


def test_baseline_block_for_the_drift_monitor(shipped):
    result, _, _ = shipped
    b = result.baseline
    assert b["policy"] == "toy-full" and b["run_id"] == result.run_id and b["n"] == 20
    assert b["coverage"] == pytest.approx(result.clean.with_policy.coverage)
    assert len(b["confidence_sample"]) == 20 and set(b["confidence_sample"]) <= {0.2, 0.9}
    assert sum(b["outcome_rates"].values()) == pytest.approx(1.0)
    assert b["state_rates"]["low_confidence"] == pytest.approx(b["outcome_rates"]["escalated"])


def test_result_document_is_versioned_json_safe_and_stored(shipped):
    result, _, run = shipped
    document = result.to_dict()
    assert document["schema"] == SCHEMA == "failpath.check/2"
    text = json.dumps(document, allow_nan=False)
    assert CheckResult.from_dict(json.loads(text)) == result
    assert run["finished"] is not None and run["summary"] == json.loads(text)
    with pytest.raises(ValueError, match="schema"):
        CheckResult.from_dict({**document, "schema": "other/9"})
    # A document of schema 1 (before the per-family bounds) still reads; the new fields take their defaults.
    old = {k: v for k, v in document.items() if k not in ("silent_failure_families", "over_refusal")}
    read = CheckResult.from_dict({**old, "schema": "failpath.check/1"})
    assert read.silent_failure_families == () and read.over_refusal is None and read.verdict == result.verdict
    with pytest.raises(Exception):
        result.verdict.ship = False  # frozen


def test_partial_policy_is_demo_with_worst_cases_and_nothing_certified(tmp_path):
    result = fp.check(**toy_kwargs(tmp_path, policy=partial_policy(), silent_failure_budget=0.05))
    failed = {c.name for c in result.verdict.failed}
    # No severity is configured, so its silent failures are severe ones too.
    assert failed == {"silent_failure_bound", "severe_silent_failure", "hostile_answers_stable"}
    assert result.verdict.exit_code == 1 and result.verdict.label == "READY TO DEMO"
    flips = next(c for c in result.verdict.reasons if c.name == "hostile_answers_stable")
    # Every hash variant is answered "???"; it changed the answer wherever the clean input was answered.
    assert flips.figure == f"{result.clean.with_policy.answered} changed answers in 20 answered hostile inputs"
    top = result.worst_cases[0]
    assert (top.suite, top.perturbation, top.output, top.confidence) == ("toy-hostile", "hash_tag", "???", 0.95)
    assert top.reproduction.found and "#" in top.reproduction.input and top.reproduction.minimal
    assert top.cause == "perturbation"
    # at most 3 a perturbation caused, then at most 3 cases (the inputs ending in 0) wrong on clean input
    assert len([w for w in result.worst_cases if w.cause == "perturbation"]) <= 3 and len(result.worst_cases) <= 6
    assert all(w.input.split()[1].endswith("0") for w in result.worst_cases if w.cause == "clean")
    # Confidently wrong answers: no threshold can be certified, and the result says so loudly.
    assert not result.thresholds.certified and result.thresholds.threshold is None
    assert "NOTHING CERTIFIED" in result.thresholds.message
    assert any("NOTHING CERTIFIED" in note for note in result.notes)


def test_threshold_certified_on_calibration_and_measured_on_evaluation(tmp_path):
    result = fp.check(**toy_kwargs(
        tmp_path, system=ToySystem(hash_confidence=0.3), cases=make_cases(400), suites=[HOSTILE, REALISTIC],
        silent_failure_budget=0.05, worst_cases=0,
    ))
    t = result.thresholds
    # The risk is silent failures per request, as the verdict counts them. The wrong answers the
    # threshold decides are the "?" ones at 0.2; the "#" inputs (0.3, wrong) are the hash rule's to
    # handle and the nul inputs raise, so neither holds the threshold up.
    assert t.certified and 0.2 < t.threshold <= 0.9 and t.risk_budget == 0.05 and t.delta == 0.05
    assert t.evaluation_risk == 0.0 and t.calibration_risk == 0.0
    assert "joint risk" in t.message and "200 cases" in t.message and "over cases" in t.method
    # Measured on the evaluation half only, per request.
    with open_store(tmp_path / "store.db") as store:
        evaluation = [r["data"] for r in store.results(result.run_id) if r["data"]["split"] == "evaluation"]
    answered = [r for r in evaluation if r["state"] in (None, "low_confidence") and r["raw_error"] is None
                and r["raw_confidence"] is not None and r["raw_confidence"] >= t.threshold]
    assert answered and all(r["raw_correct"] for r in answered)
    assert t.evaluation_coverage == pytest.approx(len(answered) / len(evaluation))
    # Holm over the 101 grid points asks p <= 0.05 / 101 of the first threshold: with no error at all,
    # Hoeffding-Bentkus needs some 170 cases for a 5% budget, hence 400 cases (200 per half).
    assert t.n_calibration == 800  # 200 calibration cases x (clean, hash, nul, pad)
    # The cost-optimal rule is chosen on the same requests and capped by the certified threshold; its
    # figures are those of the governed calls (200 cases x (clean, pad)).
    assert t.cost_policy is not None and t.cost_policy["n"] == 400
    assert t.cost_policy["cap"] == t.threshold and t.cost_policy["tau_answer"] >= t.threshold
    assert t.cost_policy["costs"] == {"answer": [0.0, 10.0], "clarify": [1.0, 4.0], "escalate": [3.0, 3.0]}
    # A budget the "?" answers break cannot be certified, and says so.
    strict = fp.check(**toy_kwargs(
        tmp_path, system=ToySystem(hash_confidence=0.3), cases=make_cases(400), suites=[HOSTILE, REALISTIC],
        silent_failure_budget=0.02, worst_cases=0, store=tmp_path / "strict.db",
    ))
    assert not strict.thresholds.certified and "NOTHING CERTIFIED" in strict.thresholds.message


def test_bad_inputs_fail_before_any_model_call(tmp_path):
    calls = []

    def system(text):
        calls.append(text)
        return text

    base = dict(suites=["hostile"], store=tmp_path / "s.db", quiet=True)
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        fp.check(system, [Case("a", "x", "x"), Case("a", "y", "y")], **base)
    with pytest.raises(DatasetError, match="empty"):
        fp.check(system, [], **base)
    with pytest.raises(ConfigError, match="judge 'fields' cannot read the expected value of case 'a'"):
        fp.check(system, [Case("a", "x", "x")], judge="fields", **base)
    with pytest.raises(ConfigError, match="unknown suite 'hostle'"):
        fp.check(system, [Case("a", "x", "x")], **{**base, "suites": ["hostle"]})
    with pytest.raises(ConfigError, match="accepted state 'timeuot'"):
        fp.check(system, [Case("a", "x", "x")], accepted={"timeuot": "a long enough reason"}, **base)
    with pytest.raises(ConfigError, match="needs a written reason"):
        fp.check(system, [Case("a", "x", "x")], accepted={"timeout": "ok"}, **base)
    with pytest.raises(ConfigError, match="silent_failure_budget"):
        fp.check(system, [Case("a", "x", "x")], silent_failure_budget=2, **base)
    with pytest.raises(ConfigError, match="costs lack escalate"):
        fp.check(system, [Case("a", "x", "x")], costs={"answer": (0, 1)}, **base)
    with pytest.raises(ConfigError, match="unknown action 'ask'"):
        fp.check(system, [Case("a", "x", "x")], costs={"ask": (0, 1)}, **base)
    assert calls == []
    with open_store(tmp_path / "s.db") as store:
        assert store.list_runs() == []


def _outcomes(store_path, run_id):
    with open_store(store_path) as store:
        return {
            r["key"]: {k: v for k, v in r["data"].items() if k not in ("trace_id", "latency_ms")}
            for r in store.results(run_id)
        }


class AsyncToy:
    def __init__(self):
        self.inner = ToySystem()

    async def __call__(self, text):
        await asyncio.sleep(0)
        return self.inner(text)


def test_async_system_gives_the_same_rows_as_the_sync_one(tmp_path):
    sync = fp.check(**toy_kwargs(tmp_path, store=tmp_path / "a.db", worst_cases=0, cases=make_cases(20)))
    asynced = fp.check(**toy_kwargs(tmp_path, system=AsyncToy(), store=tmp_path / "b.db", worst_cases=0,
                                    cases=make_cases(20), concurrency=8))
    assert _outcomes(tmp_path / "a.db", sync.run_id) == _outcomes(tmp_path / "b.db", asynced.run_id)
    assert asynced.verdict == sync.verdict


async def test_check_works_inside_a_running_event_loop(tmp_path):
    result = fp.check(**toy_kwargs(tmp_path, system=AsyncToy(), cases=make_cases(10), worst_cases=0))
    assert result.n_rows == 10 * 7


def test_no_policy_measures_the_raw_system_and_fails_loudly(tmp_path):
    result = fp.check(**toy_kwargs(tmp_path, policy=None, accepted={}, worst_cases=0, cases=make_cases(20)))
    failed = {c.name for c in result.verdict.failed}
    assert {"states_handled", "silent_failure_bound"} <= failed
    assert result.policy.endswith("no-policy") or "no-policy" in result.policy


def test_an_exception_leaving_the_guard_is_an_escape_not_a_crash(tmp_path):
    class Leaky:
        """A guarded system whose guard itself raises on '#' inputs."""

        def __init__(self, guarded):
            self.guarded = guarded

        def call_traced(self, value):
            if "#" in value:
                raise RuntimeError("the guard broke")
            return self.guarded.call_traced(value)

        def with_store(self, store):
            return Leaky(self.guarded.with_store(store))

    class LeakyPolicy:
        name = "leaky"

        def __init__(self):
            self.policy = partial_policy()

        def wrap(self, system):
            return Leaky(self.policy.wrap(system))

        def handled_states(self):
            return self.policy.handled_states()

        def flush(self):
            pass

    result = fp.check(**toy_kwargs(tmp_path, policy=LeakyPolicy(), worst_cases=0, cases=make_cases(20)))
    escaped = next(c for c in result.verdict.reasons if c.name == "no_escapes")
    assert not escaped.passed and escaped.figure.startswith("20 escaped")
    assert group(result, "toy-hostile", "hash_tag").with_policy.escaped == 10


@pytest.mark.slow
def test_process_pool_gives_the_same_rows_as_threads(tmp_path):
    kwargs = dict(cases=make_cases(12), worst_cases=0, policy="test_check_toy:FULL_POLICY")
    threads = fp.check(**toy_kwargs(tmp_path, system="test_check_toy:toy_system", store=tmp_path / "t.db", **kwargs))
    procs = fp.check(**toy_kwargs(tmp_path, system="test_check_toy:toy_system", store=tmp_path / "p.db",
                                  executor="process", concurrency=2, **kwargs))
    assert _outcomes(tmp_path / "t.db", threads.run_id) == _outcomes(tmp_path / "p.db", procs.run_id)
    # the drift monitor matches traces by the policy's name, whichever way the policy was given
    assert threads.baseline["policy"] == procs.baseline["policy"] == FULL_POLICY.name
    assert threads.config["policy"] == "test_check_toy:FULL_POLICY"


@pytest.mark.slow
def test_real_model_usaddress_example(tmp_path):
    from failpath.examples.addresses import check_kwargs

    kwargs = check_kwargs(n=30, seed=1)
    kwargs.update(suites=["hostile"], store=tmp_path / "s.db", worst_cases=1, worst_case_seconds=3, quiet=True)
    result = fp.check(**kwargs)
    assert result.judge == "token_labels" and result.n_cases == 30
    assert result.clean.accuracy > 0.7
    assert result.confidence.n > 0 and result.confidence.auroc is None or 0 <= result.confidence.auroc <= 1
    hostile = group(result, "hostile")
    assert hostile.with_policy.coverage < hostile.without_policy.coverage


def test_sync_systems_run_inline_when_busy_and_in_threads_when_waiting(tmp_path):
    import threading
    import time as _time

    def recording(delay):
        names = []

        def system(text):
            names.append(threading.current_thread().name)
            if delay:
                _time.sleep(delay)
            return Prediction(text.upper(), 0.9)

        return system, names

    import os

    busy, busy_names = recording(0.0)
    fp.check(busy, make_cases(30), suites=[REALISTIC], store=tmp_path / "a.db", concurrency=8, worst_cases=0, quiet=True)
    main = threading.current_thread().name
    assert busy_names[:16] == [main] * 16  # the first calls are always timed inline
    if os.getloadavg()[0] < 2 * (os.cpu_count() or 1):  # an overloaded machine makes every call look like waiting
        assert set(busy_names) == {main}
    waiting, waiting_names = recording(0.005)
    fp.check(waiting, make_cases(30), suites=[REALISTIC], store=tmp_path / "b.db", concurrency=8, worst_cases=0, quiet=True)
    pooled = [n for n in waiting_names if n.startswith("failpath-check")]
    assert len(pooled) >= 30 and len(set(pooled)) > 1


def test_fp_check_is_callable_before_and_after_the_package_is_imported(tmp_path):
    import subprocess
    import sys

    import failpath.check as module

    assert callable(module) and callable(fp.check)
    result = module(ToySystem(), make_cases(4), suites=[REALISTIC], store=tmp_path / "m.db", quiet=True, worst_cases=0)
    assert isinstance(result, CheckResult) and result.n_rows == 8
    code = (
        "import failpath.check, failpath as fp; "
        "assert callable(fp.check) and callable(failpath.check); "
        "assert fp.CheckResult is failpath.check.CheckResult and fp.TokenLabels and fp.load_cases and fp.Verdict"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_states_the_policy_waives_count_as_accepted(tmp_path):
    waiving = fp.Policy("toy-waiving", rules=FULL_POLICY.rules, store=False, waive=ACCEPTED)
    result = fp.check(**toy_kwargs(tmp_path, policy=waiving, accepted=None, cases=make_cases(10), worst_cases=0))
    handled = next(c for c in result.verdict.reasons if c.name == "states_handled")
    assert handled.passed, handled
    without = fp.check(**toy_kwargs(tmp_path, accepted=None, cases=make_cases(10), worst_cases=0, store=tmp_path / "b.db"))
    assert not next(c for c in without.verdict.reasons if c.name == "states_handled").passed


def test_fault_requests_wait_in_the_pool_while_busy_calls_run_inline(tmp_path):
    from failpath.chaos.faults import Slow
    from failpath.chaos.suites import Suite

    seen: dict[str, set[str]] = {"fault": set(), "other": set()}

    def system(text: str) -> fp.Prediction:
        sum(i * i for i in range(3000))  # a busy call, like a local model
        kind = "fault" if threading.current_thread().name.startswith("failpath-check") else "other"
        seen[kind].add(text)
        return fp.Prediction(text.upper(), 0.9)

    slow = Suite("toy-slow", "fault", (Slow(delay=0.01),))
    result = fp.check(**toy_kwargs(tmp_path, system=system, cases=make_cases(40), suites=[REALISTIC, slow],
                                   worst_cases=0, concurrency=4))
    assert result.n_rows > 0
    # Every call made in a pool thread was a fault-suite request (clean inputs, wrapped slow); the
    # padded realistic variants, busy and never waiting, all ran inline.
    assert seen["fault"] and all(not t.startswith("  ") for t in seen["fault"])
    assert any(t.startswith("  ") for t in seen["other"])


def test_an_answer_the_guard_got_elsewhere_is_judged_on_its_own(tmp_path):
    """Raw first answer wrong and unsure; the fallback's answer right: the row says so, both ways."""

    def unsure(text):
        return Prediction(text.lower(), 0.2)  # wrong (expected is upper case), low confidence

    def careful(text):
        return Prediction(text.upper(), 0.99)

    policy = fp.Policy(
        "fallback",
        rules=[fp.on(fp.LowConfidence(below=0.5)).do(fp.Fallback(careful)), fp.on(fp.Unexpected()).do(fp.Abstain("u"))],
        store=False,
    )
    result = fp.check(unsure, make_cases(6), policy=policy, judge="exact", suites=[], store=tmp_path / "f.db",
                      worst_cases=0, quiet=True)
    rows = _outcomes(tmp_path / "f.db", result.run_id)
    assert len(rows) == 6
    for row in rows.values():
        assert row["outcome"] == "answered" and row["degraded"] is True
        assert row["raw_correct"] is False and row["correct"] is True and row["score"] == 1.0


def test_a_store_without_a_file_gets_a_scratch_store_of_its_own_removed_at_the_end():
    # A PostgreSQL store has a URL, not a file: two checks at once must not share one scratch file.
    from types import SimpleNamespace

    from failpath.check.api import _scratch

    server = SimpleNamespace(path="postgresql://failpath@db/failpath")
    with _scratch(server) as first, _scratch(server) as second:
        assert first.path != second.path
        assert first.path.exists() and second.path.exists()
    assert not first.path.parent.exists() and not second.path.parent.exists()

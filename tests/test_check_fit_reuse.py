"""The check's fit asks the raw system once: the execute stage reuses those answers, with the same results.

Fitting ``AnomalousInput(fit="check")`` calls the raw system on every realistic variant of the calibration
half; the execute stage used to make each of those calls again. Here a counting system (every call appended
to a file, from any process) shows each such input is asked once, and the rows, figures and verdict equal
those of a run that asks again (``reuses_answers`` switched off), in threads and in forked and spawned
worker processes, and after a resume.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from collections import Counter
from pathlib import Path

import pytest

import failpath as fp
from failpath.check import api
from failpath.check import processes as process_runner
from failpath.check.reuse import RecordedAnswer, answered_once, replays_time, reuses_answers
from failpath.check.runner import preview
from failpath.core import Prediction
from failpath.store import open_store


class CountingParser:
    """A deterministic name parser that appends every input it is asked to ``log`` (one JSON line a call),
    and, when ``stop_at`` is given, raises ``KeyboardInterrupt`` at that call (counted from 1)."""

    def __init__(self, log: Path, stop_at: int | None = None):
        self.log = str(log)
        self.stop_at = stop_at
        self.calls = 0

    def __call__(self, text: str) -> Prediction:
        self.calls += 1
        if self.stop_at is not None and self.calls == self.stop_at:
            raise KeyboardInterrupt
        line = (json.dumps(text) + "\n").encode("utf-8")
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)  # one write of a short line: whole, whichever process makes it
        finally:
            os.close(fd)
        tokens = str(text).split()
        if len(tokens) == 2 and tokens[0].endswith(","):
            labels = [(tokens[0], "Surname"), (tokens[1], "GivenName")]
        elif len(tokens) == 2:
            labels = [(tokens[0], "GivenName"), (tokens[1], "Surname")]
        else:
            labels = [(t, "Unknown") for t in tokens]
        return Prediction(labels, 0.9 if len(tokens) == 2 else 0.4)


GIVEN = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken", "Radia", "Tim"]
SURNAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton", "Thompson"]


def name_cases(n: int) -> list[fp.Case]:
    cases = []
    for i in range(n):
        given, surname = GIVEN[i % len(GIVEN)] + "abcdefghij"[i // 12 % 10], SURNAMES[i % len(SURNAMES)]
        pairs = [(surname + ",", "Surname"), (given, "GivenName")] if i % 3 == 0 else [(given, "GivenName"), (surname, "Surname")]
        cases.append(fp.Case(f"name-{i}", " ".join(t for t, _ in pairs), pairs))
    return cases


def names_policy(*extra: fp.Rule) -> fp.Policy:
    return fp.Policy(
        "names",
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Clarify("Please type a name.")),
            fp.on(fp.AnomalousInput(fit="check", alpha=0.05)).do(fp.Clarify("That does not look like a name.")),
            *extra,
            fp.on(fp.LowConfidence(below=0.5)).do(fp.Escalate(queue="names")),
            fp.on(fp.Unexpected()).do(fp.Abstain("failed")),
        ],
        store=False,
    )


def run(tmp_path: Path, label: str, *, reuse: bool = True, monkeypatch=None, policy=None, **extra):
    """One check of 60 names; returns (result, Counter of the inputs the system was asked, store path)."""
    log = tmp_path / f"{label}.calls"
    store = tmp_path / f"{label}.db"
    if not reuse:
        monkeypatch.setattr(api, "reuses_answers", lambda policy: False)
    kwargs = dict(
        policy=policy or names_policy(), judge="token_labels", suites=["realistic", "hostile", "fault"], seed=5,
        concurrency=4, worst_cases=0, quiet=True, executor="thread",
    )
    kwargs.update(extra)
    result = fp.check(CountingParser(log), name_cases(60), store=store, **kwargs)
    if not reuse:
        monkeypatch.setattr(api, "reuses_answers", reuses_answers)
    return result, calls(log), store


def calls(log: Path) -> Counter:
    """The inputs asked, as a result row shows them (a long one cut, as ``preview`` cuts it)."""
    if not log.exists():
        return Counter()
    return Counter(preview(json.loads(line)) for line in log.read_text(encoding="utf-8").splitlines())


def rows(store: Path, run_id: str) -> dict[str, dict]:
    with open_store(store) as opened:
        return {
            r["key"]: {k: v for k, v in r["data"].items() if k not in ("trace_id", "latency_ms")}
            for r in opened.results(run_id)
        }


def stable(document: dict) -> dict:
    """The result document without what differs between two runs of the same check (ids, clocks), its
    numbers to 12 significant digits: in a process run the rows reach the tally in the order the processes
    write them, and a mean over cases (over_refusal's rate and bound) then sums the same shares in another
    order, which two runs of the same code can round apart in the last bit."""
    volatile = {"run_id", "started", "finished", "elapsed_seconds", "resumed", "reused"}
    out = {k: v for k, v in document.items() if k not in volatile}
    out["baseline"] = {k: v for k, v in out["baseline"].items() if k != "run_id"}
    return _rounded(out)


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def fitted_inputs(store: Path, run_id: str) -> Counter:
    """The inputs of the requests the fit asks too: the realistic variants of the calibration half that keep
    an expected answer (a ``not_preserved`` variant has none to judge, so the fit leaves it out)."""
    return Counter(
        r["input"] for r in rows(store, run_id).values()
        if r["split"] == "calibration" and r["family"] == "realistic" and r["contract"] != "not_preserved"
    )


def test_each_input_of_the_calibration_half_is_asked_once(tmp_path, monkeypatch):
    # Without the fault suite, whose faults skip or repeat calls, the execute stage makes one call a request.
    result, asked, store = run(tmp_path, "reuse", suites=["realistic", "hostile"])
    every_request = Counter(r["input"] for r in rows(store, result.run_id).values())
    fitted = fitted_inputs(store, result.run_id)
    assert sum(fitted.values()) > 100
    # One call per request, the fit's calls included: none of the fitted inputs is asked again.
    assert asked == every_request
    assert all(asked[text] == n for text, n in fitted.items())
    # The old way asks each of them twice: once to fit, once to execute.
    _, again, _ = run(tmp_path, "again", reuse=False, monkeypatch=monkeypatch, suites=["realistic", "hostile"])
    assert again == every_request + fitted


@pytest.fixture(params=["thread", "fork", "spawn"])
def executor(request, monkeypatch):
    """Threads, and worker processes both ways they start (forked, or spawned and sent everything pickled)."""
    if request.param == "thread":
        return {"executor": "thread"}
    if request.param not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {request.param} on this platform")
    monkeypatch.setattr(process_runner, "START_METHOD", request.param)
    return {"executor": "process", "concurrency": 2}


@pytest.mark.slow
def test_reusing_the_fits_answers_gives_the_same_rows_figures_and_verdict(tmp_path, monkeypatch, executor):
    reused, asked, reused_store = run(tmp_path, "reuse", **executor)
    again, asked_again, again_store = run(tmp_path, "again", reuse=False, monkeypatch=monkeypatch, **executor)
    assert rows(reused_store, reused.run_id) == rows(again_store, again.run_id)
    assert stable(reused.to_dict()) == stable(again.to_dict())
    assert reused.verdict == again.verdict
    fitted = fitted_inputs(reused_store, reused.run_id)
    assert sum(asked_again.values()) - sum(asked.values()) == sum(fitted.values()) > 100


def test_a_resumed_run_that_reuses_answers_equals_an_uninterrupted_one(tmp_path):
    whole, asked, _ = run(tmp_path, "whole", concurrency=1)
    log, store = tmp_path / "stopped.calls", tmp_path / "stopped.db"
    kwargs = dict(
        policy=names_policy(), judge="token_labels", suites=["realistic", "hostile", "fault"], seed=5, concurrency=1,
        worst_cases=0, quiet=True, executor="thread", store=store,
    )
    # Stopped 30 calls before the end: in the clean pass, long after the fit.
    with pytest.raises(fp.CheckInterrupted) as stopped:
        fp.check(CountingParser(log, stop_at=sum(asked.values()) - 30), name_cases(60), **kwargs)
    assert 0 < stopped.value.stored < whole.n_rows
    resumed = fp.check(CountingParser(log), name_cases(60), resume=stopped.value.run_id, **kwargs)
    assert resumed.reused == stopped.value.stored
    assert stable(resumed.to_dict()) == stable(whole.to_dict())
    assert rows(store, resumed.run_id) == rows(tmp_path / "whole.db", whole.run_id)


def test_a_policy_that_samples_the_system_again_makes_every_call(tmp_path):
    """A rule for ``inconsistent`` declares the system stochastic: nothing the fit asked is reused."""
    sampling = names_policy(fp.on(fp.Inconsistent(samples=2)).do(fp.Abstain("disagrees")))
    assert not reuses_answers(sampling) and reuses_answers(names_policy())
    result, asked, store = run(tmp_path, "sampling", policy=sampling, suites=["realistic"])
    fitted = fitted_inputs(store, result.run_id)
    assert sum(fitted.values()) > 100
    # The fit's call, then the execute stage's own (two, with the second sample, where the input is let through).
    assert all(asked[text] >= 2 * n for text, n in fitted.items())
    assert sum(asked.values()) > sum(Counter(r["input"] for r in rows(store, result.run_id).values()).values()) + sum(fitted.values())


def test_answered_once_returns_the_recorded_answer_to_the_first_call_only():
    asked = []

    def system(text, feedback=None):
        asked.append((text, feedback))
        return f"live {text}"

    recorded = RecordedAnswer("Ada Lovelace", "recorded", 0.0)
    once = answered_once(system, recorded)
    assert once("Ada Lovelace") == "recorded" and asked == []
    assert once("Ada Lovelace") == "live Ada Lovelace"  # a retry asks the system
    from failpath.guard.guarded import system_name

    assert once.__name__ == "system" and system_name(once, None) == system_name(system, None)  # traces name it alike
    assert system_name(answered_once(CountingParser(Path("unused")), recorded), None) == "CountingParser"
    from failpath.guard.actions import takes_feedback

    assert takes_feedback(once)  # fp.Reask sees the system's own signature
    # A first call with another input, or with feedback, is the system's.
    assert answered_once(system, recorded)("Grace Hopper") == "live Grace Hopper"
    assert answered_once(system, recorded)("Ada Lovelace", feedback="x") == "live Ada Lovelace"
    assert asked[-1] == ("Ada Lovelace", "x")


def test_answered_once_keeps_an_async_system_async():
    async def system(text):
        return f"live {text}"

    once = answered_once(system, RecordedAnswer("Ada", "recorded", 0.0))
    from failpath.check.runner import is_async_system

    assert is_async_system(once)

    async def both():
        return await once("Ada"), await once("Ada")

    assert asyncio.run(both()) == ("recorded", "live Ada")


def test_under_a_time_limit_a_reused_answer_takes_as_long_as_its_call_did():
    """Whether a call runs past its limit is part of the check: a slow recorded call still times out."""
    policy = fp.Policy(
        "limited", rules=[fp.on(fp.Timeout(after=0.05)).do(fp.Abstain("too slow")), fp.on(fp.Unexpected()).do(fp.Abstain("x"))],
        store=False,
    )
    assert replays_time(policy) and not replays_time(names_policy())
    slow = answered_once(lambda text: "live", RecordedAnswer("Ada", "recorded", 0.5), in_time=replays_time(policy))
    outcome = policy.wrap(slow)("Ada")
    assert outcome.kind == "abstained" and outcome.state == "timeout"
    quick = answered_once(lambda text: "live", RecordedAnswer("Ada", "recorded", 0.0), in_time=True)
    assert policy.wrap(quick)("Ada").value == "recorded"

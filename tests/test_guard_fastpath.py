"""The guard's shortcuts for the common call: they must build exactly what the general path builds."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading

import pytest

import failpath as fp
from failpath.core import Attempt, Trace
from failpath.guard import guarded, run, trace_ids
from failpath.guard.text import jsonable
from test_guard_support import MemoryStore

_VARYING = ("trace_id", "time", "latency_ms")  # differ from one call to the next whatever the path


def _comparable(trace: Trace) -> dict:
    fields = {f.name: getattr(trace, f.name) for f in dataclasses.fields(trace) if f.name not in _VARYING}
    fields["attempts"] = [dataclasses.replace(a, latency_ms=0.0) for a in trace.attempts]
    return fields


def _policy(store, *rules, **kwargs):
    return fp.Policy("fast", rules=[*rules, fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))], store=store, **kwargs)


SYSTEMS = {
    "prediction": lambda text: fp.Prediction({"number": "12", "street": text[:4]}, confidence=0.97),
    "plain value": lambda text: text.upper(),
    "integer confidence": lambda text: fp.Prediction(text, confidence=1),
    "confidence out of range": lambda text: fp.Prediction(text, confidence=1.5),
    "usage in meta": lambda text: fp.Prediction(text, confidence=0.9, meta={"usage": {"input_tokens": 3, "output_tokens": 4}}),
    "nested output": lambda text: {"a": [1, 2.5, float("nan")], 3: None, "b": {"c": "x" * 5000}},
}


@pytest.mark.parametrize("name", sorted(SYSTEMS))
@pytest.mark.parametrize("raw_inputs", [False, True])
def test_clean_calls_trace_exactly_as_the_general_path(name, raw_inputs, monkeypatch):
    rules = [fp.on(fp.EmptyInput()).do(fp.Clarify("say something")), fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("unsure"))]
    fast_store, slow_store = MemoryStore(), MemoryStore()
    inputs = ["123 Main St, call +1 (555) 123-4567 or a@b.example", "x", "7 Elm Ave"]
    fast = _policy(fast_store, *rules, store_raw_inputs=raw_inputs).wrap(SYSTEMS[name])
    fast_results = [fast.call_traced(text) for text in inputs]
    monkeypatch.setattr(run.Run, "is_clean", lambda self: False)  # every call through the general trace()
    slow = _policy(slow_store, *rules, store_raw_inputs=raw_inputs).wrap(SYSTEMS[name])
    slow_results = [slow.call_traced(text) for text in inputs]
    for (fast_outcome, fast_trace), (slow_outcome, slow_trace) in zip(fast_results, slow_results):
        assert dataclasses.replace(fast_outcome, trace_id=None) == dataclasses.replace(slow_outcome, trace_id=None)
        assert _comparable(fast_trace) == _comparable(slow_trace)
        assert fast_outcome.trace_id == fast_trace.trace_id
    assert [t.trace_id for t in fast_store.traces] == [trace.trace_id for _, trace in fast_results]


async def test_async_clean_call_traces_as_the_general_path(monkeypatch):
    async def system(text):
        return fp.Prediction(text, confidence=0.8)

    first = await _policy(MemoryStore()).wrap(system).call_traced("1 Oak Rd")
    monkeypatch.setattr(run.Run, "is_clean", lambda self: False)
    second = await _policy(MemoryStore()).wrap(system).call_traced("1 Oak Rd")
    assert _comparable(first[1]) == _comparable(second[1])
    assert first[1].outcome == "answered" and first[1].attempts[0].confidence == 0.8


def test_a_trace_that_cannot_be_built_directly_is_built_by_the_general_path(monkeypatch):
    def broken(run, outcome):
        raise RuntimeError("boom")

    monkeypatch.setattr(guarded, "clean_trace", broken)
    store = MemoryStore()
    outcome, trace = _policy(store).wrap(lambda text: text).call_traced("9 Pine St")
    assert outcome.value == "9 Pine St" and trace.outcome == "answered" and trace.attempts[0].output == "9 Pine St"
    assert store.traces == [trace]


# --------------------------------------------------------------------------- trace ids


def test_trace_ids_are_unique_hex_across_threads():
    ids: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [trace_ids.next_trace_id() for _ in range(5000)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == len(set(ids)) == 20000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len({i[:4] for i in ids[:200]}) > 190  # leading digits vary: a short prefix still finds one trace


def test_a_reseeded_source_does_not_repeat_the_ids_of_the_first():
    source = trace_ids.TraceIds()
    first = [source.next() for _ in range(1000)]
    source.reseed()
    assert not set(first) & {source.next() for _ in range(1000)}


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork")
def test_a_forked_child_makes_ids_of_its_own():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then exit at once
        try:
            os.write(write, " ".join(trace_ids.next_trace_id() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {trace_ids.next_trace_id() for _ in range(50)}
    assert len(child) == 50 and not child & parent


# --------------------------------------------------------------------------- JSON-safe outputs


def test_flat_dicts_keep_their_fields_and_odd_values_are_still_rendered():
    assert jsonable({"number": "12", "n": 3, "ok": True, "none": None}) == {"number": "12", "n": 3, "ok": True, "none": None}
    rendered = jsonable({1: "a", "f": float("inf"), "long": "y" * 4001, "t": (1, 2), "s": {3}})
    assert rendered == {"1": "a", "f": "inf", "long": "y" * 4000 + "…", "t": [1, 2], "s": [3]}


# --------------------------------------------------------------------------- anomaly score


def test_profile_score_of_ascii_text_is_the_score_of_its_profile():
    import random

    from failpath.guard.anomaly import ProfileScorer, profile

    reference = [f"{n} Main St, Springfield, IL {60000 + n}" for n in range(1, 200)]
    scorer = ProfileScorer().fit(reference)
    rng = random.Random(3)
    alphabet = "abcXYZ019 ,.#\t\n\x00\x7f-é\u200b"
    texts = ["", " ", "a", *reference[:20]] + ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(2000)]
    for text in texts:
        expected = max(abs(f - c) * inverse for f, (c, inverse) in zip(profile(text), scorer._scale))
        assert scorer.score(None, text) == expected, text


async def test_async_first_call_failing_goes_the_general_way():
    calls = []

    async def system(text):
        calls.append(text)
        if len(calls) == 1:
            raise fp.ProviderFailure("overloaded", status=503)
        return fp.Prediction(text.upper(), confidence=0.9)

    policy = _policy(MemoryStore(), fp.on(fp.ProviderError()).do(fp.Retry(1), fp.Abstain("down")))
    outcome, trace = await policy.wrap(system).call_traced("5 Elm St")
    assert outcome.value == "5 ELM ST" and trace.states == ("provider_error",) and trace.actions == ("retry",)
    assert [a.action for a in trace.attempts] == ["call", "retry"] and trace.attempts[0].error.startswith("ProviderFailure")


# --------------------------------------------------------------------------- one rendering per output


@pytest.fixture
def renderings(monkeypatch):
    """Every value the guard renders JSON-safe during a call, in order."""
    from failpath.guard import decide, tracing

    seen: list = []

    def counting(value):
        seen.append(value)
        return jsonable(value)

    monkeypatch.setattr(decide, "jsonable", counting)
    monkeypatch.setattr(tracing, "jsonable", counting)
    return seen


def test_a_clean_answer_is_rendered_once_for_its_attempt_and_its_trace(renderings):
    output = {"number": "12", "street": "Main"}
    outcome, trace = _policy(MemoryStore()).wrap(lambda text: fp.Prediction(dict(output), confidence=0.9)).call_traced("12 Main St")
    assert len(renderings) == 1
    assert trace.output == output and trace.output is trace.attempts[0].output  # one rendering, shared
    assert type(trace) is Trace and type(trace.attempts[0]) is Attempt and type(outcome) is fp.Answered
    with pytest.raises(dataclasses.FrozenInstanceError):
        trace.output = None  # type: ignore[misc]


def test_a_schema_answer_renders_the_raw_output_and_the_model_once_each(renderings):
    from pydantic import BaseModel

    class Address(BaseModel):
        number: str
        street: str

    policy = _policy(MemoryStore(), fp.on(fp.InvalidOutput(schema=Address)).do(fp.Abstain("bad")))
    outcome, trace = policy.wrap(lambda text: {"number": "12", "street": "Main", "extra": 1}).call_traced("12 Main St")
    assert isinstance(outcome.value, Address)
    assert len(renderings) == 2 and renderings[1] is outcome.value
    assert trace.attempts[0].output == {"number": "12", "street": "Main", "extra": 1}  # the raw output
    assert trace.output == {"number": "12", "street": "Main"}  # the validated answer


def test_every_call_of_a_retried_call_is_rendered_once(renderings):
    answers = iter([None, "7 Elm Ave"])
    policy = _policy(MemoryStore(), fp.on(fp.InvalidOutput()).do(fp.Retry(1), fp.Abstain("bad")))
    outcome, trace = policy.wrap(lambda text: next(answers)).call_traced("7 Elm Ave")
    assert outcome.value == "7 Elm Ave" and [a.action for a in trace.attempts] == ["call", "retry"]
    assert renderings == [None, "7 Elm Ave"]
    assert trace.output is trace.attempts[1].output


def test_the_majority_answer_of_samples_is_not_rendered_again(renderings):
    answers = iter([["a"], ["b"], ["b"]])
    policy = _policy(MemoryStore(), fp.on(fp.Inconsistent(samples=3, min_agreement=0.6)).do(fp.Abstain("unsure")))
    outcome, trace = policy.wrap(lambda text: next(answers)).call_traced("x")
    assert outcome.value == ["b"] and len(renderings) == 3
    assert trace.output == ["b"] and trace.output is trace.attempts[1].output


def test_an_escalated_call_hands_its_ticket_the_attempts_rendering(renderings):
    store = MemoryStore()
    policy = _policy(store, fp.on(fp.LowConfidence(below=0.9)).do(fp.Escalate(queue="review")))
    outcome, trace = policy.wrap(lambda text: fp.Prediction({"n": text}, confidence=0.2)).call_traced("5 Oak Rd")
    assert isinstance(outcome, fp.Escalated) and len(renderings) == 1
    # Rendered once (then redacted for the ticket and the trace alike: no raw inputs stored).
    assert store.tickets[outcome.ticket_id].output == trace.attempts[0].output == {"n": "5 Oak Rd"}

"""Hostile values and faults: nothing a caller passes or a system returns loses a trace, on either backend.

Each test reproduces an item of the reliability issue: lone surrogates (which ``json.loads`` makes
from valid JSON) and outputs whose JSON rendering raises used to fail the writer's whole batch.
"""

from __future__ import annotations

import json

import pytest

import failpath as fp
from failpath.core import Ticket, Trace, safe_text
from failpath.store import open_store
from failpath.store.jsonsafe import dumps

BAD = json.loads('"caf\\ud800"')  # a lone surrogate, from valid JSON


@pytest.fixture(params=("sqlite", "postgres"))
def location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


def count_traces(location: str) -> int:
    with open_store(location) as store:
        return len(store.query_traces(limit=None))


def test_safe_text_replaces_lone_surrogates_only():
    assert safe_text(BAD) == "caf\ufffd"
    assert safe_text("\udfff x \ud800\udc00") == "\ufffd x \ufffd\ufffd"
    text = "déjà vu 🙂"
    assert safe_text(text) is text
    assert dumps({BAD: [BAD]}) == '{"caf\ufffd":["caf\ufffd"]}'


def test_one_lone_surrogate_in_the_input_loses_no_trace(location):
    policy = fp.Policy("p", [fp.on(fp.Unexpected()).do(fp.Abstain("x"))], store=location)
    guarded = policy.wrap(lambda x: "ok")
    for i in range(10):
        guarded(f"fine {i}")
    guarded(BAD)
    for i in range(10):
        guarded(f"fine after {i}")
    policy.close()
    assert count_traces(location) == 21


def test_surrogates_in_outputs_errors_questions_and_tickets_are_stored_replaced(location):
    def system(x):
        if x == "raise":
            raise ValueError(BAD)
        return {"k" + BAD: BAD}

    escalating = fp.Policy("e", [fp.on(fp.Unexpected()).do(fp.Escalate(queue="q"))], store=location)
    guarded = escalating.wrap(system)
    assert isinstance(guarded(BAD), fp.Answered)
    escalated = guarded("raise")
    assert isinstance(escalated, fp.Escalated)
    asking = fp.Policy("c", [fp.on(fp.Unexpected()).do(fp.Clarify(lambda i: f"Did you mean {i}?"))], store=location)
    assert isinstance(asking.wrap(lambda x: 1 / 0)(BAD), fp.Clarify)
    escalating.close()
    asking.close()
    with open_store(location) as store:
        traces = store.query_traces(limit=None)
        assert len(traces) == 3
        answered = next(t for t in traces if t.outcome == "answered")
        assert answered.output == {"kcaf\ufffd": "caf\ufffd"} and answered.input_preview == "caf\ufffd"
        raised = next(t for t in traces if t.outcome == "escalated")
        assert "caf\ufffd" in json.dumps(raised.attempts[0].error, ensure_ascii=False)
        ticket = store.get_ticket(escalated.ticket_id)
        assert ticket is not None and ticket.trace_id == raised.trace_id


def test_a_trace_and_a_ticket_holding_surrogates_in_every_text_field_are_written(location):
    with open_store(location) as store:
        store.write_trace(Trace(trace_id="t1", time=1.0, policy="p" + BAD, input_digest="0" * 64,
                                input_preview=BAD, outcome="answered", input_raw=BAD, output=[BAD],
                                states=(BAD,), detail={BAD: BAD}))
        store.flush()
        ticket_id = store.create_ticket(Ticket(ticket_id="", queue="q", created=0.0, policy="p", trace_id="t1",
                                               input_preview=BAD, input_raw=BAD, output=BAD, confidence=None,
                                               state=BAD, note=BAD))
        trace = store.get_trace("t1")
        assert trace is not None and trace.input_raw == "caf\ufffd" and trace.output == ["caf\ufffd"]
        assert trace.detail == {"caf\ufffd": "caf\ufffd"}
        ticket = store.get_ticket(ticket_id)
        assert ticket is not None and ticket.output == "caf\ufffd" and ticket.note == "caf\ufffd"


def test_an_output_whose_json_rendering_raises_keeps_its_trace(location):
    policy = fp.Policy("p", [fp.on(fp.Unexpected()).do(fp.Abstain("x"))], store=location)
    guarded = policy.wrap(lambda x: 10**5000)
    outcome = guarded("a")
    assert isinstance(outcome, fp.Answered)
    guarded("b")
    policy.close()
    with open_store(location) as store:
        traces = store.query_traces(limit=None)
    assert len(traces) == 2 and traces[0].output == "<integer of about 5001 digits>"


def test_a_dataset_case_holding_a_surrogate_has_a_digest():
    from failpath.check.plan import _cases_digest

    assert len(_cases_digest([fp.Case(id="a" + BAD, input=BAD, expected={"x": BAD})])) == 64

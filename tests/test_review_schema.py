"""Answers checked against the policy's output schema: the ticket carries the schema (from the policy's
declared output type, or the ``Escalate``'s own), and the review API, ``failpath review resolve`` and the
review page refuse an answer that does not match it, saying which field is wrong; the ticket stays open."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Literal

from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

import failpath as fp
from failpath.cli import app
from failpath.store import open_store
from failpath.watch.answers import answer_problems, schema_fields


class Address(BaseModel):
    street: str = Field(description="street and number")
    city: str
    zip: str | None = None
    kind: Literal["home", "work"] = "home"


@dataclasses.dataclass
class Refund:
    amount: float
    currency: str


class Label(TypedDict):
    label: str


def escalating_policy(store, *, escalate_schema=None, declared=True) -> fp.Policy:
    rules = []
    if declared:
        rules.append(fp.on(fp.InvalidOutput(schema=Address)).do(fp.Abstain("off schema")))
    rules += [
        fp.on(fp.LowConfidence(below=0.9)).do(fp.Escalate("addresses", default=None, schema=escalate_schema)),
        fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
    ]
    return fp.Policy("addresses", rules=rules, store=store)


def escalate(store, **options) -> str:
    policy = escalating_policy(store, **options)
    outcome = policy.wrap(lambda text: fp.Prediction({"street": "12 Main St", "city": "Springfeld"}, 0.4))("12 Main St")
    assert isinstance(outcome, fp.Escalated), outcome
    return outcome.ticket_id


# --------------------------------------------------------------------------- the ticket carries the schema


@pytest.fixture(params=("sqlite", "postgres"))
def location(request, tmp_path):
    return str(tmp_path / "store.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_an_escalation_keeps_the_policys_declared_output_type_as_json_schema(location):
    ticket_id = escalate(location)
    with open_store(location) as store:
        ticket = store.get_ticket(ticket_id)
    assert ticket.output_schema == Address.model_json_schema()
    assert [f.name for f in schema_fields(ticket.output_schema)] == ["street", "city", "zip", "kind"]


@pytest.mark.parametrize(
    "spec, expected",
    [
        (Refund, {"amount": 12.5, "currency": "EUR"}),
        (Label, {"label": "spam"}),
        (list[str], ["a", "b"]),
        ({"type": "integer", "minimum": 0}, 3),
    ],
)
def test_an_escalate_names_its_own_schema_over_the_policys(tmp_path, spec, expected):
    store = tmp_path / "s.db"
    ticket_id = escalate(store, escalate_schema=spec)
    ticket = fp.review.get(ticket_id, store=store)
    assert ticket.output_schema != Address.model_json_schema()
    assert answer_problems(ticket.output_schema, expected) == []
    assert answer_problems(ticket.output_schema, {"street": "x", "city": "y"}) != []


def test_a_policy_without_an_output_type_opens_tickets_without_a_schema(tmp_path):
    ticket_id = escalate(tmp_path / "s.db", declared=False)
    ticket = fp.review.get(ticket_id, store=tmp_path / "s.db")
    assert ticket.output_schema is None
    ticket.resolve("anything goes")  # JSON only, as before


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"type": "nonsense"}, r"Escalate\('q', schema=...\): not a valid JSON Schema"),
        (42, r"expected a type \(a pydantic model, a dataclass, a TypedDict\) or a JSON Schema dict, got 42"),
        ({"type": "number", "maximum": float("nan")}, "not JSON-safe"),
        (object(), "pydantic cannot describe"),
    ],
)
def test_a_schema_that_cannot_be_used_is_refused_when_the_policy_is_built(schema, message):
    with pytest.raises(fp.PolicyError, match=message):
        fp.Escalate("q", schema=schema)


# --------------------------------------------------------------------------- checking an answer


def test_answer_problems_name_each_field_that_is_wrong():
    schema = Address.model_json_schema()
    assert answer_problems(schema, {"street": "12 Main St", "city": "Springfield"}) == []
    problems = answer_problems(schema, {"street": 12, "kind": "office"})
    assert problems == [
        "'city' is a required property",
        "kind: 'office' is not one of ['home', 'work']",
        "street: 12 is not of type 'string'",
    ]
    assert answer_problems(schema, "Springfield") == ["'Springfield' is not of type 'object'"]
    assert answer_problems(None, "anything") == []
    assert "not valid JSON Schema" in answer_problems({"type": 7}, "x")[0]


def test_schema_fields_describe_what_the_form_expects():
    fields = {f.name: f for f in schema_fields(Address.model_json_schema())}
    assert fields["street"].required and fields["street"].type == "string" and fields["street"].description == "street and number"
    assert not fields["zip"].required and fields["zip"].type == "string or null"
    assert fields["kind"].type == '"home" | "work"'
    assert schema_fields({"type": "string"}) == [] and schema_fields(None) == []


def test_the_review_api_refuses_an_answer_off_schema_and_records_nothing(tmp_path):
    store = tmp_path / "s.db"
    ticket_id = escalate(store)
    ticket = fp.review.get(ticket_id, store=store)
    with pytest.raises(fp.InvalidAnswer, match=r"does not match the policy's output type Address: 'city' is a required property") as caught:
        ticket.resolve({"street": "12 Main St"}, reviewer="ana")
    assert caught.value.problems == ("'city' is a required property",)
    with pytest.raises(fp.InvalidAnswer):
        fp.review.resolve(ticket_id, "Springfield", store=store)
    assert ticket.refresh().status is fp.TicketStatus.OPEN
    with open_store(store) as opened:
        assert opened.ticket_resolutions(ticket_id) == []  # a refused answer is no attempt
    done = fp.review.resolve(ticket_id, {"street": "12 Main St", "city": "Springfield"}, store=store, reviewer="ana")
    assert done.status is fp.TicketStatus.RESOLVED and done.answer["city"] == "Springfield"


# --------------------------------------------------------------------------- the command line


def test_review_resolve_exits_2_on_an_answer_off_schema_and_the_ticket_stays_open(location):
    runner = CliRunner()
    ticket_id = escalate(location)
    shown = runner.invoke(app, ["review", "show", ticket_id, "--store", location], catch_exceptions=False)
    assert shown.exit_code == 0 and "street: string - street and number" in shown.output
    assert "zip: string or null (optional)" in shown.output
    wrong = runner.invoke(app, ["review", "resolve", ticket_id, "--answer", '{"street": 12}', "--store", location])
    assert wrong.exit_code == 2
    message = " ".join(wrong.output.split())
    assert "does not match the policy's output type Address" in message
    assert "'city' is a required property" in message and "street: 12 is not of type 'string'" in message
    assert "the ticket stays open" in message
    assert fp.review.get(ticket_id, store=location).status is fp.TicketStatus.OPEN
    right = runner.invoke(app, ["review", "resolve", ticket_id, "--answer", '{"street": "12 Main St", "city": "Springfield"}',
                                "--reviewer", "ana", "--store", location])
    assert right.exit_code == 0, right.output
    assert fp.review.get(ticket_id, store=location).answer == {"street": "12 Main St", "city": "Springfield"}


# --------------------------------------------------------------------------- the review page


def test_the_page_shows_the_fields_and_refuses_an_answer_off_schema_next_to_the_field(location):
    pytest.importorskip("starlette")
    from test_serve import signed_in

    ticket_id = escalate(location)
    with open_store(location) as store:
        client = signed_in(store)
        page = client.get(f"/tickets/{ticket_id}").text
        assert 'id="answer-fields"' in page and "<code>street</code>" in page and "street and number" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        wrong = client.post(f"/tickets/{ticket_id}/answer", data={"csrf": csrf, "answer": '{"street": "<b>12</b>"}'})
        assert wrong.status_code == 400
        problems = re.search(r'<ul class="field-error" id="answer-problems" role="alert">(.*?)</ul>', wrong.text, re.S).group(1)
        assert "&#39;city&#39; is a required property" in problems
        assert 'aria-describedby="answer-problems"' in wrong.text
        assert "&lt;b&gt;12&lt;/b&gt;" in wrong.text and "<b>12</b>" not in wrong.text  # the draft is kept, escaped
        assert store.get_ticket(ticket_id).status is fp.TicketStatus.OPEN
        right = client.post(f"/tickets/{ticket_id}/answer",
                            data={"csrf": csrf, "answer": json.dumps({"street": "12 Main St", "city": "Springfield"})})
        assert right.status_code == 303
        assert store.get_ticket(ticket_id).answer == {"street": "12 Main St", "city": "Springfield"}


def test_a_ticket_whose_schema_is_not_an_object_shows_the_schema_itself(tmp_path):
    pytest.importorskip("starlette")
    from test_serve import signed_in

    store_path = str(tmp_path / "s.db")
    ticket_id = escalate(store_path, escalate_schema=list[str])
    with open_store(store_path) as store:
        client = signed_in(store)
        page = client.get(f"/tickets/{ticket_id}").text
        assert 'id="answer-schema"' in page and 'id="answer-fields"' not in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert client.post(f"/tickets/{ticket_id}/answer", data={"csrf": csrf, "answer": '"one"'}).status_code == 400
        assert client.post(f"/tickets/{ticket_id}/answer", data={"csrf": csrf, "answer": '["one"]'}).status_code == 303


def test_review_list_sorts_by_nearest_deadline(tmp_path):
    runner = CliRunner()
    store = str(tmp_path / "s.db")
    with open_store(store) as opened:
        for ticket_id, deadline in (("t-none", None), ("t-late", 4_000_000_000.0), ("t-soon", 3_000_000_000.0)):
            opened.create_ticket(fp.Ticket(ticket_id=ticket_id, queue="q", created=0.0, policy="p", trace_id=None,
                                           input_preview="x", input_raw=None, output=None, confidence=None, state=None,
                                           deadline=deadline))
    listed = runner.invoke(app, ["review", "list", "--sort", "deadline", "--json", "--store", store], catch_exceptions=False)
    assert [t["ticket_id"] for t in json.loads(listed.output)] == ["t-soon", "t-late", "t-none"]
    assert [t.ticket_id for t in fp.review.list_tickets(store=store, order="deadline", limit=1)] == ["t-soon"]
    wrong = runner.invoke(app, ["review", "list", "--sort", "newest", "--store", store])
    assert wrong.exit_code == 2 and "unknown order 'newest'" in wrong.output

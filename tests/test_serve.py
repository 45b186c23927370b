"""The review page over a store, through Starlette's test client: access, CSRF, the queue, a ticket's
answer reaching the waiting caller, traces, check runs, and that what it shows is escaped."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading

import pytest

pytest.importorskip("starlette", reason="the review page needs the serve extra: pip install 'failpath[serve]'")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from failpath import review  # noqa: E402
from failpath.core import Answered, Attempt, Ticket, TicketStatus, Trace  # noqa: E402
from failpath.serve import create_app, new_token, token_digest  # noqa: E402
from failpath.store import open_store  # noqa: E402

SECRET = "s" * 40
SCRIPT = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


def make_ticket(store, **changes) -> str:
    fields = dict(
        ticket_id="", queue="addresses", created=0.0, policy="addresses", trace_id=None,
        input_preview="12 Main St, Springfeld", input_raw=None, output={"city": "Springfeld"},
        confidence=0.41, state="low_confidence", default={"city": None},
    )
    fields.update(changes)
    return store.create_ticket(Ticket(**fields))


@pytest.fixture(params=("sqlite", "postgres"))
def store(request, tmp_path):
    """A store on each backend: the page reads and writes only through the Store interface."""
    location = str(tmp_path / "store.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with open_store(location) as opened:
        yield opened


def add(store, name: str) -> str:
    token = new_token()
    store.add_reviewer(name, token_digest(token))
    return token


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def signed_in(store, name: str = "ana") -> TestClient:
    token = add(store, name)
    client = TestClient(create_app(store, secret_key=SECRET), follow_redirects=False)
    page = client.get("/signin").text
    response = client.post("/signin", data={"token": token, "csrf": csrf_of(page)})
    assert response.status_code == 303 and response.headers["location"] == "/queue"
    return client


def form_token(client: TestClient, path: str) -> str:
    return csrf_of(client.get(path).text)


# --------------------------------------------------------------------------- access


def test_nothing_is_readable_without_signing_in(store):
    ticket_id = make_ticket(store)
    client = TestClient(create_app(store, secret_key=SECRET), follow_redirects=False)
    for path in ("/", "/queue", f"/tickets/{ticket_id}", "/traces", "/traces/x", "/runs", "/runs/x/report"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/signin", path
        assert "Springfeld" not in response.text


def test_an_unsigned_post_is_refused_even_with_a_csrf_token(store):
    ticket_id = make_ticket(store)
    client = TestClient(create_app(store, secret_key=SECRET), follow_redirects=False)
    csrf = form_token(client, "/signin")
    response = client.post(f"/tickets/{ticket_id}/answer", data={"answer": '"x"', "csrf": csrf})
    assert response.status_code == 403
    assert store.get_ticket(ticket_id).status == TicketStatus.OPEN


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(store):
    ticket_id = make_ticket(store)
    client = signed_in(store)
    for data in ({"answer": '"Springfield"'}, {"answer": '"Springfield"', "csrf": "forged"}):
        response = client.post(f"/tickets/{ticket_id}/answer", data=data)
        assert response.status_code == 403 and "CSRF" in response.text
    assert store.get_ticket(ticket_id).status == TicketStatus.OPEN


def test_a_wrong_token_does_not_sign_in_and_the_store_keeps_only_digests(store):
    token = add(store, "ana")
    client = TestClient(create_app(store, secret_key=SECRET), follow_redirects=False)
    csrf = form_token(client, "/signin")
    response = client.post("/signin", data={"token": token + "x", "csrf": csrf})
    assert response.status_code == 403 and "unknown token" in response.text
    assert client.get("/queue").status_code == 303
    assert store.reviewer_for_token(hashlib.sha256(token.encode()).hexdigest()) == "ana"
    assert store.reviewer_for_token(token) is None


def test_removing_a_reviewer_ends_their_session_at_once(store):
    client = signed_in(store)
    assert client.get("/queue").status_code == 200
    store.remove_reviewer("ana")
    assert client.get("/queue").status_code == 303


def test_pages_carry_a_strict_content_security_policy(store):
    client = signed_in(store)
    response = client.get("/queue")
    policy = response.headers["content-security-policy"]
    assert "script-src 'none'" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script" not in response.text
    cookie = response.headers.get("set-cookie") or client.cookies.get("failpath_session")
    assert cookie


def test_a_short_secret_key_is_refused(store):
    with pytest.raises(Exception, match="at least 32 characters"):
        create_app(store, secret_key="short")


# --------------------------------------------------------------------------- the queue and a ticket


def test_the_queue_lists_open_tickets_filtered_by_queue_and_escapes_what_it_shows(store):
    make_ticket(store, input_preview=SCRIPT)
    make_ticket(store, queue="refunds", input_preview="refund 40 EUR")
    client = signed_in(store)
    page = client.get("/queue").text
    assert SCRIPT not in page and "&lt;script&gt;document.title=" in page
    assert "refund 40 EUR" in page
    only = client.get("/queue", params={"queue": "refunds"}).text
    assert "refund 40 EUR" in only and "&lt;script&gt;" not in only
    assert client.get("/queue", params={"status": "bogus"}).status_code == 400


def test_the_queue_orders_by_deadline_when_asked(store):
    late = make_ticket(store, input_preview="later deadline", deadline=4_000_000_000.0)
    soon = make_ticket(store, input_preview="sooner deadline", deadline=3_000_000_000.0)
    page = signed_in(store).get("/queue", params={"sort": "deadline"}).text
    assert page.index(soon[:12]) < page.index(late[:12])


def test_the_deadline_order_pages_from_the_store_and_says_when_there_are_more(store, monkeypatch):
    from failpath.serve import app as serve_app

    monkeypatch.setattr(serve_app, "QUEUE_PAGE_SIZE", 3)
    undated = make_ticket(store, created=1.0)
    dated = [make_ticket(store, created=10.0 + i, deadline=4_000_000_000.0 - i) for i in range(3)]
    client = signed_in(store)
    page = client.get("/queue", params={"sort": "deadline"}).text
    shown = [t for t in (undated, *dated) if t[:12] in page]
    assert shown == dated and page.index(dated[2][:12]) < page.index(dated[1][:12]) < page.index(dated[0][:12])
    assert "Showing the first 3" in page
    store.resolve_ticket(dated[0], "x")
    page = client.get("/queue", params={"sort": "deadline"}).text
    assert page.index(dated[2][:12]) < page.index(dated[1][:12]) < page.index(undated[:12])
    assert "Showing the first" not in page  # exactly a page: nothing more to say


def test_the_ticket_page_shows_input_output_state_why_and_attempts(store):
    store.write_trace(Trace(
        trace_id="tr-1", time=1_700_000_000.0, policy="addresses", input_digest="0" * 64,
        input_preview="12 Main St, Springfeld", outcome="escalated", confidence=0.41,
        states=("low_confidence",), actions=("retry", "escalate"), state="low_confidence",
        attempts=(Attempt(1, "call", "parse", "low_confidence", None, {"city": "Springfeld"}, 0.41, 12.0),
                  Attempt(2, "retry", "parse", None, "TimeoutError: slow provider", None, None, 30.0)),
        detail={"reason": "confidence 0.41 below 0.80"},
    ))
    store.flush()
    ticket_id = make_ticket(store, trace_id="tr-1")
    page = signed_in(store).get(f"/tickets/{ticket_id}").text
    for shown in ("12 Main St, Springfeld", "low_confidence", "0.410", "confidence 0.41 below 0.80",
                  "TimeoutError: slow provider", "&#34;city&#34;: &#34;Springfeld&#34;"):
        assert shown in page, shown


def _post(client: TestClient, path: str, ticket_id: str, **data):
    return client.post(path, data={"csrf": form_token(client, f"/tickets/{ticket_id}"), **data})


def test_claim_then_answer_reaches_the_waiting_caller_and_records_the_reviewer(store):
    ticket_id = make_ticket(store)
    client = signed_in(store)
    waiting: dict = {}
    caller = threading.Thread(target=lambda: waiting.update(
        outcome=asyncio.run(review.get(ticket_id, store=store).wait(timeout=20, poll_interval=0.05)))
    )
    caller.start()
    assert _post(client, f"/tickets/{ticket_id}/claim", ticket_id).status_code == 303
    assert store.get_ticket(ticket_id).claimed_by == "ana"
    response = _post(client, f"/tickets/{ticket_id}/answer", ticket_id, answer='{"city": "Springfield"}', note="checked")
    assert response.status_code == 303
    caller.join(20)
    assert waiting["outcome"] == Answered({"city": "Springfield"}, None, False, state="low_confidence", trace_id=None)
    resolved = store.get_ticket(ticket_id)
    assert (resolved.status, resolved.reviewer, resolved.note) == (TicketStatus.RESOLVED, "ana", "checked")
    assert "Springfield" in client.get(f"/tickets/{ticket_id}").text


def test_an_answer_that_is_not_json_is_refused_and_kept_in_the_form(store):
    ticket_id = make_ticket(store)
    client = signed_in(store)
    response = _post(client, f"/tickets/{ticket_id}/answer", ticket_id, answer="Springfield, no quotes")
    assert response.status_code == 400 and "not JSON" in response.text
    assert "Springfield, no quotes" in response.text
    assert store.get_ticket(ticket_id).status == TicketStatus.OPEN


def test_the_second_reviewer_is_told_who_answered_first(store):
    ticket_id = make_ticket(store)
    ana = signed_in(store, "ana")
    bo = signed_in(store, "bo")
    bo_csrf = form_token(bo, f"/tickets/{ticket_id}")
    assert _post(ana, f"/tickets/{ticket_id}/answer", ticket_id, answer='"A"').status_code == 303
    late = bo.post(f"/tickets/{ticket_id}/answer", data={"csrf": bo_csrf, "answer": '"B"'})
    assert late.status_code == 409 and "ana" in late.text
    assert store.get_ticket(ticket_id).answer == "A"
    assert [(r["reviewer"], r["accepted"]) for r in store.ticket_resolutions(ticket_id)] == [("ana", True), ("bo", False)]


def test_claiming_a_ticket_another_reviewer_holds_is_refused_naming_them(store):
    ticket_id = make_ticket(store)
    ana, bo = signed_in(store, "ana"), signed_in(store, "bo")
    assert _post(ana, f"/tickets/{ticket_id}/claim", ticket_id).status_code == 303
    refused = _post(bo, f"/tickets/{ticket_id}/claim", ticket_id)
    assert refused.status_code == 409 and "ana" in refused.text


def test_claim_next_takes_the_oldest_free_ticket_and_pass_returns_it(store):
    first = make_ticket(store, created=1.0)
    make_ticket(store, created=2.0)
    client = signed_in(store)
    response = client.post("/queue/claim", data={"csrf": form_token(client, "/queue"), "queue": ""})
    assert response.headers["location"] == f"/tickets/{first}"
    assert store.get_ticket(first).claimed_by == "ana"
    assert _post(client, f"/tickets/{first}/release", first).status_code == 303
    assert store.get_ticket(first).claimed_by is None


def test_reject_answers_with_the_declared_default_and_an_approval_with_reject(store):
    plain = make_ticket(store)
    held = make_ticket(store, state="risky_tool_call", queue="approvals", default="reject", output={"tool": "refund"})
    client = signed_in(store)
    assert _post(client, f"/tickets/{plain}/reject", plain).status_code == 303
    assert store.get_ticket(plain).answer == {"city": None}
    assert "Approve the call" in client.get(f"/tickets/{held}").text
    assert _post(client, f"/tickets/{held}/reject", held).status_code == 303
    assert store.get_ticket(held).answer == "reject" and store.get_ticket(held).reviewer == "ana"


def test_an_unknown_ticket_is_a_404_naming_it(store):
    response = signed_in(store).get("/tickets/nope")
    assert response.status_code == 404 and "nope" in response.text


# --------------------------------------------------------------------------- traces and runs


def _traces(store):
    for i, (outcome, state) in enumerate([("answered", None), ("escalated", "low_confidence"), ("defaulted", "timeout")]):
        store.write_trace(Trace(
            trace_id=f"tr-{i}", time=1_700_000_000.0 + i, policy="addresses" if i < 2 else "refunds",
            input_digest="0" * 64, input_preview=SCRIPT if i == 2 else f"input {i}", outcome=outcome,
            state=state, states=() if state is None else (state,),
        ))
    store.flush()


def test_the_trace_list_takes_the_filters_of_traces_list(store):
    _traces(store)
    client = signed_in(store)
    page = client.get("/traces").text
    assert "3 traces match" in page and SCRIPT not in page
    assert "1 trace match" in client.get("/traces", params={"policy": "refunds"}).text
    assert "1 trace match" in client.get("/traces", params={"outcome": "escalated"}).text
    assert "1 trace match" in client.get("/traces", params={"state": "timeout"}).text
    assert "2 traces match" in client.get("/traces", params={"since": "2023-11-14T22:13:21Z"}).text
    bad = client.get("/traces", params={"outcome": "maybe"})
    assert bad.status_code == 400 and "unknown outcome" in bad.text
    assert client.get("/traces", params={"since": "yesterday-ish"}).status_code == 400


def test_one_trace_is_shown_escaped(store):
    _traces(store)
    client = signed_in(store)
    page = client.get("/traces/tr-2").text
    assert "&lt;script&gt;" in page and SCRIPT not in page and "timeout" in page
    assert client.get("/traces/tr-9").status_code == 404


def test_check_runs_are_listed_with_their_verdicts_and_reports(store, tmp_path_factory):
    from report_sample import stored_check

    result, source = stored_check(tmp_path_factory)
    with open_store(str(source)) as sample:
        run = sample.list_runs(kind="check")[0]
    store.create_run(run["run_id"], kind="check", config=run["config"])
    store.finish_run(run["run_id"], run["summary"])
    store.create_run("unfinished-1", kind="check", config={})
    client = signed_in(store)
    page = client.get("/runs").text
    assert result.verdict.label in page and "unfinished" in page
    report = client.get(f"/runs/{run['run_id']}/report")
    assert report.status_code == 200 and result.verdict.label in report.text
    assert "script-src 'none'" in report.headers["content-security-policy"]
    assert client.get("/runs/unfinished-1/report").status_code == 404


def test_a_runs_report_lists_every_failing_case_under_a_policy_allowing_only_its_script(tmp_path, tmp_path_factory):
    from report_sample import stored_check, without_own_scripts

    from failpath.report import html

    result, source = stored_check(tmp_path_factory)
    with open_store(str(source)) as opened:
        report = signed_in(opened).get(f"/runs/{result.run_id}/report")
    assert report.status_code == 200 and 'id="fp-case-data"' in report.text
    policy = report.headers["content-security-policy"]
    assert policy == html.content_security_policy(True) + "; frame-ancestors 'none'"
    assert "<script" not in without_own_scripts(report.text).lower()


# --------------------------------------------------------------------------- the command


def test_add_reviewer_prints_a_token_once_that_signs_in(tmp_path):
    from typer.testing import CliRunner

    from failpath.cli import app

    location = str(tmp_path / "s.db")
    out = CliRunner().invoke(app, ["serve", "add-reviewer", "ana", "--store", location])
    assert out.exit_code == 0, out.output
    token = out.output.strip().splitlines()[-1]
    with open_store(location) as opened:
        assert opened.reviewer_for_token(token_digest(token)) == "ana"
    again = CliRunner().invoke(app, ["serve", "add-reviewer", "ana", "--store", location])
    assert again.exit_code == 2 and "exists already" in again.output
    listed = CliRunner().invoke(app, ["serve", "reviewers", "--store", location])
    assert "ana" in listed.output and token not in listed.output
    assert CliRunner().invoke(app, ["serve", "remove-reviewer", "bo", "--store", location]).exit_code == 2


def test_the_compose_file_runs_serve_with_options_it_has_over_postgresql():
    import yaml
    from typer.testing import CliRunner

    from failpath.cli import app

    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    assert set(compose["services"]) == {"db", "serve"}
    command = compose["services"]["serve"]["command"][-1]
    assert "failpath serve" in command and "[postgres,serve]" in command
    assert compose["services"]["serve"]["environment"]["FAILPATH_STORE"].startswith("postgresql://")
    usage = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    for option in ("--host", "--port", "--store"):
        assert option in command and option in usage
    assert "127.0.0.1" in usage  # the default bind


def test_a_page_says_only_its_own_words_after_a_change_never_a_link_s(store):
    ticket_id = make_ticket(store)
    client = signed_in(store)
    assert "Your token expired" not in client.get("/queue", params={"message": "Your token expired", "done": "Your token expired"}).text
    assert _post(client, f"/tickets/{ticket_id}/answer", ticket_id, answer='"x"').headers["location"].endswith("?done=answered")
    assert "the waiting caller receives it" in client.get(f"/tickets/{ticket_id}", params={"done": "answered"}).text


def test_agent_checks_are_listed_and_their_report_shown_without_script(store, tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import failpath as fp
    from agent_check_helpers import Ledger, make_agent, pay_tasks

    result = fp.check_agent(make_agent(), Ledger, pay_tasks(2), keep=store, trials=2, tool_faults=[], model_faults=[], suites=[])
    store.create_run("agent-run-1", kind="agent", config={})
    client = signed_in(store)
    page = client.get("/runs").text
    assert "agent check · ledger" in page and result.verdict.label in page
    report = client.get(f"/runs/{result.run_id}/report")
    assert report.status_code == 200 and result.verdict.label in report.text and "pass^k" in report.text
    assert "script-src 'none'" in report.headers["content-security-policy"] and "<script" not in report.text.lower()
    assert client.get("/runs/agent-run-1/report").status_code == 404

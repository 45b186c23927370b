"""The review queue: tickets opened by real escalations, resolved once, waited on, expired, exported as cases."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import failpath as fp
from failpath.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from watch_systems import lookup, make_policy  # noqa: E402

runner = CliRunner()


def escalate(path, texts, **policy_options) -> list[fp.Escalated]:
    """Guarded calls on misspelled cities: each is escalated to the review queue."""
    with make_policy(path, **policy_options) as policy:
        guarded = policy.wrap(lookup)
        outcomes = [guarded(text) for text in texts]
    assert all(isinstance(o, fp.Escalated) and o.queue == "review" for o in outcomes), outcomes
    return outcomes


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_get_and_resolve_a_ticket(tmp_path):
    path = tmp_path / "failpath.db"
    (escalated,) = escalate(path, ["bstnn xx"])
    ticket = fp.review.get(escalated.ticket_id[:8], store=path)
    assert ticket.ticket_id == escalated.ticket_id and ticket.status == fp.TicketStatus.OPEN
    assert ticket.state == "low_confidence" and ticket.output == "BOS" and ticket.trace_id == escalated.trace_id
    assert isinstance(ticket.outcome(), fp.Escalated)
    done = ticket.resolve("BOS", note="the user meant Boston", reviewer="ana")
    assert done.status == fp.TicketStatus.RESOLVED and done.answer == "BOS" and done.reviewer == "ana"
    assert ticket.refresh().note == "the user meant Boston"
    with pytest.raises(fp.AlreadyResolved):
        ticket.resolve("ORD")
    assert fp.review.get(escalated.ticket_id, store=path).answer == "BOS"  # the first answer stands
    with pytest.raises(fp.TicketNotFound):
        fp.review.get("no-such-ticket", store=path)


async def test_wait_returns_the_answer_once_a_reviewer_resolves(tmp_path):
    path = tmp_path / "failpath.db"
    (escalated,) = escalate(path, ["chcgo zz"])
    ticket = fp.review.get(escalated.ticket_id, store=path)
    timer = threading.Timer(0.3, fp.review.resolve, args=(escalated.ticket_id, "ORD"), kwargs={"store": path})
    timer.start()
    started = time.monotonic()
    outcome = await ticket.wait(timeout=10, poll_interval=0.05)
    timer.join()
    assert outcome == fp.Answered("ORD", None, False, state="low_confidence", trace_id=escalated.trace_id)
    assert 0.25 < time.monotonic() - started < 5


async def test_wait_gives_up_after_the_timeout_and_the_ticket_stays_open(tmp_path):
    path = tmp_path / "failpath.db"
    (escalated,) = escalate(path, ["dnvr qq"])
    outcome = await fp.review.get(escalated.ticket_id, store=path).wait(timeout=0.2, poll_interval=0.05)
    assert outcome == fp.Escalated(escalated.ticket_id, "review", state="low_confidence", trace_id=escalated.trace_id)
    assert fp.review.get(escalated.ticket_id, store=path).status == fp.TicketStatus.OPEN


async def test_past_its_deadline_a_ticket_ends_in_the_declared_default(tmp_path):
    path = tmp_path / "failpath.db"
    (escalated,) = escalate(path, ["sttle ww"], deadline=0.3, default="UNKNOWN")
    ticket = fp.review.get(escalated.ticket_id, store=path)
    assert ticket.deadline == pytest.approx(ticket.created + 0.3)
    outcome = await ticket.wait(timeout=10, poll_interval=0.05)
    assert isinstance(outcome, fp.Defaulted) and outcome.value == "UNKNOWN" and "deadline" in outcome.reason
    assert outcome.trace_id == escalated.trace_id
    assert ticket.refresh().status == fp.TicketStatus.EXPIRED  # closed, so no reviewer answers it later
    with pytest.raises(fp.AlreadyResolved):
        ticket.resolve("SEA")
    again = fp.review.get(escalated.ticket_id, store=path).wait_sync(timeout=1)
    assert isinstance(again, fp.Defaulted) and again.value == "UNKNOWN"


def test_wait_sync_is_the_blocking_twin(tmp_path):
    path = tmp_path / "failpath.db"
    (escalated,) = escalate(path, ["mmmi oo"])
    timer = threading.Timer(0.2, fp.review.resolve, args=(escalated.ticket_id, {"code": "MIA"}), kwargs={"store": path})
    timer.start()
    outcome = fp.review.get(escalated.ticket_id, store=path).wait_sync(timeout=10, poll_interval=0.05)
    timer.join()
    assert isinstance(outcome, fp.Answered) and outcome.value == {"code": "MIA"}


def test_cli_list_show_resolve(tmp_path):
    path = tmp_path / "failpath.db"
    first, second = escalate(path, ["bstnn xx", "<b>chcgo</b> zz"])
    listed = json.loads(cli("review", "list", "--store", str(path), "--json").stdout)
    assert [t["ticket_id"] for t in listed] == [first.ticket_id, second.ticket_id]
    table = cli("review", "list", "--store", str(path)).stdout
    assert "2 open ticket(s)" in table and first.ticket_id[:12] in table and "<b>chcgo</b>" in table

    shown = cli("review", "show", first.ticket_id[:10], "--store", str(path))
    assert shown.exit_code == 0 and "bstnn xx" in shown.stdout and "low_confidence" in shown.stdout

    done = cli("review", "resolve", first.ticket_id, "--answer", '"BOS"', "--note", "typo", "--reviewer", "ana", "--store", str(path))
    assert done.exit_code == 0 and f"resolved ticket {first.ticket_id}" in done.stdout
    again = cli("review", "resolve", first.ticket_id, "--answer", '"ORD"', "--store", str(path))
    assert again.exit_code == 1 and "nothing changed" in again.stderr
    resolved = json.loads(cli("review", "list", "--status", "resolved", "--store", str(path), "--json").stdout)
    assert [(t["ticket_id"], t["answer"], t["note"], t["reviewer"]) for t in resolved] == [(first.ticket_id, "BOS", "typo", "ana")]
    assert len(json.loads(cli("review", "list", "--status", "all", "--store", str(path), "--json").stdout)) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["resolve", "{id}", "--answer", "Boston"], "--answer: 'Boston' is not valid JSON"),
        (["resolve", "{id}", "--answer", '{"city": '], "is not valid JSON"),
        (["resolve", "nope", "--answer", '"BOS"'], "nope"),
        (["show", "nope"], "nope"),
        (["list", "--status", "pending"], "unknown status 'pending'"),
        (["expire", "--older-than", "a while"], "--older-than"),
        (["export", "--format", "csv"], "--format: 'csv' is not supported"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(tmp_path, args, needle):
    path = tmp_path / "failpath.db"
    (escalated,) = escalate(path, ["bstnn xx"])
    result = cli("review", *[a.replace("{id}", escalated.ticket_id) for a in args], "--store", str(path))
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert fp.review.get(escalated.ticket_id, store=path).status == fp.TicketStatus.OPEN


def test_expire_old_tickets(tmp_path):
    path = tmp_path / "failpath.db"
    old = escalate(path, ["bstnn xx", "chcgo zz"])
    time.sleep(1.1)
    (fresh,) = escalate(path, ["dnvr qq"])
    result = cli("review", "expire", "--older-than", "1s", "--store", str(path), "--json")
    assert result.exit_code == 0
    assert {t["ticket_id"] for t in json.loads(result.stdout)} == {o.ticket_id for o in old}
    assert fp.review.get(fresh.ticket_id, store=path).status == fp.TicketStatus.OPEN
    assert isinstance(fp.review.get(old[0].ticket_id, store=path).outcome(), fp.Defaulted)
    assert "expired 0 ticket(s)" in cli("review", "expire", "--older-than", "1s", "--store", str(path)).stdout


def test_export_resolved_tickets_as_cases_for_the_next_check(tmp_path):
    path = tmp_path / "failpath.db"
    raw = escalate(path, ["bstnn xx", "chcgo zz", "call 617-555-0199 dnvr"], raw_inputs=True)
    fp.review.resolve(raw[0].ticket_id, "BOS", store=path, reviewer="ana")
    fp.review.resolve(raw[2].ticket_id, "DEN", store=path)
    out = tmp_path / "regressions.jsonl"
    result = cli("review", "export", "--format", "jsonl", "--output", str(out), "--store", str(path))
    assert result.exit_code == 0 and "exported 2 case(s)" in result.stderr and "warning" not in result.stderr
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(c["id"], c["input"], c["expected"]) for c in cases] == [
        (f"review-{raw[0].ticket_id}", "bstnn xx", "BOS"),
        (f"review-{raw[2].ticket_id}", "call 617-555-0199 dnvr", "DEN"),
    ]
    loaded = fp.load_cases(out)  # what the next `failpath check` reads
    assert [(c.input, c.expected) for c in loaded] == [("bstnn xx", "BOS"), ("call 617-555-0199 dnvr", "DEN")]
    assert "queue:review" in loaded[0].tags and "state:low_confidence" in loaded[0].tags
    assert "reviewer:ana" in loaded[0].tags and not any(t.startswith("reviewer:") for t in loaded[1].tags)

    refused = cli("review", "export", "--output", str(out), "--store", str(path))
    assert refused.exit_code == 2 and "exists" in refused.stderr
    assert len(out.read_text().splitlines()) == 2  # untouched
    assert cli("review", "export", "--output", str(out), "--force", "--store", str(path)).exit_code == 0


def test_export_without_raw_inputs_warns_about_redacted_previews(tmp_path):
    path = tmp_path / "failpath.db"
    (escalated,) = escalate(path, ["call 617-555-0199 dnvr"])
    fp.review.resolve(escalated.ticket_id, "DEN", store=path)
    result = cli("review", "export", "--store", str(path))
    assert result.exit_code == 0
    (case,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert case["input"] == "call <phone> dnvr" and case["expected"] == "DEN"
    assert "warning" in result.stderr and "redacted input preview" in result.stderr and escalated.ticket_id in result.stderr


def test_export_gives_back_structured_inputs(tmp_path):
    path = tmp_path / "failpath.db"
    with make_policy(path, raw_inputs=True) as policy:
        outcome = policy.wrap(lambda form: lookup(form["city"]))({"city": "bstnn xx", "country": "US"})
    fp.review.resolve(outcome.ticket_id, "BOS", store=path)
    (case,) = [json.loads(line) for line in cli("review", "export", "--store", str(path)).stdout.splitlines()]
    assert case["input"] == {"city": "bstnn xx", "country": "US"}


@pytest.mark.slow
def test_two_reviewers_in_separate_processes_cannot_both_resolve(tmp_path):
    path = tmp_path / "failpath.db"
    (escalated,) = escalate(path, ["bstnn xx"])
    reviewers = [
        subprocess.Popen(
            [sys.executable, "-c", "from failpath.cli import main; main()", "review", "resolve", escalated.ticket_id,
             "--answer", json.dumps(code), "--reviewer", name, "--store", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, code in [("ana", "BOS"), ("bo", "ORD"), ("cy", "DEN"), ("di", "SEA")]
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in reviewers]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1, 1, 1], results
    winner = next(i for i, (code, _, _) in enumerate(results) if code == 0)
    for code, _, err in results:
        if code == 1:
            assert "nothing changed" in err and escalated.ticket_id in err
    ticket = fp.review.get(escalated.ticket_id, store=path)
    assert (ticket.reviewer, ticket.answer) == [("ana", "BOS"), ("bo", "ORD"), ("cy", "DEN"), ("di", "SEA")][winner]


def test_cli_claim_release_and_the_record_of_resolutions(tmp_path):
    path = tmp_path / "failpath.db"
    first, second = escalate(path, ["bstnn xx", "chcgo zz"])
    claimed = cli("review", "claim", "--reviewer", "ana", "--for", "10m", "--store", str(path))
    assert claimed.exit_code == 0 and f"claimed ticket {first.ticket_id}" in claimed.stdout and "for ana until" in claimed.stdout
    table = cli("review", "list", "--store", str(path)).stdout
    assert "ana (claim)" in table
    taken = cli("review", "claim", first.ticket_id, "--reviewer", "bo", "--store", str(path))
    assert taken.exit_code == 2 and "is claimed by ana until" in taken.stderr
    assert f"claimed ticket {second.ticket_id}" in cli("review", "claim", "--reviewer", "bo", "--store", str(path)).stdout
    none_left = cli("review", "claim", "--reviewer", "cy", "--store", str(path))
    assert none_left.exit_code == 1 and "no free ticket" in none_left.stderr
    assert cli("review", "release", second.ticket_id, "--reviewer", "bo", "--store", str(path)).exit_code == 0
    assert f"claimed ticket {second.ticket_id}" in cli("review", "claim", "--reviewer", "cy", "--store", str(path)).stdout

    assert cli("review", "resolve", first.ticket_id, "--answer", '"BOS"', "--reviewer", "ana", "--store", str(path)).exit_code == 0
    late = cli("review", "resolve", first.ticket_id, "--answer", '"BWI"', "--reviewer", "bo", "--store", str(path))
    assert late.exit_code == 1 and "already resolved by ana" in late.stderr
    shown = cli("review", "show", first.ticket_id, "--store", str(path)).stdout
    assert "by ana: \"BOS\"" in shown and "by bo: \"BWI\"  (refused: resolved already)" in shown
    record = json.loads(cli("review", "show", first.ticket_id, "--store", str(path), "--json").stdout)
    assert [(r["reviewer"], r["answer"], r["accepted"]) for r in record["resolutions"]] == [("ana", "BOS", True), ("bo", "BWI", False)]
    resolved_table = cli("review", "list", "--status", "all", "--store", str(path)).stdout
    assert "ana" in resolved_table and "cy (claim)" in resolved_table
    assert cli("review", "claim", first.ticket_id, "--reviewer", "cy", "--store", str(path)).exit_code == 1

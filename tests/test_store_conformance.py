"""The store's behaviour, specified once and checked against every backend: SQLite and PostgreSQL.

Each test takes ``location`` (where a store is: a SQLite file, or the URL of a fresh PostgreSQL
database on the session's throwaway server) or ``store`` (a store open there). The PostgreSQL
half is skipped, naming the Debian package, where PostgreSQL's binaries are not installed.
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import math
import multiprocessing
import subprocess
import sys
import threading
import time

import pytest

from failpath.core import AlreadyResolved, Attempt, StoreError, Ticket, TicketNotFound, TicketStatus, Trace
from failpath.store import open_store

BACKENDS = ("sqlite", "postgres")


def make_trace(i: int = 0, **changes) -> Trace:
    fields = dict(
        trace_id=f"tr-{i:06d}",
        time=1_700_000_000.0 + i,
        policy="addresses",
        input_digest="0" * 64,
        input_preview=f"input {i}",
        outcome="answered",
    )
    fields.update(changes)
    return Trace(**fields)


def make_ticket(**changes) -> Ticket:
    fields = dict(
        ticket_id="",
        queue="review",
        created=0.0,
        policy="addresses",
        trace_id="tr-000001",
        input_preview="12 Main St",
        input_raw=None,
        output={"street": "Main St"},
        confidence=0.41,
        state="low_confidence",
    )
    fields.update(changes)
    return Ticket(**fields)


@pytest.fixture(params=BACKENDS)
def location(request, tmp_path):
    """Where a new, empty store is: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(location):
    with open_store(location) as opened:
        yield opened


def _spawn():
    return multiprocessing.get_context("spawn")


# --------------------------------------------------------------------------- traces


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Address:
    street: str
    number: int


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_trace_round_trip_with_attempts(store):
    trace = make_trace(
        7,
        outcome="defaulted",
        input_raw="12 main st",
        output={"street": "Main St", "number": 12},
        confidence=0.25,
        states=("timeout", "low_confidence"),
        actions=("retry", "default"),
        state="low_confidence",
        attempts=(
            Attempt(1, "call", system="primary", state="timeout", error="SystemTimeout: 5s", latency_ms=5000.0),
            Attempt(2, "retry", system="primary", output={"street": "Main"}, confidence=0.25, latency_ms=12.5,
                    usage={"input_tokens": 10, "output_tokens": 4}),
        ),
        degraded=True,
        latency_ms=5012.5,
        ticket_id="t-0123456789",
        usage={"input_tokens": 10.0, "output_tokens": 4.0},
        detail={"reason": "low confidence", "detectors": {"confidence": "0.25 < 0.6"}},
    )
    store.write_trace(trace)
    store.flush()
    assert store.get_trace(trace.trace_id) == trace


def test_odd_outputs_are_rendered_never_fail_the_write(store):
    pydantic = pytest.importorskip("pydantic")

    class Parsed(pydantic.BaseModel):
        street: str
        parts: tuple[int, ...]

    odd = {
        "model": Parsed(street="Main", parts=(1, 2)),
        "dataclass": Address("Main", 12),
        "tuple": (1, "two"),
        "set": {3, 1, 2},
        "bytes": b"\xff\xfeok",
        "nan": float("nan"),
        "inf": float("inf"),
        "enum": Color.RED,
        "object": object,
        "unprintable": Unprintable(),
        7: "int key",
    }
    store.write_trace(make_trace(1, output=odd, confidence=float("nan"),
                                 attempts=(Attempt(1, "call", output=Unprintable()),)))
    store.write_trace(make_trace(2, output=Unprintable(), detail={"when": Color.RED}))
    store.flush()
    first = store.get_trace("tr-000001")
    assert first.output == {
        "model": {"street": "Main", "parts": [1, 2]},
        "dataclass": {"street": "Main", "number": 12},
        "tuple": [1, "two"],
        "set": [1, 2, 3],
        "bytes": "\\xff\\xfeok",
        "nan": "NaN",
        "inf": "Infinity",
        "enum": "red",
        "object": "<class 'object'>",
        "unprintable": "<unrepresentable Unprintable>",
        "7": "int key",
    }
    assert first.confidence is None
    assert first.attempts[0].output == "<unrepresentable Unprintable>"
    second = store.get_trace("tr-000002")
    assert second.output == "<unrepresentable Unprintable>" and second.detail == {"when": "red"}


def test_write_trace_refuses_what_is_not_a_trace(store):
    with pytest.raises(TypeError, match="Trace"):
        store.write_trace({"trace_id": "x"})


def test_get_trace_by_unique_prefix(store):
    store.write_trace(make_trace(1, trace_id="abc-111"))
    store.write_trace(make_trace(2, trace_id="abc-222"))
    store.write_trace(make_trace(3, trace_id="xyz-333"))
    assert store.get_trace("xyz").trace_id == "xyz-333"
    assert store.get_trace("abc-2").trace_id == "abc-222"
    assert store.get_trace("abc-111").trace_id == "abc-111"
    assert store.get_trace("nope") is None
    assert store.get_trace("") is None
    with pytest.raises(StoreError, match="matches several traces"):
        store.get_trace("abc")


def test_reads_see_traces_queued_by_the_same_store(store):
    for i in range(50):
        store.write_trace(make_trace(i))
    assert store.count_traces() == 50  # no explicit flush


def fill_for_queries(store):
    """20 traces: policy alternates a/b, outcome cycles, every 3rd has a timeout, every 4th low_confidence."""
    outcomes = ("answered", "escalated", "abstained", "defaulted")
    for i in range(20):
        states = tuple(s for s, every in (("timeout", 3), ("low_confidence", 4)) if i % every == 0)
        store.write_trace(
            make_trace(
                i,
                policy="a" if i % 2 == 0 else "b",
                outcome=outcomes[i % 4],
                states=states,
                state=states[-1] if states else None,
            )
        )
    store.flush()


def test_query_and_count_filters(store):
    fill_for_queries(store)
    t0 = 1_700_000_000.0
    assert store.count_traces() == 20
    assert store.count_traces(policy="a") == 10
    assert store.count_traces(outcome="escalated") == 5
    assert store.count_traces(state="timeout") == 7  # 0, 3, ..., 18
    assert store.count_traces(state="low_confidence") == 5
    assert store.count_traces(state="timeout", policy="a") == 4  # 0, 6, 12, 18
    assert store.count_traces(state="timeout", outcome="answered") == 2  # 0, 12
    assert store.count_traces(since=t0 + 5, until=t0 + 10) == 5
    assert store.count_traces(state="timeout", since=t0 + 3, until=t0 + 12) == 3  # 3, 6, 9
    assert store.count_traces(state="invalid_output") == 0

    newest = store.query_traces(limit=3)
    assert [t.trace_id for t in newest] == ["tr-000019", "tr-000018", "tr-000017"]
    oldest = store.query_traces(limit=2, newest_first=False)
    assert [t.trace_id for t in oldest] == ["tr-000000", "tr-000001"]
    by_state = store.query_traces(state="timeout", limit=None)
    assert [t.trace_id for t in by_state] == [f"tr-{i:06d}" for i in (18, 15, 12, 9, 6, 3, 0)]
    assert all("timeout" in t.states for t in by_state)
    by_state_old = store.query_traces(state="timeout", newest_first=False, limit=2, policy="b")
    assert [t.trace_id for t in by_state_old] == ["tr-000003", "tr-000009"]
    window = store.query_traces(policy="b", since=t0 + 10, until=t0 + 16, limit=None)
    assert [t.trace_id for t in window] == ["tr-000015", "tr-000013", "tr-000011"]
    assert len(store.query_traces(limit=None)) == 20
    assert store.query_traces(limit=0) == []


def test_deciding_state_counts_even_if_missing_from_states(store):
    store.write_trace(make_trace(1, state="empty_input", states=()))
    assert store.count_traces(state="empty_input") == 1
    assert store.query_traces(state="empty_input")[0].trace_id == "tr-000001"


def test_delete_traces_before_a_time(store):
    fill_for_queries(store)
    t0 = 1_700_000_000.0
    assert store.delete_traces(until=t0 + 10, policy="a") == 5
    assert store.count_traces() == 15
    assert store.count_traces(state="timeout") == 5  # 0 and 6 were policy a, before t0 + 10
    assert store.delete_traces(until=t0 + 10) == 5
    assert store.count_traces() == 10 and store.count_traces(state="timeout") == 3
    assert store.delete_traces(until=t0) == 0
    assert [t.trace_id for t in store.query_traces(newest_first=False, limit=1)] == ["tr-000010"]


def test_a_duplicate_trace_id_is_stored_once(store):
    store.write_trace(make_trace(1))
    store.write_trace(make_trace(1))
    assert store.count_traces() == 1


# --------------------------------------------------------------------------- tickets


def test_create_and_get_ticket(store):
    before = time.time()
    ticket_id = store.create_ticket(make_ticket(deadline=before + 60, default={"street": None}))
    assert ticket_id.startswith("t-") and len(ticket_id) == 12
    int(ticket_id[2:], 16)
    ticket = store.get_ticket(ticket_id)
    assert ticket.ticket_id == ticket_id
    assert ticket.status is TicketStatus.OPEN
    assert ticket.created >= before  # created=0 became now
    assert ticket.output == {"street": "Main St"} and ticket.default == {"street": None}
    assert ticket.confidence == 0.41 and ticket.state == "low_confidence"
    assert store.get_ticket(ticket_id[:6]).ticket_id == ticket_id


def test_create_ticket_with_given_id_and_duplicates(store):
    assert store.create_ticket(make_ticket(ticket_id="t-mine", created=5.0)) == "t-mine"
    assert store.get_ticket("t-mine").created == 5.0
    with pytest.raises(StoreError, match="exists already"):
        store.create_ticket(make_ticket(ticket_id="t-mine"))


def test_get_ticket_missing_or_ambiguous(store):
    store.create_ticket(make_ticket(ticket_id="t-aa1"))
    store.create_ticket(make_ticket(ticket_id="t-aa2"))
    with pytest.raises(TicketNotFound, match="no ticket 't-zz'"):
        store.get_ticket("t-zz")
    with pytest.raises(TicketNotFound, match="matches several tickets"):
        store.get_ticket("t-aa")
    with pytest.raises(TicketNotFound):
        store.get_ticket("")


def test_list_tickets_filters_and_order(store):
    ids = [store.create_ticket(make_ticket(created=100.0 + i, queue="q1" if i % 2 else "q2")) for i in range(6)]
    assert [t.ticket_id for t in store.list_tickets()] == ids
    assert [t.ticket_id for t in store.list_tickets(queue="q1")] == ids[1::2]
    store.resolve_ticket(ids[0], "x")
    assert [t.ticket_id for t in store.list_tickets(status="open")] == ids[1:]
    assert [t.ticket_id for t in store.list_tickets(status=TicketStatus.RESOLVED)] == ids[:1]
    assert [t.ticket_id for t in store.list_tickets(status="open", queue="q2", limit=1)] == [ids[2]]
    with pytest.raises(StoreError, match="unknown ticket status 'closed'"):
        store.list_tickets(status="closed")


ADDRESS_SCHEMA = {
    "title": "Address",
    "type": "object",
    "properties": {"street": {"type": "string"}, "zip": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
    "required": ["street"],
}


@pytest.mark.parametrize("queued", [False, True])
def test_a_ticket_keeps_its_output_schema(location, queued):
    with open_store(location, queue_tickets=queued) as store:
        with_schema = store.create_ticket(make_ticket(output_schema=ADDRESS_SCHEMA))
        without = store.create_ticket(make_ticket())
        assert store.get_ticket(with_schema).output_schema == ADDRESS_SCHEMA
        assert store.get_ticket(without).output_schema is None
        listed = {t.ticket_id: t.output_schema for t in store.list_tickets()}
        assert listed == {with_schema: ADDRESS_SCHEMA, without: None}
        store.resolve_ticket(with_schema, {"street": "Main St", "zip": None})
        assert store.get_ticket(with_schema).output_schema == ADDRESS_SCHEMA


def test_list_tickets_by_nearest_deadline_then_the_undated_oldest_first(store):
    now = 1_000_000.0
    spec = [  # (created, deadline, queue)
        (now - 50, now + 300, "q1"),
        (now - 40, None, "q2"),
        (now - 30, now + 100, "q2"),
        (now - 60, None, "q1"),
        (now - 20, now + 100, "q1"),  # same deadline as the third: the older one first
        (now - 10, now + 5, "q2"),
    ]
    ids = [store.create_ticket(make_ticket(created=c, deadline=d, queue=q)) for c, d, q in spec]
    by_deadline = [ids[5], ids[2], ids[4], ids[0], ids[3], ids[1]]
    assert [t.ticket_id for t in store.list_tickets(status="open", order="deadline")] == by_deadline
    assert [t.ticket_id for t in store.list_tickets(order="deadline")] == by_deadline
    for limit in range(len(ids) + 1):
        assert [t.ticket_id for t in store.list_tickets(status="open", order="deadline", limit=limit)] == by_deadline[:limit]
    assert [t.ticket_id for t in store.list_tickets(status="open", queue="q1", order="deadline")] == [ids[4], ids[0], ids[3]]
    assert [t.ticket_id for t in store.list_tickets(status="open", order="oldest", limit=2)] == [ids[3], ids[0]]
    store.resolve_ticket(ids[5], "done")
    assert [t.ticket_id for t in store.list_tickets(status="open", order="deadline", limit=2)] == [ids[2], ids[4]]
    assert [t.ticket_id for t in store.list_tickets(status="resolved", order="deadline")] == [ids[5]]
    with pytest.raises(StoreError, match="unknown ticket order 'newest': use one of oldest, deadline"):
        store.list_tickets(order="newest")


def test_resolve_ticket_then_second_resolution_is_refused(store):
    ticket_id = store.create_ticket(make_ticket())
    resolved = store.resolve_ticket(ticket_id[:7], {"street": "Main Street"}, note="checked", reviewer="ana")
    assert resolved.status is TicketStatus.RESOLVED
    assert resolved.answer == {"street": "Main Street"}
    assert resolved.note == "checked" and resolved.reviewer == "ana" and resolved.resolved_at is not None
    with pytest.raises(AlreadyResolved, match="already resolved by ana at") as caught:
        store.resolve_ticket(ticket_id, "other", reviewer="bo")
    assert caught.value.ticket.answer == {"street": "Main Street"}
    assert store.get_ticket(ticket_id).reviewer == "ana"
    with pytest.raises(TicketNotFound):
        store.resolve_ticket("t-none", "x")


def test_expire_tickets_by_age_and_deadline(store):
    now = 10_000.0
    old = store.create_ticket(make_ticket(created=now - 7200))
    due = store.create_ticket(make_ticket(created=now - 10, deadline=now - 1, default="fallback"))
    fresh = store.create_ticket(make_ticket(created=now - 10, deadline=now + 100))
    done = store.create_ticket(make_ticket(created=now - 9000))
    store.resolve_ticket(done, "answer")
    expired = store.expire_tickets(older_than=3600, now=now)
    assert [t.ticket_id for t in expired] == [old, due]
    assert all(t.status is TicketStatus.EXPIRED and t.resolved_at == now for t in expired)
    assert store.get_ticket(fresh).status is TicketStatus.OPEN
    assert store.get_ticket(done).status is TicketStatus.RESOLVED
    assert store.expire_tickets(older_than=3600, now=now) == []
    with pytest.raises(AlreadyResolved, match="expired"):
        store.resolve_ticket(old, "late")


# --------------------------------------------------------------------------- runs and results


def test_runs_create_get_list_finish(store):
    store.create_run("run-2024-a", kind="check", config={"suites": ("hostile", "clean"), "seed": 1})
    store.create_run("run-2024-b", kind="chaos", config={})
    run = store.get_run("run-2024-a")
    assert run["kind"] == "check" and run["config"] == {"suites": ["hostile", "clean"], "seed": 1}
    assert run["finished"] is None and run["summary"] is None
    assert store.get_run("run-2024-b")["run_id"] == "run-2024-b"
    assert store.get_run("nothing") is None
    with pytest.raises(StoreError, match="matches several runs"):
        store.get_run("run-2024")
    assert [r["run_id"] for r in store.list_runs()] == ["run-2024-b", "run-2024-a"]
    assert [r["run_id"] for r in store.list_runs(kind="check")] == ["run-2024-a"]
    assert len(store.list_runs(limit=1)) == 1
    store.finish_run("run-2024-a", {"verdict": "DEMO", "gap": math.inf})
    finished = store.get_run("run-2024-a")
    assert finished["finished"] >= finished["created"]
    assert finished["summary"] == {"verdict": "DEMO", "gap": "Infinity"}
    with pytest.raises(StoreError, match="exists already"):
        store.create_run("run-2024-a", kind="check", config={})
    with pytest.raises(StoreError, match="no run 'ghost'"):
        store.finish_run("ghost", {})


def test_add_results_is_idempotent_per_key_and_keeps_write_order(store):
    store.create_run("r", kind="check", config={})
    store.create_run("other", kind="check", config={})
    assert store.add_results("r", [("c3", {"ok": True}), ("c1", {"ok": False})]) == 2
    assert store.add_results("r", [("c1", {"ok": True}), ("c2", {"ok": True}), ("c2", {"ok": False})]) == 1
    assert store.add_results("r", []) == 0
    assert store.add_results("other", [("c1", {"x": (1, 2)})]) == 1
    assert store.result_keys("r") == {"c1", "c2", "c3"}
    rows = store.results("r")
    assert [(row["key"], row["data"]) for row in rows] == [
        ("c3", {"ok": True}), ("c1", {"ok": False}), ("c2", {"ok": True})
    ]
    assert store.results("other")[0]["data"] == {"x": [1, 2]}
    assert store.result_keys("nobody") == set() and store.results("nobody") == []


def test_add_results_needs_a_run_and_string_keys(store):
    with pytest.raises(StoreError, match="no run 'ghost'.*create_run"):
        store.add_results("ghost", [("k", {})])
    store.create_run("r", kind="check", config={})
    with pytest.raises(TypeError, match="result keys are strings"):
        store.add_results("r", [(1, {})])
    assert store.result_keys("r") == set()


def test_store_is_usable_from_many_threads_for_sync_writes(store):
    store.create_run("r", kind="check", config={})
    errors = []

    def work(n):
        try:
            for i in range(50):
                store.add_results("r", [(f"{n}-{i}", {"i": i})])
                store.create_ticket(make_ticket())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.result_keys("r")) == 200
    assert len(store.list_tickets()) == 200


# --------------------------------------------------------------------------- flushing, closing, several stores


def test_flush_makes_traces_visible_to_another_store_on_the_same_location(location):
    with open_store(location, batch_size=7, flush_interval=5.0) as writer, open_store(location) as reader:
        for i in range(100):
            writer.write_trace(make_trace(i))
        writer.flush(timeout=10)
        assert reader.count_traces() == 100


def test_close_flushes_and_is_idempotent_and_writes_after_close_fail(location):
    opened = open_store(location, flush_interval=10.0)
    for i in range(10):
        opened.write_trace(make_trace(i))
    opened.close()
    opened.close()
    assert opened.closed
    with pytest.raises(StoreError, match="closed"):
        opened.write_trace(make_trace(99))
    with pytest.raises(StoreError, match="closed"):
        opened.count_traces()
    with open_store(location) as again:
        assert again.count_traces() == 10


def test_a_store_dropped_without_close_is_flushed(location):
    opened = open_store(location, flush_interval=10.0)
    for i in range(10):
        opened.write_trace(make_trace(i))
    del opened
    gc.collect()
    with open_store(location) as again:
        assert again.count_traces() == 10


def test_interpreter_exit_flushes_open_stores(location):
    code = (
        "import sys; sys.path[:0] = %r\n"
        "from failpath.store import open_store\n"
        "from test_store_conformance import make_trace\n"
        "store = open_store(%r, flush_interval=60.0)\n"
        "for i in range(500): store.write_trace(make_trace(i))\n"
    ) % (sys.path, location)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with open_store(location) as again:
        assert again.count_traces() == 500


def test_add_results_is_committed_before_returning(location):
    with open_store(location) as opened, open_store(location) as other:
        opened.create_run("r", kind="check", config={})
        opened.add_results("r", [("k", {"v": 1})])
        assert other.result_keys("r") == {"k"}


def test_results_after_reads_a_run_piece_by_piece_while_others_write_it(location):
    with open_store(location) as reader, open_store(location) as writer:
        writer.create_run("old", kind="check", config={})
        writer.add_results("old", [(f"o{i}", {"i": i}) for i in range(5)])
        writer.create_run("r", kind="check", config={})
        assert reader.results_after("r") == ([], 0)  # nothing yet: start again from the beginning
        writer.add_results("r", [("b", {"n": 1}), ("a", {"n": 2})])
        first, position = reader.results_after("r")
        assert first == [("b", {"n": 1}), ("a", {"n": 2})] and position > 0
        assert reader.results_after("r", position) == ([], position)
        # Another run written in between, then more of this one, from another connection.
        writer.create_run("mid", kind="check", config={})
        writer.add_results("mid", [("m", {"n": 0})])
        writer.add_results("r", [("c", {"n": (3, 4)}), ("a", {"n": 99})])  # "a" again: ignored
        more, later = reader.results_after("r", position)
        assert more == [("c", {"n": [3, 4]})] and later > position
        assert reader.results_after("r", later) == ([], later)
        everything, _ = reader.results_after("r")
        assert everything == first + more
        assert {key for key, _ in everything} == reader.result_keys("r")
        assert reader.results_after("nobody") == ([], 0)


def test_results_after_with_a_limit_reads_a_run_a_batch_at_a_time(store):
    store.create_run("other", kind="check", config={})
    store.create_run("r", kind="check", config={})
    store.add_results("other", [("x", {"n": -1})])
    store.add_results("r", [(f"k{i}", {"n": i}) for i in range(7)])
    store.add_results("other", [("y", {"n": -2})])
    batches, position = [], 0
    while True:
        rows, position = store.results_after("r", position, limit=3)
        if not rows:
            break
        batches.append(rows)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [row for batch in batches for row in batch] == store.results_after("r")[0]
    assert store.results_after("r", 0, limit=100)[0] == store.results_after("r")[0]


# --------------------------------------------------------------------------- resuming an interrupted check

_INTERRUPTED_RUN = """
import os, signal, sys
sys.path[:0] = {sys_path!r}
from failpath.store import open_store
store = open_store({location!r})
store.create_run("check-1", kind="check", config={{"cases": 40}})
for chunk in range(3):
    store.add_results("check-1", [(f"case-{{chunk * 10 + i:02d}}", {{"ok": i % 2 == 0}}) for i in range(10)])
os.kill(os.getpid(), signal.SIGKILL)  # killed mid-run: no finish_run, no close
"""


def test_an_interrupted_check_resumes_from_what_its_store_holds(location):
    code = _INTERRUPTED_RUN.format(sys_path=sys.path, location=location)
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == -9
    wanted = [f"case-{i:02d}" for i in range(40)]
    with open_store(location) as store:
        unfinished = [r for r in store.list_runs(kind="check") if r["finished"] is None]
        assert [r["run_id"] for r in unfinished] == ["check-1"] and unfinished[0]["config"] == {"cases": 40}
        stored = store.result_keys("check-1")
        assert stored == set(wanted[:30])
        # The resumed run computes what is missing; a row written again (a race at the kill) is ignored.
        todo = [key for key in wanted if key not in stored]
        assert store.add_results("check-1", [("case-29", {"ok": "again"})] + [(k, {"ok": True}) for k in todo]) == 10
        store.finish_run("check-1", {"rows": 40})
    with open_store(location) as store:
        rows = store.results("check-1")
        assert [row["key"] for row in rows] == wanted
        assert rows[29]["data"] == {"ok": False}  # the first write of a key stays
        assert store.get_run("check-1")["summary"] == {"rows": 40}


# --------------------------------------------------------------------------- races and several writers


def test_threads_racing_to_resolve_a_ticket_exactly_one_wins_and_the_others_are_told_who(store):
    ticket_id = store.create_ticket(make_ticket())
    barrier = threading.Barrier(8)
    winners, refusals = [], []

    def resolve(name):
        barrier.wait()
        try:
            store.resolve_ticket(ticket_id, {"by": name}, reviewer=name)
            winners.append(name)
        except AlreadyResolved as exc:
            refusals.append(str(exc))

    threads = [threading.Thread(target=resolve, args=(f"rev{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(refusals) == 7
    assert all(f"already resolved by {winners[0]} at" in message for message in refusals)
    stored = store.get_ticket(ticket_id)
    assert stored.reviewer == winners[0] and stored.answer == {"by": winners[0]}


def _race_to_resolve(location: str, name: str, ticket_ids: list[str], barrier, wins) -> None:
    store = open_store(location)
    for ticket_id in ticket_ids:
        barrier.wait()
        try:
            store.resolve_ticket(ticket_id, {"by": name}, reviewer=name)
            wins.put((ticket_id, name, None))
        except AlreadyResolved as exc:
            wins.put((ticket_id, None, str(exc)))
    store.close()


def test_processes_racing_to_resolve_a_ticket_exactly_one_wins(location):
    rounds = 8
    with open_store(location) as store:
        ticket_ids = [store.create_ticket(make_ticket()) for _ in range(rounds)]
    ctx = _spawn()
    barrier = ctx.Barrier(3)
    wins = ctx.Queue()
    names = ("ana", "bo", "cy")
    processes = [ctx.Process(target=_race_to_resolve, args=(location, name, ticket_ids, barrier, wins)) for name in names]
    for process in processes:
        process.start()
    outcomes = [wins.get(timeout=120) for _ in range(len(names) * rounds)]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    with open_store(location) as store:
        for ticket_id in ticket_ids:
            mine = [o for o in outcomes if o[0] == ticket_id]
            winners = [name for _, name, _ in mine if name is not None]
            refusals = [message for _, name, message in mine if name is None]
            assert len(winners) == 1 and len(refusals) == len(names) - 1
            stored = store.get_ticket(ticket_id)
            assert stored.reviewer == winners[0] and stored.answer == {"by": winners[0]}
            assert all(f"already resolved by {winners[0]} at" in message for message in refusals)


def _write_traces_in_process(location: str, n: int, barrier) -> None:
    store = open_store(location, batch_size=64)
    barrier.wait()
    for i in range(1000):
        store.write_trace(make_trace(i, trace_id=f"pr{n}-{i:04d}", states=("low_confidence",) if i % 5 == 0 else ()))
    store.close()


def test_four_processes_write_4000_traces_into_one_store(location):
    parent = open_store(location)  # the parent keeps it open (and writes) at the same time
    ctx = _spawn()
    barrier = ctx.Barrier(4)
    processes = [ctx.Process(target=_write_traces_in_process, args=(location, n, barrier)) for n in range(4)]
    for process in processes:
        process.start()
    for i in range(200):
        parent.write_trace(make_trace(i, trace_id=f"parent-{i:04d}"))
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    parent.close()
    with open_store(location) as again:
        everything = again.query_traces(limit=None)
        assert len(everything) == len({t.trace_id for t in everything}) == 4200
        assert again.count_traces() == 4200
        assert again.count_traces(state="low_confidence") == 4 * 200
        assert again.count_traces(since=1_700_000_000.0 + 999) == 4  # i == 999 in each writer process
        for n in range(4):
            assert again.get_trace(f"pr{n}-0999") is not None
        from failpath.watch.stats import trace_stats

        rolled = trace_stats(again)  # the hourly rollup, kept by five writers at once
        assert rolled.approximate and rolled.total.calls == 4200
        assert rolled.total.states == trace_stats(again, exact=True).total.states == {"low_confidence": 800}


# --------------------------------------------------------------------------- several reviewers: claims and resolutions


def test_claims_hand_out_the_oldest_free_ticket_and_lapse_back_to_the_queue(store):
    now = time.time()
    first, second, third = (store.create_ticket(make_ticket(created=now - 300 + i, queue="q")) for i in range(3))
    other_queue = store.create_ticket(make_ticket(created=now - 1000, queue="elsewhere"))
    ana = store.claim_ticket("ana", queue="q", lease=60, now=now)
    assert (ana.ticket_id, ana.claimed_by, ana.claimed_until) == (first, "ana", now + 60)
    assert store.claim_ticket("bo", queue="q", lease=60, now=now).ticket_id == second
    assert store.claim_ticket("cy", lease=60, now=now).ticket_id == other_queue  # no queue: any queue, oldest first
    assert store.claim_ticket("cy", queue="q", lease=60, now=now).ticket_id == third
    assert store.claim_ticket("dee", queue="q", lease=60, now=now) is None  # every ticket is held
    assert store.get_ticket(first).claimed_by == "ana"
    # Ana's claim lapses: the ticket is free again for the next reviewer; Ana may renew hers on others.
    assert store.claim_ticket("dee", queue="q", lease=60, now=now + 61).ticket_id == first
    with pytest.raises(StoreError, match=rf"ticket {first} is claimed by dee until"):
        store.claim_ticket("ana", ticket_id=first, now=now + 62)
    renewed = store.claim_ticket("bo", ticket_id=second[:8], lease=600, now=now + 30)
    assert renewed.claimed_until == now + 630
    released = store.release_ticket(second, "bo")
    assert released.claimed_by is None and released.claimed_until is None
    with pytest.raises(StoreError, match="is claimed by dee"):
        store.release_ticket(first, "ana")  # only the holder gives a claim back
    store.resolve_ticket(third, "x", reviewer="cy")
    with pytest.raises(AlreadyResolved, match="already resolved by cy"):
        store.claim_ticket("ana", ticket_id=third)
    with pytest.raises(StoreError, match="reviewer's name"):
        store.claim_ticket("")


def test_each_resolution_is_kept_with_its_reviewer_and_only_the_first_is_accepted(store):
    ticket_id = store.create_ticket(make_ticket())
    store.claim_ticket("bo", ticket_id=ticket_id)
    store.resolve_ticket(ticket_id, {"street": "Main St"}, note="looked it up", reviewer="ana")  # a claim does not block
    with pytest.raises(AlreadyResolved, match="already resolved by ana"):
        store.resolve_ticket(ticket_id, {"street": "Maine St"}, reviewer="bo")
    history = store.ticket_resolutions(ticket_id[:6])
    assert [(h["reviewer"], h["answer"], h["note"], h["accepted"]) for h in history] == [
        ("ana", {"street": "Main St"}, "looked it up", True),
        ("bo", {"street": "Maine St"}, None, False),
    ]
    assert history[0]["at"] <= history[1]["at"]
    stored = store.get_ticket(ticket_id)
    assert stored.reviewer == "ana" and stored.claimed_until is None


def test_reviewers_claiming_at_once_in_threads_each_get_a_different_ticket(store):
    ids = {store.create_ticket(make_ticket(created=100.0 + i)) for i in range(12)}
    barrier = threading.Barrier(6)
    claimed: list[str] = []

    def claim_all(name):
        barrier.wait()
        while (ticket := store.claim_ticket(name, lease=600)) is not None:
            claimed.append(ticket.ticket_id)

    threads = [threading.Thread(target=claim_all, args=(f"rev{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)


def _claim_until_none(location: str, name: str, barrier, claimed) -> None:
    store = open_store(location)
    barrier.wait()
    mine = []
    while (ticket := store.claim_ticket(name, lease=600)) is not None:
        mine.append(ticket.ticket_id)
    claimed.put((name, mine))
    store.close()


def test_reviewers_claiming_at_once_from_processes_each_get_a_different_ticket(location):
    with open_store(location) as store:
        ids = {store.create_ticket(make_ticket(created=100.0 + i)) for i in range(30)}
    ctx = _spawn()
    barrier = ctx.Barrier(3)
    claimed = ctx.Queue()
    processes = [ctx.Process(target=_claim_until_none, args=(location, f"rev{n}", barrier, claimed)) for n in range(3)]
    for process in processes:
        process.start()
    results = [claimed.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    every = [ticket_id for _, mine in results for ticket_id in mine]
    assert sorted(every) == sorted(ids)
    with open_store(location) as store:
        holders = {t.ticket_id: t.claimed_by for t in store.list_tickets()}
    assert all(holders[ticket_id] == name for name, mine in results for ticket_id in mine)


def test_nul_and_control_characters_in_inputs_are_stored_not_fatal(store):
    hostile = "12 Main\x00St\u200b\x1b[31m"
    store.write_trace(make_trace(1, input_preview=hostile, input_raw=hostile, output={"text": hostile},
                                 attempts=(Attempt(1, "call", output=hostile, confidence=0.5),)))
    store.write_trace(make_trace(2))
    store.flush()  # raises if a trace was lost
    stored = store.get_trace("tr-000001")
    # SQLite keeps the NUL; PostgreSQL's text cannot hold one and keeps U+FFFD in its place.
    assert stored.input_preview in (hostile, hostile.replace("\x00", "\ufffd"))
    assert stored.output == {"text": hostile} and stored.attempts[0].output == hostile  # JSON escapes it
    from failpath.watch.stats import trace_stats

    assert trace_stats(store, raw_confidence=True).total.confidence_n == 1
    ticket_id = store.create_ticket(make_ticket(input_preview=hostile, input_raw=hostile))
    assert store.get_ticket(ticket_id).input_raw in (hostile, hostile.replace("\x00", "\ufffd"))
    store.resolve_ticket(ticket_id, hostile, note=hostile, reviewer="ana")
    assert store.get_ticket(ticket_id).answer == hostile


# --------------------------------------------------------------------------- other processes: location and fork


def _count_in_child(location: str, out) -> None:
    with open_store(location) as store:
        store.write_trace(make_trace(500, trace_id="from-child"))
        store.flush()
        out.put(store.count_traces())


def test_location_opens_the_same_store_in_another_process(store):
    store.write_trace(make_trace(1))
    store.flush()
    ctx = _spawn()
    out = ctx.Queue()
    child = ctx.Process(target=_count_in_child, args=(store.location, out))
    child.start()
    assert out.get(timeout=60) == 2
    child.join(60)
    assert child.exitcode == 0 and store.get_trace("from-child") is not None


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_writes_through_its_own_connections_and_the_parent_keeps_its_own(location):
    import os

    store = open_store(location, flush_interval=5.0)
    store.write_trace(make_trace(1))
    store.flush()
    store.create_run("r", kind="check", config={})  # the pool's connections are open before the fork
    store.write_trace(make_trace(2))  # queued in the parent, not written yet
    pid = os.fork()
    if pid == 0:  # the child: its own queue and connections; the parent's pending trace is not its to write
        code = 0
        try:
            for i in range(100, 110):
                store.write_trace(make_trace(i))
            store.add_results("r", [("child", {"ok": True})])
            store.close()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    store.add_results("r", [("parent", {"ok": True})])
    store.close()
    with open_store(location) as again:
        assert again.count_traces() == 1 + 1 + 10  # each trace once: the parent wrote its own pending one
        assert again.result_keys("r") == {"child", "parent"}


def test_a_store_of_your_own_without_claims_says_so_and_keeps_no_record():
    from test_guard_support import MemoryStore

    own = MemoryStore()
    with pytest.raises(StoreError, match="MemoryStore does not support review claims"):
        own.claim_ticket("ana")
    with pytest.raises(StoreError, match="does not support review claims"):
        own.release_ticket("t-1", "ana")
    assert own.ticket_resolutions("t-1") == []


def test_following_new_traces_while_processes_write_misses_none_and_repeats_none(location):
    from failpath.store import trace_queries as q

    with open_store(location) as reader:
        cursor = q.latest_cursor(reader)
        ctx = _spawn()
        barrier = ctx.Barrier(3)
        processes = [ctx.Process(target=_write_traces_in_process, args=(location, n, barrier)) for n in range(3)]
        for process in processes:
            process.start()
        seen: list[str] = []
        while any(p.is_alive() for p in processes):
            found, cursor = q.traces_after(reader, cursor, q.TraceFilter(), limit=500)
            seen += [t.trace_id for t in found]
            time.sleep(0.01)
        for process in processes:
            process.join(60)
            assert process.exitcode == 0
        while True:  # what was committed after the last look
            found, cursor = q.traces_after(reader, cursor, q.TraceFilter(), limit=500)
            if not found:
                break
            seen += [t.trace_id for t in found]
    assert len(seen) == len(set(seen)) == 3000


def _add_results_in_process(location: str, n: int, barrier) -> None:
    store = open_store(location)
    barrier.wait()
    for chunk in range(40):
        store.add_results("run", [(f"w{n}-{chunk:02d}-{i}", {"n": n}) for i in range(5)])
    store.close()


def test_reading_a_run_while_processes_add_its_rows_misses_none_and_repeats_none(location):
    with open_store(location) as reader:
        reader.create_run("run", kind="check", config={})
        ctx = _spawn()
        barrier = ctx.Barrier(3)
        processes = [ctx.Process(target=_add_results_in_process, args=(location, n, barrier)) for n in range(3)]
        for process in processes:
            process.start()
        seen: list[str] = []
        position = 0
        while any(p.is_alive() for p in processes):
            rows, position = reader.results_after("run", position)
            seen += [key for key, _ in rows]
            time.sleep(0.005)
        for process in processes:
            process.join(60)
            assert process.exitcode == 0
        rows, position = reader.results_after("run", position)
        seen += [key for key, _ in rows]
    assert len(seen) == len(set(seen)) == 3 * 40 * 5


def test_agent_checkpoints_claim_their_number_once_and_read_back_in_order(store):
    assert store.checkpoints("run-a") == []
    assert store.add_checkpoint("run-a", 0, "start", {"input": "refund order 7"}) is True
    assert store.add_checkpoint("run-a", 2, "tool", {"tool": "refund", "result": {"ok": True, "amount": 12.5}}) is True
    assert store.add_checkpoint("run-a", 1, "model", {"text": "caf\u00e9"}) is True
    # The number is taken: a second writer of step 1 is told, and nothing changes.
    assert store.add_checkpoint("run-a", 1, "model", {"text": "another"}) is False
    assert store.checkpoints("run-a") == [
        (0, "start", {"input": "refund order 7"}),
        (1, "model", {"text": "caf\u00e9"}),
        (2, "tool", {"tool": "refund", "result": {"ok": True, "amount": 12.5}}),
    ]
    assert store.checkpoints("run-b") == []
    for run_id, seq in (("", 0), ("run-a", -1), ("run-a", True), ("run-a", 1.0)):
        with pytest.raises(StoreError):
            store.add_checkpoint(run_id, seq, "model", {})


def test_threads_racing_for_one_checkpoint_number_exactly_one_gets_it(store):
    wins: list[int] = []
    start = threading.Barrier(8)

    def claim(i: int) -> None:
        start.wait()
        if store.add_checkpoint("run-race", 0, "tool", {"writer": i}):
            wins.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert store.checkpoints("run-race") == [(0, "tool", {"writer": wins[0]})]


def test_begin_run_registers_a_run_with_its_first_checkpoint_once(store):
    config = {"agent": "refunds", "policy": "desk", "ref": None}
    assert store.begin_run("run-a", kind="agent", config=config, first_checkpoint=("start", {"input": "refund order 7"})) is True
    assert store.get_run("run-a")["config"] == config and store.get_run("run-a")["kind"] == "agent"
    assert store.checkpoints("run-a") == [(0, "start", {"input": "refund order 7"})]
    # The id is taken: nothing is written, whether by an agent run, a check run, or checkpoints without a run.
    assert store.begin_run("run-a", kind="agent", config={}, first_checkpoint=("start", {"input": "other"})) is False
    assert store.checkpoints("run-a") == [(0, "start", {"input": "refund order 7"})]
    store.create_run("check-1", kind="check", config={})
    assert store.begin_run("check-1", kind="agent", config={}, first_checkpoint=("start", {})) is False
    assert store.checkpoints("check-1") == [] and store.get_run("check-1")["kind"] == "check"
    assert store.add_checkpoint("orphan", 0, "start", {"old": True}) is True
    assert store.begin_run("orphan", kind="agent", config={}, first_checkpoint=("start", {})) is False
    assert store.get_run("orphan") is None and store.checkpoints("orphan") == [(0, "start", {"old": True})]
    # A run id that is the prefix of another run's is a run id of its own.
    assert store.begin_run("run", kind="agent", config={}, first_checkpoint=("start", {})) is True
    with pytest.raises(StoreError):
        store.begin_run("", kind="agent", config={}, first_checkpoint=("start", {}))


def test_end_run_writes_the_last_checkpoint_and_marks_the_run_finished_together(store):
    assert store.begin_run("run-a", kind="agent", config={}, first_checkpoint=("start", {})) is True
    assert store.end_run("run-a", last_checkpoint=(1, "end", {"outcome": {"kind": "answered"}}), summary={"trace_id": "t1"}) is True
    run = store.get_run("run-a")
    assert run["finished"] is not None and run["summary"] == {"trace_id": "t1"}
    assert [kind for _, kind, _ in store.checkpoints("run-a")] == ["start", "end"]
    # The number is taken (another process ended the run first): nothing is written.
    assert store.begin_run("run-b", kind="agent", config={}, first_checkpoint=("start", {})) is True
    assert store.add_checkpoint("run-b", 1, "model", {}) is True
    assert store.end_run("run-b", last_checkpoint=(1, "end", {}), summary={"trace_id": "t2"}) is False
    assert store.get_run("run-b")["finished"] is None and len(store.checkpoints("run-b")) == 2


def test_an_agent_run_is_begun_checkpointed_ended_and_resumed_through_the_store(store):
    import failpath as fp

    @fp.tool(idempotent=True)
    def lookup(order_id: str) -> dict:
        """Look up an order."""
        return {"order_id": order_id, "total": 40.0}

    def model(messages):
        if not any(m["role"] == "tool" for m in messages):
            return fp.ModelTurn(tool_calls=(fp.ToolCall("c0", "lookup", {"order_id": "7"}),))
        return "order 7: 40.0"

    policy = fp.Policy("conformance-agent", rules=[fp.on(fp.Unexpected()).do(fp.Abstain("unexpected"))], store=store)
    agent = fp.Agent(policy, model=model, tools=[lookup])
    assert agent.run("look up order 7", run_id="agent-1").kind == "answered"
    assert [kind for _, kind, _ in store.checkpoints("agent-1")] == ["start", "model", "started", "tool", "end"]
    run = store.get_run("agent-1")
    assert run["kind"] == "agent" and run["finished"] is not None and run["summary"]["outcome"]["kind"] == "answered"
    with pytest.raises(StoreError, match="exists already"):
        agent.run("look up order 7", run_id="agent-1")
    assert agent.resume("agent-1").kind == "answered"  # a finished run returns its outcome again
    assert len(store.checkpoints("agent-1")) == 5


# --------------------------------------------------------------------------- reviewers of the review page


def test_reviewers_are_kept_by_the_digest_of_their_token_never_the_token(store):
    import hashlib

    digest = hashlib.sha256(b"secret-token").hexdigest()
    store.add_reviewer("ana", digest)
    store.add_reviewer("bo", hashlib.sha256(b"other").hexdigest())
    assert store.reviewer_for_token(digest) == "ana"
    assert store.reviewer_for_token(hashlib.sha256(b"wrong").hexdigest()) is None
    assert [r["name"] for r in store.list_reviewers()] == ["ana", "bo"]
    assert all(r["created"] > 0 for r in store.list_reviewers())
    with pytest.raises(StoreError, match="exists already"):
        store.add_reviewer("ana", hashlib.sha256(b"again").hexdigest())
    with pytest.raises(StoreError, match="SHA-256"):
        store.add_reviewer("cy", "secret-token")  # a raw token is refused: only digests are stored
    with pytest.raises(StoreError, match="reviewer name"):
        store.add_reviewer(" ana", digest)
    assert store.remove_reviewer("ana") is True
    assert store.reviewer_for_token(digest) is None
    assert store.remove_reviewer("ana") is False


def test_a_reviewer_added_in_one_store_signs_in_through_another_on_the_same_location(location):
    import hashlib

    digest = hashlib.sha256(b"t").hexdigest()
    with open_store(location) as first:
        first.add_reviewer("ana", digest)
    with open_store(location) as second:
        assert second.reviewer_for_token(digest) == "ana"


def test_checkpoints_written_with_earlier_ones_go_all_together_or_not_at_all(store):
    assert store.writes_earlier_checkpoints is True
    assert store.begin_run("run-h", kind="agent", config={}, first_checkpoint=("start", {})) is True
    assert store.add_checkpoint("run-h", 3, "started", {"c": 3}, earlier=[(1, "model", {"m": 1}), (2, "tool", {"t": 2})]) is True
    assert [(seq, kind) for seq, kind, _ in store.checkpoints("run-h")] == [(0, "start"), (1, "model"), (2, "tool"), (3, "started")]
    # One of them taken (another process continued the run): none of them is written.
    assert store.add_checkpoint("run-h", 5, "tool", {}, earlier=[(4, "model", {}), (3, "model", {})]) is False
    assert [seq for seq, _, _ in store.checkpoints("run-h")] == [0, 1, 2, 3]
    assert store.end_run("run-h", last_checkpoint=(6, "end", {}), summary={"trace_id": "t"}, earlier=[(4, "model", {}), (5, "tool", {})]) is True
    assert [seq for seq, _, _ in store.checkpoints("run-h")] == [0, 1, 2, 3, 4, 5, 6] and store.get_run("run-h")["finished"] is not None
    assert store.begin_run("run-i", kind="agent", config={}, first_checkpoint=("start", {})) is True
    assert store.add_checkpoint("run-i", 1, "model", {}) is True
    assert store.end_run("run-i", last_checkpoint=(3, "end", {}), summary={}, earlier=[(1, "model", {}), (2, "tool", {})]) is False
    assert [seq for seq, _, _ in store.checkpoints("run-i")] == [0, 1] and store.get_run("run-i")["finished"] is None

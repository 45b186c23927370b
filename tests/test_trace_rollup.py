"""``traces stats`` from the store's hourly rollup, on both backends: counts equal to reading every trace,
quantiles within the stated bounds (latency 1% relative, confidence 0.0005), kept true through duplicate
writes, deletions and a migration of a store that already held traces."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from failpath.cli import app
from failpath.core import Trace
from failpath.store import open_store
from failpath.store import rollup
from failpath.watch.stats import trace_stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from traces_query import make_trace  # noqa: E402  (realistic traces: outcomes, states, fallbacks, latencies)

END = 1_700_000_000.0 + 1234.5  # not on an hour boundary
N = 6000  # over the week before END


@pytest.fixture(params=("sqlite", "postgres"))
def location(request, tmp_path):
    return str(tmp_path / "store.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def filled(location):
    rng = random.Random(17)
    with open_store(location) as store:
        for i in range(N):
            store.write_trace(make_trace(i, N, END, rng))
        store.flush()
        yield store


def same_figures(store, **query) -> None:
    """The rollup's figures against those read from every trace: counts equal, quantiles within the bounds."""
    fast, exact = trace_stats(store, **query), trace_stats(store, exact=True, **query)
    assert fast.approximate and not exact.approximate
    assert fast.to_dict()["quantiles"].startswith("approximate") and exact.to_dict()["quantiles"] == "exact"
    assert len(fast.windows) == len(exact.windows)
    for a, b in zip([fast.total, *fast.windows], [exact.total, *exact.windows]):
        assert (a.start, a.end, a.calls, a.degraded) == (b.start, b.end, b.calls, b.degraded)
        assert a.outcomes == b.outcomes and a.states == b.states
        assert a.confidence_n == b.confidence_n and a.confidence_histogram == b.confidence_histogram
        for p, value in b.latency_ms.items():
            if value is None:  # a window with no trace
                assert a.latency_ms[p] is None, p
                continue
            assert a.latency_ms[p] == pytest.approx(value, rel=rollup.LATENCY_ACCURACY, abs=1e-9), p
        for p, value in b.confidence_quantiles.items():
            assert (a.confidence_quantiles[p] is None) == (value is None)
            if value is not None:
                assert abs(a.confidence_quantiles[p] - value) <= 0.0005 + 1e-12, p


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"window": 3600.0},
        {"window": 86400.0, "policy": "invoices"},
        {"outcome": "escalated", "since": END - 3 * 86400 + 17.25},
        {"since": END - 2 * 86400 - 99.5, "until": END - 86400 + 7.75, "window": 7200.0},
        {"since": END - 1800.0},  # one partial hour, then the current one
        {"since": END + 86400.0, "until": END + 3 * 86400.0, "window": 3600.0},  # whole hours, no trace
    ],
)
def test_the_rollup_gives_the_figures_of_every_trace_within_the_stated_bounds(filled, query):
    same_figures(filled, **query)


def test_what_the_rollup_cannot_answer_reads_every_trace(filled):
    assert not trace_stats(filled, state="timeout").approximate
    assert not trace_stats(filled, window=300.0).approximate  # not whole hours
    assert not trace_stats(filled, since=END - 1800.0, until=END - 900.0).approximate  # no whole hour
    assert not trace_stats(filled, raw_confidence=True).approximate


def test_a_trace_written_twice_counts_once(location):
    with open_store(location) as store:
        trace = Trace(trace_id="tr-dup", time=END, policy="p", input_digest="0", input_preview="x", outcome="answered",
                      latency_ms=12.0, confidence=0.5, states=("low_confidence",))
        for _ in range(3):
            store.write_trace(trace)
            store.flush()  # each in a batch of its own: the second and third insert nothing
        stats = trace_stats(store)
        assert stats.approximate and stats.total.calls == 1 and stats.total.states == {"low_confidence": 1}


def test_deleting_traces_keeps_the_rollup_true(filled):
    filled.delete_traces(until=END - 4 * 86400 + 1000.5, policy="addresses")  # cuts an hour in two
    same_figures(filled)
    same_figures(filled, window=3600.0)
    filled.delete_traces(until=END - 2 * 86400)  # on an hour boundary? not necessarily: either way
    same_figures(filled, window=3600.0)


def test_a_store_that_held_traces_before_the_rollup_reads_them_until_it_is_rebuilt(filled):
    with filled._transaction() as connection:  # as a migration to version 6 leaves a store with traces
        connection.execute("DELETE FROM trace_rollup")
        connection.execute("UPDATE trace_rollup_state SET complete = 0")
    stats = trace_stats(filled)
    assert not stats.approximate and stats.total.calls == N
    assert filled.rebuild_trace_rollup() == N
    same_figures(filled, window=3600.0)


def test_a_schema_1_sqlite_store_is_migrated_with_its_rollup_to_rebuild(tmp_path):
    path = tmp_path / "old.db"
    shutil.copyfile(Path(__file__).parent / "data" / "store-schema-1.db", path)
    with open_store(str(path)) as store:
        assert not trace_stats(store).approximate and trace_stats(store).total.calls == 5
        result = CliRunner().invoke(app, ["traces", "rollup", "--store", str(path)], catch_exceptions=False)
        assert result.exit_code == 0 and "5 trace(s)" in result.output
        same_figures(store)


def test_the_command_says_whether_its_quantiles_are_approximate(filled):
    runner = CliRunner()
    fast = json.loads(runner.invoke(app, ["traces", "stats", "--json", "--store", filled.location]).output)
    exact = json.loads(runner.invoke(app, ["traces", "stats", "--json", "--exact", "--store", filled.location]).output)
    assert fast["quantiles"].startswith("approximate: latency within 1%") and exact["quantiles"] == "exact"
    assert fast["total"]["calls"] == exact["total"]["calls"] == N
    table = runner.invoke(app, ["traces", "stats", "--store", filled.location], terminal_width=200).output
    assert "quantiles approximate" in table and "--exact" in table
    usage = runner.invoke(app, ["traces", "stats", "--help"], terminal_width=200).output
    assert "within 1%" in " ".join(usage.split()) and "--exact" in usage


def test_a_store_of_your_own_keeps_no_rollup_and_says_so():
    from failpath.core import StoreError
    from failpath.store.base import Store

    class Mine(Store):  # every abstract method, nothing else
        pass

    for name in list(Mine.__abstractmethods__):
        setattr(Mine, name, lambda self, *a, **k: None)
    Mine.__abstractmethods__ = frozenset()
    with pytest.raises(StoreError, match="Mine keeps no trace rollup"):
        Mine().rebuild_trace_rollup()


def test_an_escalated_calls_trace_written_with_its_ticket_is_in_the_rollup(location):
    """An escalation writes its trace in the ticket's own transaction, not through the trace writer's
    batches; the rollup must count it all the same."""
    import failpath as fp

    with open_store(location) as store:
        policy = fp.Policy("esc", [fp.on(fp.LowConfidence(below=0.8)).do(fp.Escalate(queue="q")),
                                   fp.on(fp.Unexpected()).do(fp.Abstain("x"))], store=store)
        guarded = policy.wrap(lambda text: fp.Prediction(text, confidence=0.1 if text.startswith("low") else 0.95))
        outcomes = [guarded(f"{'low' if i % 3 == 0 else 'high'} {i}") for i in range(30)]
        store.flush()
        assert sum(isinstance(o, fp.Escalated) for o in outcomes) == 10
        fast, exact = trace_stats(store), trace_stats(store, exact=True)
        assert fast.approximate and exact.total.calls == 30
        assert fast.total.calls == 30 and fast.total.outcomes == exact.total.outcomes
        assert fast.total.states == exact.total.states
        policy.close()

"""``failpath traces list|tail|show|stats`` over traces left by real guarded calls."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import failpath as fp
from failpath.cli import app
from failpath.store import trace_queries as q

sys.path.insert(0, str(Path(__file__).parent))
from watch_systems import lookup, make_policy  # noqa: E402

runner = CliRunner()

FIRST = ["boston", "chicago", "bostn", "boom now", "garbled", "", "xqzv", "denver"]
SECOND = ["seattle", "miami", "portlnd", "boom again", "zzzz"]


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def as_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A store holding the traces of two bursts of real guarded calls, and what each call returned."""
    path = tmp_path_factory.mktemp("traces") / "failpath.db"
    outcomes: list[fp.Outcome] = []
    with make_policy(path) as policy:
        guarded = policy.wrap(lookup, name="lookup")
        outcomes += [guarded(text) for text in FIRST]
        policy.flush()
        time.sleep(0.05)
        middle = time.time()
        time.sleep(0.05)
        outcomes += [guarded(text) for text in SECOND]
    with make_policy(path, name="airports-eu") as other:
        outcomes.append(other.wrap(lookup)("dallas"))
    return path, outcomes, middle


def test_list_returns_every_trace_newest_first_with_filters(populated):
    path, outcomes, _ = populated
    listed = as_json(run("traces", "list", "--store", str(path), "--json", "--limit", "100"))
    assert len(listed) == len(outcomes)
    assert [t["time"] for t in listed] == sorted((t["time"] for t in listed), reverse=True)
    assert {t["trace_id"] for t in listed} == {o.trace_id for o in outcomes}

    mine = as_json(run("traces", "list", "--store", str(path), "--json", "--policy", "airports"))
    assert len(mine) == len(FIRST) + len(SECOND) and {t["policy"] for t in mine} == {"airports"}

    escalated = as_json(run("traces", "list", "--store", str(path), "--json", "--outcome", "escalated"))
    assert {t["trace_id"] for t in escalated} == {o.trace_id for o in outcomes if o.kind == "escalated"}

    failing = as_json(run("traces", "list", "--store", str(path), "--json", "--state", "provider_error"))
    assert len(failing) == 2 and all("provider_error" in t["states"] for t in failing)
    assert all(t["attempts"][0]["error"].startswith("ProviderFailure") for t in failing)

    limited = as_json(run("traces", "list", "--store", str(path), "--json", "-n", "3", "--oldest-first"))
    assert [t["trace_id"] for t in limited] == [o.trace_id for o in outcomes[:3]]


def test_time_window_with_iso_times_and_durations(populated):
    path, outcomes, middle = populated
    iso = datetime.fromtimestamp(middle, tz=timezone.utc).isoformat()
    later = as_json(run("traces", "list", "--store", str(path), "--json", "--since", iso, "--policy", "airports"))
    earlier = as_json(run("traces", "list", "--store", str(path), "--json", "--until", iso, "--policy", "airports"))
    assert {t["trace_id"] for t in later} == {o.trace_id for o in outcomes[len(FIRST):len(FIRST) + len(SECOND)]}
    assert {t["trace_id"] for t in earlier} == {o.trace_id for o in outcomes[: len(FIRST)]}
    assert len(as_json(run("traces", "list", "--store", str(path), "--json", "--since", "1h"))) == len(outcomes)
    assert as_json(run("traces", "list", "--store", str(path), "--json", "--until", "1h")) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "yesterday"], "--since: cannot read 'yesterday'"),
        (["--until", "5 parsecs"], "--until"),
        (["--outcome", "answer"], "unknown outcome 'answer'"),
    ],
)
@pytest.mark.parametrize("command", ["list", "stats"])
def test_bad_filters_exit_2_with_a_clear_message(populated, command, args, needle):
    path, _, _ = populated
    result = run("traces", command, "--store", str(path), *args)
    assert result.exit_code == 2
    assert needle in result.stderr and "Traceback" not in result.output


def test_bad_window_and_missing_store_exit_2(populated, tmp_path):
    path, _, _ = populated
    result = run("traces", "stats", "--store", str(path), "--window", "5 minutes")
    assert result.exit_code == 2 and "--window" in result.stderr
    missing = tmp_path / "nope.db"
    result = run("traces", "list", "--store", str(missing))
    assert result.exit_code == 2 and f"no store at {missing}" in result.stderr
    assert not missing.exists()  # a read never creates a store


def test_show_a_trace_by_prefix(populated):
    path, outcomes, _ = populated
    failed = next(o for o in outcomes if o.state == "provider_error")
    shown = as_json(run("traces", "show", failed.trace_id[:10], "--store", str(path), "--json"))
    assert shown["trace_id"] == failed.trace_id
    assert [a["action"] for a in shown["attempts"]][:2] == ["call", "retry"]
    assert shown["ticket_id"] == failed.ticket_id and shown["outcome"] == "escalated"
    text = run("traces", "show", failed.trace_id, "--store", str(path))
    assert text.exit_code == 0
    assert "provider_error" in text.stdout and "ProviderFailure: upstream returned 503" in text.stdout
    missing = run("traces", "show", "feedfacecafe", "--store", str(path))
    assert missing.exit_code == 2 and "no trace with id 'feedfacecafe'" in missing.stderr


def test_stats_match_the_traces(populated):
    path, outcomes, _ = populated
    listed = as_json(run("traces", "list", "--store", str(path), "--json", "--policy", "airports", "-n", "100"))
    stats = as_json(run("traces", "stats", "--store", str(path), "--json", "--policy", "airports", "--exact"))
    assert stats["quantiles"] == "exact"
    total = stats["total"]
    n = len(listed)
    assert total["calls"] == n
    kinds = Counter(t["outcome"] for t in listed)
    assert total["outcomes"] == dict(kinds)
    assert total["outcome_shares"]["escalated"] == pytest.approx(kinds["escalated"] / n)
    states = Counter(s for t in listed for s in set(t["states"]) | ({t["state"]} if t["state"] else set()))
    assert total["states"] == dict(states)
    latencies = [t["latency_ms"] for t in listed]
    for p in (50, 95, 99):
        assert total["latency_ms"][f"p{p}"] == pytest.approx(np.percentile(latencies, p))
    answers = [t["confidence"] for t in listed if t["confidence"] is not None]
    assert stats["confidence"] == "answers given" and total["confidence"]["n"] == len(answers) == kinds["answered"]
    assert total["confidence"]["quantiles"]["p05"] == pytest.approx(np.quantile(answers, 0.05))
    assert total["degraded"] == sum(t["degraded"] for t in listed)
    # Without --exact, whole hours come from the store's hourly rollup: the same counts, quantiles within its bounds.
    rolled = as_json(run("traces", "stats", "--store", str(path), "--json", "--policy", "airports"))
    assert rolled["quantiles"].startswith("approximate")
    assert {k: rolled["total"][k] for k in ("calls", "outcomes", "states", "degraded")} == {k: total[k] for k in ("calls", "outcomes", "states", "degraded")}
    for p in (50, 95, 99):
        assert rolled["total"]["latency_ms"][f"p{p}"] == pytest.approx(np.percentile(latencies, p), rel=0.01)
    assert rolled["total"]["confidence"]["quantiles"]["p05"] == pytest.approx(np.quantile(answers, 0.05), abs=0.0005)

    raw_stats = as_json(run("traces", "stats", "--store", str(path), "--json", "--policy", "airports", "--raw-confidence"))
    raw = [t["attempts"][0]["confidence"] for t in listed if t["attempts"] and t["attempts"][0]["action"] == "call"]
    raw = [c for c in raw if c is not None]
    assert raw_stats["confidence"] == "raw (first call)" and len(raw) > len(answers)
    assert raw_stats["total"]["confidence"]["n"] == len(raw)
    assert raw_stats["total"]["confidence"]["quantiles"]["p50"] == pytest.approx(np.quantile(raw, 0.5))
    assert sum(raw_stats["total"]["confidence"]["histogram"]["counts"]) == len(raw)
    expected = np.histogram(raw, bins=10, range=(0, 1))[0].tolist()
    assert raw_stats["total"]["confidence"]["histogram"]["counts"] == expected


def test_stats_per_window_add_up(populated):
    path, _, _ = populated
    stats = as_json(run("traces", "stats", "--store", str(path), "--json", "--window", "1h"))
    windows = stats["windows"]
    assert windows and stats["window_seconds"] == 3600
    assert sum(w["calls"] for w in windows) == stats["total"]["calls"]
    for w in windows:
        assert w["end"] - w["start"] == 3600 and w["start"] % 3600 == 0
        assert sum(w["outcomes"].values()) == w["calls"]
    by_state = as_json(run("traces", "stats", "--store", str(path), "--json", "--state", "low_confidence"))
    low = as_json(run("traces", "list", "--store", str(path), "--json", "--state", "low_confidence", "-n", "100"))
    assert by_state["total"]["calls"] == len(low) > 0
    assert by_state["total"]["states"]["low_confidence"] == len(low)


def test_stats_table_shows_outcomes_states_latency_and_confidence(populated):
    path, _, _ = populated
    result = run("traces", "stats", "--store", str(path), "--window", "5m")
    assert result.exit_code == 0
    out = result.stdout
    for needle in ("answered", "escalated", "provider_error", "low_confidence", "p95", "p99", "per 5m window"):
        assert needle in out
    empty = run("traces", "stats", "--store", str(path), "--policy", "nobody")
    assert empty.exit_code == 0 and "no trace matches" in empty.stdout


def test_hostile_inputs_are_shown_escaped_never_interpreted(tmp_path):
    path = tmp_path / "failpath.db"
    hostile = "[bold red]boston[/bold red]\x1b[2J\u200b"
    with make_policy(path, raw_inputs=True) as policy:
        policy.wrap(lookup)(hostile)
    for args in (["traces", "list"], ["traces", "tail"]):
        out = run(*args, "--store", str(path)).stdout
        assert "[bold red]" in out and "\x1b" not in out and "\\x1b" in out and "\\u200b" in out
    trace_id = as_json(run("traces", "list", "--store", str(path), "--json"))[0]["trace_id"]
    shown = run("traces", "show", trace_id, "--store", str(path)).stdout
    assert "\x1b" not in shown and "[bold red]boston" in shown


def test_tail_prints_the_latest_traces(populated):
    path, outcomes, _ = populated
    result = run("traces", "tail", "--store", str(path), "-n", "2", "--json")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [t["trace_id"] for t in lines] == [o.trace_id for o in outcomes[-2:]]
    text = run("traces", "tail", "--store", str(path), "-n", "1", "--policy", "airports")
    assert outcomes[-2].trace_id[:12] in text.stdout


@pytest.mark.slow
def test_tail_follow_prints_traces_written_by_another_process(tmp_path):
    path = tmp_path / "failpath.db"
    with make_policy(path) as policy:
        policy.wrap(lookup)("boston")
    follower = subprocess.Popen(
        [sys.executable, "-c", "from failpath.cli import main; main()", "traces", "tail", "--store", str(path),
         "--follow", "--interval", "0.1", "--for", "6s", "-n", "5", "--json", "--state", "low_confidence"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        time.sleep(2.0)  # the follower has started and printed the (empty) backlog
        written = []
        with make_policy(path) as policy:
            guarded = policy.wrap(lookup)
            for text in ["xqzv", "chicago", "qqqq", "denver", "wxyz"]:
                written.append(guarded(text))
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    seen = [json.loads(line)["trace_id"] for line in out.splitlines()]
    assert seen == [o.trace_id for o in written if o.state == "low_confidence"]


def test_cursor_returns_each_new_trace_once_in_write_order(tmp_path):
    path = tmp_path / "failpath.db"
    store = fp.open_store(path)
    try:
        with make_policy(store) as policy:
            guarded = policy.wrap(lookup)
            before, cursor = q.last_traces(store, q.TraceFilter(), 10)
            assert before == [] and cursor == 0
            first = [guarded(t) for t in ["boston", "xqzv", "miami"]]
            found, cursor = q.traces_after(store, cursor, q.TraceFilter())
            # Each once, in the order the store wrote them: an escalated call's trace goes in with its
            # ticket, so it can come before earlier calls' traces still queued for the writer.
            assert sorted(t.trace_id for t in found) == sorted(o.trace_id for o in first)
            written_order = [t.trace_id for t in found]
            assert q.traces_after(store, cursor, q.TraceFilter())[0] == []
            second = [guarded(t) for t in ["qqqq", "denver"]]
            found, cursor = q.traces_after(store, cursor, q.TraceFilter(outcome="answered"))
            assert [t.trace_id for t in found] == [second[1].trace_id]
            assert cursor == q.latest_cursor(store)
            page, _ = q.traces_after(store, 0, q.TraceFilter(), limit=2)
            assert [t.trace_id for t in page] == written_order[:2]
    finally:
        store.close()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),  # window
            st.integers(-1, 4),  # outcome code
            st.booleans(),
            st.floats(0, 1e4, allow_nan=False),
            st.one_of(st.just(float("nan")), st.floats(0, 1), st.sampled_from([0.0, 0.1, 0.3, 0.7, 1.0])),
        ),
        min_size=1,
        max_size=80,
    )
)
def test_per_window_figures_equal_numpy_on_each_window(rows):
    from failpath.store.trace_queries import COLUMN_DTYPE
    from failpath.watch.stats import CONFIDENCE_QUANTILES, _summaries

    rows = sorted(rows, key=lambda r: r[0])
    array = np.array([(float(w), o, d, lat, c) for w, o, d, lat, c in rows], dtype=COLUMN_DTYPE)
    present, group = np.unique(array["time"], return_inverse=True)
    names = ["answered", "clarify", "escalated", "abstained", "defaulted", "other"]
    summaries = _summaries(array, names, group, [(w, w + 1) for w in present], [{} for _ in present])
    for w, summary in zip(present, summaries):
        part = array[array["time"] == w]
        assert summary.calls == len(part) and summary.degraded == int(part["degraded"].sum())
        assert summary.outcomes == {names[c]: n for c, n in Counter(int(c) for c in part["outcome"]).items()}
        for key, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            assert summary.latency_ms[key] == pytest.approx(np.percentile(part["latency_ms"], q), rel=1e-9, abs=1e-9)
        known = part["confidence"][np.isfinite(part["confidence"])]
        assert summary.confidence_n == len(known)
        if len(known):
            expected = np.quantile(known, CONFIDENCE_QUANTILES)
            assert list(summary.confidence_quantiles.values()) == pytest.approx(list(expected), abs=1e-12)
            assert list(summary.confidence_histogram) == np.histogram(known, bins=10, range=(0, 1))[0].tolist()
        else:
            assert set(summary.confidence_quantiles.values()) == {None} and sum(summary.confidence_histogram) == 0

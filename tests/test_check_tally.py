"""The streaming tally: figures made from rows folded in batch by batch equal the figures made from the full list.

The reference is the row-at-a-time code (``metrics.group_figures``, ``verdict.state_coverage``,
``verdict.hostile_flips``) applied to every row at once, in key order, as a check once did.
"""

from __future__ import annotations

import dataclasses
import math
import random
import tracemalloc
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failpath.check.explain import choose_worst
from failpath.check.metrics import confidence_quality, derive_int_seed, group_figures, is_judged
from failpath.check.summarise import summarise
from failpath.check.tally import RowTally
from failpath.check.verdict import hostile_flips, state_coverage
from failpath.core import OUTCOME_KINDS, is_valid_confidence

SUITES = {"hostile": ("hostile", ["zero_width", "zero", "markup"]), "realistic": ("realistic", ["typo", "case"]),
          "fault": ("fault", ["timeout"])}
CASES = ["c1", "c1.5", "c10", "c2", "c1-b"]
HANDLED = {"low_confidence": ("escalate",), "injection_suspected": ("abstain",), "timeout": ("retry", "abstain"),
           "unexpected": ()}
BUDGETS = {"silent_failure": 0.05, "coverage_floor": 0.5, "delta": 0.1, "accepted": {},
           "costs": {"answer": [0.0, 10.0], "clarify": [1.0, 4.0], "escalate": [3.0, 3.0]}}
COSTS = {"answer": (0.0, 10.0), "clarify": (1.0, 4.0), "escalate": (3.0, 3.0)}


def judge(a, b):
    if a == "boom":
        raise ValueError("unreadable")
    return a == b


row_fields = st.fixed_dictionaries({
    "outcome": st.sampled_from([*OUTCOME_KINDS, "escaped"]),
    "correct": st.booleans(),
    "raw_correct": st.booleans(),
    "raw_error": st.sampled_from([None, None, None, "TimeoutError: late"]),
    "raw_confidence": st.sampled_from([None, 0.0, 0.3, 0.3, 0.9, 1.0, 1.5, True, 2 / 3]),
    "confidence": st.sampled_from([None, 0.2, 0.8, 0.95]),
    "state": st.sampled_from([None, None, "low_confidence", "injection_suspected", "timeout"]),
    "states": st.lists(st.sampled_from(["low_confidence", "injection_suspected", "timeout", "mine"]), max_size=3),
    "actions": st.lists(st.sampled_from(["escalate", "abstain", "retry", "fallback"]), max_size=2),
    "value": st.sampled_from(["A", "B", "boom", {"x": 1}, [1, 2], None]),
    "contract": st.sampled_from(["unchanged", "unchanged", "transformed", "not_preserved"]),
})


@st.composite
def runs(draw):
    split = {c: draw(st.sampled_from(["calibration", "evaluation"])) for c in CASES}
    rows = []
    for suite, (family, perturbations) in SUITES.items():
        for p in perturbations:
            for case in CASES:
                for variant in draw(st.sets(st.integers(0, 11), max_size=3)):
                    rows.append((suite, family, p, case, variant))
    for case in CASES:
        rows.append(("clean", "clean", "none", case, 0))
    out = []
    for suite, family, p, case, variant in rows:
        data = dict(draw(row_fields))
        if data["outcome"] != "answered":
            data["correct"] = None
        data.update(suite=suite, family=family, perturbation=p, case_id=case, variant=variant, split=split[case])
        if suite == "clean":
            data["contract"] = "unchanged"
        out.append((f"{suite}/{p}/{case}/{variant}", data))
    return out


def tally(rows, seed, worst=3):
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)  # a process run writes its rows in any order
    t = RowTally(HANDLED, judge, worst=worst)
    step = 1 + seed % 7
    for start in range(0, len(shuffled), step):
        t.add(shuffled[start : start + step])
    return t.finish()


def reference_rows(rows):
    ordered = sorted(rows, key=lambda kv: kv[0])
    return [{**data, "key": key} for key, data in ordered]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs(), st.integers(0, 10_000))
def test_streamed_figures_equal_the_figures_of_the_full_list_of_rows(rows, seed):
    t = tally(rows, seed)
    summary = summarise(t, suites=list(SUITES), handled=HANDLED, budgets=BUDGETS, costs=COSTS, seed=3,
                        policy_name="p", run_id="r")
    full = reference_rows(rows)
    evaluation = [r for r in full if r["split"] == "evaluation"]
    clean_eval = [r for r in evaluation if r["suite"] == "clean"]
    chaos_eval = [r for r in evaluation if r["suite"] != "clean"]
    clean_raw = {r["case_id"]: bool(r.get("raw_correct")) for r in clean_eval}

    def figures(group, suite, family, perturbation):
        return group_figures(group, suite=suite, family=family, perturbation=perturbation, clean_raw=clean_raw,
                             delta=0.1, seed=derive_int_seed(3, "gap", suite, perturbation or ""))

    assert summary.clean == figures(clean_eval, "clean", "clean", None)
    assert summary.chaos == figures(chaos_eval, "chaos", "chaos", None)
    expected_groups = []
    for suite, (family, _) in SUITES.items():
        in_suite = [r for r in chaos_eval if r["suite"] == suite]
        if not in_suite:
            continue
        expected_groups.append(figures(in_suite, suite, family, None))
        for p in dict.fromkeys(r["perturbation"] for r in in_suite):
            expected_groups.append(figures([r for r in in_suite if r["perturbation"] == p], suite, family, p))
    assert list(summary.groups) == expected_groups
    assert summary.confidence == confidence_quality(evaluation)
    # The same coverage; a handled state that never fired also says why (from the tally alone).
    never = "handled but never exercised"
    assert [dataclasses.replace(st, detail="") for st in summary.states] == [
        dataclasses.replace(st, detail="") for st in state_coverage(full, HANDLED, {})
    ]
    assert all(a.detail == b.detail or (a.detail.startswith(never) and b.detail.startswith(never))
               for a, b in zip(summary.states, state_coverage(full, HANDLED, {})))
    clean_all = {r["case_id"]: r for r in full if r["suite"] == "clean"}
    hostile_eval = [r for r in evaluation if r["family"] == "hostile"]
    assert summary.flips == len(hostile_flips(hostile_eval, clean_all, judge))
    assert summary.n_hostile_answered == sum(1 for r in hostile_eval if r["outcome"] == "answered")
    assert summary.escapes == sum(1 for r in full if r["outcome"] == "escaped")
    assert summary.n_rows == len(full)
    assert summary.n_evaluation == len({r["case_id"] for r in evaluation})
    assert summary.n_calibration == len({r["case_id"] for r in full if r["split"] == "calibration"})
    # The baseline's sample and the reliability bins, in key order.
    assert summary.baseline["confidence_sample"] == [
        float(r["raw_confidence"]) for r in clean_eval if is_valid_confidence(r.get("raw_confidence"))
    ]
    scored = [(float(r["raw_confidence"]), bool(r["raw_correct"])) for r in chaos_eval
              if r.get("raw_error") is None and is_valid_confidence(r.get("raw_confidence")) and is_judged(r)]
    if scored:
        bins = summary.curves["reliability"]["bins"]
        for b, got in enumerate(bins):
            members = [(c, ok) for c, ok in scored if (b / 15 < c <= (b + 1) / 15) or (b == 0 and c == 0.0)]
            assert got["count"] == len(members)
            if members:
                assert got["confidence"] == sum(c for c, _ in members) / len(members)
                assert got["accuracy"] == sum(ok for _, ok in members) / len(members)
    else:
        assert summary.curves == {"risk_coverage": None, "reliability": None}


@settings(max_examples=40, deadline=None)
@given(runs(), st.integers(0, 10_000), st.integers(0, 4))
def test_the_worst_cases_kept_while_streaming_are_those_of_every_silent_failure(rows, seed, k):
    t = tally(rows, seed, worst=k)
    full = reference_rows(rows)
    silent = [r for r in full if r["split"] == "evaluation" and r["outcome"] == "answered" and not r.get("correct") and is_judged(r)]
    silent.sort(key=lambda r: (-(r.get("confidence") if is_valid_confidence(r.get("confidence")) else -1.0), r["key"]))
    clean_ok = {r["case_id"]: bool(r.get("raw_correct")) and r.get("raw_error") is None
                and not (r["outcome"] == "answered" and not r.get("correct")) for r in full if r["suite"] == "clean"}
    best = {}
    for r in silent:  # each case's most confident silent failure
        best.setdefault(r["case_id"], r)
    ranked = [r for r in silent if best[r["case_id"]] is r]
    caused = [r for r in ranked if clean_ok.get(r["case_id"])][:k]
    already = [r for r in ranked if not clean_ok.get(r["case_id"])][:k]
    expected = [(r["key"], "perturbation") for r in caused] + [(r["key"], "clean") for r in already]
    assert [(r["key"], r["cause"]) for r in t.silent] == expected
    assert [(r["key"], r["cause"]) for r in choose_worst(t.silent, k)] == expected
    assert len({r["case_id"] for r in t.silent}) == len(t.silent)  # no case twice


@settings(max_examples=20, deadline=None)
@given(runs(), st.integers(0, 10_000))
def test_per_case_counts_per_family(rows, seed):
    t = tally(rows, seed)
    full = reference_rows(rows)
    for family in ("clean", "hostile", "realistic", "fault"):
        n, silent = t.case_counts(family)
        for i, case in enumerate(t.case_ids):
            mine = [r for r in full if r["family"] == family and r["case_id"] == case and r["split"] == "evaluation" and is_judged(r)]
            assert n[i] == len(mine)
            assert silent[i] == sum(1 for r in mine if r["outcome"] == "answered" and not r.get("correct"))


def test_rows_outside_the_plan_can_be_left_out():
    rows = [(f"clean/none/c{i}/0", {"suite": "clean", "family": "clean", "perturbation": "none", "case_id": f"c{i}",
                                     "variant": 0, "split": "evaluation", "outcome": "answered", "correct": True,
                                     "raw_correct": True, "raw_confidence": 0.5}) for i in range(4)]
    from failpath.check.plan import key_digest

    wanted = {key_digest(k) for k, _ in rows[:3]}
    t = RowTally({}, judge, worst=0, keep=wanted.__contains__)
    assert t.add(rows) == 3
    assert t.finish().case_ids == ("c0", "c1", "c2")


def _fold_peak(n: int) -> tuple[int, object]:
    """Peak bytes allocated while ``n`` rows of about 1 KB each (40 variants a case) are folded in, in batches
    of 1,000, and finished."""
    template = {"suite": "hostile", "family": "hostile", "perturbation": "zero_width", "split": "evaluation",
                "outcome": "answered", "correct": False, "raw_correct": False, "raw_error": None,
                "raw_confidence": 0.9, "confidence": 0.9, "state": None, "states": ["low_confidence"],
                "actions": [], "value": "x" * 200, "input": "y" * 300, "contract": "unchanged", "edits": []}
    t = RowTally(HANDLED, judge, worst=5)
    tracemalloc.start()
    try:
        for start in range(0, n, 1000):
            t.add((f"hostile/zero_width/c{i // 40}/{i % 40}", {**template, "case_id": f"c{i // 40}", "variant": i % 40})
                  for i in range(start, start + 1000))
        tallied = t.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, tallied


def test_memory_grows_by_the_columns_not_by_the_rows():
    """Each further request costs the tally well under 100 bytes (its columns hold 41), never its row (about 1 KB)."""
    small, _ = _fold_peak(20_000)
    large, tallied = _fold_peak(80_000)
    assert tallied.n == 80_000
    per_request = (large - small) / 60_000
    assert per_request < 100, f"{per_request:.0f} bytes a request"
    assert math.isclose(float(np.mean(tallied.columns["raw_confidence"])), 0.9)
    assert Counter(tallied.fired) == Counter({"low_confidence": 80_000})
    assert len(tallied.silent) == 5  # the worst-case candidates stay few (one small row per failing case while folding)


def test_the_check_stages_import_nothing_heavy():
    """scipy, Hypothesis, jinja2, matplotlib and rich are imported where they are used, never by the stages' modules."""
    import subprocess
    import sys

    code = (
        "import sys; import failpath.check.api, failpath.check.plan, failpath.check.execute, failpath.check.tally, "
        "failpath.check.summarise, failpath.check.explain, failpath.check.processes, failpath.check.verdict; "
        "print([m for m in ('scipy', 'hypothesis', 'jinja2', 'matplotlib', 'rich') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

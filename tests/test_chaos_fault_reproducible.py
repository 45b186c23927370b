"""Faults at a rate below 1 strike the same variants, and the same calls of them, however a check runs.

Which variant gets a fault and every random choice a fault makes depend only on (seed, case id, variant):
thread, process and async runs and a resumed run store the same rows.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import random
from pathlib import Path

import pytest

import failpath as fp
from failpath import chaos
from failpath.chaos import faults
from failpath.check import processes as runner
from failpath.core import Case, Prediction
from failpath.store import open_store


def cases(n: int) -> list[Case]:
    return [Case(id=f"p{i:03d}", input=f"Smith{i}, John", expected=f"SMITH{i}") for i in range(n)]


def names(text: str) -> Prediction:
    """A deterministic surname parser: the part before the comma, upper-cased."""
    return Prediction(str(text).split(",")[0].strip().upper(), 0.9)


async def anames(text: str) -> Prediction:
    return names(text)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RandomCut(faults.TruncatedJson):
    """Truncated output whose cut is drawn per call: a random choice the fault makes."""

    name: str = "random_cut"

    def strike(self, rng: random.Random) -> faults.Fault:
        return dataclasses.replace(self, keep=rng.uniform(0.1, 0.9))


FLAKY = chaos.Suite(
    "flaky",
    "fault",
    (
        faults.Timeout(rate=0.5),
        faults.ProviderError(name="flaky_503", status=503, rate=0.6),  # retried: which call fails matters
        faults.NoneOutput(rate=0.3),
        RandomCut(rate=0.7),
    ),
)

POLICY = fp.Policy(
    "flaky-test",
    rules=[
        fp.on(fp.Timeout()).do(fp.Abstain("timeout")),
        fp.on(fp.ProviderError(fp.ProviderFailure)).do(fp.Retry(2), fp.Abstain("provider down")),
        fp.on(fp.InvalidOutput()).do(fp.Abstain("invalid")),
        fp.on(fp.Unexpected()).do(fp.Abstain("unexpected")),
    ],
    store=False,
)


class Interrupting:
    """``names``, except that call number ``at`` raises KeyboardInterrupt (a check stopped by Ctrl-C)."""

    def __init__(self, at: int):
        self.at = at
        self.calls = 0
        self.__name__ = "names"

    def __call__(self, text: str) -> Prediction:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return names(text)


def rows(store_path: Path, run_id: str) -> dict[str, dict]:
    with open_store(store_path) as store:
        return {
            r["key"]: {k: v for k, v in r["data"].items() if k not in ("trace_id", "latency_ms")}
            for r in store.results(run_id)
        }


def kwargs(tmp_path: Path, name: str, **extra) -> dict:
    base = dict(cases=cases(30), policy=POLICY, judge="text", suites=[FLAKY], seed=11, concurrency=4,
                store=tmp_path / f"{name}.db", worst_cases=0, quiet=True)
    base.update(extra)
    return base


def faulted(found: dict[str, dict]) -> dict[str, tuple]:
    """Per fault row: what the fault did to it (the outcome, the states and the raw answer)."""
    return {k: (r["outcome"], tuple(r["states"]), r["raw_output"], r["raw_error"]) for k, r in found.items() if r["suite"] == "flaky"}


def test_a_variant_wrapper_depends_only_on_seed_case_and_variant():
    fault = faults.Timeout(rate=0.5)

    def strikes(case_id, variant, calls=6):
        wrapped = fault.wrap_variant(names, 3, case_id, variant)
        out = []
        for _ in range(calls):
            try:
                wrapped("a, b")
                out.append("ok")
            except fp.SystemTimeout:
                out.append("timeout")
        return out

    seen = {(c, v): strikes(c, v) for c in ("a", "b", "c", "d") for v in (0, 1)}
    # asked again in another order, each variant's calls fail exactly as before
    assert {(c, v): strikes(c, v) for c, v in reversed(list(seen))} == seen
    flat = [s for run in seen.values() for s in run]
    assert "ok" in flat and "timeout" in flat  # a partial rate: some calls fail, some do not
    cut = RandomCut()
    first = [cut.wrap_variant(names, 3, "a", 0)("x, y").value for _ in range(3)]
    assert len(set(first)) == 1  # the same call of the same variant: the same random cut
    assert len({cut.wrap_variant(names, 3, f"c{i}", 0)("abcdefghij, y").value for i in range(20)}) > 1


def test_threads_processes_async_and_resume_store_the_same_fault_rows(tmp_path, monkeypatch):
    if "fork" in multiprocessing.get_all_start_methods():
        monkeypatch.setattr(runner, "START_METHOD", "fork")
    threads = fp.check(names, **kwargs(tmp_path, "threads"))
    expected = rows(tmp_path / "threads.db", threads.run_id)
    marks = faulted(expected)
    outcomes = {m[0] for m in marks.values()}
    assert {"answered", "abstained"} <= outcomes  # the partial rates left some variants alone
    serial = fp.check(names, **kwargs(tmp_path, "serial", concurrency=1))
    assert rows(tmp_path / "serial.db", serial.run_id) == expected
    procs = fp.check("test_chaos_fault_reproducible:names", executor="process", **kwargs(tmp_path, "procs"))
    assert rows(tmp_path / "procs.db", procs.run_id) == expected
    aio = fp.check(anames, **kwargs(tmp_path, "aio", concurrency=7))
    assert rows(tmp_path / "aio.db", aio.run_id) == expected

    store = tmp_path / "resumed.db"
    with pytest.raises(KeyboardInterrupt):
        fp.check(Interrupting(at=40), **kwargs(tmp_path, "resumed", concurrency=1))
    with open_store(store) as opened:
        (run,) = opened.list_runs(kind="check")
        assert 0 < len(opened.results(run["run_id"])) < len(expected)
    resumed = fp.check(names, resume=True, **kwargs(tmp_path, "resumed", concurrency=3))
    assert resumed.resumed and resumed.reused > 0
    assert rows(store, resumed.run_id) == expected
    for part in ("verdict", "chaos", "groups", "states"):
        assert resumed.to_dict()[part] == threads.to_dict()[part] == procs.to_dict()[part], part


@dataclasses.dataclass(frozen=True, kw_only=True)
class JitteryRateLimit(faults.ProviderError):
    """The README's example of a fault that varies."""

    name: str = "jittery_rate_limit"
    status: int = 429

    def strike(self, rng):
        return dataclasses.replace(self, retry_after=rng.uniform(0.01, 0.2))


def test_a_varying_fault_draws_the_same_choice_for_the_same_call_of_the_same_variant():
    def waits(case_id, calls=3):
        wrapped = JitteryRateLimit().wrap_variant(names, 5, case_id, 0)
        out = []
        for _ in range(calls):
            with pytest.raises(fp.ProviderFailure) as info:
                wrapped("a, b")
            out.append(info.value.retry_after)
        return out

    first = waits("x")
    assert first == waits("x") and all(0.01 <= w <= 0.2 for w in first)
    assert len(set(first)) == 3  # each call of the variant draws its own wait
    assert waits("y") != first

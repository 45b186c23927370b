"""An agent check's trial writer: batches go to the store from a thread of their own, in order, and a flush
returns once every batch is written, raising a write that failed."""

from __future__ import annotations

import threading

import pytest

from failpath.check.agent_store import TrialWriter, trial_key
from failpath.check.agent_trials import TrialResult
from failpath.core import StoreError


class Recording:
    def __init__(self, fail_on: int | None = None, gate: threading.Event | None = None):
        self.calls: list[tuple[int, list[str]]] = []
        self.fail_on, self.gate = fail_on, gate

    def add_results(self, run_id, rows):
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append((threading.get_ident(), [key for key, _ in rows]))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise StoreError("disk full")
        return len(rows)


def trial(i: int) -> TrialResult:
    return TrialResult(f"t{i}", 0, "clean", "clean", i, "succeeded")


def order(n: int):
    return {(f"t{i}", "clean", 0): i for i in range(n)}


def test_batches_are_written_off_the_calling_thread_in_order_and_flush_waits_for_them():
    gate = threading.Event()
    store = Recording(gate=gate)
    writer = TrialWriter(store, "run", order(10), batch=3, seconds=3600)
    for i in range(10):
        writer.add(trial(i))  # returns at once though the store is blocked: the calling loop never waits on the disk
    assert store.calls == [] and writer.written == 0
    gate.set()
    writer.flush()
    assert writer.written == 10
    assert [len(keys) for _, keys in store.calls] == [3, 3, 3, 1]
    assert all(ident != threading.get_ident() for ident, _ in store.calls)
    assert [key for _, keys in store.calls for key in keys] == [trial_key(f"t{i}", "clean", 0) for i in range(10)]
    assert not any(t.name.startswith("failpath-trial-writer") for t in threading.enumerate())


def test_a_failed_write_is_raised_by_flush():
    writer = TrialWriter(Recording(fail_on=2), "run", order(6), batch=2, seconds=3600)
    for i in range(6):
        try:
            writer.add(trial(i))
        except StoreError:
            break
    with pytest.raises(StoreError, match="disk full"):
        writer.flush()
    assert not any(t.name.startswith("failpath-trial-writer") for t in threading.enumerate())

"""The background trace writer on its own, with a backend that is not SQLite: what any backend can rely on."""

from __future__ import annotations

import threading

import pytest

from failpath.core import Trace
from failpath.store import writer as writer_module
from failpath.store.writer import RowBatch, TraceWriter


def make_trace(i: int, **changes) -> Trace:
    fields = dict(trace_id=f"w-{i:04d}", time=1_700_000_000.0 + i, policy="p", input_digest="0" * 64,
                  input_preview=f"#{i}", outcome="answered")
    fields.update(changes)
    return Trace(**fields)


class Busy(Exception):
    """What the fake backend raises while "another writer holds the lock"."""


class ListBackend:
    """Keeps committed batches in a list; fails the first ``busy`` writes with ``Busy``, or always with ``broken``."""

    def __init__(self, busy: int = 0, broken: Exception | None = None) -> None:
        self.batches: list[RowBatch] = []
        self.busy = busy
        self.broken = broken
        self.tries = 0
        self.connections = 0
        self.closed = 0
        self.threads: set[str] = set()

    def connect(self) -> "ListBackend":
        self.connections += 1
        return self

    def close(self) -> None:
        self.closed += 1

    def write_rows(self, connection: "ListBackend", rows: RowBatch) -> None:
        self.threads.add(threading.current_thread().name)
        self.tries += 1
        if self.broken is not None:
            raise self.broken
        if self.busy:
            self.busy -= 1
            raise Busy("locked")
        self.batches.append(rows)


def writer_for(backend: ListBackend, **options) -> TraceWriter:
    settings = dict(batch_size=4, flush_interval=10.0, max_pending=1000)
    settings.update(options)
    return TraceWriter(backend.connect, backend.write_rows, is_transient=lambda e: isinstance(e, Busy), **settings)


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_DELAYS", (0.0, 0.0, 0.0, 0.0))


def test_traces_reach_the_backend_in_batches_of_rendered_rows_in_queue_order():
    backend = ListBackend()
    writer = writer_for(backend)
    writer.pending.extend(make_trace(i, states=("timeout",) if i == 2 else ()) for i in range(10))
    assert writer.flush(5.0)
    assert [len(b) for b in backend.batches] == [4, 4, 2]
    assert [row[0] for b in backend.batches for row in b.traces] == [f"w-{i:04d}" for i in range(10)]
    assert [row[:3:2] for b in backend.batches for row in b.states] == [("timeout", "w-0002")]
    assert writer.written == 10 and writer.lost == 0 and not writer.pending
    assert backend.threads == {"failpath-trace-writer"}  # never the caller's thread
    writer.stop()
    assert backend.connections == 1 and backend.closed == 1


def test_a_transient_error_is_tried_again_and_nothing_is_lost():
    backend = ListBackend(busy=2)
    writer = writer_for(backend)
    writer.pending.extend(make_trace(i) for i in range(3))
    assert writer.flush(5.0)
    assert backend.tries == 3 and writer.written == 3 and writer.error is None
    writer.stop()


def test_a_batch_still_failing_after_every_retry_is_counted_lost_and_the_writer_goes_on():
    backend = ListBackend(busy=len(writer_module.RETRY_DELAYS) + 1)
    writer = writer_for(backend)
    writer.pending.extend(make_trace(i) for i in range(2))
    assert writer.flush(5.0)
    assert writer.lost == 2 and isinstance(writer.error, Busy)
    writer.pending.append(make_trace(9))
    assert writer.flush(5.0)
    assert writer.written == 1 and [b.traces[0][0] for b in backend.batches] == ["w-0009"]
    writer.stop()


def test_an_error_that_is_not_transient_is_not_waited_for_and_each_trace_is_tried_once_alone():
    backend = ListBackend(broken=PermissionError("read-only"))
    writer = writer_for(backend)
    writer.pending.extend(make_trace(i) for i in range(3))
    assert writer.flush(5.0)
    assert backend.tries == 1 + 3 and writer.lost == 3 and isinstance(writer.error, PermissionError)
    writer.stop()


class PoisonBackend(ListBackend):
    """Refuses (like a database meeting a value it cannot encode) any batch holding a trace whose preview says "poison"."""

    def write_rows(self, connection: "ListBackend", rows: RowBatch) -> None:
        self.tries += 1
        if any("poison" in row[10] for row in rows.traces):
            raise UnicodeEncodeError("utf-8", "poison", 0, 1, "surrogates not allowed")
        self.batches.append(rows)


def test_a_batch_the_backend_refuses_is_written_trace_by_trace_and_only_the_refused_one_is_lost():
    backend = PoisonBackend()
    writer = writer_for(backend, batch_size=256)
    writer.pending.extend(make_trace(i, input_preview="poison" if i == 5 else f"#{i}") for i in range(12))
    assert writer.flush(5.0)
    assert writer.lost == 1 and writer.written == 11 and isinstance(writer.error, UnicodeEncodeError)
    assert sorted(row[0] for b in backend.batches for row in b.traces) == [f"w-{i:04d}" for i in range(12) if i != 5]
    writer.stop()


def test_a_trace_that_cannot_be_rendered_is_lost_alone():
    backend = ListBackend()
    writer = writer_for(backend)
    writer.pending.extend([make_trace(1), make_trace(2, trace_id=""), make_trace(3)])
    assert writer.flush(5.0)
    assert writer.lost == 1 and "trace_id" in str(writer.error)
    assert [row[0] for b in backend.batches for row in b.traces] == ["w-0001", "w-0003"]
    writer.stop()


def test_stop_writes_what_is_pending_even_when_no_thread_ever_started():
    backend = ListBackend()
    writer = writer_for(backend, batch_size=100)
    writer.pending.extend(make_trace(i) for i in range(7))  # queued, thread never started
    writer.stop()
    assert writer.stopped and not writer.pending
    assert sum(len(b) for b in backend.batches) == 7


def test_retry_delays_are_the_backends_and_an_unreachable_backend_is_not_waited_for_batch_after_batch():
    backend = ListBackend(busy=10_000)  # transient errors, for good
    writer = writer_for(backend, retry_delays=(0.0, 0.0, 0.0))
    for i in range(12):  # three batches of 4
        writer.pending.append(make_trace(i))
    writer.start()
    assert writer.flush(10)
    # The first batch used its three retries (4 tries); the next ones get one try each, not four.
    assert backend.tries == 4 + 1 + 1 and writer.lost == 12
    backend.busy = 0  # the backend is back: the next batch is written, and retries are allowed again
    writer.pending.append(make_trace(99))
    assert writer.flush(10)
    assert writer.written == 1 and not writer._unreachable
    writer.stop()


def test_a_flush_on_the_writer_thread_itself_returns_instead_of_waiting_for_itself():
    # A policy garbage-collected while the writer renders a batch flushes its store from the writer thread.
    backend = ListBackend()
    writer = writer_for(backend)
    answers = []
    write_rows = backend.write_rows

    def write_and_flush(connection, rows):
        answers.append(writer.flush(None))  # would wait forever for its own thread without the guard
        write_rows(connection, rows)

    writer._write_rows = write_and_flush
    writer.pending.extend(make_trace(i) for i in range(3))
    assert writer.flush(10.0)
    assert answers == [False] and writer.written == 3
    writer.stop()

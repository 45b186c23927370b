"""The default store: one SQLite file in WAL mode, shared by threads and processes."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from failpath.core import AlreadyResolved, Attempt, StoreError, Ticket, TicketNotFound, TicketStatus, Trace
from failpath.store.base import Store
from failpath.store.jsonsafe import dumps
from failpath.store.trace_queries import TraceFilter

__all__ = ["SQLiteStore", "SCHEMA_VERSION", "APPLICATION_ID"]

_log = logging.getLogger("failpath.store")

#: Version of the tables below, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 1
#: Marks a SQLite file as a failpath store (``PRAGMA application_id``): "fpth".
APPLICATION_ID = 0x66707468

_SCHEMA = """
CREATE TABLE traces (
    id            INTEGER PRIMARY KEY,
    trace_id      TEXT NOT NULL UNIQUE,
    time          REAL NOT NULL,
    policy        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    state         TEXT,
    degraded      INTEGER NOT NULL DEFAULT 0,
    confidence    REAL,
    latency_ms    REAL NOT NULL DEFAULT 0,
    ticket_id     TEXT,
    input_digest  TEXT NOT NULL,
    input_preview TEXT NOT NULL,
    input_raw     TEXT,
    output        TEXT,
    states        TEXT NOT NULL DEFAULT '[]',
    actions       TEXT NOT NULL DEFAULT '[]',
    attempts      TEXT NOT NULL DEFAULT '[]',
    n_attempts    INTEGER NOT NULL DEFAULT 0,
    usage         TEXT NOT NULL DEFAULT '{}',
    detail        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX traces_time ON traces(time);
CREATE INDEX traces_policy_time ON traces(policy, time);
CREATE INDEX traces_outcome_time ON traces(outcome, time);

-- One row per (failure state detected, trace): filtering and counting by state is index-only.
CREATE TABLE trace_states (
    state    TEXT NOT NULL,
    time     REAL NOT NULL,
    trace_id TEXT NOT NULL,
    policy   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    PRIMARY KEY (state, time, trace_id)
) WITHOUT ROWID;

CREATE TABLE tickets (
    ticket_id     TEXT PRIMARY KEY,
    queue         TEXT NOT NULL,
    created       REAL NOT NULL,
    policy        TEXT NOT NULL,
    trace_id      TEXT,
    input_preview TEXT NOT NULL,
    input_raw     TEXT,
    output        TEXT,
    confidence    REAL,
    state         TEXT,
    status        TEXT NOT NULL,
    deadline      REAL,
    "default"     TEXT,
    answer        TEXT,
    note          TEXT,
    reviewer      TEXT,
    resolved_at   REAL
);
CREATE INDEX tickets_status_created ON tickets(status, created);
CREATE INDEX tickets_queue_created ON tickets(queue, created);

CREATE TABLE runs (
    run_id   TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    config   TEXT NOT NULL,
    created  REAL NOT NULL,
    finished REAL,
    summary  TEXT
);
CREATE INDEX runs_created ON runs(created);

CREATE TABLE results (
    id      INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs(run_id),
    key     TEXT NOT NULL,
    data    TEXT NOT NULL,
    written REAL NOT NULL,
    UNIQUE (run_id, key)
);
"""

_TRACE_COLUMNS = (
    "trace_id, time, policy, outcome, state, degraded, confidence, latency_ms, ticket_id, input_digest, "
    "input_preview, input_raw, output, states, actions, attempts, n_attempts, usage, detail"
)
_INSERT_TRACE = f"INSERT OR IGNORE INTO traces ({_TRACE_COLUMNS}) VALUES ({', '.join('?' * 19)})"
_INSERT_STATE = "INSERT OR IGNORE INTO trace_states (state, time, trace_id, policy, outcome) VALUES (?, ?, ?, ?, ?)"
_TICKET_COLUMNS = (
    'ticket_id, queue, created, policy, trace_id, input_preview, input_raw, output, confidence, state, status, '
    'deadline, "default", answer, note, reviewer, resolved_at'
)
_PREFIX_END = chr(0x10FFFF)  # every id starting with p sorts in [p, p + U+10FFFF)


def _real(value: Any) -> float | None:
    """A finite float for a REAL column, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if type(value) is str else str(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _loads_list(text: str) -> tuple:
    return () if text == "[]" else tuple(json.loads(text))


def _loads_dict(text: str) -> dict:
    return {} if text == "{}" else json.loads(text)


_INSERT_TICKET = f"INSERT OR IGNORE INTO tickets ({_TICKET_COLUMNS}) VALUES ({', '.join('?' * 17)})"


def _ticket_row(ticket: Ticket, ticket_id: str, created: float) -> tuple:
    """The ``tickets`` row for one ticket."""
    return (
        ticket_id,
        _text(ticket.queue) or "default",
        created,
        _text(ticket.policy) or "",
        _text(ticket.trace_id),
        _text(ticket.input_preview) or "",
        _text(ticket.input_raw),
        None if ticket.output is None else dumps(ticket.output),
        _real(ticket.confidence),
        _text(ticket.state),
        TicketStatus(ticket.status).value,
        _real(ticket.deadline),
        None if ticket.default is None else dumps(ticket.default),
        None if ticket.answer is None else dumps(ticket.answer),
        _text(ticket.note),
        _text(ticket.reviewer),
        _real(ticket.resolved_at),
    )


def _trace_rows(trace: Trace) -> tuple[tuple, list[tuple]]:
    """The ``traces`` row and the ``trace_states`` rows for one trace."""
    if not trace.trace_id or not isinstance(trace.trace_id, str):
        raise ValueError(f"a trace needs a non-empty string trace_id, got {trace.trace_id!r}")
    time_ = _real(trace.time) or 0.0
    policy = _text(trace.policy) or ""
    outcome = _text(trace.outcome) or ""
    states = tuple(_text(s) or "" for s in trace.states)
    attempts = [
        {
            "number": a.number,
            "action": a.action,
            "system": a.system,
            "state": a.state,
            "error": a.error,
            "output": a.output,
            "confidence": a.confidence,
            "latency_ms": a.latency_ms,
            "usage": a.usage,
        }
        for a in trace.attempts
    ]
    usage, detail, actions = trace.usage, trace.detail, trace.actions
    row = (
        _text(trace.trace_id),
        time_,
        policy,
        outcome,
        _text(trace.state),
        1 if trace.degraded else 0,
        _real(trace.confidence),
        _real(trace.latency_ms) or 0.0,
        _text(trace.ticket_id),
        _text(trace.input_digest) or "",
        _text(trace.input_preview) or "",
        _text(trace.input_raw),
        None if trace.output is None else dumps(trace.output),
        dumps(states) if states else "[]",
        dumps(actions) if actions else "[]",
        dumps(attempts) if attempts else "[]",
        len(attempts),
        dumps(usage) if usage else "{}",
        dumps(detail) if detail else "{}",
    )
    detected = set(states)
    if trace.state is not None:
        detected.add(_text(trace.state))
    state_rows = [(s, time_, row[0], policy, outcome) for s in detected]
    return row, state_rows


def _row_to_trace(row: sqlite3.Row) -> Trace:
    attempts = tuple(
        Attempt(
            number=a.get("number", i + 1),
            action=a.get("action", "call"),
            system=a.get("system"),
            state=a.get("state"),
            error=a.get("error"),
            output=a.get("output"),
            confidence=a.get("confidence") if not isinstance(a.get("confidence"), str) else None,
            latency_ms=a.get("latency_ms") or 0.0,
            usage=a.get("usage") or {},
        )
        for i, a in enumerate(_loads_list(row["attempts"]))
    )
    return Trace(
        trace_id=row["trace_id"],
        time=row["time"],
        policy=row["policy"],
        input_digest=row["input_digest"],
        input_preview=row["input_preview"],
        outcome=row["outcome"],
        input_raw=row["input_raw"],
        output=_loads(row["output"]),
        confidence=row["confidence"],
        states=_loads_list(row["states"]),
        actions=_loads_list(row["actions"]),
        state=row["state"],
        attempts=attempts,
        degraded=bool(row["degraded"]),
        latency_ms=row["latency_ms"],
        ticket_id=row["ticket_id"],
        usage=_loads_dict(row["usage"]),
        detail=_loads_dict(row["detail"]),
    )


def _row_to_ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(
        ticket_id=row["ticket_id"],
        queue=row["queue"],
        created=row["created"],
        policy=row["policy"],
        trace_id=row["trace_id"],
        input_preview=row["input_preview"],
        input_raw=row["input_raw"],
        output=_loads(row["output"]),
        confidence=row["confidence"],
        state=row["state"],
        status=TicketStatus(row["status"]),
        deadline=row["deadline"],
        default=_loads(row["default"]),
        answer=_loads(row["answer"]),
        note=row["note"],
        reviewer=row["reviewer"],
        resolved_at=row["resolved_at"],
    )


def _row_to_run(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "kind": row["kind"],
        "config": json.loads(row["config"]),
        "created": row["created"],
        "finished": row["finished"],
        "summary": _loads(row["summary"]),
    }


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


# --------------------------------------------------------------------------- connections


class _WriteTurns:
    """The turns the write transactions of one store's threads take (the trace writer's and the synchronous ones).

    One waiting here is woken as soon as the other commits, where SQLite's own busy handler would
    sleep for a millisecond or more; other processes still meet SQLite's lock. Synchronous writes
    (a ticket a caller waits for) go first: the trace writer lets them pass before each batch.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(threading.Lock())
        self._waiting = 0

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """A synchronous write's turn."""
        with self._changed:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._changed:
                self._waiting -= 1
                if not self._waiting:
                    self._changed.notify_all()
        try:
            yield
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        """The trace writer's turn, after every synchronous write already waiting."""
        if self._waiting:
            with self._changed:
                self._changed.wait_for(lambda: not self._waiting, timeout=1.0)
        with self._lock:
            yield


class _Connector:
    """Opens connections to one database file and remembers them, so they can all be closed."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.connections: list[sqlite3.Connection] = []
        self.lock = threading.Lock()
        self.write_lock = _WriteTurns()

    def connect(self, *, remember: bool = True, read_only: bool = False) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            connection.execute("PRAGMA synchronous = NORMAL")
            if read_only:
                connection.execute("PRAGMA query_only = ON")
        except BaseException:
            connection.close()
            raise
        if remember:
            with self.lock:
                self.connections.append(connection)
        return connection

    def close_all(self) -> None:
        with self.lock:
            connections, self.connections = self.connections, []
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.close()


# --------------------------------------------------------------------------- the background trace writer


class _QueuedTicket:
    """A ticket waiting in the writer's queue (``SQLiteStore(queue_tickets=True)``), with its id and time fixed."""

    __slots__ = ("ticket", "ticket_id", "created")

    def __init__(self, ticket: Ticket, ticket_id: str, created: float) -> None:
        self.ticket = ticket
        self.ticket_id = ticket_id
        self.created = created


class _TraceWriter:
    """Owns the pending traces and the one thread that writes them to the database in batches.

    ``pending`` is a deque: callers append, and the writer removes a trace only after the batch
    holding it is committed (or given up), so "nothing pending" is exactly "everything is on
    disk". The writer wakes every ``flush_interval`` seconds, or at once when ``flush``, ``stop``
    or a full queue asks, and writes what is pending in batches of up to ``batch_size``.

    Kept apart from :class:`SQLiteStore` so the thread holds no reference to the store: a store that
    is dropped without ``close()`` is still flushed (by ``weakref.finalize``, which also runs at exit).
    """

    def __init__(
        self, connect: Any, *, batch_size: int, flush_interval: float, max_pending: int, write_lock: Any = None
    ) -> None:
        self.pending: collections.deque[Trace] = collections.deque()
        self._write_lock = write_lock if write_lock is not None else _WriteTurns()
        self.max_pending = max_pending
        self._connect = connect
        self._batch_size = batch_size
        self._flush_interval = max(flush_interval, 0.001)  # 0 would spin while idle
        self._wake = threading.Event()
        # Guards done (traces the writer finished with, written or lost) together with removals
        # from pending, so done + len(pending) is read consistently by flush().
        self._progress = threading.Condition(threading.Lock())
        self.done = 0
        self.written = 0
        self.lost = 0
        self.error: BaseException | None = None
        self.stopped = False
        self._stopping = False
        # The thread starts with the first queued trace: a store only read from, or only written to
        # synchronously (runs, results), never has one (and a process without threads can fork safely).
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def start(self) -> None:
        """Start the writer thread (once; called when the first trace is queued)."""
        with self._starting:
            if self._thread is None and not self._stopping:
                thread = threading.Thread(target=self._run, name="failpath-trace-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- called from any thread
    def flush(self, timeout: float | None) -> bool:
        """Wait until every trace appended before this call is written; False if ``timeout`` ran out."""
        if not self.pending:
            return True
        if self._thread is None:
            self.start()
        with self._progress:
            target = self.done + len(self.pending)
            self._wake.set()
            return self._progress.wait_for(lambda: self.done >= target or not self._alive(), timeout)

    def stop(self, timeout: float | None = None) -> None:
        if self.stopped:
            return
        self.stopped = True  # write_trace refuses new traces from here on
        self._stopping = True
        self._wake.set()
        with self._starting:  # no thread starts from here on
            thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        if self.pending and not self._alive():
            # Traces appended while the writer was finishing (a write_trace racing close()).
            connection = self._connect()
            try:
                while self.pending:
                    self._write_next_batch(connection)
            finally:
                connection.close()

    def wait_for_room(self) -> None:
        """Backpressure: block while more than ``max_pending`` traces wait (never drop one)."""
        while len(self.pending) > self.max_pending and self._alive():
            self._wake.set()
            time.sleep(0.001)

    # -- the writer thread
    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        pending, wake = self.pending, self._wake
        try:
            while True:
                wake.clear()
                if pending:
                    if connection is None:
                        try:
                            connection = self._connect()
                        except Exception as exc:  # the file went away or became unreadable
                            self._write_next_batch(None, exc)
                            continue
                    self._write_next_batch(connection)
                elif self._stopping:
                    break
                else:
                    wake.wait(self._flush_interval)
        finally:
            with self._progress:
                self._progress.notify_all()  # never leave a flush() waiting on a dead writer
            if connection is not None:
                connection.close()

    def _write_next_batch(self, connection: sqlite3.Connection | None, error: Exception | None = None) -> None:
        """Write up to ``batch_size`` traces from the head of the queue, then remove them from it.

        With no connection (opening one failed with ``error``), the batch is counted as lost.
        """
        pending = self.pending
        # Indexing, not iterating: other threads append while we read (only this thread removes).
        batch = [pending[i] for i in range(min(len(pending), self._batch_size))]
        if connection is None:
            self._give_up(len(batch), error or StoreError("no connection"))
        else:
            try:
                self._write(connection, batch)
            except Exception as exc:  # whatever happens, report it and never kill the thread
                self._give_up(len(batch), exc)
        with self._progress:
            for _ in batch:
                pending.popleft()
            self.done += len(batch)
            self._progress.notify_all()

    def _give_up(self, count: int, error: BaseException) -> None:
        self.lost += count
        self.error = error
        _log.error("failpath: %d traces could not be written: %r", count, error)

    def _write(self, connection: sqlite3.Connection, batch: list[Any]) -> None:
        rows: list[tuple] = []
        state_rows: list[tuple] = []
        ticket_rows: list[tuple] = []
        for item in batch:
            try:
                if type(item) is _QueuedTicket:
                    ticket_rows.append(_ticket_row(item.ticket, item.ticket_id, item.created))
                    continue
                row, states = _trace_rows(item)
            except Exception as exc:  # a trace whose fields are not what Trace declares
                self._give_up(1, exc)
                continue
            rows.append(row)
            state_rows.extend(states)
        if not rows and not ticket_rows:
            return
        delays = (0.05, 0.2, 1.0, 3.0)
        for attempt in range(len(delays) + 1):
            try:
                with self._write_lock.background():
                    connection.execute("BEGIN IMMEDIATE")
                    try:
                        if rows:
                            connection.executemany(_INSERT_TRACE, rows)
                        if state_rows:
                            connection.executemany(_INSERT_STATE, state_rows)
                        if ticket_rows:
                            connection.executemany(_INSERT_TICKET, ticket_rows)
                        connection.execute("COMMIT")
                    except BaseException:
                        if connection.in_transaction:
                            connection.execute("ROLLBACK")
                        raise
                self.written += len(rows) + len(ticket_rows)
                return
            except sqlite3.Error as exc:
                # Another writer held the lock past busy_timeout: worth trying again. Anything else
                # (read-only file, full disk, damaged file) is reported at once.
                transient = "locked" in str(exc) or "busy" in str(exc)
                if not transient or attempt == len(delays):
                    self._give_up(len(rows) + len(ticket_rows), exc)
                    return
                time.sleep(delays[attempt])


# --------------------------------------------------------------------------- the store

# Stores open in this process, so a forked child can drop what it inherited (weak: never keeps one alive).
_OPEN_STORES: "weakref.WeakSet[SQLiteStore]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_OPEN_STORES):
        store._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SQLiteStore(Store):
    """A failpath store in one SQLite file (WAL mode), safe to share between threads and processes.

    ``SQLiteStore(path, batch_size=256, flush_interval=0.05, busy_timeout=30.0, max_pending=100_000, queue_tickets=False)``

    Traces: :meth:`write_trace` only appends the trace to an in-memory queue (no serialization, no
    disk, no lock). One background thread per store wakes every ``flush_interval`` seconds (at once
    on :meth:`flush`), renders the waiting traces to rows and writes them in batches of up to
    ``batch_size``, one transaction per batch. :meth:`flush` blocks until everything queued before
    it is committed; :meth:`close` flushes and stops the thread; a store left open is flushed when
    it is garbage collected or when the interpreter exits. Reads through this object
    (:meth:`get_trace`, :meth:`query_traces`, :meth:`count_traces`, :meth:`read_connection`) flush
    first when traces are waiting, so they see the store's own writes.

    Durability bound: a trace is on disk once the batch holding it is committed, and a trace
    leaves the queue only then. If the process is killed (SIGKILL), the file stays consistent
    (each batch is one transaction: all of it or none of it, and batches commit in queue order)
    and the traces lost are exactly those still queued: the traces written since the writer last
    emptied the queue, i.e. about ``flush_interval`` seconds of traces when the writer keeps up,
    and never more than ``max_pending`` plus one batch (past ``max_pending`` waiting traces,
    ``write_trace`` waits for the writer instead of dropping a trace). Every trace queued before a
    :meth:`flush` that returned is safe. With ``synchronous=NORMAL`` a commit survives a killed
    process; after an OS crash or power loss the last commits may be rolled back (the file stays
    consistent).

    Tickets, runs and results are written synchronously and are on disk when the call returns
    (``queue_tickets=True`` sends tickets through the trace writer's queue instead, for a store whose
    tickets nobody answers live, such as the scratch store of a check's own guarded calls).
    Ticket resolution is atomic across processes. Within a process, the store's write transactions
    (the writer thread's and the synchronous ones) take turns on one lock, so a ticket written while
    a batch of traces commits waits for that commit, not for SQLite's busy handler to wake up. Each thread gets its own connections (one for
    reads, with ``query_only`` on, one for synchronous writes), so a write waiting for another
    process's lock never holds up this process's reads; every write transaction starts with
    ``BEGIN IMMEDIATE`` and waits up to ``busy_timeout`` seconds for another writer.

    A process forked from one holding an open store gets a fresh, empty queue and its own
    connections (the parent's queued traces are written by the parent only). Fork while no batch
    is being written (as a pre-forking server does at start-up); a fork in the middle of a SQLite
    call can leave the child's SQLite locks in an unknown state, as with any threaded program.

    Raises :class:`~failpath.core.StoreError` when the path is a folder, its folder cannot be
    created, the file is not a failpath store, or it was written by a newer failpath.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 256,
        flush_interval: float = 0.05,
        busy_timeout: float = 30.0,
        max_pending: int = 100_000,
        queue_tickets: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0 seconds, got {flush_interval}")
        self.path = Path(path)
        self.queue_tickets = bool(queue_tickets)
        self._busy_timeout = float(busy_timeout)
        self._closed = False
        self._prepare_file()
        self._options = dict(batch_size=batch_size, flush_interval=flush_interval, max_pending=max_pending)
        self._start()
        _OPEN_STORES.add(self)

    def _start(self) -> None:
        # Neither the writer thread nor the finalizer may refer to self: a dropped store is then
        # garbage collected, and its finalizer flushes it.
        self._local = threading.local()
        self._connector = _Connector(self.path, self._busy_timeout)
        self._writer = _TraceWriter(self._connector.connect, write_lock=self._connector.write_lock, **self._options)
        self._finalizer = weakref.finalize(self, _finalize, self._writer, self._connector)

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}{', closed' if self._closed else ''})"

    # ------------------------------------------------------------------ opening

    def _prepare_file(self) -> None:
        path = self.path
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise StoreError(
                f"store path {str(path)!r} is not supported: the store is shared between threads and processes "
                f"through a file; pass a file path (a temporary folder works for throwaway stores)"
            )
        if path.is_dir():
            raise StoreError(f"store path {path} is a folder: give the path of a file inside it, e.g. {path / 'failpath.db'}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder {path.parent} for the store {path}: {exc.strerror or exc}; "
                f"choose another --store path or fix the folder's permissions"
            ) from None
        try:
            connection = _Connector(path, self._busy_timeout).connect(remember=False)
            try:
                self._check_and_create_schema(connection)
            finally:
                connection.close()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc) or "encrypted" in str(exc):
                raise StoreError(
                    f"{path} is not a failpath store (not a SQLite database: {exc}); "
                    f"pass another --store path, or move that file away"
                ) from None
            raise StoreError(f"cannot open the store {path}: {exc}; check the path and its permissions") from None

    def _check_and_create_schema(self, connection: sqlite3.Connection) -> None:
        path = self.path
        version, app_id = self._schema_marks(connection)
        if version == 0:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                _log.warning("failpath: store %s could not switch to WAL mode (journal_mode=%s)", path, mode)
            connection.execute("BEGIN IMMEDIATE")
            try:
                version, app_id = self._schema_marks(connection)
                if version == 0:
                    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                    if tables:
                        raise StoreError(
                            f"{path} is a SQLite database but not a failpath store; "
                            f"pass another --store path (failpath will create it)"
                        )
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            connection.execute(statement)
                    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    version, app_id = SCHEMA_VERSION, APPLICATION_ID
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"{path} is a SQLite database but not a failpath store (application_id {app_id:#x}); "
                f"pass another --store path"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {path} was written by a newer failpath (schema version {version}; this version "
                f"reads up to {SCHEMA_VERSION}): upgrade failpath, or pass another --store path"
            )
        if version < SCHEMA_VERSION:  # no older schema exists yet; upgrades will go here
            raise StoreError(f"the store {path} has an unknown schema version {version}; pass another --store path")

    @staticmethod
    def _schema_marks(connection: sqlite3.Connection) -> tuple[int, int]:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        app_id = connection.execute("PRAGMA application_id").fetchone()[0]
        if version == 0 and app_id == 0:
            return 0, APPLICATION_ID
        return version, app_id

    def _thread_connection(self, kind: str) -> sqlite3.Connection:
        """This thread's connection of ``kind`` (``"read"`` or ``"write"``), opened on first use."""
        if self._closed:
            raise StoreError(f"the store {self.path} is closed; open it again with open_store()")
        connection = getattr(self._local, kind, None)
        if connection is None:
            try:
                connection = self._connector.connect(read_only=kind == "read")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store {self.path}: {exc}") from None
            setattr(self._local, kind, connection)
        return connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection (``BEGIN IMMEDIATE``: takes the write lock now)."""
        connection = self._thread_connection("write")
        with self._connector.write_lock.urgent():
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to the store {self.path}: {exc}") from None
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot write to the store {self.path}: {exc}") from None
                raise

    @contextlib.contextmanager
    def read_connection(self, *, flush: bool = True) -> Iterator[sqlite3.Connection]:
        """A read-only connection to this store's database, for queries inside ``failpath.store``.

        It is this thread's own connection (do not pass it to another thread), with
        ``PRAGMA query_only`` on and rows as :class:`sqlite3.Row`; it stays open after the block.
        With ``flush`` (the default), traces queued by this store are written first, so the
        queries see them. Each statement reads a consistent snapshot; wrap several statements in
        ``BEGIN`` ... ``COMMIT`` to read them all from one snapshot. Tables: ``traces``,
        ``trace_states`` (one row per detected state and trace: ``state, time, trace_id, policy,
        outcome``), ``tickets``, ``runs``, ``results``; see ``failpath/store/sqlite.py``.
        """
        writer = self._writer
        if flush and writer.pending:
            writer.flush(None)
        connection = self._thread_connection("read")
        try:
            yield connection
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store {self.path}: {exc}") from None
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")

    # ------------------------------------------------------------------ traces

    def write_trace(self, trace: Trace) -> None:
        """Queue a trace for writing; returns at once. ``flush`` or ``close`` waits for the disk."""
        if type(trace) is not Trace and not isinstance(trace, Trace):
            raise TypeError(f"write_trace takes a failpath.Trace, got {type(trace).__name__}")
        self._enqueue(trace)

    def _enqueue(self, item: Any) -> None:
        """Hand a trace (or a queued ticket) to the writer thread: started on first use, waited for when full."""
        writer = self._writer
        if writer.stopped:
            raise StoreError(f"the store {self.path} is closed; open it again with open_store()")
        if len(writer.pending) > writer.max_pending:
            writer.wait_for_room()
        writer.pending.append(item)
        if writer._thread is None:
            writer.start()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every trace queued so far is on disk.

        Raises ``StoreError`` if ``timeout`` seconds pass first, or if traces could not be written
        (the message says how many and why; the error is reported once).
        """
        writer = self._writer
        if not writer.flush(timeout):
            raise StoreError(
                f"flushing traces to {self.path} took longer than {timeout} s; "
                f"{len(writer.pending)} traces are still queued"
            )
        if writer.error is not None:
            error, lost = writer.error, writer.lost
            writer.error, writer.lost = None, 0
            raise StoreError(f"{lost} traces could not be written to {self.path}: {error}")

    def get_trace(self, trace_id: str) -> Trace | None:
        """The trace with that id (a unique prefix works too), or None.

        Raises ``StoreError`` when the prefix matches several traces.
        """
        with self.read_connection() as connection:
            row = connection.execute("SELECT * FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
            if row is None:
                rows = self._by_prefix(connection, "traces", "trace_id", trace_id)
                if not rows:
                    return None
                if len(rows) > 1:
                    raise StoreError(self._ambiguous("trace", trace_id, rows, "trace_id"))
                row = rows[0]
            return _row_to_trace(row)

    @staticmethod
    def _by_prefix(connection: sqlite3.Connection, table: str, column: str, prefix: str) -> list[sqlite3.Row]:
        if not prefix:
            return []
        return connection.execute(
            f"SELECT * FROM {table} WHERE {column} >= ? AND {column} < ? ORDER BY {column} LIMIT 6",
            (prefix, prefix + _PREFIX_END),
        ).fetchall()

    @staticmethod
    def _ambiguous(what: str, prefix: str, rows: list[sqlite3.Row], column: str) -> str:
        shown = ", ".join(row[column] for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
        return f"{what} id {prefix!r} matches several {what}s ({shown}): give more characters"

    @staticmethod
    def _trace_filters(
        policy: str | None, outcome: str | None, state: str | None, since: float | None, until: float | None
    ) -> tuple[str, str, list[Any]]:
        """(FROM clause, WHERE clause, parameters) for the trace filters (the clauses of :class:`TraceFilter`).

        With a ``state``, the query reads ``trace_states``, whose primary key (state, time, trace_id)
        answers it without a scan.
        """
        where = TraceFilter(policy=policy, outcome=outcome, state=state, since=since, until=until)
        if state is None:
            clause, params = where.where("traces")
            return "traces", clause, params
        clause, params = where.states_where("trace_states")
        condition = "trace_states.state = ?"
        clause = f" WHERE {condition} AND {clause[len(' WHERE '):]}" if clause else f" WHERE {condition}"
        return "trace_states", clause, [state, *params]

    def query_traces(
        self,
        *,
        policy: str | None = None,
        outcome: str | None = None,
        state: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 100,
        newest_first: bool = True,
    ) -> list[Trace]:
        """Traces matching every filter given (``since`` inclusive, ``until`` exclusive, Unix seconds).

        ``state`` matches a trace in which that failure state was detected (any of ``Trace.states``,
        or ``Trace.state``). ``limit=None`` returns every match.
        """
        table, where, params = self._trace_filters(policy, outcome, state, since, until)
        order = "DESC" if newest_first else "ASC"
        limit_sql = ""
        if limit is not None:
            limit_sql = " LIMIT ?"
            params.append(max(0, int(limit)))
        if table == "traces":
            sql = f"SELECT * FROM traces{where} ORDER BY time {order}, id {order}{limit_sql}"
        else:
            sql = (
                f"SELECT t.* FROM (SELECT trace_id, time FROM trace_states{where} "
                f"ORDER BY time {order}, trace_id {order}{limit_sql}) AS s "
                f"JOIN traces AS t ON t.trace_id = s.trace_id ORDER BY s.time {order}, s.trace_id {order}"
            )
        with self.read_connection() as connection:
            return [_row_to_trace(row) for row in connection.execute(sql, params)]

    def count_traces(
        self,
        *,
        policy: str | None = None,
        outcome: str | None = None,
        state: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many traces match every filter given (same filters as :meth:`query_traces`)."""
        table, where, params = self._trace_filters(policy, outcome, state, since, until)
        with self.read_connection() as connection:
            return connection.execute(f"SELECT count(*) FROM {table}{where}", params).fetchone()[0]

    def delete_traces(self, *, until: float, policy: str | None = None) -> int:
        """Delete the traces that started before ``until`` (Unix seconds), of one policy or all; returns how many.

        For retention (keep the last N days). Traces queued by this store are written first, so
        the cut is by time only. Runs in one transaction; the file does not shrink (SQLite reuses
        the pages).
        """
        self.flush()
        where, params = "time < ?", [float(until)]
        if policy is not None:
            where += " AND policy = ?"
            params.append(policy)
        with self._transaction() as connection:
            connection.execute(f"DELETE FROM trace_states WHERE {where}", params)
            return connection.execute(f"DELETE FROM traces WHERE {where}", params).rowcount

    # ------------------------------------------------------------------ review tickets

    def create_ticket(self, ticket: Ticket) -> str:
        """Store a new ticket and return its id (synchronously, unless the store queues tickets).

        An empty ``ticket_id`` gets a new one (``t-`` and 10 hex digits); ``created`` of 0 becomes now.
        Raises ``StoreError`` if a ticket with the given id exists already. With ``queue_tickets=True``
        the ticket joins the trace writer's queue instead (same durability as a trace: on disk after the
        next batch or :meth:`flush`), and a given id that exists already is ignored.
        """
        given = ticket.ticket_id
        created = _real(ticket.created) or time.time()
        if self.queue_tickets:
            ticket_id = given or f"t-{secrets.token_hex(8)}"
            self._enqueue(_QueuedTicket(ticket, ticket_id, created))
            return ticket_id
        for _ in range(8):
            ticket_id = given or f"t-{secrets.token_hex(5)}"
            row = _ticket_row(ticket, ticket_id, created)
            with self._transaction() as connection:
                inserted = connection.execute(_INSERT_TICKET, row).rowcount
            if inserted:
                return ticket_id
            if given:
                raise StoreError(f"a ticket with id {given!r} exists already in {self.path}; leave ticket_id empty for a new id")
        raise StoreError(f"could not find a free ticket id in {self.path}")  # 8 collisions of 40 random bits

    def _find_ticket(self, connection: sqlite3.Connection, ticket_id: str) -> sqlite3.Row:
        row = connection.execute("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
        if row is not None:
            return row
        rows = self._by_prefix(connection, "tickets", "ticket_id", ticket_id)
        if len(rows) == 1:
            return rows[0]
        if rows:
            raise TicketNotFound(self._ambiguous("ticket", ticket_id, rows, "ticket_id"))
        raise TicketNotFound(f"no ticket {ticket_id!r} in {self.path}; `failpath review list` shows the open ones")

    def get_ticket(self, ticket_id: str) -> Ticket:
        """The ticket with that id (a unique prefix works too); raises ``TicketNotFound``."""
        with self.read_connection(flush=self.queue_tickets) as connection:
            return _row_to_ticket(self._find_ticket(connection, ticket_id))

    def list_tickets(
        self, *, status: TicketStatus | str | None = None, queue: str | None = None, limit: int | None = None
    ) -> list[Ticket]:
        """Tickets, oldest first, filtered by status and queue."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            try:
                status_value = TicketStatus(status).value
            except ValueError:
                choices = ", ".join(s.value for s in TicketStatus)
                raise StoreError(f"unknown ticket status {status!r}: use one of {choices}") from None
            where.append("status = ?")
            params.append(status_value)
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        sql = "SELECT * FROM tickets" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created, rowid"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        with self.read_connection(flush=self.queue_tickets) as connection:
            return [_row_to_ticket(row) for row in connection.execute(sql, params)]

    def resolve_ticket(
        self, ticket_id: str, answer: Any, *, note: str | None = None, reviewer: str | None = None
    ) -> Ticket:
        """Record a human's answer. Atomic across processes: a second resolution raises ``AlreadyResolved``.

        ``AlreadyResolved`` names who resolved the ticket and when; it carries the stored ticket as
        its ``ticket`` attribute.
        """
        with self.read_connection(flush=self.queue_tickets) as connection:
            full_id = self._find_ticket(connection, ticket_id)["ticket_id"]
        now = time.time()
        with self._transaction() as connection:
            changed = connection.execute(
                "UPDATE tickets SET status = ?, answer = ?, note = ?, reviewer = ?, resolved_at = ? "
                "WHERE ticket_id = ? AND status = ?",
                (TicketStatus.RESOLVED.value, dumps(answer), _text(note), _text(reviewer), now, full_id,
                 TicketStatus.OPEN.value),
            ).rowcount
            row = connection.execute("SELECT * FROM tickets WHERE ticket_id = ?", (full_id,)).fetchone()
        ticket = _row_to_ticket(row)
        if changed != 1:
            if ticket.status is TicketStatus.EXPIRED:
                message = f"ticket {full_id} expired at {_when(ticket.resolved_at)} and cannot be resolved any more"
            else:
                who = ticket.reviewer or "an unnamed reviewer"
                message = (
                    f"ticket {full_id} was already resolved by {who} at {_when(ticket.resolved_at)} "
                    f"(answer: {dumps(ticket.answer)[:200]})"
                )
            error = AlreadyResolved(message)
            error.ticket = ticket  # type: ignore[attr-defined]
            raise error
        return ticket

    def expire_tickets(self, *, older_than: float, now: float | None = None) -> list[Ticket]:
        """Mark open tickets created more than ``older_than`` seconds ago, or past their deadline, as expired.

        Returns the tickets this call expired (a ticket expired by another process is not repeated).
        """
        if self.queue_tickets:
            self.flush()
        now = time.time() if now is None else float(now)
        cutoff = now - float(older_than)
        condition = "status = ? AND (created < ? OR (deadline IS NOT NULL AND deadline <= ?))"
        params = (TicketStatus.OPEN.value, cutoff, now)
        with self._transaction() as connection:
            ids = [row[0] for row in connection.execute(f"SELECT ticket_id FROM tickets WHERE {condition}", params)]
            if not ids:
                return []
            connection.execute(
                f"UPDATE tickets SET status = ?, resolved_at = ? WHERE {condition}",
                (TicketStatus.EXPIRED.value, now, *params),
            )
            placeholders = ", ".join("?" * len(ids))
            rows = connection.execute(
                f"SELECT * FROM tickets WHERE ticket_id IN ({placeholders}) ORDER BY created, rowid", ids
            ).fetchall()
        return [_row_to_ticket(row) for row in rows]

    # ------------------------------------------------------------------ check runs

    def create_run(self, run_id: str, *, kind: str, config: Mapping[str, Any]) -> None:
        """Register a run (``kind`` is e.g. ``"check"``) with its configuration (rendered JSON-safe).

        Raises ``StoreError`` if the run id exists already (resume it with ``get_run`` instead).
        """
        if not run_id:
            raise StoreError("a run id cannot be empty")
        with self._transaction() as connection:
            inserted = connection.execute(
                "INSERT OR IGNORE INTO runs (run_id, kind, config, created) VALUES (?, ?, ?, ?)",
                (run_id, kind, dumps(config), time.time()),
            ).rowcount
        if not inserted:
            raise StoreError(f"a run {run_id!r} exists already in {self.path}: resume it, or choose another run id")

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's record: ``run_id, kind, config, created, finished, summary`` (a unique prefix works).

        ``finished`` and ``summary`` are None until :meth:`finish_run`. Raises ``StoreError`` when the
        prefix matches several runs.
        """
        with self.read_connection(flush=False) as connection:
            row = connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                rows = self._by_prefix(connection, "runs", "run_id", run_id)
                if not rows:
                    return None
                if len(rows) > 1:
                    raise StoreError(self._ambiguous("run", run_id, rows, "run_id"))
                row = rows[0]
            return _row_to_run(row)

    def list_runs(self, *, kind: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first (same records as :meth:`get_run`)."""
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        sql += " ORDER BY created DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        with self.read_connection(flush=False) as connection:
            return [_row_to_run(row) for row in connection.execute(sql, params)]

    def add_results(self, run_id: str, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Store result rows ``(key, data)``; a key already stored for the run is ignored. Returns rows added.

        The rows are committed (in one transaction) before this returns. Raises ``StoreError`` if the
        run was not created.
        """
        now = time.time()
        prepared = []
        for key, data in rows:
            if not isinstance(key, str):
                raise TypeError(f"result keys are strings, got {key!r} ({type(key).__name__}) for run {run_id!r}")
            prepared.append((run_id, key, dumps(data), now))
        with self._transaction() as connection:
            if connection.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
                raise StoreError(f"no run {run_id!r} in {self.path}: call create_run first")
            if not prepared:
                return 0
            before = connection.total_changes
            connection.executemany(
                "INSERT OR IGNORE INTO results (run_id, key, data, written) VALUES (?, ?, ?, ?)", prepared
            )
            return connection.total_changes - before

    def result_keys(self, run_id: str) -> set[str]:
        """Keys of the results stored for the run (what a resumed run skips)."""
        with self.read_connection(flush=False) as connection:
            return {row[0] for row in connection.execute("SELECT key FROM results WHERE run_id = ?", (run_id,))}

    def results(self, run_id: str) -> list[dict[str, Any]]:
        """The run's result rows, ``{"key", "data", "written"}`` each, in the order they were written."""
        with self.read_connection(flush=False) as connection:
            fetched = connection.execute(
                "SELECT key, data, written FROM results WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        return [{"key": row[0], "data": json.loads(row[1]), "written": row[2]} for row in fetched]

    def results_after(self, run_id: str, after: int = 0) -> tuple[list[tuple[str, Any]], int]:
        """The run's result rows stored after position ``after`` as ``(key, data)``, in the order written,
        and the position to pass next time (0 reads from the start): for reading a run while it is written.

        Positions are the rows' ids, which only grow, so rows committed by other processes meanwhile
        are read by a later call, never skipped. The rows are read along the ids (``+run_id`` keeps
        SQLite from going through the (run_id, key) index and sorting), from the run's first row on.
        """
        with self.read_connection(flush=False) as connection:
            if after <= 0:
                first = connection.execute("SELECT min(id) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
                if first is None:
                    return [], after
                after = first - 1
            fetched = connection.execute(
                "SELECT id, key, data FROM results WHERE id > ? AND +run_id = ? ORDER BY id", (after, run_id)
            ).fetchall()
        if not fetched:
            return [], after
        loads = json.loads
        return [(row[1], loads(row[2])) for row in fetched], fetched[-1][0]

    def finish_run(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Mark the run finished and keep its summary (rendered JSON-safe). ``StoreError`` if no such run."""
        with self._transaction() as connection:
            changed = connection.execute(
                "UPDATE runs SET finished = ?, summary = ? WHERE run_id = ?", (time.time(), dumps(summary), run_id)
            ).rowcount
        if not changed:
            raise StoreError(f"no run {run_id!r} in {self.path}: call create_run first")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Flush pending traces, stop the writer thread and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _OPEN_STORES.discard(self)
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's queue, thread and connections; start afresh."""
        with contextlib.suppress(Exception):
            self._finalizer.detach()
        # Connections inherited across fork must not be used or closed here: keep them unreferenced
        # by this store but alive, so closing them cannot disturb the parent's locks.
        _INHERITED.append((self._writer, self._connector, self._local))
        if not self._closed:
            self._start()


# Objects a forked child inherited from its parent and must never touch (see _forget_after_fork).
_INHERITED: list[Any] = []


def _finalize(writer: _TraceWriter, connector: _Connector) -> None:
    """Flush and stop the writer, then close the connections (on close, garbage collection, or exit)."""
    try:
        writer.stop()
    finally:
        connector.close_all()

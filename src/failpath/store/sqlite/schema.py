"""The SQLite store's tables, as a versioned list of migrations, and what happens when a file is opened.

The version is kept in ``PRAGMA user_version`` (read on every open, and what older failpath versions
check) and each migration applied is recorded in the ``schema_version`` table. Opening a file:

- a new or empty file gets every migration, in one transaction;
- a failpath store of an older version gets the migrations it lacks, in one transaction, on first use
  (another process opening it at the same time waits, then finds it current);
- a newer version (written by a newer failpath) is refused with a ``StoreError`` naming both versions;
- any other file (not SQLite, or another application's database) is refused and left as it is.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from failpath.core import StoreError
from failpath.store.migrations import Migration, migrations_to_apply, schema_version
from failpath.store.rollup import rollup_tables
from failpath.store.sqlite.checkpoints import CHECKPOINT_TABLES
from failpath.store.sqlite.reviewers import REVIEWER_TABLES
from failpath.store.sqlite.connections import Connector

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "APPLICATION_ID", "prepare_file"]

_log = logging.getLogger("failpath.store")

#: Marks a SQLite file as a failpath store (``PRAGMA application_id``): "fpth".
APPLICATION_ID = 0x66707468

_TABLES = (
    """CREATE TABLE traces (
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
)""",
    "CREATE INDEX traces_time ON traces(time)",
    "CREATE INDEX traces_policy_time ON traces(policy, time)",
    "CREATE INDEX traces_outcome_time ON traces(outcome, time)",
    # One row per (failure state detected, trace): filtering and counting by state is index-only.
    """CREATE TABLE trace_states (
    state    TEXT NOT NULL,
    time     REAL NOT NULL,
    trace_id TEXT NOT NULL,
    policy   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    PRIMARY KEY (state, time, trace_id)
) WITHOUT ROWID""",
    """CREATE TABLE tickets (
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
)""",
    "CREATE INDEX tickets_status_created ON tickets(status, created)",
    "CREATE INDEX tickets_queue_created ON tickets(queue, created)",
    """CREATE TABLE runs (
    run_id   TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    config   TEXT NOT NULL,
    created  REAL NOT NULL,
    finished REAL,
    summary  TEXT
)""",
    "CREATE INDEX runs_created ON runs(created)",
    """CREATE TABLE results (
    id      INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs(run_id),
    key     TEXT NOT NULL,
    data    TEXT NOT NULL,
    written REAL NOT NULL,
    UNIQUE (run_id, key)
)""",
)

#: The schema, step by step. Append a migration to change it; never edit one that has shipped.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "traces, trace states, tickets, runs and results", _TABLES),
    Migration(
        2,
        "a schema_version table recording each migration applied",
        (
            """CREATE TABLE schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied     REAL
)""",
        ),
    ),
    Migration(
        3,
        "review claims with an expiry, and every resolution of a ticket with its reviewer",
        (
            "ALTER TABLE tickets ADD COLUMN claimed_by TEXT",
            "ALTER TABLE tickets ADD COLUMN claimed_until REAL",
            """CREATE TABLE resolutions (
    id        INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    reviewer  TEXT,
    answer    TEXT,
    note      TEXT,
    at        REAL NOT NULL,
    accepted  INTEGER NOT NULL
)""",
            "CREATE INDEX resolutions_ticket ON resolutions(ticket_id, id)",
        ),
    ),
    Migration(4, "agent run checkpoints: one row per completed step of a run", CHECKPOINT_TABLES),
    Migration(5, "reviewers of the review page: a name and the SHA-256 digest of a sign-in token", REVIEWER_TABLES),
    Migration(
        6,
        "each ticket's output schema, the queue's deadline order as an index, and the hourly trace rollup",
        (
            *rollup_tables("BLOB"),
            "ALTER TABLE tickets ADD COLUMN output_schema TEXT",
            # Nearest deadline first: tickets with a deadline (ascending), then those without, oldest first.
            "CREATE INDEX tickets_status_deadline ON tickets(status, deadline, created)",
        ),
    ),
)

#: The version of the tables above, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = schema_version(MIGRATIONS)


def prepare_file(path: Path, busy_timeout: float) -> None:
    """Make ``path`` a current failpath store: create it, migrate it, or refuse it with a ``StoreError``."""
    if str(path) == ":memory:" or str(path).startswith("file:"):
        raise StoreError(
            f"store path {str(path)!r} is not supported: the store is shared between threads and processes "
            f"through a file; pass a file path (a temporary folder works for throwaway stores)"
        )
    if path.is_dir():
        raise StoreError(f"store path {path} is a folder: give the path of a file inside it, e.g. {path / 'failpath.db'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # a new store folder is its owner's only
        _create_private(path)
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder {path.parent} for the store {path}: {exc.strerror or exc}; "
            f"choose another --store path or fix the folder's permissions"
        ) from None
    try:
        connection = Connector(path, busy_timeout).connect(remember=False)
        try:
            _check_and_migrate(connection, path)
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc) or "encrypted" in str(exc):
            raise StoreError(
                f"{path} is not a failpath store (not a SQLite database: {exc}); "
                f"pass another --store path, or move that file away"
            ) from None
        raise StoreError(f"cannot open the store {path}: {exc}; check the path and its permissions") from None


def read_only_uri(path: Path, busy_timeout: float) -> str:
    """The URI that opens the store at ``path`` without writing anything, for a store on read-only media
    (a read-only mount, a snapshot, a CD): ``mode=ro``, or when SQLite cannot share a WAL database there
    (it needs to create the ``-shm`` file), ``immutable=1`` for a store that was closed cleanly (no
    ``-wal`` file left holding commits). ``StoreError`` saying what to do otherwise, or when the store
    needs a migration, which needs writing."""
    from urllib.parse import quote

    if not path.is_file():
        raise StoreError(f"no store at {path}: check the path")
    base = "file:" + quote(str(path.resolve()))
    wal = Path(f"{path}-wal")
    last_error: Exception | None = None
    for uri in (f"{base}?mode=ro", f"{base}?immutable=1"):
        if uri.endswith("immutable=1") and wal.exists() and wal.stat().st_size > 0:
            raise StoreError(
                f"cannot open the store {path} read-only: it was not closed cleanly (its -wal file holds commits "
                f"that only a writable copy can take in); copy the folder to writable storage and run the command there"
            )
        try:
            connection = Connector(path, busy_timeout, uri=uri).connect(remember=False)
            try:
                version, app_id = _schema_marks(connection)
            finally:
                connection.close()
        except sqlite3.DatabaseError as exc:
            last_error = exc
            continue
        _refuse_foreign(app_id, path)
        if migrations_to_apply(version, MIGRATIONS, store=str(path)):
            raise StoreError(
                f"the store {path} is of schema version {version} and is read-only, so it cannot be migrated to "
                f"version {SCHEMA_VERSION}; open it once where it can be written, or with the failpath that wrote it"
            )
        return uri
    raise StoreError(f"cannot open the store {path} read-only: {last_error}; check the path and its permissions")


def _create_private(path: Path) -> None:
    """Create the store file owner-only (0600) if it does not exist: SQLite gives its ``-wal`` and ``-shm``
    files the database file's mode, so they are private too."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _check_and_migrate(connection: sqlite3.Connection, path: Path) -> None:
    version, app_id = _schema_marks(connection)
    _refuse_foreign(app_id, path)
    if not migrations_to_apply(version, MIGRATIONS, store=str(path)):
        return  # current: the common case, two pragma reads
    if version == 0:
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            _log.warning("failpath: store %s could not switch to WAL mode (journal_mode=%s)", path, mode)
    connection.execute("BEGIN IMMEDIATE")
    try:
        version, app_id = _schema_marks(connection)  # another process may have migrated it meanwhile
        _refuse_foreign(app_id, path)
        steps = migrations_to_apply(version, MIGRATIONS, store=str(path))
        if version == 0 and connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StoreError(
                f"{path} is a SQLite database but not a failpath store; pass another --store path (failpath will create it)"
            )
        _apply(connection, steps)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    if version:
        _log.info("failpath: store %s migrated from schema version %d to %d", path, version, SCHEMA_VERSION)


def _apply(connection: sqlite3.Connection, steps: tuple[Migration, ...]) -> None:
    """Run ``steps`` inside the caller's transaction, record them, and set the version marks."""
    for migration in steps:
        for statement in migration.statements:
            connection.execute(statement)
    now = time.time()
    applied = {m.version for m in steps}
    recorded = {row[0] for row in connection.execute("SELECT version FROM schema_version")}
    connection.executemany(
        "INSERT INTO schema_version (version, description, applied) VALUES (?, ?, ?)",
        # A migration applied before this record existed gets no time: when it ran is not known.
        [(m.version, m.description, now if m.version in applied else None) for m in MIGRATIONS if m.version not in recorded],
    )
    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _refuse_foreign(app_id: int, path: Path) -> None:
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is a SQLite database but not a failpath store (application_id {app_id:#x}); "
            f"pass another --store path"
        )


def _schema_marks(connection: sqlite3.Connection) -> tuple[int, int]:
    """``(user_version, application_id)``; a blank file counts as ours, at version 0."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    app_id = connection.execute("PRAGMA application_id").fetchone()[0]
    if version == 0 and app_id == 0:
        return 0, APPLICATION_ID
    return version, app_id


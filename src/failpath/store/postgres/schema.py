"""The PostgreSQL store's tables, as a versioned list of migrations, and what happens on first use.

Versions match the SQLite store's (1: the tables, 2: the ``schema_version`` table, 3: review
claims and the record of resolutions, 4: agent run checkpoints, 5: reviewers, 6: tickets' output schemas,
the deadline index and the trace rollup); each migration applied is recorded in ``schema_version``, whose highest
version is the store's. On first use of a database:

- a database without failpath's tables gets every migration, in one transaction;
- a failpath store of an older version gets the migrations it lacks, in one transaction (DDL is
  transactional in PostgreSQL; an advisory lock makes a second process opening it at the same
  time wait, then find it current);
- a newer version (written by a newer failpath) is refused with a ``StoreError`` naming both versions.

Other tables in the database are left alone: a team may keep failpath's tables beside its own
(or in a schema of their own, with ``?options=-csearch_path%3Dfailpath`` in the URL).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from failpath.core import StoreError
from failpath.store.migrations import Migration, migrations_to_apply, schema_version
from failpath.store.rollup import rollup_tables
from failpath.store.postgres.checkpoints import CHECKPOINT_TABLES
from failpath.store.postgres.reviewers import REVIEWER_TABLES

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "MIGRATION_LOCK", "prepare_database"]

_log = logging.getLogger("failpath.store")

#: The advisory lock key migrations hold (``pg_advisory_xact_lock``): "fpth", as SQLite's application_id.
MIGRATION_LOCK = 0x66707468

# Ids are compared byte by byte (COLLATE "C"), so a prefix lookup is one range of the primary key
# whatever the database's locale.
_TABLES = (
    """CREATE TABLE traces (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trace_id      TEXT COLLATE "C" NOT NULL UNIQUE,
    time          DOUBLE PRECISION NOT NULL,
    policy        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    state         TEXT,
    degraded      SMALLINT NOT NULL DEFAULT 0,
    confidence    DOUBLE PRECISION,
    latency_ms    DOUBLE PRECISION NOT NULL DEFAULT 0,
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
    """CREATE TABLE trace_states (
    state    TEXT NOT NULL,
    time     DOUBLE PRECISION NOT NULL,
    trace_id TEXT COLLATE "C" NOT NULL,
    policy   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    PRIMARY KEY (state, time, trace_id)
)""",
    """CREATE TABLE tickets (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY,
    ticket_id     TEXT COLLATE "C" PRIMARY KEY,
    queue         TEXT NOT NULL,
    created       DOUBLE PRECISION NOT NULL,
    policy        TEXT NOT NULL,
    trace_id      TEXT,
    input_preview TEXT NOT NULL,
    input_raw     TEXT,
    output        TEXT,
    confidence    DOUBLE PRECISION,
    state         TEXT,
    status        TEXT NOT NULL,
    deadline      DOUBLE PRECISION,
    "default"     TEXT,
    answer        TEXT,
    note          TEXT,
    reviewer      TEXT,
    resolved_at   DOUBLE PRECISION
)""",
    "CREATE INDEX tickets_status_created ON tickets(status, created)",
    "CREATE INDEX tickets_queue_created ON tickets(queue, created)",
    """CREATE TABLE runs (
    seq      BIGINT GENERATED ALWAYS AS IDENTITY,
    run_id   TEXT COLLATE "C" PRIMARY KEY,
    kind     TEXT NOT NULL,
    config   TEXT NOT NULL,
    created  DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION,
    summary  TEXT
)""",
    "CREATE INDEX runs_created ON runs(created)",
    """CREATE TABLE results (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id  TEXT COLLATE "C" NOT NULL REFERENCES runs(run_id),
    key     TEXT NOT NULL,
    data    TEXT NOT NULL,
    written DOUBLE PRECISION NOT NULL,
    UNIQUE (run_id, key)
)""",
    "CREATE INDEX results_run_id ON results(run_id, id)",
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
    applied     DOUBLE PRECISION
)""",
        ),
    ),
    Migration(
        3,
        "review claims with an expiry, and every resolution of a ticket with its reviewer",
        (
            "ALTER TABLE tickets ADD COLUMN claimed_by TEXT",
            "ALTER TABLE tickets ADD COLUMN claimed_until DOUBLE PRECISION",
            """CREATE TABLE resolutions (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id TEXT COLLATE "C" NOT NULL,
    reviewer  TEXT,
    answer    TEXT,
    note      TEXT,
    at        DOUBLE PRECISION NOT NULL,
    accepted  BOOLEAN NOT NULL
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
            *rollup_tables("BYTEA"),
            "ALTER TABLE tickets ADD COLUMN output_schema TEXT",
            # Nearest deadline first: tickets with a deadline (ascending), then those without, oldest first.
            "CREATE INDEX tickets_status_deadline ON tickets(status, deadline, created, seq)",
        ),
    ),
)

#: The version of the tables above: the highest version in ``schema_version``.
SCHEMA_VERSION = schema_version(MIGRATIONS)


def _found_version(connection: Any) -> int:
    """The store's version: the highest recorded in ``schema_version``, or 0 for a database without failpath's tables."""
    names = {
        row[0]
        for row in connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name IN ('traces', 'tickets', 'runs', 'schema_version')"
        )
    }
    if "schema_version" in names:
        return int(connection.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
    if names:
        raise StoreError(
            "the database has tables named " + ", ".join(sorted(names)) + " that are not a failpath store; "
            "point --store at another database, or at a schema of its own (?options=-csearch_path%3Dfailpath)"
        )
    return 0


def prepare_database(connection: Any, where: str) -> None:
    """Make the database of ``connection`` a current failpath store: create or migrate its tables, or refuse it.

    ``connection`` is a psycopg connection outside any transaction; ``where`` names the store in messages.
    """
    version = _found_version(connection)
    connection.commit()
    if not migrations_to_apply(version, MIGRATIONS, store=where):
        return  # current: the common case, one catalogue read and one small query
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        version = _found_version(connection)  # another process may have migrated it meanwhile
        steps = migrations_to_apply(version, MIGRATIONS, store=where)
        for migration in steps:
            for statement in migration.statements:
                connection.execute(statement)
        now = time.time()
        applied = {m.version for m in steps}
        recorded = {row[0] for row in connection.execute("SELECT version FROM schema_version")}
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO schema_version (version, description, applied) VALUES (%s, %s, %s)",
                [(m.version, m.description, now if m.version in applied else None) for m in MIGRATIONS if m.version not in recorded],
            )
    if version:
        _log.info("failpath: store %s migrated from schema version %d to %d", where, version, SCHEMA_VERSION)

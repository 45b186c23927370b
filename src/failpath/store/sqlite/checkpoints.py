"""The SQLite store's agent run checkpoints: one row per completed step of a run, written synchronously.

A checkpoint is ``(run_id, seq, kind, data)``. ``seq`` numbers a run's checkpoints from 0 and is the
table's key with ``run_id``: writing a checkpoint claims its number, so when two processes try to
continue the same run, exactly one of them gets each step (the other is told, and stops).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from failpath.core import StoreError
from failpath.store.common import CheckpointTaken, check_checkpoint, checkpoint_rows
from failpath.store.jsonsafe import dumps
from failpath.store.records import DECODE_ERRORS, damaged

__all__ = ["CHECKPOINT_TABLES", "CheckpointQueries"]

INSERT_CHECKPOINT = "INSERT OR IGNORE INTO run_checkpoints (run_id, seq, kind, data, written) VALUES (?, ?, ?, ?, ?)"

#: The statements of the migration that adds run checkpoints (listed in :mod:`.schema`).
CHECKPOINT_TABLES: tuple[str, ...] = (
    """CREATE TABLE run_checkpoints (
    run_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL,
    written REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID""",
)


def _was_taken(exc: BaseException) -> bool:
    """Whether a grouped write failed because a checkpoint existed (another caller of its batch gets a copy)."""
    return isinstance(exc, CheckpointTaken) or isinstance(exc.__cause__, CheckpointTaken)


def _insert_all(connection: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> bool:
    """Insert every row or none: a row whose checkpoint exists raises ``CheckpointTaken``, which rolls the write back."""
    for row in rows:
        if not connection.execute(INSERT_CHECKPOINT, row).rowcount:
            raise CheckpointTaken()
    return True


class CheckpointQueries:
    """The checkpoint methods of :class:`~failpath.store.sqlite.SQLiteStore`, which supplies the names declared here."""

    path: Path
    read_connection: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _grouped: Callable[[Callable[[sqlite3.Connection], Any]], Any]

    #: ``add_checkpoint`` and ``end_run`` take ``earlier=``: checkpoints written first, in the same transaction.
    writes_earlier_checkpoints = True

    def add_checkpoint(self, run_id: str, seq: int, kind: str, data: Mapping[str, Any], *, earlier: Sequence[tuple[int, str, Mapping[str, Any]]] = ()) -> bool:
        """Write checkpoint ``seq`` of the run, after the checkpoints ``earlier`` (``(seq, kind, data)`` each)
        in the same transaction (committed when this returns).

        Returns False, writing nothing, when the run has one of those checkpoints already: another process
        continued the run first.
        """
        rows = checkpoint_rows(run_id, [*earlier, (seq, kind, data)])
        if len(rows) == 1:
            return bool(self._grouped(lambda connection: connection.execute(INSERT_CHECKPOINT, rows[0]).rowcount))
        try:
            return bool(self._grouped(lambda connection: _insert_all(connection, rows)))
        except (CheckpointTaken, StoreError) as exc:
            if _was_taken(exc):
                return False
            raise

    def begin_run(self, run_id: str, *, kind: str, config: Mapping[str, Any], first_checkpoint: tuple[str, Mapping[str, Any]]) -> bool:
        """Register a run and write its checkpoint 0, ``first_checkpoint = (kind, data)``, in one transaction
        (committed when this returns). Returns False, writing nothing, when a run with that id exists already
        (or has checkpoints)."""
        check_checkpoint(run_id, 0)
        now = time.time()
        run_row = (run_id, kind, dumps(config), now)
        checkpoint_row = (run_id, 0, first_checkpoint[0], dumps(first_checkpoint[1]), now)

        def begin(connection: sqlite3.Connection) -> bool:
            if not connection.execute("INSERT OR IGNORE INTO runs (run_id, kind, config, created) VALUES (?, ?, ?, ?)", run_row).rowcount:
                return False
            if connection.execute(INSERT_CHECKPOINT, checkpoint_row).rowcount:
                return True
            connection.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))  # checkpoints without a run: leave them be
            return False

        return bool(self._grouped(begin))

    def end_run(self, run_id: str, *, last_checkpoint: tuple[int, str, Mapping[str, Any]], summary: Mapping[str, Any],
                earlier: Sequence[tuple[int, str, Mapping[str, Any]]] = ()) -> bool:
        """Write checkpoint ``last_checkpoint = (seq, kind, data)`` (after the checkpoints ``earlier``) and mark
        the run finished with ``summary`` (as :meth:`finish_run`), in one transaction (committed when this
        returns). Returns False, writing nothing, when the run has one of those checkpoints already; a run
        that was never registered gets the checkpoints only."""
        rows = checkpoint_rows(run_id, [*earlier, last_checkpoint])
        finish_row = (rows[-1][4], dumps(summary), run_id)

        def end(connection: sqlite3.Connection) -> bool:
            _insert_all(connection, rows)
            connection.execute("UPDATE runs SET finished = ?, summary = ? WHERE run_id = ?", finish_row)
            return True

        try:
            return bool(self._grouped(end))
        except (CheckpointTaken, StoreError) as exc:
            if _was_taken(exc):
                return False
            raise

    def checkpoints(self, run_id: str) -> list[tuple[int, str, Any]]:
        """The run's checkpoints as ``(seq, kind, data)``, in order (empty for a run with none)."""
        with self.read_connection(flush=False) as connection:
            rows = connection.execute(
                "SELECT seq, kind, data FROM run_checkpoints WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
        try:
            return [(row[0], row[1], json.loads(row[2])) for row in rows]
        except DECODE_ERRORS as exc:
            raise damaged(f"the checkpoints of run {run_id!r}", exc) from None

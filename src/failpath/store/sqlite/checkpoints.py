"""The SQLite store's agent run checkpoints: one row per completed step of a run, written synchronously.

A checkpoint is ``(run_id, seq, kind, data)``. ``seq`` numbers a run's checkpoints from 0 and is the
table's key with ``run_id``: writing a checkpoint claims its number, so when two processes try to
continue the same run, exactly one of them gets each step (the other is told, and stops).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from failpath.store.common import check_checkpoint
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


class CheckpointQueries:
    """The checkpoint methods of :class:`~failpath.store.sqlite.SQLiteStore`, which supplies the names declared here."""

    path: Path
    read_connection: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _grouped: Callable[[Callable[[sqlite3.Connection], Any]], Any]

    def add_checkpoint(self, run_id: str, seq: int, kind: str, data: Mapping[str, Any]) -> bool:
        """Write checkpoint ``seq`` of the run (committed when this returns).

        Returns False, writing nothing, when the run has a checkpoint ``seq`` already: another process
        continued the run first.
        """
        check_checkpoint(run_id, seq)
        row = (run_id, seq, kind, dumps(data), time.time())
        return bool(self._grouped(lambda connection: connection.execute(INSERT_CHECKPOINT, row).rowcount))

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

    def end_run(self, run_id: str, *, last_checkpoint: tuple[int, str, Mapping[str, Any]], summary: Mapping[str, Any]) -> bool:
        """Write checkpoint ``last_checkpoint = (seq, kind, data)`` and mark the run finished with ``summary``
        (as :meth:`finish_run`), in one transaction (committed when this returns). Returns False, writing
        nothing, when the run has checkpoint ``seq`` already; a run that was never registered gets the
        checkpoint only."""
        seq, kind, data = last_checkpoint
        check_checkpoint(run_id, seq)
        now = time.time()
        checkpoint_row = (run_id, seq, kind, dumps(data), now)
        finish_row = (now, dumps(summary), run_id)

        def end(connection: sqlite3.Connection) -> bool:
            if not connection.execute(INSERT_CHECKPOINT, checkpoint_row).rowcount:
                return False
            connection.execute("UPDATE runs SET finished = ?, summary = ? WHERE run_id = ?", finish_row)
            return True

        return bool(self._grouped(end))

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

"""The PostgreSQL store's agent run checkpoints: one row per completed step of a run, written synchronously.

The same contract as the SQLite store's (:mod:`failpath.store.sqlite.checkpoints`): ``(run_id, seq)`` is
the key, so writing a checkpoint claims its number and, when two processes on any machines try to
continue the same run, exactly one of them gets each step. Each write is its own transaction (no group
commit here: the server runs the pool's transactions side by side and shares its log flushes between
concurrent commits itself).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from failpath.store.common import CheckpointTaken, check_checkpoint, checkpoint_rows
from failpath.store.jsonsafe import dumps
from failpath.store.records import DECODE_ERRORS, damaged

__all__ = ["CHECKPOINT_TABLES", "CheckpointQueries"]

#: The statements of the migration that adds run checkpoints (listed in :mod:`.schema`).
CHECKPOINT_TABLES: tuple[str, ...] = (
    """CREATE TABLE run_checkpoints (
    run_id  TEXT COLLATE "C" NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL,
    written DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, seq)
)""",
)


def _insert_all(connection: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert every row or none: a row whose checkpoint exists raises ``CheckpointTaken``, which rolls the transaction back."""
    for row in rows:
        if not connection.execute(
            "INSERT INTO run_checkpoints (run_id, seq, kind, data, written) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", row
        ).rowcount:
            raise CheckpointTaken()


class CheckpointQueries:
    """The checkpoint methods of :class:`~failpath.store.postgres.PostgresStore`, which supplies the names declared here."""

    read_connection: Callable[..., AbstractContextManager[Any]]
    _transaction: Callable[[], AbstractContextManager[Any]]

    #: ``add_checkpoint`` and ``end_run`` take ``earlier=``: checkpoints written first, in the same transaction.
    writes_earlier_checkpoints = True

    def add_checkpoint(self, run_id: str, seq: int, kind: str, data: Mapping[str, Any], *, earlier: Sequence[tuple[int, str, Mapping[str, Any]]] = ()) -> bool:
        """Write checkpoint ``seq`` of the run, after the checkpoints ``earlier`` (``(seq, kind, data)`` each)
        in the same transaction (committed when this returns).

        Returns False, writing nothing, when the run has one of those checkpoints already: another process
        continued the run first.
        """
        rows = checkpoint_rows(run_id, [*earlier, (seq, kind, data)])
        try:
            with self._transaction() as connection:
                _insert_all(connection, rows)
        except CheckpointTaken:
            return False
        return True

    def begin_run(self, run_id: str, *, kind: str, config: Mapping[str, Any], first_checkpoint: tuple[str, Mapping[str, Any]]) -> bool:
        """Register a run and write its checkpoint 0, ``first_checkpoint = (kind, data)``, in one transaction
        (committed when this returns). Returns False, writing nothing, when a run with that id exists already
        (or has checkpoints)."""
        check_checkpoint(run_id, 0)
        now = time.time()
        with self._transaction() as connection:
            if not connection.execute(
                "INSERT INTO runs (run_id, kind, config, created) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (run_id, kind, dumps(config), now),
            ).rowcount:
                return False
            if connection.execute(
                "INSERT INTO run_checkpoints (run_id, seq, kind, data, written) VALUES (%s, 0, %s, %s, %s) ON CONFLICT DO NOTHING",
                (run_id, first_checkpoint[0], dumps(first_checkpoint[1]), now),
            ).rowcount:
                return True
            connection.execute("DELETE FROM runs WHERE run_id = %s", (run_id,))  # checkpoints without a run: leave them be
            return False

    def end_run(self, run_id: str, *, last_checkpoint: tuple[int, str, Mapping[str, Any]], summary: Mapping[str, Any],
                earlier: Sequence[tuple[int, str, Mapping[str, Any]]] = ()) -> bool:
        """Write checkpoint ``last_checkpoint = (seq, kind, data)`` (after the checkpoints ``earlier``) and mark
        the run finished with ``summary`` (as :meth:`finish_run`), in one transaction (committed when this
        returns). Returns False, writing nothing, when the run has one of those checkpoints already; a run
        that was never registered gets the checkpoints only."""
        rows = checkpoint_rows(run_id, [*earlier, last_checkpoint])
        try:
            with self._transaction() as connection:
                _insert_all(connection, rows)
                connection.execute("UPDATE runs SET finished = %s, summary = %s WHERE run_id = %s", (rows[-1][4], dumps(summary), run_id))
        except CheckpointTaken:
            return False
        return True

    def checkpoints(self, run_id: str) -> list[tuple[int, str, Any]]:
        """The run's checkpoints as ``(seq, kind, data)``, in order (empty for a run with none)."""
        with self.read_connection(flush=False) as connection:
            rows = connection.execute(
                "SELECT seq, kind, data FROM run_checkpoints WHERE run_id = %s ORDER BY seq", (run_id,)
            ).fetchall()
        try:
            return [(row["seq"], row["kind"], json.loads(row["data"])) for row in rows]
        except DECODE_ERRORS as exc:
            raise damaged(f"the checkpoints of run {run_id!r}", exc) from None

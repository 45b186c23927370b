"""The PostgreSQL store's agent run checkpoints: one row per completed step of a run, written synchronously.

The same contract as the SQLite store's (:mod:`failpath.store.sqlite.checkpoints`): ``(run_id, seq)`` is
the key, so writing a checkpoint claims its number and, when two processes on any machines try to
continue the same run, exactly one of them gets each step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from failpath.store.common import check_checkpoint
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


class CheckpointQueries:
    """The checkpoint methods of :class:`~failpath.store.postgres.PostgresStore`, which supplies the names declared here."""

    read_connection: Callable[..., AbstractContextManager[Any]]
    _transaction: Callable[[], AbstractContextManager[Any]]

    def add_checkpoint(self, run_id: str, seq: int, kind: str, data: Mapping[str, Any]) -> bool:
        """Write checkpoint ``seq`` of the run (committed when this returns).

        Returns False, writing nothing, when the run has a checkpoint ``seq`` already: another process
        continued the run first.
        """
        check_checkpoint(run_id, seq)
        with self._transaction() as connection:
            inserted = connection.execute(
                "INSERT INTO run_checkpoints (run_id, seq, kind, data, written) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (run_id, seq, kind, dumps(data), time.time()),
            ).rowcount
        return bool(inserted)

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

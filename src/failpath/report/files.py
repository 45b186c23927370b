"""Writing a report file: whole or not at all, readable by its owner only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic", "NEW_FILE_MODE"]

#: The mode of a report or result file failpath creates: owner read and write (reports hold inputs and outputs).
NEW_FILE_MODE = 0o600


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8, parent folders created) through a temporary file renamed over it.

    A full disk or a kill leaves the previous file (or none), never a truncated one. A new file is
    created owner-only (0600); a file replaced keeps its mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path

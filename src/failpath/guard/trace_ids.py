"""Trace ids: 32 hex digits, unique across threads and processes, made without a system call per id."""

from __future__ import annotations

import itertools
import os

__all__ = ["TraceIds", "next_trace_id"]

_ID_MASK = (1 << 128) - 1


class TraceIds:
    """A source of trace ids.

    Each process draws a random odd multiplier and a random offset once (and again in a forked child);
    id number ``n`` is ``(n * multiplier + offset) mod 2**128``. That map is one-to-one, so a process
    never repeats an id, ids of two processes collide only by a 2**-128 chance, and the leading digits
    change from one id to the next, so a short prefix still finds one trace. ``os.urandom`` per call
    would cost a system call that also releases the GIL, handing it to the store's writer thread.
    """

    __slots__ = ("_numbers", "_multiplier", "_offset")

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        """Draw a new multiplier and offset (a forked child must not repeat its parent's ids)."""
        self._numbers = itertools.count()
        self._multiplier = int.from_bytes(os.urandom(16), "big") | 1
        self._offset = int.from_bytes(os.urandom(16), "big")

    def next(self) -> str:
        """A new trace id (``next`` on ``itertools.count`` is atomic, so threads never share a number)."""
        return ((next(self._numbers) * self._multiplier + self._offset) & _ID_MASK).to_bytes(16, "big").hex()


_trace_ids = TraceIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_trace_ids.reseed)

#: A new trace id from this process's source (also used for ticket ids).
next_trace_id = _trace_ids.next

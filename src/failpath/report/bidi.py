"""Bidirectional text in reports: a value that can reorder its neighbours is isolated.

A case id or a run name holding a right-to-left override (U+202E) or right-to-left letters would
otherwise reverse or reorder the rest of its line ("confidence 1.00" shown as "00.1 ecnedifnoc").
:func:`isolate` wraps such a value in FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE (U+2068, U+2069):
the isolate closes every embedding and override opened inside it (Unicode Bidirectional Algorithm,
UAX #9), so the value is laid out on its own and the text around it is not moved.
"""

from __future__ import annotations

import unicodedata

__all__ = ["isolate", "needs_isolation"]

FSI = "\u2068"
PDI = "\u2069"

# Bidirectional classes that move text around them: strong right-to-left letters, and the explicit
# embeddings, overrides and isolates.
_MOVING = frozenset({"R", "AL", "RLE", "LRE", "RLO", "LRO", "PDF", "RLI", "LRI", "FSI", "PDI"})


def needs_isolation(text: str) -> bool:
    """True when ``text`` holds a character that can reorder the text around it."""
    if text.isascii():
        return False
    return any(unicodedata.bidirectional(ch) in _MOVING for ch in text)


def isolate(text: str) -> str:
    """``text`` wrapped in U+2068 … U+2069 when it could reorder its neighbours, else ``text`` itself."""
    return f"{FSI}{text}{PDI}" if needs_isolation(text) else text

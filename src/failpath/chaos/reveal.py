"""Show what a hostile edit hid: invisible characters and look-alike letters written as their code points.

A ``confusables`` edit turns ``shoes`` into ``shоes`` (a Cyrillic ``о``), which prints exactly like the
original; a ``zero_width`` edit adds nothing that prints at all. :func:`reveal` writes such characters as
``[U+043E]``, so a report shows ``sh[U+043E]es``:

* every format, control, separator, private-use, surrogate or unassigned character (zero-width space and
  joiners, bidirectional overrides, NUL, escape, line and paragraph separators), and every space other
  than the plain one (no-break, ideographic, ...); tab and newline too;
* a letter or digit whose script is not its word's: a Cyrillic or Greek letter among Latin ones, a
  fullwidth or mathematical letter among ordinary ones; and a non-ASCII symbol inside a word (``⍳``
  posing as ``i``). A word written wholly in one script (``Zürich``, ``Москва``,
  ``東京``) is left as it is: the rule is about mixing, never about which script is used.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

__all__ = ["reveal", "code_point"]

_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})


def code_point(ch: str) -> str:
    """``ch`` as ``[U+XXXX]``."""
    return f"[U+{ord(ch):04X}]"


def _script(ch: str) -> str | None:
    """The script-like first word of the character's name (LATIN, CYRILLIC, GREEK, FULLWIDTH, CJK, ...),
    for letters and digits; None for anything else (punctuation, symbols, marks)."""
    category = unicodedata.category(ch)
    if category[0] not in "LN":
        return None
    if ch.isascii():
        return "LATIN" if ch.isalpha() else "DIGIT"
    name = unicodedata.name(ch, "")
    if not name:
        return None
    first = name.split(" ", 1)[0]
    if category == "Nd" and first not in ("FULLWIDTH", "MATHEMATICAL"):
        return "DIGIT"
    return first


def _word_script(word: str) -> str | None:
    """The script most of the word's letters are in (ties go to LATIN: look-alikes imitate it)."""
    counts = Counter(s for s in map(_script, word) if s not in (None, "DIGIT"))
    if not counts:
        return None
    top = max(counts.values())
    leaders = [s for s, n in counts.items() if n == top]
    return "LATIN" if "LATIN" in leaders else leaders[0]


def _is_hidden(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category in _HIDDEN or (category == "Zs" and ch != " ")


def reveal(value: object) -> str:
    """``value`` (text; anything else as ``str(value)``) with hidden and look-alike characters as ``[U+XXXX]``.

    Printable text written in one script per word comes back unchanged.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return text
    out: list[str] = []
    word: list[str] = []

    def flush() -> None:
        if not word:
            return
        main = _word_script("".join(word))
        for ch in word:
            script = _script(ch)
            foreign = main is not None and (
                script not in (None, "DIGIT", main)
                or (script is None and not ch.isascii() and unicodedata.category(ch)[0] == "S")  # a symbol posing as a letter
            )
            out.append(code_point(ch) if foreign or _is_hidden(ch) else ch)
        word.clear()

    for ch in text:
        if ch == " " or (ch.isspace() and not _is_hidden(ch)):
            flush()
            out.append(ch if ch == " " else code_point(ch))
        elif ch in "\t\n\r":
            flush()
            out.append(code_point(ch))
        else:
            word.append(ch)
    flush()
    return "".join(out)

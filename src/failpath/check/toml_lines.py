"""Where each key of a TOML text is: ``key_lines`` maps every (dotted) key to its line, so a config error
names the line as well as the key. tomllib gives no positions, so the text is scanned here."""

from __future__ import annotations

import re

__all__ = ["key_lines"]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _parse_key(text: str) -> tuple[tuple[str, ...], str] | None:
    """Parse a (dotted, possibly quoted) key at the start of ``text``; return the parts and the rest."""
    parts: list[str] = []
    i = 0
    n = len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            quote = text[i]
            j = i + 1
            buf = []
            while j < n and text[j] != quote:
                if quote == '"' and text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            if j >= n:
                return None
            parts.append("".join(buf))
            i = j + 1
        else:
            m = _BARE.match(text, i)
            if not m:
                return None
            parts.append(m.group())
            i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == ".":
            i += 1
            continue
        return tuple(parts), text[i:]


def _scan_value(value: str, depth: int, ml: str | None) -> tuple[int, str | None]:
    """Track bracket depth and open multi-line strings across ``value``; returns the new state."""
    i, n = 0, len(value)
    while i < n:
        if ml is not None:
            end = value.find(ml, i)
            if end < 0:
                return depth, ml
            i = end + 3
            ml = None
            continue
        ch = value[i]
        if ch == "#":
            break
        if value.startswith('"""', i) or value.startswith("'''", i):
            ml = value[i : i + 3]
            i += 3
            continue
        if ch in "\"'":
            j = i + 1
            while j < n and value[j] != ch:
                j += 2 if (ch == '"' and value[j] == "\\") else 1
            i = j + 1
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        i += 1
    return depth, ml


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path of a TOML document (``("budgets", "accepted", "timeout")``) to its 1-based line.

    Table headers, dotted keys, quoted keys and the keys of single-line inline tables are found;
    values spanning lines (arrays, multi-line strings) are skipped over.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    depth = 0
    ml: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if ml is not None or depth > 0:
            depth, ml = _scan_value(raw, depth, ml)
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            inner = line[2:] if line.startswith("[[") else line[1:]
            parsed = _parse_key(inner)
            if parsed:
                table = parsed[0]
                lines.setdefault(table, lineno)
            continue
        parsed = _parse_key(line)
        if not parsed or not parsed[1].startswith("="):
            continue
        key, rest = parsed
        full = table + key
        lines.setdefault(full, lineno)
        value = rest[1:].strip()
        if value.startswith("{"):
            for m in re.finditer(r"[{,]\s*((?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-. ])+?)\s*=", value):
                sub = _parse_key(m.group(1))
                if sub:
                    lines.setdefault(full + sub[0], lineno)
        depth, ml = _scan_value(value, 0, None)
    return lines

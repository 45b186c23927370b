"""The figures per case tag as one table every report draws: the terminal, HTML and Markdown reports.

:func:`tag_table` reads the ``tags`` of a ``failpath.check/2`` document (:class:`failpath.check.result.TagFigures`)
and returns the columns and rows, each figure already worded: per family present, the silent-failure
rate (mean over the tag's cases of each case's share) with its upper bound, and the over-refusal rate
with its bound, each marked when the bound is over the budget the verdict uses for the whole run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TagCell", "TagRow", "TagTable", "tag_table", "FAMILY_ORDER"]

#: The families in the order their columns appear.
FAMILY_ORDER = ("clean", "realistic", "hostile", "fault")


@dataclass(frozen=True)
class TagCell:
    """One figure: ``text`` such as ``"4.0% ≤ 9.1%"`` (``"—"`` when absent); ``over`` when its bound is over budget."""

    text: str
    over: bool = False


@dataclass(frozen=True)
class TagRow:
    """One tag: its name, counts, a cell per family column, and over-refusal."""

    tag: str
    n_cases: int
    n: int
    silent_failures: int
    families: tuple[TagCell, ...]
    over_refusal: TagCell


@dataclass(frozen=True)
class TagTable:
    """The families shown (columns), the rows, and the level of the bounds (``"95%"``)."""

    families: tuple[str, ...]
    rows: tuple[TagRow, ...]
    level: str


def _pct(x: Any, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * float(x):.{digits}f}%"


def _cell(figures: Mapping[str, Any] | None) -> TagCell:
    if not figures:
        return TagCell("—")
    return TagCell(f"{_pct(figures.get('rate'))} ≤ {_pct(figures.get('upper'))}", not figures.get("passed", True))


def tag_table(doc: Mapping[str, Any]) -> TagTable | None:
    """The table of ``doc``'s tag figures, or None when no case carried a tag."""
    tags = list(doc.get("tags") or ())
    if not tags:
        return None
    present = {f.get("family") for t in tags for f in t.get("families") or ()}
    families = tuple(f for f in FAMILY_ORDER if f in present)
    rows = []
    confidence = None
    for t in tags:
        by_family = {f.get("family"): f for f in t.get("families") or ()}
        for f in by_family.values():
            confidence = confidence or f.get("confidence")
        rows.append(TagRow(
            tag=str(t.get("tag")), n_cases=int(t.get("n_cases") or 0), n=int(t.get("n") or 0),
            silent_failures=int(t.get("silent_failures") or 0),
            families=tuple(_cell(by_family.get(f)) for f in families), over_refusal=_cell(t.get("over_refusal")),
        ))
    level = f"{100 * float(confidence):g}%" if confidence else "95%"
    return TagTable(families=families, rows=tuple(rows), level=level)

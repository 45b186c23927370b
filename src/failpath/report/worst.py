"""The worst cases as every report shows them: grouped by cause, with invisible edits made visible.

A check lists first the failures a perturbation caused (the raw system answered the clean input right,
the variant was answered wrong), one per case, then, under a heading of their own, the cases already
wrong on their clean input. Inputs and edits are shown through :func:`failpath.chaos.reveal.reveal`, so
a ``confusables`` edit reads ``shoes`` → ``sh[U+043E]es`` instead of ``shoes`` → ``shoes``.
Terminal, HTML, Markdown and the pytest message all take their groups, titles and texts from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CAUSE_TITLES", "groups", "shown", "shown_input", "edit_text", "edits_text"]

#: The heading of each group of worst cases, in the order they are listed.
CAUSE_TITLES: Mapping[str, str] = {
    "perturbation": "Failures a perturbation caused: the clean input was answered right, this variant wrong",
    "clean": "Already wrong on the clean input: no perturbation needed",
}


def groups(worst: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, list[Mapping[str, Any]]]]:
    """``(cause, title, cases)`` for each cause that has cases, perturbation-caused first.

    A case written before causes were recorded counts as caused by its perturbation.
    """
    out = []
    for cause, title in CAUSE_TITLES.items():
        members = [w for w in worst if (w.get("cause") or "perturbation") == cause]
        if members:
            out.append((cause, title, members))
    return out


def shown(value: Any) -> Any:
    """Text with hidden and look-alike characters as ``[U+XXXX]``; any other value as it is."""
    from failpath.chaos.reveal import reveal

    return reveal(value) if isinstance(value, str) else value


def shown_input(case: Mapping[str, Any]) -> Any:
    """The worst case's input with hidden and look-alike characters as ``[U+XXXX]`` (other values as they are)."""
    return shown(case.get("input"))


def edit_text(edit: Mapping[str, Any]) -> str:
    """One edit as ``kind: before → after`` (or ``kind → after``), hidden characters revealed."""
    from failpath.chaos.reveal import reveal

    kind = str(edit.get("kind") or "edit")
    before, after = edit.get("before"), edit.get("after")
    if before is None and after is None:
        return kind
    shown_after = reveal(after) if after is not None else "∅"
    if before is None:
        return f"{kind} → {shown_after}"
    return f"{kind}: {reveal(before)} → {shown_after}"


def edits_text(edits: Sequence[Mapping[str, Any]] | None) -> str:
    """Every edit, ``; ``-separated (empty when there are none)."""
    return "; ".join(edit_text(e) for e in edits or () if isinstance(e, Mapping))

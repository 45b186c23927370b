"""Abbreviate and Expand: words rewritten by the abbreviation tables (``Avenue`` <-> ``Ave``, ``IL`` <-> ``Illinois``).

A phrase is looked up in the tables (longest first, tables in order) and rewritten in the case of the
original; in token-aligned text the rewritten words keep their label (the contract is ``TRANSFORMED``).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Sequence

from failpath.chaos.base import LabelContract, NotApplicable, TextDoc
from failpath.chaos.tables import ADDRESS_TABLES, AbbreviationTable, normalize_form, split_punctuation
from failpath.chaos.textedit import TextPerturbation

__all__ = ["Abbreviate", "Expand"]



@dataclass(frozen=True)
class _Match:
    start: int
    end: int
    table: AbbreviationTable
    canonical: str
    is_canonical: bool


class _MergedTables:
    """The forms of several tables in one index, so each phrase of a text is looked up once for all of them.

    ``index`` maps a normalized form to ``(table order, table, canonical)`` for every table listing it;
    ``starts`` holds the first word of every form of two words or more, so a phrase is only built when
    its first word can begin one.
    """

    __slots__ = ("index", "starts", "max_words")

    def __init__(self, tables: tuple[AbbreviationTable, ...]):
        index: dict[str, list[tuple[int, AbbreviationTable, str]]] = {}
        starts: set[str] = set()
        for order, table in enumerate(tables):
            for key, canonical in table._index.items():
                index.setdefault(key, []).append((order, table, canonical))
                if " " in key:
                    starts.add(key.split(" ", 1)[0])
        self.index = {key: tuple(entries) for key, entries in index.items()}
        self.starts = frozenset(starts)
        self.max_words = max((table.max_words for table in tables), default=1)


@functools.lru_cache(maxsize=64)
def _merged(tables: tuple[AbbreviationTable, ...]) -> _MergedTables:
    return _MergedTables(tables)


@functools.lru_cache(maxsize=8192)
def _read_token(token: str) -> tuple[str, bool, str]:
    """A token's core, whether trailing punctuation follows it, and the core's normalized form."""
    core, punct = split_punctuation(token)
    return core, bool(punct), normalize_form(core)


def _find_matches(doc: TextDoc, tables: Sequence[AbbreviationTable]) -> list[_Match]:
    """Left to right, the longest phrase at each position that some table lists (tables tried in order)."""
    raw = doc.tokens
    read = [_read_token(t) for t in raw]
    cores = [core for core, _, _ in read]
    trailing = [punct for _, punct, _ in read]
    keys = [key for _, _, key in read]
    merged = _merged(tuple(tables))
    index, starts, max_words = merged.index, merged.starts, merged.max_words
    labels_of = doc.labels
    found: list[_Match] = []
    size = len(raw)
    i = 0
    while i < size:
        # Every (table, length) whose index holds the phrase, in the order the tables are tried:
        # table by table, the longest phrase first.
        candidates: list[tuple[int, int, AbbreviationTable, str, str]] = []
        first = keys[i]
        if " " in first:  # a token holding a blank other than a space (NBSP, say)
            first = first.split(" ", 1)[0]
        longest = min(max_words, size - i) if first in starts else 1
        for n in range(longest, 0, -1):
            end = i + n
            if n > 1 and any(trailing[i : end - 1]):
                continue  # "New, York" is not one phrase
            key = keys[i] if n == 1 else " ".join(keys[i:end])
            entries = index.get(key)
            if entries is None:
                continue
            for order, table, canonical in entries:
                if n <= table.max_words:
                    candidates.append((order, -n, table, canonical, key))
        match = None
        if candidates:
            if len(candidates) > 1:
                candidates.sort(key=lambda c: (c[0], c[1]))
            for _, minus_n, table, canonical, key in candidates:
                end = i - minus_n
                phrase = " ".join(cores[i:end])
                if labels_of is not None:
                    labels = set(labels_of[i:end])
                    if len(labels) != 1 or (table.labels and not labels <= table.labels):
                        continue
                else:
                    if table.is_ambiguous(phrase):
                        continue
                    if table.plain_context is not None and not table.plain_context(raw, cores, i, end):
                        continue
                is_canonical = key == normalize_form(canonical)
                match = _Match(i, end, table, canonical, is_canonical)
                break
        if match:
            found.append(match)
            i = match.end
        else:
            i += 1
    return found


def _styled(form: str, original: str, written_as_listed: bool = False) -> str:
    if written_as_listed:  # "WI" is written as the table lists it: write "Wisconsin", not "WISCONSIN"
        return form
    letters = [ch for ch in original if ch.isalpha()]
    if letters and all(ch.islower() for ch in letters):
        return form.lower()
    if len(letters) > 1 and all(ch.isupper() for ch in letters):
        return form.upper()
    return form


@dataclass(frozen=True, kw_only=True)
class _TableEdit(TextPerturbation):
    family: str = "realistic"
    contract: LabelContract = LabelContract.TRANSFORMED
    tables: tuple[AbbreviationTable, ...] = ADDRESS_TABLES
    intensity: int | None = 1  # how many words are rewritten (None: all)

    def _target(self, match: _Match) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def edit(self, doc: TextDoc, rng: random.Random) -> NotApplicable | None:
        matches = [(m, t) for m in _find_matches(doc, self.tables) if (t := self._target(m))]
        if not matches:
            return NotApplicable(f"{self.name}: no word from the tables ({', '.join(t.name for t in self.tables)}) to rewrite")
        n = len(matches) if self.intensity is None else min(self.intensity, len(matches))
        chosen = sorted(rng.sample(matches, n), key=lambda mt: mt[0].start, reverse=True)
        for match, target in chosen:  # right to left, so token indexes stay those of the input
            trailing = split_punctuation(doc.tokens[match.end - 1])[1]
            if self.name == "expand":
                trailing = trailing.replace(".", "")
            core = " ".join(split_punctuation(t)[0] for t in doc.tokens[match.start : match.end])
            listed = {f.replace(".", "") for f in (match.canonical, *match.table.entries[match.canonical])}
            as_listed = core.replace(".", "") in listed
            words = [_styled(w, core, as_listed) for w in target.split()]
            words[-1] += trailing
            doc.replace_span(match.start, match.end, words, self.name)
        return None


@dataclass(frozen=True, kw_only=True)
class Abbreviate(_TableEdit):
    """A full word replaced by its standard abbreviation from a table (``Avenue`` -> ``Ave``, ``Illinois`` -> ``IL``)."""

    name: str = "abbreviate"

    def _target(self, match: _Match) -> str | None:
        return match.table.abbreviation(match.canonical) if match.is_canonical else None


@dataclass(frozen=True, kw_only=True)
class Expand(_TableEdit):
    """An abbreviation replaced by its full form from a table (``Ste`` -> ``Suite``, ``NY`` -> ``New York``)."""

    name: str = "expand"

    def _target(self, match: _Match) -> str | None:
        return None if match.is_canonical else match.canonical

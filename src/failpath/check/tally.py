"""Streaming accumulators of a check's result rows: rows are folded in batch by batch, never kept.

:class:`RowTally` takes rows as they are read back from the store (``add``) and keeps, per request, a
few bytes in numpy columns (where it comes from, what the guard ended in, whether the raw answer was
right, its confidence), plus small counters: how often each combination of failure states, actions
and deciding state occurred (per suite and perturbation), the distinct answers of hostile variants
per case, the clean answer of each case, and each case's most confident silent failure (the worst-case
candidates: one small row per case that has one).
``finish`` returns a frozen :class:`Tallied`: the columns in the order of the rows' keys (the order
every figure of a check is computed in), from which :mod:`failpath.check.summarise` makes the figures.

A request costs about 35 bytes, so 4 million requests (100,000 cases with the default suites) fit in
about 150 MB.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from failpath.check.metrics import is_judged
from failpath.check.plan import CLEAN, key_digest
from failpath.check.severity import UNGRADED
from failpath.core import OUTCOME_KINDS, is_valid_confidence

__all__ = ["OUTCOMES", "THRESHOLD_GOVERNED", "CAUSES", "RowTally", "Tallied", "Leaf", "worst_candidates"]

#: The outcome codes of the ``outcome`` column: the outcome kinds, then ``escaped``.
OUTCOMES: tuple[str, ...] = (*OUTCOME_KINDS, "escaped")
ANSWERED = OUTCOMES.index("answered")
ESCAPED = OUTCOMES.index("escaped")

#: Deciding states of the calls a confidence threshold governs: the answered ones and those the
#: confidence rule itself turned away. Calls another rule handled (injection, anomaly, faults, ...) are
#: not the threshold's to answer, whatever their confidence.
THRESHOLD_GOVERNED = (None, "low_confidence")

#: The columns and their types (one value per request).
_COLUMNS: dict[str, Any] = {
    "leaf": np.int32,  # index into the leaves: (suite, perturbation)
    "case": np.int32,  # index into the case ids
    "variant": np.int64,
    "family": np.int16,  # index into the families
    "evaluation": np.bool_,  # the evaluation half (else calibration)
    "outcome": np.int8,  # index into OUTCOMES
    "correct": np.bool_,  # with the policy: answered and judged right
    "raw_correct": np.bool_,
    "raw_answered": np.bool_,  # the raw call returned (raw_error is None)
    "raw_confidence": np.float64,  # NaN when missing or not a number in [0, 1]
    "governed": np.bool_,  # deciding state in THRESHOLD_GOVERNED
    "state": np.int16,  # index into the deciding states (0: none)
    "unchanged": np.bool_,  # the variant's contract keeps the expected answer
    "judged": np.bool_,  # its answer can be judged right or wrong (metrics.is_judged); else neither
    "digest": np.uint64,  # the key's digest (plan.key_digest)
    # The severity of a wrong answer with the policy (answered and wrong) and without it (raw answer
    # wrong): the graded value, or UNGRADED when nothing graded it; NaN for a right or no answer.
    "severity": np.float32,
    "raw_severity": np.float32,
}

#: The most severe wrong answers kept (each of: with the policy, without it) for the reports.
SEVERE_KEPT = 5

#: Rows gathered in Python lists before they move into numpy columns.
_FLUSH_EVERY = 16384


@dataclass(frozen=True)
class Leaf:
    """One (suite, perturbation) of a run: the smallest group the figures are made of.

    ``contracts`` are the variant contracts seen on its evaluation rows; ``states`` counts, over its
    evaluation rows, the calls on which each failure state was detected.
    """

    suite: str
    perturbation: str
    contracts: frozenset[str]
    states: Mapping[str, int]


@dataclass(frozen=True)
class Tallied:
    """What a run's rows amount to: one numpy column per field, in the order of the rows' keys, and counters.

    ``columns`` holds the arrays named in ``_COLUMNS``; ``case_ids`` and ``families`` name the indices
    of the ``case`` and ``family`` columns, ``leaves`` those of the ``leaf`` column. ``fired``,
    ``decided`` and ``ended`` count, over every row, the calls on which each state was detected, was
    the deciding state, and (when the policy handles it) ended in one of its rule's actions.
    ``hostile_flips`` counts the hostile evaluation rows whose answer changed while the outcome stayed
    Answered (see :func:`failpath.check.verdict.hostile_flips`); ``silent`` holds the worst-case
    candidates (see :func:`worst_candidates`): at most ``k`` failures a perturbation caused, then at most
    ``k`` cases already wrong on their clean input, one row per case, each with its ``cause``. ``severe`` and
    ``severe_raw`` hold the most severe wrong answers of the evaluation half (full rows, most severe first,
    at most :data:`SEVERE_KEPT`): answered with the policy, and given by the raw system.
    """

    columns: Mapping[str, np.ndarray]
    case_ids: tuple[str, ...]
    families: tuple[str, ...]
    leaves: tuple[Leaf, ...]
    fired: Mapping[str, int]
    decided: Mapping[str, int]
    ended: Mapping[str, int]
    hostile_flips: int
    silent: tuple[Mapping[str, Any], ...]
    state_names: tuple[str, ...] = ("none",)
    severe: tuple[Mapping[str, Any], ...] = ()
    severe_raw: tuple[Mapping[str, Any], ...] = ()

    @property
    def n(self) -> int:
        """How many rows were tallied."""
        return int(self.columns["outcome"].size)

    def family_code(self, family: str) -> int:
        """The code of ``family`` in the ``family`` column (-1 when no row has it)."""
        return self.families.index(family) if family in self.families else -1

    @property
    def judged(self) -> np.ndarray:
        """The ``judged`` column (every request judged when the columns were made without one)."""
        found = self.columns.get("judged")
        return found if found is not None else np.ones(self.n, dtype=bool)

    def case_counts(self, family: str, *, evaluation_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Per case (indexed like ``case_ids``): its requests in ``family`` and its silent failures among them.

        A silent failure is an Answered outcome whose value is wrong; with ``evaluation_only`` only the
        evaluation half counts. This is what a bound with the case as the independent unit is made of.
        Requests that cannot be judged (see :func:`failpath.check.metrics.is_judged`) count in neither.
        """
        c = self.columns
        mask = (c["family"] == self.family_code(family)) & self.judged
        if evaluation_only:
            mask &= c["evaluation"]
        silent = mask & (c["outcome"] == ANSWERED) & ~c["correct"]
        n_cases = len(self.case_ids)
        return (
            np.bincount(c["case"][mask], minlength=n_cases),
            np.bincount(c["case"][silent], minlength=n_cases),
        )


def _silent_order(row: Mapping[str, Any]) -> tuple[float, str]:
    """The worst-case ranking: most confident first (no confidence last), then by key."""
    c = row.get("confidence")
    return (-(c if is_valid_confidence(c) else -1.0), row["key"])


#: What a worst-case candidate keeps of its row (the rest is not shown).
_CANDIDATE_FIELDS = ("suite", "family", "perturbation", "case_id", "variant", "input", "expected", "value", "confidence", "edits")

#: The causes of a worst case, in the order they are listed.
CAUSES = ("perturbation", "clean")


def worst_candidates(best: Mapping[Any, Mapping[str, Any]], clean_ok: Mapping[Any, bool], k: int) -> list[dict[str, Any]]:
    """The worst-case candidates from each case's most confident silent failure (``best``, by case).

    A case whose clean input the raw system answered right (and the policy did not answer wrongly:
    ``clean_ok``) failed because of a perturbation: ``cause`` "perturbation"; any other case was
    already wrong on its clean input: ``cause`` "clean". The top ``k`` of each, most confident first,
    perturbation-caused failures listed first; one row per case, so no case repeats under another title.
    """
    ranked = sorted(best.items(), key=lambda item: _silent_order(item[1]))
    out: list[dict[str, Any]] = []
    for cause in CAUSES:
        chosen = [row for case, row in ranked if (cause == "perturbation") == bool(clean_ok.get(case))][:k]
        out += [{**row, "cause": cause} for row in chosen]
    return out


def _severity(value: Any) -> float:
    """A row's stored severity, or :data:`UNGRADED` when none was graded (or it is not a number in [0, 1])."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    return UNGRADED


class _Reversed:
    """A key that sorts backwards, so the heaps keep the first key among equally severe rows."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __lt__(self, other: "_Reversed") -> bool:
        return self.key > other.key

    def __gt__(self, other: "_Reversed") -> bool:
        return self.key < other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.key == other.key


def _value_key(value: Any) -> Any:
    """A hashable stand-in for an answer, equal for equal answers (the rows hold JSON values)."""
    if type(value) is str:
        return value
    return ("json", json.dumps(value, sort_keys=True))


class RowTally:
    """Folds a check's result rows into columns and counters (see the module docstring).

    ``handled`` is the policy's table (state -> declared actions); ``judge`` compares hostile answers
    with clean ones; ``worst`` is how many worst cases the check reports (the candidates kept per suite
    and perturbation). ``keep(digest)``, when given, selects the rows to tally by their key's digest.
    """

    def __init__(
        self,
        handled: Mapping[str, Sequence[str]],
        judge: Any,
        *,
        worst: int,
        keep: Any = None,
    ) -> None:
        self.handled = {k: tuple(v) for k, v in handled.items()}
        self.judge = judge
        self.worst = max(0, int(worst))
        self.keep = keep
        self.rows = 0
        self._pending: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        self._chunks: dict[str, list[np.ndarray]] = {name: [] for name in _COLUMNS}
        self._case_index: dict[str, int] = {}
        self._family_index: dict[str, int] = {}
        self._leaf_index: dict[tuple[str, str], int] = {}
        self._state_index: dict[str, int] = {"none": 0}
        self._contracts: list[set[str]] = []
        # (leaf, evaluation, states, actions, deciding state) -> calls
        self._signatures: Counter[tuple[Any, ...]] = Counter()
        self._hostile: dict[int, dict[Any, list[Any]]] = {}  # case -> answer key -> [answer, rows]
        self._clean: dict[int, tuple[bool, Any]] = {}  # case -> (answered, answer)
        self._clean_ok: dict[int, bool] = {}  # case -> raw answer right on the clean input, and no silent failure there
        self._best: dict[int, dict[str, Any]] = {}  # case -> its most confident silent failure (a small row)
        self._best_rank: dict[int, tuple[float, str]] = {}  # case -> that row's _silent_order
        # (severity, confidence, -order, row) heaps of the most severe wrong answers, with and without the policy
        self._severe: list[tuple[Any, ...]] = []
        self._severe_raw: list[tuple[Any, ...]] = []

    def add(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Fold ``(key, row)`` pairs in; returns how many were tallied."""
        before = self.rows
        for key, row in rows:
            digest = key_digest(key)
            if self.keep is not None and not self.keep(digest):
                continue
            self._fold(key, row, digest)
        if len(self._pending["outcome"]) >= _FLUSH_EVERY:
            self._flush()
        return self.rows - before

    def _index(self, table: dict[Any, int], name: Any) -> int:
        found = table.get(name)
        if found is None:
            found = table[name] = len(table)
        return found

    def _fold(self, key: str, r: Mapping[str, Any], digest: int) -> None:
        """One row into the columns and counters."""
        p = self._pending
        leaf_name = (r["suite"], r["perturbation"])
        leaf = self._leaf_index.get(leaf_name)
        if leaf is None:
            leaf = self._leaf_index[leaf_name] = len(self._leaf_index)
            self._contracts.append(set())
        case = self._index(self._case_index, r["case_id"])
        family = r.get("family")
        evaluation = r["split"] == "evaluation"
        outcome = OUTCOMES.index(r["outcome"])
        judged = is_judged(r)
        correct = judged and bool(r.get("correct"))
        raw_confidence = r.get("raw_confidence")
        state = r.get("state")
        contract = r.get("contract") or "unchanged"
        p["leaf"].append(leaf)
        p["case"].append(case)
        p["variant"].append(r["variant"])
        p["family"].append(self._index(self._family_index, family))
        p["evaluation"].append(evaluation)
        p["outcome"].append(outcome)
        p["correct"].append(correct)
        p["raw_correct"].append(judged and bool(r.get("raw_correct")))
        p["raw_answered"].append(r.get("raw_error") is None)
        p["raw_confidence"].append(float(raw_confidence) if is_valid_confidence(raw_confidence) else np.nan)
        p["governed"].append(state in THRESHOLD_GOVERNED)
        p["state"].append(self._index(self._state_index, state) if state else 0)
        p["unchanged"].append(contract == "unchanged")
        p["judged"].append(judged)
        p["digest"].append(digest)
        silent = judged and outcome == ANSWERED and not correct  # a not_preserved variant is never wrong
        raw_wrong = judged and r.get("raw_error") is None and not r.get("raw_correct")
        severity = _severity(r.get("severity")) if silent else np.nan
        raw_severity = _severity(r.get("raw_severity")) if raw_wrong else np.nan
        p["severity"].append(severity)
        p["raw_severity"].append(raw_severity)
        if evaluation and silent:
            self._keep_severe(self._severe, severity, r.get("confidence"), key, r)
        if evaluation and raw_wrong:
            self._keep_severe(self._severe_raw, raw_severity, r.get("raw_confidence"), key, r)
        self.rows += 1
        self._signatures[(leaf, evaluation, tuple(r.get("states") or ()), tuple(r.get("actions") or ()), state)] += 1
        if evaluation:
            self._contracts[leaf].add(contract)
        if r["suite"] == CLEAN:
            self._clean[case] = (outcome == ANSWERED, r.get("value"))
            self._clean_ok[case] = bool(r.get("raw_correct")) and r.get("raw_error") is None and not (outcome == ANSWERED and not correct)
        if evaluation and outcome == ANSWERED:
            if family == "hostile" and contract == "unchanged":
                self._hostile_answer(case, r.get("value"))
            if not correct and judged and self.worst:
                self._candidate(case, key, r)

    def _keep_severe(self, heap: list[tuple[Any, ...]], severity: float, confidence: Any, key: str, row: Mapping[str, Any]) -> None:
        """Keep ``row`` if it is among the :data:`SEVERE_KEPT` most severe (then most confident, then first by key)."""
        rank = (severity, confidence if is_valid_confidence(confidence) else -1.0, _Reversed(key))
        if len(heap) < SEVERE_KEPT:
            heapq.heappush(heap, (*rank, {**row, "key": key}))
        elif rank > heap[0][:3]:
            heapq.heapreplace(heap, (*rank, {**row, "key": key}))

    def _hostile_answer(self, case: int, value: Any) -> None:
        answers = self._hostile.setdefault(case, {})
        entry = answers.get(_value_key(value))
        if entry is None:
            answers[_value_key(value)] = [value, 1]
        else:
            entry[1] += 1

    def _candidate(self, case: int, key: str, row: Mapping[str, Any]) -> None:
        """Keep a silent failure when it is its case's most confident one so far (a small copy of the row)."""
        c = row.get("confidence")
        rank = (-(c if is_valid_confidence(c) else -1.0), key)  # as _silent_order
        kept = self._best_rank.get(case)
        if kept is not None and kept <= rank:
            return
        self._best_rank[case] = rank
        self._best[case] = {"key": key, **{name: row.get(name) for name in _CANDIDATE_FIELDS}}

    def _flush(self) -> None:
        for name, dtype in _COLUMNS.items():
            values = self._pending[name]
            if values:
                self._chunks[name].append(np.array(values, dtype=dtype))
                values.clear()

    def finish(self) -> Tallied:
        """The columns in key order and the counters (the tally can take no more rows after this)."""
        self._flush()
        columns: dict[str, np.ndarray] = {}
        for name, dtype in _COLUMNS.items():  # one column at a time: the chunks go as their column is made
            chunks, self._chunks[name] = self._chunks[name], []
            columns[name] = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
            del chunks
        case_ids = tuple(self._case_index)
        leaf_names = tuple(self._leaf_index)
        order = _key_order(columns, case_ids, leaf_names)
        for name in _COLUMNS:
            columns[name] = columns[name][order]
        del order
        fired, decided, ended, leaf_states = self._states()
        leaves = tuple(
            Leaf(suite=s, perturbation=p, contracts=frozenset(self._contracts[i]), states=leaf_states[i])
            for i, (s, p) in enumerate(leaf_names)
        )
        silent = worst_candidates(self._best, self._clean_ok, self.worst)
        self._best, self._best_rank = {}, {}
        return Tallied(
            columns=columns,
            case_ids=case_ids,
            families=tuple(self._family_index),
            leaves=leaves,
            fired=fired,
            decided=decided,
            ended=ended,
            hostile_flips=self._flips(columns),
            silent=tuple(silent),
            state_names=tuple(self._state_index),
            severe=tuple(entry[-1] for entry in sorted(self._severe, reverse=True)),
            severe_raw=tuple(entry[-1] for entry in sorted(self._severe_raw, reverse=True)),
        )

    def _states(self) -> tuple[dict[str, int], dict[str, int], dict[str, int], list[Counter[str]]]:
        """fired / decided / ended per state over every row, and each leaf's states over its evaluation rows."""
        fired: Counter[str] = Counter()
        decided: Counter[str] = Counter()
        ended: Counter[str] = Counter()
        leaf_states: list[Counter[str]] = [Counter() for _ in self._leaf_index]
        for (leaf, evaluation, states, actions, state), calls in self._signatures.items():
            if state:
                decided[state] += calls
            taken = set(actions)
            for s in set(states):
                fired[s] += calls
                declared = self.handled.get(s)
                if declared is not None and (not declared or taken & set(declared)):
                    ended[s] += calls
                if evaluation:
                    leaf_states[leaf][s] += calls
        return dict(fired), dict(decided), dict(ended), leaf_states

    def _flips(self, columns: Mapping[str, np.ndarray]) -> int:
        """Hostile evaluation rows answered differently from their clean case while both stayed Answered."""
        flips = 0
        for case, answers in self._hostile.items():
            base = self._clean.get(case)
            if base is None or not base[0]:
                continue
            for value, rows in answers.values():
                try:
                    same = bool(self.judge(value, base[1]))
                except Exception:
                    same = False
                if not same:
                    flips += rows
        # A variant whose expected answer changed: the clean answer was right and the hostile one is wrong.
        hostile = self.family_code("hostile")
        if hostile < 0:
            return flips
        c = columns
        wrong = (c["family"] == hostile) & c["evaluation"] & (c["outcome"] == ANSWERED) & ~c["unchanged"] & ~c["correct"]
        clean_right = np.zeros(len(self._case_index), dtype=bool)
        clean_leaves = [i for (suite, _), i in self._leaf_index.items() if suite == CLEAN]
        clean_rows = np.isin(c["leaf"], np.asarray(clean_leaves, dtype=np.int32))
        clean_right[c["case"][clean_rows & (c["outcome"] == ANSWERED) & c["correct"]]] = True
        return flips + int(np.count_nonzero(clean_right[c["case"][wrong]]))

    def family_code(self, family: str) -> int:
        return self._family_index.get(family, -1)


def _key_order(columns: Mapping[str, np.ndarray], case_ids: Sequence[str], leaf_names: Sequence[tuple[str, str]]) -> np.ndarray:
    """The permutation that sorts the rows by their keys ``suite/perturbation/case id/variant`` as strings.

    Without a ``/`` inside a name, sorting by the key string is sorting by (``suite/perturbation/``,
    ``case id/``, the variant as text); otherwise the keys are rebuilt and sorted as they are.
    """
    leaf, case, variant = columns["leaf"], columns["case"], columns["variant"]
    names = [s for pair in leaf_names for s in pair]
    if any("/" in s for s in (*names, *case_ids)):
        prefixes = [f"{s}/{p}/" for s, p in leaf_names]
        keys = [f"{prefixes[l]}{case_ids[c]}/{v}" for l, c, v in zip(leaf.tolist(), case.tolist(), variant.tolist())]
        return np.asarray(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)
    leaf_rank = _ranks([f"{s}/{p}/" for s, p in leaf_names])
    case_rank = _ranks([f"{c}/" for c in case_ids])
    values = np.unique(variant)
    text_rank = _ranks([str(v) for v in values.tolist()])
    variant_rank = text_rank[np.searchsorted(values, variant)] if values.size else variant
    return np.lexsort((variant_rank, case_rank[case], leaf_rank[leaf]))


def _ranks(texts: Sequence[str]) -> np.ndarray:
    """Each text's position in the sorted list of ``texts``."""
    ranks = np.empty(len(texts), dtype=np.int32)
    for position, index in enumerate(sorted(range(len(texts)), key=texts.__getitem__)):
        ranks[index] = position
    return ranks

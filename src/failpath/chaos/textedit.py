"""The base of text perturbations: edit a text in place, keeping its tokens aligned with their labels.

:class:`TextPerturbation` turns one ``edit`` of a :class:`~failpath.chaos.base.TextDoc` into a variant
of a plain-text case, a token-aligned case or a record (one string field edited); the perturbations
in :mod:`failpath.chaos.text`, :mod:`failpath.chaos.table_edits` and :mod:`failpath.chaos.hostile`
build on it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Mapping, Sequence

from failpath.chaos.base import Edit, LabelContract, NotApplicable, Perturbation, TextDoc, Variant
from failpath.core import Case

__all__ = ["TextPerturbation"]


class TextPerturbation(Perturbation):
    """Base of perturbations that edit text in place (keeping tokens aligned with their labels).

    Subclasses implement :meth:`edit`, which changes a :class:`~failpath.chaos.base.TextDoc` (recording
    its edits there) or returns :class:`NotApplicable`.
    """

    def edit(self, doc: TextDoc, rng: random.Random) -> NotApplicable | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, case: Case, rng: random.Random) -> Variant | NotApplicable:
        """Perturb the text of ``case`` (or one string field of a record)."""
        if isinstance(case.input, str):
            doc = TextDoc.from_case(case)
            result = self.edit(doc, rng)
            if isinstance(result, NotApplicable):
                return result
            text = doc.text
            if not doc.edits or text == case.input:
                return NotApplicable(f"{self.name} left the text as it was")
            if doc.labels is not None:
                contract, expected = self._labeled_contract(doc), doc.expected()
            else:  # plain text: a label-transforming edit leaves a plain answer unchanged
                contract = LabelContract.UNCHANGED if self.contract is LabelContract.TRANSFORMED else self.contract
                expected = case.expected
            return self._variant(case, text, expected, _sorted(doc.edits), contract)
        if isinstance(case.input, Mapping):
            return _apply_to_a_field(self, case, rng, lambda text: self._edit_text(text, rng))
        return NotApplicable(f"{self.name} needs text or a record, got {type(case.input).__name__}")

    def _labeled_contract(self, doc: TextDoc) -> LabelContract:
        """The contract of a variant of a token-aligned case, once ``doc`` is edited (default: the declared one)."""
        return self.contract

    def _edit_text(self, text: str, rng: random.Random) -> tuple[str, list[Edit]] | NotApplicable:
        doc = TextDoc.from_text(text)
        result = self.edit(doc, rng)
        if isinstance(result, NotApplicable):
            return result
        if doc.text == text:
            return NotApplicable(f"{self.name} left the text as it was")
        return doc.text, doc.edits


def _sorted(edits: Sequence[Edit]) -> list[Edit]:
    return sorted(edits, key=lambda e: (e.token if e.token is not None else -1, e.position or 0))


def _apply_to_a_field(perturbation: Perturbation, case: Case, rng: random.Random, edit_text: Any) -> Variant | NotApplicable:
    """Apply a text edit to one string field of a record, chosen by ``rng`` among the fields it applies to."""
    record: Mapping[str, Any] = case.input
    keys = [k for k, v in record.items() if isinstance(v, str)]
    if not keys:
        return NotApplicable(f"{perturbation.name}: the record has no text field")
    rng.shuffle(keys)
    reasons = []
    for key in keys:
        result = edit_text(record[key])
        if isinstance(result, NotApplicable):
            reasons.append(result.reason)
            continue
        text, edits = result
        new = dict(record)
        new[key] = text
        edits = [replace(e, field=str(key)) for e in edits]
        contract = perturbation.contract_for(case)
        return perturbation._variant(case, new, case.expected, edits, contract)
    return NotApplicable(f"{perturbation.name}: no field it applies to ({reasons[0]})")

"""A small product-code normaliser and its policies: the project ``../exit_codes.sh`` checks.

The model turns ``"sku 12"`` into ``"SKU 12"`` with a confidence. It is unsure, and wrong, on codes
ending in 0; a ``#`` comment after the code fools it (wrong, and confident); a NUL byte makes it raise.
``policy`` handles every failure state and refuses ``#`` comments, so its check says READY TO SHIP;
``hasty`` forgets the ``#`` rule, so its check says READY TO DEMO.
"""

from __future__ import annotations

import random
import re

import failpath as fp
from failpath.chaos import LabelContract, Perturbation, Suite, register_suite
from failpath.chaos.base import Edit, Variant

CODE = re.compile(r"^SKU \d+$")


def system(text: str) -> fp.Prediction:
    """The model: ``"sku 12"`` -> ``Prediction("SKU 12", 0.9)``."""
    if "\x00" in text:
        raise ValueError("NUL byte in the input")
    if "#" in text:
        return fp.Prediction("SKU 1", 0.95)
    number = text.split()[-1]
    if number.endswith("0"):
        return fp.Prediction("SKU ?", 0.2)
    return fp.Prediction(text.strip().upper(), 0.9)


class Edited(Perturbation):
    """A perturbation made of a text function; the expected code does not change."""

    contract = LabelContract.UNCHANGED

    def __init__(self, name: str, family: str, edit):
        self.name, self.family, self.edit = name, family, edit

    def apply(self, case: fp.Case, rng: random.Random) -> Variant:
        new = self.edit(case.input)
        return self._variant(case, new, case.expected, [Edit(kind=self.name, before=case.input, after=new)], self.contract)


HOSTILE = register_suite(
    Suite("shop-hostile", "hostile", (Edited("comment", "hostile", lambda s: s + " #x"), Edited("nul", "hostile", lambda s: s.replace(" ", " \x00", 1)))),
    replace=True,
)
REALISTIC = register_suite(Suite("shop-realistic", "realistic", (Edited("padding", "realistic", lambda s: f"  {s}  "),)), replace=True)

ACCEPTED = {
    "anomalous_input": "Codes are short and typed into one field; an anomaly detector adds nothing here.",
    "inconsistent": "The model is deterministic, so two samples always agree.",
    "injection_suspected": "The comment rule refuses the only injection this field can carry.",
    "empty_input": "The form refuses an empty field before it calls the model.",
    "budget_exceeded": "No deadline or token budget is set, so no budget can run out.",
}


def _rules(refuse_comments: bool) -> list:
    rules = [
        fp.on(fp.Timeout()).do(fp.Abstain("the model timed out")),
        fp.on(fp.ProviderError(fp.ProviderFailure)).do(fp.Retry(1), fp.Default("n/a", "the model is down")),
        fp.on(fp.InvalidOutput(validator=lambda value: isinstance(value, str) and bool(CODE.match(value)))).do(fp.Abstain("not a code")),
        fp.on(fp.LowConfidence(below=0.5)).do(fp.Abstain("unsure")),
        fp.on(fp.Unexpected()).do(fp.Abstain("a bug")),
    ]
    if refuse_comments:
        rules.insert(0, fp.on(fp.State("comment", lambda value, _: "#" in value, stage="input")).do(fp.Clarify("Type the code only.")))
    return rules


policy = fp.Policy("shop", rules=_rules(True), waive=ACCEPTED, store=False)
hasty = fp.Policy("shop-hasty", rules=_rules(False), waive=ACCEPTED, store=False)

"""What the address parser does in every failure state: the first policy, and the one written after its report.

``careful_policy`` is what a careful team writes first: every state has a rule, and answers are
escalated below a confidence picked by eye (0.80). Its check says READY TO DEMO, and its report says
why: typos the parser gets wrong with high confidence, and shell fragments and look-alike letters
that no detector stops. ``shipping_policy`` applies those lessons: a rule of its own for characters
that never appear in a US address, and the confidence threshold the check certified. It stops every
hostile silent failure, but the gate still says READY TO DEMO: realistic silent failures stay over
budget, and the certified threshold refuses a quarter of the realistic requests the parser gets right
(see the example's README). Both policies' anomaly detector is fitted by the check (:func:`anomaly_detector`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import failpath as fp
from failpath.examples.addresses.system import is_labeled_tokens

__all__ = [
    "HAND_PICKED_THRESHOLD",
    "CERTIFIED_THRESHOLD",
    "ACCEPTED",
    "ADDRESS_PUNCTUATION",
    "foreign_characters",
    "anomaly_detector",
    "careful_policy",
    "shipping_policy",
    "certify_threshold",
]

#: The low-confidence threshold picked by eye: "the parser is rarely wrong above 80%".
HAND_PICKED_THRESHOLD = 0.80

#: The threshold ``certify_threshold`` finds on the run of ``failpath check --example addresses``:
#: answering from 0.94 up keeps the selective risk of the answers the confidence rule decides at most
#: 5% (Learn-then-Test, Holm, delta 0.05). Pasted here: the step a team takes after READY TO DEMO.
CERTIFIED_THRESHOLD = 0.94

#: Catalog states this parser has no rule for, each with the reason (the verdict checks them).
ACCEPTED: dict[str, str] = {
    "inconsistent": "usaddress is deterministic: the same input always gets the same labels, so it cannot disagree with itself",
    "budget_exceeded": "no attempt, time or cost budget is set: retries are bounded by their own counts",
}

#: Punctuation that real US addresses use; anything else is no part of an address.
ADDRESS_PUNCTUATION = frozenset(" .,#-/&'()")


#: Sequences of allowed characters that still never occur in an address (SQL comments, shell operators).
_FOREIGN_SEQUENCES = re.compile(r"--|&&|''|(?<![A-Za-z])'|'(?![A-Za-z])")


def foreign_characters(text: Any, prediction: Any = None) -> str | None:
    """Why ``text`` holds characters no US address has (a shell or SQL fragment, look-alike letters), or None.

    Letters must be ASCII or accented ASCII (Peñasco), digits ASCII, punctuation from
    ``ADDRESS_PUNCTUATION``, blanks a space of any width, a tab or a line break (an address pasted on
    two lines); an apostrophe only inside a word (O'Brien); no ``--`` or ``&&``.
    """
    if not isinstance(text, str):
        return None
    for position, char in enumerate(text):
        if char.isascii() and (char.isalnum() or char in ADDRESS_PUNCTUATION):
            continue
        if char in "\t\n\r" or unicodedata.category(char) == "Zs":
            continue
        base = unicodedata.normalize("NFD", char)[0]
        if char.isalpha() and base.isascii() and base.isalpha():
            continue
        name = unicodedata.name(char, f"U+{ord(char):04X}")
        return f"character {char!r} ({name}) at position {position} is no part of a US address"
    sequence = _FOREIGN_SEQUENCES.search(text)
    if sequence is not None:
        return f"{sequence.group()!r} at position {sequence.start()} is no part of a US address"
    return None


def anomaly_detector(reference: fp.AnomalousInput | Sequence[str] | None = None) -> fp.AnomalousInput:
    """The policies' anomaly detector: fitted by the check (the default), on a fixed reference, or a loaded one.

    ``None``: ``AnomalousInput(fit="check", scorer=fp.NgramScorer(), alpha=0.01)``, which ``fp.check``
    fits on its calibration half's clean addresses plus the realistic variants the parser answered
    right. A list of address strings: the length and character-class profile fitted on them (what the
    example used before). An ``AnomalousInput``: used as it is; in production,
    ``fp.AnomalousInput.load("detector.json")``, saved by ``failpath check --save-detector``.
    """
    if reference is None:
        return fp.AnomalousInput(fit="check", scorer=fp.NgramScorer(), alpha=0.01)
    if isinstance(reference, fp.AnomalousInput):
        return reference
    return fp.AnomalousInput(reference, alpha=0.01)


def careful_policy(
    reference: fp.AnomalousInput | Sequence[str] | None = None, *, threshold: float = HAND_PICKED_THRESHOLD,
    name: str = "addresses-careful",
) -> fp.Policy:
    """The policy for the address parser, escalating answers whose confidence is below ``threshold``.

    Inputs unlike the addresses the parser is known to handle are anomalous and sent back to the user;
    ``reference`` chooses the detector (:func:`anomaly_detector`: by default the check fits it).
    Tickets go to the policy's default store; a check sends them to its own scratch store.
    """
    review = fp.Escalate(queue="address-review")
    return fp.Policy(
        name,
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Clarify("Please enter a street address.")),
            fp.on(fp.InjectionSuspected()).do(fp.Escalate(queue="security")),
            fp.on(anomaly_detector(reference)).do(
                fp.Clarify("That does not look like a US street address. Could you check it?")
            ),
            fp.on(fp.Timeout()).do(fp.Retry(1), review),
            # The provider's failures and the network's; any other exception is a bug: Unexpected.
            fp.on(fp.ProviderError(ConnectionError)).do(fp.Retry(2, backoff=0.01), review),
            # usaddress's RepeatedLabelError, or an output that is not (token, label) pairs.
            fp.on(fp.InvalidOutput(validator=is_labeled_tokens)).do(review),
            fp.on(fp.LowConfidence(below=threshold)).do(review),
            fp.on(fp.Unexpected()).do(fp.Escalate(queue="ops")),
        ],
        waive=ACCEPTED,
    )


def shipping_policy(reference: fp.AnomalousInput | Sequence[str] | None = None, *, threshold: float = CERTIFIED_THRESHOLD) -> fp.Policy:
    """``careful_policy`` plus what its report taught: foreign characters are refused, and the certified threshold."""
    careful = careful_policy(reference, threshold=threshold, name="addresses-shipping")
    refuse = fp.on(fp.State("foreign_characters", foreign_characters, stage="input")).do(
        fp.Clarify("Please type the address with letters, digits and the usual punctuation only.")
    )
    return fp.Policy("addresses-shipping", rules=[refuse, *careful.rules], waive=ACCEPTED)


def certify_threshold(store: Any, run_id: str | None = None, *, max_risk: float = 0.05, delta: float = 0.05) -> float | None:
    """The lowest confidence threshold certified on a stored check run, or None when nothing is.

    Learn-then-Test (``fp.stats.select_threshold``: a fixed grid, exact binomial p-values, Holm) over
    the calibration half's raw answers that reached the confidence rule (every other rule let them
    through): with probability at least 1 - ``delta``, answering those from the threshold up is wrong at
    most ``max_risk`` of the time. ``run_id`` defaults to the latest check run in ``store`` (a path).
    """
    from failpath import stats
    from failpath.core import is_valid_confidence
    from failpath.store import open_store

    with open_store(store) as opened:
        if run_id is None:
            runs = opened.list_runs(kind="check")
            if not runs:
                raise fp.ConfigError(f"no check run in {store}: run `failpath check --example addresses` first")
            run_id = runs[0]["run_id"]
        rows = [r["data"] for r in opened.results(run_id)]
    confidence, correct = [], []
    for row in rows:
        decided_by_confidence = row.get("state") in (None, "low_confidence")
        if row.get("split") == "calibration" and decided_by_confidence and row.get("raw_error") is None:
            if is_valid_confidence(row.get("raw_confidence")):
                confidence.append(float(row["raw_confidence"]))
                correct.append(bool(row.get("raw_correct")))
    if not confidence:
        return None
    chosen = stats.select_threshold(confidence, correct, max_risk=max_risk, delta=delta, method="holm")
    return float(chosen.threshold) if chosen.certified else None

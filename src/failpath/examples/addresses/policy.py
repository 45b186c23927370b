"""What the address parser does in every failure state: two policies, one hand-tuned, one certified.

``careful_policy`` is what a careful team writes first: every state has a rule, and low confidence
is escalated below a threshold picked by eye (0.80). ``certified_policy`` is the same table with the
threshold the check certified (Learn-then-Test on the calibration half): the one that meets the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import failpath as fp
from failpath.examples.addresses.system import is_labeled_tokens

__all__ = ["HAND_PICKED_THRESHOLD", "CERTIFIED_THRESHOLD", "ACCEPTED", "careful_policy", "certified_policy"]

#: The low-confidence threshold picked by eye: "the parser is rarely wrong above 80%".
HAND_PICKED_THRESHOLD = 0.80

#: The threshold ``failpath check --example addresses`` certifies (risk budget and delta of ``check_kwargs``),
#: read from its report and pasted here: the step a team takes after a READY TO DEMO verdict.
CERTIFIED_THRESHOLD = 0.95

#: Catalog states this parser has no rule for, each with the reason (checked by the verdict).
ACCEPTED: dict[str, str] = {
    "inconsistent": "usaddress is deterministic: the same input always gets the same labels, so it cannot disagree with itself",
}


def careful_policy(reference: Sequence[str], *, threshold: float = HAND_PICKED_THRESHOLD, name: str = "addresses-careful", store: Any = False) -> fp.Policy:
    """The policy for the address parser, escalating answers whose confidence is below ``threshold``.

    ``reference`` holds address strings the parser is known to handle; inputs unlike them are
    anomalous and sent back to the user.
    """
    review = fp.Escalate(queue="address-review")
    return fp.Policy(
        name,
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Clarify("Please enter a street address.")),
            fp.on(fp.InjectionSuspected()).do(fp.Escalate(queue="security")),
            fp.on(fp.AnomalousInput(reference, alpha=0.01)).do(
                fp.Clarify("That does not look like a US street address. Could you check it?")
            ),
            fp.on(fp.Timeout()).do(fp.Retry(1), review),
            fp.on(fp.ProviderError()).do(fp.Retry(2, backoff=0.01), review),
            # usaddress's RepeatedLabelError, or an output that is not (token, label) pairs.
            fp.on(fp.InvalidOutput(validator=is_labeled_tokens)).do(review),
            fp.on(fp.LowConfidence(below=threshold)).do(review),
            fp.on(fp.BudgetExceeded()).do(review),
            fp.on(fp.Unexpected()).do(fp.Escalate(queue="ops")),
        ],
        max_attempts=3,
        store=store,
    )


def certified_policy(reference: Sequence[str], *, threshold: float = CERTIFIED_THRESHOLD, store: Any = False) -> fp.Policy:
    """``careful_policy`` with the certified threshold: the version that meets the budget."""
    return careful_policy(reference, threshold=threshold, name="addresses-certified", store=store)

"""A small real system under a real policy, for the watch tests (and their subprocesses).

``lookup`` is an airport-code lookup: it answers the IATA code of a city, with a confidence from how
closely the text matched a known city name (difflib). Inputs steer it into failure states:
"boom ..." makes its provider fail, "garbled ..." makes it return an unusable output, and a misspelled
city gives a low confidence.

Run as a script, it makes guarded calls in a burst (the durability test kills it mid-burst)::

    python tests/watch_systems.py burst STORE_PATH COUNT
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import failpath as fp  # noqa: E402
from failpath.core import OutputRejected, ProviderFailure  # noqa: E402

CITIES: dict[str, str] = {
    "boston": "BOS",
    "chicago": "ORD",
    "denver": "DEN",
    "seattle": "SEA",
    "atlanta": "ATL",
    "houston": "IAH",
    "phoenix": "PHX",
    "portland": "PDX",
    "miami": "MIA",
    "dallas": "DFW",
    "detroit": "DTW",
    "newark": "EWR",
}


def lookup(text: str) -> fp.Prediction:
    """The IATA code of the city in ``text``, with the closeness of the match as confidence."""
    words = text.strip().lower()
    if words.startswith("boom"):
        raise ProviderFailure("upstream returned 503", status=503)
    if words.startswith("garbled"):
        raise OutputRejected("the lookup service returned HTML instead of JSON", raw="<html>")
    match = difflib.get_close_matches(words, CITIES, n=1, cutoff=0.0)
    city = match[0] if match else "boston"
    confidence = difflib.SequenceMatcher(None, words, city).ratio()
    return fp.Prediction(CITIES[city], confidence=confidence, meta={"usage": {"input_tokens": len(words), "output_tokens": 1}})


def make_policy(
    store: Any,
    *,
    name: str = "airports",
    exporters: tuple[Any, ...] = (),
    raw_inputs: bool = False,
    deadline: float | None = None,
    default: Any = "UNKNOWN",
) -> fp.Policy:
    """The airport lookup's policy: every failure state has a defined behavior."""
    return fp.Policy(
        name,
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Clarify("Which city?")),
            fp.on(fp.ProviderError()).do(fp.Retry(1), fp.Escalate(queue="ops")),
            fp.on(fp.InvalidOutput()).do(fp.Abstain("the lookup service answered garbage")),
            fp.on(fp.LowConfidence(below=0.8)).do(fp.Escalate(queue="review", deadline=deadline, default=default)),
            fp.on(fp.Unexpected()).do(fp.Escalate(queue="ops")),
        ],
        store=store,
        exporters=exporters,
        store_raw_inputs=raw_inputs,
        waive={
            "timeout": "the lookup is a local dictionary",
            "anomalous_input": "any text is matched to the closest city",
            "injection_suspected": "the input is never sent to a model",
            "inconsistent": "the lookup is deterministic",
            "budget_exceeded": "no budget is set",
        },
    )


def address_policy(reference: list[str], *, store: Any, name: str = "addresses") -> fp.Policy:
    """A policy for the bundled address parser (usaddress): anomalous inputs are sent back to the user."""
    review = fp.Escalate(queue="address-review")
    return fp.Policy(
        name,
        rules=[
            fp.on(fp.EmptyInput()).do(fp.Clarify("Please enter a street address.")),
            fp.on(fp.InjectionSuspected()).do(fp.Escalate(queue="security")),
            fp.on(fp.AnomalousInput(reference, alpha=0.01)).do(fp.Clarify("That does not look like a US street address.")),
            fp.on(fp.ProviderError()).do(fp.Retry(1), review),
            fp.on(fp.InvalidOutput()).do(review),
            fp.on(fp.LowConfidence(below=0.8)).do(review),
            fp.on(fp.Unexpected()).do(fp.Escalate(queue="ops")),
        ],
        store=store,
    )


def _burst(path: str, count: int) -> None:
    """Guarded calls numbered 0, 1, 2, ... (the number is in the input); prints each number once its call returned."""
    policy = make_policy(path)
    guarded = policy.wrap(lookup, name="lookup")
    names = list(CITIES)
    for i in range(count):
        # Every seventh input is misspelled: its call opens a review ticket, a synchronous write.
        name = names[i % len(names)]
        guarded(f"{name[::-1] if i % 7 == 0 else name} {i}")
        print(i, flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "burst":
        _burst(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)

"""The system under test: ``usaddress``, a CRF parser of US addresses whose model ships in its wheel.

This is the part you replace with your own model. A system is any callable ``input -> output`` or
``input -> Prediction(output, confidence)``; here the output is the address's tokens, each with its
label (``[("123", "AddressNumber"), ("Main", "StreetName"), ...]``), and the confidence is the
probability the CRF gives to that whole label sequence.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import pycrfsuite
import usaddress

from failpath.core import OutputRejected, Prediction

__all__ = ["AddressParser", "is_labeled_tokens", "repeated_label"]


class AddressParser:
    """Parse a US address into ``(token, label)`` pairs, with the sequence probability as confidence.

    Raises ``OutputRejected`` (the guard's ``invalid_output``) when the input has no tokens or more
    than ``max_tokens``, or when the parse gives one label to two separate runs of tokens:
    usaddress's ``RepeatedLabelError``, an output no caller can use.
    """

    def __init__(self, *, max_tokens: int = 64) -> None:
        self.max_tokens = max_tokens
        # One tagger per parser: pycrfsuite keeps the last tagged sequence inside the tagger, so
        # tagging and scoring must happen together, under a lock, for the probability to be the
        # one of the labels just returned.
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open(usaddress.MODEL_PATH)
        self._lock = threading.Lock()

    def __call__(self, text: str) -> Prediction:
        tokens = usaddress.tokenize(text)
        if not tokens:
            raise OutputRejected("usaddress found no tokens in the input", raw=[])
        if len(tokens) > self.max_tokens:
            # Tagging is linear in the tokens; no address is this long, so do not spend the time.
            raise OutputRejected(f"{len(tokens)} tokens is too long for an address (at most {self.max_tokens})")
        features = usaddress.tokens2features(tokens)
        with self._lock:
            labels = self._tagger.tag(features)
            probability = self._tagger.probability(labels)
        pairs = list(zip(tokens, labels))
        label = repeated_label(labels)
        if label is not None:
            raise OutputRejected(
                f"usaddress RepeatedLabelError: {label!r} labels two separate parts of the address",
                raw=pairs,
            )
        return Prediction(pairs, confidence=min(1.0, max(0.0, float(probability))))

    def __repr__(self) -> str:
        return "AddressParser(usaddress)"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its settings: a copy (in a worker process) opens the model again."""
        return (functools.partial(AddressParser, max_tokens=self.max_tokens), ())


def repeated_label(labels: list[str]) -> str | None:
    """The first label given to two separate runs of tokens, as ``usaddress.tag`` checks it, or None."""
    seen: set[str] = set()
    last = None
    after_separator = False
    for label in labels:
        if label == "IntersectionSeparator":
            after_separator = True
        if after_separator and "StreetName" in label:
            label = "Second" + label
        if label != last and label in seen:
            return label
        seen.add(label)
        last = label
    return None


def is_labeled_tokens(value: object) -> bool:
    """True when ``value`` is a non-empty list of ``(token, label)`` pairs with labels usaddress knows."""
    labels = _LABELS
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str) and pair[1] in labels
            for pair in value
        )
    )


_LABELS = frozenset(usaddress.LABELS)

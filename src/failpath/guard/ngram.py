"""A stronger score for ``AnomalousInput``: n-gram TF-IDF and the distance to the nearest reference input.

:class:`NgramScorer` reads a text two ways. Its *shape*: each token written as its character classes
(``157`` -> ``999``, ``Oscar`` -> ``Aaaa``, ``VIC,`` -> ``AAA,``; digits keep their count, letter runs are
cut at three), with start and end marks, so ``... AA 99999 $`` (a US state and ZIP) and ``... AAA, 9999 $``
(an Australian state and postcode) differ. And its *characters*: character n-grams inside words,
lower-cased. Both are TF-IDF weighted over the reference (scikit-learn's ``TfidfVectorizer``).

The score is one minus the cosine similarity to the nearest reference input, in the space of *all* the
input's n-grams: those the reference never had count in the input's length with the largest weight an
n-gram can have, so an input made of parts never seen is far from everything, however well its common
parts match. (Dropping unseen n-grams, as a plain ``transform`` does, would let a person's name or a
foreign address look close to some address through the few n-grams they share.)

It has no invariance built in: case and blanks are part of the shape. It tolerates what its reference
holds, so fit it (through ``AnomalousInput``) on the inputs the system is known to handle, including the
realistic variants it answered right (:func:`failpath.guard.anomaly.tolerated_reference`).

scikit-learn is imported when a scorer is fitted (``pip install "failpath[detect]"``), never at
``import failpath``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["NgramScorer", "shape_of"]

_TOKEN = re.compile(r"\S+")
_LETTER_RUN = re.compile(r"([Aa])\1{2,}")


def _shape_token(token: str) -> str:
    chars = []
    for ch in token:
        if ch.isdigit():
            chars.append("9")
        elif ch.isalpha():
            chars.append("A" if ch.isupper() else "a")
        else:
            chars.append(ch)
    return _LETTER_RUN.sub(r"\1\1\1", "".join(chars))


def shape_of(text: str) -> list[str]:
    """The shape of each token of ``text``, between ``^`` and ``$``: ``"157 Oscar Cir"`` -> ``[^, 999, Aaaa, Aaa, $]``.

    Digits become ``9`` (their count is kept), letters ``A`` or ``a`` (runs of one case cut at three),
    other characters stay themselves. A blank other than one space between tokens (a tab, a line
    break, two spaces) is a token of its own (``\\t``, ``\\n``, ``__``), so blanks are learned too.
    """
    shapes = ["^"]
    position = 0
    for match in _TOKEN.finditer(text):
        gap = text[position : match.start()]
        if gap and gap != " " or (gap == " " and position == 0):
            shapes.append(_gap_shape(gap))
        shapes.append(_shape_token(match.group()))
        position = match.end()
    if position < len(text):
        shapes.append(_gap_shape(text[position:]))
    shapes.append("$")
    return shapes


def _gap_shape(gap: str) -> str:
    if "\n" in gap or "\r" in gap:
        return "\\n"
    if "\t" in gap:
        return "\\t"
    return "__" if gap.count(" ") > 1 or not gap.isascii() else "_"


class _ShapeAnalyzer:
    """Shape n-grams of a text (a class, not a closure, so a fitted scorer can be copied)."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, text: str) -> list[str]:
        shapes = shape_of(text)
        grams = []
        for n in range(self.low, self.high + 1):
            grams.extend(" ".join(shapes[i : i + n]) for i in range(len(shapes) - n + 1))
        return grams


class _View:
    """One TF-IDF view of the texts, with the weight an n-gram the reference never had would get."""

    def __init__(self, analyzer: Any, **options: Any):
        self.analyzer = analyzer
        self.options = options
        self.analyze: Any = None
        self.vocabulary: dict[str, int] = {}
        self.idf: list[float] = []
        self.unseen_weight = 1.0

    def fit(self, texts: list[str]) -> Any:
        """The reference's TF-IDF rows (not normalized); learns the vocabulary and the idf weights."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(analyzer=self.analyzer, sublinear_tf=True, norm=None, **self.options)
        matrix = vectorizer.fit_transform(texts)
        self.analyze = vectorizer.build_analyzer()
        self.vocabulary = dict(vectorizer.vocabulary_)
        self.idf = [float(x) for x in vectorizer.idf_]
        self.unseen_weight = math.log((1 + len(texts)) / 1) + 1  # the smoothed idf of a term in no reference text
        return matrix

    def weigh(self, text: str) -> tuple[list[int], list[float], float, list[str]]:
        """The columns and TF-IDF weights of ``text``'s known n-grams, its full squared norm (unseen
        n-grams included, at the largest weight), and the unseen n-grams, commonest first."""
        counts = Counter(self.analyze(text))
        columns, weights, unseen = [], [], []
        squared = 0.0
        vocabulary, idf, log = self.vocabulary, self.idf, math.log
        for gram, count in counts.most_common():
            column = vocabulary.get(gram)
            weight = (1.0 + log(count)) * (idf[column] if column is not None else self.unseen_weight)
            squared += weight * weight
            if column is None:
                unseen.append(gram)
            else:
                columns.append(column)
                weights.append(weight)
        return columns, weights, squared, unseen


class NgramScorer:
    """Shape and character n-grams (TF-IDF); the score is the cosine distance to the nearest reference input.

    ``shape_weight`` is the share of the similarity that comes from the token shapes (the rest from the
    character n-grams); ``shape_ngrams`` and ``char_ngrams`` are the n-gram lengths of each view. The
    score is in [0, 1]: 0 for an input identical to a reference input, 1 for one sharing nothing.
    See the module's docstring for why n-grams the reference never had count.
    """

    kind = "ngram"

    def __init__(self, *, shape_weight: float = 0.5, shape_ngrams: tuple[int, int] = (1, 3), char_ngrams: tuple[int, int] = (2, 4)):
        if not 0.0 <= shape_weight <= 1.0:
            raise ValueError(f"NgramScorer: shape_weight must be in [0, 1], got {shape_weight!r}")
        for name, (low, high) in (("shape_ngrams", shape_ngrams), ("char_ngrams", char_ngrams)):
            if not 1 <= low <= high:
                raise ValueError(f"NgramScorer: {name} must be (low, high) with 1 <= low <= high, got {(low, high)!r}")
        self.shape_weight = float(shape_weight)
        self.shape_ngrams = (int(shape_ngrams[0]), int(shape_ngrams[1]))
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))
        self._views: list[tuple[_View, float]] = []
        self._offsets: list[int] = []
        self._n_reference = 0
        self._reference: Any = None  # n-grams of every view side by side × reference inputs

    def options(self) -> dict[str, Any]:
        """The settings that rebuild this scorer (what a saved detector stores)."""
        return {"shape_weight": self.shape_weight, "shape_ngrams": list(self.shape_ngrams), "char_ngrams": list(self.char_ngrams)}

    def fit(self, reference: Sequence[Any]) -> NgramScorer:
        """Learn the n-grams of the reference inputs and keep their vectors."""
        from scipy.sparse import hstack
        from sklearn.preprocessing import normalize

        from failpath.guard.text import canonical_text

        texts = [canonical_text(value) for value in reference]
        if not texts:
            raise ValueError("NgramScorer.fit needs at least one reference input")
        views = []
        if self.shape_weight > 0:
            views.append((_View(_ShapeAnalyzer(*self.shape_ngrams)), self.shape_weight))
        if self.shape_weight < 1:
            views.append((_View("char_wb", ngram_range=self.char_ngrams, lowercase=True), 1.0 - self.shape_weight))
        blocks = [normalize(view.fit(texts)) * math.sqrt(weight) for view, weight in views]
        self._views = views
        self._offsets = [sum(block.shape[1] for block in blocks[:i]) for i in range(len(blocks))]
        self._n_reference = len(texts)
        # n-grams × reference inputs: a query adds up the rows of its n-grams (each row is that n-gram's postings).
        self._reference = hstack(blocks).tocsr().T.tocsr()
        return self

    def _similarities(self, text: str) -> tuple[Any, list[str]]:
        """Cosine similarity of ``text`` to every reference input, and the shape n-grams the reference never had."""
        import numpy as np

        if self._reference is None:
            raise RuntimeError("NgramScorer.score called before fit(reference)")
        columns: list[int] = []
        values: list[float] = []
        unseen_shapes: list[str] = []
        for (view, weight), offset in zip(self._views, self._offsets):
            view_columns, weights, squared, unseen = view.weigh(text)
            if view.analyzer.__class__ is _ShapeAnalyzer:
                unseen_shapes = unseen
            if squared == 0.0:
                continue
            scale = math.sqrt(weight / squared)
            columns.extend(offset + c for c in view_columns)
            values.extend(w * scale for w in weights)
        if not columns:
            return np.zeros(self._n_reference), unseen_shapes
        # The rows of the input's n-grams, weighted and summed: its dot product with every reference input.
        return np.asarray(self._reference[columns].T @ np.asarray(values)).ravel(), unseen_shapes

    def score(self, value: Any) -> float:
        """One minus the cosine similarity to the nearest reference input (higher is more unusual)."""
        from failpath.guard.text import canonical_text

        similarities, _ = self._similarities(canonical_text(value))
        return float(1.0 - similarities.max()) if similarities.size else 1.0

    def explain(self, value: Any) -> str:
        """How close the nearest reference input is, and the token shapes the reference never had."""
        from failpath.guard.text import canonical_text

        similarities, unseen = self._similarities(canonical_text(value))
        best = float(similarities.max()) if similarities.size else 0.0
        why = f"similarity {best:.2f} to the closest reference input"
        if unseen:
            shown = ", ".join(repr(g) for g in sorted(unseen, key=lambda g: (-g.count(" "), g))[:3])
            why += f"; shapes never seen in the reference: {shown}"
        return why

    def __repr__(self) -> str:
        return f"NgramScorer(shape_weight={self.shape_weight:g}, shape_ngrams={self.shape_ngrams}, char_ngrams={self.char_ngrams})"

"""Judges: decide whether a system's output is correct for a case.

Every judge is a small frozen value with two methods:

- ``judge(output, expected) -> bool``: right or wrong;
- ``judge.score(output, expected) -> float``: partial credit in [0, 1] (1.0 whenever the judge says right).

Judges accept JSON-style values: a tuple and a list with the same items are the same value, because
outputs recorded in traces and stores are JSON renderings.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import importlib
import math
import string
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from failpath.check.severity import severity_weights, worst_of
from failpath.core import Case, ConfigError

__all__ = [
    "Judge",
    "Exact",
    "NormalizedText",
    "Fields",
    "TokenLabels",
    "NumericTolerance",
    "FunctionJudge",
    "JUDGES",
    "get_judge",
    "as_judge",
    "plain",
    "as_data",
]


@runtime_checkable
class Judge(Protocol):
    """Anything with ``__call__(output, expected) -> bool`` and ``score(output, expected) -> float``."""

    def __call__(self, output: Any, expected: Any) -> bool: ...

    def score(self, output: Any, expected: Any) -> float: ...


def plain(value: Any) -> Any:
    """``value`` with tuples turned into lists and mapping keys into strings, recursively (its JSON shape).

    A pydantic model or a dataclass instance becomes the dict of its fields (``model_dump()`` or
    ``dataclasses.asdict``), and an enum member its value, so a typed answer compares equal to the
    same answer written as plain data.
    """
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    data = as_data(value)
    return value if data is value else plain(data)


def as_data(value: Any) -> Any:
    """A pydantic model or dataclass instance as a dict of its fields, an enum member as its value; else ``value``."""
    if isinstance(value, (str, int, float, bool, type(None), Mapping, list, tuple)):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):  # a pydantic (v2) model instance
        return dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


# --------------------------------------------------------------------------- text normalization

_PUNCT = set(string.punctuation) | {"\u2018", "\u2019", "\u201c", "\u201d", "\u2013", "\u2014", "\u00ab", "\u00bb"}
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_PUNCT_CHARS = "".join(sorted(_PUNCT))
_PLAIN_SEQUENCES = (list, tuple)  # checked by type first: an ABC isinstance check costs more than the rest


@functools.lru_cache(maxsize=65536)
def _normal_token(token: str, case_sensitive: bool, strip_punctuation: bool) -> str:
    """A token as ``TokenLabels`` compares it (tokens repeat across variants, so the result is cached)."""
    s = unicodedata.normalize("NFKC", token).translate(_ZERO_WIDTH)
    if not case_sensitive:
        s = s.casefold()
    s = s.strip()
    if strip_punctuation:
        s = s.strip(_PUNCT_CHARS)
    return s


def normalize_text(
    text: Any,
    *,
    casefold: bool = True,
    collapse_whitespace: bool = True,
    strip_punctuation: bool = False,
    unicode_form: str | None = "NFKC",
) -> str:
    """The text of ``text`` normalized: Unicode form, zero-width characters removed, case, whitespace, punctuation."""
    s = text if isinstance(text, str) else ("" if text is None else str(text))
    if unicode_form:
        s = unicodedata.normalize(unicode_form, s)
    s = s.translate(_ZERO_WIDTH)
    if casefold:
        s = s.casefold()
    if strip_punctuation:
        s = "".join(" " if ch in _PUNCT else ch for ch in s)
    if collapse_whitespace:
        s = " ".join(s.split())
    return s


# --------------------------------------------------------------------------- judges


@dataclass(frozen=True)
class Exact:
    """Right when the output equals the expected value (tuples and lists compare equal)."""

    name: str = field(default="exact", init=False)

    def __call__(self, output: Any, expected: Any) -> bool:
        return output == expected or plain(output) == plain(expected)

    def score(self, output: Any, expected: Any) -> float:
        return 1.0 if self(output, expected) else 0.0


@dataclass(frozen=True)
class NormalizedText:
    """Right when both texts are equal once normalized (NFKC, zero-width removed, casefolded, spaces collapsed).

    ``strip_punctuation=True`` also treats punctuation as spaces. ``score`` is the similarity ratio of the
    normalized texts (difflib), 1.0 when they are equal.
    """

    casefold: bool = True
    collapse_whitespace: bool = True
    strip_punctuation: bool = False
    unicode_form: str | None = "NFKC"
    name: str = field(default="text", init=False)

    def normalize(self, value: Any) -> str:
        """The normalized text this judge compares."""
        return normalize_text(
            value,
            casefold=self.casefold,
            collapse_whitespace=self.collapse_whitespace,
            strip_punctuation=self.strip_punctuation,
            unicode_form=self.unicode_form,
        )

    def __call__(self, output: Any, expected: Any) -> bool:
        return self.normalize(output) == self.normalize(expected)

    def score(self, output: Any, expected: Any) -> float:
        a, b = self.normalize(output), self.normalize(expected)
        if a == b:
            return 1.0
        return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


@dataclass(frozen=True)
class NumericTolerance:
    """Right when the output is a number within ``abs_tol`` or ``rel_tol`` of the expected number.

    Numeric strings are parsed; anything that is not a finite number is wrong. ``score`` falls linearly
    from 1 at the tolerance to 0 at ten times the tolerance (or at 100% relative error when no tolerance).
    """

    abs_tol: float = 0.0
    rel_tol: float = 1e-9
    name: str = field(default="numeric", init=False)

    def __post_init__(self) -> None:
        if self.abs_tol < 0 or self.rel_tol < 0:
            raise ConfigError(f"numeric judge: tolerances must be >= 0 (abs_tol={self.abs_tol}, rel_tol={self.rel_tol})")

    @staticmethod
    def _number(value: Any) -> float | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            x = float(value)
        elif isinstance(value, str):
            try:
                x = float(value.strip().replace(",", ""))
            except ValueError:
                return None
        else:
            return None
        return x if math.isfinite(x) else None

    def __call__(self, output: Any, expected: Any) -> bool:
        a, b = self._number(output), self._number(expected)
        if a is None or b is None:
            return False
        return math.isclose(a, b, rel_tol=self.rel_tol, abs_tol=self.abs_tol)

    def score(self, output: Any, expected: Any) -> float:
        a, b = self._number(output), self._number(expected)
        if a is None or b is None:
            return 0.0
        if math.isclose(a, b, rel_tol=self.rel_tol, abs_tol=self.abs_tol):
            return 1.0
        tol = max(self.abs_tol, self.rel_tol * max(abs(a), abs(b)))
        err = abs(a - b)
        if tol > 0:
            return max(0.0, 1.0 - (err - tol) / (9.0 * tol))
        return max(0.0, 1.0 - err / max(abs(b), 1e-12))


def _field_judge(spec: Any) -> Judge:
    if isinstance(spec, str):
        return get_judge(spec)
    if isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None) or options.pop("judge", None)
        if not name:
            raise ConfigError(f"fields judge: a per-field judge needs a name, got {dict(spec)!r}")
        return get_judge(str(name), **options)
    return as_judge(spec)


@dataclass(frozen=True)
class Fields:
    """Per-field judge for records: each field compared with its own judge (exact unless told).

    Outputs and expected values may be dicts, pydantic models or dataclass instances: models and
    dataclasses are compared as the plain data they dump to (``model_dump()``, ``dataclasses.asdict``;
    enum members as their values), so a system that answers a schema object is judged field by field.

    ``fields`` lists the fields to compare (default: every key of the expected dict). ``normalizers``
    maps a field to a judge: a name (``"text"``, ``"numeric"``, ...), a mapping of judge options
    (``{"name": "numeric", "abs_tol": 0.01}``), or a judge. ``score`` is the share of fields that
    match; the output is right when that share is at least ``min_score`` (default 1.0: every field).
    A missing field in the output is wrong; extra fields are ignored unless ``strict``.

    ``severity`` grades a wrong answer: field -> severity (a number in [0, 1] or ``minor``, ``major``,
    ``severe``; ``"*"`` for the fields not named, else ``minor``); the answer's severity is the largest
    of the fields it got wrong (see :mod:`failpath.check.severity`).
    """

    fields: tuple[str, ...] | None = None
    normalizers: Mapping[str, Any] = field(default_factory=dict)
    min_score: float = 1.0
    strict: bool = False
    severity: Mapping[str, Any] = field(default_factory=dict)
    name: str = field(default="fields", init=False)

    def __post_init__(self) -> None:
        if self.fields is not None:
            object.__setattr__(self, "fields", tuple(str(f) for f in self.fields))
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"fields judge: min_score must be in [0, 1], got {self.min_score!r}")
        judges = {str(k): _field_judge(v) for k, v in dict(self.normalizers).items()}
        object.__setattr__(self, "normalizers", judges)
        object.__setattr__(self, "severity", severity_weights(self.severity, "fields judge"))

    def grade(self, case: Case, output: Any) -> float | None:
        """The severity of a wrong ``output`` for ``case``: the largest weight of its wrong fields (None: no weights)."""
        if not self.severity:
            return None
        wrong = [name for name, ok in self.field_scores(output, case.expected).items() if not ok]
        return worst_of(wrong, self.severity)

    def field_scores(self, output: Any, expected: Any) -> dict[str, bool]:
        """Each compared field and whether the output got it right."""
        expected = plain(expected)
        if not isinstance(expected, Mapping):
            raise TypeError(
                f"fields judge: the expected value must be a dict, a pydantic model or a dataclass, got {type(expected).__name__}"
            )
        names = self.fields if self.fields is not None else tuple(str(k) for k in expected)
        output = plain(output)
        out = output if isinstance(output, Mapping) else None
        result: dict[str, bool] = {}
        for name in names:
            if out is None:
                result[name] = False
                continue
            if name not in out:
                result[name] = name not in expected
                continue
            judge = self.normalizers.get(name, _EXACT)
            result[name] = bool(judge(out[name], expected.get(name)))
        if self.strict and out is not None:
            for extra in out:
                if str(extra) not in result:
                    result[str(extra)] = False
        return result

    def score(self, output: Any, expected: Any) -> float:
        scores = self.field_scores(output, expected)
        if not scores:
            output = plain(output)
            return 1.0 if isinstance(output, Mapping) and (not self.strict or not output) else 0.0
        return sum(scores.values()) / len(scores)

    def __call__(self, output: Any, expected: Any) -> bool:
        return self.score(output, expected) >= self.min_score - 1e-12


@dataclass(frozen=True)
class TokenLabels:
    """Judge for sequence labeling: expected and output are lists of ``(token, label)`` pairs.

    Tokens are compared after normalization: Unicode NFKC, zero-width characters removed, casefolded,
    surrounding punctuation stripped (so ``"Road,"`` matches ``"road"``); tokens that are only
    punctuation are dropped from both sides. The output is right when, after that, both sequences
    have the same length, the tokens match position by position and every label is equal.

    ``score`` aligns the normalized tokens (difflib, so one inserted or dropped token does not ruin
    the rest) and counts aligned tokens whose labels agree, divided by the longer sequence's length.
    ``case_sensitive=True`` keeps case; ``strip_punctuation=False`` compares tokens with their punctuation.

    ``severity`` grades a wrong answer: label -> severity (a number in [0, 1] or ``minor``, ``major``,
    ``severe``; ``"*"`` for the labels not named, else ``minor``); the answer's severity is the largest
    weight of the labels it got wrong: an expected token whose label it missed, or an output token it
    labelled so wrongly (see :mod:`failpath.check.severity`). An output that is not a list of pairs gets
    every expected label wrong.
    """

    case_sensitive: bool = False
    strip_punctuation: bool = True
    severity: Mapping[str, Any] = field(default_factory=dict)
    name: str = field(default="token_labels", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", severity_weights(self.severity, "token_labels judge"))

    def wrong_labels(self, output: Any, expected: Any) -> set[str]:
        """The labels ``output`` got wrong: on expected tokens not matched with their label, and on output tokens
        not matched with theirs (tokens aligned as in :meth:`score`)."""
        a, b = self.pairs(output), self.pairs(expected)
        if b is None:
            return set()
        if a is None:
            return {label for _, label in b}
        matcher = difflib.SequenceMatcher(None, [t for t, _ in a], [t for t, _ in b], autojunk=False)
        right_a: set[int] = set()
        right_b: set[int] = set()
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                if a[block.a + k][1] == b[block.b + k][1]:
                    right_a.add(block.a + k)
                    right_b.add(block.b + k)
        wrong = {label for i, (_, label) in enumerate(b) if i not in right_b}
        return wrong | {label for i, (_, label) in enumerate(a) if i not in right_a}

    def grade(self, case: Case, output: Any) -> float | None:
        """The severity of a wrong ``output`` for ``case``: the largest weight of its wrong labels (None: no weights)."""
        if not self.severity:
            return None
        return worst_of(self.wrong_labels(output, case.expected), self.severity)

    def _token(self, token: Any) -> str:
        return _normal_token(str(token), self.case_sensitive, self.strip_punctuation)

    def pairs(self, value: Any) -> list[tuple[str, str]] | None:
        """The normalized ``(token, label)`` pairs of ``value``, or None when it is not a list of pairs."""
        if type(value) not in _PLAIN_SEQUENCES and (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)):
            return None
        result = []
        case_sensitive, strip_punctuation = self.case_sensitive, self.strip_punctuation
        for item in value:
            if type(item) not in _PLAIN_SEQUENCES and (isinstance(item, (str, bytes)) or not isinstance(item, Sequence)):
                return None
            if len(item) != 2:
                return None
            token = _normal_token(str(item[0]), case_sensitive, strip_punctuation)
            if token:
                result.append((token, str(item[1])))
        return result

    def __call__(self, output: Any, expected: Any) -> bool:
        a, b = self.pairs(output), self.pairs(expected)
        return a is not None and b is not None and a == b

    def score(self, output: Any, expected: Any) -> float:
        a, b = self.pairs(output), self.pairs(expected)
        if a is None or b is None:
            return 0.0
        if a == b:
            return 1.0
        longest = max(len(a), len(b))
        if longest == 0:
            return 1.0
        matcher = difflib.SequenceMatcher(None, [t for t, _ in a], [t for t, _ in b], autojunk=False)
        agree = 0
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                agree += a[block.a + k][1] == b[block.b + k][1]
        return agree / longest


@dataclass(frozen=True)
class FunctionJudge:
    """A user function ``fn(output, expected)`` returning a bool, or a number in [0, 1] (a score).

    With a number, the output is right when the score is at least ``pass_score``.
    """

    fn: Callable[[Any, Any], Any]
    pass_score: float = 1.0
    name: str = "function"

    def score(self, output: Any, expected: Any) -> float:
        value = self.fn(output, expected)
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if isinstance(value, (int, float)) and math.isfinite(value):
            return min(1.0, max(0.0, float(value)))
        raise TypeError(
            f"judge function {getattr(self.fn, '__qualname__', self.fn)!r} returned {value!r}; "
            "return a bool or a number in [0, 1]"
        )

    def __call__(self, output: Any, expected: Any) -> bool:
        return self.score(output, expected) >= self.pass_score - 1e-12


_EXACT = Exact()


def _raised_at(exc: BaseException) -> str:
    """`` at file:line`` of the innermost frame of ``exc``'s traceback, or ``""``."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if not f.filename.startswith("<")]
    return f" at {inner[-1].filename}:{inner[-1].lineno}" if inner else ""


def _import_attr(spec: str, what: str, folders: Sequence[str] = ()) -> Any:
    """The object ``module:attr`` names; any failure to import it (missing module, SyntaxError, an
    exception or ``sys.exit`` at import) is a ``ConfigError`` naming the module and where it failed.

    With ``folders`` (a project's: the config file's, the working directory), the named module's top-level
    package is taken from the first of them that holds it, before ``sys.path`` is searched: only that
    module comes from there, so a ``scipy.py`` or ``hypothesis.py`` beside it shadows nothing (callers put
    the folders at the end of ``sys.path``, for the project's other modules).
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} must be given as 'module:attr', got {spec!r}")
    try:
        _load_top_level_from(module_name.partition(".")[0], folders)
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    except SyntaxError as exc:
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else f"module {module_name!r}"
        raise ConfigError(
            f"{what} {spec!r}: {where} has a {type(exc).__name__} ({exc.msg}); fix the module and run again"
        ) from exc
    except SystemExit as exc:
        raise ConfigError(
            f"{what} {spec!r}: importing module {module_name!r} called sys.exit({exc.code!r}){_raised_at(exc)}; "
            "a module named here must not exit when imported (put a script's exit under `if __name__ == \"__main__\":`)"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"{what} {spec!r}: importing module {module_name!r} raised {type(exc).__name__}: {exc}{_raised_at(exc)}; "
            "fix the module (run again with --debug to see the traceback)"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{what} {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _load_top_level_from(name: str, folders: Sequence[str]) -> None:
    """Import the top-level module ``name`` from the first of ``folders`` holding it (once per process)."""
    if not folders or name in sys.modules:
        return
    import importlib.machinery
    import importlib.util

    for folder in folders:
        found = importlib.machinery.PathFinder.find_spec(name, [str(folder)])
        if found is None or found.loader is None:
            continue
        module = importlib.util.module_from_spec(found)
        sys.modules[name] = module
        try:
            found.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return


def _function_judge(function: str | Callable[[Any, Any], Any] | None = None, pass_score: float = 1.0) -> FunctionJudge:
    if function is None:
        raise ConfigError("function judge: give 'function' as 'module:attr'")
    fn = _import_attr(function, "judge function") if isinstance(function, str) else function
    if not callable(fn):
        raise ConfigError(f"judge function {function!r} is not callable")
    return FunctionJudge(fn, pass_score=pass_score)


#: Judge names usable in ``failpath.toml`` and ``fp.check(judge=...)``, with their constructor.
JUDGES: dict[str, Callable[..., Judge]] = {
    "exact": Exact,
    "text": NormalizedText,
    "normalized": NormalizedText,
    "fields": Fields,
    "token_labels": TokenLabels,
    "numeric": NumericTolerance,
    "function": _function_judge,
}


def get_judge(name: str, **options: Any) -> Judge:
    """The judge called ``name`` (one of ``JUDGES``) built with ``options``."""
    try:
        factory = JUDGES[name]
    except KeyError:
        raise ConfigError(f"unknown judge {name!r}; choose one of: {', '.join(sorted(JUDGES))}") from None
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"judge {name!r}: bad options {options!r} ({exc})") from exc


def as_judge(judge: Any) -> Judge:
    """A judge from a judge, a judge name, or a plain ``fn(output, expected)`` function."""
    if judge is None:
        return _EXACT
    if isinstance(judge, str):
        return get_judge(judge)
    if callable(judge) and callable(getattr(judge, "score", None)):
        return judge
    if callable(judge):
        return FunctionJudge(judge)
    raise ConfigError(f"judge must be a judge, a judge name or a function, got {judge!r}")

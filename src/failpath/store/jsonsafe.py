"""Render any Python value as JSON that the store can always write.

Model outputs, configurations and result rows may hold anything: pydantic models, dataclasses,
tuples, sets, bytes, NaN, numpy scalars, objects with a broken ``__repr__``. The store must never
fail a write because of an odd value, so :func:`to_json_safe` turns each into plain JSON data:

- ``dict`` keys become strings; tuples, lists, sets and frozensets become lists (sets sorted by
  their JSON text, so the rendering is deterministic);
- pydantic models become ``model_dump(mode="json")``; dataclasses become a dict of their fields;
  enums become their value; ``datetime``/``date``/``time`` become ISO 8601 text;
- ``bytes`` become text (UTF-8, undecodable bytes as ``\\xNN`` escapes);
- lone surrogates (``"\\ud800"``, which ``json.loads`` accepts) become U+FFFD, so the text can be encoded;
- integers too long for Python to print (more than 4300 digits) become ``"<integer of about N digits>"``;
- NaN and infinities become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
- numpy scalars and arrays become Python numbers and lists;
- anything else becomes its ``repr`` (and ``"<unrepresentable T>"`` if even that raises);
- nesting deeper than :data:`MAX_DEPTH` (cycles included) is cut with ``repr``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import json.encoder
import math
from collections.abc import Callable, Mapping
from typing import Any

from failpath.core import safe_text

__all__ = ["to_json_safe", "dumps", "MAX_DEPTH"]

#: Containers nested deeper than this are rendered with ``repr`` (this also stops cycles).
MAX_DEPTH = 64

_EXACT_SCALARS = frozenset({str, bool, type(None)})

# Python refuses to print an int of more than 4300 digits (sys.int_info.default_max_str_digits); an int
# of at most this many bits has fewer than 4300 digits.
_MAX_INT_BITS = 14_000




def _refuse(value: Any) -> Any:
    raise TypeError(f"not JSON data: {type(value).__name__}")


def _make_encoder() -> Callable[[Any], str]:
    """Compact, strict JSON encoding, built once: ``json.dumps`` with options builds a new encoder per call."""
    make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_c_encoder is None:  # no C accelerator: the (slower) pure-Python encoder
        return json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode
    # No cycle check here (markers=None): a cycle ends in RecursionError and takes the slow path.
    encode_chunks = make_c_encoder(
        None, _refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    return lambda value: "".join(encode_chunks(value, 0))


_ENCODE = _make_encoder()


def dumps(value: Any) -> str:
    """``value`` as compact JSON text; never raises (odd values are rendered by :func:`to_json_safe`)."""
    try:
        return safe_text(_ENCODE(value))
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return safe_text(_ENCODE(to_json_safe(value)))
    except (TypeError, ValueError, RecursionError):  # nothing left but its repr, as a JSON string
        return safe_text(_ENCODE(_repr(value)))


def to_json_safe(value: Any, _depth: int = 0) -> Any:
    """``value`` rendered as plain JSON data (dict, list, str, int, float, bool, None); never raises."""
    try:
        return _render(value, _depth)
    except Exception:  # a model_dump or __iter__ that raises: fall back to the repr
        return _repr(value)


def _render(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _EXACT_SCALARS:
        return value
    if kind is int:
        return _int(value)
    if kind is float:
        return _float(value)
    if isinstance(value, enum.Enum):
        return to_json_safe(value.value, depth + 1) if depth < MAX_DEPTH else _repr(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _int(int.__index__(value))
    if isinstance(value, float):
        return _float(float(value))
    if depth >= MAX_DEPTH:
        return _repr(value)
    if isinstance(value, Mapping):
        return {_key(k): to_json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_json_safe(v, depth + 1) for v in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if hasattr(value, "model_dump") and callable(value.model_dump):  # pydantic v2
        return to_json_safe(value.model_dump(mode="json"), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_safe(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    module = kind.__module__
    if (module == "numpy" or module.startswith("numpy.")) and hasattr(value, "tolist"):
        return to_json_safe(value.tolist(), depth + 1)
    if isinstance(value, complex):
        return str(value)
    return _repr(value)


def _int(value: int) -> int | str:
    if value.bit_length() <= _MAX_INT_BITS:
        return value
    return f"<integer of about {int(value.bit_length() * 0.30103) + 1} digits>"


def _float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _key(key: Any) -> str:
    rendered = to_json_safe(key, MAX_DEPTH)  # keys are scalars; anything else is cut to its repr
    if isinstance(rendered, str):
        return rendered
    return json.dumps(rendered)


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


#: The most digits an integer given on the command line may have (Python's own limit for printing one).
MAX_INT_DIGITS = 4300


def strict_loads(text: str) -> Any:
    """The JSON value in ``text``, refusing what JSON itself does not allow or no store can keep whole:
    ``NaN`` and ``Infinity``, integers of more than :data:`MAX_INT_DIGITS` digits, and nesting deeper than
    :data:`MAX_DEPTH`. Raises ``ValueError`` with a message that says which (``json.JSONDecodeError`` for
    text that is not JSON); for values a person types, such as a review answer or a record to perturb."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number; give a number, or the text as a JSON string such as \"{name}\"")

    def integer(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise ValueError(
                f"an integer of {len(digits.lstrip('-'))} digits is longer than the {MAX_INT_DIGITS} digits allowed; "
                "give it as a JSON string"
            )
        return int(digits)

    try:
        value = json.loads(text, parse_constant=constant, parse_int=integer)
    except RecursionError:
        value = None
        depth = MAX_DEPTH + 1
    else:
        depth = _depth(value)
    if depth > MAX_DEPTH:
        raise ValueError(f"the value is nested more than {MAX_DEPTH} levels deep; flatten it")
    return value


def _depth(value: Any) -> int:
    """How deeply ``value`` (plain JSON data) nests lists and objects, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            if level > MAX_DEPTH:
                return level
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest

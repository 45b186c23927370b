"""How the guard writes down an input or an output: canonical text, digest, redacted preview, JSON-safe value.

Traces keep a sha256 digest of the input and a redacted preview by default (lone surrogates replaced by U+FFFD,
as in every text the store writes); the raw input only when the policy opts in. Redaction masks the
secrets of :data:`SECRET_PATTERNS` (API keys, tokens, private keys, US social security numbers), e-mail
addresses, phone numbers and long runs of digits (card, account and ID numbers); the preview is then
truncated. Without raw inputs, :func:`private` applies the same redaction to every other text a trace
or ticket keeps (outputs, errors, questions, explanations, notes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from failpath.core import safe_text

__all__ = [
    "canonical_text", "digest", "redact", "preview", "private", "jsonable", "safe_repr", "describe_error",
    "PREVIEW_CHARS", "SECRET_PATTERNS",
]

#: Longest input preview kept in a trace, in characters (the rest is cut and marked with "…").
PREVIEW_CHARS = 160

_MAX_TEXT = 4000  # longest string kept in a JSON-safe rendering of an output
_MAX_ITEMS = 200  # most items kept from one container
_MAX_DEPTH = 8

#: The secret formats redaction masks, each ``(name, regular expression)``; a match becomes ``<name>``.
SECRET_PATTERNS: tuple[tuple[str, str], ...] = (
    ("private-key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*)"),
    ("api-key", r"\bsk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),  # OpenAI and Anthropic keys
    ("api-key", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe secret and restricted keys
    ("api-key", r"\bAIza[0-9A-Za-z_-]{35}"),  # Google API keys
    ("aws-key-id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b"),
    ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ("ssn", r"\b\d{3}-\d{2}-\d{4}\b"),
)
_SECRET = re.compile("|".join(f"(?P<s{i}>{pattern})" for i, (_, pattern) in enumerate(SECRET_PATTERNS)), re.DOTALL)
_SECRET_NAMES = {f"s{i}": f"<{name}>" for i, (name, _) in enumerate(SECRET_PATTERNS)}
# What a text must hold for one of SECRET_PATTERNS to match: a text without any is not searched.
_SECRET_HINTS = re.compile(r"[-_]|eyJ|AIza|A(?:KI|SI|BI|CC|GP|ID|RO|NP|NV|IP)A")
# What a text must hold for redaction to change it (a secret's hint, an @, a long digit run): one search
# that most short texts (names, streets, house numbers, labels) fail, so they are returned untouched.
_MAYBE_REDACTED = re.compile(r"[-_@]|\d[\d \t().]{6,}\d|eyJ|AIza|A(?:KI|SI|BI|CC|GP|ID|RO|NP|NV|IP)A")


def _mask_secret(match: re.Match[str]) -> str:
    return _SECRET_NAMES[match.lastgroup or ""]


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits with the separators phone and card numbers use; how many digits it holds decides.
_DIGIT_RUN = re.compile(r"[+(]?\d[\d \t().-]*\d")
_LONG_DIGIT_RUN = re.compile(r"\d[\d \t().-]{6,}\d")  # the only runs that can hold 8 digits


def _mask_digits(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) < 8:
        return run
    digits = sum(c.isdigit() for c in run)
    if digits < 8 or (digits < 10 and run[0] != "+"):
        return run  # house numbers, ZIP and ZIP+4 codes, dates, prices stay readable
    if run.isdigit() or digits > 15:
        return "<number>"
    return "<phone>" if run[0] in "+(" or digits <= 12 else "<number>"


def canonical_text(value: Any) -> str:
    """The text a detector reads and the digest is taken of: a string as is, anything else as sorted JSON."""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a subclass's own __str__ is not trusted
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    try:
        return json.dumps(jsonable(value), sort_keys=True, ensure_ascii=False)
    except Exception:
        return _safe_repr(value)


def digest(text: str) -> str:
    """sha256 hex digest of ``text`` (UTF-8; lone surrogates are kept as they are, never an error)."""
    try:
        data = text.encode()
    except UnicodeEncodeError:
        data = text.encode("utf-8", errors="surrogatepass")
    return hashlib.sha256(data).hexdigest()


def redact(text: str) -> str:
    """``text`` with the secrets of :data:`SECRET_PATTERNS`, e-mail addresses, phone numbers and long digit runs
    (10 or more digits; 8 after a +) masked."""
    if _MAYBE_REDACTED.search(text) is None:
        return text
    if _SECRET_HINTS.search(text) is not None:
        text = _SECRET.sub(_mask_secret, text)
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    if _LONG_DIGIT_RUN.search(text) is None:
        return text
    return _DIGIT_RUN.sub(_mask_digits, text)


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The redacted, truncated preview of an input kept in a trace."""
    if len(text) > limit * 4:
        text = text[: limit * 4]  # redaction never needs more than this to fill the preview
    masked = safe_text(redact(text))
    if len(masked) > limit:
        return masked[: limit - 1] + "…"
    return masked


def private(value: Any, text: str) -> Any:
    """A JSON-safe ``value`` (an output, an error, a question, ``detail``) as a trace keeps it without raw inputs.

    Every string, keys included, is redacted as the preview is (:func:`redact`), and a verbatim copy of an
    input ``text`` longer than the preview is replaced by ``<input>``: a stored text never shows more of the
    input than its preview does, nor any secret or personal number the preview masks.
    """
    kind = type(value)
    if kind is str:
        return _private_text(value, text)
    if kind is dict and _untouched(value, text):
        return value
    if kind is dict:
        changed = False
        items = []
        for k, v in value.items():
            kept_key = _private_text(k, text) if type(k) is str else k
            kept = v if v is None or type(v) is int or type(v) is float or type(v) is bool else private(v, text)
            changed = changed or kept_key is not k or kept is not v
            items.append((kept_key, kept))
        return dict(items) if changed else value  # unchanged: the same object, nothing copied
    if kind is list or kind is tuple:
        kept_items = [private(v, text) for v in value]
        return value if kind is list and all(a is b for a, b in zip(kept_items, value)) else kept_items
    return value


_FLAT = frozenset({str, int, float, bool, type(None)})


def _untouched(value: dict, text: str) -> bool:
    """True when redaction cannot change the flat dict ``value`` (string keys; string, number or None
    values): one search over all its text instead of one per string (most outputs are such dicts)."""
    strings = []
    for k, v in value.items():
        if type(k) is not str or type(v) not in _FLAT:
            return False
        strings.append(k)
        if type(v) is str:
            strings.append(v)
    joined = "\n".join(strings)
    return _MAYBE_REDACTED.search(joined) is None and (len(text) <= PREVIEW_CHARS or text not in joined)


def _private_text(value: str, text: str) -> str:
    if len(text) > PREVIEW_CHARS and len(value) >= len(text) and text in value:
        value = value.replace(text, "<input>")
    return redact(value)


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON data (dict, list, str, int, float, bool, None); never raises.

    Long strings and containers are truncated; NaN and infinities become strings; pydantic models are
    dumped; dataclasses become dicts; anything else becomes its ``repr``.
    """
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return value
    if kind is str:
        return safe_text(value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…")
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    if kind is dict and _depth < _MAX_DEPTH and len(value) <= _MAX_ITEMS:
        try:
            out = {}
            for k, v in value.items():
                if type(k) is not str:
                    k = _key(k)
                k = safe_text(k)
                item = type(v)
                # Short strings, ints, bools and None are kept as they are: no call for the common fields.
                if (item is str and len(v) <= _MAX_TEXT and v.isascii()) or item is int or item is bool or v is None:
                    out[k] = v
                else:
                    out[k] = jsonable(v, _depth + 1)
            return out
        except Exception:
            return _safe_repr(value)
    if (kind is list or kind is tuple) and _depth < _MAX_DEPTH:
        return [jsonable(v, _depth + 1) for v in value[:_MAX_ITEMS]]
    try:
        return _render(value, _depth)
    except Exception:
        return _safe_repr(value)


def _render(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return jsonable(str.__str__(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return jsonable(float(value))
    if depth >= _MAX_DEPTH:
        return _safe_repr(value)
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_ITEMS]
        return {_key(k): jsonable(v, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value[:_MAX_ITEMS]]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v, depth + 1) for v in list(value)[:_MAX_ITEMS]), key=repr)
    if isinstance(value, (bytes, bytearray)):
        return jsonable(bytes(value).decode("utf-8", errors="backslashreplace"))
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return jsonable(dump(mode="json"), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)}
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist) and type(value).__module__.startswith("numpy"):
        return jsonable(tolist(), depth + 1)
    return _safe_repr(value)


def _key(key: Any) -> str:
    return safe_text(str.__str__(key)) if isinstance(key, str) else _safe_repr(key)


def _safe_repr(value: Any) -> str:
    try:
        text = safe_text(repr(value))
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def safe_repr(value: Any) -> str:
    """``repr(value)``, cut at 4000 characters; never raises (an int too long to print, a broken ``__repr__``)."""
    return _safe_repr(value)


def describe_error(exc: BaseException) -> str:
    """``"ExceptionType: message"``, cut at 500 characters; never raises (an exception whose ``__str__`` raises
    is ``"ExceptionType: <unprintable>"``)."""
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable>"
    text = safe_text(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
    return text if len(text) <= 500 else text[:499] + "…"

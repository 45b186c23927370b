"""Every failing case of a check, as the data the HTML report lists, filters, pages and drills into.

:func:`build_case_list` reads a run's request records (:func:`failpath.report.rows.request_row`)
twice: to learn each case's clean answer and which cases have a listed request, then to keep the rows
the page needs (so the records can be streamed from the store, never all held at once). A request is *listed* when it is one of :data:`KINDS`:

- ``silent``: a silent failure (the guarded call answered, wrongly);
- ``changed``: a hostile variant answered differently from its clean case while both were answered
  (the answers compared exactly; for a variant whose expected answer changed: the clean answer
  was right and this one is wrong), the rows the verdict's ``hostile_changed_answers`` criterion counts
  (it compares with the check's judge, so a lenient judge counts fewer);
- ``refused``: the raw system answered right and the policy refused it (clarify, escalate, abstain,
  default): over-refusal;
- ``caught``: the raw answer was wrong and the policy handled the call;
- ``escaped``: the guarded call raised instead of ending in an outcome.

Every other request of a case with a listed request is kept too, shorter, so the page's drill-down
shows all of the case's variants. Texts are previews (:func:`failpath.report.terminal.visible`: one
line, invisible and control characters escaped, cut); the CSV and JSONL outputs hold every value whole.

:func:`embed` turns the data into the text of a ``<script type="application/json">`` element: JSON
with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, so no value can close the element or start markup.
The page reads it with ``JSON.parse`` and shows every value through ``textContent`` only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "KINDS",
    "ROW_FIELDS",
    "LISTED_CHARS",
    "CONTEXT_CHARS",
    "build_case_list",
    "embed",
    "row_kinds",
]

#: The kinds of listed requests: (name, bit, label). A request may be of several kinds (a hostile
#: silent failure whose answer also changed); the bits add up.
KINDS: tuple[tuple[str, int, str], ...] = (
    ("silent", 1, "silent failure"),
    ("changed", 2, "changed hostile answer"),
    ("refused", 4, "refused though right"),
    ("caught", 8, "caught: raw answer wrong, handled"),
    ("escaped", 16, "escaped: the guarded call raised"),
)
_BIT = {name: bit for name, bit, _ in KINDS}

#: The fields of one embedded row, in order (the page looks them up by name).
ROW_FIELDS: tuple[str, ...] = (
    "case",  # index into "cases"
    "suite",  # index into "suites"
    "perturbation",  # index into "perturbations"
    "variant",
    "split",  # "evaluation" or "calibration"
    "kinds",  # the bits of KINDS (0: not listed, shown only in its case's drill-down)
    "outcome",
    "state",  # the deciding failure state, or null
    "confidence",
    "raw_confidence",
    "raw_right",  # the raw answer (without the policy) was right
    "degraded",
    "input",
    "expected",  # null: the case's expected answer (the third item of its entry in "cases")
    "raw_output",  # null: the same as this row's expected answer
    "output",  # null: the same as this row's raw output
    "raw_error",
)

#: How many characters of each text a listed row keeps; the other variants of its case keep fewer.
LISTED_CHARS = 300
CONTEXT_CHARS = 120

_HANDLED = frozenset({"clarify", "escalated", "abstained", "defaulted"})


def _same(a: Any, b: Any) -> bool:
    """Whether two stored values (JSON values) are the same answer: equal, and of the same type (so
    ``1`` is not ``true``)."""
    return type(a) is type(b) and a == b


def row_kinds(row: Mapping[str, Any], clean: Mapping[str, tuple[bool, Any, bool]] | None = None) -> int:
    """The :data:`KINDS` bits of one request record; ``clean`` maps a case id to its clean row's
    ``(answered, answer, right)`` (without it, no row is ``changed``)."""
    outcome = row.get("outcome")
    bits = 0
    if outcome == "escaped":
        bits |= _BIT["escaped"]
    if row.get("silent_failure"):
        bits |= _BIT["silent"]
    if outcome in _HANDLED:
        bits |= _BIT["refused"] if row.get("right_without_policy") else _BIT["caught"]
    if clean is not None and row.get("family") == "hostile" and outcome == "answered":
        base = clean.get(str(row.get("case_id")))
        if base is not None and base[0]:
            if (row.get("contract") or "unchanged") == "unchanged":
                if not _same(row.get("output"), base[1]):
                    bits |= _BIT["changed"]
            elif base[2] and not row.get("right_with_policy"):
                bits |= _BIT["changed"]
    return bits


class _Index:
    """Names to small numbers, in order of first sight."""

    def __init__(self) -> None:
        self.names: list[Any] = []
        self._codes: dict[Any, int] = {}

    def __call__(self, name: Any) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self.names)
            self.names.append(name)
        return code


def _confidence(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return round(value, 4) if value == value and abs(value) != float("inf") else None


def build_case_list(rows: Callable[[], Iterable[Mapping[str, Any]]]) -> dict[str, Any]:
    """The case list of a run. ``rows`` returns the run's request records afresh; it is called twice.

    Returns ``{"schema", "fields", "kinds", "suites", "perturbations", "cases", "rows", "counts",
    "listed", "shown_cases"}``: ``rows`` holds the listed rows first (silent failures, most confident first,
    then the other kinds), then the other rows of their cases; ``cases`` holds ``[case id, [tags], its
    expected answer]`` (the clean row's; None when the run has no clean row of the case);
    ``counts`` the listed rows of each kind and, per kind, how many of them are on the evaluation half.
    """
    from failpath.report.terminal import visible

    clean, expected_of, listed_cases = _first_pass(rows())
    cases, suites, perturbations = _Index(), _Index(), _Index()
    case_tags: dict[int, list[str]] = {}
    listed: list[tuple[tuple[Any, ...], list[Any]]] = []
    context: list[list[Any]] = []
    counts = {name: 0 for name, _, _ in KINDS}
    evaluation = {name: 0 for name, _, _ in KINDS}
    for row in rows():
        case_id = str(row.get("case_id"))
        if case_id not in listed_cases:
            continue
        bits = row_kinds(row, clean)
        limit = LISTED_CHARS if bits else CONTEXT_CHARS
        case = cases(case_id)
        case_tags.setdefault(case, [str(t) for t in row.get("tags") or ()])
        expected, raw_output, output = row.get("expected"), row.get("raw_output"), row.get("output")
        # A value equal to the one it is most often equal to is left out (null), so a large run stays small.
        encoded = [
            case, suites(str(row.get("suite"))), perturbations(str(row.get("perturbation"))), row.get("variant"),
            row.get("split"), bits, row.get("outcome"), row.get("state"), _confidence(row.get("confidence")),
            _confidence(row.get("raw_confidence")), bool(row.get("right_without_policy")), bool(row.get("degraded")),
            visible(row.get("input_preview"), limit),
            None if case_id in expected_of and _same(expected, expected_of[case_id]) else visible(expected, limit),
            None if _same(raw_output, expected) and row.get("raw_error") is None else visible(raw_output, limit),
            None if _same(output, raw_output) else visible(output, limit),
            None if row.get("raw_error") is None else visible(row.get("raw_error"), limit),
        ]
        if not bits:
            context.append(encoded)
            continue
        for name, bit, _ in KINDS:
            if bits & bit:
                counts[name] += 1
                evaluation[name] += row.get("split") == "evaluation"
        confidence = encoded[8]
        order = (_first_kind(bits), -(confidence if confidence is not None else -1.0), case_id, str(row.get("key")))
        listed.append((order, encoded))
    listed.sort(key=lambda item: item[0])
    return {
        "schema": "failpath.cases/1",
        "fields": list(ROW_FIELDS),
        "kinds": [[name, bit, label] for name, bit, label in KINDS],
        "suites": suites.names,
        "perturbations": perturbations.names,
        "cases": [
            [name, case_tags.get(i, []), visible(expected_of[name], LISTED_CHARS) if name in expected_of else None]
            for i, name in enumerate(cases.names)
        ],
        "rows": [encoded for _, encoded in listed] + context,
        "listed": len(listed),
        "counts": counts,
        "evaluation_counts": evaluation,
        "shown_cases": len(cases.names),
    }


def _first_pass(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[str, tuple[bool, Any, bool]], dict[str, Any], set[str]]:
    """Each case's clean row (``(answered, answer, right)``) and expected answer, and the cases with a listed request."""
    clean: dict[str, tuple[bool, Any, bool]] = {}
    expected_of: dict[str, Any] = {}  # case id -> its clean expected answer
    listed_cases: set[str] = set()
    # A case's clean row may come after its hostile ones: their answers wait here, one of each.
    hostile: dict[str, dict[str, Any]] = {}  # case id -> {repr: answer} of its right answered variants
    for row in rows:
        case_id = str(row.get("case_id"))
        if row.get("suite") == "clean":
            clean[case_id] = (row.get("outcome") == "answered", row.get("output"), bool(row.get("right_with_policy")))
            expected_of[case_id] = row.get("expected")
        if row_kinds(row):  # every kind but "changed", which needs the clean answer
            listed_cases.add(case_id)
        elif row.get("family") == "hostile" and row.get("outcome") == "answered":
            # Answered and not a silent failure, so right: "changed" only if its answer differs from the
            # clean one (a wrong answer whose expected answer changed is a silent failure, listed already).
            hostile.setdefault(case_id, {}).setdefault(repr(row.get("output")), row.get("output"))
    for case_id, answers in hostile.items():
        base = clean.get(case_id)
        if base is not None and base[0] and any(not _same(answer, base[1]) for answer in answers.values()):
            listed_cases.add(case_id)
    return clean, expected_of, listed_cases


def _first_kind(bits: int) -> int:
    """The position in :data:`KINDS` of a row's first kind (the list's order: silent failures first)."""
    for position, (_, bit, _) in enumerate(KINDS):
        if bits & bit:
            return position
    return len(KINDS)


_UNSAFE = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def embed(data: Any) -> str:
    """``data`` as JSON text safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``
    (so no ``</script>`` and no ``<!--``), no U+2028/U+2029; ``JSON.parse`` reads back the same values."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for unsafe, escaped in _UNSAFE:  # one C pass each, faster than str.translate on a large text
        text = text.replace(unsafe, escaped)
    return text

"""One row per request of a check, for a spreadsheet (CSV) or a script (JSONL).

A check stores every request it made (``Store.results``). :func:`request_rows` turns those stored rows
into flat records with the columns :data:`REQUEST_COLUMNS`: where the request came from (case, suite,
perturbation, how the variant's expected answer relates to the case's, split, the case's tags), what was asked and expected, what the raw system answered and whether that
was right (*without* the policy), and what the guarded call ended in and whether it was right
(*with* the policy). Nothing is recomputed: the figures are the ones the check stored.

In CSV, structured values are JSON text, invisible and control characters are written as escapes
(``\\u200b``), a text cell that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``)
starts with ``'`` (chaos inputs carry such strings on purpose), and a value longer than
:data:`CSV_CELL_CHARS` is cut, saying its length. JSONL keeps every value as it was stored.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "REQUEST_COLUMNS",
    "INPUT_PREVIEW_CHARS",
    "CSV_CELL_CHARS",
    "request_row",
    "request_rows",
    "read_request_rows",
    "stream_request_rows",
    "render_csv",
    "render_jsonl",
]

#: The columns of a request row, in order.
REQUEST_COLUMNS: tuple[str, ...] = (
    "case_id",
    "suite",
    "family",
    "perturbation",
    "variant",
    "contract",
    "split",
    "tags",
    "input_preview",
    "expected",
    "raw_output",
    "raw_confidence",
    "raw_error",
    "right_without_policy",
    "outcome",
    "state",
    "states",
    "actions",
    "output",
    "confidence",
    "degraded",
    "right_with_policy",
    "silent_failure",
    "latency_ms",
    "trace_id",
    "key",
)

#: How many characters of an input the ``input_preview`` column keeps.
INPUT_PREVIEW_CHARS = 200

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: The longest text a CSV cell holds (spreadsheets stop at 32,767 characters); a longer value is cut,
#: saying how long it was. JSONL keeps every value whole.
CSV_CELL_CHARS = 32_000


def request_row(key: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The flat record of one stored request (``key`` and ``data`` as ``Store.results`` gives them).

    ``right_without_policy``: the raw system's first answer was right (an exception is wrong).
    ``right_with_policy``: the guarded call answered and was right; ``None`` when it did not answer
    (it asked, escalated, abstained, defaulted or escaped). ``silent_failure``: it answered, wrongly.
    A request that cannot be judged (a realistic ``not_preserved`` variant: its right answer may have
    changed) is neither right nor wrong: both ``right_*`` are ``None`` and it is no silent failure.
    """
    from failpath.check.metrics import is_judged
    from failpath.report.terminal import visible

    outcome = data.get("outcome")
    answered = outcome == "answered"
    judged = is_judged(data)
    right = judged and bool(data.get("correct"))
    return {
        "case_id": data.get("case_id"),
        "suite": data.get("suite"),
        "family": data.get("family"),
        "perturbation": data.get("perturbation"),
        "variant": data.get("variant"),
        "contract": data.get("contract"),
        "split": data.get("split"),
        "tags": list(data.get("tags") or ()),
        "input_preview": visible(data.get("input"), INPUT_PREVIEW_CHARS),
        "expected": data.get("expected"),
        "raw_output": data.get("raw_output"),
        "raw_confidence": data.get("raw_confidence"),
        "raw_error": data.get("raw_error"),
        "right_without_policy": (data.get("raw_error") is None and bool(data.get("raw_correct"))) if judged else None,
        "outcome": outcome,
        "state": data.get("state"),
        "states": list(data.get("states") or ()),
        "actions": list(data.get("actions") or ()),
        "output": data.get("value"),
        "confidence": data.get("confidence"),
        "degraded": bool(data.get("degraded")),
        "right_with_policy": right if answered and judged else None,
        "silent_failure": answered and judged and not right,
        "latency_ms": data.get("latency_ms"),
        "trace_id": data.get("trace_id"),
        "key": key,
    }


def request_rows(stored: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records of stored requests: each item a ``{"key": ..., "data": {...}}`` row of ``Store.results``."""
    return [request_row(str(row.get("key")), row.get("data") or {}) for row in stored]


def read_request_rows(store: Any, run_id: str) -> list[dict[str, Any]]:
    """The records of every request of run ``run_id``, read from ``store`` (a ``Store``, a path or a URL),
    in the order the check wrote them."""
    from failpath.store import Store, open_store

    if isinstance(store, Store):
        return request_rows(store.results(run_id))
    with open_store(store) as opened:
        return request_rows(opened.results(run_id))


#: How many stored rows :func:`stream_request_rows` reads from the store at a time.
STREAM_BATCH = 2000


def stream_request_rows(store: Any, run_id: str, *, batch: int = STREAM_BATCH) -> Callable[[], Iterator[dict[str, Any]]]:
    """A function that, each time it is called, reads the records of run ``run_id`` from ``store`` (a
    ``Store``, a path or a URL) again, ``batch`` stored rows at a time, in the order written.

    For a report that goes over a large run more than once (the HTML report's case list): only one
    batch of rows is in memory at a time, where :func:`read_request_rows` holds them all.
    """
    from failpath.store import Store, open_store

    def records(opened: Any) -> Iterator[dict[str, Any]]:
        position = 0
        while True:
            stored, position = opened.results_after(run_id, position, limit=batch)
            if not stored:
                return
            for key, data in stored:
                yield request_row(str(key), data or {})

    def read() -> Iterator[dict[str, Any]]:
        if isinstance(store, Store):
            yield from records(store)
            return
        with open_store(store) as opened:
            yield from records(opened)

    return read


def _csv_cell(value: Any) -> Any:
    from failpath.report.terminal import visible

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    text = visible(value, CSV_CELL_CHARS)
    if len(text) == CSV_CELL_CHARS and text.endswith("…"):
        whole = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        text = f"{text} ({len(whole):,} characters in all; the JSONL output has the whole value)"
    if text.startswith(_FORMULA_STARTS):
        try:
            float(text)
        except ValueError:
            text = "'" + text
    return text


def render_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The records as CSV text with a header row (:data:`REQUEST_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REQUEST_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in REQUEST_COLUMNS])
    return buffer.getvalue()


def render_jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    """The records as JSON Lines: one JSON object per request, keys in :data:`REQUEST_COLUMNS` order."""
    from failpath.store.jsonsafe import to_json_safe

    lines = [json.dumps(to_json_safe({c: row.get(c) for c in REQUEST_COLUMNS}), ensure_ascii=False) for row in rows]
    return "".join(line + "\n" for line in lines)

"""Labeled datasets: JSONL or CSV files read into ``Case`` values, checked before any model call.

Every problem a user can cause (missing file or column, bad JSON, empty file, duplicate ids) raises
``DatasetError`` naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failpath.core import Case, DatasetError

__all__ = ["Columns", "load_cases", "as_cases", "check_case_sizes", "MAX_NESTING", "MAX_INPUT_BYTES"]

#: The deepest nesting of lists and objects a case's input or expected value may have. Results and
#: reports hold these values a few levels further down, and their JSON encoding stops at a few hundred
#: levels: a deeper value is refused when the dataset is read, not after the whole run.
MAX_NESTING = 100

#: The largest input (and expected answer) a check takes by default: 1 MiB of JSON text (UTF-8). A case over
#: it is refused before any call, naming the case; raise it with ``[dataset] max_input_bytes`` in
#: failpath.toml or ``fp.check(max_input_bytes=...)``.
MAX_INPUT_BYTES = 1 << 20


@dataclass(frozen=True)
class Columns:
    """Which column (CSV) or field (JSONL) holds each part of a case.

    ``id`` may be absent from the file when it keeps its default name: cases are then numbered by line.
    ``tags`` is optional. ``json_columns`` (CSV only) lists columns whose cells are JSON-encoded, e.g.
    ``("expected",)`` for a structured expected value. ``tags_separator`` splits a CSV tags cell.
    ``line_id_prefix`` goes before a line number used as the id (the file's name, when several are read).
    """

    id: str = "id"
    input: str = "input"
    expected: str = "expected"
    tags: str | None = "tags"
    json_columns: tuple[str, ...] = ()
    tags_separator: str = ";"
    id_required: bool = False
    line_id_prefix: str = ""


def _tags(value: Any, where: str, separator: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(separator) if t.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(t, (str, int)) for t in value):
        return tuple(str(t) for t in value)
    raise DatasetError(f"{where}: tags must be a list of strings or a string, got {value!r}")


def _case_id(value: Any, where: str, column: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise DatasetError(f"{where}: the id column {column!r} must hold a non-empty string or integer, got {value!r}")
    return str(value)


def load_cases(
    path: str | Path | Sequence[str | Path],
    *,
    format: str | None = None,
    id: str = "id",
    input: str = "input",
    expected: str = "expected",
    tags: str | None = "tags",
    json_columns: Sequence[str] = (),
    tags_separator: str = ";",
    encoding: str = "utf-8",
) -> list[Case]:
    """Read the labeled cases in a JSONL or CSV file, or in several (format from each suffix unless given).

    Column names map the file onto a case (``id``, ``input``, ``expected``, ``tags``); several files
    share the mapping and are read in order. Without an id column, cases are numbered by line (with
    several files: ``name.jsonl:12``). Raises ``DatasetError`` with the file and line for a missing
    file or column, bad JSON, an empty file or a duplicate id — across files, naming both.
    """
    files = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    if not files:
        raise DatasetError("no dataset file given; name one in dataset.path (or several in dataset.paths) of failpath.toml")
    several = len(files) > 1
    cases: list[Case] = []
    first_seen: dict[str, tuple[Path, int]] = {}
    for file in files:
        columns = Columns(
            id=id,
            input=input,
            expected=expected,
            tags=tags,
            json_columns=tuple(json_columns),
            tags_separator=tags_separator,
            id_required=id != "id",
            line_id_prefix=f"{file.name}:" if several else "",
        )
        seen_here: dict[str, int] = {}
        for case in _load_file(file, format, columns, encoding, seen_here):
            if case.id in first_seen:
                other, other_line = first_seen[case.id]
                raise DatasetError(
                    f"{file}:{seen_here[case.id]}: duplicate id {case.id!r}: {other}:{other_line} has it too; "
                    "ids must be unique across the dataset files"
                )
            first_seen[case.id] = (file, seen_here[case.id])
            cases.append(case)
    return cases


def _load_file(file: Path, format: str | None, columns: Columns, encoding: str, first_seen: dict[str, int]) -> list[Case]:
    if not file.is_file():
        raise DatasetError(f"{file}: dataset file not found (check dataset.path or dataset.paths in failpath.toml)")
    kind = (format or file.suffix.lstrip(".")).lower()
    read_as = encoding
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        read_as = "utf-8-sig"  # a byte-order mark (Excel writes one) is not part of the first column's name
    try:
        with open(file, encoding=read_as, newline="") as handle:  # line ends kept as written (a CSV cell's too)
            text = handle.read()
    except UnicodeDecodeError as exc:
        line = file.read_bytes()[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{file}:{line}: not valid {encoding} text ({exc.reason}); save the file as UTF-8") from exc
    except OSError as exc:
        raise DatasetError(f"{file}: cannot read the dataset ({exc.strerror or exc}); check the file's permissions") from exc
    if kind in ("jsonl", "ndjson", "json"):
        cases = _read_jsonl(file, text, columns, first_seen)
    elif kind in ("csv", "tsv"):
        cases = _read_csv(file, text, columns, first_seen, delimiter="\t" if kind == "tsv" else ",")
    else:
        raise DatasetError(f"{file}: unknown dataset format {kind!r}; use a .jsonl or .csv file (or set dataset.format)")
    if not cases:
        raise DatasetError(f"{file}: the dataset is empty; it needs at least one labeled case")
    return cases


def _unreadable_json(exc: RecursionError | ValueError) -> str:
    """What is wrong with a JSON value the decoder refused although its syntax is valid, and what to do."""
    if isinstance(exc, RecursionError):
        return "a JSON value is nested too deeply to read; flatten it (a case's values are read into memory as Python objects)"
    if "integer string conversion" in str(exc):
        return (
            f"a JSON integer has more digits than Python reads ({sys.get_int_max_str_digits()}); "
            "write it as a string"
        )
    return f"bad JSON ({exc})"


def _read_jsonl(file: Path, text: str, columns: Columns, first_seen: dict[str, int]) -> list[Case]:
    cases: list[Case] = []
    # Lines end at "\n" only: U+2028, U+0085 and the other breaks str.splitlines() knows are valid
    # inside a JSON string (json.dumps(ensure_ascii=False) writes them as they are).
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{file}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: bad JSON ({exc.msg} at column {exc.colno}); each line must be one JSON object") from exc
        except (RecursionError, ValueError) as exc:
            raise DatasetError(f"{where}: {_unreadable_json(exc)}") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: each line must be a JSON object, got {type(row).__name__}")
        cases.append(_case_from_row(row, where, lineno, columns, first_seen, file))
    return cases


def _read_csv(file: Path, text: str, columns: Columns, first_seen: dict[str, int], delimiter: str) -> list[Case]:
    if not text.strip():
        raise DatasetError(f"{file}: the dataset is empty; it needs a header line and at least one labeled case")
    # newline="": records end at \r, \n or \r\n only, and quoted cells keep their line breaks (as csv wants).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DatasetError(f"{file}:1: cannot read the CSV header ({exc})") from exc
    header = [h.strip() for h in header]
    needed = [columns.input, columns.expected] + ([columns.id] if columns.id_required else [])
    for name in needed:
        if name not in header:
            raise DatasetError(
                f"{file}:1: no column {name!r} in the header (columns: {', '.join(header)}); "
                "rename the column or map it in [dataset] of failpath.toml"
            )
    for name in columns.json_columns:
        if name not in header:
            raise DatasetError(f"{file}:1: json column {name!r} is not in the header (columns: {', '.join(header)})")
    cases: list[Case] = []
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DatasetError(f"{file}:{reader.line_num}: bad CSV ({exc})") from exc
        previous_end = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        where = f"{file}:{start}"
        if len(record) != len(header):
            raise DatasetError(f"{where}: {len(record)} cells but the header has {len(header)} columns")
        row: dict[str, Any] = dict(zip(header, record))
        for name in columns.json_columns:
            try:
                row[name] = json.loads(row[name])
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    f"{where}: column {name!r} holds bad JSON ({exc.msg} at column {exc.colno}): {row[name][:80]!r}"
                ) from exc
            except (RecursionError, ValueError) as exc:
                raise DatasetError(f"{where}: column {name!r}: {_unreadable_json(exc)}") from exc
        cases.append(_case_from_row(row, where, start, columns, first_seen, file))
    return cases


def _case_from_row(
    row: Mapping[str, Any],
    where: str,
    lineno: int,
    columns: Columns,
    first_seen: dict[str, int],
    file: Path,
) -> Case:
    for name in (columns.input, columns.expected):
        if name not in row:
            raise DatasetError(
                f"{where}: no {name!r} field (fields: {', '.join(map(str, row)) or 'none'}); "
                "add it or map the column in [dataset] of failpath.toml"
            )
    if columns.id in row:
        case_id = _case_id(row[columns.id], where, columns.id)
    elif columns.id_required:
        raise DatasetError(f"{where}: no {columns.id!r} field (the id column named in failpath.toml)")
    else:
        case_id = f"{columns.line_id_prefix}{lineno}"
    if case_id in first_seen:
        raise DatasetError(f"{where}: duplicate id {case_id!r} (first at line {first_seen[case_id]}); ids must be unique")
    first_seen[case_id] = lineno
    tags = _tags(row.get(columns.tags), where, columns.tags_separator) if columns.tags else ()
    for name in (columns.input, columns.expected):
        _check_nesting(row[name], f"{where}: {name!r}")
    return Case(id=case_id, input=row[columns.input], expected=row[columns.expected], tags=tags)


def _writable(number: int) -> bool:
    try:
        str(number)
    except ValueError:
        return False
    return True


def _check_nesting(value: Any, where: str) -> None:
    """Raise ``DatasetError`` when ``value`` nests lists or objects deeper than ``MAX_NESTING``, or holds an
    integer too long to write as text (``sys.get_int_max_str_digits``); walks the value without recursion."""
    digits = sys.get_int_max_str_digits()
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, int) and digits and item.bit_length() > 3.3 * digits and not _writable(item):
            raise DatasetError(
                f"{where} holds an integer of more than {digits} digits, more than Python writes as text; "
                "give it as a string"
            )
        if isinstance(item, (Mapping, list, tuple)):
            if depth > MAX_NESTING:
                raise DatasetError(
                    f"{where} nests lists or objects more than {MAX_NESTING} levels deep; flatten it "
                    "(a case's values are stored and reported as JSON)"
                )
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, Mapping) else item))


def as_cases(cases: Any) -> list[Case]:
    """Cases from a dataset path, or from an iterable of ``Case`` or of mappings with id/input/expected/tags.

    Raises ``DatasetError`` for an empty collection, a malformed item or a duplicate id.
    """
    if isinstance(cases, (str, Path)):
        return load_cases(cases)
    if not isinstance(cases, Iterable):
        raise DatasetError(f"cases must be a dataset path or an iterable of cases, got {type(cases).__name__}")
    result: list[Case] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(cases):
        if isinstance(item, Case):
            case = item
        elif isinstance(item, Mapping):
            missing = [k for k in ("input", "expected") if k not in item]
            if missing:
                raise DatasetError(f"case #{index}: missing {', '.join(missing)} (keys: {', '.join(map(str, item))})")
            case = Case(
                id=str(item.get("id", index)),
                input=item["input"],
                expected=item["expected"],
                tags=_tags(item.get("tags"), f"case #{index}", ";"),
            )
        else:
            raise DatasetError(f"case #{index}: expected a failpath.Case or a mapping, got {type(item).__name__}")
        _check_nesting(case.input, f"case #{index}: input")
        _check_nesting(case.expected, f"case #{index}: expected")
        if case.id in seen:
            raise DatasetError(f"case #{index}: duplicate id {case.id!r} (first at #{seen[case.id]}); ids must be unique")
        seen[case.id] = index
        result.append(case)
    if not result:
        raise DatasetError("no cases: the dataset is empty")
    return result


def check_case_sizes(cases: Sequence[Case], max_bytes: int | None = MAX_INPUT_BYTES) -> None:
    """Raise ``DatasetError`` naming the first case whose input or expected answer is longer than
    ``max_bytes`` as JSON text (UTF-8), before any model call: such a case would be sent, perturbed
    (the hostile suite makes inputs longer still), traced and stored many times over, and fail only
    minutes later. ``None`` turns the check off."""
    if max_bytes is None:
        return
    from failpath.store.jsonsafe import dumps

    cheap = max_bytes // 6  # a character is at most 6 bytes of JSON text (``\\uXXXX``)
    for case in cases:
        for field, value in (("input", case.input), ("expected answer", case.expected)):
            if type(value) is str and len(value) <= cheap:
                continue
            size = len(dumps(value).encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                raise DatasetError(
                    f"case {case.id!r}: its {field} is {_size(size)} as JSON, over the limit of {_size(max_bytes)}; "
                    "shorten it or leave the case out, or raise the limit ([dataset] max_input_bytes in "
                    "failpath.toml, fp.check(max_input_bytes=...))"
                )


def _size(n: int) -> str:
    """``n`` bytes in words: ``512 bytes``, ``20.0 MB``."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1 << 20):.1f} MB"

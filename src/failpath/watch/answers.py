"""A reviewer's answer checked against the ticket's output schema, and the fields a form shows for it.

A ticket opened by a policy that declares its output type carries that type as JSON Schema
(``Ticket.output_schema``, see :mod:`failpath.guard.schemas`). An answer that does not match it would
reach the waiting caller as a value its code does not expect, and become a wrong label in the next
check's dataset; so the review page and ``failpath review resolve`` check it first and say what is
wrong, field by field. Validation is ``jsonschema``'s (draft 2020-12, what pydantic writes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from failpath.core import InvalidAnswer, Ticket

__all__ = ["SchemaField", "answer_problems", "check_answer", "schema_fields"]

#: How many mismatches a message lists at most (the first ones, by where they are in the answer).
MAX_PROBLEMS = 8


def answer_problems(schema: Mapping[str, Any] | None, answer: Any) -> list[str]:
    """What is wrong with ``answer`` under ``schema``, one line per mismatch naming where (empty when it
    matches, or when there is no schema)."""
    if schema is None:
        return []
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(dict(schema))  # a stored schema is checked before it judges anything
        validator = Draft202012Validator(dict(schema))
        errors = sorted(validator.iter_errors(answer), key=lambda e: [str(p) for p in e.absolute_path])
    except SchemaError as exc:
        return [f"the ticket's output schema is not valid JSON Schema ({exc.message}); answer it with the policy fixed"]
    problems = []
    for error in errors[:MAX_PROBLEMS]:
        where = ".".join(str(p) for p in error.absolute_path)
        problems.append(f"{where}: {error.message}" if where else error.message)
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"and {len(errors) - MAX_PROBLEMS} more")
    return problems


def check_answer(ticket: Ticket, answer: Any) -> None:
    """Raise :class:`~failpath.core.InvalidAnswer` when ``answer`` does not match the ticket's output schema."""
    problems = answer_problems(ticket.output_schema, answer)
    if problems:
        title = ticket.output_schema.get("title") if isinstance(ticket.output_schema, Mapping) else None
        expected = f"the policy's output type {title}" if isinstance(title, str) else "the policy's output schema"
        raise InvalidAnswer(
            f"the answer to ticket {ticket.ticket_id} does not match {expected}: " + "; ".join(problems)
            + "; correct it and resolve again (the ticket stays open)",
            tuple(problems),
        )


@dataclass(frozen=True)
class SchemaField:
    """One field an answer object has: its name, its JSON type(s) as text, whether it is required, its description."""

    name: str
    type: str
    required: bool
    description: str = ""


def schema_fields(schema: Mapping[str, Any] | None) -> list[SchemaField]:
    """The fields of an object schema, in the schema's order (empty for another schema, or none)."""
    if not isinstance(schema, Mapping):
        return []
    root = schema
    schema = _resolved(root, root)
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, Mapping):
        return []
    required = set(schema.get("required") or ())
    fields = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, Mapping) else {}
        description = spec.get("description") or _resolved(spec, root).get("description")
        fields.append(SchemaField(str(name), _type_text(spec, root), name in required,
                                  description if isinstance(description, str) else ""))
    return fields


def _resolved(spec: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``spec`` with a local ``$ref`` (``#/$defs/Name``) followed, once."""
    ref = spec.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = (root.get("$defs") or {}).get(ref[len("#/$defs/"):])
        if isinstance(target, Mapping):
            return target
    return spec


def _type_text(spec: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """A short text for a field's type: ``string``, ``integer or null``, ``array of string``, ``Address``, ``"a" | "b"``."""
    if "enum" in spec and isinstance(spec["enum"], list):
        return " | ".join(repr(v) if not isinstance(v, str) else f'"{v}"' for v in spec["enum"])
    if "const" in spec:
        return repr(spec["const"])
    ref = spec.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    options = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(options, list):
        return " or ".join(_type_text(o, root) for o in options if isinstance(o, Mapping))
    kind = spec.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array" and isinstance(spec.get("items"), Mapping):
        return f"array of {_type_text(spec['items'], root)}"
    return str(kind) if kind else "any"

"""The JSON Schema of an output type: what a review ticket carries so a reviewer's answer can be checked.

A policy declares its output type with ``InvalidOutput(schema=Model)`` (a pydantic model), or an
``Escalate`` names one with ``schema=``: a pydantic model, a dataclass, a ``TypedDict``, any type pydantic
can describe (``list[str]``, ``int | None``), or a JSON Schema given as a dict. Either becomes one JSON
Schema (draft 2020-12, what pydantic writes) when the policy is built, never on a call, and every
ticket the policy opens keeps a copy: the review page and ``failpath review resolve`` check answers
against it, without needing the user's code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from failpath.core import PolicyError

__all__ = ["output_json_schema"]


def output_json_schema(spec: Any, where: str) -> dict[str, Any]:
    """The JSON Schema of ``spec`` (a type pydantic can describe, or a JSON Schema dict), as JSON-safe data.

    ``where`` names the setting in messages. Raises ``PolicyError`` for a dict that is not a valid
    JSON Schema, or a type pydantic cannot describe.
    """
    if isinstance(spec, Mapping):
        schema = _json_safe(dict(spec), where)
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise PolicyError(f"{where}: not a valid JSON Schema ({exc.message}); give a pydantic model or a JSON Schema dict") from None
        return schema
    if isinstance(spec, (str, bytes, int, float, bool)) or spec is None:
        raise PolicyError(f"{where}: expected a type (a pydantic model, a dataclass, a TypedDict) or a JSON Schema dict, got {spec!r}")
    from pydantic import TypeAdapter

    try:
        schema = TypeAdapter(spec).json_schema()
    except Exception as exc:  # pydantic's PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyError(f"{where}: pydantic cannot describe {spec!r} as JSON Schema ({first}); give a JSON Schema dict instead") from None
    return _json_safe(schema, where)


def _json_safe(schema: dict[str, Any], where: str) -> dict[str, Any]:
    """``schema`` through JSON and back: a plain copy the store can keep, or ``PolicyError`` if it cannot."""
    try:
        return json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{where}: the schema is not JSON-safe ({exc}); use only str, number, bool, None, list and dict") from None

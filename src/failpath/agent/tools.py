"""Tools and model turns: what an agent's model may call, and what one model step returned.

``@fp.tool`` turns a function into a :class:`Tool` whose arguments are checked against a pydantic
model built from the function's signature. ``idempotent=True`` says a call may safely run twice (a
call cut off by a crash is then run again on resume); ``risky`` (True, or a predicate over the
arguments) says a person must approve a call first when the policy has a rule on ``RiskyToolCall``.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from failpath.core import PolicyError, Prediction
from failpath.guard.text import canonical_text, jsonable

__all__ = ["Tool", "tool", "ToolCall", "ModelTurn", "ToolArgsError", "as_turn"]


class ToolArgsError(ValueError):
    """The model's arguments for a tool cannot be used: not JSON, not an object, or off the tool's schema."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call the model asked for: the provider's call id, the tool's name and the arguments.

    ``arguments`` is a mapping, or the JSON text a provider sends (parsed when the call is checked).
    """

    id: str
    name: str
    arguments: Any = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The call as JSON-safe data (what a checkpoint keeps)."""
        return {"id": self.id, "name": self.name, "arguments": jsonable(self.arguments)}


@dataclass(frozen=True, slots=True)
class ModelTurn:
    """What one model step returned: text, the tool calls it asked for, and the tokens it used.

    A turn with no tool calls is the model's final answer. ``usage`` is
    ``{"input_tokens": n, "output_tokens": m, "model": "..."}`` as in ``Prediction.meta["usage"]``.
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The turn as JSON-safe data (what a checkpoint keeps)."""
        return {"text": self.text, "tool_calls": [call.to_dict() for call in self.tool_calls], "usage": jsonable(dict(self.usage))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelTurn:
        """The turn :meth:`to_dict` rendered."""
        calls = tuple(ToolCall(c["id"], c["name"], c.get("arguments")) for c in data.get("tool_calls") or ())
        return cls(data.get("text"), calls, dict(data.get("usage") or {}))


def as_turn(raw: Any) -> ModelTurn:
    """What a model step returned as a :class:`ModelTurn`: a turn, text (a final answer), or the ``Prediction``
    of an ``fp.llm`` adapter built with ``tools=`` (its ``meta["tool_calls"]`` and ``meta["usage"]``).

    Raises ``TypeError`` naming what came back otherwise (the run's ``invalid_output`` state).
    """
    if isinstance(raw, ModelTurn):
        for call in raw.tool_calls:
            if not isinstance(call, ToolCall) or not isinstance(call.name, str) or not isinstance(call.id, str):
                raise TypeError(f"the model step returned a tool call that is not a ToolCall(id: str, name: str, arguments): {call!r}")
        return raw
    if isinstance(raw, str):
        return ModelTurn(text=raw)
    if isinstance(raw, Prediction):  # what fp.llm.openai / fp.llm.anthropic return: tool calls in meta
        meta = raw.meta or {}
        calls = meta.get("tool_calls") or ()
        if raw.value is not None and not isinstance(raw.value, str):
            raise TypeError(f"the model step returned a Prediction whose value is {type(raw.value).__name__}, not text")
        if not calls and raw.value is None:
            raise TypeError("the model step returned a Prediction with neither text nor tool calls")
        turn_calls = []
        for call in calls:
            if not isinstance(call, Mapping) or not isinstance(call.get("id"), str) or not isinstance(call.get("name"), str):
                raise TypeError(f"the model step returned a tool call that is not {{'id', 'name', 'arguments'}}: {call!r}")
            turn_calls.append(ToolCall(call["id"], call["name"], call.get("arguments")))
        usage = meta.get("usage")
        return ModelTurn(raw.value, tuple(turn_calls), usage if isinstance(usage, Mapping) else {})
    raise TypeError(f"the model step returned {type(raw).__name__}, not a ModelTurn or text")


class Tool:
    """A function the model may call, with its argument schema and flags.

    Build one with :func:`tool`. Calling the tool object calls the function.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        idempotent: bool = False,
        risky: bool | Callable[[dict[str, Any]], Any] = False,
    ):
        if not callable(fn):
            raise PolicyError(f"tool({fn!r}): a tool must be a function")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise PolicyError(f"tool(name={self.name!r}): a tool's name must be an identifier, such as 'lookup_order'")
        self.description = description if description is not None else inspect.getdoc(fn) or ""
        if not isinstance(risky, bool) and not callable(risky):
            raise PolicyError(f"tool({self.name!r}, risky={risky!r}): risky must be True, False or a predicate over the arguments")
        #: True for an ``async def`` tool (an agent with one runs with ``await agent.arun(...)``).
        self.is_async = inspect.iscoroutinefunction(fn)
        self.idempotent = bool(idempotent)
        self.risky = risky
        self._model = _arguments_model(fn, self.name)

    def validate(self, arguments: Any) -> dict[str, Any]:
        """The arguments checked against the tool's schema (JSON text is parsed first); ``ToolArgsError`` if they do not fit."""
        import pydantic

        if isinstance(arguments, (str, bytes)):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ToolArgsError(f"the arguments of {self.name} are not valid JSON ({exc})") from None
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise ToolArgsError(f"the arguments of {self.name} must be an object of named arguments, got {type(arguments).__name__}")
        try:
            checked = self._model.model_validate(dict(arguments))
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise ToolArgsError(f"the arguments of {self.name} do not fit its schema: {problems}") from None
        return {key: getattr(checked, key) for key in type(checked).model_fields}

    def is_risky(self, arguments: dict[str, Any]) -> bool | str:
        """Whether the tool's own ``risky`` flag says a call with ``arguments`` needs approval (a predicate that raises says yes)."""
        if isinstance(self.risky, bool):
            return self.risky
        try:
            return bool(self.risky(arguments))
        except Exception as exc:
            return f"the risky predicate of {self.name} raised {type(exc).__name__}: {exc}; treated as risky"

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON schema of the tool's arguments (what a provider's tool definition needs)."""
        schema = self._model.model_json_schema()
        schema.pop("title", None)
        return schema

    def fingerprint(self, arguments: dict[str, Any]) -> str:
        """``name(canonical arguments)``: two calls with the same fingerprint do the same thing."""
        return f"{self.name}({canonical_text(arguments)})"

    def __call__(self, **arguments: Any) -> Any:
        return self.fn(**arguments)

    def __repr__(self) -> str:
        flags = "".join((", idempotent=True" if self.idempotent else "", ", risky=..." if self.risky else ""))
        return f"Tool({self.name!r}{flags})"


# Argument models by (code, name, defaults): a tool defined inside a factory (one per environment, as an
# agent check builds them) is a new function each time, with the same code and signature.
_MODELS: dict[tuple[Any, ...], Any] = {}
_MODELS_LOCK = threading.Lock()


def _arguments_model(fn: Callable[..., Any], name: str) -> Any:
    """A pydantic model of ``fn``'s named parameters (unannotated ones accept anything), built once per signature."""
    code = getattr(fn, "__code__", None)
    key: tuple[Any, ...] | None = None
    if code is not None:
        key = (code, name, getattr(fn, "__defaults__", None), _frozen(getattr(fn, "__kwdefaults__", None)))
        try:
            hash(key)
        except TypeError:  # an unhashable default value: build the model every time
            key = None
    if key is not None:
        with _MODELS_LOCK:
            found = _MODELS.get(key)
        if found is not None:
            return found
    model = _build_arguments_model(fn, name)
    if key is not None:
        with _MODELS_LOCK:
            if len(_MODELS) > 4096:  # tools made by exec or lambdas in a loop: keep the cache bounded
                _MODELS.clear()
            _MODELS[key] = model
    return model


def _frozen(mapping: Any) -> Any:
    return None if mapping is None else tuple(sorted(mapping.items()))


def _build_arguments_model(fn: Callable[..., Any], name: str) -> Any:
    import pydantic

    fields: dict[str, Any] = {}
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise PolicyError(f"tool({name!r}): parameter {parameter.name!r} is positional-only; a tool is called with named arguments")
        annotation = Any if parameter.annotation is parameter.empty else parameter.annotation
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    hints = _resolved_hints(fn)
    for key in fields:
        if key in hints:
            fields[key] = (hints[key], fields[key][1])
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return pydantic.create_model(f"{name}_arguments", __config__=config, **fields)


def _resolved_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The function's type hints with string annotations resolved (empty when they cannot be)."""
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
    risky: bool | Callable[[dict[str, Any]], Any] = False,
) -> Any:
    """Declare a tool: ``@fp.tool`` or ``@fp.tool(idempotent=True, risky=lambda args: args["amount"] > 100)``.

    The arguments are checked against the function's signature and type hints (pydantic) before the
    function runs; a call whose arguments do not fit is the run's ``invalid_tool_args`` state.
    """
    if fn is None:
        return lambda f: Tool(f, name=name, description=description, idempotent=idempotent, risky=risky)
    return Tool(fn, name=name, description=description, idempotent=idempotent, risky=risky)


def tool_table(tools: Sequence[Any]) -> dict[str, Tool]:
    """``{name: Tool}`` for an agent's tools (plain functions become tools); a repeated name is a ``PolicyError``."""
    if isinstance(tools, Mapping) or isinstance(tools, (str, bytes)):
        raise PolicyError("tools must be a list of @fp.tool functions")
    table: dict[str, Tool] = {}
    for item in tools:
        item = item if isinstance(item, Tool) else Tool(item)
        if item.name in table:
            raise PolicyError(f"two tools are named {item.name!r}; give one of them another name with @fp.tool(name=...)")
        table[item.name] = item
    return table

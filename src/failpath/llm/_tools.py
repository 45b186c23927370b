"""Tool calling for the adapters: tool definitions and an agent's messages in each provider's wire format,
and the model's tool calls read back as data.

An agent's messages are plain dicts: ``{"role": "user" | "system", "content"}``, ``{"role":
"assistant", "content", "tool_calls": [{"id", "name", "arguments"}]}`` and ``{"role": "tool",
"tool_call_id", "name", "content"}``. A tool call the model asks for comes back as
``{"id", "name", "arguments"}`` in ``Prediction.meta["tool_calls"]`` (``arguments`` as the provider
sent them: JSON text from OpenAI, an object from Anthropic).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from failpath.core import ConfigError

__all__ = ["tool_definitions", "openai_tools", "anthropic_tools", "openai_messages", "anthropic_messages"]


def tool_definitions(tools: Sequence[Any], *, adapter: str) -> list[dict[str, Any]]:
    """``[{"name", "description", "parameters"}]`` from ``@fp.tool`` objects or dicts of those three keys."""
    if isinstance(tools, (str, bytes, Mapping)):
        raise ConfigError(f"{adapter}: tools= must be a list of @fp.tool functions or {{'name', 'description', 'parameters'}} dicts")
    definitions = []
    for item in tools:
        if isinstance(item, Mapping):
            if not isinstance(item.get("name"), str) or not isinstance(item.get("parameters", {}), Mapping):
                raise ConfigError(f"{adapter}: tool {item!r} needs a 'name' and a JSON schema under 'parameters'")
            definitions.append({"name": item["name"], "description": item.get("description") or "", "parameters": dict(item.get("parameters") or {"type": "object", "properties": {}})})
        elif callable(getattr(item, "parameters_schema", None)) and isinstance(getattr(item, "name", None), str):
            definitions.append({"name": item.name, "description": getattr(item, "description", "") or "", "parameters": item.parameters_schema()})
        else:
            raise ConfigError(f"{adapter}: {item!r} is not a tool; declare it with @fp.tool or give {{'name', 'description', 'parameters'}}")
    return definitions


def openai_tools(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The definitions as ``chat.completions.create(tools=...)`` takes them."""
    return [{"type": "function", "function": {"name": d["name"], "description": d["description"], "parameters": d["parameters"]}} for d in definitions]


def anthropic_tools(definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The definitions as ``messages.create(tools=...)`` takes them."""
    return [{"name": d["name"], "description": d["description"], "input_schema": d["parameters"]} for d in definitions]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    try:
        return json.dumps(content, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(content)


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else _text(arguments if arguments is not None else {})


def _arguments_object(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return {"_unparsed_arguments": arguments}
        return parsed if isinstance(parsed, dict) else {"_arguments": parsed}
    return {} if arguments is None else {"_arguments": arguments}


def _check(messages: Any, adapter: str) -> list[Mapping[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence) or not all(isinstance(m, Mapping) and "role" in m for m in messages):
        raise TypeError(f"{adapter}: with tools=, the input is a prompt or the agent's list of message dicts with a 'role'")
    return list(messages)


def openai_messages(messages: Any, *, adapter: str) -> list[dict[str, Any]]:
    """An agent's messages in the Chat Completions format."""
    out: list[dict[str, Any]] = []
    for message in _check(messages, adapter):
        role = message["role"]
        if role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": message.get("content") or None}
            calls = message.get("tool_calls") or []
            if calls:
                item["tool_calls"] = [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": _arguments_text(c.get("arguments"))}} for c in calls
                ]
            elif item["content"] is None:
                item["content"] = ""
            out.append(item)
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": message["tool_call_id"], "content": _text(message.get("content"))})
        else:
            out.append({"role": role, "content": _text(message.get("content"))})
    return out


def anthropic_messages(messages: Any, *, adapter: str) -> tuple[list[str], list[dict[str, Any]]]:
    """An agent's messages in the Messages API format: ``(system texts, messages)``.

    Tool results are ``tool_result`` blocks of a user turn; consecutive user-side messages are merged
    into one turn, as the API wants turns to alternate.
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in _check(messages, adapter):
        role = message["role"]
        if role == "system":
            system.append(_text(message.get("content")))
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            if message.get("content"):
                blocks.append({"type": "text", "text": _text(message["content"])})
            for call in message.get("tool_calls") or []:
                blocks.append({"type": "tool_use", "id": call["id"], "name": call["name"], "input": _arguments_object(call.get("arguments"))})
            add("assistant", blocks or [{"type": "text", "text": ""}])
        elif role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": _text(message.get("content"))}])
        else:
            add("user", [{"type": "text", "text": _text(message.get("content"))}])
    return system, out

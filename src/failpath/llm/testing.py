"""A local stand-in for the OpenAI and Anthropic HTTP APIs, for tests and offline examples.

``FakeProvider`` is a stdlib HTTP server on ``127.0.0.1`` (an ephemeral port) that speaks both wire
protocols — OpenAI ``POST /v1/chat/completions`` and Anthropic ``POST /v1/messages`` — with the real
response shapes, error bodies and status codes. Point the official SDK clients at it::

    with FakeProvider() as provider:
        provider.enqueue("openai", openai_error(429, retry_after=1), openai_completion('{"a": 1}'))
        client = openai.OpenAI(base_url=provider.openai_base_url, api_key="test-key")

Replies are scripted per route (first in, first out); when a route's script is empty, the route's
``responder`` (a function of the recorded request) answers. A request nobody answers gets HTTP 418
and is listed in ``unanswered`` so a test can fail loudly. Every request is recorded in ``requests``.
Nothing here touches the network beyond the loopback interface.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Literal, Mapping, Sequence

__all__ = [
    "FakeProvider",
    "Reply",
    "Request",
    "Route",
    "openai_completion",
    "openai_error",
    "anthropic_message",
    "anthropic_error",
    "pseudo_tokens",
]

Route = Literal["openai", "anthropic"]

_PATHS: dict[str, Route] = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}


@dataclass(frozen=True)
class Request:
    """One request the server received: which API, the path, the headers (lower-case names), the JSON body."""

    route: Route | None
    path: str
    headers: Mapping[str, str]
    body: Any


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP reply: status, JSON body (or raw text), extra headers, and a delay before answering."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def after(self, seconds: float) -> Reply:
        """The same reply, sent only after ``seconds`` (to make a client time out)."""
        return Reply(self.status, self.body, self.headers, seconds)


Responder = Callable[[Request], Reply]


# --------------------------------------------------------------------------- reply builders

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


def pseudo_tokens(text: str) -> list[str]:
    """Split text into word, space and punctuation pieces: stand-in tokens whose concatenation is ``text``."""
    return _TOKEN.findall(text)


def openai_completion(
    content: str | None = None,
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    finish_reason: str = "stop",
    refusal: str | None = None,
    logprobs: float | Sequence[tuple[str, float]] | None = None,
    prompt_tokens: int = 20,
    completion_tokens: int | None = None,
    headers: Mapping[str, str] | None = None,
    tool_calls: Sequence[tuple[str, str, Any]] | None = None,
) -> Reply:
    """A ``chat.completion`` object as OpenAI returns it.

    ``tool_calls`` is ``[(call_id, tool_name, arguments)]`` (arguments as an object, or the exact JSON
    text, malformed if you like); the finish reason is then ``"tool_calls"`` unless given.

    ``logprobs`` is either one log probability given to every pseudo-token of ``content``, or the
    exact list of ``(token, logprob)`` pairs (then ``content`` defaults to the tokens joined).
    ``None`` means the response carries no log probabilities (``"logprobs": null``).
    """
    token_list: list[tuple[str, float]] | None = None
    if isinstance(logprobs, (int, float)):
        token_list = [(t, float(logprobs)) for t in pseudo_tokens(content or "")]
    elif logprobs is not None:
        token_list = [(str(t), float(lp)) for t, lp in logprobs]
        joined = "".join(t for t, _ in token_list)
        if content is None:
            content = joined
        elif content != joined:
            raise ValueError(f"logprob tokens join to {joined!r}, not to the content {content!r}")
    if completion_tokens is None:
        completion_tokens = len(token_list) if token_list else max(1, len(pseudo_tokens(content or refusal or "")))
    choice_logprobs = None
    if token_list is not None:
        choice_logprobs = {
            "content": [
                {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in token_list
            ],
            "refusal": None,
        }
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}
    if tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}
            for call_id, name, arguments in tool_calls
        ]
        if finish_reason == "stop":
            finish_reason = "tool_calls"
    body = {
        "id": "chatcmpl-local0001",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": choice_logprobs,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_local",
    }
    return Reply(200, body, dict(headers or {"x-request-id": "req_local0001"}))


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid 'messages': empty array. Expected an array with minimum length 1."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: test-key. You can find your API key at https://platform.openai.com/account/api-keys."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model `gpt-unknown` does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def openai_error(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,  # noqa: A002 - the wire field's name
    code: str | None = None,
    retry_after: float | str | None = None,
) -> Reply:
    """An error response as OpenAI sends it: ``{"error": {"message", "type", "param", "code"}}``."""
    default_type, default_code, default_message = _OPENAI_ERRORS.get(status, ("server_error", None, f"HTTP {status}"))
    headers = {"x-request-id": "req_local0001"}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    body = {
        "error": {
            "message": message or default_message,
            "type": type or default_type,
            "param": None,
            "code": code if code is not None else default_code,
        }
    }
    return Reply(status, body, headers)


def anthropic_message(
    text: str | None = None,
    *,
    model: str = "claude-haiku-4-5",
    stop_reason: str = "end_turn",
    input_tokens: int = 20,
    output_tokens: int | None = None,
    stop_details: Mapping[str, Any] | None = None,
    content: Sequence[Mapping[str, Any]] | None = None,
    tool_calls: Sequence[tuple[str, str, Mapping[str, Any]]] | None = None,
) -> Reply:
    """A ``message`` object as Anthropic returns it (one text block unless ``content`` is given).

    ``tool_calls`` is ``[(call_id, tool_name, input object)]``, appended as ``tool_use`` blocks; the stop
    reason is then ``"tool_use"`` unless given.
    """
    if content is None:
        content = [] if text is None else [{"type": "text", "text": text}]
    if tool_calls:
        content = [*content, *({"type": "tool_use", "id": i, "name": n, "input": dict(a)} for i, n, a in tool_calls)]
        if stop_reason == "end_turn":
            stop_reason = "tool_use"
    if output_tokens is None:
        output_tokens = max(1, len(pseudo_tokens(text or "")))
    body = {
        "id": "msg_local0001",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": dict(stop_details) if stop_details is not None else None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }
    return Reply(200, body, {"request-id": "req_local0001"})


_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "messages: at least one message is required"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: claude-unknown"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization of 50 requests per minute."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}


def anthropic_error(
    status: int,
    message: str | None = None,
    *,
    type: str | None = None,  # noqa: A002 - the wire field's name
    retry_after: float | str | None = None,
) -> Reply:
    """An error response as Anthropic sends it: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    default_type, default_message = _ANTHROPIC_ERRORS.get(status, ("api_error", f"HTTP {status}"))
    headers = {"request-id": "req_local0001"}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    body = {
        "type": "error",
        "error": {"type": type or default_type, "message": message or default_message},
        "request_id": "req_local0001",
    }
    return Reply(status, body, headers)


# --------------------------------------------------------------------------- the server


class FakeProvider:
    """A local HTTP server speaking the OpenAI and Anthropic APIs, answering from scripts or responders.

    Use it as a context manager (or call ``start``/``stop``). ``openai_base_url`` and
    ``anthropic_base_url`` are what to give the SDK clients as ``base_url``.
    """

    def __init__(
        self,
        *,
        openai: Responder | None = None,
        anthropic: Responder | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._initial_responders: dict[Route, Responder | None] = {"openai": openai, "anthropic": anthropic}
        self._responders = dict(self._initial_responders)
        self._scripts: dict[Route, deque[Reply]] = {"openai": deque(), "anthropic": deque()}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[Request] = []
        self._unanswered: list[Request] = []
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeProvider:
        """Bind the port and serve in a background thread."""
        if self._server is not None:
            return self
        handler = _make_handler(self)
        server = ThreadingHTTPServer(self._address, handler)
        server.daemon_threads = True
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; replies still waiting out a delay are abandoned."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The port the server listens on (bound at ``start``)."""
        if self._server is None:
            raise RuntimeError("FakeProvider is not started: use it in a `with` block or call start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI`` (it ends in ``/v1``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic``."""
        return self.url

    # ------------------------------------------------------------------ scripting and records

    def enqueue(self, route: Route, *replies: Reply) -> None:
        """Append replies to a route's script; each request to that route consumes the first one."""
        if route not in self._scripts:
            raise ValueError(f"route must be 'openai' or 'anthropic', not {route!r}")
        with self._lock:
            self._scripts[route].extend(replies)

    def set_responder(self, route: Route, responder: Responder | None) -> None:
        """Answer a route's requests with ``responder`` once its script is empty."""
        with self._lock:
            self._responders[route] = responder

    def reset(self) -> None:
        """Forget scripts, records and responders set since construction (the server keeps running)."""
        with self._lock:
            for script in self._scripts.values():
                script.clear()
            self._requests.clear()
            self._unanswered.clear()
            self._responders = dict(self._initial_responders)

    @property
    def requests(self) -> list[Request]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, route: Route) -> list[Request]:
        """The requests received on one route."""
        return [r for r in self.requests if r.route == route]

    @property
    def unanswered(self) -> list[Request]:
        """Requests that found neither a scripted reply nor a responder (answered with HTTP 418)."""
        with self._lock:
            return list(self._unanswered)

    def pending(self, route: Route) -> int:
        """How many scripted replies on ``route`` are still unused."""
        with self._lock:
            return len(self._scripts[route])

    def _answer(self, request: Request) -> Reply:
        with self._lock:
            self._requests.append(request)
            if request.route is None:
                return Reply(404, {"error": {"message": f"unknown path {request.path}", "type": "not_found"}})
            script = self._scripts[request.route]
            if script:
                return script.popleft()
            responder = self._responders[request.route]
            if responder is None:
                self._unanswered.append(request)
                return Reply(418, {"error": {"message": f"no reply scripted for {request.path}", "type": "test"}})
        return responder(request)


def _make_handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once, no delayed-ACK stall
        wbufsize = -1

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            path = self.path.split("?", 1)[0]
            request = Request(
                route=_PATHS.get(path),
                path=path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            reply = provider._answer(request)
            if reply.delay > 0 and provider._stopping.wait(reply.delay):
                return
            payload = reply.body if isinstance(reply.body, (bytes, str)) else json.dumps(reply.body)
            data = payload.encode() if isinstance(payload, str) else payload
            try:
                self.send_response(reply.status)
                content_type = "application/json" if not isinstance(reply.body, (bytes, str)) else "text/plain"
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            return

    return Handler

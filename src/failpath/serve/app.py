"""The review page as a Starlette application: sign in, the queue, one ticket, traces, check runs.

``create_app(store, secret_key=...)`` returns the ASGI application; ``failpath serve`` runs it with
uvicorn. Every page is rendered on the server from the Jinja2 templates next to this module
(autoescaped: chaos inputs carry markup and script by design) and every change is a plain form POST
carrying the session's CSRF token. The application reads and writes only through the
:class:`~failpath.store.Store` interface, so it serves a SQLite file and a PostgreSQL database alike.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from failpath.core import OUTCOME_KINDS, AlreadyResolved, FailpathError, StoreError, TicketNotFound, TicketStatus
from failpath.serve.access import REPORT_POLICY, csrf_ok, csrf_token, security_headers, token_digest
from failpath.watch.answers import answer_problems, schema_fields

__all__ = ["create_app", "QUEUE_PAGE_SIZE", "APPROVAL_STATE"]

_HERE = Path(__file__).parent

#: How many tickets (traces, runs) one page lists at most; filters narrow the rest.
QUEUE_PAGE_SIZE = 200

#: The failure state of a ticket that holds an agent's risky tool call: its reviewer approves or rejects.
APPROVAL_STATE = "risky_tool_call"

_TRACE_OUTCOMES = (*OUTCOME_KINDS, "raised")

#: What a page says after a change, named in its address (``?done=answered``): a fixed list, so a link
#: someone sends a reviewer cannot put words of its own on the page.
_DONE = {
    "answered": "Answered: the waiting caller receives it.",
    "passed": "Passed: the ticket is back in the queue.",
    "none-free": "No open ticket is free to claim.",
}
#: The queue's orders, both the store's (``Store.list_tickets(order=...)``): each reads one page from an
#: index, whatever the queue's size (see bench/README.md).
_SORTS = {"oldest": "oldest first", "deadline": "nearest deadline first"}


def _templates() -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=True,  # every template, whatever its name: nothing shown is ever markup
        undefined=jinja2.StrictUndefined,
    )
    from failpath.watch.timespec import format_duration, format_time

    environment.filters["when"] = lambda t: "-" if t is None else format_time(t)[:19].replace("T", " ")
    environment.filters["ago"] = lambda t, now: format_duration(max(0.0, now - t))
    environment.filters["pretty"] = _pretty
    return environment


def _pretty(value: Any) -> str:
    """A stored value as indented JSON text (shown escaped, in a <pre>)."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def create_app(store: Any, *, secret_key: str, lease: float = 900.0, https_only: bool = False) -> Starlette:
    """The review page over ``store`` (a :class:`~failpath.store.Store`, opened and closed by the caller).

    ``secret_key`` signs the session cookies: give every replica serving the same store the same key
    (at least 32 characters), or sign-ins last only as long as the process. ``lease`` is how long a
    claim made on the page holds a ticket (seconds). ``https_only`` marks the cookie Secure (behind TLS).
    """
    if not isinstance(secret_key, str) or len(secret_key) < 32:
        raise FailpathError("the session secret key must be at least 32 characters; generate one with `python -c \"import secrets; print(secrets.token_urlsafe(32))\"`")
    pages = _Pages(store, _templates(), lease)
    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/signin", pages.signin_form, methods=["GET"]),
        Route("/signin", pages.signin, methods=["POST"]),
        Route("/signout", pages.signout, methods=["POST"]),
        Route("/queue", pages.queue, methods=["GET"]),
        Route("/queue/claim", pages.claim_next, methods=["POST"]),
        Route("/tickets/{ticket_id}", pages.ticket, methods=["GET"]),
        Route("/tickets/{ticket_id}/claim", pages.claim, methods=["POST"]),
        Route("/tickets/{ticket_id}/release", pages.release, methods=["POST"]),
        Route("/tickets/{ticket_id}/answer", pages.answer, methods=["POST"]),
        Route("/tickets/{ticket_id}/reject", pages.reject, methods=["POST"]),
        Route("/traces", pages.traces, methods=["GET"]),
        Route("/traces/{trace_id}", pages.trace, methods=["GET"]),
        Route("/runs", pages.runs, methods=["GET"]),
        Route("/runs/{run_id}/report", pages.report, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=secret_key, session_cookie="failpath_session",
                   same_site="strict", https_only=https_only, max_age=12 * 3600),
    ]
    return Starlette(routes=routes, middleware=middleware)


class _SecurityHeaders:
    """ASGI middleware: every response (pages, redirects, refusals, the stylesheet) gets the security
    headers of :func:`~failpath.serve.access.security_headers`, unless it set its own (a run's report)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in security_headers().items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Pages:
    """The page handlers, sharing the store and the templates. Every handler but sign-in needs a reviewer."""

    def __init__(self, store: Any, templates: Any, lease: float):
        self.store = store
        self.templates = templates
        self.lease = lease

    # ------------------------------------------------------------------ helpers
    def _render(self, request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("reviewer", request.session.get("reviewer"))
        values.setdefault("error", None)
        values.setdefault("message", _DONE.get(request.query_params.get("done", "")))
        html = self.templates.get_template(name).render(csrf=csrf_token(request.session), now=time.time(), **values)
        return HTMLResponse(html, status_code=status)

    def _reviewer(self, request: Request) -> str | None:
        """The signed-in reviewer, checked against the store on every request (a removed one is out at once)."""
        name, digest = request.session.get("reviewer"), request.session.get("token")
        if not name or not digest or self.store.reviewer_for_token(digest) != name:
            return None
        return name

    def _refused(self, request: Request) -> Response:
        if request.method == "GET":
            return RedirectResponse("/signin", status_code=303)
        return self._render(request, "signin.html", status=403, reviewer=None, error="sign in first: this page needs a reviewer's token")

    async def _checked(self, request: Request) -> tuple[str | None, Any, Response | None]:
        """``(reviewer, form, refusal)`` for a POST: refused without a signed-in reviewer or the CSRF token."""
        form = await request.form()
        if not csrf_ok(request.session, form.get("csrf")):
            response = self._render(request, "signin.html", status=403, reviewer=None,
                                    error="the form's CSRF token is missing or stale: reload the page and submit it again")
            return None, form, response
        reviewer = await run_in_threadpool(self._reviewer, request)
        if reviewer is None:
            return None, form, self._refused(request)
        return reviewer, form, None

    # ------------------------------------------------------------------ sign in
    def home(self, request: Request) -> Response:
        return RedirectResponse("/queue" if self._reviewer(request) else "/signin", status_code=303)

    def signin_form(self, request: Request) -> Response:
        return self._render(request, "signin.html", reviewer=None)

    async def signin(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request.session, form.get("csrf")):
            return self._render(request, "signin.html", status=403, reviewer=None,
                                error="the form's CSRF token is missing or stale: reload the page and sign in again")
        token = str(form.get("token") or "")
        digest = token_digest(token)
        name = await run_in_threadpool(self.store.reviewer_for_token, digest) if token.strip() else None
        if name is None:
            return self._render(request, "signin.html", status=403, reviewer=None,
                                error="unknown token: paste the token `failpath serve add-reviewer NAME` printed for you")
        request.session.clear()  # a new session (and CSRF token) on every sign-in
        request.session.update(reviewer=name, token=digest)
        return RedirectResponse("/queue", status_code=303)

    async def signout(self, request: Request) -> Response:
        form = await request.form()
        if csrf_ok(request.session, form.get("csrf")):
            request.session.clear()
        return RedirectResponse("/signin", status_code=303)

    # ------------------------------------------------------------------ the queue
    def queue(self, request: Request) -> Response:
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._refused(request)
        params = request.query_params
        queue = params.get("queue") or None
        status = params.get("status") or TicketStatus.OPEN.value
        sort = params.get("sort") if params.get("sort") in _SORTS else "oldest"
        filters = {"queue": queue or "", "status": status, "sort": sort}
        if status not in {s.value for s in TicketStatus}:
            return self._render(request, "queue.html", status=400, tickets=[], more=False, filters=filters, sorts=_SORTS,
                                approval_state=APPROVAL_STATE, error=f"unknown status {status!r}: choose open, resolved or expired")
        # One more than a page: whether there are more is known without counting the queue.
        tickets = self.store.list_tickets(status=status, queue=queue, limit=QUEUE_PAGE_SIZE + 1, order=sort)
        shown = tickets[:QUEUE_PAGE_SIZE]
        return self._render(request, "queue.html", tickets=shown, more=len(tickets) > len(shown),
                            filters=filters, sorts=_SORTS, approval_state=APPROVAL_STATE)

    async def claim_next(self, request: Request) -> Response:
        reviewer, form, refusal = await self._checked(request)
        if refusal:
            return refusal
        queue = str(form.get("queue") or "") or None
        ticket = await run_in_threadpool(lambda: self.store.claim_ticket(reviewer, queue=queue, lease=self.lease))
        if ticket is None:
            return RedirectResponse("/queue?done=none-free", status_code=303)
        return RedirectResponse(f"/tickets/{ticket.ticket_id}", status_code=303)

    # ------------------------------------------------------------------ one ticket
    def ticket(
        self, request: Request, error: str | None = None, status: int = 200, draft: str | None = None,
        problems: tuple[str, ...] = (),
    ) -> Response:
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._refused(request)
        ticket_id = request.path_params["ticket_id"]
        try:
            ticket = self.store.get_ticket(ticket_id)
        except TicketNotFound as exc:
            return self._render(request, "missing.html", status=404, what=str(exc))
        trace = self.store.get_trace(ticket.trace_id) if ticket.trace_id else None
        resolutions = self.store.ticket_resolutions(ticket.ticket_id)
        now = time.time()
        held = ticket.claimed_by is not None and ticket.claimed_until is not None and ticket.claimed_until > now
        return self._render(
            request, "ticket.html", status=status, ticket=ticket, trace=trace, resolutions=resolutions,
            held_by=ticket.claimed_by if held else None, error=error,
            approval=ticket.state == APPROVAL_STATE,
            draft=draft if draft is not None else _pretty(ticket.output),
            fields=schema_fields(ticket.output_schema), problems=problems,
        )

    async def claim(self, request: Request) -> Response:
        reviewer, _, refusal = await self._checked(request)
        if refusal:
            return refusal
        ticket_id = request.path_params["ticket_id"]
        try:
            await run_in_threadpool(lambda: self.store.claim_ticket(reviewer, ticket_id=ticket_id, lease=self.lease))
        except (StoreError, FailpathError) as exc:  # held by another reviewer, resolved, or unknown
            return await run_in_threadpool(self.ticket, request, str(exc), 409)
        return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)

    async def release(self, request: Request) -> Response:
        reviewer, _, refusal = await self._checked(request)
        if refusal:
            return refusal
        ticket_id = request.path_params["ticket_id"]
        try:
            await run_in_threadpool(self.store.release_ticket, ticket_id, reviewer)
        except (StoreError, FailpathError) as exc:
            return await run_in_threadpool(self.ticket, request, str(exc), 409)
        return RedirectResponse("/queue?done=passed", status_code=303)

    async def answer(self, request: Request) -> Response:
        reviewer, form, refusal = await self._checked(request)
        if refusal:
            return refusal
        ticket_id = request.path_params["ticket_id"]
        text = str(form.get("answer") or "")
        note = str(form.get("note") or "").strip() or None
        try:
            value = json.loads(text)
        except ValueError as exc:
            message = f"the answer is not JSON ({exc}); write a string in double quotes, e.g. \"Boston\", or an object"
            return await run_in_threadpool(self.ticket, request, "The answer was not recorded.", 400, text, (message,))
        try:
            ticket = await run_in_threadpool(self.store.get_ticket, ticket_id)
        except TicketNotFound as exc:
            return self._render(request, "missing.html", status=404, what=str(exc))
        problems = answer_problems(ticket.output_schema, value)
        if problems:  # the ticket stays open; the form keeps what the reviewer wrote
            message = "The answer was not recorded: it does not match the policy's output schema (see below the answer)."
            return await run_in_threadpool(self.ticket, request, message, 400, text, tuple(problems))
        return await self._resolve(request, ticket.ticket_id, value, note, reviewer)

    async def reject(self, request: Request) -> Response:
        reviewer, form, refusal = await self._checked(request)
        if refusal:
            return refusal
        ticket_id = request.path_params["ticket_id"]
        note = str(form.get("note") or "").strip() or None
        try:
            ticket = await run_in_threadpool(self.store.get_ticket, ticket_id)
        except TicketNotFound as exc:
            return self._render(request, "missing.html", status=404, what=str(exc))
        # A held tool call is rejected by name; any other ticket's caller gets the policy's declared default.
        value = "reject" if ticket.state == APPROVAL_STATE else ticket.default
        return await self._resolve(request, ticket.ticket_id, value, note or "rejected: the model's output was refused", reviewer)

    async def _resolve(self, request: Request, ticket_id: str, value: Any, note: str | None, reviewer: str) -> Response:
        try:
            await run_in_threadpool(lambda: self.store.resolve_ticket(ticket_id, value, note=note, reviewer=reviewer))
        except AlreadyResolved as exc:
            return await run_in_threadpool(self.ticket, request, str(exc), 409)
        except TicketNotFound as exc:
            return self._render(request, "missing.html", status=404, what=str(exc))
        except StoreError as exc:
            return await run_in_threadpool(self.ticket, request, str(exc), 409)
        return RedirectResponse(f"/tickets/{ticket_id}?done=answered", status_code=303)

    # ------------------------------------------------------------------ traces
    def traces(self, request: Request) -> Response:
        if self._reviewer(request) is None:
            return self._refused(request)
        from failpath.watch.timespec import parse_time

        params = request.query_params
        filters = {k: params.get(k, "") for k in ("policy", "outcome", "state", "since", "until")}
        now = time.time()
        try:
            if filters["outcome"] and filters["outcome"] not in _TRACE_OUTCOMES:
                raise FailpathError(f"unknown outcome {filters['outcome']!r}; choose one of {', '.join(_TRACE_OUTCOMES)}")
            query = dict(
                policy=filters["policy"] or None,
                outcome=filters["outcome"] or None,
                state=filters["state"] or None,
                since=parse_time(filters["since"], option="since", now=now) if filters["since"] else None,
                until=parse_time(filters["until"], option="until", now=now) if filters["until"] else None,
            )
        except FailpathError as exc:
            return self._render(request, "traces.html", status=400, traces=[], total=0, filters=filters,
                                outcomes=_TRACE_OUTCOMES, error=str(exc))
        found = self.store.query_traces(**query, limit=QUEUE_PAGE_SIZE)
        total = self.store.count_traces(**query)
        return self._render(request, "traces.html", traces=found, total=total, filters=filters, outcomes=_TRACE_OUTCOMES)

    def trace(self, request: Request) -> Response:
        if self._reviewer(request) is None:
            return self._refused(request)
        try:
            found = self.store.get_trace(request.path_params["trace_id"])
        except StoreError as exc:  # an ambiguous prefix
            return self._render(request, "missing.html", status=404, what=str(exc))
        if found is None:
            return self._render(request, "missing.html", status=404, what=f"no trace has the id {request.path_params['trace_id']!r}")
        return self._render(request, "trace.html", trace=found)

    # ------------------------------------------------------------------ check runs
    def runs(self, request: Request) -> Response:
        if self._reviewer(request) is None:
            return self._refused(request)
        found = [run for kind in ("check", "agent_check") for run in self.store.list_runs(kind=kind, limit=QUEUE_PAGE_SIZE)]
        found.sort(key=lambda run: run.get("created") or 0, reverse=True)  # checks and agent checks, newest first
        rows = [_run_row(run) for run in found[:QUEUE_PAGE_SIZE]]
        return self._render(request, "runs.html", runs=rows)

    def report(self, request: Request) -> Response:
        if self._reviewer(request) is None:
            return self._refused(request)
        run_id = request.path_params["run_id"]
        try:
            run = self.store.get_run(run_id)
        except StoreError as exc:
            return self._render(request, "missing.html", status=404, what=str(exc))
        if run is None or run.get("kind") not in ("check", "agent_check"):
            return self._render(request, "missing.html", status=404, what=f"no check run has the id {run_id!r}")
        if not run.get("summary"):
            return self._render(request, "missing.html", status=404,
                                what=f"run {run['run_id']} has not finished: its report exists once the check ends")
        if run.get("kind") == "agent_check":  # its page runs no script
            from failpath.report import agent_html

            return HTMLResponse(agent_html.render(dict(run["summary"])), headers=security_headers(REPORT_POLICY))
        from failpath.report import html
        from failpath.report.rows import stream_request_rows

        # With the run's rows the report lists every failing case through its one script, allowed by hash.
        has_rows = bool(self.store.results_after(run["run_id"], 0, limit=1)[0])
        rows = stream_request_rows(self.store, run["run_id"]) if has_rows else None
        policy = REPORT_POLICY if rows is None else html.content_security_policy(True) + "; frame-ancestors 'none'"
        return HTMLResponse(html.render(dict(run["summary"]), rows), headers=security_headers(policy))


def _run_row(run: dict[str, Any]) -> dict[str, Any]:
    """One check run as the runs page shows it: identity, verdict and reasons, headline figures."""
    summary = run.get("summary") or {}
    verdict = summary.get("verdict") or {}
    if run.get("kind") == "agent_check":
        return _agent_check_row(run, summary, verdict)
    chaos = (summary.get("chaos") or {}).get("with_policy") or {}
    return {
        "run_id": run["run_id"],
        "created": run.get("created"),
        "finished": run.get("finished"),
        "name": summary.get("name") or (run.get("config") or {}).get("name") or "",
        "policy": summary.get("policy") or "",
        "verdict": ("READY TO SHIP" if verdict.get("ship") else "READY TO DEMO") if verdict else None,
        "reasons": [str(r.get("message", r)) if isinstance(r, dict) else str(r) for r in (verdict.get("reasons") or [])][:3],
        "n_cases": summary.get("n_cases"),
        "silent_failure_rate": chaos.get("silent_failure_rate"),
    }


def _agent_check_row(run: dict[str, Any], summary: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
    """An agent check as the runs page shows it: its tasks as the cases, silent failures over every family's trials."""
    figures = summary.get("figures") or {}
    families = (figures.get("silent_failures") or {}).values()
    trials = sum(row.get("trials", 0) for row in families)
    return {
        "run_id": run["run_id"],
        "created": run.get("created"),
        "finished": run.get("finished"),
        "name": f"agent check · {summary['agent']}" if summary.get("agent") else "agent check",
        "policy": "",
        "verdict": ("READY TO SHIP" if verdict.get("ship") else "READY TO DEMO") if verdict else None,
        "reasons": [f"{r.get('name')}: {r.get('figure')}" for r in (verdict.get("reasons") or []) if not r.get("passed")][:3],
        "n_cases": figures.get("tasks"),
        "silent_failure_rate": sum(row.get("silent", 0) for row in families) / trials if trials else None,
    }

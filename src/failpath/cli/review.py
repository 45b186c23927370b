"""``failpath review list|show|claim|release|resolve|expire|export``: the human review queue.

Exit codes: 0 done; 1 the ticket was resolved or expired already (someone else got there first:
nothing changed), or ``claim`` found no free ticket; 2 a usage or input error (bad ``--answer`` JSON, an
answer that does not match the ticket's output schema, unknown ticket id, bad duration, a ticket another reviewer holds, an output file that exists).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["register"]

_STORE = typer.Option(None, "--store", help="The store: a file, or a postgresql:// URL (default .failpath/failpath.db).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _ticket_dict(ticket: Any) -> dict[str, Any]:
    import dataclasses

    from failpath.store.jsonsafe import to_json_safe

    return to_json_safe(dataclasses.asdict(getattr(ticket, "ticket", ticket)))


def _ago(seconds: float) -> str:
    from failpath.watch.timespec import format_duration

    return format_duration(max(seconds, 1.0)) + " ago"


def _claimed(ticket: Any, now: float) -> bool:
    return ticket.status.value == "open" and ticket.claimed_until is not None and ticket.claimed_until > now


def _tickets_table(tickets: list[Any], title: str) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from failpath.cli.traces import printable

    now = time.time()
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False, collapse_padding=True)
    # Columns that would say the same thing on every row are left out.
    show_status = len({t.status for t in tickets}) > 1
    show_deadline = any(t.deadline is not None for t in tickets)
    show_by = any(t.reviewer or _claimed(t, now) for t in tickets)
    table.add_column("ticket", no_wrap=True)
    table.add_column("queue", max_width=16, overflow="fold")
    if show_status:
        table.add_column("status", no_wrap=True)
    table.add_column("created", no_wrap=True)
    if show_deadline:
        table.add_column("deadline", no_wrap=True)
    table.add_column("state", max_width=16, overflow="fold")
    table.add_column("conf", justify="right", no_wrap=True)
    if show_by:
        table.add_column("by", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("input", min_width=20, overflow="fold")
    for t in tickets:
        cells = [Text(t.ticket_id[:12]), Text(t.queue)]
        if show_status:
            cells.append(Text(t.status.value, style={"open": "yellow", "resolved": "green", "expired": "dim"}[t.status.value]))
        cells.append(Text(_ago(now - t.created)))
        if show_deadline:
            left = None if t.deadline is None else t.deadline - now
            cells.append(Text("-" if left is None else f"in {_ago(left)[:-4]}" if left > 0 else "passed"))
        cells += [
            Text(t.state or "-"),
            Text("-" if t.confidence is None else f"{t.confidence:.2f}"),
        ]
        if show_by:  # who resolved it, or who holds a live claim on it
            cells.append(Text(t.reviewer or "-") if t.status.value != "open" else
                         Text(f"{t.claimed_by} (claim)", style="cyan") if _claimed(t, now) else Text("-"))
        cells.append(Text(printable(t.input_preview, 80)))
        table.add_row(*cells)
    return table


def _dataset_columns(config: Path | None) -> dict[str, str | None] | None:
    """The column names of the check's dataset in ``config`` (or ./failpath.toml if there is one)."""
    from failpath.check.config import load_config

    path = config if config is not None else Path("failpath.toml")
    if config is None and not path.is_file():
        return None
    dataset = load_config(path).config.dataset
    columns = {"id": dataset.id, "input": dataset.input, "expected": dataset.expected, "tags": dataset.tags}
    shown = ", ".join(f"{field} as {name!r}" for field, name in columns.items() if name is not None)
    typer.echo(f"cases written with the column names of {path} [dataset]: {shown}", err=True)
    return columns


def _user() -> str | None:
    """The name of the user running the command, or None when the system does not say."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return None


def list_(
    status: str = typer.Option("open", "--status", help="open, resolved, expired, or all."),
    queue: Optional[str] = typer.Option(None, "--queue", help="Only tickets of this queue."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="At most this many, the first in --sort order."),
    sort: str = typer.Option("oldest", "--sort", help="oldest (first), or deadline (nearest first; those without one last)."),
    store: Optional[Path] = _STORE,
    json_output: bool = _JSON,
) -> None:
    """List review tickets, oldest first or by nearest deadline (open ones by default)."""
    from failpath.core import ConfigError, TicketStatus
    from failpath.cli._console import stdout_console
    from failpath.store.common import TICKET_ORDERS
    from failpath.watch._cli import existing_store, print_json, user_errors

    with user_errors():
        choices = [s.value for s in TicketStatus]
        if status != "all" and status not in choices:
            raise ConfigError(f"--status: unknown status {status!r}; choose one of {', '.join(choices)}, all")
        if sort not in TICKET_ORDERS:
            raise ConfigError(f"--sort: unknown order {sort!r}; choose one of {', '.join(TICKET_ORDERS)}")
        with existing_store(store) as opened:
            tickets = opened.list_tickets(status=None if status == "all" else status, queue=queue, limit=limit, order=sort)
    if json_output:
        print_json([_ticket_dict(t) for t in tickets])
        return
    out = stdout_console()
    out.print(_tickets_table(tickets, f"{len(tickets)} {'' if status == 'all' else status + ' '}ticket(s)"))


def show(
    ticket_id: str = typer.Argument(..., metavar="ID", help="The ticket id (a unique prefix works)."),
    store: Optional[Path] = _STORE,
    json_output: bool = _JSON,
) -> None:
    """Show one ticket: the input, what the model said, why it was escalated, and any answer."""
    import json

    from rich.table import Table
    from rich.text import Text

    from failpath.cli.traces import printable
    from failpath.cli._console import stdout_console
    from failpath.watch._cli import existing_store, print_json, user_errors
    from failpath.watch.timespec import format_time

    with user_errors():
        with existing_store(store) as opened:
            ticket = opened.get_ticket(ticket_id)
            attempts = opened.ticket_resolutions(ticket.ticket_id)
    if json_output:
        print_json({**_ticket_dict(ticket), "resolutions": attempts})
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = [
        ("ticket", ticket.ticket_id),
        ("queue", ticket.queue),
        ("status", ticket.status.value),
        ("created", format_time(ticket.created)),
        ("deadline", "-" if ticket.deadline is None else format_time(ticket.deadline)),
        ("default", json.dumps(ticket.default, ensure_ascii=False)),
        ("policy", ticket.policy),
        ("trace", ticket.trace_id or "-"),
        ("state", ticket.state or "-"),
        ("input", printable(ticket.input_raw if ticket.input_raw is not None else ticket.input_preview, 4000)
         + ("" if ticket.input_raw is not None else "  (redacted preview)")),
        ("model output", printable(json.dumps(ticket.output, ensure_ascii=False, default=str), 4000)),
        ("confidence", "-" if ticket.confidence is None else f"{ticket.confidence:.4f}"),
    ]
    rows += _answer_rows(ticket)
    if ticket.resolved_at is not None or ticket.answer is not None:
        rows += [
            ("answer", printable(json.dumps(ticket.answer, ensure_ascii=False, default=str), 4000)),
            ("note", ticket.note or "-"),
            ("reviewer", ticket.reviewer or "-"),
            ("resolved", "-" if ticket.resolved_at is None else format_time(ticket.resolved_at)),
        ]
    if ticket.status.value == "open" and ticket.claimed_until is not None and ticket.claimed_until > time.time():
        rows.append(("claimed", f"by {ticket.claimed_by} until {format_time(ticket.claimed_until)}"))
    for attempt in attempts:
        rows.append((
            "resolution",
            f"{format_time(attempt['at'])} by {attempt['reviewer'] or 'an unnamed reviewer'}: "
            + printable(json.dumps(attempt["answer"], ensure_ascii=False, default=str), 200)
            + ("" if attempt["accepted"] else "  (refused: resolved already)"),
        ))
    for key, value in rows:
        grid.add_row(Text(key), Text(value))
    stdout_console().print(grid)


def _answer_rows(ticket: Any) -> list[tuple[str, str]]:
    """What an answer must be, when the ticket carries an output schema: its fields, or the schema itself."""
    import json

    from failpath.watch.answers import schema_fields

    if ticket.output_schema is None:
        return []
    fields = schema_fields(ticket.output_schema)
    if not fields:
        return [("answer schema", json.dumps(ticket.output_schema, ensure_ascii=False)[:400])]
    return [
        ("answer field", f"{f.name}: {f.type}" + ("" if f.required else " (optional)") + (f" - {f.description}" if f.description else ""))
        for f in fields
    ]


def claim(
    ticket_id: Optional[str] = typer.Argument(None, metavar="[ID]", help="A ticket to claim (default: the oldest free one)."),
    queue: Optional[str] = typer.Option(None, "--queue", help="Take the oldest free ticket of this queue."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Who claims it (default: your user name)."),
    lease: str = typer.Option("15m", "--for", help="How long the claim lasts (10m, 1h); then the ticket returns to the queue."),
    store: Optional[Path] = _STORE,
    json_output: bool = _JSON,
) -> None:
    """Claim a ticket to work on, so other reviewers are given other tickets. Exits 1 when none is free."""
    from failpath.core import AlreadyResolved
    from failpath.watch._cli import error, existing_store, print_json, user_errors
    from failpath.watch.timespec import format_time, parse_duration

    with user_errors():
        seconds = parse_duration(lease, option="--for")
        who = reviewer or _user()
        if not who:
            raise error("--reviewer: give your name (it could not be read from the system)")
        with existing_store(store) as opened:
            try:
                ticket = opened.claim_ticket(who, ticket_id=ticket_id, queue=queue, lease=seconds)
            except AlreadyResolved as exc:
                raise error(f"{exc}; nothing changed", code=1) from None
    if ticket is None:
        raise error("no free ticket" + (f" in queue {queue!r}" if queue else "") + " to claim", code=1)
    if json_output:
        print_json(_ticket_dict(ticket))
        return
    typer.echo(f"claimed ticket {ticket.ticket_id} in queue {ticket.queue!r} for {who} until {format_time(ticket.claimed_until)}")


def release(
    ticket_id: str = typer.Argument(..., metavar="ID", help="The ticket id (a unique prefix works)."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Who holds the claim (default: your user name)."),
    store: Optional[Path] = _STORE,
) -> None:
    """Give back your claim on a ticket: it returns to the queue at once."""
    from failpath.watch._cli import existing_store, user_errors

    with user_errors():
        with existing_store(store) as opened:
            ticket = opened.release_ticket(ticket_id, reviewer or _user() or "")
    typer.echo(f"released ticket {ticket.ticket_id}")


def resolve(
    ticket_id: str = typer.Argument(..., metavar="ID", help="The ticket id (a unique prefix works)."),
    answer: str = typer.Option(..., "--answer", help='The right answer, as JSON: \'"Boston"\', \'{"city": "Boston"}\', 42.'),
    note: Optional[str] = typer.Option(None, "--note", help="Why, for the record."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Who decided (default: your user name)."),
    store: Optional[Path] = _STORE,
) -> None:
    """Resolve a ticket with the right answer. A ticket resolves once: a second attempt exits 1, naming who resolved it.

    When the ticket carries the policy's output schema, the answer must match it: a mismatch exits 2,
    naming each field that is wrong, and the ticket stays open (`review show` lists the fields).
    """
    from failpath.core import AlreadyResolved
    from failpath.watch._cli import error, existing_store, user_errors
    from failpath.watch.review import check_answer, parse_answer

    with user_errors():
        value = parse_answer(answer)
        if reviewer is None:
            reviewer = _user()
        with existing_store(store) as opened:
            check_answer(opened.get_ticket(ticket_id), value)
            try:
                ticket = opened.resolve_ticket(ticket_id, value, note=note, reviewer=reviewer)
            except AlreadyResolved as exc:
                raise error(f"{exc}; nothing changed", code=1) from None
    typer.echo(f"resolved ticket {ticket.ticket_id} in queue {ticket.queue!r}" + (f" as {reviewer}" if reviewer else ""))


def expire(
    older_than: str = typer.Option(..., "--older-than", help="Expire open tickets created longer ago than this (24h, 7d)."),
    store: Optional[Path] = _STORE,
    json_output: bool = _JSON,
) -> None:
    """Expire open tickets older than --older-than, and those past their deadline; they end in their default."""
    from failpath.watch._cli import existing_store, print_json, user_errors
    from failpath.watch.timespec import parse_duration

    with user_errors():
        seconds = parse_duration(older_than, option="--older-than")
        with existing_store(store) as opened:
            expired = opened.expire_tickets(older_than=seconds)
    if json_output:
        print_json([_ticket_dict(t) for t in expired])
        return
    typer.echo(f"expired {len(expired)} ticket(s)" + (": " + ", ".join(t.ticket_id[:12] for t in expired) if expired else ""))


def export(
    format_: str = typer.Option("jsonl", "--format", help="Output format: jsonl (one case per line)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file (default: stdout)."),
    queue: Optional[str] = typer.Option(None, "--queue", help="Only tickets of this queue."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
    config: Optional[Path] = typer.Option(
        None, "--config", metavar="PATH",
        help="The failpath.toml whose [dataset] column names the cases get (default: ./failpath.toml when it exists).",
    ),
    store: Optional[Path] = _STORE,
) -> None:
    """Write resolved tickets as labeled cases for the next `failpath check`, under the column names of
    its dataset (the dataset table of failpath.toml; id, input, expected, tags without one), so the file can be
    listed in dataset.paths as it is."""
    import io
    import sys

    from failpath.core import ConfigError
    from failpath.watch._cli import existing_store, user_errors, warn
    from failpath.watch.review import export_cases

    with user_errors():
        if format_ != "jsonl":
            raise ConfigError(f"--format: {format_!r} is not supported; use --format jsonl")
        if output is not None and output.exists() and not force:
            raise ConfigError(f"--output: {output} exists; pass --force to overwrite it, or choose another path")
        columns = _dataset_columns(config)
        buffer = io.StringIO()
        with existing_store(store) as opened:
            result = export_cases(buffer, store=opened, queue=queue, columns=columns)
        if output is None:
            sys.stdout.write(buffer.getvalue())
        else:
            folder = output.parent if str(output.parent) else Path(".")
            if not folder.is_dir():
                raise ConfigError(f"--output: the folder {folder} does not exist; create it or choose another path")
            try:
                _write_whole(output, folder, buffer.getvalue())
            except OSError as exc:
                raise ConfigError(
                    f"--output: cannot write {output} ({exc.strerror or exc}); "
                    "choose a folder you can write to, or write to stdout without --output"
                ) from None
    if result.warning:
        warn(result.warning)
    where = "stdout" if output is None else str(output)
    typer.echo(f"exported {result.written} case(s) to {where}", err=True)


def _write_whole(output: Path, folder: Path, text: str) -> None:
    """Write ``text`` to ``output`` through a temporary file in ``folder`` renamed over it: a failed export
    never leaves half a file."""
    import os
    import tempfile

    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def register(app: typer.Typer) -> None:
    """Add the ``review`` command group to the ``failpath`` app."""
    review = typer.Typer(
        name="review",
        help="The human review queue: list, show, claim, release, resolve and expire tickets; export answers as cases.",
        no_args_is_help=True,
    )
    app.add_typer(review, name="review")

    review.command("list")(list_)
    review.command("show")(show)
    review.command("claim")(claim)
    review.command("release")(release)
    review.command("resolve")(resolve)
    review.command("expire")(expire)
    review.command("export")(export)

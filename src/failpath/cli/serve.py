"""``failpath serve``: run the review page; ``serve add-reviewer|remove-reviewer|reviewers``: who may sign in.

The page binds to 127.0.0.1 unless ``--host`` says otherwise. Sessions are signed with
``--secret-key`` (or ``FAILPATH_SERVE_SECRET``): give every replica the same key; without one, a
random key is made and sign-ins last as long as the process. Needs ``pip install "failpath[serve]"``.
Exit codes: 0 done, 2 a usage or store error (a reviewer name taken, the extra not installed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]

_STORE = typer.Option(None, "--store", help="The store: a file, or a postgresql:// URL (default .failpath/failpath.db).")


def _need_extra() -> None:
    import importlib.util

    missing = [m for m in ("starlette", "multipart", "itsdangerous", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        from failpath.core import ConfigError

        raise ConfigError(f"failpath serve needs {', '.join(missing)}: pip install \"failpath[serve]\"")


def serve_page(
    ctx: typer.Context,
    store: Optional[Path] = _STORE,
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on (0.0.0.0 to accept other machines)."),
    port: int = typer.Option(8765, "--port", help="The port to listen on."),
    secret_key: Optional[str] = typer.Option(
        None, "--secret-key", envvar="FAILPATH_SERVE_SECRET",
        help="Signs the session cookies (32+ characters; the same on every replica). Default: random per process.",
    ),
    lease: str = typer.Option("15m", "--lease", help="How long a claim on the page holds a ticket (10m, 1h)."),
    https_only: bool = typer.Option(False, "--https-only", help="Send the session cookie only over HTTPS (behind TLS)."),
) -> None:
    """Serve the review page (sign in with a token from `failpath serve add-reviewer NAME`)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = store
        return
    import secrets

    from failpath.store.opening import open_store, store_location
    from failpath.watch._cli import user_errors
    from failpath.watch.timespec import parse_duration

    with user_errors():
        _need_extra()
        seconds = parse_duration(lease, option="--lease")
        import uvicorn

        from failpath.serve import create_app

        with open_store(store_location(store)) as opened:
            if not opened.list_reviewers():
                typer.secho("no reviewer can sign in yet: add one with `failpath serve add-reviewer NAME`", err=True, fg=typer.colors.YELLOW)
            application = create_app(opened, secret_key=secret_key or secrets.token_urlsafe(32), lease=seconds, https_only=https_only)
            typer.echo(f"serving the review page of {opened.path} on http://{host}:{port}/ (Ctrl-C stops it)")
            uvicorn.run(application, host=host, port=port, log_level="warning", server_header=False)

def add_reviewer(ctx: typer.Context, name: str = typer.Argument(..., help="The reviewer's name, as resolutions will record it."), store: Optional[Path] = _STORE) -> None:
    """Add a reviewer and print their sign-in token, once: the store keeps only its SHA-256 digest."""
    from failpath.serve.access import new_token, token_digest
    from failpath.store.opening import open_store, store_location
    from failpath.watch._cli import user_errors

    token = new_token()
    with user_errors():
        with open_store(store_location(store or ctx.obj)) as opened:
            opened.add_reviewer(name, token_digest(token))
    typer.echo(f"added reviewer {name}; their sign-in token (shown only now, give it to them privately):")
    typer.echo(token)

def remove_reviewer(ctx: typer.Context, name: str = typer.Argument(..., help="The reviewer to remove."), store: Optional[Path] = _STORE) -> None:
    """Remove a reviewer: their token and open sessions stop working at once."""
    from failpath.store.opening import open_store, store_location
    from failpath.watch._cli import error, user_errors

    with user_errors():
        with open_store(store_location(store or ctx.obj)) as opened:
            removed = opened.remove_reviewer(name)
    if not removed:
        raise error(f"no reviewer is named {name!r}; `failpath serve reviewers` lists them")
    typer.echo(f"removed reviewer {name}")

def reviewers(ctx: typer.Context, store: Optional[Path] = _STORE) -> None:
    """List the reviewers who may sign in (names and when they were added; tokens are never shown again)."""
    from failpath.store.opening import open_store, store_location
    from failpath.watch._cli import user_errors
    from failpath.watch.timespec import format_time

    with user_errors():
        with open_store(store_location(store or ctx.obj)) as opened:
            rows = opened.list_reviewers()
    for row in rows:
        typer.echo(f"{row['name']}\tadded {format_time(row['created'])}")
    if not rows:
        typer.echo("no reviewers yet: add one with `failpath serve add-reviewer NAME`")


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command group to the ``failpath`` app."""
    serve = typer.Typer(
        name="serve",
        help="The review web page: answer escalations, search traces, read check runs. Subcommands manage reviewers.",
        invoke_without_command=True,
    )
    app.add_typer(serve, name="serve")
    serve.callback()(serve_page)
    serve.command("add-reviewer")(add_reviewer)
    serve.command("remove-reviewer")(remove_reviewer)
    serve.command("reviewers")(reviewers)

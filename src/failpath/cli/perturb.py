"""``failpath perturb TEXT``: show the variants a chaos suite makes of one input, and what made each.

``failpath perturb --list`` lists every perturbation with its family and label contract.
``failpath perturb --audit CASES`` shows what each perturbation of the suite does to a dataset
(:mod:`failpath.cli.audit`).
Exit codes: 0 done, 2 a usage or input error (unknown suite or perturbation, bad JSON record, no text,
a dataset that cannot be read).
"""

from __future__ import annotations

import sys
import unicodedata
from typing import Any, List, Optional

import typer

__all__ = ["register", "visible"]


def visible(text: str) -> str:
    """``text`` with invisible and control characters written as escapes (``\\u200b``, ``\\x00``, ``\\t``)."""
    out = []
    for ch in text:
        if ch in "\t\n\r":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r"}[ch])
        elif ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return visible(value)
    import json

    return visible(json.dumps(value, ensure_ascii=False, default=str))


def _edit_summary(variant: Any) -> str:
    parts = []
    for e in variant.edits:
        where = f"[{e.field}]" if e.field is not None else ""
        where += f"#{e.token}" if e.token is not None else ""
        if e.before is not None and e.after is not None and isinstance(e.before, str) and isinstance(e.after, str):
            before, after = visible(e.before), visible(e.after)
            if len(before) > 40 or len(after) > 40:
                parts.append(f"{e.kind}{where}")
            else:
                parts.append(f"{e.kind}{where} {before!r}→{after!r}")
        elif e.after is not None and isinstance(e.after, str) and len(e.after) <= 40:
            parts.append(f"{e.kind}{where} +{visible(e.after)!r}")
        else:
            parts.append(f"{e.kind}{where}")
    return "; ".join(parts)


def _list_perturbations(json_output: bool) -> None:
    import json

    from rich.table import Table

    from failpath.chaos import SUITES, LabelContract
    from failpath.cli._console import stdout_console
    from failpath.chaos.base import is_token_aligned
    from failpath.core import Case

    plain = Case("plain", "123 Main St", "expected")
    aligned = Case("aligned", "123 Main St", [("123", "AddressNumber"), ("Main", "StreetName"), ("St", "StreetNamePostType")])
    rows = []
    for suite in SUITES.values():
        for p in suite.perturbations:
            on_plain = p.contract_for(plain).value
            on_tokens = p.contract_for(aligned).value
            assert is_token_aligned(aligned)
            rows.append(
                {
                    "name": p.name,
                    "suite": suite.name,
                    "family": p.family,
                    "contract": p.contract.value,
                    "contract_plain": on_plain,
                    "contract_token_aligned": on_tokens,
                    "description": p.description.replace("``", ""),
                }
            )
    if json_output:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title="failpath perturbations", show_lines=False)
    console = stdout_console()
    keys = ("name", "family", "contract", "contract_plain", "contract_token_aligned")
    widths = [max([len(column)] + [len(str(row[key])) for row in rows])
              for column, key in zip(("perturbation", "family", "contract", "plain / record", "token-aligned"), keys)]
    # Names keep their whole width and the description wraps to what is left, when that leaves room for
    # it; on a narrower console every column folds (a name goes on over two lines, never cut).
    roomy = sum(widths) + 3 * 6 + 1 + 24 <= console.width
    for column, width in zip(("perturbation", "family", "contract", "plain / record", "token-aligned"), widths):
        table.add_column(column, overflow="fold", min_width=width if roomy else None)
    table.add_column("what it does", overflow="fold")
    style = {LabelContract.UNCHANGED.value: "green", LabelContract.TRANSFORMED.value: "cyan", LabelContract.NOT_PRESERVED.value: "yellow"}
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            f"[{style[row['contract']]}]{row['contract']}[/]",
            row["contract_plain"],
            row["contract_token_aligned"],
            row["description"],
        )
    console.print(table)


def _chosen_suite(suite: str, only: list[str] | None) -> Any:
    """The suite named ``suite``, cut down to the perturbations named in ``only`` (``--perturbation``)."""
    from failpath.chaos import Suite, get_suite
    from failpath.cli import fail
    from failpath.core import ConfigError

    try:
        chosen = get_suite(suite)
        if only:
            unknown = [name for name in only if name not in chosen.names]
            if unknown:
                raise ConfigError(f"suite {chosen.name!r} has no perturbation {unknown[0]!r}; it has: {', '.join(chosen.names)}")
            chosen = Suite(chosen.name, chosen.family, tuple(p for p in chosen.perturbations if p.name in only), chosen.variants_per_case)
    except ConfigError as exc:
        raise fail(str(exc))
    return chosen


def _print_variants(variants: list[Any], chosen: Any, case: Any, seed: int) -> None:
    """The variants as a table; or, when there are none, why each perturbation of the suite did not apply."""
    from rich.table import Table
    from rich.text import Text

    from failpath.cli._console import stdout_console

    console = stdout_console()
    if not variants:
        reasons = chosen.why_not(case, seed)
        console.print(Text(f"no perturbation of suite {chosen.name!r} applies to this input:"))
        for name, reason in reasons.items():
            console.print(Text(f"  {name}: {reason}"))
        return
    table = Table(title=Text(f"{len(variants)} variants · suite {chosen.name} · seed {seed}"), show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("perturbation")
    table.add_column("contract")
    table.add_column("variant", overflow="fold")
    table.add_column("edits", overflow="fold")
    for i, v in enumerate(variants, 1):
        shown = _show(v.input)
        if len(shown) > 300:
            shown = shown[:300] + f"… ({len(shown)} characters)"
        table.add_row(str(i), Text(v.perturbation), Text(v.contract.value), Text(shown), Text(_edit_summary(v)))
    console.print(table)


def perturb(
    text: Optional[str] = typer.Argument(None, help="The input to perturb ('-' reads it from stdin)."),
    suite: str = typer.Option("realistic", "--suite", "-s", help="Suite: hostile, realistic, fault, a registered one, or module:attr naming a Suite (an importable module)."),
    n: int = typer.Option(10, "-n", "--count", min=1, help="How many variants to show."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same variants."),
    only: Optional[List[str]] = typer.Option(None, "--perturbation", "-p", help="Only these perturbations of the suite (repeatable)."),
    record: bool = typer.Option(False, "--record", help="TEXT is a JSON object (a record), not text."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON record per variant instead of a table (with --audit: one JSON document)."),
    list_all: bool = typer.Option(False, "--list", help="List every perturbation with its family and label contract."),
    audit: Optional[str] = typer.Option(None, "--audit", metavar="CASES", help="Audit the suite over a dataset (JSONL or CSV): per perturbation, variants made, cases not applicable, contracts, sample variants with the expected answer before and after; names perturbations that made nothing."),
    samples: int = typer.Option(3, "--samples", min=0, help="With --audit: sample variants shown per perturbation."),
) -> None:
    """Show the variants a chaos suite makes of TEXT, with the perturbation that made each; or, with
    --audit CASES, what each perturbation of the suite does to a dataset."""
    import json

    from failpath.cli import fail
    from failpath.core import Case

    if list_all:
        _list_perturbations(json_output)
        return
    if audit is not None:
        from failpath.cli.audit import run_audit

        run_audit(audit, suite, seed, samples, json_output, only, show=_show, edit_summary=_edit_summary)
        return
    if text is None:
        raise fail("give the TEXT to perturb (or '-' to read stdin), or --list to see the perturbations")
    if text == "-":
        text = sys.stdin.read()
    value: Any = text
    if record:
        from failpath.store.jsonsafe import strict_loads

        try:
            value = strict_loads(text)
        except json.JSONDecodeError as exc:
            raise fail(f"--record: TEXT is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); write a JSON object such as '{{\"city\": \"Chicago\"}}'")
        except ValueError as exc:
            raise fail(f"--record: {exc}")
        if not isinstance(value, dict):
            raise fail(f"--record: TEXT must be a JSON object, got a JSON {type(value).__name__}")

    from failpath.chaos import derive_rng

    chosen = _chosen_suite(suite, only)
    case = Case(id="input", input=value, expected=None)
    # Draw about two rounds, then keep n of them spread over the suite (the same for the same seed).
    pool = chosen.variants(case, seed, n=max(n, 2 * len(chosen.perturbations)))
    if len(pool) > n:
        keep = sorted(derive_rng(seed, "perturb-cli").sample(range(len(pool)), n))
        pool = [pool[i] for i in keep]
    variants = pool
    if json_output:
        for v in variants:
            row = v.to_dict()
            row["seed"] = seed
            row["suite"] = chosen.name
            typer.echo(json.dumps(row, ensure_ascii=False, default=str))
        return

    _print_variants(variants, chosen, case, seed)


def register(app: typer.Typer) -> None:
    """Add the ``perturb`` command to the ``failpath`` app."""
    app.command("perturb")(perturb)

"""``failpath perturb --audit CASES``: what each perturbation of a suite does to your dataset.

The logic is :func:`failpath.chaos.audit.audit_suite`; this module reads the cases and prints its record.
The ``perturb`` command passes in how it shows a value and a variant's edits, so both read alike.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

__all__ = ["run_audit"]


def run_audit(
    path: str,
    suite: str,
    seed: int,
    samples: int,
    json_output: bool,
    only: Sequence[str] | None,
    *,
    show: Callable[[Any], str],
    edit_summary: Callable[[Any], str],
) -> None:
    """Audit ``suite`` over the cases in ``path`` and print the result (a table, or one JSON document).

    ``show(value)`` writes an input or expected value on one line; ``edit_summary(variant)`` the edits.
    """
    import typer

    from failpath.chaos import Suite, get_suite
    from failpath.chaos.audit import audit_suite
    from failpath.check.datasets import load_cases
    from failpath.cli import fail
    from failpath.core import ConfigError, FailpathError

    try:
        cases = load_cases(path)
        chosen = get_suite(suite)
        if only:
            unknown = [name for name in only if name not in chosen.names]
            if unknown:
                raise ConfigError(f"suite {chosen.name!r} has no perturbation {unknown[0]!r}; it has: {', '.join(chosen.names)}")
            chosen = Suite(chosen.name, chosen.family, tuple(p for p in chosen.perturbations if p.name in only), chosen.variants_per_case)
        result = audit_suite(cases, chosen, seed=seed, samples=samples)
    except FailpathError as exc:
        raise fail(f"--audit: {exc}")
    if json_output:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
        return
    _render(result, show, edit_summary)


def _short(show: Callable[[Any], str], value: Any, limit: int = 160) -> str:
    shown = show(value)
    return shown if len(shown) <= limit else shown[:limit] + f"… ({len(shown)} characters)"


def _expected_change(show: Callable[[Any], str], sample: Any) -> str:
    """The expected answer before → after; for (token, label) pairs only the pairs that changed."""
    before, after = sample.expected_before, sample.expected_after
    if not sample.expected_changed:
        return "(the same)" if _pairs(before) else f"{_short(show, before, 80)} (the same)"
    if _pairs(before) and _pairs(after) and len(before) == len(after):
        changed = [
            f"{_short(show, a[0], 30)}/{a[1]} → {_short(show, b[0], 30)}/{b[1]}" for a, b in zip(before, after) if tuple(a) != tuple(b)
        ]
        return "; ".join(changed)
    return f"{_short(show, before, 80)} → {_short(show, after, 80)}"


def _pairs(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value)


def _render(result: Any, show: Callable[[Any], str], edit_summary: Callable[[Any], str]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    console.print(Text(f"audit · suite {result.suite} · {result.n_cases} cases · seed {result.seed}", style="bold"))
    for p in result.perturbations:
        if p.other_input_kind:
            continue  # listed once at the end
        contracts = ", ".join(f"{k} {v}" for k, v in p.contracts.items()) or "none"
        head = Text(f"\n{p.name}", style="bold yellow" if p.no_op else "bold")
        head.append(
            f"  declared {p.declared_contract} · {p.n_variants} variants from {p.n_cases_varied} of {p.n_cases} cases"
            f" · not applicable to {p.n_not_applicable} · variants by contract: {contracts}"
        )
        console.print(head)
        if p.reasons and p.n_not_applicable:
            reason, count = next(iter(p.reasons.items()))
            more = f" (+{len(p.reasons) - 1} other reasons)" if len(p.reasons) > 1 else ""
            console.print(Text(f"  not applicable: {reason} ×{count}{more}"))
        if not p.samples:
            continue
        table = Table(show_lines=True, box=None, padding=(0, 1))
        for column in ("case", "contract", "input before → after", "expected before → after", "edits"):
            table.add_column(column, overflow="fold")
        for s in p.samples:
            table.add_row(
                Text(s.case_id),
                Text(s.contract),
                Text(f"{_short(show, s.input_before)}\n→ {_short(show, s.input_after)}"),
                Text(_expected_change(show, s)),
                Text(edit_summary(s)),
            )
        console.print(table)
    if result.other_input_kind:
        console.print(Text(f"\nnot for this kind of input: {', '.join(result.other_input_kind)}", style="dim"))
    if result.no_ops:
        console.print(
            Text(
                f"\nmade nothing for this data: {', '.join(result.no_ops)} (they test nothing here; "
                "leave them out with Suite.without, or give them tables that fit)",
                style="yellow",
            )
        )

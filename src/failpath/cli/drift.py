"""``failpath drift --baseline RUN_ID``: has production moved away from the check run the policy was calibrated on?

Exit codes (to drive an alert): 0 nothing moved beyond its threshold, 1 at least one monitored figure
moved, 2 bad input (unknown run id, a run without a baseline, no traces in the window, a bad option).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``drift`` command to the ``failpath`` app."""

    @app.command("drift")
    def drift(
        baseline: str = typer.Option(..., "--baseline", help="The id of the `failpath check` run the policy was calibrated on (a unique prefix works)."),
        since: str = typer.Option("24h", "--since", help="Production traces from then on: 1h (one hour ago), 2d, or an ISO time."),
        until: Optional[str] = typer.Option(None, "--until", help="Production traces before then (default: now)."),
        policy: Optional[str] = typer.Option(None, "--policy", help="The policy whose traces to read (default: the baseline's)."),
        alpha: float = typer.Option(0.01, "--alpha", help="Family-wise error rate of the whole report (Holm)."),
        min_coverage_change: float = typer.Option(0.05, "--min-coverage-change", help="Smallest move of the answer rate worth an alarm (0.05 = 5 points)."),
        min_ks: float = typer.Option(0.10, "--min-ks", help="Smallest KS distance between the confidence distributions worth an alarm."),
        min_rate_change: float = typer.Option(0.02, "--min-rate-change", help="Smallest move of a failure-state or outcome rate worth an alarm."),
        store: Optional[Path] = typer.Option(None, "--store", help="The store: a file, or a postgresql:// URL (default .failpath/failpath.db)."),
        json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Compare production traces with a check run's baseline: answer rate, confidence, failure states.

        Exits 1 when a monitored figure moved beyond its threshold, 0 when none did, 2 on bad input.
        """
        from failpath.cli._console import stdout_console
        from failpath.watch._cli import existing_store, print_json, time_option, user_errors
        from failpath.watch.driftcheck import DriftThresholds, drift as run_drift

        now = time.time()
        with user_errors():
            thresholds = DriftThresholds(
                alpha=alpha,
                min_coverage_change=min_coverage_change,
                min_ks_distance=min_ks,
                min_rate_change=min_rate_change,
            )
            since_s = time_option(since, "--since", now)
            until_s = time_option(until, "--until", now)
            with existing_store(store) as opened:
                report = run_drift(opened, baseline, since=since_s, until=until_s, policy=policy, thresholds=thresholds)
        if json_output:
            print_json(report.to_dict())
        else:
            stdout_console().print(report)
        raise typer.Exit(1 if report.alarm else 0)

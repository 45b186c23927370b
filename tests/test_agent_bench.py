"""The agent-overhead benchmark runs and reports every variant (figures are read, never asserted on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "agent_overhead.py"


def test_the_agent_benchmark_reports_each_variant_per_step():
    done = subprocess.run([sys.executable, str(BENCH), "--runs", "3", "--calls", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["steps_per_run"] == 5 and result["runs"] == 3
    variants = result["variants"]
    assert {"bare", "failpath/nostore", "failpath"} <= set(variants)
    assert variants["bare"]["overhead_per_step_ms"] == 0.0
    for figures in variants.values():
        assert figures["per_step_ms"] > 0 and figures["median_run_ms"] >= figures["per_step_ms"]

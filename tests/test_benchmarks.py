"""The benchmark itself must not rot: a smoke-sized run of every scenario (no targets judged) in CI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SCENARIO_MODULES, _load
from benchmarks._core import SCENARIOS

REPO = Path(__file__).resolve().parent.parent
# Results whose measured value is one timing minus another (benchmarks/inventory.py: ansible-inventory with the
# plugin minus ansible-inventory over an empty inventory).
TIMING_DIFFERENCES = {"inventory_at_scale"}


def test_smoke_run_reports_every_scenario() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    _load()
    assert len(SCENARIO_MODULES) == len(set(SCENARIO_MODULES))
    assert {r["scenario"] for r in results} == set(SCENARIOS), "every registered scenario reports a result"
    for result in results:
        # Some figures are counts (0 errors). A few are the difference of two timings (a command minus the same
        # command with nothing to do); with almost no hosts, as in smoke runs, noise alone can make those negative.
        assert result["measured"] >= 0 or result["name"] in TIMING_DIFFERENCES, result
        assert math.isfinite(result["measured"]) and result["baseline"] > 0, result
        # measured/baseline are rounded to 6 places in the JSON, the ratio to 4: compare at that precision.
        assert result["ratio"] == pytest.approx(result["measured"] / result["baseline"], rel=1e-3, abs=1e-4), result
        assert result["target"] is None, "smoke runs judge no targets"
    assert "ratio" in run.stderr  # the rich table went to stderr

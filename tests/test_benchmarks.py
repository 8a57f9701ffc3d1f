"""The benchmark itself must not rot: a smoke-sized run of every scenario (no targets judged) in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SCENARIO_MODULES, _load
from benchmarks._core import SCENARIOS

REPO = Path(__file__).resolve().parent.parent


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
        assert result["measured"] >= 0 and result["baseline"] > 0, result  # some figures are counts (0 errors)
        # measured/baseline are rounded to 6 places in the JSON, the ratio to 4: compare at that precision.
        assert result["ratio"] == pytest.approx(result["measured"] / result["baseline"], rel=1e-3, abs=1e-4), result
        assert result["target"] is None, "smoke runs judge no targets"
    assert "ratio" in run.stderr  # the rich table went to stderr

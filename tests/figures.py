"""Figures the reliability tests count (operations, faults, duplicates, leaks, bad inputs), summed over the run.

Tests call :func:`record`; each process appends JSON lines under ``$GPUCLOUD_FIGURES_DIR`` (set by the pytest
controller before xdist workers start, so every worker writes to the same place) and the controller prints one
table at the end of the run. The tests themselves assert the zeros; the table makes the figures visible.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

ENV = "GPUCLOUD_FIGURES_DIR"
# Printed in this order. Every count that is not "tried"/"injected"/"served"/"scenarios" must be 0 (each test
# asserts its own share). Orphans: named resources (instances, volumes, keys) a run made without reporting them.
# Leftovers: anything a teardown scenario left in the emulated account's ledger, including what nobody names
# (DataCrunch OS volumes and startup scripts, ComputeStacks projects).
METRICS = (
    "operations tried",
    "faults injected",
    "duplicates",
    "orphans",
    "leaked secrets",
    "bad inputs tried",
    "bad inputs that reached the API",
    # Races the per-name lock must win (one API spelled several ways, from environments that differ) and runs
    # killed right after a create then run again; a lost one shows as a duplicate above.
    "lock-gap races tried",
    "kill-after-create reruns tried",
    # Desired-state transitions run in check mode (or preview) and then for real; a mismatch is a check-mode
    # result (changed, action, plan, diff) or a preview Diff that differed from the real run's.
    "transitions tried",
    "plan mismatches",
    "teardown scenarios",
    "leftovers after teardown",
    # A hostile or broken server (tests/faults/test_hostile_servers.py): one byte a second, a Retry-After of
    # years, an endless body, a credential echoed back, overlapping deadlines. Contained: the right error, in
    # bounded time, with no secret in it.
    "hostile answers tried",
    "hostile answers not contained",
    "malformed answers served",
    "raw errors on malformed answers",
)


def record(metric: str, value: int = 1) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown figure {metric!r}; one of {METRICS}")
    directory = os.environ.get(ENV)
    if not directory:
        return  # run outside pytest's controller (e.g. a single file under a debugger)
    with open(Path(directory) / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"metric": metric, "value": value}) + "\n")


def totals(directory: Path) -> Counter[str]:
    counts: Counter[str] = Counter({metric: 0 for metric in METRICS})
    for path in directory.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            counts[entry["metric"]] += entry["value"]
    return counts

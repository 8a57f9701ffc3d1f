"""Run every scenario (or ``--only NAME``), print a table of ratios and one JSON line per result.

Exit status 1 when a full run misses a target, so the figures in benchmarks/README.md cannot silently rot.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks._core import SCENARIOS, Context, Result

# Each module registers its scenarios with @scenario on import.
SCENARIO_MODULES = ("inventory", "module_noop", "waiters", "fleet", "pulumi_overhead", "placement")


def _load() -> None:
    for name in SCENARIO_MODULES:
        importlib.import_module(f"benchmarks.{name}")


def _table(results: list[Result]) -> Table:
    table = Table(title="gpucloud benchmarks (ratio = measured / baseline)")
    # The detail (how each figure was obtained) is in the JSON lines; the table stays one line per result.
    table.add_column("result", no_wrap=True)
    for column in ("measured", "baseline", "ratio", "target", "API calls"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        verdict = "" if r.held is None else (" ok" if r.held else " MISSED")
        table.add_row(
            escape(r.name),  # names such as module_noop[dcdncloud] are not markup
            f"{r.measured_s:.3f}",
            f"{r.baseline_s:.3f}",
            f"{r.ratio:.2f}",
            ("-" if r.target is None else f"≤ {r.target:.2f}") + verdict,
            "-" if r.api_calls is None else str(r.api_calls),
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no targets (CI keeps the code alive)")
    parser.add_argument("--only", action="append", default=[], help="run this scenario (repeatable)")
    args = parser.parse_args(argv)
    _load()
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {sorted(SCENARIOS)}")
    ctx = Context.create(smoke=args.smoke)
    console = Console(stderr=True, width=max(100, shutil.get_terminal_size().columns))
    results: list[Result] = []
    try:
        for name, run in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            console.print(f"[bold]running {name}[/bold]")
            for result in run(ctx):
                results.append(result)
                print(result.to_json(name), flush=True)
    finally:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    console.print(_table(results))
    missed = [r.name for r in results if r.held is False]
    if missed:
        # escape: names such as module_noop[dcdncloud] would otherwise be read as markup and printed as module_noop
        console.print(f"[red]targets missed: {escape(', '.join(missed))}[/red]")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

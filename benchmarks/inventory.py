"""Scenarios 1 and 2: the inventory plugin over ``ctx.hosts`` running instances spread over every provider.

1. ``inventory_at_scale``: ``ansible-inventory --list`` over the gpucloud plugin against an emulator seeded with
   ``ctx.hosts`` instances (``gpucloud emulator --seed-hosts``) that adds ``ctx.rtt_ms`` to every request.
   Measured: the wall time of that run minus the wall time of ``ansible-inventory --list`` over an empty static
   inventory (Ansible's own start-up), best of ``RUNS``. Baseline: the lower bound of the listing: for each
   provider the fewest sequential round trips its API allows (:data:`PAGINATION`), times the RTT, max over
   providers. The plugin also reports (``-v``) how long its fetch took and how long adding the hosts took;
   both are printed in ``detail``, with every provider's request count and any 429 the emulator answered.
2. ``inventory_cached``: the same source with Ansible's inventory cache (jsonfile): a first run fills it, the
   second is timed and must make no API request. Baseline: ``ansible-inventory --list`` over a static YAML
   inventory holding the same hosts, variables and groups (written from the cached run's own output).

Between runs the emulator's per-minute windows are reset (``POST /_emulator/rate-limit``), as if the runs
were a minute apart: each run must stay under each provider's limit on its own.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks._core import REPO, Context, Emulator, Result, emulator, scenario
from gpucloud.emulator.world import PUBLISHED_RATE_LIMITS
from gpucloud.providers import cloudnexus, computestacks, voltagepark

RUNS = 3
TARGET_RATIO = 1.2
FETCH_TARGET_RATIO = 2.0  # issue 18: the plugin's own fetch within 2x the parallel lower bound
# Lean host variables (inventory options): the facts a playbook typically groups and connects by, no nulls.
LEAN = {"hostvar_fields": ["status", "gpu_model", "gpu_count", "location_name"], "omit_null_hostvars": True}
BIN = Path(sys.executable).parent
_PLUGIN_LINE = re.compile(
    r"gpucloud inventory: (?P<instances>\d+) instances from .* in (?P<fetch>[\d.]+) s "
    r"\(CPU (?P<fetch_cpu>[\d.]+) s\), (?P<hosts>\d+) hosts added in (?P<add>[\d.]+) s"
)


@dataclass(frozen=True)
class Pagination:
    """How one provider's instance list is paged, per its API docs (/work/shared/api-docs) and adapter."""

    style: str  # "none": one answer holds everything; "offset"/"page": numbered; "cursor": next token only
    max_page: int | None  # largest page the API accepts; None: no maximum (or no paging at all)
    total_on_first_page: bool  # the first answer tells the total, so the other pages can go out at once
    auth_round_trips: int  # a token grant that must precede the first call
    dependent_round_trips: int  # lookups that need ids from a list first (ComputeStacks bastions per project)
    why: str

    def round_trips(self, items: int) -> int:
        pages = 1 if self.max_page is None else max(1, math.ceil(items / self.max_page))
        if pages == 1:
            listing = 1
        elif self.style == "cursor" or not self.total_on_first_page:
            listing = pages  # each page names the next: strictly one after another
        else:
            listing = 2  # the first page, then every other page at once
        return self.auth_round_trips + listing + self.dependent_round_trips


PAGINATION: dict[str, Pagination] = {
    "datacrunch": Pagination("none", None, True, 1, 0, "OAuth token, then GET /instances (unpaged)"),
    "voltagepark": Pagination(
        "offset",
        voltagepark._PAGE_MAX["virtual-machines/"],
        True,
        0,
        0,
        "limit<=100 with total_result_count; locations/ fetched alongside",
    ),
    "dcdncloud": Pagination("none", None, True, 0, 0, "GET /instances (unpaged), 60 req/min"),
    "cloudnexus": Pagination(
        "page", cloudnexus.MAX_PER_PAGE, True, 0, 0, "per_page<=100 with pagination.total, 120 req/min"
    ),
    # No per_page maximum (api-pagination default config), so the list itself could be one page; the SSH
    # endpoint is a bastion per project, one lookup per project once the project ids are known.
    "computestacks": Pagination("page", None, True, 1, 1, "OAuth token, lists, then a bastion per project"),
}
# The adapter asks for pages of PER_PAGE (1000): the services' pages (first, then the rest at once) come in
# while the project list and the bastions do, so the bound's three round trips stay the critical path.
assert computestacks.PER_PAGE >= 1


def lower_bound(hosts_per_provider: dict[str, int], rtt_s: float) -> tuple[float, dict[str, int]]:
    trips = {p: PAGINATION[p].round_trips(n) for p, n in hosts_per_provider.items()}
    return max(trips.values()) * rtt_s, trips


def _env(ctx: Context, emu: Emulator) -> dict[str, str]:
    home = ctx.workdir / "inventory-home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GPUCLOUD_", "ANSIBLE_"))}
    return {
        **base,
        **emu.env,
        "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}",
        "HOME": str(home),
        "GPUCLOUD_CONFIG": str(home / "no-config.toml"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_HOME": str(home / "ansible-home"),
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_NOCOLOR": "1",
    }


@dataclass
class Run:
    seconds: float
    stdout: str
    listing: Path


def _inventory(env: dict[str, str], source: Path, out: Path, *extra: str) -> Run:
    cmd = [str(BIN / "ansible-inventory"), "-i", str(source), "--list", "--output", str(out), *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return Run(seconds, proc.stdout + proc.stderr, out)


def _empty_inventory_seconds(ctx: Context, env: dict[str, str]) -> float:
    empty = ctx.workdir / "empty.yml"
    empty.write_text("all: {}\n")
    _inventory(env, empty, ctx.workdir / "empty.json")  # warm-up: byte-compiles and fills OS caches
    return min(_inventory(env, empty, ctx.workdir / "empty.json").seconds for _ in range(RUNS))


def _source(ctx: Context, name: str, **options: Any) -> Path:
    path = ctx.workdir / f"{name}.gpucloud.yml"
    path.write_text(yaml.safe_dump({"plugin": "gpucloud.cloud.gpucloud", **options}))
    return path


def _reset_rate_windows(emu: Emulator) -> None:
    for provider, per_minute in PUBLISHED_RATE_LIMITS.items():
        emu.control("POST", "/rate-limit", json={"provider": provider, "per_minute": per_minute})


def _plugin_timings(run: Run) -> dict[str, float]:
    match = _PLUGIN_LINE.search(run.stdout)
    if match is None:
        raise RuntimeError(f"the plugin printed no timing line (-v):\n{run.stdout[-2000:]}")
    return {k: float(v) for k, v in match.groupdict().items()}


def _hostvars(listing: Path) -> dict[str, Any]:
    data = _plain(json.loads(listing.read_text()))
    hostvars: dict[str, Any] = data["_meta"]["hostvars"]
    return hostvars


def _plain(value: Any) -> Any:
    """``ansible-inventory --list`` (2.19) wraps untrusted strings as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _used_since(before: float | None, after: float | None) -> str:
    """CPU seconds between two readings, as text ("?" where the process's CPU time cannot be read)."""
    return "?" if before is None or after is None else f"{after - before:.2f}"


def _request_summary(emu: Emulator) -> tuple[int, str, int]:
    records = emu.requests()
    per_provider: dict[str, int] = {}
    for record in records:
        per_provider[record["provider"]] = per_provider.get(record["provider"], 0) + 1
    throttled = sum(1 for r in records if r["fault"] in ("rate_limit", "rate_limit_burst"))
    text = " ".join(f"{p}={n}" for p, n in sorted(per_provider.items()))
    if records:
        # How long the emulator took per answer, injected latency included: above the RTT is its own CPU time
        # (one Python process rendering thousands of instances) plus queueing behind concurrent requests.
        durations = [r["duration_ms"] for r in records]
        text += f" (emulator answer p50 {statistics.median(durations):.0f} ms, max {max(durations):.0f} ms)"
    return len(records), text, throttled


@scenario("inventory_at_scale")
def inventory_at_scale(ctx: Context) -> list[Result]:
    rtt = ctx.rtt_ms / 1000
    args = ("--latency-ms", str(ctx.rtt_ms), "--seed-hosts", str(ctx.hosts))
    with emulator(ctx, *args) as emu:
        env = _env(ctx, emu)
        empty_s = _empty_inventory_seconds(ctx, env)
        source, lean_source = _source(ctx, "scale"), _source(ctx, "lean", **LEAN)
        runs: list[tuple[Run, dict[str, float], int, str, int]] = []
        lean_runs: list[Run] = []
        emulator_cpus: list[str] = []
        for index in range(RUNS):  # full and lean runs alternate, so drift in machine load hits both alike
            _reset_rate_windows(emu)
            emu.clear_requests()
            emulator_cpu = emu.cpu_seconds()
            run = _inventory(env, source, ctx.workdir / f"scale-{index}.json", "-v")
            emulator_cpus.append(_used_since(emulator_cpu, emu.cpu_seconds()))
            calls, per_provider, throttled = _request_summary(emu)
            runs.append((run, _plugin_timings(run), calls, per_provider, throttled))
            _reset_rate_windows(emu)
            lean_runs.append(_inventory(env, lean_source, ctx.workdir / f"lean-{index}.json", "-v"))
        hostvars = _hostvars(runs[0][0].listing)
        if set(_hostvars(lean_runs[0].listing)) != set(hostvars):
            raise RuntimeError("the lean listing does not list the same hosts")
        seeded = {p: sum(1 for v in hostvars.values() if v["gpucloud_provider"] == p) for p in PAGINATION}
        if sum(seeded.values()) != ctx.hosts or len(hostvars) != ctx.hosts:
            raise RuntimeError(f"expected {ctx.hosts} hosts, listed {len(hostvars)} ({seeded})")
    bound, trips = lower_bound(seeded, rtt)
    best = min(runs, key=lambda r: r[0].seconds)
    run, timings, calls, per_provider, throttled = best
    fetches = [r[1]["fetch"] for r in runs]
    fetch_cpus = [r[1]["fetch_cpu"] for r in runs]
    trip_text = " ".join(f"{p}={n}" for p, n in trips.items())
    common = (
        f"{ctx.hosts} hosts, RTT {ctx.rtt_ms:g} ms; lower bound {bound * 1000:.0f} ms = max round trips "
        f"({trip_text}) x RTT; requests {per_provider}; 429s {throttled}"
    )
    return [
        Result(
            name="inventory_at_scale",
            measured_s=run.seconds - empty_s,
            baseline_s=bound,
            api_calls=calls,
            target=ctx.target(TARGET_RATIO),
            detail=(
                f"{common}; ansible-inventory {run.seconds:.2f} s - empty {empty_s:.2f} s; inside the plugin: "
                f"fetch {timings['fetch']:.3f} s, adding hosts {timings['add']:.3f} s, the rest (mostly Ansible "
                f"rendering --list) {run.seconds - empty_s - timings['fetch'] - timings['add']:.2f} s; best of {RUNS} "
                f"(all: {', '.join(f'{r[0].seconds:.2f}' for r in runs)} s)"
            ),
        ),
        # The part the lower bound speaks about: the plugin's own fetch.
        Result(
            name="inventory_at_scale_fetch",
            measured_s=min(fetches),
            baseline_s=bound,
            api_calls=calls,
            target=ctx.target(FETCH_TARGET_RATIO),
            detail=(
                f"{common}; fetch phase only, as the plugin logs it; runs: {', '.join(f'{f:.3f}' for f in fetches)}; "
                f"CPU of the plugin process in those fetches (load-independent): "
                f"{', '.join(f'{cpu:.3f}' for cpu in fetch_cpus)} s; CPU of the emulator (same cores) in those "
                f"whole runs: {', '.join(emulator_cpus)} s"
            ),
        ),
        _lean_result(lean_runs, run, calls),
    ]


def _lean_result(lean_runs: list[Run], full: Run, calls: int) -> Result:
    """The lean host variables' effect (reported): the whole ``ansible-inventory --list`` with LEAN options
    against the same command listing every fact, best of each (start-up included in both)."""
    best = min(lean_runs, key=lambda r: r.seconds)
    timings = _plugin_timings(best)
    return Result(
        name="inventory_at_scale_lean",
        measured_s=best.seconds,
        baseline_s=full.seconds,
        api_calls=calls,
        detail=(
            f"ansible-inventory --list with {LEAN} vs every fact; --list output {best.listing.stat().st_size // 1024}"
            f" KiB vs {full.listing.stat().st_size // 1024} KiB; plugin adding hosts {timings['add']:.3f} s; "
            f"runs: {', '.join(f'{r.seconds:.2f}' for r in lean_runs)} s"
        ),
    )


def _static_inventory(hostvars: dict[str, Any], listing: Path, path: Path) -> None:
    """A YAML inventory with the listed hosts, their variables and their groups (children included)."""
    data = _plain(json.loads(listing.read_text()))
    groups: dict[str, Any] = {}
    for name, group in data.items():
        if name in ("_meta", "all"):
            continue
        entry: dict[str, Any] = {}
        if group.get("hosts"):
            entry["hosts"] = dict.fromkeys(group["hosts"])
        if group.get("children"):
            entry["children"] = dict.fromkeys(group["children"])
        groups[name] = entry
    top = {"all": {"hosts": hostvars, "children": groups}}
    path.write_text(yaml.safe_dump(top, sort_keys=False))


@scenario("inventory_cached")
def inventory_cached(ctx: Context) -> list[Result]:
    with emulator(ctx, "--latency-ms", str(ctx.rtt_ms), "--seed-hosts", str(ctx.hosts)) as emu:
        env = _env(ctx, emu)
        cache_dir = ctx.workdir / "inventory-cache"
        source = _source(
            ctx,
            "cached",
            cache=True,
            cache_plugin="ansible.builtin.jsonfile",
            cache_connection=str(cache_dir),
            cache_timeout=3600,
        )
        _reset_rate_windows(emu)
        _inventory(env, source, ctx.workdir / "cache-fill.json")
        emu.clear_requests()
        cached_runs = [_inventory(env, source, ctx.workdir / f"cached-{i}.json", "-v") for i in range(RUNS)]
        calls, _, _ = _request_summary(emu)
        if calls:
            raise RuntimeError(f"a run served from a fresh cache made {calls} API requests")
    listing = cached_runs[0].listing
    hostvars = _hostvars(listing)
    if len(hostvars) != ctx.hosts:
        raise RuntimeError(f"expected {ctx.hosts} hosts from the cache, listed {len(hostvars)}")
    static = ctx.workdir / "static.yml"
    _static_inventory(hostvars, listing, static)
    # Ansible parses a big static YAML slowly (minutes at 10,000 hosts), so a full run times it once.
    static_runs = [_inventory(env, static, ctx.workdir / f"static-{i}.json") for i in range(RUNS if ctx.smoke else 1)]
    if _hostvars(static_runs[0].listing) != hostvars:
        raise RuntimeError("the static inventory does not list the same hosts and vars as the cached run")
    cached = min(r.seconds for r in cached_runs)
    baseline = min(r.seconds for r in static_runs)
    timings = [_plugin_timings(r) for r in cached_runs]
    return [
        Result(
            name="inventory_cached",
            measured_s=cached,
            baseline_s=baseline,
            api_calls=calls,
            target=ctx.target(TARGET_RATIO),
            detail=(
                f"{ctx.hosts} hosts; cached runs {', '.join(f'{r.seconds:.2f}' for r in cached_runs)} s "
                f"(plugin: cache read {statistics.median(t['fetch'] for t in timings):.3f} s, adding hosts "
                f"{statistics.median(t['add'] for t in timings):.3f} s); static YAML "
                f"{', '.join(f'{r.seconds:.2f}' for r in static_runs)} s ({static.stat().st_size // 1024} KiB)"
            ),
        )
    ]

"""The ``gpucloud`` command: offers, instances and a local emulator, with rich tables or ``--json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

import gpucloud
from gpucloud import config, errors
from gpucloud.providers import capability_markdown, capability_table, implemented, provider_class

app = typer.Typer(help="Declare and inspect GPU cloud resources across providers.", no_args_is_help=True)
instances_app = typer.Typer(help="Instances across configured providers.", no_args_is_help=True)
app.add_typer(instances_app, name="instances")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

ProviderOption = Annotated[
    list[str] | None, typer.Option("--provider", "-p", help="Limit to this provider (repeatable).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _providers(selected: list[str] | None) -> list[str]:
    if selected:
        for name in selected:
            provider_class(name)  # Unsupported for providers this release does not implement
        return selected
    chosen = [p for p in config.configured_providers() if p in implemented()]
    if not chosen:
        raise errors.AuthError(
            "no provider is configured; set e.g. GPUCLOUD_VOLTAGEPARK_TOKEN, or run `gpucloud emulator` "
            "and source the env file it writes"
        )
    return chosen


def _gather(providers: Iterable[str], fetch: Callable[[gpucloud.Provider], list[T]]) -> list[T]:
    """Query providers concurrently; a failing provider fails the command, naming itself."""

    def one(name: str) -> list[T]:
        with gpucloud.connect(name) as cloud:
            return fetch(cloud)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return [item for items in pool.map(one, providers) for item in items]


def _fail(exc: errors.GpuCloudError) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=1)


def _print_json(rows: list[dict[str, Any]]) -> None:
    sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")


@app.command()
def offers(
    provider: ProviderOption = None,
    gpu: Annotated[str | None, typer.Option(help="GPU model substring, e.g. h100.")] = None,
    min_gpus: Annotated[int, typer.Option(help="At least this many GPUs.")] = 1,
    max_price: Annotated[float | None, typer.Option(help="Maximum price per hour.")] = None,
    available_only: Annotated[bool, typer.Option("--available/--all", help="Only offers with capacity.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Machine shapes on offer, cheapest first."""
    try:
        found = _gather(_providers(provider), lambda c: c.list_offers())
    except errors.GpuCloudError as exc:
        _fail(exc)
    rows = [
        o
        for o in found
        if o.gpu_count >= min_gpus
        and (gpu is None or gpu.lower() in (o.gpu_model or "").lower())
        and (max_price is None or (o.price_per_hour is not None and o.price_per_hour <= max_price))
        and (o.available or not available_only)
    ]
    rows.sort(key=lambda o: (o.price_per_hour is None, o.price_per_hour or 0.0))
    if as_json:
        _print_json([o.model_dump(mode="json") for o in rows])
        return
    table = Table(title=f"{len(rows)} offers")
    for column in ("provider", "instance type"):
        table.add_column(column, no_wrap=True)
    for column in ("gpu", "vcpus", "memory GB", "$/hour", "available in"):
        table.add_column(column, overflow="fold")
    for o in rows:
        where = ", ".join(loc.name or loc.location for loc in o.locations if loc.available) or "-"
        price = f"{o.price_per_hour:.2f}" if o.price_per_hour is not None else "?"
        table.add_row(
            o.provider,
            o.instance_type,
            f"{o.gpu_count}x {o.gpu_model}",
            str(o.vcpus or "?"),
            str(o.memory_gb or "?"),
            price,
            where,
        )
    console.print(table)


@instances_app.command("list")
def instances_list(provider: ProviderOption = None, as_json: JsonOption = False) -> None:
    """Instances on every configured provider."""
    try:
        found = _gather(_providers(provider), lambda c: c.list_instances())
    except errors.GpuCloudError as exc:
        _fail(exc)
    if as_json:
        _print_json([i.model_dump(mode="json", exclude={"raw"}) for i in found])
        return
    table = Table(title=f"{len(found)} instances")
    for column in ("provider", "name"):
        table.add_column(column, no_wrap=True)
    for column in ("id", "status", "type", "gpu", "ssh"):
        table.add_column(column, overflow="fold")
    for i in found:
        ssh = f"{i.ssh_user}@{i.public_ip}:{i.ssh_port}" if i.ssh_ready_address else "-"
        gpu = f"{i.gpu_count}x {i.gpu_model}" if i.gpu_count else "-"
        table.add_row(i.provider, i.name, i.id, f"{i.status.value} ({i.raw_status})", i.instance_type or "-", gpu, ssh)
    console.print(table)


@app.command()
def providers(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the tables as Markdown (README).")] = False,
) -> None:
    """What each implemented provider supports (no = raises Unsupported; inferred = undocumented endpoint)."""
    if markdown:
        sys.stdout.write(capability_markdown())
        return
    for title, options in (("provider capabilities", False), ("instance options", True)):
        headers, rows = capability_table(options=options)
        table = Table(title=title)
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)


@app.command()
def emulator(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Added latency per request.")] = 0.0,
    fault_rate: Annotated[float, typer.Option(help="Probability of a 5xx answer per request.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for deterministic faults.")] = None,
    provision_seconds: Annotated[float, typer.Option(help="Time a new instance takes to run.")] = 2.0,
    env_file: Annotated[
        Path | None, typer.Option(help="Write GPUCLOUD_* variables for clients of this emulator here.")
    ] = None,
) -> None:
    """Run the local emulator of every provider API (Ctrl-C to stop)."""
    from gpucloud.emulator import EmulatorSettings, Faults, serve
    from gpucloud.emulator.client import client_env, write_env_file

    settings = EmulatorSettings(
        host=host,
        port=port,
        provision_seconds=provision_seconds,
        faults=Faults(latency_ms=latency_ms, error_rate=fault_rate, seed=seed),
    )
    url = f"http://{host}:{port}"
    if env_file:
        write_env_file(env_file, client_env(url, settings))
        err_console.print(f"client settings written to {env_file} (source it, or `set -a; . {env_file}`)")
    err_console.print(f"emulator on {url}  (API docs: {url}/docs)")
    serve(settings)


@app.command()
def demo(
    url: Annotated[str | None, typer.Option(help="Use a running emulator instead of starting one.")] = None,
) -> None:
    """Create an SSH key, a volume and an instance per provider, run a command over SSH, delete everything."""
    from gpucloud.demo import run_demo

    try:
        ok = run_demo(console, emulator_url=url)
    except errors.GpuCloudError as exc:
        _fail(exc)
    raise typer.Exit(code=0 if ok else 1)


if __name__ == "__main__":  # pragma: no cover - `python -m gpucloud.cli`
    app()

"""The ``gpucloud`` command: offers, instances and a local emulator, with rich tables or ``--json``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

import gpucloud
from gpucloud import config, errors, presentation, sshexec
from gpucloud.capabilities import EVIDENCE_LEGEND, Capability
from gpucloud.gpus import gpu_model_matches, normalise_gpu_model
from gpucloud.models import Image, Instance, Location, Offer, Status
from gpucloud.providers import (
    capability_markdown,
    capability_table,
    catalogue_entry,
    implemented,
    mentions,
    provider_class,
)
from gpucloud.validation import public_key_identity

if TYPE_CHECKING:
    from gpucloud.placement import Placement  # imported when used: the other commands need none of it

# Exit codes scripts can rely on; the README's table and `gpucloud --help` are made from this (a test checks).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # typer's own code for bad usage, also used for an unknown --provider
EXIT_NOT_FOUND = 3
EXIT_NOT_CONFIGURED = 4
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_ERROR: "an error from a provider or the network (auth, rate limit, timeout, ...), or a check that failed; "
    "a list command still lists what the other providers returned",
    EXIT_USAGE: "bad usage: unknown option or value, or a provider this release does not implement",
    EXIT_NOT_FOUND: "the instance asked for does not exist",
    EXIT_NOT_CONFIGURED: "no provider is configured, or one asked for with --provider has no credentials",
}

app = typer.Typer(
    help="Declare and inspect GPU cloud resources across providers.",
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".",
    no_args_is_help=True,
)
instances_app = typer.Typer(help="Instances across configured providers.", no_args_is_help=True)
volumes_app = typer.Typer(help="Volumes across configured providers.", no_args_is_help=True)
keys_app = typer.Typer(help="Account SSH keys across configured providers.", no_args_is_help=True)
config_app = typer.Typer(help="Which providers are configured and reachable.", no_args_is_help=True)
app.add_typer(instances_app, name="instances")
app.add_typer(volumes_app, name="volumes")
app.add_typer(keys_app, name="keys")
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

ProviderOption = Annotated[
    list[str] | None, typer.Option("--provider", "-p", help="Limit to this provider (repeatable).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
WithErrorsOption = Annotated[
    bool,
    typer.Option(
        "--with-errors",
        help='With --json: print {"items": [...], "errors": [{"provider", "error_class", "message"}]}, '
        "so providers that failed are in the same document.",
    ),
]


class NotConfigured(errors.AuthError):
    """No provider has credentials: nothing to ask."""


def _providers(selected: list[str] | None) -> list[str]:
    if selected:
        unknown = [name for name in selected if name not in implemented()]
        if unknown:
            raise typer.BadParameter(
                f"{', '.join(unknown)}: not a provider this release implements ({', '.join(implemented())})",
                param_hint="--provider",
            )
        lacking = [name for name in selected if not config.load_config(name).is_configured()]
        if lacking:
            raise NotConfigured(
                f"{', '.join(lacking)} has no credentials; set its GPUCLOUD_<PROVIDER>_* variables "
                "(see `gpucloud config check`)"
            )
        return selected
    chosen = [p for p in config.configured_providers() if p in implemented()]
    if not chosen:
        raise NotConfigured(
            "no provider is configured; set e.g. GPUCLOUD_VOLTAGEPARK_TOKEN, or run `gpucloud emulator` "
            "and source the env file it writes"
        )
    return chosen


@dataclass(frozen=True)
class Gathered(Generic[T]):
    """What the providers that answered returned, and the ones that failed (one failure never hides the rest)."""

    items: list[T]
    failures: list[presentation.ProviderFailure]
    asked: int


def _gather(
    providers: Iterable[str], fetch: Callable[[gpucloud.Provider], list[T]], *, needs: Capability | None = None
) -> Gathered[T]:
    """Query providers concurrently; providers without ``needs`` are skipped with a note on stderr."""
    chosen = list(providers)
    if needs is not None:
        lacking = [p for p in chosen if needs not in provider_class(p).capabilities]
        for name in lacking:
            err_console.print(f"[yellow]{name}: skipped, the API has no {needs.value}[/]")
        chosen = [p for p in chosen if p not in lacking]

    def one(name: str) -> list[T]:
        with gpucloud.connect(name) as cloud:
            return fetch(cloud)

    with err_console.status(f"asking {', '.join(chosen) or 'no provider'}..."):
        items, failures = presentation.gather(chosen, one)
    return Gathered(items, failures, len(chosen))


def _needs_json(as_json: bool, with_errors: bool) -> None:
    if with_errors and not as_json:
        raise typer.BadParameter("only goes with --json (add --json or drop it)", param_hint="--with-errors")


def _report(
    gathered: Gathered[Any], rows: Sequence[T], as_json: bool, with_errors: bool, as_dict: Callable[[T], Any]
) -> bool:
    """Print the JSON of ``rows`` and each failure on stderr; True when a table should follow.

    ``--json`` prints the list of what answered; nothing when no provider answered, so a script never reads
    an empty list as "there is none". ``--with-errors`` prints ``{"items": [...], "errors": [...]}`` always.
    Failures end the command with exit code 1 (after the output).
    """
    for failure in gathered.failures:
        err_console.print(f"[bold red]error:[/] {failure}", highlight=False)
    if as_json and with_errors:
        _print_json({"items": [as_dict(r) for r in rows], "errors": [f.as_dict() for f in gathered.failures]})
    elif as_json and not (gathered.failures and len(gathered.failures) == gathered.asked):
        _print_json([as_dict(r) for r in rows])
    return not as_json


def _finish(gathered: Gathered[Any]) -> None:
    if gathered.failures:
        raise typer.Exit(code=EXIT_ERROR)


def _fail(exc: errors.GpuCloudError) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {exc}")
    if isinstance(exc, NotConfigured):
        raise typer.Exit(code=EXIT_NOT_CONFIGURED)
    raise typer.Exit(code=EXIT_NOT_FOUND if isinstance(exc, errors.NotFound) else EXIT_ERROR)


def _print_json(rows: list[dict[str, Any]] | dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")


def _table(
    title: str,
    headers: Iterable[str],
    rows: Iterable[Iterable[str]],
    *,
    keep: int = 1,
    numbers: Iterable[str] = (),
) -> None:
    """A rich table whose first ``keep`` columns and the ``numbers`` columns never wrap: names and ids stay
    whole for copying, numbers right-aligned and never split; the other columns wrap between words."""
    table = Table(title=title)
    numeric = set(numbers)
    for index, header in enumerate(headers):
        if header in numeric:
            table.add_column(header, no_wrap=True, justify="right")
        else:
            table.add_column(header, no_wrap=index < keep, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"gpucloud {gpucloud.__version__}\n")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_show_version)
    ] = False,
) -> None:
    """Declare and inspect GPU cloud resources across providers."""


@app.command()
def offers(
    provider: ProviderOption = None,
    gpu: Annotated[str | None, typer.Option(help="GPU model substring, e.g. h100.")] = None,
    min_gpus: Annotated[int, typer.Option(min=0, help="At least this many GPUs.")] = 1,
    max_price: Annotated[float | None, typer.Option(help="Maximum price per hour.")] = None,
    location: Annotated[str | None, typer.Option(help="Only offers available at this location (id or name).")] = None,
    available_only: Annotated[bool, typer.Option("--available/--all", help="Only offers with capacity.")] = True,
    as_json: JsonOption = False,
    with_errors: WithErrorsOption = False,
) -> None:
    """Machine shapes on offer, cheapest first."""
    _needs_json(as_json, with_errors)
    try:
        found = _gather(_providers(provider), lambda c: c.list_offers(), needs=Capability.OFFERS)
    except errors.GpuCloudError as exc:
        _fail(exc)
    rows = [o for o in found.items if _offer_matches(o, gpu, min_gpus, max_price, location, available_only)]
    rows.sort(key=lambda o: (o.price_per_hour is None, o.price_per_hour or 0.0))
    if _report(found, rows, as_json, with_errors, presentation.public):
        _offers_table(rows)
    _finish(found)


def _price(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "?"


def _offers_table(rows: list[Offer]) -> None:
    """One row per offer. Below 100 columns the provider and GPUs go on a second line under the instance
    type, so the table fits 80 columns without splitting an instance type, a GPU model or a number."""
    wide = console.width >= 100
    first = ("provider", "instance type", "kind", "gpus") if wide else ("instance type / provider, kind, gpus",)
    # No box: rich crops the last column of a boxed table with a min_width column instead of wrapping it.
    table = Table(title=f"{len(rows)} offers", box=None, header_style="bold underline")
    for header in first:
        table.add_column(header, no_wrap=header != "gpus")
    # "spot": the $/h of the same machine as a spot instance, where the provider sells spot ("-": it does not).
    for header in ("vCPU", "GB", "$/h", "spot"):
        table.add_column(header, no_wrap=True, justify="right")
    table.add_column("available in")
    for o in rows:
        gpus = f"{o.gpu_count}x {normalise_gpu_model(o.gpu_model)}" if o.gpu_count else "no GPU"
        kind = o.kind.replace("_", " ")
        shape = (
            (o.provider, o.instance_type, kind, gpus) if wide else (f"{o.instance_type}\n{o.provider}, {kind}, {gpus}",)
        )
        table.add_row(
            *shape,
            str(o.vcpus or "?"),
            f"{o.memory_gb:g}" if o.memory_gb else "?",
            _price(o.price_per_hour),
            f"{o.spot_price_per_hour:.2f}" if o.spot_price_per_hour is not None else "-",
            ", ".join(loc.name or loc.location for loc in o.locations if loc.available) or "-",
        )
    console.print(table)


@app.command()
def place(
    name: Annotated[str, typer.Argument(help="Instance name; one placed earlier is found on whichever provider.")],
    gpu: Annotated[str | None, typer.Option(help="GPU model, any spelling or part of one: h100, a100-80gb.")] = None,
    gpu_count: Annotated[int | None, typer.Option(min=0, help="Exactly this many GPUs (default 1 with --gpu).")] = None,
    min_vcpus: Annotated[int | None, typer.Option(min=1, help="At least this many vCPUs.")] = None,
    min_memory_gb: Annotated[float | None, typer.Option(help="At least this much memory (GB).")] = None,
    min_disk_gb: Annotated[
        float | None,
        typer.Option(help="OS disk of at least this many GB: stated by the offer, or chosen at create (DataCrunch)."),
    ] = None,
    spot: Annotated[
        str, typer.Option(help="never (on-demand only), allowed (spot prices ranked too) or required (spot only).")
    ] = "never",
    kind: Annotated[
        str, typer.Option(help="vm (virtual machines only), bare_metal (whole rented nodes only) or any.")
    ] = "vm",
    location: Annotated[list[str] | None, typer.Option(help="Allowed location id or name (repeatable).")] = None,
    max_price: Annotated[
        float | None, typer.Option(help="Maximum price per hour (USD), at the price it is bought (spot or on-demand).")
    ] = None,
    provider: Annotated[
        list[str] | None,
        typer.Option("--provider", "-p", help="Allowed provider, in order of preference (repeatable)."),
    ] = None,
    image: Annotated[
        list[str] | None, typer.Option(help="Image for every provider, or PROVIDER=IMAGE for one (repeatable).")
    ] = None,
    ssh_key: Annotated[list[str] | None, typer.Option(help="SSH key name, id or public key (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only tell which offer would be tried first.")] = False,
    force_replace: Annotated[
        bool, typer.Option(help="Replace a placed instance that no longer meets the requirement.")
    ] = False,
    wait_timeout: Annotated[float, typer.Option(min=1, help="Deadline for the whole placement (seconds).")] = 600.0,
    as_json: JsonOption = False,
) -> None:
    """Place an instance by requirement on the cheapest matching offer, failing over on no capacity."""
    from gpucloud import placement

    try:  # bad input is bad usage (exit 2), before any request
        requirement = placement.parse(
            placement.Requirement,
            {
                "gpu": gpu,
                "gpu_count": gpu_count,
                "min_vcpus": min_vcpus,
                "min_memory_gb": min_memory_gb,
                "min_disk_gb": min_disk_gb,
                "spot": spot,
                "kind": kind,
                "locations": location,
                "max_price_per_hour": max_price,
                "providers": provider,
            },
        )
        template = placement.parse(placement.Template, {"name": name, **_images(image), "ssh_keys": ssh_key})
    except errors.ValidationError as exc:
        raise typer.BadParameter(exc.message) from None
    try:
        clouds = placement.connect_configured()
        if not clouds:
            _providers(None)  # raises NotConfigured with the usual hint
        result = placement.place(
            clouds, requirement, template, check_mode=dry_run, wait_timeout=wait_timeout, force_replace=force_replace
        )
    except errors.GpuCloudError as exc:
        _fail(exc)
    record = {"changed": result.outcome.changed, "action": str(result.outcome.action), **result.to_dict()}
    if as_json:
        _print_json({**record, "instance": result.outcome.diff()["after"] or None})
        return
    _placement_table(result)


def _images(values: list[str] | None) -> dict[str, Any]:
    """``--image IMAGE`` for every provider, ``--image PROVIDER=IMAGE`` for one."""
    images: dict[str, str] = {}
    default: str | None = None
    for value in values or ():
        head, sep, tail = value.partition("=")
        if sep and head in config.PROVIDERS:
            images[head] = tail
        else:
            default = value
    return {"image": default, "images": images}


def _placement_table(result: Placement) -> None:
    console.print(f"[bold]{result.outcome.action}[/]: {result.note}")
    rows = [
        (
            str(index),
            a.provider,
            a.candidate.offer.instance_type if a.candidate else "-",
            (a.candidate.location or "-") if a.candidate else "-",
            a.error,
        )
        for index, a in enumerate(result.attempts, 1)
    ]
    if rows:
        _table("failed attempts", ("#", "provider", "instance type", "location", "error"), rows, keep=2)
    if result.ranked:
        ranked = [
            (c.provider, c.offer.instance_type + (" (spot)" if c.spot else ""), c.location or "-", _price(c.price))
            for c in result.ranked
        ]
        _table(
            "candidates, in the order they would be tried",
            ("provider", "instance type", "location", "$/h"),
            ranked[:10],
            keep=2,
            numbers=("$/h",),
        )
    after = result.outcome.after
    if after is not None:
        console.print(f"{after.provider} {after.id}: {after.instance_type} at {after.location or '-'}, {after.status}")


NameFilter = Annotated[str | None, typer.Option(help="Only those whose id or name contains this text.")]
CatalogueItem = TypeVar("CatalogueItem", Image, Location)


@app.command()
def images(
    provider: ProviderOption = None,
    name: NameFilter = None,
    as_json: JsonOption = False,
    with_errors: WithErrorsOption = False,
) -> None:
    """Images (operating systems) each provider boots, to pass as an instance's image."""

    def table(rows: list[Image]) -> None:
        _table(f"{len(rows)} images", ("provider", "image", "name"), ((i.provider, i.id, i.name) for i in rows), keep=2)

    _catalogue(Capability.IMAGES, lambda c: c.list_images(), table, provider, name, as_json, with_errors)


@app.command()
def locations(
    provider: ProviderOption = None,
    name: NameFilter = None,
    as_json: JsonOption = False,
    with_errors: WithErrorsOption = False,
) -> None:
    """Locations (regions, data centres) each provider offers, to pass as an instance's or volume's location."""

    def table(rows: list[Location]) -> None:
        cells = ((r.provider, r.id, r.name, r.country or "-") for r in rows)
        _table(f"{len(rows)} locations", ("provider", "location", "name", "country"), cells, keep=2)

    _catalogue(Capability.LOCATIONS, lambda c: c.list_locations(), table, provider, name, as_json, with_errors)


def _catalogue(
    kind: Capability,
    listing: Callable[[gpucloud.Provider], list[CatalogueItem]],
    table: Callable[[list[CatalogueItem]], None],
    provider: list[str] | None,
    name: str | None,
    as_json: bool,
    with_errors: bool,
) -> None:
    """What ``images`` and ``locations`` share: gather, filter by ``name``, sort, then JSON or the table."""
    _needs_json(as_json, with_errors)
    try:
        found = _gather(_providers(provider), listing, needs=kind)
    except errors.GpuCloudError as exc:
        _fail(exc)
    rows = sorted((r for r in found.items if mentions(name, r.id, r.name)), key=lambda r: (r.provider, r.id))
    if _report(found, rows, as_json, with_errors, catalogue_entry):
        table(rows)
        _note_examples(rows)
    _finish(found)


def _note_examples(rows: Iterable[Image | Location]) -> None:
    for name in sorted({r.provider for r in rows if not catalogue_entry(r)["complete"]}):
        err_console.print(
            f"[yellow]{name}: examples from its documentation; its API has no listing and accepts more[/]"
        )


def _offer_matches(
    offer: Offer, gpu: str | None, min_gpus: int, max_price: float | None, location: str | None, available_only: bool
) -> bool:
    places = [loc for loc in offer.locations if loc.available or not available_only]
    return (
        offer.gpu_count >= min_gpus
        and (gpu is None or gpu_model_matches(offer.gpu_model, gpu))
        and (max_price is None or (offer.price_per_hour is not None and offer.price_per_hour <= max_price))
        and bool(places or not available_only)
        and (
            location is None
            or any(location.lower() in (loc.location.lower(), (loc.name or "").lower()) for loc in places)
        )
    )


def _instance_rows(found: list[Instance]) -> Iterable[tuple[str, ...]]:
    for i in found:
        ssh = f"{i.ssh_user}@{i.public_ip}:{i.ssh_port}" if i.ssh_ready_address else "-"
        gpu = f"{i.gpu_count}x {normalise_gpu_model(i.gpu_model)}" if i.gpu_count else "-"
        yield i.provider, i.name, i.id, f"{i.status.value} ({i.raw_status})", i.instance_type or "-", gpu, ssh


@instances_app.command("list")
def instances_list(
    provider: ProviderOption = None,
    status: Annotated[Status | None, typer.Option(help="Only instances in this state.")] = None,
    as_json: JsonOption = False,
    with_errors: WithErrorsOption = False,
) -> None:
    """Instances on every configured provider."""
    _needs_json(as_json, with_errors)
    try:
        found = _gather(_providers(provider), lambda c: c.list_instances())
    except errors.GpuCloudError as exc:
        _fail(exc)
    rows = [i for i in found.items if status is None or i.status is status]
    if _report(found, rows, as_json, with_errors, presentation.public):
        headers = ("provider", "name", "id", "status", "type", "gpu", "ssh")
        _table(f"{len(rows)} instances", headers, _instance_rows(rows), keep=2)
    _finish(found)


def _find_one(provider: list[str] | None, ref: str) -> Instance:
    """The single instance whose name or id is ``ref`` across the chosen providers."""
    gathered = _gather(_providers(provider), lambda c: [i for i in c.list_instances() if ref in (i.id, i.name)])
    if gathered.failures:  # the instance could be on the provider that failed: never guess
        failed = ", ".join(str(f) for f in gathered.failures)
        raise errors.GpuCloudError(f"cannot look for {ref!r} on every provider: {failed}")
    found = gathered.items
    if not found:
        raise errors.NotFound(f"no instance named or with id {ref!r}")
    if len(found) > 1:
        where = ", ".join(f"{i.provider}:{i.id}" for i in found)
        raise errors.Conflict(f"{ref!r} matches {len(found)} instances ({where}); add --provider or use an id")
    return found[0]


@instances_app.command("show")
def instances_show(
    ref: Annotated[str, typer.Argument(help="Instance name or id.")],
    provider: ProviderOption = None,
    as_json: JsonOption = False,
) -> None:
    """One instance in detail."""
    try:
        instance = _find_one(provider, ref)
    except errors.GpuCloudError as exc:
        _fail(exc)
    data = presentation.public(instance)
    if as_json:
        _print_json(data)
        return
    _table(f"{instance.provider} instance {instance.name}", ("field", "value"), ((k, str(v)) for k, v in data.items()))


@instances_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def instances_ssh(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Instance name or id; anything after `--` runs remotely.")],
    provider: ProviderOption = None,
    identity: Annotated[Path | None, typer.Option("--identity", "-i", help="Private key file.")] = None,
) -> None:
    """Open an SSH session (or run a command) on an instance, using what the provider reports."""
    try:
        command = sshexec.ssh_command(_find_one(provider, ref), identity)
    except errors.GpuCloudError as exc:
        _fail(exc)
    os.execvp(command[0], [*command, *ctx.args])


@volumes_app.command("list")
def volumes_list(
    provider: ProviderOption = None, as_json: JsonOption = False, with_errors: WithErrorsOption = False
) -> None:
    """Volumes on every configured provider that has a volume API."""
    _needs_json(as_json, with_errors)
    try:
        found = _gather(_providers(provider), lambda c: c.list_volumes(), needs=Capability.VOLUMES)
    except errors.GpuCloudError as exc:
        _fail(exc)
    if _report(found, found.items, as_json, with_errors, presentation.public):
        rows = (
            (v.provider, v.name, v.id, str(v.size_gb), v.status, ", ".join(v.attached_to) or "-", v.location or "-")
            for v in found.items
        )
        headers = ("provider", "name", "id", "GB", "status", "attached to", "location")
        _table(f"{len(found.items)} volumes", headers, rows, keep=2, numbers=("GB",))
    _finish(found)


@keys_app.command("list")
def keys_list(
    provider: ProviderOption = None, as_json: JsonOption = False, with_errors: WithErrorsOption = False
) -> None:
    """Account SSH keys on every configured provider that has them."""
    _needs_json(as_json, with_errors)
    try:
        found = _gather(_providers(provider), lambda c: c.list_ssh_keys(), needs=Capability.SSH_KEYS)
    except errors.GpuCloudError as exc:
        _fail(exc)
    if _report(found, found.items, as_json, with_errors, presentation.public):
        rows = ((k.provider, k.name, k.id, public_key_identity(k.public_key)[:40] + "...") for k in found.items)
        _table(f"{len(found.items)} ssh keys", ("provider", "name", "id", "key"), rows, keep=2)
    _finish(found)


@config_app.command("check")
def config_check(as_json: JsonOption = False) -> None:
    """Which providers are configured, and does each answer with those credentials (secrets never shown)."""
    with err_console.status("checking providers..."), ThreadPoolExecutor(8) as pool:
        results = list(pool.map(_check_provider, implemented()))
    if as_json:
        _print_json(results)
    else:
        headers = ("provider", "configured", "url", "reachable", "detail")
        rows = (
            (
                str(r["provider"]),
                _yes(r["configured"]),
                str(r["url"] or "not configured"),
                _yes(r["reachable"]),
                str(r["detail"]),
            )
            for r in results
        )
        _table("configuration", headers, rows)
    configured = [r for r in results if r["configured"]]
    if not configured:
        raise typer.Exit(code=EXIT_NOT_CONFIGURED)
    if not all(r["reachable"] for r in configured):
        raise typer.Exit(code=EXIT_ERROR)


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def _check_provider(name: str) -> dict[str, object]:
    cfg = config.load_config(name)
    result: dict[str, object] = {"provider": name, "configured": cfg.is_configured(), "url": None}
    result.update(reachable=False, detail="no credentials")
    if not cfg.is_configured():
        return result
    try:
        with gpucloud.connect(name) as cloud:
            result["url"] = config.redact_url(cloud.config.base_url or "")
            cloud.list_instances()
        result.update(reachable=True, detail="ok")
    except errors.GpuCloudError as exc:
        result["detail"] = f"{type(exc).__name__}: {exc.describe(name_provider=False)}"  # a row of its provider
    return result


@app.command()
def providers(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the tables as Markdown (README).")] = False,
    as_json: JsonOption = False,
) -> None:
    """What each implemented provider supports, and what each cell rests on (the legend under the tables)."""
    if markdown:
        sys.stdout.write(capability_markdown())
        return
    if as_json:
        cap_headers, cap_rows = capability_table()
        opt_headers, opt_rows = capability_table(options=True)
        _print_json(
            [
                {
                    "provider": name,
                    "title": caps[0],
                    "capabilities": dict(zip(cap_headers[1:], caps[1:], strict=True)),
                    "instance_options": dict(zip(opt_headers[1:], opts[1:], strict=True)),
                }
                for name, caps, opts in zip(implemented(), cap_rows, opt_rows, strict=True)
            ]
        )
        return
    for title, options in (("provider capabilities", False), ("instance options", True)):
        headers, rows = capability_table(options=options)
        _transposed(title, headers, rows)
    _table("", ["cell", "meaning"], ([word, meaning] for word, meaning in EVIDENCE_LEGEND.items()))


def _transposed(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """One column per provider and one row per capability, so five narrow columns fit 80 characters (one
    column per capability left a letter per line). Rows of prose (SSH endpoint, auth) follow as a table of
    their own with one row per provider, where they wrap between words."""
    short = [i for i in range(1, len(headers)) if all(len(row[i]) <= len("inferred") for row in rows)]
    grid = Table(title=title, box=None, header_style="bold underline", collapse_padding=True)
    # Fixed widths: rich enforces a min_width after shrinking the others, cropping the table's last column.
    widths = [max(len(w) for w in [*row[0].split(), *(row[i] for i in short)]) for row in rows]
    grid.add_column(headers[0], width=max(console.width - sum(widths) - 2 * len(rows) - 2, 13))
    for row, width in zip(rows, widths, strict=True):
        grid.add_column(row[0], width=width)
    for index in short:
        grid.add_row(headers[index], *(row[index] for row in rows))
    console.print(grid)
    prose = [i for i in range(1, len(headers)) if i not in short]
    if prose:
        _table("", [headers[0], *(headers[i] for i in prose)], ([row[0], *(row[i] for i in prose)] for row in rows))


@app.command()
def emulator(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind (loopback only, unless --allow-remote).")] = "127.0.0.1",
    allow_remote: Annotated[
        bool, typer.Option(help="Allow a non-loopback --host: every emulated API becomes reachable from the network.")
    ] = False,
    latency_ms: Annotated[float, typer.Option(help="Added latency per request.")] = 0.0,
    fault_rate: Annotated[float, typer.Option(help="Probability of a 5xx answer per request.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for deterministic faults.")] = None,
    provision_seconds: Annotated[float, typer.Option(help="Time a new instance takes to run.")] = 2.0,
    env_file: Annotated[
        Path | None,
        typer.Option(
            help="Write this run's GPUCLOUD_* client settings (random credentials, control token) here, mode 0600. "
            "Default: ~/.cache/gpucloud/emulator-PORT.env."
        ),
    ] = None,
    seed_hosts: Annotated[
        int,
        typer.Option(min=0, help="Start with this many running instances spread over every provider (no SSH to them)."),
    ] = 0,
) -> None:
    """Run the local emulator of every provider API (Ctrl-C to stop)."""
    from gpucloud.emulator import EmulatorSettings, Faults, serve
    from gpucloud.emulator.client import client_env, write_env_file
    from gpucloud.emulator.server import check_bind

    settings = EmulatorSettings(
        host=host,
        port=port,
        provision_seconds=provision_seconds,
        faults=Faults(latency_ms=latency_ms, error_rate=fault_rate, seed=seed),
        seed_hosts=seed_hosts,
        allow_remote=allow_remote,
    )
    try:
        check_bind(settings)
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from None
    url = f"http://{host}:{port}"
    # The credentials are random per run and printed nowhere: this file is the only way clients get them.
    env_file = env_file or Path.home() / ".cache" / "gpucloud" / f"emulator-{port}.env"
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

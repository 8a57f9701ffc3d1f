"""The README demo: on each provider create an SSH key, a volume and an instance, run a command over SSH
on the instance, then delete everything; then place an H100 by requirement while the cheapest provider is out of
stock, so the placement fails over; and print what happened."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.table import Table

import gpucloud
from gpucloud import sshexec
from gpucloud.models import InstanceSpec, SshKeySpec, Status, VolumeSpec

if TYPE_CHECKING:
    from gpucloud.placement import Placement

# What to ask each provider for: a small GPU shape the emulator (and the real catalogue) offers.
DEMO_SPECS: dict[str, dict[str, Any]] = {
    "datacrunch": {"instance_type": "1V100.6V", "image": "ubuntu-24.04-cuda-12.8-open-docker", "location": "FIN-01"},
    "voltagepark": {"instance_type": "1x-h100-sxm5-80gb"},
}
T = TypeVar("T")

DEMO_VOLUME: dict[str, dict[str, Any]] = {
    "datacrunch": {"size_gb": 50, "location": "FIN-01"},
    "voltagepark": {"size_gb": 100},
}


@dataclass
class Step:
    provider: str
    action: str
    detail: str
    seconds: float
    ok: bool = True


def _keypair(directory: Path) -> tuple[Path, str]:
    private = directory / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gpucloud-demo", "-f", str(private)], check=True
    )
    return private, (directory / "id_ed25519.pub").read_text().strip()


class _Recorder:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.steps: list[Step] = []

    def __call__(self, provider: str, action: str, work: Callable[[], T], show: Callable[[T], str] = str) -> T:
        """Run one step under a spinner and record how long it took and what it gave."""
        started = time.monotonic()
        with self.console.status(f"{provider}: {action}..."):
            try:
                result = work()
            except gpucloud.GpuCloudError as exc:
                self.steps.append(Step(provider, action, str(exc), time.monotonic() - started, ok=False))
                raise
        self.steps.append(Step(provider, action, show(result), time.monotonic() - started))
        return result


def _run_provider(cloud: gpucloud.Provider, step: _Recorder, private_key: Path, public_key: str) -> None:
    name = cloud.name
    key_spec = SshKeySpec(name="gpucloud-demo-key", public_key=public_key)
    key = step(name, "create ssh key", lambda: cloud.create_ssh_key(key_spec), lambda k: k.id)
    try:
        volume_spec = VolumeSpec(name="gpucloud-demo-data", **DEMO_VOLUME[name])
        volume = step(
            name, "create volume", lambda: cloud.create_volume(volume_spec), lambda v: f"{v.id} ({v.size_gb} GB)"
        )
        try:
            spec = InstanceSpec(name=f"gpucloud-demo-{name}", ssh_keys=(key.name,), **DEMO_SPECS[name])
            instance = step(name, "create instance", lambda: cloud.create_instance(spec).instance, lambda i: i.id)
            try:
                running = step(
                    name,
                    "wait until running",
                    lambda: cloud.wait_for_instance(instance.id, [Status.RUNNING], timeout=300, interval=0.5),
                    lambda i: f"{i.raw_status}, {i.ssh_user}@{i.public_ip}:{i.ssh_port}",
                )
                step(name, "wait for SSH banner", lambda: cloud.wait_for_ssh(running, timeout=120))
                step(
                    name, "ssh: uname -sn", lambda: sshexec.run(running, "uname -sn", identity_file=private_key).strip()
                )
            finally:
                step(name, "delete instance", lambda: _delete_instance(cloud, instance.id))
        finally:
            step(name, "delete volume", lambda: _delete(cloud.delete_volume, volume.id))
    finally:
        step(name, "delete ssh key", lambda: _delete(cloud.delete_ssh_key, key.id))


def _delete_instance(cloud: gpucloud.Provider, instance_id: str) -> str:
    cloud.delete_instance(instance_id)
    cloud.wait_for_instance_gone(instance_id, timeout=300, interval=0.5)
    return f"{instance_id} gone"


def _delete(delete: Callable[[str], None], resource_id: str) -> str:
    delete(resource_id)
    return f"{resource_id} deleted"


# The placement part: an H100 under $3/h; the emulator's stock control empties the cheapest offer first.
PLACE_REQUIREMENT: dict[str, Any] = {"gpu": "h100", "max_price_per_hour": 3, "providers": ("voltagepark", "datacrunch")}
PLACE_IMAGES = {"datacrunch": DEMO_SPECS["datacrunch"]["image"]}
OUT_OF_STOCK = ("voltagepark", "1x-h100-sxm5-80gb-26vcpu-120gb")
# Sets (a dict of stock fields) or clears (None) the stock of OUT_OF_STOCK on the emulator.
StockControl = Callable[[dict[str, Any] | None], None]


@contextlib.contextmanager
def _clients(emulator_url: str | None) -> Iterator[tuple[dict[str, dict[str, Any]], StockControl]]:
    """Connection overrides per provider and the emulator's stock control: a private emulator, or the one at
    ``emulator_url`` with whatever the environment configures (its control token included)."""
    if emulator_url is not None:
        yield {name: {} for name in DEMO_SPECS}, _remote_stock(emulator_url)
        return
    from gpucloud.emulator import EmulatorServer
    from gpucloud.emulator.client import client_overrides

    with EmulatorServer(provision_seconds=1.0) as server:

        def control(stock: dict[str, Any] | None) -> None:
            if stock is None:
                server.world.clear_stock()
            else:
                server.world.set_stock(*OUT_OF_STOCK, **stock)

        # Only the providers the demo has shapes for (the emulator serves all five).
        options = client_overrides(server.url, server.settings)
        yield {name: options[name] for name in DEMO_SPECS}, control


def _remote_stock(url: str) -> StockControl:
    import httpx

    from gpucloud.emulator.client import CONTROL_TOKEN_ENV, control_headers

    headers = control_headers({CONTROL_TOKEN_ENV: os.environ.get(CONTROL_TOKEN_ENV, "")})

    def control(stock: dict[str, Any] | None) -> None:
        if stock is None:
            httpx.delete(f"{url}/_emulator/stock", headers=headers, timeout=10).raise_for_status()
            return
        body = {"provider": OUT_OF_STOCK[0], "instance_type": OUT_OF_STOCK[1], **stock}
        httpx.post(f"{url}/_emulator/stock", json=body, headers=headers, timeout=10).raise_for_status()

    return control


def _run_placement(step: _Recorder, overrides: dict[str, dict[str, Any]], control: StockControl) -> None:
    """Place an H100 under $3/h while the cheapest one is out of stock (the catalogue does not know yet)."""
    from gpucloud import placement

    label = "placement"
    step(label, "empty voltagepark's H100 stock", lambda: control({"left": 0, "stale_catalogue": True}), lambda _: "")
    clouds = {name: gpucloud.connect(name, **overrides.get(name, {})) for name in PLACE_REQUIREMENT["providers"]}
    try:
        requirement = placement.Requirement(**PLACE_REQUIREMENT)
        template = placement.Template(name="gpucloud-demo-placed", images=PLACE_IMAGES)
        placed = step(
            label,
            "place an H100 under $3/h",
            lambda: placement.place(clouds, requirement, template, wait_timeout=300),
            _describe_placement,
        )
        after = placed.outcome.after
        if after is not None:
            step(label, "delete placed instance", lambda: _delete_instance(clouds[after.provider], after.id))
    finally:
        control(None)
        for cloud in clouds.values():
            cloud.close()


def _describe_placement(result: Placement) -> str:
    tried = "; ".join(f"{a.provider} {a.error_class}" for a in result.attempts)
    return result.note + (f" (tried: {tried})" if tried else "")


def run_demo(console: Console, *, emulator_url: str | None = None) -> bool:
    recorder = _Recorder(console)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="gpucloud-demo-") as tmp, _clients(emulator_url) as (overrides, control):
        private_key, public_key = _keypair(Path(tmp))
        for provider, options in overrides.items():
            try:
                with gpucloud.connect(provider, **options) as cloud:
                    _run_provider(cloud, recorder, private_key, public_key)
            except gpucloud.GpuCloudError as exc:
                failures += 1
                console.print(f"[red]{provider} failed:[/] {exc}")
        try:
            _run_placement(recorder, overrides, control)
        except gpucloud.GpuCloudError as exc:
            failures += 1
            console.print(f"[red]placement failed:[/] {exc}")
    table = Table(title="gpucloud demo")
    for column in ("provider", "step", "result", "seconds"):
        table.add_column(column)
    for s in recorder.steps:
        table.add_row(s.provider, s.action, s.detail if s.ok else f"[red]{s.detail}[/]", f"{s.seconds:.2f}")
    console.print(table)
    console.print(
        "[green]demo finished: every resource was created, used over SSH and deleted; the placement failed over[/]"
        if not failures
        else f"[red]demo failed on {failures} provider(s)[/]"
    )
    return failures == 0

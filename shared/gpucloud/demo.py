"""The README demo: on each provider create an SSH key, a volume and an instance, run a command over SSH
on the instance, then delete everything, and print what happened."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

import gpucloud
from gpucloud import sshexec
from gpucloud.models import InstanceSpec, SshKeySpec, Status, VolumeSpec

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


@contextlib.contextmanager
def _clients(emulator_url: str | None) -> Iterator[dict[str, dict[str, Any]]]:
    """Connection overrides per provider: a private emulator, or whatever the environment configures."""
    if emulator_url is not None:
        yield {name: {} for name in DEMO_SPECS}
        return
    from gpucloud.emulator import EmulatorServer
    from gpucloud.emulator.client import client_overrides

    with EmulatorServer(provision_seconds=1.0) as server:
        yield client_overrides(server.url, server.settings)


def run_demo(console: Console, *, emulator_url: str | None = None) -> bool:
    recorder = _Recorder(console)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="gpucloud-demo-") as tmp, _clients(emulator_url) as overrides:
        private_key, public_key = _keypair(Path(tmp))
        for provider, options in overrides.items():
            try:
                with gpucloud.connect(provider, **options) as cloud:
                    _run_provider(cloud, recorder, private_key, public_key)
            except gpucloud.GpuCloudError as exc:
                failures += 1
                console.print(f"[red]{provider} failed:[/] {exc}")
    table = Table(title="gpucloud demo")
    for column in ("provider", "step", "result", "seconds"):
        table.add_column(column)
    for s in recorder.steps:
        table.add_row(s.provider, s.action, s.detail if s.ok else f"[red]{s.detail}[/]", f"{s.seconds:.2f}")
    console.print(table)
    console.print(
        "[green]demo finished: every resource was created, used over SSH and deleted[/]"
        if not failures
        else f"[red]demo failed on {failures} provider(s)[/]"
    )
    return failures == 0

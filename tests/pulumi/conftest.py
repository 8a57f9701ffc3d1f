"""Fixtures for the Pulumi front-end: the emulator's env for provider processes, one provider process per module."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpucloud.config import env_var
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import PATH_PREFIXES, client_env
from pulumi_gpucloud import GpuCloudProvider

from .harness import Apply, CheckFailed, Declared, Deployment, DynamicProviderHarness, ProviderFailed, Ref, Stack

PROJECT = "gpucloud-tests"
TYPES = {
    "instance": "pulumi-python:dynamic/gpucloud:Instance",
    "volume": "pulumi-python:dynamic/gpucloud:Volume",
    "ssh_key": "pulumi-python:dynamic/gpucloud:SshKey",
}
PROVIDERS = {kind: GpuCloudProvider(kind) for kind in TYPES}
_counter = itertools.count()


def unique(prefix: str) -> str:
    """Names that no other test (or earlier run in this session) uses: lookups by name must find one."""
    return f"{prefix}-{next(_counter)}"


@pytest.fixture(scope="session")
def emulator_env(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What a provider process needs to reach the emulator, and no gpucloud config file from the user."""
    missing = tmp_path_factory.mktemp("noconfig") / "config.toml"
    return {**client_env(emulator.url, emulator.settings), "GPUCLOUD_CONFIG": str(missing)}


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("project")
    (directory / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
    return directory


@pytest.fixture(scope="module")
def harness(project_dir: Path, emulator_env: dict[str, str]) -> Iterator[DynamicProviderHarness]:
    """The SDK's dynamic provider server, as the engine launches it, pointed at the emulator via env."""
    with DynamicProviderHarness(project_dir, project=PROJECT, env=emulator_env) as running:
        yield running


@pytest.fixture(scope="module")
def instant() -> Iterator[EmulatorServer]:
    """Lifecycle steps at once and no sshd, so a step costs only its round trips."""
    with EmulatorServer(provision_seconds=0.0, rate_limits={}, ssh=False) as server:
        yield server


@pytest.fixture(scope="module")
def fast_harness(
    instant: EmulatorServer, project_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DynamicProviderHarness]:
    """The SDK's provider server (as ``harness``) on the instant emulator, with no user config file."""
    missing = tmp_path_factory.mktemp("noconfig") / "config.toml"
    env = {**client_env(instant.url, instant.settings), "GPUCLOUD_CONFIG": str(missing)}
    env.update({env_var(p, "poll_interval"): "0.01" for p in PATH_PREFIXES})
    with DynamicProviderHarness(project_dir, project=PROJECT, env=env) as running:
        yield running


def up(h: DynamicProviderHarness, kind: str, name: str, props: dict[str, Any], state: Any = None) -> Any:
    return h.up(name, PROVIDERS[kind], props, TYPES[kind], state)


def declare(kind: str, name: str, props: dict[str, Any], **options: Any) -> Declared:
    """One resource of a program for ``DynamicProviderHarness.deploy``."""
    return Declared(name, TYPES[kind], PROVIDERS[kind], props, **options)


def attached_by_name(instance: str) -> Apply:
    """What ``Volume(attach_to=box.name)`` registers: the name, tied to ``box.id`` (resources.py; see
    test_program_mocks.py::test_attach_to_is_unknown_while_its_instance_is_replaced)."""
    return Apply(lambda values: values[0], (Ref(instance, "name"), Ref(instance, "id")))


# A deployment and, when it refused, how: ``check: [(property, reason)]`` or ``diff: <the provider's error line>``.
Attempt = tuple[Deployment, str | None]


def attempt(h: DynamicProviderHarness, program: list[Declared], stack: Stack, *, preview: bool) -> Attempt:
    """A preview or an up that may refuse (a Check failure or a failed Diff); any other failure propagates."""
    try:
        return h.deploy(program, stack, preview=preview), None
    except CheckFailed as exc:
        return exc.deployment, f"check: {exc.failures}"  # type: ignore[attr-defined]
    except ProviderFailed as exc:
        if exc.rpc_name != "Diff":
            raise
        lines = [line for line in exc.details.splitlines() if line.strip()]
        return exc.deployment, f"diff: {lines[-1] if lines else exc.details}"  # type: ignore[attr-defined]

"""The fault-injection suite's own emulator, clients, front-end runners and the scans it counts with.

One emulator per test process, apart from the session one, because these tests switch world-wide faults on:
other tests sharing an emulator would see them. SSH is off (nothing here logs in to a machine) so hundreds of
instances cost no sshd processes.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_env, client_overrides
from tests import figures
from tests.ansible.conftest import Ansible, base_env
from tests.pulumi.conftest import PROJECT
from tests.pulumi.harness import DynamicProviderHarness

NO_FAULTS: dict[str, Any] = {
    "latency_ms": 0,
    "error_rate": 0.0,
    "rate_limit_burst": 0,
    "drop_create_rate": 0.0,
    "error_on_create": True,
    "reject_auth": False,
    "create_error_burst": 0,
    "rules": (),
}
# Short retry pauses keep the suite quick; the retry logic is the same at any scale.
FAST_RETRIES: dict[str, Any] = {"retry_backoff": 0.02, "poll_interval": 0.1}


@pytest.fixture(scope="session")
def fault_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(provision_seconds=0.5, rate_limits={}, ssh=False) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_faults_after(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "fault_emulator" in request.fixturenames:
        world = request.getfixturevalue("fault_emulator").world
        world.set_faults(**NO_FAULTS)
        world.set_rate_limit("datacrunch", None)


@pytest.fixture(scope="session")
def fault_overrides(fault_emulator: EmulatorServer) -> dict[str, dict[str, Any]]:
    overrides = client_overrides(fault_emulator.url, fault_emulator.settings)
    return {provider: {**options, **FAST_RETRIES} for provider, options in overrides.items()}


def fconnect(overrides: dict[str, dict[str, Any]], provider: str, **extra: Any) -> gpucloud.Provider:
    return gpucloud.connect(provider, **{**overrides[provider], **extra})


@pytest.fixture(scope="session")
def lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("locks")


@pytest.fixture(scope="session")
def fault_env(
    fault_emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory, lock_dir: Path
) -> dict[str, str]:
    """Environment for front-end processes (ansible-playbook, the Pulumi provider) pointed at the fault emulator."""
    home = tmp_path_factory.mktemp("fault-home")
    (home / "tmp").mkdir()
    env = {**base_env(home), **client_env(fault_emulator.url, fault_emulator.settings)}
    for provider in fault_emulator.credentials:
        env[f"GPUCLOUD_{provider.upper()}_RETRY_BACKOFF"] = str(FAST_RETRIES["retry_backoff"])
        env[f"GPUCLOUD_{provider.upper()}_POLL_INTERVAL"] = str(FAST_RETRIES["poll_interval"])
    env["GPUCLOUD_LOCK_DIR"] = str(lock_dir)
    return env


@pytest.fixture
def fault_ansible(fault_env: dict[str, str], tmp_path: Path) -> Ansible:
    return Ansible(fault_env, tmp_path)


@pytest.fixture
def pulumi_project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "Pulumi.yaml").write_text(f"name: {PROJECT}\nruntime: python\n")
    return directory


@pytest.fixture
def fault_harness(pulumi_project: Path, fault_env: dict[str, str]) -> Iterator[DynamicProviderHarness]:
    with DynamicProviderHarness(pulumi_project, project=PROJECT, env=fault_env) as running:
        yield running


# --- counting -------------------------------------------------------------------------------------------
@dataclass
class Tally:
    """The figures of one test; :meth:`publish` records them and returns them for the test to assert."""

    operations: int = 0
    faults: int = 0
    duplicates: int = 0
    orphans: int = 0
    leaks: int = 0
    notes: list[str] = field(default_factory=list)

    def publish(self) -> Tally:
        figures.record("operations tried", self.operations)
        figures.record("faults injected", self.faults)
        figures.record("duplicates", self.duplicates)
        figures.record("orphans", self.orphans)
        figures.record("leaked secrets", self.leaks)
        return self


def faults_since(server: EmulatorServer, start: int) -> int:
    return sum(1 for r in server.world.requests[start:] if r.was_fault)


def named(cloud: gpucloud.Provider, kind: str, prefix: str) -> list[tuple[str, str]]:
    """(name, id) of every ``kind`` on the provider whose name starts with ``prefix``."""
    listing = {"instance": cloud.list_instances, "volume": cloud.list_volumes, "ssh_key": cloud.list_ssh_keys}[kind]
    return [(r.name, r.id) for r in listing() if r.name.startswith(prefix)]


def audit(present: Iterable[tuple[str, str]], known: dict[str, str]) -> tuple[int, int, list[str]]:
    """Duplicates (extra resources per desired name) and orphans (resources whose id no result reports).

    ``present``: (name, id) on the provider; ``known``: desired name -> the id the run reported for it.
    """
    present = list(present)
    counts = Counter(name for name, _ in present)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    reported = set(known.values())
    orphans = [f"{name}={rid}" for name, rid in present if rid not in reported]
    return duplicates, len(orphans), orphans


# --- leak scanning ----------------------------------------------------------------------------------------
def emulator_secrets(server: EmulatorServer) -> list[str]:
    """Every credential the emulator accepts and every token it issued."""
    values = [
        v for creds in server.credentials.values() for k, v in creds.items() if k not in ("client_id", "username")
    ]
    return [*values, *server.world.issued_tokens()]


def private_key_lines(path: Path) -> list[str]:
    """The base64 body lines of an OpenSSH private key: any one of them in output is a leak."""
    lines = path.read_text().splitlines()
    return [line for line in lines if line and not line.startswith("-----")]


def leaks_in(text: str, secrets: Iterable[str]) -> list[str]:
    """Each line of ``text`` holding a secret, once per secret found in it."""
    found = []
    for line in text.splitlines():
        for secret in secrets:
            if secret and secret in line:
                found.append(f"{secret[:4]}…: {line[:160]}")
    return found


def env_without(env: dict[str, str], *suffixes: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.endswith(suffixes)}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

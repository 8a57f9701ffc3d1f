"""Seeded hosts: ``EmulatorSettings.seed_hosts``, ``POST /_emulator/seed`` and ``gpucloud emulator --seed-hosts``.

Every check lists through the real adapters over HTTP, so a seeded instance must look like a created one
in each provider's wire format (running, an address, an SSH endpoint) for these to pass.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import gpucloud
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides, control_headers, read_env_file, wait_until_healthy
from gpucloud.models import Status
from gpucloud.providers import implemented

IMPLEMENTED = implemented()
PER_PROVIDER = 230  # more than two pages of 100 where the API pages


@pytest.fixture(scope="module")
def seeded() -> Iterator[EmulatorServer]:
    with EmulatorServer(ssh=False, seed_hosts=PER_PROVIDER * len(IMPLEMENTED)) as server:
        yield server


def _list(server: EmulatorServer, provider: str) -> list[gpucloud.Instance]:
    with gpucloud.connect(provider, **client_overrides(server.url, server.settings)[provider]) as cloud:
        return cloud.list_instances()


@pytest.mark.parametrize("provider", IMPLEMENTED)
def test_seeded_instances_list_as_running_hosts(seeded: EmulatorServer, provider: str) -> None:
    instances = _list(seeded, provider)
    assert len(instances) == PER_PROVIDER
    assert len({i.id for i in instances}) == PER_PROVIDER
    assert all(i.name.startswith("seed-") for i in instances)
    assert all(i.status is Status.RUNNING for i in instances)
    assert all(i.public_ip and i.public_ip.startswith("127.") and i.ssh_port for i in instances)
    # Varied enough for inventory groups to mean something.
    assert len({i.location for i in instances}) > 1
    assert len({i.instance_type for i in instances}) > 1


def test_seed_names_are_unique_across_providers(seeded: EmulatorServer) -> None:
    names = [i.name for provider in IMPLEMENTED for i in _list(seeded, provider)]
    assert len(names) == len(set(names)) == PER_PROVIDER * len(IMPLEMENTED)
    assert sorted(names) == [f"seed-{n:05d}" for n in range(len(names))]


def test_tags_are_seeded_where_the_api_has_them(seeded: EmulatorServer) -> None:
    for provider in ("voltagepark", "cloudnexus"):
        tags = [i.tags for i in _list(seeded, provider)]
        assert {t.get("team") for t in tags} == {"research", "training", "inference"}
        assert {t.get("env") for t in tags} == {"prod", "staging"}


def test_control_api_seeds_more_and_spreads_the_remainder() -> None:
    with EmulatorServer(ssh=False) as server:
        control = httpx.Client(base_url=f"{server.url}/_emulator", headers=server.control_headers, timeout=30)
        answer = control.post("/seed", json={"hosts": len(IMPLEMENTED) + 2})
        assert answer.status_code == 200
        counts = answer.json()
        assert sorted(counts) == sorted(IMPLEMENTED) and sum(counts.values()) == len(IMPLEMENTED) + 2
        assert sorted(counts.values()) == [1] * (len(IMPLEMENTED) - 2) + [2, 2]
        for provider, count in counts.items():
            assert len(_list(server, provider)) == count
        assert control.post("/seed", json={"hosts": -1}).status_code == 422


def test_seeded_instances_can_be_deleted() -> None:
    with EmulatorServer(ssh=False, seed_hosts=len(IMPLEMENTED)) as server:
        overrides = client_overrides(server.url, server.settings)["dcdncloud"]
        with gpucloud.connect("dcdncloud", **overrides) as cloud:
            (victim,) = cloud.list_instances()
            cloud.delete_instance(victim.id)
            cloud.wait_for_instance_gone(victim.id, timeout=30, interval=0.1)
            assert cloud.list_instances() == []


def test_cli_flag_starts_a_seeded_emulator(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "emulator.log"
    command = [sys.executable, "-m", "gpucloud.cli", "emulator"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--seed-hosts", "12", "--env-file", str(tmp_path / "env")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, timeout=60)
        headers = control_headers(read_env_file(tmp_path / "env"))
        state = httpx.get(f"{url}/_emulator/state", headers=headers, timeout=30).json()["providers"]
        seeded = {p: len(state.get(p, {}).get("instances", [])) for p in IMPLEMENTED}
        assert sum(seeded.values()) == 12 and min(seeded.values()) >= 2, (seeded, log.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=30)

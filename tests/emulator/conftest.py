"""Fixtures for testing the emulator itself: one server per session, a clean world per test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import verda

from gpucloud.emulator import EmulatorServer


@pytest.fixture(scope="session")
def emu_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(provision_seconds=0.3) as server:
        assert server.world.sshd is not None, "these tests need /usr/sbin/sshd and ssh-keygen"
        yield server


@pytest.fixture
def emu(emu_server: EmulatorServer) -> Iterator[EmulatorServer]:
    """The session emulator with an empty world (no resources, faults, tokens or log)."""
    emu_server.world.reset()
    yield emu_server
    emu_server.world.reset()


@pytest.fixture
def dc(emu: EmulatorServer) -> verda.VerdaClient:
    """The official verda SDK, unchanged except for base_url."""
    creds = emu.credentials["datacrunch"]
    return verda.VerdaClient(creds["client_id"], creds["client_secret"], base_url=emu.base_url("datacrunch"))


@pytest.fixture
def dc_http(emu: EmulatorServer) -> Iterator[httpx.Client]:
    """Raw HTTP against DataCrunch, already holding a bearer token."""
    creds = emu.credentials["datacrunch"]
    with httpx.Client(base_url=emu.base_url("datacrunch"), timeout=10) as client:
        token = client.post("/oauth2/token", json={"grant_type": "client_credentials", **creds}).json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield client


@pytest.fixture
def vp(emu: EmulatorServer) -> Iterator[httpx.Client]:
    token = emu.credentials["voltagepark"]["token"]
    with httpx.Client(
        base_url=emu.base_url("voltagepark"),
        headers={"Authorization": f"Bearer {token}", "x-api-token": token},  # each endpoint reads the one it documents
        timeout=10,
    ) as client:
        yield client


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(private key path, public key text) of a fresh ed25519 key."""
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()

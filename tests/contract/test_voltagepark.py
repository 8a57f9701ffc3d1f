"""Voltage Park through the adapter: each endpoint gets the auth header its doc example shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gpucloud import SshKeySpec, VolumeSpec
from gpucloud.emulator import EmulatorServer

from ..conftest import connect


def test_each_endpoint_gets_its_documented_auth_header(
    overrides: dict[str, Any], emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    # The emulator is strict per endpoint (a wrong header alone is a 401), so the adapter's calls below only
    # succeed if it sends x-api-token to SSH keys and storage and Bearer to the VM/catalogue endpoints.
    base, token = emulator.base_url("voltagepark"), emulator.credentials["voltagepark"]["token"]
    assert httpx.get(base + "/storage/", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401
    assert httpx.get(base + "/virtual-machines/", headers={"x-api-token": token}, timeout=10).status_code == 401
    with connect(overrides, "voltagepark") as vp:
        key = vp.create_ssh_key(SshKeySpec(name="vp auth header", public_key=keypair[1]))
        volume = vp.create_volume(VolumeSpec(name="vp-auth-header", size_gb=10))
        try:
            assert key.id in {k.id for k in vp.list_ssh_keys()}
            assert volume.id in {v.id for v in vp.list_volumes()}
            assert isinstance(vp.list_instances(), list)  # Bearer endpoint (other tests' instances may be there)
        finally:
            vp.delete_volume(volume.id)
            vp.delete_ssh_key(key.id)
        assert volume.id not in {v.id for v in vp.list_volumes()}

"""The account ledger of the control API: what each emulated account holds and bills, read over HTTP."""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import gpucloud
from gpucloud import InstanceSpec, VolumeSpec
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides, read_ledger

from ..contract.specs import INSTANCE


def test_ledger_bills_instances_and_volumes_at_their_price(emu: EmulatorServer) -> None:
    assert {name: account["items"] for name, account in read_ledger(emu.url, headers=emu.control_headers).items()} == {
        name: [] for name in ("datacrunch", "voltagepark", "dcdncloud", "cloudnexus", "computestacks")
    }
    options = client_overrides(emu.url, emu.settings)["voltagepark"]
    with gpucloud.connect("voltagepark", **options) as cloud:
        blob = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        key = blob.decode() + " ledger"
        spec = InstanceSpec(name="ledger-vm", ssh_keys=(key,), **INSTANCE["voltagepark"])
        instance = cloud.create_instance(spec).instance
        volume = cloud.create_volume(VolumeSpec(name="ledger-vol", size_gb=100))
    account = read_ledger(emu.url, "voltagepark", headers=emu.control_headers)["voltagepark"]
    by_kind = {item["kind"]: item for item in account["items"]}
    assert (by_kind["instance"]["id"], by_kind["volume"]["id"]) == (instance.id, volume.id)
    assert by_kind["volume"]["hourly_usd"] == volume.price_per_hour
    assert account["billed"] == 2 and account["kept"] == 0
    assert account["hourly_usd"] == pytest.approx(by_kind["instance"]["hourly_usd"] + by_kind["volume"]["hourly_usd"])


def test_ledger_of_an_unknown_provider_is_404(emu: EmulatorServer) -> None:
    assert (
        httpx.get(
            f"{emu.url}/_emulator/ledger", params={"provider": "nosuchcloud"}, headers=emu.control_headers
        ).status_code
        == 404
    )

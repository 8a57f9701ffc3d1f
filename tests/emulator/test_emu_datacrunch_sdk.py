"""The official verda SDK, unchanged except for base_url, against the emulator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import verda
from verda.exceptions import APIException
from verda.instances import Instance

from gpucloud.emulator import EmulatorServer
from tests.emulator.helpers import run_ssh, wait_for


def _status(dc: verda.VerdaClient, instance_id: str, wanted: str) -> Instance | None:
    instance = dc.instances.get_by_id(instance_id)
    return instance if instance.status == wanted else None


def _gone(dc: verda.VerdaClient, instance_id: str) -> bool:
    try:
        dc.instances.get_by_id(instance_id)
    except APIException as exc:
        return exc.code == "not_found"
    return False


def test_catalogue(emu: EmulatorServer, dc: verda.VerdaClient) -> None:
    types = {t.instance_type: t for t in dc.instance_types.get()}
    assert {"1V100.6V", "1A100.22V", "1H100.80S.30V", "8H100.80S.176V", "1L40S.20V", "CPU.4V.16G"} <= set(types)
    h100x8 = types["8H100.80S.176V"]
    assert h100x8.gpu["number_of_gpus"] == 8 and h100x8.currency == "usd"
    assert 0 < h100x8.spot_price_per_hour < h100x8.price_per_hour
    eur = {t.instance_type: t for t in dc.instance_types.get(currency="eur")}
    assert eur["8H100.80S.176V"].currency == "eur" and eur["8H100.80S.176V"].price_per_hour < h100x8.price_per_hour

    all_images = {i.image_type for i in dc.images.get()}
    cpu_images = {i.image_type for i in dc.images.get(instance_type="CPU.4V.16G")}
    assert "ubuntu-24.04-cuda-12.8-open-docker" in all_images
    assert cpu_images and not any("cuda" in i for i in cpu_images) and cpu_images < all_images

    assert {loc["code"] for loc in dc.locations.get()} == {"FIN-01", "FIN-02", "FIN-03", "ICE-01"}
    assert dc.balance.get().amount == 1000.0
    assert {"NVMe", "HDD"} <= {v.type for v in dc.volume_types.get()}


def test_availability_follows_capacity(emu: EmulatorServer, dc: verda.VerdaClient) -> None:
    assert dc.instances.is_available("1H100.80S.30V", location_code="FIN-02") is True
    emu.world.set_capacity("datacrunch", "1H100.80S.30V", "FIN-02", False)
    assert dc.instances.is_available("1H100.80S.30V", location_code="FIN-02") is False
    assert dc.instances.is_available("1H100.80S.30V", location_code="FIN-01") is True
    (fin02,) = dc.instances.get_availabilities(location_code="FIN-02")
    assert fin02["location_code"] == "FIN-02" and "1H100.80S.30V" not in fin02["availabilities"]
    assert "1V100.6V" in fin02["availabilities"]


def test_ssh_keys(dc: verda.VerdaClient, keypair: tuple[Path, str]) -> None:
    _, public = keypair
    key = dc.ssh_keys.create("laptop", public)
    fetched = dc.ssh_keys.get_by_id(key.id)
    assert (fetched.name, fetched.public_key) == ("laptop", public)
    assert [k.id for k in dc.ssh_keys.get()] == [key.id]
    dc.ssh_keys.delete_by_id(key.id)
    with pytest.raises(APIException) as missing:
        dc.ssh_keys.get_by_id(key.id)
    assert missing.value.code == "not_found"

    two = [dc.ssh_keys.create(f"k{i}", public).id for i in range(2)]
    dc.ssh_keys.delete(two)
    assert dc.ssh_keys.get() == []
    with pytest.raises(APIException) as invalid:
        dc.ssh_keys.create("broken", "not a key")
    assert invalid.value.code == "invalid_request"


def test_volumes(dc: verda.VerdaClient) -> None:
    vol = dc.volumes.create("NVMe", "data", 100, location="FIN-01")
    assert (vol.status, vol.size, vol.is_os_volume, vol.location) == ("detached", 100, False, "FIN-01")
    dc.volumes.rename(vol.id, "data2")
    dc.volumes.increase_size(vol.id, 200)
    got = dc.volumes.get_by_id(vol.id)
    assert (got.name, got.size) == ("data2", 200)
    with pytest.raises(APIException) as shrink:
        dc.volumes.increase_size(vol.id, 150)
    assert shrink.value.code == "invalid_request"

    clone = dc.volumes.clone(vol.id, name="copy")
    assert isinstance(clone, verda.volumes.Volume)
    assert (clone.name, clone.size, clone.type) == ("copy", 200, "NVMe") and clone.id != vol.id

    dc.volumes.delete(clone.id)  # to trash
    assert clone.id in [v.id for v in dc.volumes.get_in_trash()]
    assert clone.id not in [v.id for v in dc.volumes.get()]
    dc.volumes.delete_by_id(vol.id, is_permanent=True)
    assert dc.volumes.get_by_id(vol.id).status == "deleted"
    assert vol.id not in [v.id for v in dc.volumes.get_in_trash()]


def test_instance_lifecycle_with_real_ssh(
    emu: EmulatorServer, dc: verda.VerdaClient, keypair: tuple[Path, str]
) -> None:
    private, public = keypair
    key = dc.ssh_keys.create("deployer", public)
    created = dc.instances.create(
        "1V100.6V", "ubuntu-24.04-cuda-12.8-open-docker", "trainer", "demo",
        ssh_key_ids=[key.id], location="FIN-01", os_volume={"name": "root-disk", "size": 60},
    )  # fmt: skip
    assert created.status in ("provisioning", "running")  # the SDK waits until it leaves "ordered"
    running = wait_for(lambda: _status(dc, created.id, "running"))
    assert running.ip and running.ip.startswith("127.") and running.os_volume_id
    os_volume = dc.volumes.get_by_id(running.os_volume_id)
    assert (os_volume.is_os_volume, os_volume.name, os_volume.size, os_volume.status) == (
        True, "root-disk", 60, "attached"
    )  # fmt: skip

    hello = run_ssh(private, emu.world.ssh_user, running.ip, emu.settings.ssh_port, "echo hello")
    assert hello.stdout.strip() == "hello", hello.stderr

    dc.instances.action(created.id, "shutdown")
    wait_for(lambda: _status(dc, created.id, "offline"))
    assert run_ssh(private, emu.world.ssh_user, running.ip, emu.settings.ssh_port, "true").returncode != 0

    scratch = dc.volumes.create("NVMe", "scratch", 10, location="FIN-01")
    dc.volumes.attach(scratch.id, created.id)  # allowed: the instance is offline
    assert dc.volumes.get_by_id(scratch.id).instance_id == created.id
    (raw,) = emu.world.instances("datacrunch")  # the SDK's Instance drops volume_ids; the wire has it
    assert set(raw["volume_ids"]) == {running.os_volume_id, scratch.id}

    dc.instances.action(created.id, "delete", volume_ids=[scratch.id])
    wait_for(lambda: _gone(dc, created.id))
    assert created.id not in [i.id for i in dc.instances.get()]
    assert dc.volumes.get_by_id(scratch.id).status == "deleted"
    kept = dc.volumes.get_by_id(running.os_volume_id)
    assert (kept.status, kept.instance_id) == ("detached", None)
    assert emu.world.sshd is not None and emu.world.sshd.names() == []


def test_start_after_shutdown_brings_ssh_back(
    emu: EmulatorServer, dc: verda.VerdaClient, keypair: tuple[Path, str]
) -> None:
    private, public = keypair
    key = dc.ssh_keys.create("k", public)
    inst = dc.instances.create("CPU.4V.16G", "ubuntu-24.04", "cpu-box", "", ssh_key_ids=[key.id], location="ICE-01")
    ip = wait_for(lambda: _status(dc, inst.id, "running")).ip
    dc.instances.action(inst.id, "shutdown")
    wait_for(lambda: _status(dc, inst.id, "offline"))
    dc.instances.action(inst.id, "start")
    again = wait_for(lambda: _status(dc, inst.id, "running"))
    assert again.ip == ip
    assert run_ssh(private, emu.world.ssh_user, ip, emu.settings.ssh_port, "echo back").stdout.strip() == "back"


def test_errors_carry_provider_codes(emu: EmulatorServer, dc: verda.VerdaClient) -> None:
    def code_of(call: object) -> str | None:
        with pytest.raises(APIException) as err:
            assert callable(call)
            call()
        return err.value.code

    assert code_of(lambda: dc.instances.create("9X999.1V", "ubuntu-24.04", "h", "d", location="FIN-01")) == (
        "invalid_request"
    )
    assert code_of(lambda: dc.instances.get_by_id("3f0c5a52-0000-4000-8000-000000000000")) == "not_found"
    emu.world.set_capacity("datacrunch", "1A100.22V", None, False)
    assert code_of(lambda: dc.instances.create("1A100.22V", "ubuntu-24.04", "h", "", location="FIN-03")) == (
        "service_unavailable"
    )
    emu.world.set_balance("datacrunch", 0.10)
    assert code_of(lambda: dc.instances.create("1L40S.20V", "ubuntu-24.04", "h", "", location="FIN-03")) == (
        "insufficient_funds"
    )
    emu.world.set_balance("datacrunch", 1000)
    fresh = dc.instances.create("1L40S.20V", "ubuntu-24.04", "h", "", location="FIN-03", wait_for_status=None)
    assert fresh.status in ("ordered", "provisioning")
    assert code_of(lambda: dc.instances.action(fresh.id, "shutdown")) == "invalid_request"
    assert code_of(lambda: verda.VerdaClient("wrong", "secret", base_url=emu.base_url("datacrunch"))) == (
        "unauthorized_request"
    )


def test_expired_token_is_rejected_and_refresh_recovers(emu: EmulatorServer, dc: verda.VerdaClient) -> None:
    dc.balance.get()
    emu.world.expire_tokens("datacrunch")
    with pytest.raises(APIException) as expired:
        dc.balance.get()
    assert expired.value.code == "unauthorized_request"

    refreshes = emu.world.token_grants("datacrunch").get("refresh_token", 0)
    dc._authentication.refresh()  # what the SDK does by itself once its own clock says the token expired
    assert dc.balance.get().amount == 1000.0
    assert emu.world.token_grants("datacrunch")["refresh_token"] == refreshes + 1

    # With refresh tokens revoked the refresh grant answers 401 and the SDK falls back to client credentials.
    logins = emu.world.token_grants("datacrunch")["client_credentials"]
    emu.world.revoke_refresh_tokens()
    emu.world.expire_tokens("datacrunch")
    dc._authentication.refresh()
    assert dc.balance.get().amount == 1000.0
    assert emu.world.token_grants("datacrunch")["client_credentials"] == logins + 1


def test_sdk_refreshes_on_its_own_when_tokens_are_short_lived() -> None:
    with EmulatorServer(token_ttl_seconds=1, ssh=False) as server:
        creds = server.credentials["datacrunch"]
        dc = verda.VerdaClient(creds["client_id"], creds["client_secret"], base_url=server.base_url("datacrunch"))
        assert dc.balance.get().amount == 1000.0
        time.sleep(1.1)
        assert dc.balance.get().amount == 1000.0  # the SDK saw expires_in=1 and refreshed first
        assert server.world.token_grants("datacrunch") == {"client_credentials": 1, "refresh_token": 1}
        assert server.world.request_count("datacrunch", "GET", "/balance") == 2

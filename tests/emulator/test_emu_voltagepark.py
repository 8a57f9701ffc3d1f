"""Voltage Park through raw HTTP: auth, pagination, VMs with real SSH, power, storage, keys."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import read_ledger
from tests.emulator.helpers import run_ssh, ssh_argv, wait_for


def _presets(vp: httpx.Client) -> dict[int, dict[str, Any]]:
    """First preset per GPU count."""
    by_gpus: dict[int, dict[str, Any]] = {}
    for preset in vp.get("/instant-deploy-presets/").json():
        by_gpus.setdefault(preset["resources"]["gpus"]["h100-sxm5-80gb"]["count"], preset)
    return by_gpus


def _deploy(vp: httpx.Client, name: str, **extra: Any) -> str:
    config_id = _presets(vp)[1]["id"]
    created = vp.post("/virtual-machines/instant", json={"config_id": config_id, "name": name, **extra})
    assert created.status_code == 201, created.text
    return str(created.json()["vm_id"])


def _vm_in(vp: httpx.Client, vm_id: str, status: str) -> dict[str, Any] | None:
    vm = vp.get(f"/virtual-machines/{vm_id}").json()
    return vm if vm.get("status") == status else None


def test_auth_takes_the_header_each_endpoint_documents(emu: EmulatorServer) -> None:
    base = emu.base_url("voltagepark")
    token = emu.credentials["voltagepark"]["token"]
    bearer, api_key = {"Authorization": f"Bearer {token}"}, {"x-api-token": token}
    assert httpx.get(base + "/virtual-machines").status_code == 401
    assert httpx.get(base + "/virtual-machines", headers={"Authorization": "Bearer wrong"}).json() == {
        "detail": "Invalid API token"
    }
    assert httpx.get(base + "/virtual-machines", headers=bearer).status_code == 200
    assert httpx.get(base + "/virtual-machines/", headers=bearer).status_code == 200
    # VMs are documented with Bearer: x-api-token alone is refused, naming the header to send
    refused = httpx.get(base + "/virtual-machines/", headers=api_key)
    assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["detail"]
    # SSH keys and storage are documented with x-api-token: Bearer alone is refused
    for path in ("/organization/ssh-keys", "/storage/", "/storage/hourly-rate"):
        assert httpx.get(base + path, headers=api_key).status_code == 200, path
        refused = httpx.get(base + path, headers=bearer)
        assert refused.status_code == 401 and "x-api-token" in refused.json()["detail"], path
    assert httpx.get(base + "/storage/", headers={"x-api-token": "wrong"}).status_code == 401
    presets = httpx.get(base + "/instant-deploy-presets/")  # documented without auth
    assert presets.status_code == 200 and len(presets.json()) >= 2


def test_pagination_and_limits(vp: httpx.Client) -> None:
    first = vp.get("/locations/").json()  # default limit 3
    assert len(first["results"]) == 3 and first["total_result_count"] == 4
    assert (first["has_previous"], first["has_next"]) == (False, True)
    rest = vp.get("/locations/", params={"offset": 3}).json()
    assert len(rest["results"]) == 1 and (rest["has_previous"], rest["has_next"]) == (True, False)
    assert rest["results"][0]["hostnodes"][0]["available_resources"]["gpus"]["h100-sxm5-80gb"]["count"] == 8

    too_many = vp.get("/locations/", params={"limit": 16})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["query", "limit"]
    assert vp.get("/virtual-machines/", params={"limit": 101}).status_code == 422
    assert vp.get("/organization/ssh-keys", params={"limit": 151}).status_code == 422
    assert vp.get("/storage/", params={"limit": 100}).status_code == 200


def test_ssh_key_validation(vp: httpx.Client, keypair: tuple[Path, str]) -> None:
    public = keypair[1]
    for bad_name in ("ab", "x" * 65, "under_score", "semi;colon"):
        assert vp.post("/organization/ssh-keys", json={"name": bad_name, "content": public}).status_code == 422
    assert vp.post("/organization/ssh-keys", json={"name": "Good Key-1", "content": "garbage"}).status_code == 422
    created = vp.post("/organization/ssh-keys", json={"name": "Good Key-1", "content": public})
    assert created.status_code == 201 and created.json()["content"] == public
    assert vp.post("/organization/ssh-keys", json={"name": "Good Key-1", "content": public}).status_code == 400
    for i in range(2):
        vp.post("/organization/ssh-keys", json={"name": f"extra-{i}", "content": public})
    page = vp.get("/organization/ssh-keys", params={"limit": 2}).json()
    assert page["total_result_count"] == 3 and len(page["results"]) == 2 and page["has_next"]
    key_id = created.json()["id"]
    assert vp.delete(f"/organization/ssh-keys/{key_id}").status_code == 204
    assert vp.delete(f"/organization/ssh-keys/{key_id}").status_code == 404


def test_vm_lifecycle_with_ssh_through_port_forward(
    emu: EmulatorServer, vp: httpx.Client, keypair: tuple[Path, str]
) -> None:
    private, public = keypair
    key_id = vp.post("/organization/ssh-keys", json={"name": "team key", "content": public}).json()["id"]
    vm_id = _deploy(vp, "trainer", organization_ssh_keys={"mode": "selective", "ssh_key_ids": [key_id]}, tags=["demo"])
    fresh = vp.get(f"/virtual-machines/{vm_id}").json()
    assert fresh["status"] == "Provisioning" and fresh["public_ip"] == "" and fresh["port_forwards"] == []

    vm = wait_for(lambda: _vm_in(vp, vm_id, "Running"))
    (forward,) = vm["port_forwards"]
    assert vm["public_ip"].startswith("127.") and forward["internal_port"] == 22
    ssh = (private, emu.world.ssh_user, vm["public_ip"], forward["external_port"])
    assert run_ssh(*ssh, "echo hello").stdout.strip() == "hello"

    patched = vp.patch(f"/virtual-machines/{vm_id}", json={"name": "renamed", "tags": ["a", "b"]})
    assert patched.json() == {"name": "renamed", "tags": ["a", "b"]}
    assert float(vp.get("/billing/hourly-rate").json()["rate_hourly"]) > 0

    session = subprocess.Popen(ssh_argv(*ssh, "echo open; sleep 60"), stdout=subprocess.PIPE, text=True)
    assert session.stdout is not None and session.stdout.readline().strip() == "open"
    assert vp.put(f"/virtual-machines/{vm_id}/power-status", json={"status": "stopped"}).json() == {"status": "stopped"}
    assert vp.get(f"/virtual-machines/{vm_id}").json()["status"] == "Stopping"
    wait_for(lambda: _vm_in(vp, vm_id, "Stopped"))
    assert session.wait(timeout=10) != 0  # stopping the VM also ended the open session
    assert run_ssh(*ssh, "true").returncode != 0
    assert vp.put(f"/virtual-machines/{vm_id}/power-status", json={"status": "paused"}).status_code == 422
    vp.put(f"/virtual-machines/{vm_id}/power-status", json={"status": "started"})
    wait_for(lambda: _vm_in(vp, vm_id, "Running"))
    assert run_ssh(*ssh, "echo again").stdout.strip() == "again"

    assert vp.delete(f"/virtual-machines/{vm_id}").status_code == 202
    assert vp.get(f"/virtual-machines/{vm_id}").json()["status"] == "Terminating"
    wait_for(lambda: vp.get(f"/virtual-machines/{vm_id}").status_code == 404)
    assert vp.get("/virtual-machines/").json()["total_result_count"] == 0


def test_vm_list_pages_and_raw_ssh_keys(vp: httpx.Client, keypair: tuple[Path, str]) -> None:
    ids = [_deploy(vp, f"vm-{i}", ssh_keys=[keypair[1]]) for i in range(3)]
    page = vp.get("/virtual-machines/", params={"limit": 2}).json()
    assert [v["id"] for v in page["results"]] == ids[:2] and page["has_next"] and page["total_result_count"] == 3
    last = vp.get("/virtual-machines/", params={"limit": 2, "offset": 2}).json()
    assert [v["id"] for v in last["results"]] == ids[2:] and not last["has_next"]


def test_vm_create_validation(emu: EmulatorServer, vp: httpx.Client) -> None:
    preset = _presets(vp)[8]
    assert vp.post("/virtual-machines/instant", json={"config_id": "nope", "name": "x"}).status_code == 422
    short = vp.post("/virtual-machines/instant", json={"config_id": preset["id"], "name": "x", "password": "short"})
    assert short.status_code == 422 and short.json()["detail"][0]["loc"][-1] == "password"
    unknown = vp.post(
        "/virtual-machines/instant", json={"config_id": "00000000-0000-4000-8000-000000000000", "name": "x"}
    )
    assert unknown.status_code == 400

    emu.world.set_capacity("voltagepark", preset["id"], None, False)
    assert preset["id"] in [p["id"] for p in vp.get("/instant-deploy-presets/", params={"available": False}).json()]
    full = vp.post("/virtual-machines/instant", json={"config_id": preset["id"], "name": "big"})
    assert full.status_code == 400 and "availability" in full.json()["detail"]


def test_whole_node_preset_uses_up_a_hostnode(vp: httpx.Client) -> None:
    big = _presets(vp)[8]
    before = len(vp.get(f"/instant-deploy-presets/{big['id']}").json()["location_ids_with_availability"])
    vp.post("/virtual-machines/instant", json={"config_id": big["id"], "name": "whole-node"})
    after = vp.get(f"/instant-deploy-presets/{big['id']}").json()["location_ids_with_availability"]
    assert before == 4 and len(after) == 4  # the first location has a second hostnode
    for _ in range(4):
        vp.post("/virtual-machines/instant", json={"config_id": big["id"], "name": "more"})
    assert vp.get(f"/instant-deploy-presets/{big['id']}").json()["location_ids_with_availability"] == []


def test_storage(vp: httpx.Client) -> None:
    vm_id = _deploy(vp, "with-storage")
    assert vp.get("/storage/hourly-rate").json()["hourly_rate_per_gb"] == "0.017408"  # the doc's example
    created = vp.post("/storage/", json={"size_in_gb": 100, "name": "My Storage Volume", "order_ids": [vm_id]})
    assert created.status_code == 201
    volume = created.json()
    assert volume["rate_hourly"] == "1.740800" and volume["order_ids"] == [vm_id] and volume["status"] == "active"
    assert vp.get(f"/storage/{volume['id']}").json()["used_capacity_bytes"] == 0
    assert vp.patch(f"/storage/{volume['id']}", json={"size_in_gb": 50}).status_code == 400
    grown = vp.patch(f"/storage/{volume['id']}", json={"size_in_gb": 200, "name": "bigger"}).json()
    assert (grown["size_in_gb"], grown["name"]) == (200, "bigger")
    assert vp.delete(f"/storage/{volume['id']}").status_code == 400  # still linked to a VM
    vp.patch(f"/storage/{volume['id']}", json={"order_ids": []})
    assert vp.delete(f"/storage/{volume['id']}").status_code == 204
    assert vp.get(f"/storage/{volume['id']}").status_code == 404
    assert vp.post("/storage/", json={"size_in_gb": 0, "name": "zero"}).status_code == 422


def _bm_location(vp: httpx.Client, network: str = "infiniband") -> dict[str, Any]:
    """A bare-metal location with a free node of ``network`` (documented without auth)."""
    rows = httpx.get(str(vp.base_url).rstrip("/") + "/bare-metal/locations").json()["results"]
    return next(row for row in rows if row[f"gpu_count_{network}"] >= 8)


def _rental(vp: httpx.Client, rental_id: str) -> dict[str, Any] | None:
    # The doc has no GET /bare-metal/{id}: the list is the read.
    return next((r for r in vp.get("/bare-metal/").json()["results"] if r["id"] == rental_id), None)


def _rental_in(vp: httpx.Client, rental_id: str, status: str, power: str) -> dict[str, Any] | None:
    rental = _rental(vp, rental_id)
    return rental if rental and (rental["status"], rental["power_status"]) == (status, power) else None


def test_bare_metal_rental_lifecycle_with_real_ssh(
    emu: EmulatorServer, vp: httpx.Client, keypair: tuple[Path, str]
) -> None:
    private, public = keypair
    location = _bm_location(vp)
    assert location["specs_per_node"]["gpu_count"] == 8 and location["gpu_price_infiniband"] > 0
    body = {"location_id": location["id"], "gpu_count": 8, "name": "bm-1", "network_type": "infiniband",
            "ssh_keys": [public], "tags": ["team=research"]}  # fmt: skip
    created = vp.post("/bare-metal/", json=body)
    assert created.status_code == 201, created.text
    rental_id = created.json()["rental_id"]
    assert set(created.json()) == {"rental_id", "warning"}
    pending = _rental(vp, rental_id)
    assert pending is not None and pending["status"] == "Pending" and pending["node_count"] == 1
    rows = httpx.get(str(vp.base_url).rstrip("/") + "/bare-metal/locations").json()["results"]
    now_free = next(row for row in rows if row["id"] == location["id"])["gpu_count_infiniband"]
    assert now_free == location["gpu_count_infiniband"] - 8  # the node is taken while the rental lives

    rental = wait_for(lambda: _rental_in(vp, rental_id, "Running", "Running"))
    (node,) = rental["node_networking"]
    assert rental["username"] == "ubuntu"  # emulated hosts log in as the emulator's own account (world.ssh_user)
    ssh = (private, emu.world.ssh_user, node["public_ip"], emu.settings.ssh_port)
    assert run_ssh(*ssh, "echo metal").stdout.strip() == "metal"
    assert float(rental["rate_hourly"]) == pytest.approx(8 * location["gpu_price_infiniband"])
    ledger = {
        i["id"]: i for i in read_ledger(emu.url, "voltagepark", headers=emu.control_headers)["voltagepark"]["items"]
    }
    assert ledger[rental_id]["kind"] == "bare_metal" and ledger[rental_id]["hourly_usd"] == float(rental["rate_hourly"])

    assert vp.patch(f"/bare-metal/{rental_id}", json={"name": "bm-renamed"}).json() == {
        "name": "bm-renamed", "tags": ["team=research"]}  # fmt: skip
    assert vp.post(f"/bare-metal/{rental_id}/reboot", json={"public_ips": ["10.9.9.9"]}).status_code == 400
    assert vp.post(f"/bare-metal/{rental_id}/reboot", json={"public_ips": [node["public_ip"]]}).status_code == 201
    assert _rental(vp, rental_id)["status"] == "Pending"  # type: ignore[index]
    wait_for(lambda: _rental_in(vp, rental_id, "Running", "Running"))
    assert run_ssh(*ssh, "echo rebooted").stdout.strip() == "rebooted"

    assert vp.put(f"/bare-metal/{rental_id}/power-status", json={"status": "stopped"}).status_code == 200
    wait_for(lambda: _rental_in(vp, rental_id, "Running", "Stopped"))
    assert run_ssh(*ssh, "true").returncode != 0
    assert vp.put(f"/bare-metal/{rental_id}/power-status", json={"status": "stopped_disassociated"}).status_code == 422
    assert vp.put(f"/bare-metal/{rental_id}/power-status", json={"status": "started"}).status_code == 200
    wait_for(lambda: _rental_in(vp, rental_id, "Running", "Running"))

    assert vp.delete(f"/bare-metal/{rental_id}").status_code == 202
    assert _rental(vp, rental_id)["status"] == "Terminating"  # type: ignore[index]
    assert vp.put(f"/bare-metal/{rental_id}/power-status", json={"status": "started"}).status_code == 400
    wait_for(lambda: _rental(vp, rental_id) is None)
    assert vp.delete(f"/bare-metal/{rental_id}").status_code == 404
    assert read_ledger(emu.url, "voltagepark", headers=emu.control_headers)["voltagepark"]["items"] == []


def test_bare_metal_create_errors_and_capacity(emu: EmulatorServer, vp: httpx.Client) -> None:
    location = _bm_location(vp, "ethernet")
    body = {"location_id": location["id"], "gpu_count": 8, "name": "bm", "network_type": "ethernet"}
    assert vp.post("/bare-metal/", json={**body, "gpu_count": 4}).status_code == 400  # whole nodes only
    assert vp.post("/bare-metal/", json={**body, "network_type": "token-ring"}).status_code == 422
    unknown = vp.post("/bare-metal/", json={**body, "location_id": "00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 400 and "not found" in unknown.json()["detail"]
    too_many = vp.post("/bare-metal/", json={**body, "gpu_count": location["gpu_count_ethernet"] + 8})
    assert too_many.status_code == 400 and too_many.json()["detail"].startswith("No availability")
    emu.world.set_capacity("voltagepark", "bare-metal-ethernet", location["id"], False)
    refused = vp.post("/bare-metal/", json=body)
    assert refused.status_code == 400 and refused.json()["detail"].startswith("No availability")
    assert vp.get("/bare-metal/").json()["results"] == []
    assert vp.put("/bare-metal/00000000-0000-4000-8000-000000000000/power-status",
                  json={"status": "started"}).status_code == 404  # fmt: skip
    token = emu.credentials["voltagepark"]["token"]
    base = emu.base_url("voltagepark")  # documented with Bearer: x-api-token alone is refused
    assert httpx.get(base + "/bare-metal/", headers={"x-api-token": token}).status_code == 401


def test_stopped_disassociated_bills_storage_only(emu: EmulatorServer, vp: httpx.Client) -> None:
    vm_id = _deploy(vp, "cheap-stop")
    vm = wait_for(lambda: _vm_in(vp, vm_id, "Running"))

    def billed() -> float:
        items = read_ledger(emu.url, "voltagepark", headers=emu.control_headers)["voltagepark"]["items"]
        return float(next(i["hourly_usd"] for i in items if i["id"] == vm_id))

    assert billed() == float(vm["pricing"]["total_associated_per_hr"])
    vp.put(f"/virtual-machines/{vm_id}/power-status", json={"status": "stopped"})
    wait_for(lambda: _vm_in(vp, vm_id, "Stopped"))
    assert billed() == float(vm["pricing"]["total_associated_per_hr"])  # the doc: stopped bills as running
    vp.put(f"/virtual-machines/{vm_id}/power-status", json={"status": "stopped_disassociated"})
    wait_for(lambda: _vm_in(vp, vm_id, "StoppedDisassociated"))
    assert (
        billed() == float(vm["pricing"]["total_disassociated_per_hr"]) < float(vm["pricing"]["total_associated_per_hr"])
    )

"""dcdncloud through raw HTTP: auth, error bodies, catalogue, lifecycle with real SSH, keys, money, rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.world import PUBLISHED_RATE_LIMITS
from tests.emulator.helpers import run_ssh, wait_for

BODY = {"plan": "s-small", "image": "ubuntu-22.04", "region": "eu-central"}


@pytest.fixture
def dcdn(emu: EmulatorServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emu.credentials['dcdncloud']['token']}"}
    with httpx.Client(base_url=emu.base_url("dcdncloud"), headers=headers, timeout=10) as client:
        yield client


def _create(dcdn: httpx.Client, name: str, **extra: Any) -> dict[str, Any]:
    created = dcdn.post("/instances", json={"name": name, **BODY, **extra})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def _status(dcdn: httpx.Client, inst_id: str, status: str) -> dict[str, Any] | None:
    body: dict[str, Any] = dcdn.get(f"/instances/{inst_id}").json()
    return body if body["status"] == status else None


def test_auth_and_error_bodies(emu: EmulatorServer, dcdn: httpx.Client) -> None:
    base = emu.base_url("dcdncloud")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        denied = httpx.get(base + "/plans", headers=headers)
        assert denied.status_code == 401 and denied.json()["error"] == "unauthorized"
        assert set(denied.json()) == {"error", "message"}
    missing = dcdn.post("/instances", json={"name": "x", "image": "ubuntu-22.04", "region": "eu-central"})
    assert (missing.status_code, missing.json()["error"]) == (400, "bad_request")  # not FastAPI's 422
    assert "plan" in missing.json()["message"]
    unknown = dcdn.get("/instances/nope")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "not_found")
    assert dcdn.get("/no/such/route").json()["error"] == "not_found"


def test_catalogue_has_the_documented_shapes(dcdn: httpx.Client) -> None:
    plans = dcdn.get("/plans").json()["plans"]
    documented = {"id", "vcpus", "ram_mb", "disk_gb", "bandwidth_tb", "price_usd", "cpu_type", "dedicated_ip"}
    assert plans and all(set(p) == documented for p in plans)
    assert {p["cpu_type"] for p in plans} == {"shared", "dedicated"}
    images = dcdn.get("/images").json()["images"]
    assert len(images) == 15 and {"ubuntu-22.04", "debian-12"} <= {i["id"] for i in images}
    regions = dcdn.get("/regions").json()["regions"]
    assert all(set(r) == {"id", "nodes"} and r["nodes"] > 0 for r in regions)
    assert dcdn.get("/templates").json()["templates"]


def test_lifecycle_with_real_ssh(emu: EmulatorServer, dcdn: httpx.Client, keypair: tuple[Path, str]) -> None:
    private, public = keypair
    created = _create(dcdn, "web-1", ssh_keys=[public])
    assert created["status"] == "creating" and created["root_password"]
    assert created["ssh_command"] == f"ssh root@{created['ip_address']} -p {created['ssh_port']}"
    inst_id = created["id"]
    shown = dcdn.get(f"/instances/{inst_id}").json()
    assert "root_password" not in shown and "usage" in shown  # shown once, at create only
    assert "root_password" not in dcdn.get("/instances").json()["instances"][0]

    running = wait_for(lambda: _status(dcdn, inst_id, "running"))
    ssh = (private, emu.world.ssh_user, running["ip_address"], running["ssh_port"])
    assert running["ip_address"].startswith("127.") and running["ssh_port"] != 22
    assert run_ssh(*ssh, "echo up").stdout.strip() == "up"

    assert dcdn.post(f"/instances/{inst_id}/stop").json()["status"] == "stopping"
    wait_for(lambda: _status(dcdn, inst_id, "stopped"))
    assert run_ssh(*ssh, "true").returncode != 0
    again = dcdn.post(f"/instances/{inst_id}/stop")
    assert (again.status_code, again.json()["error"]) == (400, "invalid_state")
    dcdn.post(f"/instances/{inst_id}/start")
    wait_for(lambda: _status(dcdn, inst_id, "running"))
    assert run_ssh(*ssh, "echo started").stdout.strip() == "started"

    assert dcdn.post(f"/instances/{inst_id}/restart").json()["status"] == "restarting"
    wait_for(lambda: _status(dcdn, inst_id, "running"))
    assert run_ssh(*ssh, "echo restarted").stdout.strip() == "restarted"

    destroyed = dcdn.delete(f"/instances/{inst_id}")
    assert destroyed.json() == {"status": "destroyed", "message": "Instance has been permanently destroyed"}
    assert dcdn.get(f"/instances/{inst_id}").status_code == 404
    assert dcdn.get("/instances").json()["instances"] == []
    wait_for(lambda: run_ssh(*ssh, "true").returncode != 0)


def test_each_instance_has_its_own_endpoint_and_keys_can_be_added(
    emu: EmulatorServer, dcdn: httpx.Client, keypair: tuple[Path, str]
) -> None:
    private, public = keypair
    first, second = _create(dcdn, "a"), _create(dcdn, "b")
    assert first["ip_address"] != second["ip_address"] and first["ssh_port"] != second["ssh_port"]
    wait_for(lambda: _status(dcdn, first["id"], "running"))
    ssh = (private, emu.world.ssh_user, first["ip_address"], first["ssh_port"])
    assert run_ssh(*ssh, "true").returncode != 0  # created without keys

    bad = dcdn.post(f"/instances/{first['id']}/ssh-key", json={"public_key": "ssh-ed25519 nope"})
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_request")
    added = dcdn.post(f"/instances/{first['id']}/ssh-key", json={"public_key": public})
    assert added.status_code == 200
    assert run_ssh(*ssh, "echo let-in").stdout.strip() == "let-in"  # no restart needed
    assert dcdn.post("/instances/nope/ssh-key", json={"public_key": public}).status_code == 404


def test_create_rules_conflicts_and_invalid_states(dcdn: httpx.Client) -> None:
    first = _create(dcdn, "taken")
    dup = dcdn.post("/instances", json={"name": "taken", **BODY})
    assert (dup.status_code, dup.json()["error"]) == (409, "name_in_use")
    for field, value in (("plan", "xxl"), ("image", "windows"), ("region", "mars"), ("name", "-bad-")):
        refused = dcdn.post("/instances", json={"name": "fresh", **BODY, field: value})
        assert (refused.status_code, refused.json()["error"]) == (400, "bad_request")
        assert value in refused.json()["message"]
    wrong_cpu = dcdn.post("/instances", json={"name": "fresh", **BODY, "cpu_type": "dedicated"})
    assert wrong_cpu.status_code == 400 and "shared" in wrong_cpu.json()["message"]
    early = dcdn.post(f"/instances/{first['id']}/start")  # creating or running: not stopped either way
    assert (early.status_code, early.json()["error"]) == (400, "invalid_state")
    assert [i["name"] for i in dcdn.get("/instances").json()["instances"]] == ["taken"]


def test_credits_and_capacity(emu: EmulatorServer, dcdn: httpx.Client) -> None:
    emu.world.set_balance("dcdncloud", 5.0 / 730 / 2)  # half an hour of s-small
    broke = dcdn.post("/instances", json={"name": "poor", **BODY})
    assert (broke.status_code, broke.json()["error"]) == (402, "insufficient_credits")
    assert dcdn.post("/instances", json={"name": "cheap", **BODY, "plan": "nano"}).status_code == 201

    emu.world.set_capacity("dcdncloud", "s-small", "eu-central", False)
    emu.world.set_balance("dcdncloud", 100.0)
    full = dcdn.post("/instances", json={"name": "full", **BODY})
    assert (full.status_code, full.json()["error"]) == (503, "no_capacity")
    assert dcdn.post("/instances", json={"name": "elsewhere", **BODY, "region": "us-east"}).status_code == 201
    assert sorted(i["name"] for i in dcdn.get("/instances").json()["instances"]) == ["cheap", "elsewhere"]


def test_reset_password_gives_a_new_one(dcdn: httpx.Client) -> None:
    created = _create(dcdn, "pw")
    reset = dcdn.post(f"/instances/{created['id']}/reset-password").json()
    assert set(reset) == {"root_password"} and reset["root_password"] != created["root_password"]
    assert dcdn.post("/instances/nope/reset-password").status_code == 404


def test_published_limit_of_60_per_minute(emu: EmulatorServer, dcdn: httpx.Client) -> None:
    assert PUBLISHED_RATE_LIMITS["dcdncloud"] == 60  # the default every reset world starts with
    with ThreadPoolExecutor(12) as pool:  # the emulator answers in ~45 ms: fill the window in parallel
        assert list(pool.map(lambda _: dcdn.get("/regions").status_code, range(60))) == [200] * 60
    limited = dcdn.get("/regions")
    assert limited.status_code == 429 and 55 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"] == "rate_limited"
    assert emu.world.requests[-1].fault == "rate_limit"
    emu.world.set_rate_limit("dcdncloud", None)
    assert dcdn.get("/regions").status_code == 200


def test_dropped_create_is_committed(emu: EmulatorServer, dcdn: httpx.Client) -> None:
    emu.world.set_faults(drop_create_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        dcdn.post("/instances", json={"name": "lost", **BODY})
    assert dcdn.post("/instances/x/start").status_code == 404  # other POSTs are not creates
    assert [i["name"] for i in emu.world.instances("dcdncloud")] == ["lost"]

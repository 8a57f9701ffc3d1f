"""CloudNexus through raw HTTP: key auth, pagination, jobs, actions, SSH into instances, keys, rate limit."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.cloudnexus import read_only_token
from gpucloud.emulator.world import PUBLISHED_RATE_LIMITS
from tests.emulator.helpers import run_ssh, wait_for

BODY = {"type": "standard-2x4", "region": "us-east-1", "image": "ubuntu-22.04-lts"}


@pytest.fixture
def cn(emu: EmulatorServer) -> Iterator[httpx.Client]:
    emu.world.set_rate_limit("cloudnexus", None)  # the tests that need the published limit set it back
    headers = {"Authorization": f"Bearer {emu.credentials['cloudnexus']['token']}"}
    with httpx.Client(base_url=emu.base_url("cloudnexus"), headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def slow(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lifecycles of 0.6 s (not 0.3), so a transitional status is still there when the next request reads it."""
    monkeypatch.setattr(emu.world.settings, "provision_seconds", 0.6)


def _job(cn: httpx.Client, job_id: str, status: str = "completed") -> dict[str, Any] | None:
    job: dict[str, Any] = cn.get(f"/jobs/{job_id}").json()
    return job if job["status"] == status else None


def _create(cn: httpx.Client, name: str, **extra: Any) -> tuple[str, str]:
    """(instance id, job id) of an accepted create."""
    accepted = cn.post("/compute/instances", json={"name": name, **BODY, **extra})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    return cn.get(f"/jobs/{job_id}").json()["resource_id"], job_id


def _instance(cn: httpx.Client, inst_id: str) -> dict[str, Any]:
    body: dict[str, Any] = cn.get(f"/compute/instances/{inst_id}").json()
    return body


def _act(cn: httpx.Client, inst_id: str, action: str, **extra: Any) -> httpx.Response:
    return cn.post(f"/compute/instances/{inst_id}/actions", json={"action": action, **extra})


def test_key_auth_and_error_bodies(emu: EmulatorServer, cn: httpx.Client) -> None:
    url = emu.base_url("cloudnexus") + "/compute/instances"
    for headers in ({}, {"Authorization": "Bearer cn_test_not_the_key"}):
        denied = httpx.get(url, headers=headers)
        assert denied.status_code == 401 and denied.json() == {
            "error": {"code": "unauthorized", "message": denied.json()["error"]["message"]}
        }
    read_only = {"Authorization": f"Bearer {read_only_token(emu.settings)}"}
    assert httpx.get(url, headers=read_only).status_code == 200
    forbidden = httpx.post(url, headers=read_only, json={"name": "x", **BODY})
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
    missing = cn.get("/compute/instances/inst_nope")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    bad = cn.post("/compute/instances", json={"name": "x", **BODY, "type": "huge-1x1"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_request")
    assert "huge-1x1" in bad.json()["error"]["message"]
    malformed = cn.post("/compute/instances", content=b"{oops", headers={"Content-Type": "application/json"})
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "invalid_request")


def test_pagination_limits_and_filters(cn: httpx.Client) -> None:
    for i in range(5):
        _create(cn, f"node-{i}", region="eu-west-2" if i % 2 else "us-east-1")
    first = cn.get("/compute/instances", params={"page": 1, "per_page": 2}).json()
    assert [i["name"] for i in first["data"]] == ["node-0", "node-1"]
    assert first["pagination"] == {"total": 5, "page": 1, "per_page": 2, "total_pages": 3}
    last = cn.get("/compute/instances", params={"page": 3, "per_page": 2}).json()
    assert [i["name"] for i in last["data"]] == ["node-4"]
    assert cn.get("/compute/instances").json()["pagination"]["per_page"] == 20  # documented default
    assert cn.get("/compute/instances", params={"per_page": 100}).status_code == 200
    too_big = cn.get("/compute/instances", params={"per_page": 101})
    assert (too_big.status_code, too_big.json()["error"]["code"]) == (400, "invalid_request")
    assert cn.get("/compute/instances", params={"page": 0}).status_code == 400
    europe = cn.get("/compute/instances", params={"region": "eu-west-2"}).json()
    assert europe["pagination"]["total"] == 2 and {i["region"] for i in europe["data"]} == {"eu-west-2"}
    wait_for(lambda: cn.get("/compute/instances", params={"status": "running"}).json()["pagination"]["total"] == 5)
    assert cn.get("/compute/instances", params={"status": "stopped"}).json()["data"] == []


def test_list_filters_by_tags(cn: httpx.Client) -> None:
    _create(cn, "train-prod", tags={"team": "training", "env": "prod"})
    _create(cn, "train-dev", tags={"team": "training", "env": "dev"})
    _create(cn, "untagged")

    def names(tags: str) -> list[str]:
        answer = cn.get("/compute/instances", params={"tags": tags})
        assert answer.status_code == 200, answer.text
        return [i["name"] for i in answer.json()["data"]]

    assert names("team:training") == ["train-prod", "train-dev"]
    assert names("team:training,env:prod") == ["train-prod"]
    assert names("team:inference") == []
    bad = cn.get("/compute/instances", params={"tags": "team"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_request")
    assert "tags" in bad.json()["error"]["message"]


def test_create_job_and_ssh_into_the_instance(
    emu: EmulatorServer, cn: httpx.Client, keypair: tuple[Path, str], slow: None
) -> None:
    private, public = keypair
    key = cn.post("/ssh-keys", json={"name": "laptop", "public_key": public}).json()
    accepted = cn.post("/compute/instances", json={"name": "web", **BODY, "ssh_keys": [key["id"]], "tags": {"a": "b"}})
    assert accepted.status_code == 202 and set(accepted.json()) == {"job_id", "status"}
    job = cn.get(f"/jobs/{accepted.json()['job_id']}").json()
    assert job["type"] == "instance.create" and job["status"] in ("queued", "running") and job["error"] is None
    fresh = _instance(cn, job["resource_id"])
    assert fresh["status"] == "provisioning" and fresh["ipv4"] is None and fresh["id"].startswith("inst_")
    assert fresh["tags"] == {"a": "b"} and fresh["ssh_keys"] == [key["id"]]

    done = wait_for(lambda: _job(cn, job["id"]))
    assert done["resource_id"] == fresh["id"]
    running = _instance(cn, fresh["id"])
    assert running["status"] == "running" and running["ipv4"].startswith("127.")
    ssh = (private, emu.world.ssh_user, running["ipv4"], emu.settings.ssh_port)
    assert run_ssh(*ssh, "echo nexus").stdout.strip() == "nexus"
    other, _ = _create(cn, "other")
    assert wait_for(lambda: _instance(cn, other)["ipv4"]) != running["ipv4"]  # one address per instance


def test_actions_resize_snapshot_and_delete(
    emu: EmulatorServer, cn: httpx.Client, keypair: tuple[Path, str], slow: None
) -> None:
    private, public = keypair
    key_id = cn.post("/ssh-keys", json={"name": "k", "public_key": public}).json()["id"]
    inst_id, job_id = _create(cn, "box", ssh_keys=[key_id])
    early = _act(cn, inst_id, "start")  # provisioning (or running): not stopped either way
    assert (early.status_code, early.json()["error"]["code"]) == (400, "invalid_state")
    wait_for(lambda: _job(cn, job_id))
    ssh = (private, emu.world.ssh_user, _instance(cn, inst_id)["ipv4"], emu.settings.ssh_port)

    stop = _act(cn, inst_id, "stop")
    assert stop.status_code == 202 and stop.json()["action"] == "stop"
    assert _instance(cn, inst_id)["status"] == "stopping"
    wait_for(lambda: _job(cn, stop.json()["job_id"]))
    assert _instance(cn, inst_id)["status"] == "stopped" and run_ssh(*ssh, "true").returncode != 0

    assert _act(cn, inst_id, "resize").status_code == 400  # type is required for resize
    assert _act(cn, inst_id, "resize", type="standard-2x4").status_code == 400  # already that type
    assert _act(cn, inst_id, "resize", type="giant").status_code == 400
    assert _act(cn, inst_id, "hibernate").status_code == 400
    resize = _act(cn, inst_id, "resize", type="memory-4x32")
    assert _instance(cn, inst_id)["status"] == "resizing"
    wait_for(lambda: _job(cn, resize.json()["job_id"]))
    assert (_instance(cn, inst_id)["type"], _instance(cn, inst_id)["status"]) == ("memory-4x32", "stopped")

    start = _act(cn, inst_id, "start")
    wait_for(lambda: _job(cn, start.json()["job_id"]))
    reboot = _act(cn, inst_id, "reboot")
    assert _instance(cn, inst_id)["status"] == "rebooting"
    wait_for(lambda: _job(cn, reboot.json()["job_id"]))
    assert run_ssh(*ssh, "echo rebooted").stdout.strip() == "rebooted"

    snapshot = _act(cn, inst_id, "snapshot")
    snap = wait_for(lambda: _job(cn, snapshot.json()["job_id"]))
    assert snap["resource_id"].startswith("snap_") and _instance(cn, inst_id)["status"] == "running"
    from_snap, _ = _create(cn, "clone", image=snap["resource_id"])
    assert _instance(cn, from_snap)["image"] == snap["resource_id"]

    deleted = cn.delete(f"/compute/instances/{inst_id}")
    assert deleted.status_code == 202 and _instance(cn, inst_id)["status"] == "deleting"
    assert cn.delete(f"/compute/instances/{inst_id}").json()["job_id"] == deleted.json()["job_id"]
    wait_for(lambda: _job(cn, deleted.json()["job_id"]))
    assert cn.get(f"/compute/instances/{inst_id}").status_code == 404
    assert run_ssh(*ssh, "true").returncode != 0


def test_failed_and_superseded_jobs(emu: EmulatorServer, cn: httpx.Client, slow: None) -> None:
    emu.world.set_capacity("cloudnexus", "compute-8x16", "eu-west-2", False)
    inst_id, job_id = _create(cn, "no-room", type="compute-8x16", region="eu-west-2")
    failed = wait_for(lambda: _job(cn, job_id, "failed"))
    assert failed["error"]["code"] == "capacity_unavailable" and "compute-8x16" in failed["error"]["message"]
    assert cn.get(f"/compute/instances/{inst_id}").status_code == 404

    inst_id, job_id = _create(cn, "short-lived")
    deleted = cn.delete(f"/compute/instances/{inst_id}").json()
    assert _job(cn, job_id, "failed")["error"]["code"] == "superseded"  # type: ignore[index]
    wait_for(lambda: _job(cn, deleted["job_id"]))
    assert cn.get("/jobs/job_nope").status_code == 404


def test_ssh_keys(cn: httpx.Client, keypair: tuple[Path, str]) -> None:
    public = keypair[1]
    assert cn.post("/ssh-keys", json={"name": "bad", "public_key": "ssh-ed25519 AAAA"}).status_code == 400
    keys = [cn.post("/ssh-keys", json={"name": f"k{i}", "public_key": public}).json() for i in range(3)]
    assert all(k["id"].startswith("key_") and k["fingerprint"].startswith("SHA256:") for k in keys)
    page = cn.get("/ssh-keys", params={"per_page": 2}).json()
    assert len(page["data"]) == 2 and page["pagination"]["total_pages"] == 2
    assert cn.get(f"/ssh-keys/{keys[0]['id']}").json() == keys[0]
    assert cn.delete(f"/ssh-keys/{keys[0]['id']}").status_code == 204
    assert cn.get(f"/ssh-keys/{keys[0]['id']}").status_code == 404
    unknown = cn.post("/compute/instances", json={"name": "x", **BODY, "ssh_keys": [keys[0]["id"]]})
    assert unknown.status_code == 400 and keys[0]["id"] in unknown.json()["error"]["message"]


def test_published_limit_of_120_per_minute(emu: EmulatorServer, cn: httpx.Client) -> None:
    emu.world.set_rate_limit("cloudnexus", PUBLISHED_RATE_LIMITS["cloudnexus"])
    assert PUBLISHED_RATE_LIMITS["cloudnexus"] == 120
    with ThreadPoolExecutor(12) as pool:  # the emulator answers in ~45 ms: fill the window in parallel
        assert set(pool.map(lambda _: cn.get("/ssh-keys").status_code, range(120))) == {200}
    limited = cn.get("/ssh-keys")
    assert limited.status_code == 429 and 55 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"


def test_dropped_create_is_committed(emu: EmulatorServer, cn: httpx.Client) -> None:
    emu.world.set_faults(drop_create_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        cn.post("/compute/instances", json={"name": "lost", **BODY})
    assert [i["name"] for i in emu.world.instances("cloudnexus")] == ["lost"]
    assert cn.post("/compute/instances/x/actions", json={"action": "stop"}).status_code == 404  # not a create

"""Fault injection, request log, rate limits and the control API."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import httpx
import pytest
import requests
import verda
from verda.exceptions import APIException

from gpucloud.emulator import EmulatorServer, EmulatorSettings, Faults, World


def test_rate_limit_burst_gives_429_with_retry_after(
    emu: EmulatorServer, dc_http: httpx.Client, vp: httpx.Client
) -> None:
    emu.world.set_faults(rate_limit_burst=3)
    limited = [dc_http.get("/balance"), vp.get("/storage/"), dc_http.get("/locations")]
    assert [r.status_code for r in limited] == [429, 429, 429]
    assert all(r.headers["Retry-After"] == "1" for r in limited)
    assert set(limited[0].json()) == {"code", "message"} and set(limited[1].json()) == {"detail"}
    assert dc_http.get("/balance").status_code == 200  # the burst is used up
    faulted = [r for r in emu.world.requests if r.was_fault]
    assert [r.fault for r in faulted] == ["rate_limit_burst"] * 3 and faulted[0].status == 429


def test_error_rate_one_fails_everything_but_login(
    emu: EmulatorServer, dc: verda.VerdaClient, vp: httpx.Client
) -> None:
    emu.world.set_faults(error_rate=1.0)
    with pytest.raises(APIException) as err:
        dc.balance.get()
    assert err.value.code == "server_error"
    dc._authentication.authenticate()  # the token endpoint is exempt, so clients can still log in
    broken = vp.get("/virtual-machines/")
    assert broken.status_code == 500 and broken.json() == {"detail": "Internal server error"}
    assert emu.world.request_count("voltagepark") == 1 and emu.world.requests[-1].fault == "error"


def test_dropped_create_is_committed_but_the_client_sees_a_transport_error(
    emu: EmulatorServer, dc: verda.VerdaClient, vp: httpx.Client, keypair: tuple[Path, str]
) -> None:
    emu.world.set_faults(drop_create_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        vp.post("/organization/ssh-keys", json={"name": "lost answer", "content": keypair[1]})
    assert [k["name"] for k in emu.world.ssh_keys("voltagepark")] == ["lost answer"]
    assert vp.get("/organization/ssh-keys").json()["total_result_count"] == 1  # reads are not dropped

    with pytest.raises(requests.exceptions.RequestException):  # what the verda SDK (requests) raises
        dc.ssh_keys.create("lost too", keypair[1])
    assert [k["name"] for k in emu.world.ssh_keys("datacrunch")] == ["lost too"]
    drops = [r for r in emu.world.requests if r.fault == "drop"]
    assert [(r.provider, r.method, r.status) for r in drops] == [
        ("voltagepark", "POST", 201),
        ("datacrunch", "POST", 201),
    ]


def test_failed_creates_are_not_dropped(emu: EmulatorServer, vp: httpx.Client) -> None:
    emu.world.set_faults(drop_create_rate=1.0)
    refused = vp.post("/organization/ssh-keys", json={"name": "no", "content": "garbage"})
    assert refused.status_code == 422  # nothing was committed, so the answer arrives


def test_latency_is_added_without_blocking_other_requests(emu: EmulatorServer, vp: httpx.Client) -> None:
    emu.world.set_faults(latency_ms=1500)
    emu.world.clear_requests()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: vp.get("/storage/").status_code, range(4)))
    assert statuses == [200] * 4
    served = emu.world.requests
    assert len(served) == 4 and all(r.duration_ms >= 1500 for r in served)
    # Served in parallel: every request began before the first one ended (served one by one, the last would
    # begin 4.5 s after the first). Judged from the server's own records, not from a clock that load can stretch.
    assert max(r.time for r in served) < min(r.time + r.duration_ms / 1000 for r in served)


def test_per_provider_rate_limit(emu: EmulatorServer, vp: httpx.Client, dc_http: httpx.Client) -> None:
    emu.world.set_rate_limit("voltagepark", 3)
    assert [vp.get("/storage/").status_code for _ in range(3)] == [200] * 3
    limited = vp.get("/storage/")
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert [dc_http.get("/balance").status_code for _ in range(5)] == [200] * 5  # other providers unaffected
    assert emu.world.requests[-6].fault == "rate_limit"


def test_settings_rate_limits_and_seeded_faults_are_deterministic() -> None:
    def rolls(seed: int) -> tuple[list[str | None], list[str]]:
        world = World(EmulatorSettings(faults=Faults(error_rate=0.5, seed=seed), rate_limits={"dcdncloud": 60}))
        decisions = [world.decide_fault("voltagepark", is_auth=False, is_create=False).reject for _ in range(40)]
        return decisions, [world.new_id() for _ in range(3)]

    assert rolls(7) == rolls(7)
    assert rolls(7) != rolls(8)
    errors = rolls(7)[0].count("error")
    assert 5 < errors < 35

    world = World(EmulatorSettings(rate_limits={"dcdncloud": 2}))
    verdicts = [world.decide_fault("dcdncloud", is_auth=False, is_create=False).reject for _ in range(3)]
    assert verdicts == [None, None, "rate_limit"]


def test_control_api(emu: EmulatorServer, dc_http: httpx.Client, vp: httpx.Client) -> None:
    control = httpx.Client(base_url=emu.url + "/_emulator", headers=emu.control_headers, timeout=10)
    health = control.get("/health").json()
    assert health["status"] == "ok" and health["providers"]["voltagepark"] == "/voltagepark/api/v1"

    assert control.post("/faults", json={"error_rate": 1}).json()["error_rate"] == 1
    assert control.get("/faults").json()["latency_ms"] == 0  # untouched fields keep their value
    assert vp.get("/storage/").status_code == 500
    control.post("/faults", json={"error_rate": 0})

    control.post("/expire-tokens", json={"provider": "datacrunch"})
    assert dc_http.get("/balance").json()["code"] == "unauthorized_request"

    preset_id = vp.get("/instant-deploy-presets/").json()[0]["id"]
    control.post("/capacity", json={"provider": "voltagepark", "instance_type": preset_id, "available": False})
    assert vp.post("/virtual-machines/instant", json={"config_id": preset_id, "name": "x"}).status_code == 400
    control.post("/balance", json={"provider": "datacrunch", "amount": 12.5})
    assert emu.world.balance("datacrunch") == 12.5

    vp.post("/storage/", json={"size_in_gb": 10, "name": "kept"})
    state = control.get("/state").json()
    assert [v["name"] for v in state["providers"]["voltagepark"]["volumes"]] == ["kept"]
    logged = control.get("/requests", params={"provider": "voltagepark"}).json()
    assert logged[-1]["method"] == "POST" and logged[-1]["path"] == "/storage/" and not logged[-1]["was_fault"]
    assert all(r["provider"] == "voltagepark" for r in logged)

    assert control.post("/reset").json() == {"reset": True}
    assert emu.world.volumes("voltagepark") == [] and emu.world.requests == []
    assert emu.world.balance("datacrunch") == 1000.0
    control.close()


def test_request_count_filters(emu: EmulatorServer, dc_http: httpx.Client, vp: httpx.Client) -> None:
    dc_http.get("/balance")
    dc_http.get("/instances")
    vp.get("/virtual-machines/")
    assert emu.world.request_count() == 4  # includes the token request of dc_http
    assert emu.world.request_count(provider="datacrunch") == 3
    assert emu.world.request_count(provider="datacrunch", method="get") == 2
    assert emu.world.request_count(path_prefix="/instances") == 1
    assert emu.world.request_count(path_prefix="/voltagepark/api/v1/virtual-machines") == 1

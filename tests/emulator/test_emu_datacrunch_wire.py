"""DataCrunch wire details checked with raw HTTP (what section 9 of the SDK notes asks for)."""

from __future__ import annotations

from pathlib import Path

import httpx

from gpucloud.emulator import EmulatorServer
from tests.emulator.helpers import wait_for


def test_token_endpoint(emu: EmulatorServer) -> None:
    url = emu.base_url("datacrunch") + "/oauth2/token"
    ok = httpx.post(url, json={"grant_type": "client_credentials", **emu.credentials["datacrunch"]})
    assert ok.status_code == 200
    body = ok.json()
    assert set(body) == {"access_token", "refresh_token", "scope", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600

    refreshed = httpx.post(url, json={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.json()["access_token"] != body["access_token"]

    wrong = httpx.post(url, json={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "unauthorized_request")
    bad_refresh = httpx.post(url, json={"grant_type": "refresh_token", "refresh_token": "nope"})
    assert (bad_refresh.status_code, bad_refresh.json()["code"]) == (401, "unauthorized_request")
    bad_grant = httpx.post(url, json={"grant_type": "password"})
    assert (bad_grant.status_code, bad_grant.json()["code"]) == (400, "invalid_request")


def test_auth_and_error_bodies(emu: EmulatorServer, dc_http: httpx.Client) -> None:
    base = emu.base_url("datacrunch")
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        denied = httpx.get(base + "/balance", headers=headers)
        assert denied.status_code == 401
        assert set(denied.json()) == {"code", "message"} and denied.json()["code"] == "unauthorized_request"

    unknown = dc_http.get("/no/such/route")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")

    invalid = dc_http.post("/instances", json={"instance_type": "1V100.6V", "image": "ubuntu-24.04", "hostname": "h"})
    assert invalid.status_code == 400  # not FastAPI's 422
    assert invalid.json()["code"] == "invalid_request" and "location_code" in invalid.json()["message"]
    not_json = dc_http.post("/sshkeys", content=b"{oops", headers={"Content-Type": "application/json"})
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_request")


def test_create_returns_bare_ids_and_lookups_are_lists(dc_http: httpx.Client, keypair: tuple[Path, str]) -> None:
    created = dc_http.post("/sshkeys", json={"name": "k", "key": keypair[1]})
    assert created.status_code == 201 and created.headers["content-type"].startswith("text/plain")
    key_id = created.text
    assert key_id and '"' not in key_id and "\n" not in key_id

    (one,) = dc_http.get(f"/sshkeys/{key_id}").json()
    assert one["id"] == key_id and one["key"] == keypair[1] and one["fingerprint"].startswith("SHA256:")
    assert [k["id"] for k in dc_http.get("/ssh-keys").json()] == [key_id]  # both spellings, one store
    assert dc_http.delete(f"/ssh-keys/{key_id}").status_code == 204
    assert dc_http.get(f"/sshkeys/{key_id}").status_code == 404

    script_id = dc_http.post("/scripts", json={"name": "setup", "script": "#!/bin/sh\necho hi"}).text
    (script,) = dc_http.get(f"/scripts/{script_id}").json()
    assert script["script"].startswith("#!/bin/sh")
    dc_http.post("/scripts", json={"name": "second", "script": "true"})
    page = dc_http.get("/scripts", params={"page": 2, "pageSize": 1})
    assert [s["name"] for s in page.json()] == ["second"] and page.headers["X-Total-Count"] == "2"
    assert len(dc_http.get("/scripts").json()) == 2
    assert dc_http.request("DELETE", "/scripts", json={"scripts": [script_id]}).status_code == 204
    assert [s["name"] for s in dc_http.get("/scripts").json()] == ["second"]


def test_availability_is_a_bare_boolean(dc_http: httpx.Client) -> None:
    answer = dc_http.get("/instance-availability/1V100.6V", params={"isSpot": "false", "location_code": "FIN-03"})
    assert answer.status_code == 200 and answer.text == "true"
    types = dc_http.get("/instance-types", params={"currency": "usd"}).json()
    strict = {"id", "instance_type", "price_per_hour", "spot_price", "description", "cpu", "gpu", "memory",
              "gpu_memory", "storage", "best_for", "model", "name", "p2p", "currency", "manufacturer",
              "display_name", "supported_os"}  # fmt: skip
    assert all(strict <= set(t) for t in types)
    assert all(isinstance(t["price_per_hour"], str) and float(t["price_per_hour"]) > 0 for t in types)


def test_price_history_is_not_shadowed_by_the_type_route(dc_http: httpx.Client) -> None:
    answer = dc_http.get("/instance-types/price-history", params={"num_of_months": 2, "currency": "eur"})
    assert answer.status_code == 200, answer.text
    history = answer.json()
    types = {t["instance_type"]: t for t in dc_http.get("/instance-types", params={"currency": "eur"}).json()}
    assert set(history) == set(types)
    records = history["1V100.6V"]
    assert len(records) == 60 and records[0]["date"] > records[-1]["date"]
    assert records[0]["currency"] == "eur"
    assert records[0]["fixed_price_per_hour"] == types["1V100.6V"]["price_per_hour"]
    bad = dc_http.get("/instance-types/price-history", params={"num_of_months": 13})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
    assert dc_http.get("/instance-types/1V100.6V").json()["instance_type"] == "1V100.6V"


def test_volume_wire_details(emu: EmulatorServer, dc_http: httpx.Client) -> None:
    vol_id = dc_http.post("/volumes", json={"type": "HDD", "name": "logs", "size": 20, "location_code": "FIN-02"}).text
    volume = dc_http.get(f"/volumes/{vol_id}").json()
    assert {"id", "status", "name", "size", "type", "is_os_volume", "created_at"} <= set(volume)
    renamed = dc_http.put("/volumes", json={"id": [vol_id], "action": "rename", "name": "logs2"})  # id as a list
    assert renamed.status_code == 202 and dc_http.get(f"/volumes/{vol_id}").json()["name"] == "logs2"
    clone = dc_http.put("/volumes", json={"id": vol_id, "action": "clone", "name": None, "type": None})
    assert clone.status_code == 202 and isinstance(clone.json(), list) and len(clone.json()) == 1
    assert dc_http.put("/volumes", json={"id": vol_id, "action": "explode"}).json()["code"] == "invalid_request"

    deleted = dc_http.request("DELETE", f"/volumes/{vol_id}", json={"is_permanent": True})
    assert deleted.status_code == 204
    assert dc_http.get(f"/volumes/{vol_id}").json()["status"] == "deleted"
    assert vol_id not in [v["id"] for v in dc_http.get("/volumes").json()]
    assert dc_http.put("/volumes", json={"id": "missing", "action": "rename", "name": "x"}).status_code == 404


def test_instance_actions_validate_every_id_first(emu: EmulatorServer, dc_http: httpx.Client) -> None:
    body = {"instance_type": "CPU.4V.16G", "image": "ubuntu-22.04", "hostname": "a", "location_code": "FIN-01"}
    inst_id = dc_http.post("/instances", json=body).text
    running = wait_for(lambda: dc_http.get(f"/instances/{inst_id}").json()["status"] == "running")
    assert running
    mixed = dc_http.put("/instances", json={"id": [inst_id, "missing"], "action": "shutdown", "volume_ids": None})
    assert (mixed.status_code, mixed.json()["code"]) == (404, "not_found")
    assert dc_http.get(f"/instances/{inst_id}").json()["status"] == "running"  # nothing applied
    start = dc_http.put("/instances", json={"id": [inst_id], "action": "start", "volume_ids": None})
    assert (start.status_code, start.json()["code"]) == (400, "invalid_request")
    assert dc_http.put("/instances", json={"id": [inst_id], "action": "fly"}).status_code == 400

    ok = dc_http.put("/instances", json={"id": [inst_id], "action": "force_shutdown", "volume_ids": None})
    assert ok.status_code == 202 and ok.json() == [
        {"action": "force_shutdown", "instanceId": inst_id, "status": "success"}
    ]
    assert dc_http.get("/instances", params={"status": "offline"}).json()[0]["id"] == inst_id
    assert dc_http.get("/instances", params={"status": "running"}).json() == []

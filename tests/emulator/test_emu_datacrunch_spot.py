"""The emulated DataCrunch spot and stock endpoints, through the official ``verda`` SDK and raw HTTP: spot price
billing, availability answers driven by the capacity switches, the control call that discontinues a spot
instance (volumes per ``on_spot_discontinue``), and the refusals around it."""

from __future__ import annotations

import httpx
import pytest
import verda

from gpucloud.emulator import EmulatorServer

from .helpers import wait_for

TYPE, IMAGE, LOCATION = "1V100.6V", "ubuntu-24.04-cuda-12.8-open-docker", "FIN-01"


def _discontinue(emu: EmulatorServer, instance_id: str, *, token: bool = True) -> httpx.Response:
    headers = emu.control_headers if token else {}
    return httpx.post(f"{emu.url}/_emulator/datacrunch/discontinue", json={"instance_id": instance_id}, headers=headers)


def test_availability_follows_the_capacity_switches(emu: EmulatorServer, dc: verda.VerdaClient) -> None:
    assert dc.instances.is_available(TYPE, is_spot=True, location_code=LOCATION) is True
    emu.world.set_capacity("datacrunch", TYPE, LOCATION, False)
    assert dc.instances.is_available(TYPE, is_spot=True, location_code=LOCATION) is False
    assert dc.instances.is_available(TYPE, is_spot=False) is True  # in stock somewhere else
    listing = {a["location_code"]: a["availabilities"] for a in dc.instances.get_availabilities(is_spot=True)}
    assert TYPE not in listing[LOCATION] and TYPE in listing["FIN-02"]


def test_discontinue_follows_each_volume_policy(emu: EmulatorServer, dc: verda.VerdaClient) -> None:
    instance = dc.instances.create(
        TYPE,
        IMAGE,
        "spot-emu",
        "spot-emu",
        location=LOCATION,
        is_spot=True,
        os_volume={"name": "os-spot", "size": 40, "on_spot_discontinue": "delete_permanently"},
        volumes=[{"name": "kept", "size": 10, "type": "NVMe", "on_spot_discontinue": "keep_detached"}],
    )
    spot_price = float(next(t for t in dc.instance_types.get() if t.instance_type == TYPE).spot_price_per_hour)
    assert instance.is_spot and instance.price_per_hour == spot_price
    running = wait_for(lambda: ((i := dc.instances.get_by_id(instance.id)).status == "running" and i) or None)
    volumes = {v.name: v for v in dc.volumes.get()}
    assert volumes["os-spot"].size == 40 and volumes["os-spot"].id == running.os_volume_id

    assert _discontinue(emu, instance.id, token=False).status_code == 401
    answer = _discontinue(emu, instance.id)
    assert answer.status_code == 200 and answer.json()["status"] == "discontinued"
    assert dc.instances.get_by_id(instance.id).status == "discontinued"
    assert dc.volumes.get_by_id(volumes["os-spot"].id).status == "deleted"
    kept = dc.volumes.get_by_id(volumes["kept"].id)
    assert kept.status == "detached" and kept.instance_id is None
    with pytest.raises(verda.exceptions.APIException):
        dc.instances.action(instance.id, "start")  # never runs again
    dc.instances.action(instance.id, "delete")  # the record goes only this way
    wait_for(lambda: all(i.id != instance.id for i in dc.instances.get()) or None)


def test_discontinue_and_spot_options_are_refused_where_they_do_not_apply(
    emu: EmulatorServer, dc: verda.VerdaClient, dc_http: httpx.Client
) -> None:
    on_demand = dc.instances.create(TYPE, IMAGE, "od-emu", "od-emu", location=LOCATION)
    assert _discontinue(emu, on_demand.id).status_code == 400, "only spot instances are discontinued"
    assert _discontinue(emu, "00000000-0000-4000-8000-000000000000").status_code == 404
    body = {
        "instance_type": TYPE,
        "image": IMAGE,
        "hostname": "bad-policy",
        "location_code": LOCATION,
        "is_spot": True,
        "os_volume": {"name": "os", "size": 40, "on_spot_discontinue": "keep"},
    }
    refused = dc_http.post("/instances", json=body)
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_request"
    assert "on_spot_discontinue" in refused.json()["message"]

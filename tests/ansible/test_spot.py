"""DataCrunch spot instances through real ansible-playbook / ansible-inventory runs against the emulator:
check mode and diff, discontinue (the emulator's control API, as the cloud would), the inventory marking it,
``recreate_discontinued``, teardown leaving nothing, the README's spot example as pasted, and offer_info's
spot prices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from gpucloud.emulator import EmulatorServer
from tests.ledger import holdings, settle

from ..contract.specs import INSTANCE
from .conftest import ROOT, Ansible
from .test_inventory import listing, write_inventory
from .test_modules import lookup, task, writes

DC: dict[str, Any] = {"provider": "datacrunch", **INSTANCE["datacrunch"]}


def discontinue(emulator: EmulatorServer, instance_id: str) -> None:
    response = httpx.post(
        f"{emulator.url}/_emulator/datacrunch/discontinue",
        json={"instance_id": instance_id},
        headers=emulator.control_headers,
    )
    assert response.status_code == 200, response.text


def test_spot_lifecycle_discontinue_inventory_and_recreate(
    ansible: Ansible, emulator: EmulatorServer, tmp_path: Path
) -> None:
    before = holdings(emulator, "datacrunch")
    name = "inv-ans-spot"  # "inv-": the inventory filter below keeps it
    spot = {**DC, "name": name, "spot": True, "os_disk_size_gb": 60, "on_spot_discontinue": "move_to_trash"}
    try:
        made = ansible.play([task("instance", "made", **spot), task("instance", "again", **spot)])
        assert made.rc == 0, made.output
        assert made["made"]["action"] == "create" and made["made"]["instance"]["spot"] is True
        assert made["again"]["changed"] is False

        sent = writes(emulator, "datacrunch")
        on_demand = {**spot, "spot": False, "on_spot_discontinue": None}
        preview = ansible.play(
            [
                task("instance", "refused", ignore_errors=True, **on_demand),
                task("instance", "forced", force_replace=True, **on_demand),
                task("instance", "bigger", force_replace=True, **{**spot, "os_disk_size_gb": 80}),
            ],
            check=True,
            diff=True,
        )
        assert preview.rc == 0, preview.output
        assert preview["refused"]["failed"] and "spot" in preview["refused"]["msg"]
        assert "force_replace" in preview["refused"]["msg"]
        assert preview["forced"]["action"] == "replace"
        assert [c["field"] for c in preview["forced"]["plan"]["replacements"]] == ["spot"]
        assert [c["field"] for c in preview["bigger"]["plan"]["replacements"]] == ["os_disk_size_gb"]
        assert writes(emulator, "datacrunch") == sent, "check mode wrote nothing"

        first = lookup(emulator, "datacrunch", "instance", name)
        discontinue(emulator, first.id)
        hosts = listing(ansible, write_inventory(tmp_path / "spot.gpucloud.yml"))
        host = hosts["_meta"]["hostvars"][f"datacrunch-{name}"]
        assert host["gpucloud_status"] == "discontinued" and host["gpucloud_spot"] is True
        assert f"datacrunch-{name}" in hosts["gpucloud_status_discontinued"]["hosts"]

        reported = ansible.play(
            [
                task("instance", "kept", **spot),
                task("instance", "power", ignore_errors=True, provider="datacrunch", name=name, state="started"),
                task("instance", "preview", recreate_discontinued=True, **spot),
            ]
        )
        assert reported.rc == 0, reported.output
        assert reported["kept"]["changed"] is False and reported["kept"]["instance"]["status"] == "discontinued"
        assert "recreate_discontinued" in reported.output, "the default run warns"
        assert reported["power"]["failed"] and "recreate_discontinued" in reported["power"]["msg"]
        assert reported["preview"]["action"] == "replace"
        assert [c["field"] for c in reported["preview"]["plan"]["replacements"]] == ["status"]
        again = lookup(emulator, "datacrunch", "instance", name)
        assert again.id != first.id and again.spot and str(again.status) == "running"
    finally:
        gone = ansible.play([task("instance", "gone", provider="datacrunch", name=name, state="absent")])
        assert gone.rc == 0, gone.output
    assert settle(emulator, "datacrunch", before) == []


def test_readme_spot_example_runs_as_pasted(ansible: Ansible, emulator: EmulatorServer) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "spot: true" in b]
    tasks = yaml.safe_load("\n".join(line.removeprefix("  ") for line in block.splitlines()))
    assert len(tasks) == 1
    before = holdings(emulator, "datacrunch")
    name = tasks[0]["gpucloud.cloud.instance"]["name"]
    gone = task("instance", "gone", provider="datacrunch", name=name, state="absent")
    run = ansible.play([{**tasks[0], "register": "spot"}, gone])
    if run.rc != 0:  # the play stopped before its last task: remove what it may have made
        ansible.play([gone])
    assert run.rc == 0, run.output
    assert run["spot"]["instance"]["spot"] is True and run["spot"]["instance"]["status"] == "running"
    assert run["gone"]["action"] == "delete"
    assert settle(emulator, "datacrunch", before) == []


def test_offer_info_shows_spot_next_to_on_demand_and_hibernate_is_refused(
    ansible: Ansible, emulator: EmulatorServer
) -> None:
    vp = INSTANCE["voltagepark"]
    sent, sent_vp = writes(emulator, "datacrunch"), writes(emulator, "voltagepark")
    run = ansible.play(
        [
            task("offer_info", "offers", providers=["datacrunch", "voltagepark"], min_gpus=1),
            task("instance", "sleep", ignore_errors=True, provider="datacrunch", name="x", state="hibernated"),
            task("instance", "vp", ignore_errors=True, provider="voltagepark", name="x", spot=True, **vp),
            task("instance", "no_disk", ignore_errors=True, **DC, name="x", spot=True, os_disk_size_gb=0),
        ]
    )
    offers = run["offers"]["offers"]
    datacrunch = [o for o in offers if o["provider"] == "datacrunch"]
    assert datacrunch and all(o["spot_price_per_hour"] < o["price_per_hour"] for o in datacrunch)
    assert all(o["spot_price_per_hour"] is None for o in offers if o["provider"] == "voltagepark")
    assert run["sleep"]["failed"] and run["sleep"]["error_class"] == "Unsupported"
    assert "state=stopped" in run["sleep"]["msg"]
    assert run["vp"]["failed"] and run["vp"]["error_class"] == "Unsupported" and "spot" in run["vp"]["msg"]
    assert run["no_disk"]["failed"] and "os_disk_size_gb" in run["no_disk"]["msg"]
    assert writes(emulator, "datacrunch") == sent and writes(emulator, "voltagepark") == sent_vp, "refused first"

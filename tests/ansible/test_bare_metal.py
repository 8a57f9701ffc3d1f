"""Voltage Park bare metal (``kind: bare_metal``) and ``state: stopped_disassociated`` through real ansible-playbook
and ansible-inventory runs against the emulator: check mode and diff, idempotence, inventory, nothing left."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gpucloud.emulator import EmulatorServer
from tests.ledger import holdings, settle

from ..contract.specs import INSTANCE
from .conftest import ROOT, Ansible
from .test_inventory import listing, write_inventory
from .test_modules import lookup, task, writes

BARE_METAL = "baremetal-8x-h100-sxm5-80gb-infiniband"


def test_bare_metal_instance_module_and_inventory(
    ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str], tmp_path: Path
) -> None:
    before = holdings(emulator, "voltagepark")
    name = "ans-bm"
    args: dict[str, Any] = {"provider": "voltagepark", "name": name, "kind": "bare_metal", "instance_type": BARE_METAL}
    create = [task("instance", "bm", **args, ssh_keys=[keypair[1]], wait_for_ssh=True)]

    writes_before = writes(emulator, "voltagepark")
    offers = task("offer_info", "offers", provider="voltagepark", min_gpus=8)
    check = ansible.play([offers, *create], check=True, diff=True)
    assert check.rc == 0, check.output
    assert {(o["instance_type"], o["kind"]) for o in check["offers"]["offers"]} >= {(BARE_METAL, "bare_metal")}
    assert check["bm"]["changed"] and check["bm"]["action"] == "create"
    assert check["bm"]["instance"]["kind"] == "bare_metal" and '+    "kind": "bare_metal"' in check.stdout
    assert (
        writes(emulator, "voltagepark") == writes_before and lookup(emulator, "voltagepark", "instance", name) is None
    )

    try:
        made = ansible.play(create)
        assert made.rc == 0, made.output
        got = made["bm"]["instance"]
        assert (got["kind"], got["status"], got["gpu_count"], got["instance_type"]) == (
            "bare_metal", "running", 8, BARE_METAL)  # fmt: skip
        assert got["ssh_host"] and got["ssh_port"] == emulator.settings.ssh_port

        writes_before = writes(emulator, "voltagepark")
        again = ansible.play(create)
        assert again.rc == 0 and again["bm"]["changed"] is False and again["bm"]["instance"]["id"] == got["id"]
        assert writes(emulator, "voltagepark") == writes_before

        source = write_inventory(tmp_path / "bm.gpucloud.yml", filters={"name": f"^{name}$"})
        data = listing(ansible, source)
        host = f"voltagepark-{name}"
        assert data["_meta"]["hostvars"][host]["gpucloud_kind"] == "bare_metal"
        assert data["_meta"]["hostvars"][host]["ansible_host"] == got["public_ip"]
        assert host in data["gpucloud_kind_bare_metal"]["hosts"]

        # A VM of that name is another instance: replacing needs force_replace; a bare-metal type with kind vm
        # is refused naming kind (both in check mode).
        to_vm = {**args, "kind": "vm", **INSTANCE["voltagepark"]}
        power = ansible.play(
            [
                {**task("instance", "vm", **to_vm, ignore_errors=True), "check_mode": True},
                {**task("instance", "mixed", **{**args, "kind": "vm"}, ignore_errors=True), "check_mode": True},
                task("instance", "refuse", provider="voltagepark", name=name, state="stopped_disassociated",
                     ignore_errors=True),
                task("instance", "reboot", provider="voltagepark", name=name, state="restarted", wait_for_ssh=True),
            ]
        )  # fmt: skip
        assert power["vm"]["error_code"] == "replace_required" and "kind ('bare_metal' -> 'vm')" in power["vm"]["msg"]
        assert power["mixed"]["failed"] and "set kind: bare_metal" in power["mixed"]["msg"]
        assert power["refuse"]["failed"] and power["refuse"]["error_class"] == "Unsupported"
        assert power["reboot"]["changed"] and power["reboot"]["action"] == "restart"
        assert power["reboot"]["instance"]["status"] == "running"
    finally:
        gone = ansible.play([task("instance", "gone", provider="voltagepark", name=name, state="absent")])
    assert gone.rc == 0 and gone["gone"]["changed"], gone.output
    assert lookup(emulator, "voltagepark", "instance", name) is None
    assert settle(emulator, "voltagepark", before) == []


def test_kind_bare_metal_on_another_provider_fails_before_any_write(ansible: Ansible, emulator: EmulatorServer) -> None:
    writes_before = writes(emulator, "datacrunch")
    result = ansible.play(
        [task("instance", "bm", provider="datacrunch", name="ans-bm-dc", kind="bare_metal", ignore_errors=True,
              **INSTANCE["datacrunch"])]
    )  # fmt: skip
    assert result["bm"]["failed"] and result["bm"]["error_class"] == "Unsupported"
    assert "bare-metal" in result["bm"]["msg"] and writes(emulator, "datacrunch") == writes_before


def test_state_stopped_disassociated_with_check_diff_and_a_lower_bill(
    ansible: Ansible, emulator: EmulatorServer
) -> None:
    before = holdings(emulator, "voltagepark")
    name = "ans-released"
    base = {"provider": "voltagepark", "name": name, **INSTANCE["voltagepark"]}
    release = [task("instance", "park", provider="voltagepark", name=name, state="stopped_disassociated")]

    def billed(instance_id: str) -> float:
        return float(next(i["hourly_usd"] for i in holdings(emulator, "voltagepark") if i["id"] == instance_id))

    # The refusal on another provider rides along: it fails before any request, whatever this account holds.
    refuse = task("instance", "dc", provider="datacrunch", name="anything", state="stopped_disassociated",
                  ignore_errors=True)  # fmt: skip
    try:
        made = ansible.play([task("instance", "vm", **base), refuse])
        assert made.rc == 0, made.output
        assert made["dc"]["error_class"] == "Unsupported" and "storage only" in made["dc"]["msg"]
        vm_id = made["vm"]["instance"]["id"]
        running_rate = billed(vm_id)

        writes_before = writes(emulator, "voltagepark")
        check = ansible.play(release, check=True, diff=True)
        assert check.rc == 0, check.output
        assert check["park"]["changed"] and check["park"]["action"] == "stop_disassociated"
        assert check["park"]["instance"]["compute_released"] is True
        assert '+    "compute_released": true' in check.stdout and '+    "status": "stopped"' in check.stdout
        assert writes(emulator, "voltagepark") == writes_before

        parked = ansible.play([*release, task("instance", "again", provider="voltagepark", name=name,
                                              state="stopped_disassociated")])  # fmt: skip
        assert parked.rc == 0, parked.output
        got = parked["park"]["instance"]
        assert (got["status"], got["raw_status"], got["compute_released"]) == ("stopped", "StoppedDisassociated", True)
        assert parked["again"]["changed"] is False
        assert billed(vm_id) == got["price_per_hour"] < running_rate
    finally:
        gone = ansible.play([task("instance", "gone", provider="voltagepark", name=name, state="absent")])
    assert gone.rc == 0, gone.output
    assert settle(emulator, "voltagepark", before) == []


def test_readme_bare_metal_example_is_a_valid_task(ansible: Ansible, emulator: EmulatorServer) -> None:
    """The README's bare-metal playbook, run in check mode as pasted: options and instance type are accepted."""
    section = re.search(r"### Voltage Park bare metal\n(.*?)\n## ", (ROOT / "README.md").read_text(), re.S)
    assert section, "README lost its bare-metal example"
    (block,) = re.findall(r"```yaml\n(.*?)```", section.group(1), re.S)
    (play,) = yaml.safe_load(block)
    (step,) = play["tasks"]
    result = ansible.play([{**step, "register": "bm"}], check=True)
    assert result.rc == 0, result.output
    assert result["bm"]["action"] == "create" and result["bm"]["instance"]["kind"] == "bare_metal"

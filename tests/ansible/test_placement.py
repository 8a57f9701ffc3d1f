"""gpucloud.cloud.instance with provider=auto: real ansible-playbook runs placing by requirement on the emulator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gpucloud.emulator import EmulatorServer
from tests import ledger

from .conftest import ROOT, Ansible, ansible_binary
from .test_inventory import listing, write_inventory
from .test_modules import lookup, task

EXAMPLES = ROOT / "examples" / "ansible"
H100_VP = "1x-h100-sxm5-80gb-26vcpu-120gb"
AUTO: dict[str, Any] = {
    "provider": "auto",
    "placement": {
        "gpu": "h100",
        "max_price_per_hour": 3,
        "providers": ["voltagepark", "datacrunch"],
        "images": {"datacrunch": "ubuntu-24.04-cuda-12.8-open-docker"},
    },
}
PROVIDERS = ("voltagepark", "datacrunch")


@pytest.fixture
def account(emulator: EmulatorServer) -> Iterator[None]:
    before = {p: ledger.holdings(emulator, p) for p in PROVIDERS}
    yield
    emulator.world.clear_stock()
    left = {p: ledger.settle(emulator, p, items) for p, items in before.items()}
    assert left == {p: [] for p in PROVIDERS}


def _writes(emulator: EmulatorServer) -> list[str]:
    return [f"{r.method} {r.full_path}" for r in emulator.world.requests if r.method != "GET" and "token" not in r.path]


def test_check_mode_then_failover_then_rerun_then_absent(
    ansible: Ansible, emulator: EmulatorServer, account: None
) -> None:
    emulator.world.clear_requests()
    checked = ansible.play([task("instance", "plan", name="ans-place", **AUTO)], check=True)
    assert checked.rc == 0, checked.output
    plan = checked["plan"]
    assert plan["changed"] and plan["action"] == "create" and plan["instance"]["id"] is None
    assert (plan["placement"]["provider"], plan["instance"]["instance_type"]) == ("voltagepark", H100_VP)
    assert "capacity is known only at create time" in plan["placement"]["note"]
    assert _writes(emulator) == [], "check mode sends no write"

    emulator.world.set_stock("voltagepark", H100_VP, left=0, stale_catalogue=True)
    made = ansible.play([task("instance", "made", name="ans-place", **AUTO)])
    assert made.rc == 0, made.output
    record = made["made"]["placement"]
    assert made["made"]["changed"] and record["provider"] == "datacrunch"
    assert made["made"]["instance"]["provider"] == "datacrunch" and made["made"]["instance"]["status"] == "running"
    assert [(a["provider"], a["error_class"]) for a in record["attempts"]] == [("voltagepark", "NoCapacity")]
    assert record["requirement"]["gpu"] == "h100"

    emulator.world.clear_stock()  # the cheaper offer is back: the instance stays where it is
    emulator.world.clear_requests()
    again = ansible.play([task("instance", "again", name="ans-place", **AUTO)])
    assert again.rc == 0, again.output
    assert again["again"]["changed"] is False and again["again"]["placement"]["provider"] == "datacrunch"
    assert again["again"]["instance"]["id"] == made["made"]["instance"]["id"]
    assert _writes(emulator) == []

    gone = ansible.play([task("instance", "gone", name="ans-place", provider="auto", state="absent")])
    assert gone.rc == 0, gone.output
    assert gone["gone"]["changed"] and gone["gone"]["action"] == "delete"
    assert lookup(emulator, "datacrunch", "instance", "ans-place") is None


def test_check_mode_with_spot_allowed_and_a_disk_minimum_names_the_datacrunch_spot_offer(
    ansible: Ansible, emulator: EmulatorServer
) -> None:
    wanted = {**AUTO["placement"], "spot": "allowed", "min_disk_gb": 2000}
    checked = ansible.play([task("instance", "plan", name="ans-spot", provider="auto", placement=wanted)], check=True)
    assert checked.rc == 0, checked.output
    record = checked["plan"]["placement"]
    assert (record["provider"], record["offer"]["spot"]) == ("datacrunch", True), record
    assert record["requirement"]["spot"] == "allowed" and record["requirement"]["min_disk_gb"] == 2000


def test_a_fleet_is_placed_member_by_member(ansible: Ansible, emulator: EmulatorServer, account: None) -> None:
    # One Voltage Park H100 left: the first member takes it, the second goes to DataCrunch.
    emulator.world.set_stock("voltagepark", H100_VP, left=1)
    fleet = {"name": "ans-pf-{index}", **AUTO}
    made, removed = task("instance", "made", **fleet, count=2), task("instance", "removed", **fleet, exact_count=0)
    run = ansible.play([made, removed])
    assert run.rc == 0, run.output
    assert run["made"]["created"] == ["ans-pf-1", "ans-pf-2"]
    assert [m["provider"] for m in run["made"]["instances"]] == ["voltagepark", "datacrunch"]
    assert run["made"]["placement"]["ans-pf-2"]["provider"] == "datacrunch"
    assert run["removed"]["removed"] == ["ans-pf-2", "ans-pf-1"]


BAD_OPTIONS: list[tuple[dict[str, Any], str, str]] = [
    ({"placement": {"gpu_count": 2}}, "placement.gpu_count", "needs gpu"),
    ({"placement": {"gpu": "h100", "gpu_count": True}}, "placement.gpu_count", "not a boolean"),
    ({"placement": {"gpus": "h100"}}, "placement.gpus", "not permitted"),
    ({"placement": {"gpu": "h100", "images": ["x"]}}, "placement.images", "map provider names"),
    ({"placement": {"providers": ["aws"]}}, "placement.providers", "unknown provider"),
    ({"placement": {"gpu": "h100", "spot": "sometimes"}}, "placement.spot", "'never', 'allowed' or 'required'"),
    ({"placement": {"gpu": "h100", "min_disk_gb": 0}}, "placement.min_disk_gb", "greater than 0"),
    ({**AUTO, "instance_type": "1V100.6V"}, "instance_type", "chosen by placement"),
    ({**AUTO, "api_token": "x"}, "api_token", "one provider's connection"),
    ({"placement": {"gpu": "h100"}, "provider": "datacrunch"}, "placement", "only valid with provider=auto"),
]


def test_the_inventory_groups_placed_hosts_by_the_requirement_read_off_the_instance(
    ansible: Ansible, emulator: EmulatorServer, account: None, tmp_path: Path
) -> None:
    emulator.world.set_stock("voltagepark", H100_VP, left=1)
    fleet = {"name": "ans-pi-{index}", **AUTO}
    made = ansible.play([task("instance", "made", **fleet, count=2)])
    try:
        assert made.rc == 0, made.output
        assert [m["provider"] for m in made["made"]["instances"]] == ["voltagepark", "datacrunch"]
        source = write_inventory(
            tmp_path / "placed.gpucloud.yml",
            providers=list(PROVIDERS),
            filters={"name": "^ans-pi-"},
            keyed_groups=[{"key": "gpucloud_placement.gpu | default('none')", "prefix": "wants"}],
        )
        data = listing(ansible, source)
        hostvars = data["_meta"]["hostvars"]
        wanted = {"gpu": "h100", "max_price_per_hour": 3.0, "providers": ["voltagepark", "datacrunch"]}
        # Voltage Park keeps tags: the requirement comes off the instance itself, nothing else knows it.
        assert hostvars["voltagepark-ans-pi-1"]["gpucloud_placement"] == wanted
        group = "gpucloud_placement_gpu_h100_max_price_per_hour_3_0_providers_voltagepark_datacrunch"
        assert list(data[group]["hosts"]) == ["voltagepark-ans-pi-1"]
        assert list(data["wants_h100"]["hosts"]) == ["voltagepark-ans-pi-1"]
        # DataCrunch keeps no tags: the host is listed with no requirement (documented), never a guessed one.
        assert hostvars["datacrunch-ans-pi-2"]["gpucloud_placement"] is None
        assert list(data["wants_none"]["hosts"]) == ["datacrunch-ans-pi-2"]
    finally:
        removed = ansible.play([task("instance", "removed", **fleet, exact_count=0)])
    assert removed.rc == 0, removed.output


def test_bad_placement_options_fail_naming_the_option_before_any_request(
    ansible: Ansible, emulator: EmulatorServer
) -> None:
    """Every case is a task of one play (each fails on its own, ignore_errors), checked case by case."""
    emulator.world.clear_requests()
    tasks = [
        task("instance", f"bad{n}", name="ans-bad", ignore_errors=True, **{"provider": "auto", **args})
        for n, (args, _, _) in enumerate(BAD_OPTIONS)
    ]
    result = ansible.play(tasks)
    wrong = []
    for n, (args, option, words) in enumerate(BAD_OPTIONS):
        bad = result[f"bad{n}"]
        if not (bad.get("failed") and bad.get("option") == option and words in bad.get("msg", "")):
            wrong.append(f"{args}: wanted {option!r} and {words!r}, got {bad.get('option')!r}: {bad.get('msg')}")
    assert not wrong, "\n".join(wrong)
    sent = [f"{r.method} {r.full_path}" for r in emulator.world.requests]
    assert not sent, f"a bad option reached the API: {sent}"


def test_the_example_playbook_places_reruns_unchanged_and_removes(
    emulator: EmulatorServer, emulator_env: dict[str, str], tmp_path: Path, account: None
) -> None:
    def playbook(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [ansible_binary("ansible-playbook"), "-i", "localhost,", "-c", "local", "placement.yml", *args]
        return subprocess.run(cmd, cwd=EXAMPLES, env=emulator_env, capture_output=True, text=True, timeout=600)

    checked = playbook("--check")
    assert checked.returncode == 0 and "would try voltagepark" in checked.stdout, checked.stdout + checked.stderr
    assert lookup(emulator, "voltagepark", "instance", "gpucloud-example-h100") is None
    try:
        placed = playbook()
        assert placed.returncode == 0 and "placed on voltagepark" in placed.stdout, placed.stdout + placed.stderr
        again = playbook()
        assert "changed=0" in again.stdout and "kept where it is" in again.stdout, again.stdout
    finally:
        gone = playbook("-e", "placement_state=absent")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert lookup(emulator, "voltagepark", "instance", "gpucloud-example-h100") is None

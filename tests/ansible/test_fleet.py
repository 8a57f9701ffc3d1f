"""gpucloud.cloud.instance with count / exact_count: real ansible-playbook runs against the emulator."""

from __future__ import annotations

from typing import Any

import pytest

import gpucloud
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides

from ..contract.specs import INSTANCE
from .conftest import Ansible
from .test_modules import task, writes


def names_on(emulator: EmulatorServer, provider: str, prefix: str) -> list[str]:
    with gpucloud.connect(provider, **client_overrides(emulator.url, emulator.settings)[provider]) as cloud:
        return sorted(i.name for i in cloud.list_instances() if i.name.startswith(prefix) and i.status != "deleted")


@pytest.mark.parametrize("provider", ["dcdncloud", "datacrunch"])
def test_count_creates_rerun_is_unchanged_and_exact_count_removes_the_highest(
    provider: str, ansible: Ansible, emulator: EmulatorServer
) -> None:
    prefix = f"ans-fleet-{provider[:2]}-"
    fleet: dict[str, Any] = {"provider": provider, "name": prefix + "{index}", **INSTANCE[provider]}
    expected = [prefix + str(i) for i in (1, 2, 3)]

    checked = ansible.play([task("instance", "plan", **fleet, count=3)], check=True, diff=True)
    assert checked.rc == 0, checked.output
    assert checked["plan"]["changed"] and checked["plan"]["created"] == expected
    assert [m["name"] for m in checked["plan"]["instances"]] == expected
    assert all(m["id"] is None for m in checked["plan"]["instances"])
    assert checked["plan"]["diff"] == {"before": {"instances": []}, "after": {"instances": expected}}
    assert names_on(emulator, provider, prefix) == [], "check mode created nothing"

    made = ansible.play([task("instance", "made", **fleet, count=3)])
    assert made.rc == 0, made.output
    assert made["made"]["changed"] and made["made"]["created"] == expected and made["made"]["action"] == "create"
    assert [m["name"] for m in made["made"]["instances"]] == expected
    assert all(m["status"] == "running" and m["id"] for m in made["made"]["instances"])
    assert names_on(emulator, provider, prefix) == expected

    before = writes(emulator, provider)
    again = ansible.play([task("instance", "again", **fleet, count=3), task("instance", "ex", **fleet, exact_count=3)])
    assert again.rc == 0, again.output
    assert again["again"]["changed"] is False and again["again"]["created"] == []
    assert again["ex"]["changed"] is False and again["ex"]["removed"] == []
    assert [m["id"] for m in again["again"]["instances"]] == [m["id"] for m in made["made"]["instances"]]
    assert writes(emulator, provider) == before, "a re-run sends no writes"

    shrink_plan = ansible.play([task("instance", "plan", **fleet, exact_count=1)], check=True)
    assert shrink_plan["plan"]["changed"] and shrink_plan["plan"]["removed"] == [prefix + "3", prefix + "2"]
    assert names_on(emulator, provider, prefix) == expected

    shrunk = ansible.play([task("instance", "shrunk", **fleet, exact_count=1)], diff=True)
    assert shrunk.rc == 0, shrunk.output
    assert shrunk["shrunk"]["changed"] and shrunk["shrunk"]["removed"] == [prefix + "3", prefix + "2"]
    assert shrunk["shrunk"]["action"] == "delete"
    assert [m["name"] for m in shrunk["shrunk"]["instances"]] == [prefix + "1"]
    assert shrunk["shrunk"]["diff"]["after"] == {"instances": [prefix + "1"]}
    assert names_on(emulator, provider, prefix) == [prefix + "1"]

    gone = ansible.play([task("instance", "gone", provider=provider, name=prefix + "{index}", exact_count=0)])
    assert gone.rc == 0, gone.output
    assert gone["gone"]["removed"] == [prefix + "1"] and names_on(emulator, provider, prefix) == []


@pytest.mark.parametrize(
    ("args", "option", "message"),
    [
        ({"name": "trainer", "count": 2}, "name", "{index}"),
        ({"name": "t-{index}", "exact_count": -1}, "exact_count", ">= 0"),
        ({"name": "t-{index}", "count": 2, "state": "absent"}, "count", "state=present"),
        ({"name": "t-{index}-{index}", "count": 2}, "name", "only once"),
    ],
)
def test_fleet_options_are_checked_before_any_request(
    args: dict[str, Any], option: str, message: str, ansible: Ansible, emulator: EmulatorServer
) -> None:
    before = len(emulator.world.requests)
    result = ansible.play(
        [task("instance", "bad", ignore_errors=True, provider="dcdncloud", **INSTANCE["dcdncloud"], **args)]
    )
    bad = result["bad"]
    assert bad["failed"] and bad["option"] == option and message in bad["msg"], bad
    assert bad["msg"].startswith(f"{option}: ")
    assert len(emulator.world.requests) == before


def test_count_and_exact_count_are_mutually_exclusive(ansible: Ansible) -> None:
    result = ansible.play(
        [task("instance", "bad", ignore_errors=True, provider="dcdncloud", name="t-{index}", count=1, exact_count=1)]
    )
    assert result["bad"]["failed"] and "mutually exclusive" in result["bad"]["msg"]

"""Teardown through real ansible-playbook runs leaves nothing in the emulated account (its ledger before a play
equals the ledger after): create -> destroy, create -> replace -> destroy, and an attached volume destroyed
before or after its instance, on every provider that has the pieces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from tests.ledger import holdings, settle

from ..contract.specs import INSTANCE, REPLACING, VOLUME
from .conftest import Ansible
from .test_modules import IMPLEMENTED, caps, task

SCRIPT = "#!/bin/sh\necho ready > /tmp/ready\n"


def _instance(provider: str, name: str, public_key: str) -> tuple[list[dict[str, Any]], dict[str, Any], list[Any]]:
    """(tasks registering the key, the instance task's arguments, tasks deleting the key)."""
    args: dict[str, Any] = {"provider": provider, "name": name, "wait_timeout": 60, **INSTANCE[provider]}
    if Capability.INSTANCE_STARTUP_SCRIPT in caps(provider):
        args["startup_script"] = SCRIPT
    if Capability.SSH_KEYS not in caps(provider):
        return [], {**args, "ssh_keys": [public_key]}, []
    key = {"provider": provider, "name": name}
    return (
        [task("ssh_key", "key", **key, public_key=public_key)],
        {**args, "ssh_keys": [name]},
        [task("ssh_key", "key_gone", **key, state="absent")],
    )


@pytest.mark.parametrize("provider", IMPLEMENTED)
def test_create_destroy_and_replace_leave_nothing(
    provider: str, ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    name = f"ans-td-{provider}"
    add_key, inst, drop_key = _instance(provider, name, keypair[1])
    absent = task("instance", "gone", provider=provider, name=name, state="absent", wait_timeout=60)

    before = holdings(emulator, provider)
    run = ansible.play([*add_key, task("instance", "made", **inst), absent, *drop_key])
    assert run.rc == 0, run.output
    assert run["made"]["action"] == "create" and run["gone"]["action"] == "delete"
    assert settle(emulator, provider, before) == []

    other = {**inst, **REPLACING[provider], "force_replace": True}
    replace = task("instance", "new", **other)
    run = ansible.play([*add_key, task("instance", "made", **inst), replace, absent, *drop_key])
    assert run.rc == 0, run.output
    assert run["new"]["action"] == "replace" and run["new"]["instance"]["id"] != run["made"]["instance"]["id"]
    assert settle(emulator, provider, before) == []


ATTACHING = [p for p in IMPLEMENTED if {Capability.VOLUME_ATTACH, Capability.VOLUME_DELETE} <= caps(p)]


@pytest.mark.parametrize("volume_first", [True, False], ids=["volume-first", "instance-first"])
@pytest.mark.parametrize("provider", ATTACHING)
def test_attached_volume_destroyed_in_either_order_leaves_nothing(
    provider: str, ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str], volume_first: bool
) -> None:
    name = f"ans-tdv-{provider}"
    add_key, inst, drop_key = _instance(provider, name, keypair[1])
    volume = {"provider": provider, "name": f"{name}-data", **VOLUME[provider]}
    stop = task("instance", "stopped", provider=provider, name=name, state="stopped")  # DataCrunch: offline only
    attach = task("volume", "vol", **volume, size=10, attach_to=name)
    preview = {**task("volume", "preview", **volume, state="absent"), "check_mode": True}
    volume_gone = task("volume", "vol_gone", **volume, state="absent")
    instance_gone = task("instance", "gone", provider=provider, name=name, state="absent", wait_timeout=60)
    order = [preview, volume_gone, instance_gone] if volume_first else [instance_gone, volume_gone]

    before = holdings(emulator, provider)
    run = ansible.play([*add_key, task("instance", "made", **inst), stop, attach, *order, *drop_key])
    assert run.rc == 0, run.output
    assert run["vol"]["volume"]["attached_to"] == [run["made"]["instance"]["id"]]
    if volume_first:
        assert run["preview"]["changed"] and run["preview"]["action"] == "detach+delete"
        assert run["preview"]["plan"]["updates"] == [
            {"field": "attached_to", "current": [run["made"]["instance"]["id"]], "desired": []}
        ]
    assert run["vol_gone"]["action"] == ("detach+delete" if volume_first else "delete")
    assert settle(emulator, provider, before) == []

"""Teardown through real ansible-playbook runs leaves nothing in the emulated account (its ledger before a play
equals the ledger after): create -> destroy, create -> replace -> destroy, create -> update in place -> destroy,
an attached volume destroyed before or after its instance, and a playbook SIGKILLed right after its instance
create was sent, run again, then destroyed, on every provider that has the pieces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import CONTROL_TOKEN_ENV
from gpucloud.emulator.middleware import CONTROL_TOKEN_HEADER
from tests import figures
from tests.faults.test_interruption import instance_creates, killed_playbook, slow_boot, wait_for_instance_create
from tests.ledger import holdings, settle

from ..contract.specs import INSTANCE, OTHER_TYPE, REPLACING, VOLUME
from .conftest import Ansible
from .test_modules import IMPLEMENTED, caps, task

SCRIPT = "#!/bin/sh\necho ready > /tmp/ready\n"


def _bare(provider: str, name: str) -> dict[str, Any]:
    """The instance task's arguments without keys (a key is not made for the instance: it is no leftover of
    it), with a startup script where the provider takes one (DataCrunch keeps it as an account object)."""
    args: dict[str, Any] = {"provider": provider, "name": name, "wait_timeout": 60, **INSTANCE[provider]}
    if Capability.INSTANCE_STARTUP_SCRIPT in caps(provider):
        args["startup_script"] = SCRIPT
    return args


def _instance(provider: str, name: str, public_key: str) -> tuple[list[dict[str, Any]], dict[str, Any], list[Any]]:
    """(tasks registering the key, the instance task's arguments, tasks deleting the key)."""
    args = _bare(provider, name)
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


def _update_chain(provider: str, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Tasks creating an instance, changing it in place (resized where the API resizes, tags where it updates
    them), stopping it and deleting it; and the change made."""
    inst = _bare(provider, name)
    if Capability.INSTANCE_TAGS in caps(provider):
        inst["tags"] = {"team": "red"}
    change: dict[str, Any] = {}
    if Capability.INSTANCE_RESIZE in caps(provider):
        change["instance_type"] = OTHER_TYPE[provider]
    if Capability.INSTANCE_TAG_UPDATE in caps(provider):
        change["tags"] = {"team": "blue"}
    updates = [task("instance", "changed", **{**inst, **change})] if change else []
    stop = task("instance", "stopped", provider=provider, name=name, state="stopped")
    absent = task("instance", "updated_gone", provider=provider, name=name, state="absent", wait_timeout=60)
    return [task("instance", "updated", **inst), *updates, stop, absent], change


def _ledger_task(emulator: EmulatorServer, provider: str, register: str) -> dict[str, Any]:
    """A task reading the provider's emulated account ledger in the middle of a play. no_log: the control API
    token (from the play's environment) is in the task's arguments; the registered result keeps the ledger."""
    token = "{{ lookup('ansible.builtin.env', '" + CONTROL_TOKEN_ENV + "') }}"
    return {
        "name": f"ledger {register}",
        "ansible.builtin.uri": {
            "url": f"{emulator.url}/_emulator/ledger?provider={provider}",
            "headers": {CONTROL_TOKEN_HEADER: token},
            "return_content": True,
        },
        "no_log": True,
        "register": register,
    }


KILL_MARGIN = 2.0  # seconds machines take to boot while a playbook is being killed


@pytest.mark.parametrize("provider", IMPLEMENTED)
def test_killed_after_create_rerun_destroy_then_update_destroy_leave_nothing(
    provider: str, ansible: Ansible, emulator: EmulatorServer, tmp_path: Path
) -> None:
    """Two teardown scenarios, one real ansible-playbook run after the killed one (each scenario's checks name it):

    1. kill: the playbook dies (SIGKILL, module process included) the moment the API has the instance create.
       The rerun must adopt that instance rather than create another, and its delete must take everything made
       for it before the kill (a DataCrunch startup script, a ComputeStacks project): the play reads the
       account's ledger right after that delete.
    2. update: another instance is created, changed in place and stopped, then deleted.
    """
    name = f"ans-tdk-{provider}"
    inst = _bare(provider, name)
    absent = task("instance", "gone", provider=provider, name=name, state="absent", wait_timeout=60)
    chain, change = _update_chain(provider, f"ans-tdu-{provider}")

    before = holdings(emulator, provider)
    start = len(emulator.world.requests)
    # A slow boot keeps the create task waiting well past the kill, however loaded the machine.
    with slow_boot(emulator, KILL_MARGIN):
        killed_playbook(
            [task("instance", "made", **inst)],
            ansible.env,
            tmp_path,
            lambda: wait_for_instance_create(emulator, provider, start),
        )
    run = ansible.play([task("instance", "made", **inst), absent, _ledger_task(emulator, provider, "ledger"), *chain])
    # One instance create by the killed run, one by the update scenario: any other is a duplicate.
    creates = len(instance_creates(emulator, provider, start))
    figures.record("kill-after-create reruns tried")
    figures.record("duplicates", max(creates - 2, 0))  # fewer: the play stopped before the update's create
    assert run.rc == 0, run.output
    assert run["made"]["instance"]["status"] == "running" and run["gone"]["action"] == "delete", "kill: rerun"
    assert run["updated"]["action"] == "create", "update: create"
    assert creates == 2, "kill: the rerun adopted, it did not create (nor did the update scenario create twice)"
    after_kill = run["ledger"]["json"]["providers"][provider]["items"]
    assert settle(emulator, provider, before, after=after_kill) == [], "kill: left after the rerun's delete"

    made = run["updated"]["instance"]
    if change:
        changed = run["changed"]
        assert changed["action"] == "update" and changed["instance"]["id"] == made["id"], "update: in place"
        assert {u["field"] for u in changed["plan"]["updates"]} == set(change), f"update: {changed['plan']}"
    assert run["stopped"]["action"] == "stop" and run["stopped"]["instance"]["status"] == "stopped", "update: stop"
    assert run["updated_gone"]["action"] == "delete", "update: delete"
    assert settle(emulator, provider, before) == [], "update: left after its delete"

"""Pulumi teardown leaves nothing in the emulated account: the ledger before a stack equals the ledger after it.

Programs of several resources run through the engine-faithful harness (``up`` / ``destroy`` as the engine
schedules them) on every provider: create -> destroy; create -> replace -> destroy; create -> update in place ->
destroy; a volume attached to an instance, destroyed in the engine's order (dependents first) and with the
instance removed by an earlier ``up``; the provider process SIGKILLed right after its instance create was sent,
``up`` again, destroy. What gpucloud made for an instance (DataCrunch OS volume and startup script,
ComputeStacks project) must go with it. The emulator is the session one (machines boot in 0.3 s).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.providers import provider_class
from tests import figures
from tests.faults.test_interruption import instance_creates, interrupted_deploy, slow_boot, wait_for_instance_create
from tests.ledger import holdings, settle

from ..conftest import connect, providers_with
from ..contract.specs import INSTANCE, OTHER_TYPE, REPLACING, VOLUME
from .conftest import PROJECT, attached_by_name, declare, unique
from .harness import Declared, DynamicProviderHarness, ProviderFailed, Ref, Stack
from .test_engine_programs import destroyed_after

Overrides = dict[str, dict[str, object]]
SCRIPT = "#!/bin/sh\necho ready > /tmp/ready\n"
ALL = providers_with(Capability.INSTANCES)
ATTACHING = providers_with(Capability.VOLUME_ATTACH, Capability.VOLUME_DELETE)
KILL_MARGIN = 2.0  # seconds machines take to boot while a run is being killed


def _caps(provider: str) -> frozenset[Capability]:
    return provider_class(provider).capabilities


def _names(scenario: str, provider: str) -> dict[str, str]:
    return {role: unique(f"pl-{scenario}-{role}-{provider}") for role in ("key", "box", "data")}


def instance_program(provider: str, names: dict[str, str], public_key: str, **changes: Any) -> list[Declared]:
    """A registered key (where the API keeps keys) and an instance using it, with a startup script and tags
    where the provider takes them: the richest instance, so everything gpucloud makes for one is made."""
    box: dict[str, Any] = {**INSTANCE[provider], "provider": provider, "name": names["box"], "wait_timeout": 60}
    if Capability.INSTANCE_STARTUP_SCRIPT in _caps(provider):
        box["startup_script"] = SCRIPT
    if Capability.INSTANCE_TAGS in _caps(provider):
        box["tags"] = {"team": "red"}
    program = []
    if Capability.SSH_KEYS in _caps(provider):
        key = {"provider": provider, "name": names["key"], "public_key": public_key}
        program.append(declare("ssh_key", names["key"], key))
        box["ssh_keys"] = [Ref(names["key"], "name")]
    else:
        box["ssh_keys"] = [public_key]
    return [*program, declare("instance", names["box"], {**box, **changes})]


def _billed_instance(emulator: EmulatorServer, provider: str, instance_id: str) -> bool:
    return any(i["kind"] == "instance" and i["id"] == instance_id and i["billed"] for i in holdings(emulator, provider))


@pytest.mark.parametrize("provider", ALL)
def test_create_then_destroy_leaves_nothing(
    harness: DynamicProviderHarness, emulator: EmulatorServer, keypair: tuple[Path, str], provider: str
) -> None:
    names = _names("cd", provider)
    before = holdings(emulator, provider)
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks):
        up = harness.deploy(instance_program(provider, names, keypair[1]))
        stacks.append(up.stack)
        assert set(up.operations().values()) == {"create"}
        assert _billed_instance(emulator, provider, up.stack[names["box"]].id)
        down = harness.destroy_stack(up.stack)
        stacks.append(down.stack)
        assert down.stack == {} and set(down.operations().values()) == {"delete"}
    assert settle(emulator, provider, before) == []


@pytest.mark.parametrize("provider", ALL)
def test_create_replace_destroy_leaves_nothing(
    harness: DynamicProviderHarness, emulator: EmulatorServer, keypair: tuple[Path, str], provider: str
) -> None:
    names = _names("rp", provider)
    box = names["box"]
    before = holdings(emulator, provider)
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks):
        first = harness.deploy(instance_program(provider, names, keypair[1]))
        stacks.append(first.stack)
        second = harness.deploy(instance_program(provider, names, keypair[1], **REPLACING[provider]), first.stack)
        stacks.append(second.stack)
        assert second.operations()[box] == "replace"
        assert second.stack[box].id != first.stack[box].id
        assert not _billed_instance(emulator, provider, first.stack[box].id), "the replaced one is gone"
        stacks.append(harness.destroy_stack(second.stack).stack)
    assert settle(emulator, provider, before) == []


def in_place_change(provider: str) -> dict[str, Any]:
    """What the API changes on a live instance: its type where it resizes, tags where it updates them; on the
    others only an input that steers the provider (an Update that sends the API nothing)."""
    change: dict[str, Any] = {}
    if Capability.INSTANCE_RESIZE in _caps(provider):
        change["instance_type"] = OTHER_TYPE[provider]
    if Capability.INSTANCE_TAG_UPDATE in _caps(provider):
        change["tags"] = {"team": "blue"}
    return change or {"wait_timeout": 90}


@pytest.mark.parametrize("provider", ALL)
def test_create_update_destroy_leaves_nothing(
    harness: DynamicProviderHarness,
    emulator: EmulatorServer,
    overrides: Overrides,
    keypair: tuple[Path, str],
    provider: str,
) -> None:
    """Updated in place (a volume beside it grown where volumes resize), then destroyed."""
    names = _names("up", provider)
    box, data = names["box"], names["data"]
    grows = Capability.VOLUME_RESIZE in _caps(provider)

    def program(size_gb: int, **changes: Any) -> list[Declared]:
        volume = {"provider": provider, "name": data, "size_gb": size_gb, **VOLUME[provider]}
        return [
            *instance_program(provider, names, keypair[1], **changes),
            *([declare("volume", data, volume)] if grows else []),
        ]

    change = in_place_change(provider)
    before = holdings(emulator, provider)
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        first = harness.deploy(program(10))
        stacks.append(first.stack)
        second = harness.deploy(program(20, **change), first.stack)
        stacks.append(second.stack)
        assert second.operations()[box] == "update" and second.stack[box].id == first.stack[box].id
        live = cloud.get_instance(first.stack[box].id)
        if "instance_type" in change:
            assert live.instance_type == cloud.canonical_instance_type(change["instance_type"])
        if "tags" in change:
            assert live.tags == change["tags"]
        if grows:
            assert second.operations()[data] == "update"
            assert cloud.get_volume(first.stack[data].id).size_gb == 20
        stacks.append(harness.destroy_stack(second.stack).stack)
    assert settle(emulator, provider, before) == []


def attached_program(provider: str, names: dict[str, str], *, by_reference: bool = True) -> list[Declared]:
    """An instance and a volume attached to it, as a program writes it for the provider: the volume named in
    the instance's ``volumes`` where volumes attach at create (the instance depends on the volume), else the
    volume's ``attach_to`` naming the instance (the volume depends on it). ``by_reference=False``: the same
    values as plain strings, no dependency (what a program keeps after dropping the other resource)."""
    box, data = names["box"], names["data"]
    instance: dict[str, Any] = {**INSTANCE[provider], "provider": provider, "name": box, "wait_timeout": 60}
    volume: dict[str, Any] = {"provider": provider, "name": data, "size_gb": 10, **VOLUME[provider]}
    if Capability.INSTANCE_VOLUMES_AT_CREATE in _caps(provider):
        instance["volumes"] = [Ref(data, "name") if by_reference else data]
        return [declare("volume", data, volume), declare("instance", box, instance)]
    volume["attach_to"] = attached_by_name(box) if by_reference else box
    return [declare("instance", box, instance), declare("volume", data, volume)]


def _dependent(provider: str, names: dict[str, str]) -> tuple[str, str]:
    """(the resource that depends on the other, the one it depends on) in :func:`attached_program`."""
    if Capability.INSTANCE_VOLUMES_AT_CREATE in _caps(provider):
        return names["box"], names["data"]
    return names["data"], names["box"]


@pytest.mark.parametrize("order", ["destroy", "instance-removed-first"])
@pytest.mark.parametrize("provider", ATTACHING)
def test_attached_volume_leaves_nothing_in_either_order(
    harness: DynamicProviderHarness,
    emulator: EmulatorServer,
    overrides: Overrides,
    provider: str,
    order: str,
) -> None:
    """``destroy``: the engine deletes the dependent first. ``instance-removed-first``: an ``up`` drops the
    instance from the program while the volume is attached to it, then ``destroy`` takes the volume."""
    names = _names("att", provider)
    box, data = names["box"], names["data"]
    dependent, dependency = _dependent(provider, names)
    before = holdings(emulator, provider)
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        up = harness.deploy(attached_program(provider, names))
        stacks.append(up.stack)
        assert cloud.get_volume(up.stack[data].id).attached_to == (up.stack[box].id,)
        if order == "destroy":
            down = harness.destroy_stack(up.stack)
            stacks.append(down.stack)
            assert down.at(dependent, "delete", "end") < down.at(dependency, "delete")
        else:
            kept = [d for d in attached_program(provider, names, by_reference=False) if d.name == data]
            dropped = harness.deploy(kept, up.stack)
            stacks.append(dropped.stack)
            assert dropped.operations() == {data: "same", box: "delete"}
            assert cloud.find_instance(box) is None and cloud.get_volume(up.stack[data].id).attached_to == ()
            stacks.append(harness.destroy_stack(dropped.stack).stack)
        assert stacks[-1] == {}
    assert settle(emulator, provider, before) == []


@pytest.mark.parametrize("provider", ALL)
def test_killed_after_create_then_up_again_and_destroy_leaves_nothing(
    harness: DynamicProviderHarness,
    project_dir: Path,
    emulator_env: dict[str, str],
    emulator: EmulatorServer,
    overrides: Overrides,
    keypair: tuple[Path, str],
    provider: str,
) -> None:
    """The provider process dies (SIGKILL) the moment the API has the instance create: the engine records
    nothing for the instance. The next ``up`` must adopt what that create made, not make a second one, and
    ``destroy`` must then take everything, including what was made for the instance before the kill."""
    names = _names("kill", provider)
    box = names["box"]
    program = instance_program(provider, names, keypair[1])
    before = holdings(emulator, provider)
    start = len(emulator.world.requests)
    # A slow boot keeps the create call waiting well past the kill, however loaded the machine.
    with (
        slow_boot(emulator, KILL_MARGIN),
        DynamicProviderHarness(project_dir, project=PROJECT, env=emulator_env) as doomed,
    ):
        failures, _ = interrupted_deploy(
            doomed,
            lambda: doomed.deploy(program),
            lambda: wait_for_instance_create(emulator, provider, start),
            signal.SIGKILL,
        )
    assert len(failures) == 1 and isinstance(failures[0], ProviderFailed), failures
    stacks: list[Stack] = [failures[0].deployment.stack]  # type: ignore[attr-defined]
    assert box not in stacks[0], "the engine never heard back about the instance"
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        again = harness.deploy(program, stacks[0])
        stacks.append(again.stack)
        same_name = [i.id for i in cloud.list_instances() if i.name == box]
        stacks.append(harness.destroy_stack(again.stack).stack)
    figures.record("kill-after-create reruns tried")
    figures.record("duplicates", len(same_name) - 1)
    assert len(instance_creates(emulator, provider, start)) == 1, "the second up adopted, it did not create"
    assert same_name == [again.stack[box].id]
    assert settle(emulator, provider, before) == []

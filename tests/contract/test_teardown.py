"""Teardown leaves nothing behind: the emulator's account ledger before a scenario equals the ledger after it.

Through ``gpucloud.ensure`` (what both front-ends call) on every provider: create -> destroy, create -> replace
-> destroy, create -> update in place -> destroy, and an attached volume destroyed before or after its
instance. Everything gpucloud made for an instance (DataCrunch OS volume and startup script, ComputeStacks
project) must go with it unless ``keep_os_volume`` asks to keep the OS volume.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, VolumeSpec
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.ensure import (
    ensure_instance,
    ensure_instance_absent,
    ensure_instance_power,
    ensure_ssh_key,
    ensure_ssh_key_absent,
    ensure_volume,
    ensure_volume_absent,
)
from gpucloud.providers import provider_class
from tests.ledger import holdings, settle

from ..conftest import providers_with
from .specs import INSTANCE, OTHER_TYPE, REPLACING, VOLUME

FAST = {"wait_timeout": 60.0}
SCRIPT = "#!/bin/sh\necho ready > /tmp/ready\n"


@pytest.fixture
def spec(cloud: gpucloud.Provider, keypair: tuple, request: pytest.FixtureRequest) -> Iterator[InstanceSpec]:
    """An instance spec with the richest options the provider takes (a registered key, a startup script)."""
    name = f"td-{request.node.name.split('[')[0][-12:].replace('_', '-')}-{cloud.name}"
    keys: tuple[str, ...] = (keypair[1],)
    if cloud.supports(Capability.SSH_KEYS):
        keys = (name,)
    script = SCRIPT if cloud.supports(Capability.INSTANCE_STARTUP_SCRIPT) else None
    yield InstanceSpec(name=name, ssh_keys=keys, startup_script=script, **INSTANCE[cloud.name])


def _with_key(cloud: gpucloud.Provider, spec: InstanceSpec, public_key: str) -> None:
    if cloud.supports(Capability.SSH_KEYS):
        ensure_ssh_key(cloud, SshKeySpec(name=spec.name, public_key=public_key))


def _drop_key(cloud: gpucloud.Provider, spec: InstanceSpec) -> None:
    if cloud.supports(Capability.SSH_KEYS):
        ensure_ssh_key_absent(cloud, name=spec.name)


@pytest.mark.parametrize("cloud", providers_with(Capability.INSTANCES), indirect=True)
def test_create_then_destroy_leaves_nothing(
    cloud: gpucloud.Provider, spec: InstanceSpec, keypair: tuple, emulator: EmulatorServer
) -> None:
    before = holdings(emulator, cloud.name)
    _with_key(cloud, spec, keypair[1])
    created = ensure_instance(cloud, spec, **FAST).after
    assert created is not None
    during = holdings(emulator, cloud.name)
    assert any(i["kind"] == "instance" and i["id"] == created.id and i["billed"] for i in during)
    assert ensure_instance_absent(cloud, name=spec.name, **FAST).changed
    _drop_key(cloud, spec)
    assert settle(emulator, cloud.name, before) == []


@pytest.mark.parametrize("cloud", providers_with(Capability.INSTANCES), indirect=True)
def test_create_replace_destroy_leaves_nothing(
    cloud: gpucloud.Provider, spec: InstanceSpec, keypair: tuple, emulator: EmulatorServer
) -> None:
    before = holdings(emulator, cloud.name)
    _with_key(cloud, spec, keypair[1])
    first = ensure_instance(cloud, spec, **FAST).after
    other = spec.model_copy(update=REPLACING[cloud.name])
    second = ensure_instance(cloud, other, force_replace=True, **FAST).after
    assert first is not None and second is not None and second.id != first.id
    ensure_instance_absent(cloud, name=spec.name, **FAST)
    _drop_key(cloud, spec)
    assert settle(emulator, cloud.name, before) == []


@pytest.mark.parametrize("cloud", providers_with(Capability.INSTANCES), indirect=True)
def test_create_update_destroy_leaves_nothing(
    cloud: gpucloud.Provider, spec: InstanceSpec, keypair: tuple, emulator: EmulatorServer
) -> None:
    """Resized where the API resizes, retagged where it updates tags, stopped, then deleted."""
    before = holdings(emulator, cloud.name)
    _with_key(cloud, spec, keypair[1])
    if cloud.supports(Capability.INSTANCE_TAGS):
        spec = spec.model_copy(update={"tags": {"team": "red"}})
    first = ensure_instance(cloud, spec, **FAST).after
    assert first is not None
    change: dict[str, object] = {}
    if cloud.supports(Capability.INSTANCE_RESIZE):
        change["instance_type"] = OTHER_TYPE[cloud.name]
    if cloud.supports(Capability.INSTANCE_TAG_UPDATE):
        change["tags"] = {"team": "blue"}
    if change:
        updated = ensure_instance(cloud, spec.model_copy(update=change), **FAST)
        assert updated.action == "update" and set(updated.plan.update_fields) == set(change)
        assert updated.after is not None and updated.after.id == first.id
    stopped = ensure_instance_power(cloud, "stopped", name=spec.name, **FAST).after
    assert stopped is not None and stopped.id == first.id
    ensure_instance_absent(cloud, name=spec.name, **FAST)
    _drop_key(cloud, spec)
    assert settle(emulator, cloud.name, before) == []


ATTACHING = providers_with(Capability.VOLUME_ATTACH, Capability.VOLUME_DELETE)


@pytest.mark.parametrize("volume_first", [True, False], ids=["volume-first", "instance-first"])
@pytest.mark.parametrize("cloud", ATTACHING, indirect=True)
def test_attached_volume_destroyed_in_either_order_leaves_nothing(
    cloud: gpucloud.Provider, spec: InstanceSpec, keypair: tuple, emulator: EmulatorServer, volume_first: bool
) -> None:
    before = holdings(emulator, cloud.name)
    _with_key(cloud, spec, keypair[1])
    instance = ensure_instance(cloud, spec, **FAST).after
    assert instance is not None
    ensure_instance_power(cloud, "stopped", name=spec.name, **FAST)  # DataCrunch attaches only to offline ones
    vol = VolumeSpec(name=f"{spec.name}-data", size_gb=10, attach_to=spec.name, **VOLUME[cloud.name])
    volume = ensure_volume(cloud, vol).after
    assert volume is not None and volume.attached_to == (instance.id,)
    if volume_first:
        assert ensure_volume_absent(cloud, name=vol.name).action == "detach+delete"
        ensure_instance_absent(cloud, name=spec.name, **FAST)
    else:
        ensure_instance_absent(cloud, name=spec.name, **FAST)
        assert ensure_volume_absent(cloud, name=vol.name).action == "delete"  # detached with its instance
    _drop_key(cloud, spec)
    assert settle(emulator, cloud.name, before) == []


KEEPS_OS_VOLUME = [p for p in providers_with(Capability.INSTANCES) if provider_class(p).separate_os_volume]


@pytest.mark.parametrize("cloud", KEEPS_OS_VOLUME, indirect=True)
def test_keep_os_volume_keeps_exactly_the_os_volume(
    cloud: gpucloud.Provider, spec: InstanceSpec, keypair: tuple, emulator: EmulatorServer
) -> None:
    before = holdings(emulator, cloud.name)
    _with_key(cloud, spec, keypair[1])
    ensure_instance(cloud, spec, **FAST)
    ensure_instance_absent(cloud, name=spec.name, keep_os_volume=True, **FAST)
    _drop_key(cloud, spec)
    kept = [i for i in holdings(emulator, cloud.name) if i not in before]
    assert [(i["kind"], i["billed"]) for i in kept] == [("os_volume", True)] and kept[0]["hourly_usd"] > 0
    volume = cloud.get_volume(kept[0]["id"])
    assert volume.attached_to == () and volume.price_per_hour == kept[0]["hourly_usd"]
    ensure_volume_absent(cloud, volume_id=volume.id)
    assert settle(emulator, cloud.name, before) == []


@pytest.mark.parametrize("cloud", [p for p in providers_with(Capability.INSTANCES) if p not in KEEPS_OS_VOLUME])
def test_keep_os_volume_is_refused_where_there_is_none(
    overrides: dict[str, dict[str, object]], cloud: str, emulator: EmulatorServer
) -> None:
    sent = emulator.world.request_count()
    with (
        gpucloud.connect(cloud, **overrides[cloud]) as adapter,
        pytest.raises(gpucloud.ValidationError, match="keep_os_volume") as info,
    ):
        ensure_instance_absent(adapter, name="anything", keep_os_volume=True)
    assert info.value.field == "keep_os_volume"
    assert emulator.world.request_count() == sent

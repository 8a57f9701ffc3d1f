"""Check mode predicts instead of failing when a task names something created earlier in the same run, and an
instance's ``volumes`` are attached to an existing instance (predicted in check mode) instead of ignored."""

from __future__ import annotations

import pytest

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, Status, VolumeSpec
from gpucloud.capabilities import Capability
from gpucloud.ensure import (
    ensure_instance,
    ensure_instance_absent,
    ensure_instance_power,
    ensure_ssh_key,
    ensure_ssh_key_absent,
    ensure_volume,
    ensure_volume_absent,
)
from gpucloud.reconcile import Action

from ..conftest import providers_with
from .specs import INSTANCE, VOLUME

FAST = {"wait_timeout": 60.0}
ATTACHING = providers_with(Capability.VOLUME_ATTACH, Capability.VOLUME_CREATE)


@pytest.mark.parametrize("cloud", ATTACHING, indirect=True)
def test_check_mode_predicts_attaching_to_an_instance_not_created_yet(cloud: gpucloud.Provider) -> None:
    spec = VolumeSpec(
        name=f"pred-vol-{cloud.name}", size_gb=10, attach_to=f"pred-later-{cloud.name}", **VOLUME[cloud.name]
    )
    if cloud.volume_attach_statuses is not None and Status.RUNNING not in cloud.volume_attach_statuses:
        # A new instance runs once created, and this API attaches only to stopped ones: the real run would fail.
        with pytest.raises(gpucloud.Conflict, match="will be running; stop it first"):
            ensure_volume(cloud, spec, check_mode=True)
        return
    assert ensure_volume(cloud, spec, check_mode=True).action is Action.CREATE
    volume = ensure_volume(cloud, spec.model_copy(update={"attach_to": None})).after
    assert volume is not None
    try:
        preview = ensure_volume(cloud, spec, check_mode=True)
        assert preview.action is Action.UPDATE
        assert [(c.field, c.desired) for c in preview.plan.updates] == [
            ("attached_to", [f"(to be created: pred-later-{cloud.name})"])
        ]
        with pytest.raises(gpucloud.ValidationError, match="attach_to: no") as info:
            ensure_volume(cloud, spec)  # for real, a missing instance is still an error
        assert info.value.field == "attach_to"
    finally:
        ensure_volume_absent(cloud, volume_id=volume.id)


INSTANCE_VOLUMES = providers_with(Capability.INSTANCE_VOLUMES_AT_CREATE, Capability.VOLUME_ATTACH)


@pytest.mark.parametrize("cloud", INSTANCE_VOLUMES, indirect=True)
def test_volumes_of_an_existing_instance_are_attached_and_predicted(cloud: gpucloud.Provider, keypair: tuple) -> None:
    key = ensure_ssh_key(cloud, SshKeySpec(name=f"pred key {cloud.name}", public_key=keypair[1])).after
    assert key is not None
    spec = InstanceSpec(name=f"pred-{cloud.name}", ssh_keys=(key.name,), **INSTANCE[cloud.name])
    instance = ensure_instance(cloud, spec, **FAST).after
    assert instance is not None
    volume = ensure_volume(cloud, VolumeSpec(name=f"pred-data-{cloud.name}", size_gb=10, **VOLUME[cloud.name])).after
    assert volume is not None
    try:
        ensure_instance_power(cloud, "stopped", instance_id=instance.id, **FAST)  # DataCrunch attaches offline only
        wanted = spec.model_copy(update={"volumes": (volume.name,)})
        preview = ensure_instance(cloud, wanted, check_mode=True, **FAST)
        assert preview.changed and preview.action is Action.UPDATE
        assert [(c.field, c.current, c.desired) for c in preview.plan.updates] == [("volumes", [], [volume.id])]
        assert cloud.get_volume(volume.id).attached_to == (), "check mode attached nothing"

        done = ensure_instance(cloud, wanted, wait=False, **FAST)
        assert done.action is Action.UPDATE and cloud.get_volume(volume.id).attached_to == (instance.id,)
        assert not ensure_instance(cloud, wanted, wait=False, **FAST).changed

        not_yet = spec.model_copy(update={"volumes": ("pred-volume-made-later",)})
        predicted = ensure_instance(cloud, not_yet, check_mode=True, **FAST)
        assert predicted.plan.updates[0].desired == ["(to be created: pred-volume-made-later)"]
        with pytest.raises(gpucloud.ValidationError, match=r"volumes\[0\]") as info:
            ensure_instance(cloud, not_yet, **FAST)
        assert info.value.field == "volumes"
    finally:
        ensure_instance_absent(cloud, instance_id=instance.id, **FAST)
        ensure_volume_absent(cloud, volume_id=volume.id)
        ensure_ssh_key_absent(cloud, key_id=key.id)

"""The shared desired-state operations both front-ends call, against the emulator."""

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
from gpucloud.providers import provider_class
from gpucloud.reconcile import Action

from ..conftest import providers_with
from .specs import INSTANCE, OTHER_TYPE, REPLACING, VOLUME

FAST = {"wait_timeout": 60.0}


@pytest.mark.parametrize("cloud", providers_with(Capability.INSTANCE_START_STOP), indirect=True)
def test_instance_present_power_and_absent(cloud: gpucloud.Provider, emulator: object, keypair: tuple) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    spec = InstanceSpec(name=f"ensure-{cloud.name}", ssh_keys=(keypair[1],), **INSTANCE[cloud.name])
    if cloud.supports(Capability.SSH_KEYS):
        key = ensure_ssh_key(cloud, SshKeySpec(name=f"ensure key {cloud.name}", public_key=keypair[1])).after
        assert key is not None
        spec = spec.model_copy(update={"ssh_keys": (key.name,)})

    planned = ensure_instance(cloud, spec, check_mode=True)
    assert planned.changed and planned.action is Action.CREATE and cloud.find_instance(spec.name) is None

    created = ensure_instance(cloud, spec, wait_for_ssh=True, **FAST)
    assert created.changed and created.after is not None and created.after.status is Status.RUNNING
    creates = world.request_count(method="POST")
    again = ensure_instance(cloud, spec, **FAST)
    assert not again.changed and again.after == cloud.get_instance(created.after.id)
    assert world.request_count(method="POST") == creates, "an unchanged run sends no writes"

    replacing = spec.model_copy(update=REPLACING[cloud.name])
    with pytest.raises(gpucloud.Conflict, match="force_replace") as info:
        ensure_instance(cloud, replacing, **FAST)
    assert info.value.details == {"fields": list(REPLACING[cloud.name])}

    stopped = ensure_instance_power(cloud, "stopped", name=spec.name, **FAST)
    assert stopped.changed and stopped.after is not None and stopped.after.status is Status.STOPPED
    assert not ensure_instance_power(cloud, "stopped", name=spec.name, **FAST).changed
    restarted = ensure_instance_power(cloud, "restarted", name=spec.name, wait_for_ssh=True, **FAST)
    assert restarted.after is not None and restarted.after.status is Status.RUNNING
    assert not ensure_instance_power(cloud, "started", name=spec.name, **FAST).changed

    assert ensure_instance_absent(cloud, name=spec.name, check_mode=True).changed
    assert cloud.find_instance(spec.name) is not None
    gone = ensure_instance_absent(cloud, name=spec.name, **FAST)
    assert gone.changed and gone.before is not None and cloud.find_instance(spec.name) is None
    assert not ensure_instance_absent(cloud, name=spec.name).changed
    if cloud.supports(Capability.SSH_KEYS):
        assert ensure_ssh_key_absent(cloud, name=f"ensure key {cloud.name}").changed


@pytest.mark.parametrize("cloud", providers_with(Capability.INSTANCE_TAGS, Capability.INSTANCE_RENAME), indirect=True)
def test_instance_tags_update_in_place_with_truthful_check_mode(cloud: gpucloud.Provider, keypair: tuple) -> None:
    spec = InstanceSpec(name=f"tags-{cloud.name}", ssh_keys=(keypair[1],), tags={"team": "ml"}, **INSTANCE[cloud.name])
    created = ensure_instance(cloud, spec, **FAST).after
    assert created is not None
    try:
        retagged = spec.model_copy(update={"tags": {"team": "infra", "cost": "42"}})
        preview = ensure_instance(cloud, retagged, check_mode=True)
        assert preview.action is Action.UPDATE and preview.plan.update_fields == ["tags"]
        assert cloud.get_instance(created.id).tags == {"team": "ml"}, "check mode changed nothing"
        diff = preview.diff()
        assert diff["before"]["tags"] == {"team": "ml"}
        applied = ensure_instance(cloud, retagged, **FAST)
        assert applied.after is not None and applied.after.id == created.id
        assert cloud.get_instance(created.id).tags == {"team": "infra", "cost": "42"}
    finally:
        ensure_instance_absent(cloud, instance_id=created.id, **FAST)


@pytest.mark.parametrize("cloud", providers_with(Capability.INSTANCES), indirect=True)
def test_force_replace_recreates_with_the_new_type(cloud: gpucloud.Provider, keypair: tuple) -> None:
    """A new type and, where the type alone would be resized in place, a new image too."""
    spec = InstanceSpec(name=f"replace-{cloud.name}", ssh_keys=(keypair[1],), **INSTANCE[cloud.name])
    if cloud.supports(Capability.SSH_KEYS):
        key = ensure_ssh_key(cloud, SshKeySpec(name=f"replace key {cloud.name}", public_key=keypair[1])).after
        spec = spec.model_copy(update={"ssh_keys": (key.name,)})  # type: ignore[union-attr]
    first = ensure_instance(cloud, spec, **FAST).after
    assert first is not None
    other_type = OTHER_TYPE[cloud.name]
    changed = {**REPLACING[cloud.name], "instance_type": other_type}
    replaced = ensure_instance(cloud, spec.model_copy(update=changed), force_replace=True, **FAST)
    try:
        assert replaced.action is Action.REPLACE and replaced.after is not None
        assert replaced.after.id != first.id and replaced.after.instance_type == cloud.canonical_instance_type(
            other_type
        )
        assert [i.id for i in cloud.list_instances() if i.name == spec.name] == [replaced.after.id]
    finally:
        ensure_instance_absent(cloud, name=spec.name, **FAST)
        if cloud.supports(Capability.SSH_KEYS):
            ensure_ssh_key_absent(cloud, name=f"replace key {cloud.name}")


@pytest.mark.parametrize(
    "cloud", providers_with(Capability.VOLUME_CREATE, Capability.VOLUME_RESIZE, Capability.VOLUME_RENAME), indirect=True
)
def test_volume_present_grow_and_absent(cloud: gpucloud.Provider) -> None:
    spec = VolumeSpec(name=f"ensure-vol-{cloud.name}", size_gb=20, **VOLUME[cloud.name])
    created = ensure_volume(cloud, spec)
    assert created.changed and created.after is not None
    assert not ensure_volume(cloud, spec).changed
    grown = spec.model_copy(update={"size_gb": 40})
    assert ensure_volume(cloud, grown, check_mode=True).changed
    assert cloud.get_volume(created.after.id).size_gb == 20
    assert ensure_volume(cloud, grown).after.size_gb == 40  # type: ignore[union-attr]
    with pytest.raises(gpucloud.ValidationError, match="cannot shrink"):
        ensure_volume(cloud, spec)
    assert ensure_volume_absent(cloud, name=spec.name).changed
    assert not ensure_volume_absent(cloud, name=spec.name).changed


KEYS_READ_BACK = [p for p in providers_with(Capability.SSH_KEYS) if provider_class(p).reports_public_keys]


@pytest.mark.parametrize("cloud", KEYS_READ_BACK, indirect=True)
def test_ssh_key_with_new_content_is_replaced(cloud: gpucloud.Provider, keypair: tuple, tmp_path) -> None:
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    other = (tmp_path / "k.pub").read_text().strip()
    name = f"rotate key {cloud.name}"
    first = ensure_ssh_key(cloud, SshKeySpec(name=name, public_key=keypair[1])).after
    assert not ensure_ssh_key(cloud, SshKeySpec(name=name, public_key=keypair[1] + " other-comment")).changed
    rotated = ensure_ssh_key(cloud, SshKeySpec(name=name, public_key=other))
    assert rotated.action is Action.REPLACE and rotated.after is not None and first is not None
    assert [k.public_key.split()[1] for k in cloud.list_ssh_keys() if k.name == name] == [other.split()[1]]
    assert ensure_ssh_key_absent(cloud, name=name).changed


@pytest.mark.parametrize("cloud", providers_with(Capability.VOLUME_ATTACH, Capability.VOLUME_DELETE), indirect=True)
def test_deleting_an_attached_volume_detaches_it_first(cloud: gpucloud.Provider, keypair: tuple) -> None:
    """The order Pulumi destroys in (the dependent volume before its instance) must work on every provider."""
    key = ensure_ssh_key(cloud, SshKeySpec(name=f"detach key {cloud.name}", public_key=keypair[1])).after
    assert key is not None
    spec = InstanceSpec(name=f"detach-{cloud.name}", ssh_keys=(key.name,), **INSTANCE[cloud.name])
    instance = ensure_instance(cloud, spec, **FAST).after
    assert instance is not None
    try:
        ensure_instance_power(cloud, "stopped", instance_id=instance.id, **FAST)  # some APIs attach only offline
        vol_spec = VolumeSpec(name=f"detach-vol-{cloud.name}", size_gb=10, attach_to=spec.name, **VOLUME[cloud.name])
        volume = ensure_volume(cloud, vol_spec).after
        assert volume is not None and volume.attached_to == (instance.id,)

        preview = ensure_volume_absent(cloud, name=vol_spec.name, check_mode=True)
        assert preview.action == "detach+delete" and preview.changed
        assert [(c.field, c.current, c.desired) for c in preview.plan.updates] == [("attached_to", [instance.id], [])]
        assert cloud.get_volume(volume.id).attached_to == (instance.id,), "check mode changed nothing"

        done = ensure_volume_absent(cloud, name=vol_spec.name)
        assert done.action == "detach+delete" and cloud.find_volume(vol_spec.name) is None
        assert volume.id not in cloud.get_instance(instance.id).volume_ids
    finally:
        ensure_instance_absent(cloud, instance_id=instance.id, **FAST)
        ensure_ssh_key_absent(cloud, key_id=key.id)


@pytest.mark.parametrize("cloud", providers_with(Capability.INSTANCE_RESIZE), indirect=True)
def test_type_change_resizes_in_place_where_the_api_resizes(cloud: gpucloud.Provider, keypair: tuple) -> None:
    """Backs the capability table's resize "yes": ensure resizes (no force_replace), and says so in check mode."""
    key = ensure_ssh_key(cloud, SshKeySpec(name=f"resize key {cloud.name}", public_key=keypair[1])).after
    assert key is not None
    spec = InstanceSpec(name=f"resize-{cloud.name}", ssh_keys=(key.name,), **INSTANCE[cloud.name])
    created = ensure_instance(cloud, spec, **FAST).after
    assert created is not None
    try:
        bigger = spec.model_copy(update={"instance_type": OTHER_TYPE[cloud.name]})
        new_type = cloud.canonical_instance_type(bigger.instance_type)
        preview = ensure_instance(cloud, bigger, check_mode=True, **FAST)
        assert preview.action is Action.UPDATE and preview.plan.update_fields == ["instance_type"]
        assert cloud.get_instance(created.id).instance_type == created.instance_type, "check mode resized nothing"
        resized = ensure_instance(cloud, bigger, **FAST)
        assert resized.action is Action.UPDATE and resized.after is not None
        assert (resized.after.id, resized.after.instance_type) == (created.id, new_type)
        assert not ensure_instance(cloud, bigger, **FAST).changed
    finally:
        ensure_instance_absent(cloud, instance_id=created.id, **FAST)
        ensure_ssh_key_absent(cloud, key_id=key.id)

import re
from pathlib import Path

import pytest

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, Status, sshexec
from gpucloud.capabilities import Capability
from gpucloud.providers.base import ONE_OFF_ACTIONS, OneOff
from gpucloud.reconcile import Action, plan_instance
from gpucloud.waiters import ssh_banner

from ..conftest import connect, providers_without
from .specs import INSTANCE


def test_instance_lifecycle_with_real_ssh(cloud: gpucloud.Provider, keypair: tuple[Path, str]) -> None:
    private, public = keypair
    has_keys = cloud.supports(Capability.SSH_KEYS)
    key = cloud.create_ssh_key(SshKeySpec(name=f"inst-key-{cloud.name}", public_key=public)) if has_keys else None
    spec = InstanceSpec(name=f"life-{cloud.name}", ssh_keys=(key.name if key else public,), **INSTANCE[cloud.name])
    created = cloud.create_instance(spec).instance
    try:
        assert created.name == spec.name and created.provider == cloud.name
        running = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=60, interval=0.2)
        assert running.public_ip and running.ssh_port
        assert (running.gpu_count >= 1 and bool(running.gpu_model)) == cloud.sells_gpus
        assert cloud.wait_for_ssh(running, timeout=30).startswith("SSH-2.0-")
        marker = f"hello from {cloud.name}"
        assert sshexec.run(running, f"echo {marker!r}", identity_file=private).strip() == marker

        assert cloud.find_instance(spec.name) == cloud.get_instance(created.id)
        key_ids, _ = cloud.resolve_ssh_keys(spec.ssh_keys)
        plan = plan_instance(
            spec, running, cloud.capabilities,
            desired_instance_type=cloud.canonical_instance_type(spec.instance_type), desired_ssh_key_ids=key_ids,
        )  # fmt: skip
        assert plan.action is Action.NONE, plan

        if cloud.supports(Capability.INSTANCE_START_STOP):
            cloud.stop_instance(created.id)
            stopped = cloud.wait_for_instance(created.id, [Status.STOPPED], timeout=60, interval=0.2)
            assert ssh_banner(running.public_ip, running.ssh_port, timeout=1) is None
            cloud.start_instance(stopped.id)
            again = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=60, interval=0.2)
            cloud.wait_for_ssh(again, timeout=30)
            assert sshexec.run(again, "echo back", identity_file=private).strip() == "back"
    finally:
        cloud.delete_instance(created.id)
        cloud.wait_for_instance_gone(created.id, timeout=60, interval=0.2)
        if key:
            cloud.delete_ssh_key(key.id)
    assert cloud.find_instance(spec.name) is None
    cloud.delete_instance(created.id)  # already gone counts as deleted


def test_unknown_instance_type_is_a_validation_error(cloud: gpucloud.Provider) -> None:
    spec = InstanceSpec(name=f"bad-type-{cloud.name}", **{**INSTANCE[cloud.name], "instance_type": "9Z999.1V"})
    with pytest.raises(gpucloud.ValidationError) as info:
        cloud.create_instance(spec)
    assert "9Z999.1V" in str(info.value) or info.value.field == "instance_type"
    assert cloud.find_instance(spec.name) is None


# A spec option per capability it needs; providers lacking the capability must refuse it before any request.
OPTION_NEEDS = {
    Capability.INSTANCE_TAGS: {"tags": {"a": "b"}},
    Capability.INSTANCE_LOCATION_CHOICE: {"location": "somewhere"},
    Capability.INSTANCE_STARTUP_SCRIPT: {"startup_script": "echo hi"},
    Capability.INSTANCE_PASSWORD: {"password": "long-enough-password"},
    Capability.INSTANCE_VOLUMES_AT_CREATE: {"volumes": ("data",)},
    Capability.INSTANCE_SPOT: {"spot": True},
    Capability.INSTANCE_OS_DISK_SIZE: {"os_disk_size_gb": 80},
}
UNSUPPORTED_OPTIONS = [(p, c) for c in OPTION_NEEDS for p in providers_without(c)]


@pytest.mark.parametrize(("provider", "capability"), UNSUPPORTED_OPTIONS)
def test_unsupported_options_fail_before_any_request(
    overrides: dict, emulator: object, provider: str, capability: Capability
) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    spec = {**INSTANCE[provider], **OPTION_NEEDS[capability]}
    before = world.request_count()
    with connect(overrides, provider) as cloud, pytest.raises(gpucloud.Unsupported, match=provider) as info:
        cloud.create_instance(InstanceSpec(name="never", **spec))
    assert info.value.capability == capability.value
    assert world.request_count() == before


@pytest.mark.parametrize("cloud", providers_without(Capability.INSTANCE_REBOOT), indirect=True)
def test_reboot_is_unsupported_and_says_what_to_do(cloud: gpucloud.Provider) -> None:
    with pytest.raises(gpucloud.Unsupported, match="state=stopped then state=started"):
        cloud.reboot_instance("any")


def test_voltagepark_image_picks_the_preset_with_that_os(overrides: dict, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    with connect(overrides, "voltagepark") as cloud:
        offers = [o for o in cloud.list_offers() if o.instance_type.startswith("1x-")]
        assert len(offers) == 1, "presets that differ only in OS are one offer"
        before = world.request_count(method="POST")
        with pytest.raises(gpucloud.ValidationError, match="operating system") as info:
            cloud.create_instance(InstanceSpec(name="os-check", instance_type="1x-h100-sxm5-80gb", image="Windows"))
        assert info.value.field == "image" and world.request_count(method="POST") == before
        created = cloud.create_instance(
            InstanceSpec(name="os-check", instance_type="1x-h100-sxm5-80gb", image="Ubuntu 24.04 LTS")
        ).instance
        try:
            assert created.image == "Ubuntu 24.04 LTS"
            assert created.instance_type == offers[0].instance_type
        finally:
            cloud.delete_instance(created.id)
            cloud.wait_for_instance_gone(created.id, timeout=60, interval=0.2)


ONE_OFF_CALLS = {
    "snapshot": lambda cloud: cloud.snapshot_instance("any"),
    "reset_root_password": lambda cloud: cloud.reset_root_password("any"),
    "add_ssh_key": lambda cloud: cloud.add_instance_ssh_key("any", "ssh-ed25519 AAAA"),
}
UNSUPPORTED_ONE_OFFS = [
    (provider, action)
    for action, (capability, _) in ONE_OFF_ACTIONS.items()
    for provider in providers_without(capability)
]


@pytest.mark.parametrize(("provider", "action"), UNSUPPORTED_ONE_OFFS)
def test_one_off_operations_are_refused_where_missing_before_any_request(
    overrides: dict, emulator: object, provider: str, action: OneOff
) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    capability, generic_hint = ONE_OFF_ACTIONS[action]
    before = world.request_count()
    with connect(overrides, provider) as cloud:
        # The provider's own hint (which knows a better way) wins over the generic one.
        hint = cloud.unsupported_hints.get(capability, generic_hint)
        with pytest.raises(gpucloud.Unsupported, match=re.escape(hint)) as info:
            ONE_OFF_CALLS[action](cloud)
    assert info.value.capability == capability.value
    assert world.request_count() == before

from pathlib import Path

import pytest

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, Status, sshexec
from gpucloud.reconcile import Action, plan_instance
from gpucloud.waiters import ssh_banner

from ..conftest import connect
from .specs import INSTANCE


def test_instance_lifecycle_with_real_ssh(cloud: gpucloud.Provider, keypair: tuple[Path, str]) -> None:
    private, public = keypair
    key = cloud.create_ssh_key(SshKeySpec(name=f"inst-key-{cloud.name}", public_key=public))
    spec = InstanceSpec(name=f"life-{cloud.name}", ssh_keys=(key.name,), **INSTANCE[cloud.name])
    created = cloud.create_instance(spec).instance
    try:
        assert created.name == spec.name and created.provider == cloud.name
        running = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=60, interval=0.2)
        assert running.public_ip and running.ssh_port and running.gpu_count >= 1 and running.gpu_model
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
        cloud.delete_ssh_key(key.id)
    assert cloud.find_instance(spec.name) is None
    cloud.delete_instance(created.id)  # already gone counts as deleted


def test_unknown_instance_type_is_a_validation_error(cloud: gpucloud.Provider) -> None:
    spec = InstanceSpec(name=f"bad-type-{cloud.name}", **{**INSTANCE[cloud.name], "instance_type": "9Z999.1V"})
    with pytest.raises(gpucloud.ValidationError) as info:
        cloud.create_instance(spec)
    assert "9Z999.1V" in str(info.value) or info.value.field == "instance_type"
    assert cloud.find_instance(spec.name) is None


def test_unsupported_options_fail_before_any_request(cloud: gpucloud.Provider, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    unsupported = [c for c in (gpucloud.Capability.INSTANCE_TAGS, gpucloud.Capability.INSTANCE_LOCATION_CHOICE)
                   if not cloud.supports(c)]  # fmt: skip
    assert unsupported, "each implemented provider lacks one of these; the capability table says which"
    option = {"tags": {"a": "b"}} if unsupported[0] is gpucloud.Capability.INSTANCE_TAGS else {"location": "x"}
    before = world.request_count()
    with pytest.raises(gpucloud.Unsupported, match=cloud.name) as info:
        cloud.create_instance(InstanceSpec(name="never", **{**INSTANCE[cloud.name], **option}))
    assert info.value.capability == unsupported[0].value
    assert world.request_count() == before


def test_reboot_is_unsupported_for_both_and_says_what_to_do(cloud: gpucloud.Provider) -> None:
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

import pytest

import gpucloud
from gpucloud import SshKeySpec
from gpucloud.capabilities import Capability
from gpucloud.reconcile import Action, plan_ssh_key

from ..conftest import connect, providers_with, providers_without

WITH_KEYS = providers_with(Capability.SSH_KEYS)


@pytest.mark.parametrize("cloud", WITH_KEYS, indirect=True)
def test_ssh_key_lifecycle(cloud: gpucloud.Provider, keypair: tuple[object, str]) -> None:
    _, public = keypair
    spec = SshKeySpec(name=f"lifecycle-{cloud.name}", public_key=public)
    key = cloud.create_ssh_key(spec)
    try:
        assert key.name == spec.name
        if cloud.reports_public_keys:
            assert key.public_key.split()[:2] == public.split()[:2]
        else:
            assert key.public_key == ""  # the API never returns key material; nothing invented
        assert key.id in {k.id for k in cloud.list_ssh_keys()}
        assert cloud.get_ssh_key(key.id) == key
        assert cloud.find_ssh_key(spec.name) == key
        assert plan_ssh_key(spec, key).action is Action.NONE
    finally:
        cloud.delete_ssh_key(key.id)
    with pytest.raises(gpucloud.NotFound):
        cloud.get_ssh_key(key.id)
    assert cloud.find_ssh_key(spec.name) is None
    cloud.delete_ssh_key(key.id)  # already gone counts as deleted


def test_duplicate_names_are_an_error_naming_the_ids(overrides: dict, keypair: tuple[object, str]) -> None:
    """DataCrunch allows two keys with one name; we refuse to pick one."""
    _, public = keypair
    name = "twin"
    cloud = connect(overrides, "datacrunch")
    first = cloud.create_ssh_key(SshKeySpec(name=name, public_key=public))
    # a second key with the same name, made behind the adapter's back (as another tool could)
    second = cloud._create_ssh_key(SshKeySpec(name=name, public_key=public))
    try:
        with pytest.raises(gpucloud.Conflict, match="2 ssh keys named") as info:
            cloud.find_ssh_key(name)
        assert first.id in str(info.value) and second.id in str(info.value)
    finally:
        cloud.delete_ssh_key(first.id)
        cloud.delete_ssh_key(second.id)


@pytest.mark.parametrize("cloud", WITH_KEYS, indirect=True)
def test_malformed_public_key_is_refused_before_any_request(cloud: gpucloud.Provider, emulator: object) -> None:
    before = emulator.world.request_count()  # type: ignore[attr-defined]
    with pytest.raises(gpucloud.ValidationError, match="public_key is not an OpenSSH public key") as info:
        cloud.create_ssh_key(SshKeySpec(name="broken key", public_key="ssh-rsa"))
    assert info.value.field == "public_key"
    assert emulator.world.request_count() == before  # type: ignore[attr-defined]


def test_voltagepark_refuses_a_second_key_with_the_same_name(overrides: dict, keypair: tuple[object, str]) -> None:
    cloud = connect(overrides, "voltagepark")
    first = cloud.create_ssh_key(SshKeySpec(name="unique name", public_key=keypair[1]))
    try:
        with pytest.raises(gpucloud.GpuCloudError, match="already exists") as info:
            cloud._create_ssh_key(SshKeySpec(name="unique name", public_key=keypair[1]))
        assert info.value.status_code == 400
        assert [k.id for k in cloud.list_ssh_keys() if k.name == "unique name"] == [first.id]
    finally:
        cloud.delete_ssh_key(first.id)


@pytest.mark.parametrize("cloud", providers_without(Capability.SSH_KEYS), indirect=True)
def test_account_keys_are_unsupported_where_the_api_has_none(
    cloud: gpucloud.Provider, emulator: object, keypair: tuple[object, str]
) -> None:
    before = emulator.world.request_count()  # type: ignore[attr-defined]
    with pytest.raises(gpucloud.Unsupported, match="pass public keys on the instance") as info:
        cloud.create_ssh_key(SshKeySpec(name="anything", public_key=keypair[1]))
    assert info.value.provider == cloud.name
    assert emulator.world.request_count() == before  # type: ignore[attr-defined]

import pytest

from gpucloud import errors
from gpucloud.capabilities import Capability as C
from gpucloud.models import Instance, InstanceSpec, SshKey, SshKeySpec, Status, Volume, VolumeSpec
from gpucloud.reconcile import Action, plan_instance, plan_ssh_key, plan_volume

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
ALL_INSTANCE_CAPS = frozenset({C.INSTANCES, C.INSTANCE_RENAME, C.INSTANCE_TAGS, C.INSTANCE_TAG_UPDATE})


def instance(**overrides: object) -> Instance:
    fields: dict[str, object] = {
        "id": "i-1", "provider": "p", "name": "web", "status": Status.RUNNING, "raw_status": "running",
        "instance_type": "1V100.6V", "location": "FIN-01", "image": "ubuntu", "ssh_key_ids": ("k1",),
        "tags": {"team": "ml"},
    }  # fmt: skip
    fields.update(overrides)
    return Instance(**fields)  # type: ignore[arg-type]


def spec(**overrides: object) -> InstanceSpec:
    fields: dict[str, object] = {
        "name": "web", "instance_type": "1V100.6V", "location": "FIN-01", "image": "ubuntu", "tags": {"team": "ml"},
    }  # fmt: skip
    fields.update(overrides)
    return InstanceSpec(**fields)  # type: ignore[arg-type]


def test_missing_instance_means_create() -> None:
    assert plan_instance(spec(), None, ALL_INSTANCE_CAPS).action is Action.CREATE


def test_identical_instance_means_no_change() -> None:
    plan = plan_instance(spec(), instance(), ALL_INSTANCE_CAPS, desired_ssh_key_ids=["k1"])
    assert plan.action is Action.NONE and not plan.changed


@pytest.mark.parametrize(
    ("field", "value"), [("instance_type", "8H100.80S.176V"), ("location", "ICE-01"), ("image", "debian")]
)
def test_immutable_fields_force_replace(field: str, value: str) -> None:
    plan = plan_instance(spec(**{field: value}), instance(), ALL_INSTANCE_CAPS)
    assert plan.action is Action.REPLACE
    assert plan.replace_fields == [field]
    assert plan.desired(field) == value


def test_unspecified_fields_are_not_compared() -> None:
    plan = plan_instance(spec(location=None, image=None), instance(), ALL_INSTANCE_CAPS)
    assert plan.action is Action.NONE


def test_fields_the_provider_does_not_report_are_not_compared() -> None:
    plan = plan_instance(spec(), instance(location=None, image=None), ALL_INSTANCE_CAPS)
    assert plan.action is Action.NONE


def test_tags_and_rename_update_in_place_when_supported() -> None:
    plan = plan_instance(spec(name="web2", tags={"team": "infra"}), instance(), ALL_INSTANCE_CAPS)
    assert plan.action is Action.UPDATE
    assert sorted(plan.update_fields) == ["name", "tags"]


def test_rename_without_capability_replaces_and_tags_are_ignored() -> None:
    plan = plan_instance(spec(name="web2", tags={}), instance(tags={}), frozenset({C.INSTANCES}))
    assert plan.action is Action.REPLACE and plan.replace_fields == ["name"]


def test_ssh_key_set_change_replaces() -> None:
    plan = plan_instance(spec(), instance(), ALL_INSTANCE_CAPS, desired_ssh_key_ids=["k1", "k2"])
    assert plan.replace_fields == ["ssh_keys"]
    same_in_other_order = plan_instance(
        spec(), instance(ssh_key_ids=("k2", "k1")), ALL_INSTANCE_CAPS, desired_ssh_key_ids=["k1", "k2"]
    )
    assert same_in_other_order.action is Action.NONE


def test_canonical_instance_type_is_what_is_compared() -> None:
    plan = plan_instance(
        spec(instance_type="preset-uuid"), instance(), ALL_INSTANCE_CAPS, desired_instance_type="1V100.6V"
    )
    assert plan.action is Action.NONE


def volume(**overrides: object) -> Volume:
    fields: dict[str, object] = {
        "id": "v1",
        "provider": "p",
        "name": "data",
        "size_gb": 100,
        "status": "detached",
        "volume_type": "NVMe",
        "location": "FIN-01",
    }
    fields.update(overrides)
    return Volume(**fields)  # type: ignore[arg-type]


VOLUME_CAPS = frozenset({C.VOLUMES, C.VOLUME_RESIZE, C.VOLUME_RENAME, C.VOLUME_ATTACH})


def test_volume_grow_and_rename_update_in_place() -> None:
    plan = plan_volume(VolumeSpec(name="data2", size_gb=200), volume(), VOLUME_CAPS)
    assert plan.action is Action.UPDATE and sorted(plan.update_fields) == ["name", "size_gb"]


def test_volume_shrink_is_refused_naming_the_field() -> None:
    with pytest.raises(errors.ValidationError, match="size_gb cannot shrink") as info:
        plan_volume(VolumeSpec(name="data", size_gb=50), volume(), VOLUME_CAPS)
    assert info.value.field == "size_gb"


def test_volume_type_change_replaces_and_attach_is_an_update() -> None:
    assert plan_volume(
        VolumeSpec(name="data", size_gb=100, volume_type="HDD"), volume(), VOLUME_CAPS
    ).replace_fields == ["volume_type"]
    plan = plan_volume(
        VolumeSpec(name="data", size_gb=100, attach_to="web"), volume(), VOLUME_CAPS, desired_attach_id="i-1"
    )
    assert plan.action is Action.UPDATE and plan.updates[0].desired == ["i-1"]
    unchanged = plan_volume(VolumeSpec(name="data", size_gb=100), volume(attached_to=("i-1",)), VOLUME_CAPS)
    assert unchanged.action is Action.NONE


def test_ssh_key_comment_does_not_matter_but_content_does() -> None:
    current = SshKey(id="k", provider="p", name="me", public_key=KEY + " laptop")
    assert plan_ssh_key(SshKeySpec(name="me", public_key=KEY + " other-comment"), current).action is Action.NONE
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake"
    assert plan_ssh_key(SshKeySpec(name="me", public_key=other), current).replace_fields == ["public_key"]


def test_tags_set_only_at_create_force_a_replace() -> None:
    caps = frozenset({C.INSTANCES, C.INSTANCE_TAGS})
    plan = plan_instance(spec(tags={"team": "infra"}), instance(), caps)
    assert plan.action is Action.REPLACE and plan.replace_fields == ["tags"]


def test_key_content_is_not_compared_when_the_api_returns_none() -> None:
    current = SshKey(id="k", provider="p", name="me", public_key="")
    assert plan_ssh_key(SshKeySpec(name="me", public_key=KEY), current).action is Action.NONE

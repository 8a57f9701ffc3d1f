import pytest

import gpucloud
from gpucloud import VolumeSpec
from gpucloud.capabilities import Capability
from gpucloud.reconcile import Action, plan_volume

from ..conftest import providers_with, providers_without
from .specs import UNKNOWN_ID, VOLUME


@pytest.mark.parametrize(
    "cloud", providers_with(Capability.VOLUME_CREATE, Capability.VOLUME_RESIZE, Capability.VOLUME_RENAME), indirect=True
)
def test_volume_lifecycle(cloud: gpucloud.Provider) -> None:
    spec = VolumeSpec(name=f"vol-{cloud.name}", size_gb=100, **VOLUME[cloud.name])
    volume = cloud.create_volume(spec)
    try:
        assert (volume.name, volume.size_gb) == (spec.name, 100)
        assert cloud.get_volume(volume.id).id == volume.id
        assert cloud.find_volume(spec.name) is not None
        assert plan_volume(spec, cloud.get_volume(volume.id), cloud.capabilities).action is Action.NONE

        grown = spec.model_copy(update={"size_gb": 150, "name": f"vol-{cloud.name}-renamed"})
        plan = plan_volume(grown, volume, cloud.capabilities)
        assert plan.action is Action.UPDATE and sorted(plan.update_fields) == ["name", "size_gb"]
        cloud.resize_volume(volume.id, 150)
        cloud.rename_volume(volume.id, grown.name)
        after = cloud.get_volume(volume.id)
        assert (after.name, after.size_gb) == (grown.name, 150)
        assert plan_volume(grown, after, cloud.capabilities).action is Action.NONE
    finally:
        cloud.delete_volume(volume.id)
    assert all(v.id != volume.id for v in cloud.list_volumes())
    cloud.delete_volume(volume.id)  # already gone counts as deleted


@pytest.mark.parametrize("cloud", providers_with(Capability.VOLUMES), indirect=True)
def test_unknown_volume_is_not_found(cloud: gpucloud.Provider) -> None:
    with pytest.raises(gpucloud.NotFound) as info:
        cloud.get_volume(UNKNOWN_ID[cloud.name]["volume"])
    assert info.value.status_code == 404 and info.value.provider == cloud.name


@pytest.mark.parametrize("cloud", providers_without(Capability.VOLUME_CREATE), indirect=True)
def test_volume_create_is_unsupported_where_the_api_has_none(cloud: gpucloud.Provider, emulator: object) -> None:
    before = emulator.world.request_count()  # type: ignore[attr-defined]
    with pytest.raises(gpucloud.Unsupported) as info:
        cloud.create_volume(VolumeSpec(name="anything", size_gb=10))
    assert info.value.provider == cloud.name and "volume" in info.value.capability
    assert emulator.world.request_count() == before  # type: ignore[attr-defined]

import pytest

import gpucloud
from gpucloud.capabilities import Capability

from ..conftest import providers_with, providers_without
from .specs import INSTANCE


@pytest.mark.parametrize("cloud", providers_with(Capability.OFFERS), indirect=True)
def test_offers_have_prices_and_availability(cloud: gpucloud.Provider) -> None:
    offers = cloud.list_offers()
    assert len(offers) >= 2
    gpu_offers = [o for o in offers if o.gpu_count > 0]
    assert bool(gpu_offers) == cloud.sells_gpus, "a GPU cloud lists GPU shapes; a VPS/container one lists none"
    assert all(o.gpu_model for o in gpu_offers)
    assert all(o.price_per_hour is not None and o.price_per_hour > 0 for o in offers)
    assert any(o.available for o in offers)
    assert len({o.instance_type for o in offers}) == len(offers)


@pytest.mark.parametrize("cloud", providers_with(Capability.OFFERS), indirect=True)
def test_offer_types_are_what_instances_report(cloud: gpucloud.Provider) -> None:
    """An offer's instance_type is accepted at create and read back unchanged (checked in the lifecycle test)."""
    types = {o.instance_type for o in cloud.list_offers()}
    assert cloud.canonical_instance_type(INSTANCE[cloud.name]["instance_type"]) in types


@pytest.mark.parametrize("cloud", providers_with(Capability.IMAGES, Capability.LOCATIONS), indirect=True)
def test_images_and_locations(cloud: gpucloud.Provider) -> None:
    images = cloud.list_images()
    locations = cloud.list_locations()
    assert images and all(i.id and i.provider == cloud.name for i in images)
    assert locations and all(loc.id and loc.name for loc in locations)


CATALOGUE_GAPS = [
    (provider, capability)
    for capability in (Capability.OFFERS, Capability.IMAGES, Capability.LOCATIONS)
    for provider in providers_without(capability)
]


@pytest.mark.parametrize(("provider", "capability"), CATALOGUE_GAPS)
def test_missing_catalogues_are_unsupported_without_a_request(
    overrides: dict, emulator: object, provider: str, capability: Capability
) -> None:
    from ..conftest import connect

    world = emulator.world  # type: ignore[attr-defined]
    before = world.request_count()
    calls = {
        Capability.OFFERS: lambda c: c.list_offers(),
        Capability.IMAGES: lambda c: c.list_images(),
        Capability.LOCATIONS: lambda c: c.list_locations(),
    }
    with connect(overrides, provider) as cloud, pytest.raises(gpucloud.Unsupported) as info:
        calls[capability](cloud)
    assert (info.value.provider, info.value.capability) == (provider, capability.value)
    assert world.request_count() == before

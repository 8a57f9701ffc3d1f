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


WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _writes(world: object, provider: str, since: int) -> list[str]:
    requests = world.requests[since:]  # type: ignore[attr-defined]
    return [
        f"{r.method} {r.path}"
        for r in requests
        if r.provider == provider and r.method in WRITES and "token" not in r.path
    ]


@pytest.mark.parametrize(
    ("provider", "field", "listing"),
    [
        ("datacrunch", "image", "gpucloud images --provider datacrunch"),
        ("datacrunch", "location", "gpucloud locations --provider datacrunch"),
        ("datacrunch", "instance_type", "gpucloud offers --all --provider datacrunch"),
        ("dcdncloud", "image", "gpucloud.cloud.image_info"),
        ("voltagepark", "instance_type", "gpucloud.cloud.offer_info"),
    ],
)
def test_unknown_names_list_valid_values_and_where_to_see_all(
    overrides: dict, emulator: object, provider: str, field: str, listing: str
) -> None:
    """A playbook cannot call Python: the hint names a command and a module, next to the first valid values."""
    from gpucloud import ensure
    from gpucloud.models import InstanceSpec

    from ..conftest import connect

    world = emulator.world  # type: ignore[attr-defined]
    spec = InstanceSpec(name="hint-probe", **{**INSTANCE[provider], field: "no-such-value"})
    since = len(world.requests)
    with connect(overrides, provider) as cloud, pytest.raises(gpucloud.ValidationError) as info:
        ensure.ensure_instance(cloud, spec, wait=False)
    assert info.value.field == field and listing in str(info.value) and "choose one of" in str(info.value)
    assert _writes(world, provider, since) == []


def test_computestacks_refuses_a_package_too_small_for_the_image_before_ordering(
    overrides: dict, emulator: object
) -> None:
    from gpucloud import ensure
    from gpucloud.models import InstanceSpec

    from ..conftest import connect

    world = emulator.world  # type: ignore[attr-defined]
    spec = InstanceSpec(name="too-small", instance_type="micro", image="MariaDB", location="1")
    since = len(world.requests)
    with connect(overrides, "computestacks") as cloud:
        images = {i.id: i for i in cloud.list_images()}
        assert (images["MariaDB"].min_vcpus, images["MariaDB"].min_memory_gb) == (1.0, 0.75)
        with pytest.raises(gpucloud.ValidationError) as info:
            ensure.ensure_instance(cloud, spec, wait=False)
    assert info.value.field == "instance_type"
    assert "too small for image 'MariaDB'" in str(
        info.value
    ) and "products that fit: large, medium, small, xlarge" in str(info.value)
    assert _writes(world, "computestacks", since) == []


def test_cloudnexus_lists_documented_examples_but_accepts_other_regions(overrides: dict, emulator: object) -> None:
    """Its docs show two regions of "50+": the list helps, it never refuses (the API decides)."""
    from gpucloud import ensure
    from gpucloud.models import InstanceSpec

    from ..conftest import connect

    with connect(overrides, "cloudnexus") as cloud:
        assert [loc.id for loc in cloud.list_locations()] == ["us-east-1", "eu-west-2"]
        assert [i.id for i in cloud.list_images()] == ["ubuntu-22.04-lts"]
        spec = InstanceSpec(name="cn-elsewhere", **{**INSTANCE["cloudnexus"], "location": "ap-southeast-1"})
        made = ensure.ensure_instance(cloud, spec, wait=False)
        try:
            assert made.changed and made.after is not None and made.after.location == "ap-southeast-1"
        finally:
            ensure.ensure_instance_absent(cloud, name="cn-elsewhere", wait=True)

import gpucloud


def test_offers_have_prices_and_availability(cloud: gpucloud.Provider) -> None:
    offers = cloud.list_offers()
    assert len(offers) >= 2
    gpu_offers = [o for o in offers if o.gpu_count > 0]
    assert gpu_offers and all(o.gpu_model for o in gpu_offers)
    assert all(o.price_per_hour is not None and o.price_per_hour > 0 for o in gpu_offers)
    assert any(o.available for o in offers)
    assert len({o.instance_type for o in offers}) == len(offers)


def test_offer_types_are_what_instances_report(cloud: gpucloud.Provider) -> None:
    """An offer's instance_type is accepted at create and read back unchanged (checked in the lifecycle test)."""
    types = {o.instance_type for o in cloud.list_offers()}
    from .specs import INSTANCE

    assert cloud.canonical_instance_type(INSTANCE[cloud.name]["instance_type"]) in types


def test_images_and_locations(cloud: gpucloud.Provider) -> None:
    images = cloud.list_images()
    locations = cloud.list_locations()
    assert images and all(i.id and i.provider == cloud.name for i in images)
    assert locations and all(loc.id and loc.name for loc in locations)

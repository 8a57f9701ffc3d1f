"""Lookups for Pulumi programs: offers (shapes with prices and availability), images, locations and existing
instances.

They run in the program process while it is being evaluated, with the same credentials as the resources
(``gpucloud:<provider>_<setting>`` stack config > ``GPUCLOUD_*`` env > the gpucloud config file).
"""

from __future__ import annotations

from typing import Any

import pulumi

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.config import ProviderConfig, env_var
from gpucloud.models import Image, Instance, Location, Offer
from gpucloud.providers import mentions
from pulumi_gpucloud._provider import CONFIG_NAMESPACE


def _settings(provider: str) -> dict[str, Any]:
    config = pulumi.Config(CONFIG_NAMESPACE)
    settings: dict[str, Any] = {}
    for field in ProviderConfig.model_fields:
        if field == "provider":
            continue
        suffix = env_var(provider, field).removeprefix(f"GPUCLOUD_{provider.upper()}_").lower()
        value = config.get(f"{provider}_{suffix}")
        if value:
            settings[field] = value
    return settings


def _provider(provider: str | None) -> str:
    chosen = provider or pulumi.Config(CONFIG_NAMESPACE).get("provider")
    if not chosen:
        raise ValueError("pass provider= or set the stack config gpucloud:provider")
    return chosen


def get_offers(
    provider: str | None = None,
    *,
    gpu_model: str | None = None,
    min_gpus: int = 1,
    max_price_per_hour: float | None = None,
    location: str | None = None,
    available_only: bool = True,
) -> list[Offer]:
    """Offers on ``provider``, cheapest first, filtered like ``gpucloud offers``."""
    name = _provider(provider)
    with gpucloud.connect(name, **_settings(name)) as cloud:
        cloud.require(Capability.OFFERS)
        offers = cloud.list_offers()

    def keep(offer: Offer) -> bool:
        if gpu_model and (offer.gpu_model or "").lower().find(gpu_model.lower()) < 0:
            return False
        if offer.gpu_count < min_gpus:
            return False
        if max_price_per_hour is not None and (
            offer.price_per_hour is None or offer.price_per_hour > max_price_per_hour
        ):
            return False
        places = [loc for loc in offer.locations if location is None or location in (loc.location, loc.name)]
        if location is not None and not places:
            return False
        return not available_only or any(loc.available for loc in places)

    chosen = [o for o in offers if keep(o)]
    return sorted(chosen, key=lambda o: (o.price_per_hour is None, o.price_per_hour or 0.0, o.instance_type))


def get_images(provider: str | None = None, *, name: str | None = None) -> list[Image]:
    """Images ``provider`` boots (an instance's ``image`` is one's ``id``), optionally those whose id or name
    contains ``name``; sorted by id. Where ``gpucloud.providers.catalogue_entry`` says ``complete`` is False
    (CloudNexus) these are the examples its docs show."""
    chosen = _provider(provider)
    with gpucloud.connect(chosen, **_settings(chosen)) as cloud:
        found = cloud.list_images()
    return sorted((i for i in found if mentions(name, i.id, i.name)), key=lambda i: i.id)


def get_locations(provider: str | None = None, *, name: str | None = None) -> list[Location]:
    """Locations of ``provider`` (an instance's or volume's ``location`` is one's ``id``), sorted by id."""
    chosen = _provider(provider)
    with gpucloud.connect(chosen, **_settings(chosen)) as cloud:
        found = cloud.list_locations()
    return sorted((loc for loc in found if mentions(name, loc.id, loc.name)), key=lambda loc: loc.id)


def get_instance(provider: str | None = None, *, name: str | None = None, instance_id: str | None = None) -> Instance:
    """An existing instance by name or id (e.g. to wire up one this stack does not manage)."""
    chosen = _provider(provider)
    with gpucloud.connect(chosen, **_settings(chosen)) as cloud:
        if instance_id:
            return cloud.get_instance(instance_id)
        if not name:
            raise gpucloud.ValidationError("name or instance_id is required", field="name")
        found = cloud.find_instance(name)
    if found is None:
        raise gpucloud.NotFound(f"no {chosen} instance named {name!r}", provider=chosen)
    return found

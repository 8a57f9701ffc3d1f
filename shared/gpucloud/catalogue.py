"""Catalogue checks before a create: instance type, image and location exist (reads only, never a write).

Checked with catalogue reads only (GETs), before anything is created: a name the catalogue does not know
fails here naming the field, instead of in a create request the API rejects. Comparisons are lenient
(ids and names, case-insensitive where a provider matches that way) so a valid name is never refused; a
provider without a catalogue listing leaves the check to its API. Unlike :mod:`gpucloud.validation` (no
connection), these need one: they take the adapter.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpucloud import errors
from gpucloud.capabilities import Capability
from gpucloud.models import InstanceSpec, VolumeSpec
from gpucloud.providers.base import Provider
from gpucloud.validation import choose_from


def _known(value: str, names: Iterable[str | None]) -> bool:
    wanted = value.casefold()
    return any(name is not None and name.casefold() == wanted for name in names)


def _checkable(cloud: Provider, capability: Capability) -> bool:
    return cloud.supports(capability) and capability not in cloud.example_catalogues


def validate_instance_catalogue(cloud: Provider, spec: InstanceSpec) -> None:
    """instance_type, image and location exist in ``cloud``'s catalogue; raises naming the field."""
    if _checkable(cloud, Capability.OFFERS):
        types = [offer.instance_type for offer in cloud.list_offers()]
        # canonical_instance_type maps a provider's alternative spelling (e.g. a preset id) onto an offer name,
        # or raises naming instance_type itself.
        if spec.instance_type not in types and cloud.canonical_instance_type(spec.instance_type) not in types:
            raise errors.ValidationError(
                f"instance_type {spec.instance_type!r} is not in the {cloud.name} catalogue; "
                f"{choose_from(cloud.name, 'instance_type', types)}",
                field="instance_type",
                provider=cloud.name,
            )
    if spec.location and _checkable(cloud, Capability.LOCATIONS):
        validate_location(cloud, spec.location)
    if spec.image and _checkable(cloud, Capability.IMAGES):
        images = cloud.list_images()
        if not _known(spec.image, [i.id for i in images] + [i.name for i in images]):
            # Some APIs also boot from an existing OS volume given by id in place of an image.
            if cloud.supports(Capability.VOLUMES) and any(v.id == spec.image for v in cloud.list_volumes()):
                return
            raise errors.ValidationError(
                f"image {spec.image!r} is not in the {cloud.name} catalogue; "
                f"{choose_from(cloud.name, 'image', (i.id for i in images))}",
                field="image",
                provider=cloud.name,
            )


def validate_volume_catalogue(cloud: Provider, spec: VolumeSpec) -> None:
    if spec.location and _checkable(cloud, Capability.LOCATIONS):
        validate_location(cloud, spec.location)


def validate_location(cloud: Provider, location: str) -> None:
    locations = cloud.list_locations()
    if not _known(location, [loc.id for loc in locations] + [loc.name for loc in locations]):
        raise errors.ValidationError(
            f"location {location!r} is not a {cloud.name} location; "
            f"{choose_from(cloud.name, 'location', (loc.id for loc in locations))}",
            field="location",
            provider=cloud.name,
        )

"""Input checks that need no API call; each error names the field and says how to fix it."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gpucloud import errors
from gpucloud.capabilities import Capability

if TYPE_CHECKING:  # base.py imports this module: the types only, to avoid a cycle
    from gpucloud.models import InstanceSpec, VolumeSpec
    from gpucloud.providers.base import Provider

_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


def public_key_identity(text: str) -> str:
    """``type base64`` without the comment: two keys that differ only in comment are the same key."""
    return " ".join(text.split()[:2])


def looks_like_public_key(text: str) -> bool:
    return text.split(" ", 1)[0] in _KEY_TYPES


def validate_public_key(text: str, field: str = "public_key") -> str:
    """Return the key stripped of surrounding whitespace, or raise naming ``field``."""
    parts = text.strip().split()
    hint = "paste one line of an OpenSSH .pub file, e.g. 'ssh-ed25519 AAAAC3... you@host'"
    if "PRIVATE KEY" in text:  # first: a pasted private key must be named as such (and so never echoed back)
        raise errors.ValidationError(f"{field} looks like a private key; never pass private keys", field=field)
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise errors.ValidationError(f"{field} is not an OpenSSH public key; {hint}", field=field)
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise errors.ValidationError(f"{field} has a corrupt base64 body; {hint}", field=field) from None
    if embedded != parts[0]:
        raise errors.ValidationError(f"{field} says {parts[0]} but its body is a {embedded} key; {hint}", field=field)
    return text.strip()


# Display names (Voltage Park's "My Instant Virtual Machine", ComputeStacks labels): printable ASCII, no space at
# either end. Their APIs document nothing wider, and the inventory makes names host names unchanged.
DISPLAY_NAME_PATTERN = r"[!-~]([ -~]*[!-~])?"
DISPLAY_NAME_RULE = (
    "printable ASCII letters, digits, spaces and punctuation, not starting or ending with a space "
    "(no line breaks, control characters or emoji)"
)


def validate_name(value: str, field: str, *, pattern: str, rule: str, min_len: int, max_len: int) -> str:
    if not (min_len <= len(value) <= max_len) or not re.fullmatch(pattern, value):
        raise errors.ValidationError(
            f"{field} {value!r} is invalid: {rule} ({min_len}-{max_len} characters)", field=field
        )
    return value


# --- catalogue names ----------------------------------------------------------------------------------
# Checked with catalogue reads only (GETs), before anything is created: a name the catalogue does not know
# fails here naming the field, instead of in a create request the API rejects. Comparisons are lenient
# (ids and names, case-insensitive where a provider matches that way) so a valid name is never refused; a
# provider without a catalogue listing leaves the check to its API.
def _known(value: str, names: Iterable[str | None]) -> bool:
    wanted = value.casefold()
    return any(name is not None and name.casefold() == wanted for name in names)


# Where a user (at a shell or in a playbook) sees every valid value of a field: a CLI command and an info module.
_LISTINGS = {
    "instance_type": ("offers --all", "offer_info"),
    "image": ("images", "image_info"),
    "location": ("locations", "location_info"),
}


def choose_from(provider: str, field: str, names: Iterable[str]) -> str:
    """ "choose one of: <the first dozen valid values>; all of them: <command> or <module>", for error messages."""
    listed = sorted(set(names))
    shown = ", ".join(listed[:12])
    more = f" (and {len(listed) - 12} more)" if len(listed) > 12 else ""
    command, module = _LISTINGS[field]
    where = f"`gpucloud {command} --provider {provider}` or the gpucloud.cloud.{module} module"
    return f"choose one of: {shown}{more}; all of them: {where}"


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

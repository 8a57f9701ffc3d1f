"""Provider adapters, looked up by id. Each module holds one provider's wire format and quirks."""

from __future__ import annotations

import importlib
from typing import Any

from gpucloud import presentation
from gpucloud.capabilities import EVIDENCE_LEGEND, Capability, Evidence
from gpucloud.models import Image, InstanceSpec, Location, SshKeySpec, VolumeSpec
from gpucloud.providers.base import Provider
from gpucloud.registry import REGISTRY

_MODULES = {entry.name: entry.adapter_module for entry in REGISTRY}


def implemented() -> tuple[str, ...]:
    return tuple(_MODULES)


def provider_class(name: str) -> type[Provider]:
    from gpucloud import errors

    if name not in _MODULES:
        raise errors.Unsupported(name, "this gpucloud release", hint=f"implemented: {', '.join(_MODULES)}")
    # Imported lazily so an Ansible module that talks to one provider pays for one adapter only.
    module = importlib.import_module(_MODULES[name])
    cls: type[Provider] = module.PROVIDER
    return cls


# Spec validation by provider name, with no connection (no API URL or credentials needed): the rules an
# adapter checks before any request, for front-ends that check ahead (Pulumi's Check).
def validate_instance_spec(provider: str, spec: InstanceSpec, *, keep_os_volume: bool = False) -> None:
    cls = provider_class(provider)
    cls.validate_instance_spec(spec)
    cls.validate_delete_options(keep_os_volume=keep_os_volume)


def validate_volume_spec(provider: str, spec: VolumeSpec) -> None:
    provider_class(provider).validate_volume_spec(spec)


def validate_ssh_key_spec(provider: str, spec: SshKeySpec) -> None:
    provider_class(provider).validate_ssh_key_spec(spec)


# The capability table: one row per provider, these columns, each cell no or an evidence word (yes / source /
# inferred, explained by EVIDENCE_LEGEND).
TABLE_COLUMNS: tuple[tuple[str, Capability], ...] = (
    ("instance create", Capability.INSTANCES),
    ("list", Capability.INSTANCES),
    ("start/stop", Capability.INSTANCE_START_STOP),
    ("reboot", Capability.INSTANCE_REBOOT),
    ("resize", Capability.INSTANCE_RESIZE),
    ("delete", Capability.INSTANCES),
    ("volume create", Capability.VOLUME_CREATE),
    ("volume attach", Capability.VOLUME_ATTACH),
    ("volume resize", Capability.VOLUME_RESIZE),
    ("volume delete", Capability.VOLUME_DELETE),
    ("ssh key create/delete", Capability.SSH_KEYS),
    ("offers/prices", Capability.OFFERS),
    ("images", Capability.IMAGES),
    ("locations", Capability.LOCATIONS),
    ("tag update", Capability.INSTANCE_TAG_UPDATE),
    ("snapshot", Capability.INSTANCE_SNAPSHOT),
    ("password reset", Capability.INSTANCE_PASSWORD_RESET),
    ("add key to instance", Capability.INSTANCE_KEY_ADD),
)
# What an instance spec may ask for, per provider.
OPTION_COLUMNS: tuple[tuple[str, Capability], ...] = (
    ("choose location", Capability.INSTANCE_LOCATION_CHOICE),
    ("tags at create", Capability.INSTANCE_TAGS),
    ("startup script", Capability.INSTANCE_STARTUP_SCRIPT),
    ("root password", Capability.INSTANCE_PASSWORD),
    ("volumes at create", Capability.INSTANCE_VOLUMES_AT_CREATE),
    ("SSH keys by content", Capability.SSH_KEYS_BY_CONTENT),
    ("rename", Capability.INSTANCE_RENAME),
    ("volume rename", Capability.VOLUME_RENAME),
    ("volume types", Capability.VOLUME_TYPES),
    ("bare metal", Capability.INSTANCE_BARE_METAL),
    ("stop, storage-only billing", Capability.INSTANCE_STOP_RELEASED),
    ("spot", Capability.INSTANCE_SPOT),
    ("OS disk size", Capability.INSTANCE_OS_DISK_SIZE),
    ("stock check before create", Capability.INSTANCE_AVAILABILITY_CHECK),
    ("hibernate", Capability.INSTANCE_HIBERNATE),
)


def capability_cell(cls: type[Provider], capability: Capability, column: str | None = None) -> str:
    """``no``, or the word of the evidence the capability rests on (see ``EVIDENCE_LEGEND``)."""
    if capability not in cls.capabilities:
        return "no"
    if column is not None and column in cls.column_evidence:
        return cls.column_evidence[column].value
    return (Evidence.INFERRED if capability in cls.inferred else cls.evidence).value


def capability_table(options: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and rows, generated from what each adapter declares (README and `gpucloud providers`)."""
    columns = OPTION_COLUMNS if options else TABLE_COLUMNS
    extra = [] if options else ["SSH endpoint", "auth"]
    headers = ["provider", *(label for label, _ in columns), *extra]
    rows = []
    for name in implemented():
        cls = provider_class(name)
        cells = [capability_cell(cls, capability, label) for label, capability in columns]
        rows.append([cls.title, *cells, *([] if options else [cls.ssh_endpoint, cls.auth_kinds])])
    return headers, rows


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def capability_markdown() -> str:
    """The README's provider section body: both tables and their legend, as `gpucloud providers --markdown`
    prints them."""
    legend = "".join(f"- `{word}`: {meaning}\n" for word, meaning in EVIDENCE_LEGEND.items())
    return _markdown(*capability_table()) + "\n" + _markdown(*capability_table(options=True)) + "\n" + legend


def catalogue_entry(item: Image | Location) -> dict[str, Any]:
    """An image or location as the CLI and the info modules show it: ``complete`` is False where the provider
    has no listing and the items are the examples its documentation gives."""
    capability = Capability.IMAGES if isinstance(item, Image) else Capability.LOCATIONS
    data = presentation.public(item)
    data["complete"] = capability not in provider_class(item.provider).example_catalogues
    return data


def mentions(text: str | None, *values: str | None) -> bool:
    """The catalogue filters' test: ``text`` in any of ``values``, ignoring case; no text keeps everything."""
    return not text or any(text.casefold() in (value or "").casefold() for value in values)

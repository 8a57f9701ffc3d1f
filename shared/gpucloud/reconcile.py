"""Desired spec + current resource -> what to do. Pulumi's diff and Ansible's state=present both call this,
so the two front-ends never disagree about what "changed" means.

Only fields the provider reports are compared: a field the API never returns (e.g. a startup script) cannot
drift, and comparing it would report a change on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gpucloud import errors
from gpucloud.capabilities import Capability
from gpucloud.models import Instance, InstanceSpec, SshKey, SshKeySpec, Status, Volume, VolumeSpec
from gpucloud.validation import public_key_identity


class Action(StrEnum):
    CREATE = "create"
    NONE = "none"
    UPDATE = "update"
    REPLACE = "replace"


@dataclass(frozen=True)
class Change:
    field: str
    current: Any
    desired: Any


@dataclass(frozen=True)
class Plan:
    action: Action
    updates: tuple[Change, ...] = ()
    replacements: tuple[Change, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return self.action is not Action.NONE

    @property
    def replace_fields(self) -> list[str]:
        return [c.field for c in self.replacements]

    @property
    def update_fields(self) -> list[str]:
        return [c.field for c in self.updates]

    def desired(self, name: str) -> Any:
        return next(c.desired for c in (*self.updates, *self.replacements) if c.field == name)


def _decide(updates: list[Change], replacements: list[Change]) -> Plan:
    if replacements:
        return Plan(Action.REPLACE, tuple(updates), tuple(replacements))
    if updates:
        return Plan(Action.UPDATE, tuple(updates))
    return Plan(Action.NONE)


def instance_in_place(capabilities: frozenset[Capability]) -> frozenset[str]:
    """The spec fields :func:`plan_instance` changes in place with these capabilities; a change of any other field
    it compares replaces the instance. Pulumi's preview asks this for inputs it cannot know yet."""
    fields = {
        "instance_type": Capability.INSTANCE_RESIZE,
        "name": Capability.INSTANCE_RENAME,
        "tags": Capability.INSTANCE_TAG_UPDATE,  # some APIs take tags only at create: new tags, a new instance
        "volumes": Capability.VOLUME_ATTACH,  # attached in place (only attaches; see plan_instance)
    }
    return frozenset(name for name, needs in fields.items() if needs in capabilities)


def volume_in_place(capabilities: frozenset[Capability]) -> frozenset[str]:
    """The spec fields :func:`plan_volume` changes in place with these capabilities (``attach_to`` always: a new
    target detaches and attaches); a change of any other field it compares replaces the volume."""
    fields = {"size_gb": Capability.VOLUME_RESIZE, "name": Capability.VOLUME_RENAME}
    return frozenset({"attach_to", *(name for name, needs in fields.items() if needs in capabilities)})


def ssh_key_in_place(capabilities: frozenset[Capability]) -> frozenset[str]:
    """Nothing: no API edits a key, so :func:`plan_ssh_key` replaces it for any change."""
    return frozenset()


def require_volume_growth(current_gb: int, desired_gb: int, provider: str | None = None) -> None:
    """Volumes only grow: no API shrinks one, and a smaller one would lose data."""
    if desired_gb < current_gb:
        raise errors.ValidationError(
            f"size_gb cannot shrink from {current_gb} to {desired_gb}; volumes only grow",
            field="size_gb",
            provider=provider,
        )


def _differs(current: Any, desired: Any) -> bool:
    """A desired value of None means "not specified": nothing to compare."""
    return desired is not None and current is not None and current != desired


def plan_instance(
    desired: InstanceSpec,
    current: Instance | None,
    capabilities: frozenset[Capability],
    *,
    desired_instance_type: str | None = None,
    desired_ssh_key_ids: list[str] | None = None,
    volume_attachments: tuple[list[str], list[str]] | None = None,
    current_os_disk_gb: int | None = None,
    recreate_discontinued: bool = False,
) -> Plan:
    """``desired_instance_type``/``desired_ssh_key_ids`` are the spec's values as the provider spells them;
    ``volume_attachments`` is (the spec's volumes already attached, all of them) where volumes attach in place;
    ``current_os_disk_gb`` the OS disk's size where known. A discontinued spot instance is replaced only when
    ``recreate_discontinued`` says so (otherwise it is reported as it is)."""
    if current is None:
        return Plan(Action.CREATE)
    in_place = instance_in_place(capabilities)
    updates: list[Change] = []
    replacements: list[Change] = _create_only_changes(desired, current, current_os_disk_gb)
    if recreate_discontinued and current.status is Status.DISCONTINUED:
        replacements.append(Change("status", current.status.value, Status.RUNNING.value))
    immutable = {
        "kind": (current.kind, desired.kind),
        "location": (current.location, desired.location),
        "image": (current.image, desired.image),
    }
    for name, (have, want) in immutable.items():
        if _differs(have, want):
            replacements.append(Change(name, have, want))
    have_type, want_type = current.instance_type, desired_instance_type or desired.instance_type
    if _differs(have_type, want_type):
        (updates if "instance_type" in in_place else replacements).append(Change("instance_type", have_type, want_type))
    if desired_ssh_key_ids is not None and current.ssh_key_ids:
        have_keys, want_keys = sorted(current.ssh_key_ids), sorted(desired_ssh_key_ids)
        if have_keys != want_keys:
            replacements.append(Change("ssh_keys", have_keys, want_keys))
    if desired.name != current.name:
        (updates if "name" in in_place else replacements).append(Change("name", current.name, desired.name))
    wanted_tags = _wanted_tags(desired, current)
    if Capability.INSTANCE_TAGS in capabilities and wanted_tags is not None and wanted_tags != current.tags:
        (updates if "tags" in in_place else replacements).append(Change("tags", current.tags, wanted_tags))
    if volume_attachments is not None and sorted(volume_attachments[0]) != sorted(volume_attachments[1]):
        # Only attaches: volumes attached by other means (an OS volume, a volume's attach_to) are left alone.
        updates.append(Change("volumes", sorted(volume_attachments[0]), sorted(volume_attachments[1])))
    return _decide(updates, replacements)


def _create_only_changes(desired: InstanceSpec, current: Instance, current_os_disk_gb: int | None) -> list[Change]:
    """Choices made at create that no API changes later: spot or on-demand, the OS disk size."""
    changes = []
    if desired.spot is not None and desired.spot != current.spot:
        changes.append(Change("spot", current.spot, desired.spot))
    if _differs(current_os_disk_gb, desired.os_disk_size_gb):
        changes.append(Change("os_disk_size_gb", current_os_disk_gb, desired.os_disk_size_gb))
    return changes


def _wanted_tags(desired: InstanceSpec, current: Instance) -> dict[str, str] | None:
    """The tags the instance should end with; None when the spec does not manage tags."""
    if desired.tags is None:
        return None
    return dict(desired.tags) if desired.purge_tags else {**current.tags, **desired.tags}


def plan_volume(
    desired: VolumeSpec,
    current: Volume | None,
    capabilities: frozenset[Capability],
    *,
    desired_attach_id: str | None = None,
) -> Plan:
    if current is None:
        return Plan(Action.CREATE)
    in_place = volume_in_place(capabilities)
    updates: list[Change] = []
    replacements: list[Change] = []
    for name, have, want in (
        ("volume_type", current.volume_type, desired.volume_type),
        ("location", current.location, desired.location),
    ):
        if _differs(have, want):
            replacements.append(Change(name, have, want))
    require_volume_growth(current.size_gb, desired.size_gb, current.provider)
    if desired.size_gb > current.size_gb:
        (updates if "size_gb" in in_place else replacements).append(Change("size_gb", current.size_gb, desired.size_gb))
    if desired.name != current.name:
        (updates if "name" in in_place else replacements).append(Change("name", current.name, desired.name))
    if desired.attach_to is not None:
        attached = sorted(current.attached_to)
        wanted = [desired_attach_id] if desired_attach_id else []
        if attached != wanted:
            updates.append(Change("attached_to", attached, wanted))
    return _decide(updates, replacements)


def plan_ssh_key(desired: SshKeySpec, current: SshKey | None) -> Plan:
    if current is None:
        return Plan(Action.CREATE)
    replacements: list[Change] = []
    # An API that never returns key material (current.public_key empty) cannot show drift in it.
    if current.public_key and public_key_identity(desired.public_key) != public_key_identity(current.public_key):
        replacements.append(Change("public_key", current.public_key, desired.public_key))
    if desired.name != current.name:
        replacements.append(Change("name", current.name, desired.name))
    return _decide([], replacements)

"""What each provider's API can do. Anything outside a provider's set raises :class:`Unsupported`."""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    INSTANCES = "instances"
    INSTANCE_START_STOP = "instance start/stop"
    INSTANCE_REBOOT = "instance reboot"
    INSTANCE_RESIZE = "instance resize"
    INSTANCE_RENAME = "instance rename"
    INSTANCE_TAGS = "instance tags"
    INSTANCE_TAG_UPDATE = "changing instance tags in place"
    INSTANCE_LOCATION_CHOICE = "choosing an instance location"
    INSTANCE_STARTUP_SCRIPT = "instance startup script / cloud-init"
    INSTANCE_PASSWORD = "instance root password"
    INSTANCE_VOLUMES_AT_CREATE = "attaching volumes at instance create"
    INSTANCE_SNAPSHOT = "instance snapshots"
    INSTANCE_PASSWORD_RESET = "resetting an instance's root password"
    INSTANCE_KEY_ADD = "adding an SSH key to an existing instance"
    INSTANCE_BARE_METAL = "bare-metal instances (kind: bare_metal)"
    INSTANCE_STOP_RELEASED = "stopping with compute released, billed for storage only (stopped_disassociated)"
    INSTANCE_SPOT = "spot instances"
    INSTANCE_OS_DISK_SIZE = "choosing the OS disk size at create"
    INSTANCE_HIBERNATE = "instance hibernate/restore"
    # Create asks the API whether the type is in stock first and fails fast naming where it is.
    INSTANCE_AVAILABILITY_CHECK = "stock check before create"
    VOLUMES = "volumes"
    VOLUME_CREATE = "volume create"
    VOLUME_DELETE = "volume delete"
    VOLUME_ATTACH = "volume attach/detach"
    VOLUME_RESIZE = "volume resize"
    VOLUME_RENAME = "volume rename"
    VOLUME_TYPES = "volume types"
    VOLUME_LOCATION = "volume location"
    SSH_KEYS = "account SSH keys"
    SSH_KEYS_BY_CONTENT = "SSH keys passed by content at instance create"
    OFFERS = "offers"
    IMAGES = "images"
    LOCATIONS = "locations"


class Evidence(StrEnum):
    """What a capability-table cell rests on; the value is the word the table shows."""

    # The provider's published API docs show the endpoints (the copies gpucloud was written against).
    DOCUMENTED = "yes"
    # Read from the provider's open-source code (its controller), not from its published API docs.
    SOURCE = "source"
    # Built from the docs' conventions: the endpoint, or what a documented field means, is not shown.
    INFERRED = "inferred"


# The legend printed under the capability tables, one line per cell word.
EVIDENCE_LEGEND: dict[str, str] = {
    Evidence.DOCUMENTED.value: "supported, on endpoints the provider's published API docs show",
    Evidence.SOURCE.value: (
        "supported, on endpoints read from the code of the provider's open controller (its published docs do not "
        "cover them)"
    ),
    Evidence.INFERRED.value: (
        "supported, on an endpoint or a field meaning the provider's docs do not give (built from its conventions)"
    ),
    "no": "raises gpucloud.Unsupported naming the provider and the capability, before any request is sent",
}

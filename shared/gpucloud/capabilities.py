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

"""Provider-neutral resource models shared by the Pulumi and Ansible front-ends.

Every model keeps the provider's own payload in ``raw`` so nothing the API said is lost by normalisation.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


class Status(StrEnum):
    """One lifecycle vocabulary for every provider; each adapter maps its raw statuses onto it."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DELETING = "deleting"
    DELETED = "deleted"
    # A spot instance the provider took back: it no longer runs and never will again, but its record (and the
    # volumes kept per its discontinue policy) stay in the account until deleted.
    DISCONTINUED = "discontinued"
    ERROR = "error"
    UNKNOWN = "unknown"


def _resource_name(value: str) -> str:
    """No provider takes a blank name or one with control characters (line breaks, NUL, tabs): such a name would
    also end up unchanged in inventory hostnames and logs. Provider-specific shapes are in each adapter."""
    if not value.strip():
        raise ValueError("must not be blank (only whitespace)")
    bad = sorted({repr(c) for c in value if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")})
    if bad:
        raise ValueError(f"must not contain control or invisible characters (found {', '.join(bad)})")
    return value


def _no_bool(value: Any) -> Any:
    """``True`` is an int to Python; as a size it is a mistake, not 1."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not a boolean")
    return value


def _no_bool_number(value: Any) -> Any:
    """Pydantic reads ``True`` as 1.0 for a float: ``max_price_per_hour: true`` would mean $1/h."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


ResourceName = Annotated[str, Field(min_length=1), AfterValidator(_resource_name)]
WholeNumber = Annotated[int, BeforeValidator(_no_bool)]
Number = Annotated[float, BeforeValidator(_no_bool_number)]


# What an instance is: a virtual machine, or a whole rented machine (Voltage Park bare metal). Providers without
# the second refuse it before any request.
InstanceKind = Literal["vm", "bare_metal"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Instance(_Model):
    id: str
    provider: str
    name: str
    status: Status
    raw_status: str
    kind: InstanceKind = "vm"
    # Stopped with its compute released (Voltage Park ``StoppedDisassociated``): billed for storage only.
    compute_released: bool = False
    instance_type: str | None = None
    gpu_model: str | None = None
    gpu_count: int = 0
    location: str | None = None
    image: str | None = None
    public_ip: str | None = None
    ssh_port: int | None = None
    ssh_user: str | None = None
    ssh_key_ids: tuple[str, ...] = ()
    volume_ids: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)
    price_per_hour: float | None = None
    # A spot (interruptible, cheaper) instance: the provider may discontinue it at any time.
    spot: bool = False
    created_at: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def ssh_ready_address(self) -> tuple[str, int] | None:
        """Where SSH should answer once the instance runs, or None while the provider reports no endpoint."""
        if self.public_ip is None or self.ssh_port is None:
            return None
        return self.public_ip, self.ssh_port


class Volume(_Model):
    id: str
    provider: str
    name: str
    size_gb: int
    status: str
    volume_type: str | None = None
    location: str | None = None
    attached_to: tuple[str, ...] = ()
    price_per_hour: float | None = None
    created_at: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class SshKey(_Model):
    id: str
    provider: str
    name: str
    public_key: str
    fingerprint: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class LocationAvailability(_Model):
    location: str
    available: bool
    name: str | None = None


class Offer(_Model):
    """A purchasable machine shape, with where it can be had right now."""

    provider: str
    instance_type: str
    gpu_model: str | None
    gpu_count: int
    kind: InstanceKind = "vm"
    vcpus: int | None = None
    memory_gb: float | None = None
    # The disk the machine comes with, in GB, where the catalogue says (dcdncloud plans, ComputeStacks packages,
    # Voltage Park presets and bare-metal nodes, DataCrunch types that state a size); None: not stated.
    disk_gb: float | None = None
    price_per_hour: float | None = None
    # The price of the same machine as a spot instance, where the provider sells spot (None: no spot offer).
    spot_price_per_hour: float | None = None
    locations: tuple[LocationAvailability, ...] = ()

    @property
    def available(self) -> bool:
        return any(loc.available for loc in self.locations)


class Image(_Model):
    id: str
    provider: str
    name: str
    # What a machine needs to boot it, where the provider says (ComputeStacks images); None: no stated minimum.
    min_vcpus: float | None = None
    min_memory_gb: float | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class Location(_Model):
    id: str
    provider: str
    name: str
    country: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class InstanceSpec(_Model):
    """What a user asks for; the reconcile logic compares it with an existing :class:`Instance`."""

    name: ResourceName
    instance_type: str = Field(min_length=1)
    kind: InstanceKind = "vm"
    image: str | None = None
    location: str | None = None
    ssh_keys: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    # None: tags are not managed (left as they are). Given: with purge_tags the instance gets exactly these,
    # without it these are added to (or change) the instance's tags and the others stay, as amazon.aws does.
    tags: dict[str, str] | None = None
    purge_tags: bool = True
    startup_script: str | None = None
    password: str | None = Field(default=None, repr=False)
    # Create-only choices: a different value means a new instance. spot None: not managed (a create makes an
    # on-demand instance; an existing instance is not compared).
    spot: bool | None = None
    # What happens to the OS volume when the provider discontinues the spot instance (provider's own words).
    on_spot_discontinue: str | None = None
    # None: the provider's default OS disk size.
    os_disk_size_gb: WholeNumber | None = Field(default=None, gt=0)


class VolumeSpec(_Model):
    name: ResourceName
    size_gb: WholeNumber = Field(gt=0)
    volume_type: str | None = None
    location: str | None = None
    attach_to: str | None = None


class SshKeySpec(_Model):
    name: ResourceName
    public_key: str = Field(min_length=1)


class CreatedInstance(_Model):
    """A create result: the instance plus secrets that a provider shows only once (e.g. a root password)."""

    instance: Instance
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)

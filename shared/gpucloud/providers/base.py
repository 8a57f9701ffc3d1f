"""The adapter contract: the wire operations an adapter implements, and the public methods built on them.

An adapter implements the ``_``-prefixed wire operations of its capabilities and nothing else generic. Each
wire operation is declared once, below, with the capability it implements (:func:`wire_operation`): an adapter
without that capability inherits a definition that raises :class:`Unsupported`, and the public method that
calls it (:func:`guarded`) checks the capability first. :func:`capability_mismatches` says where an adapter's
declared capabilities and implemented wire operations disagree (a test runs it over every adapter).

What is generic about the public methods beyond that (adopting a create whose answer was lost, waits, SSH-key
resolution) lives in :mod:`gpucloud.engine`; spec validation needs no connection (class methods, also
reachable by provider name through ``gpucloud.providers.validate_*_spec``).
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NoReturn, TypeVar, cast

import httpx

from gpucloud import engine, errors, wire
from gpucloud.capabilities import Capability, Evidence
from gpucloud.config import ProviderConfig, check_base_url, env_var, secret_fields
from gpucloud.engine import unique_by_name
from gpucloud.httputil import request_id_of, retry_after_seconds
from gpucloud.models import (
    CreatedInstance,
    Image,
    Instance,
    InstanceKind,
    InstanceSpec,
    Location,
    Offer,
    SshKey,
    SshKeySpec,
    Status,
    Volume,
    VolumeSpec,
)
from gpucloud.transport import Transport
from gpucloud.validation import looks_like_public_key, validate_public_key

F = TypeVar("F", bound=Callable[..., Any])

IdKind = Literal["instance", "volume", "ssh_key"]
# Never an id on any provider: path separators, query/fragment marks, escapes, whitespace and control characters.
_NEVER_IN_IDS = re.compile(r"[/\\?#%\s\x00-\x1f\x7f]")


@dataclass(frozen=True)
class IdShape:
    """What a provider's ids of one kind look like (declared in the provider's adapter file)."""

    pattern: str  # a regular expression the whole id must match
    description: str  # for the error message, e.g. "a UUID such as 0b7a...-..."

    def matches(self, value: str) -> bool:
        return re.fullmatch(self.pattern, value) is not None


UUID_SHAPE = IdShape(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "a UUID such as 123e4567-e89b-12d3-a456-426614174000",
)
INTEGER_SHAPE = IdShape(r"[0-9]{1,19}", "a whole number such as 42")


OneOff = Literal["snapshot", "reset_root_password", "add_ssh_key"]
# One-off instance operations by the name the front-ends give them: the capability each needs, and what to do
# on a provider without it.
ONE_OFF_ACTIONS: Mapping[OneOff, tuple[Capability, str]] = {
    "snapshot": (Capability.INSTANCE_SNAPSHOT, "take snapshots in the provider's console"),
    "reset_root_password": (Capability.INSTANCE_PASSWORD_RESET, "log in with an SSH key instead"),
    "add_ssh_key": (Capability.INSTANCE_KEY_ADD, "this provider takes SSH keys at create only"),
}


# --- wire operations, each declared once with its capability --------------------------------------------
# Wire operation name -> the capabilities any one of which says an adapter implements it (the first is the one
# named when it is missing). Filled by @wire_operation as the Provider class body below is read.
WIRE_OPERATIONS: dict[str, tuple[Capability, ...]] = {}


def wire_operation(capability: Capability, *alternatives: Capability) -> Callable[[F], F]:
    """Declare the wire operation below as implementing ``capability`` (or any of ``alternatives``).

    The definition in :class:`Provider` only gives the signature: it is replaced by one raising Unsupported,
    which an adapter with the capability overrides.
    """

    def declare(signature: F) -> F:
        WIRE_OPERATIONS[signature.__name__] = (capability, *alternatives)

        @functools.wraps(signature)
        def unsupported(self: Provider, *args: object, **kwargs: object) -> NoReturn:
            raise errors.Unsupported(self.name, capability.value)

        return cast(F, unsupported)

    return declare


def guarded(operation: Callable[..., Any], hint: str | None = None) -> Callable[[F], F]:
    """A public method that raises Unsupported (with ``hint``) unless the adapter has ``operation``'s capability."""
    capability = WIRE_OPERATIONS[operation.__name__][0]

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def checked(self: Provider, *args: Any, **kwargs: Any) -> Any:
            self.require(capability, hint)
            return method(self, *args, **kwargs)

        return cast(F, checked)

    return wrap


def capability_mismatches(cls: type[Provider]) -> list[str]:
    """Where ``cls``'s declared capabilities and implemented wire operations disagree, one sentence each."""
    found = []
    for operation, capabilities in WIRE_OPERATIONS.items():
        implemented = getattr(cls, operation) is not getattr(Provider, operation)
        declared = any(capability in cls.capabilities for capability in capabilities)
        wanted = " or ".join(repr(c.value) for c in capabilities)
        if declared and not implemented:
            found.append(f"{cls.name} declares {wanted} but does not implement {operation}")
        elif implemented and not declared:
            found.append(f"{cls.name} implements {operation} but declares none of {wanted}")
    return found


class Provider(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    # What the adapter's capabilities rest on by default: the provider's published docs, or (where those cover
    # little) its open-source code. The capability table shows it per cell.
    evidence: ClassVar[Evidence] = Evidence.DOCUMENTED
    # Capabilities that rest on endpoints, or meanings of fields, the provider's docs do not give
    # (reconstructed from its conventions); the capability table marks them "inferred".
    inferred: ClassVar[frozenset[Capability]] = frozenset()
    # Capability-table columns whose evidence differs from their capability's as a whole (e.g. a documented
    # list call next to an inferred delete call), by column label.
    column_evidence: ClassVar[Mapping[str, Evidence]] = {}
    # Catalogues that list only the values the provider's docs show, not everything its API accepts: shown to
    # users as a starting point, never used to refuse a value.
    example_catalogues: ClassVar[frozenset[Capability]] = frozenset()
    auth_kinds: ClassVar[str]
    # Where SSH answers, in the provider's own terms (for the capability table).
    ssh_endpoint: ClassVar[str]
    default_ssh_user: ClassVar[str] = "root"
    # False where the API never returns key material: a key's content then cannot be compared, only its name.
    reports_public_keys: ClassVar[bool] = True
    # False where the catalogue has no GPU machines (container or VPS platforms).
    sells_gpus: ClassVar[bool] = True
    # What to do instead, per missing capability, added to the Unsupported message.
    unsupported_hints: ClassVar[dict[Capability, str]] = {}
    # The provider's published request limit; the client paces itself under it unless configured otherwise.
    default_requests_per_minute: ClassVar[float | None] = None
    # True where an instance's OS disk is a volume of its own that outlives the instance unless deleted with it.
    separate_os_volume: ClassVar[bool] = False
    # Instance statuses in which the API attaches or detaches a volume (deleting an attached one included);
    # None: any. Checked before any write, in check mode too, so a plan never promises what the API refuses.
    volume_attach_statuses: ClassVar[frozenset[Status] | None] = None
    # Statuses after which an instance will never come back to life by waiting.
    terminal_statuses: ClassVar[frozenset[Status]] = frozenset({Status.ERROR, Status.DELETED, Status.DISCONTINUED})
    # The shape of the provider's ids per kind: an id given by a user is checked against it before any request
    # (a kind without a shape only gets the generic check: no path or query characters).
    id_shapes: ClassVar[Mapping[IdKind, IdShape]] = {}

    def __init__(self, config: ProviderConfig, *, http_transport: httpx.BaseTransport | None = None) -> None:
        if not config.base_url:
            raise errors.ValidationError(
                f"no API URL for {self.name}; set {env_var(self.name, 'base_url')}", field="base_url"
            )
        check_base_url(config)
        self.config = config
        self.transport = self._make_transport(config, http_transport)

    # --- construction -------------------------------------------------------------------------------
    @abstractmethod
    def _make_transport(self, config: ProviderConfig, http_transport: httpx.BaseTransport | None) -> Transport: ...

    def _transport(
        self,
        config: ProviderConfig,
        http_transport: httpx.BaseTransport | None,
        auth: httpx.Auth,
        *,
        base_url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Transport:
        """The one way adapters build their transport: timeouts, retries and pacing all come from ``config``."""
        return Transport(
            provider=self.name,
            base_url=base_url or str(config.base_url),
            map_error=self._map_error,
            auth=auth,
            headers=headers,
            http_transport=http_transport,
            timeout=config.timeout,
            max_retries=config.max_retries,
            retry_max_seconds=config.retry_max_seconds,
            backoff_base=config.retry_backoff,
            requests_per_minute=config.requests_per_minute or self.default_requests_per_minute,
            secrets=[*(config.secret(field) for field in secret_fields()), *config.url_secrets()],
        )

    @abstractmethod
    def _map_error(self, response: httpx.Response) -> errors.GpuCloudError:
        """The provider's error body as one of our errors (usually via :func:`build_error`)."""

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading answers (every 2xx body goes through wire: see its docstring) ------------------------
    def _read(self, response: httpx.Response, shape: Any) -> Any:
        """``response``'s JSON body, checked against ``shape``; a misfit is a :class:`wire.MalformedResponse`."""
        return wire.read(response, shape, self.name)

    def _get(self, path: str, shape: Any, *, params: Mapping[str, Any] | None = None) -> Any:
        return self._read(self.transport.request("GET", path, params=params), shape)

    # --- capabilities --------------------------------------------------------------------------------
    @classmethod
    def supports(cls, capability: Capability) -> bool:
        return capability in cls.capabilities

    @classmethod
    def require(cls, capability: Capability, hint: str | None = None) -> None:
        """Unsupported unless the adapter has ``capability``; the provider's own hint, which knows why, wins
        over the caller's generic one."""
        if capability not in cls.capabilities:
            raise errors.Unsupported(cls.name, capability.value, cls.unsupported_hints.get(capability) or hint)

    @property
    def ssh_user(self) -> str:
        return self.config.ssh_user or self.default_ssh_user

    def check_id(self, kind: IdKind, value: str, field: str = "id") -> str:
        """``value`` if it can be one of this provider's ``kind`` ids, else a ValidationError naming ``field``.

        Ids end up in URL paths; one like ``../storage/<volume>`` would otherwise address another resource.
        """
        shape = self.id_shapes.get(kind)
        text = value if isinstance(value, str) else ""
        if (
            text
            and text not in (".", "..")
            and not _NEVER_IN_IDS.search(text)
            and (shape is None or shape.matches(text))
        ):
            return text
        label = kind.replace("_", " ")
        expected = f"; {self.name} {label} ids are {shape.description}" if shape else ""
        raise errors.ValidationError(
            f"{field} {value!r} is not a {self.name} {label} id{expected}; pass the id the provider reports "
            f"(or look the {label} up by name)",
            field=field,
            provider=self.name,
        )

    # --- spec validation: class methods, so it needs no connection -----------------------------------
    @classmethod
    def validate_instance_spec(cls, spec: InstanceSpec) -> None:
        """Everything we can reject without a request: capabilities first, then provider rules."""
        cls.require(Capability.INSTANCES)
        if spec.kind != "vm":
            cls.require(Capability.INSTANCE_BARE_METAL, "remove 'kind' (or set kind: vm)")
        if spec.tags:
            cls.require(Capability.INSTANCE_TAGS, "remove 'tags'")
        if spec.startup_script:
            cls.require(Capability.INSTANCE_STARTUP_SCRIPT, "remove 'startup_script'")
        if spec.password:
            cls.require(Capability.INSTANCE_PASSWORD, "use ssh_keys instead of a password")
        if spec.location and not cls.chooses_location(spec.kind):
            cls.require(Capability.INSTANCE_LOCATION_CHOICE, "remove 'location'; the provider places it")
        if spec.volumes:
            cls.require(Capability.INSTANCE_VOLUMES_AT_CREATE, "attach volumes after create")
        if spec.spot:
            cls.require(Capability.INSTANCE_SPOT, "remove 'spot' (this provider sells on-demand instances only)")
        if spec.on_spot_discontinue is not None and not spec.spot:
            raise errors.ValidationError(
                "on_spot_discontinue applies to spot instances only; set spot: true or remove it",
                field="on_spot_discontinue",
                provider=cls.name,
            )
        if spec.os_disk_size_gb is not None:
            cls.require(Capability.INSTANCE_OS_DISK_SIZE, "remove 'os_disk_size_gb'; the image decides the disk")
        for index, key in enumerate(spec.ssh_keys):
            if looks_like_public_key(key):
                validate_public_key(key, field=f"ssh_keys[{index}]")
        cls._validate_instance_spec(spec)

    @classmethod
    def _validate_instance_spec(cls, spec: InstanceSpec) -> None:
        """Provider-specific rules; the default has none."""

    @classmethod
    def chooses_location(cls, kind: InstanceKind) -> bool:
        """Whether an instance of ``kind`` can be created in a location of the caller's choice. Providers where
        only some kinds can (Voltage Park: bare metal, not VMs) override this."""
        return cls.supports(Capability.INSTANCE_LOCATION_CHOICE)

    @classmethod
    def validate_delete_options(cls, *, keep_os_volume: bool) -> None:
        if keep_os_volume and not cls.separate_os_volume:
            raise errors.ValidationError(
                f"keep_os_volume: {cls.name} instances have no separate OS volume to keep; remove the option",
                field="keep_os_volume",
                provider=cls.name,
            )

    @classmethod
    def validate_volume_spec(cls, spec: VolumeSpec) -> None:
        cls.require(Capability.VOLUME_CREATE)
        if spec.volume_type:
            cls.require(Capability.VOLUME_TYPES, "remove 'volume_type'")
        if spec.location:
            cls.require(Capability.VOLUME_LOCATION, "remove 'location'")
        if spec.attach_to:
            cls.require(Capability.VOLUME_ATTACH)
        cls._validate_volume_spec(spec)

    @classmethod
    def _validate_volume_spec(cls, spec: VolumeSpec) -> None:
        """Provider-specific rules; the default has none."""

    @classmethod
    def validate_ssh_key_spec(cls, spec: SshKeySpec) -> None:
        cls.require(Capability.SSH_KEYS, "pass public keys on the instance instead")
        validate_public_key(spec.public_key)
        cls._validate_ssh_key_spec(spec)

    @classmethod
    def _validate_ssh_key_spec(cls, spec: SshKeySpec) -> None:
        """Provider-specific rules; the default has none."""

    # --- wire operations: an adapter overrides the ones of its capabilities (see wire_operation) ------
    @wire_operation(Capability.INSTANCES)
    def _list_instances(self) -> list[Instance]:
        raise NotImplementedError  # replaced by @wire_operation

    @wire_operation(Capability.INSTANCES)
    def _get_instance(self, instance_id: str) -> Instance:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCES)
    def _create_instance(self, spec: InstanceSpec) -> CreatedInstance:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCES)
    def _delete_instance(self, instance_id: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_START_STOP)
    def _start_instance(self, instance_id: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_START_STOP)
    def _stop_instance(self, instance_id: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_STOP_RELEASED)
    def _stop_instance_released(self, instance_id: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_REBOOT)
    def _reboot_instance(self, instance_id: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_RESIZE)
    def _resize_instance(self, instance_id: str, instance_type: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_RENAME, Capability.INSTANCE_TAG_UPDATE)
    def _update_instance(self, instance_id: str, *, name: str | None, tags: dict[str, str] | None) -> Instance:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_SNAPSHOT)
    def _snapshot_instance(self, instance_id: str) -> str:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_PASSWORD_RESET)
    def _reset_root_password(self, instance_id: str) -> str:
        raise NotImplementedError

    @wire_operation(Capability.INSTANCE_KEY_ADD)
    def _add_instance_ssh_key(self, instance_id: str, public_key: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.VOLUMES)
    def _list_volumes(self) -> list[Volume]:
        raise NotImplementedError

    @wire_operation(Capability.VOLUMES)
    def _get_volume(self, volume_id: str) -> Volume:
        raise NotImplementedError

    @wire_operation(Capability.VOLUME_CREATE)
    def _create_volume(self, spec: VolumeSpec) -> Volume:
        raise NotImplementedError

    @wire_operation(Capability.VOLUME_DELETE)
    def _delete_volume(self, volume_id: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.VOLUME_ATTACH)
    def _attach_volume(self, volume_id: str, instance_id: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.VOLUME_ATTACH)
    def _detach_volume(self, volume_id: str, instance_id: str | None) -> None:
        raise NotImplementedError

    @wire_operation(Capability.VOLUME_RESIZE)
    def _resize_volume(self, volume_id: str, size_gb: int) -> None:
        raise NotImplementedError

    @wire_operation(Capability.VOLUME_RENAME)
    def _rename_volume(self, volume_id: str, name: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.SSH_KEYS)
    def _list_ssh_keys(self) -> list[SshKey]:
        raise NotImplementedError

    @wire_operation(Capability.SSH_KEYS)
    def _get_ssh_key(self, key_id: str) -> SshKey:
        raise NotImplementedError

    @wire_operation(Capability.SSH_KEYS)
    def _create_ssh_key(self, spec: SshKeySpec) -> SshKey:
        raise NotImplementedError

    @wire_operation(Capability.SSH_KEYS)
    def _delete_ssh_key(self, key_id: str) -> None:
        raise NotImplementedError

    @wire_operation(Capability.OFFERS)
    def _list_offers(self) -> list[Offer]:
        raise NotImplementedError

    @wire_operation(Capability.IMAGES)
    def _list_images(self) -> list[Image]:
        raise NotImplementedError

    @wire_operation(Capability.LOCATIONS)
    def _list_locations(self) -> list[Location]:
        raise NotImplementedError

    # Hooks with a default every adapter may keep.
    def _delete_instance_and_owned(self, instance_id: str, *, keep_os_volume: bool) -> None:
        """Override where an instance leaves billed things of its own behind; by default it is all there is."""
        self._delete_instance(instance_id)

    def _instance_in_flight(self, name: str) -> Instance | None:
        """An instance being created under ``name`` that ``list_instances`` does not show yet (an order or job
        accepted by the API). Providers whose list shows an instance from the moment its create is accepted
        need nothing here."""
        return None

    # --- instances ----------------------------------------------------------------------------------
    @guarded(_list_instances)
    def list_instances(self) -> list[Instance]:
        return self._list_instances()

    def list_instances_detailed(self) -> list[Instance]:
        """``list_instances`` with whatever more the API can say about them at the cost of more requests
        (e.g. which volumes a Voltage Park VM has); for listings of hosts such as the inventory."""
        return self.list_instances()

    @guarded(_get_instance)
    def get_instance(self, instance_id: str) -> Instance:
        return self._get_instance(self.check_id("instance", instance_id))

    def find_instance(self, name: str, *, kind: InstanceKind | None = None) -> Instance | None:
        """The instance called ``name``, counting one still being created that the list does not show yet.

        ``kind`` is the kind the caller expects (a spec's): a provider listing each kind separately may look
        there first and skip the other list when the name is found. The result may still be of another kind.
        """
        found = unique_by_name(self.list_instances(), name, "instance", self.name)
        return found if found is not None else self._instance_in_flight(name)

    def create_instance(self, spec: InstanceSpec, *, attempts: int = 1) -> CreatedInstance:
        """Create without waiting; a lost answer is adopted by name (see :func:`engine.create_adopting`).

        A create of that name still in flight (an order a killed run left, see :meth:`_instance_in_flight`) is
        adopted instead of sent again, for callers that create without looking the name up first (fleets).
        """
        self.validate_instance_spec(spec)
        in_flight = self._instance_in_flight(spec.name)
        if in_flight is not None:
            return CreatedInstance(instance=in_flight)

        def adopt() -> CreatedInstance | None:
            found = self.find_instance(spec.name)
            return CreatedInstance(instance=found) if found else None

        return engine.create_adopting(self.name, lambda: self._create_instance(spec), adopt, attempts=attempts)

    @guarded(_delete_instance)
    def delete_instance(self, instance_id: str, *, keep_os_volume: bool = False) -> None:
        """Delete it with what was made for it (OS volume, startup script, project); already gone counts as deleted.

        ``keep_os_volume`` keeps a separately billed OS volume, detached, where the provider has one.
        """
        self.validate_delete_options(keep_os_volume=keep_os_volume)
        try:
            self._delete_instance_and_owned(self.check_id("instance", instance_id), keep_os_volume=keep_os_volume)
        except errors.NotFound:
            return

    @guarded(_start_instance)
    def start_instance(self, instance_id: str) -> None:
        self._start_instance(self.check_id("instance", instance_id))

    @guarded(_stop_instance)
    def stop_instance(self, instance_id: str) -> None:
        self._stop_instance(self.check_id("instance", instance_id))

    @guarded(_stop_instance_released, "use state: stopped (the machine stays reserved and billed as running)")
    def stop_instance_released(self, instance_id: str) -> None:
        """Stop and release the compute, so only storage is billed (and a start needs capacity again)."""
        self._stop_instance_released(self.check_id("instance", instance_id))

    @classmethod
    def can_release(cls, instance: Instance) -> bool:
        """Whether ``instance`` (not only its provider) can be stopped with its compute released."""
        return cls.supports(Capability.INSTANCE_STOP_RELEASED)

    def reboots(self, instance: Instance) -> bool:
        """Whether ``instance`` has a reboot call (else a restart is a stop then a start)."""
        return self.supports(Capability.INSTANCE_REBOOT)

    def os_disk_size_gb(self, instance: Instance) -> int | None:
        """The size of ``instance``'s OS disk where it can be chosen at create (one more read); None: unknown."""
        return None

    @guarded(_reboot_instance, "use state=stopped then state=started")
    def reboot_instance(self, instance_id: str) -> None:
        self._reboot_instance(self.check_id("instance", instance_id))

    @guarded(_resize_instance, "replace the instance with one of the new type")
    def resize_instance(self, instance_id: str, instance_type: str) -> None:
        self._resize_instance(self.check_id("instance", instance_id), instance_type)

    def update_instance(
        self, instance_id: str, *, name: str | None = None, tags: dict[str, str] | None = None
    ) -> Instance:
        # _update_instance serves either capability: each argument asks for its own.
        if name is not None:
            self.require(Capability.INSTANCE_RENAME)
        if tags is not None:
            self.require(Capability.INSTANCE_TAG_UPDATE, "tags can only be set at create here")
        return self._update_instance(self.check_id("instance", instance_id), name=name, tags=tags)

    # One-off instance operations: nothing to reconcile, each call acts (no API can list what they made).
    def require_one_off(self, action: OneOff) -> None:
        capability, hint = ONE_OFF_ACTIONS[action]
        self.require(capability, hint)

    def snapshot_instance(self, instance_id: str) -> str:
        """Snapshot an instance and wait for it; the id returned is usable as ``image`` at create."""
        self.require_one_off("snapshot")
        return self._snapshot_instance(self.check_id("instance", instance_id, "instance_id"))

    def reset_root_password(self, instance_id: str) -> str:
        """A new root password (the old one stops working); returned once, never logged or stored."""
        self.require_one_off("reset_root_password")
        return self._reset_root_password(self.check_id("instance", instance_id, "instance_id"))

    def add_instance_ssh_key(self, instance_id: str, public_key: str) -> None:
        """Authorize one more public key on an existing instance (the key is checked before any request)."""
        self.require_one_off("add_ssh_key")
        instance_id = self.check_id("instance", instance_id, "instance_id")
        self._add_instance_ssh_key(instance_id, validate_public_key(public_key))

    def wait_for_instance(
        self, instance_id: str, statuses: Sequence[Status], *, timeout: float = 600.0, interval: float | None = None
    ) -> Instance:
        return engine.wait_for_instance(self, instance_id, statuses, timeout=timeout, interval=interval)

    def wait_for_instance_gone(
        self, instance_id: str, *, timeout: float = 600.0, interval: float | None = None
    ) -> None:
        engine.wait_for_instance_gone(self, instance_id, timeout=timeout, interval=interval)

    def wait_for_ssh(self, instance: Instance, *, timeout: float = 300.0) -> str:
        return engine.wait_for_ssh(self, instance, timeout=timeout)

    # --- volumes ------------------------------------------------------------------------------------
    @guarded(_list_volumes)
    def list_volumes(self) -> list[Volume]:
        return self._list_volumes()

    @guarded(_get_volume)
    def get_volume(self, volume_id: str) -> Volume:
        return self._get_volume(self.check_id("volume", volume_id))

    def find_volume(self, name: str) -> Volume | None:
        return unique_by_name(self.list_volumes(), name, "volume", self.name)

    def create_volume(self, spec: VolumeSpec, *, attempts: int = 1) -> Volume:
        self.validate_volume_spec(spec)
        send, find = (lambda: self._create_volume(spec)), (lambda: self.find_volume(spec.name))
        return engine.create_adopting(self.name, send, find, attempts=attempts)

    @guarded(_delete_volume)
    def delete_volume(self, volume_id: str) -> None:
        """Detach from every instance first (APIs refuse to delete an attached volume), then delete.

        An engine tearing down a volume before the instance it is attached to (Pulumi deletes dependents
        first) then succeeds as it does in the other order. Already gone counts as deleted.
        """
        try:
            volume_id = self.check_id("volume", volume_id)
            if self.supports(Capability.VOLUME_ATTACH):
                for instance_id in self._get_volume(volume_id).attached_to:
                    self._detach_volume(volume_id, instance_id)
            self._delete_volume(volume_id)
        except errors.NotFound:
            return

    @guarded(_attach_volume)
    def attach_volume(self, volume_id: str, instance_id: str) -> None:
        self._attach_volume(self.check_id("volume", volume_id), self.check_id("instance", instance_id, "instance_id"))

    @guarded(_detach_volume)
    def detach_volume(self, volume_id: str, instance_id: str | None = None) -> None:
        checked = None if instance_id is None else self.check_id("instance", instance_id, "instance_id")
        self._detach_volume(self.check_id("volume", volume_id), checked)

    @guarded(_resize_volume)
    def resize_volume(self, volume_id: str, size_gb: int) -> None:
        self._resize_volume(self.check_id("volume", volume_id), size_gb)

    @guarded(_rename_volume)
    def rename_volume(self, volume_id: str, name: str) -> None:
        self._rename_volume(self.check_id("volume", volume_id), name)

    # --- ssh keys -----------------------------------------------------------------------------------
    @guarded(_list_ssh_keys, "pass public keys on the instance instead")
    def list_ssh_keys(self) -> list[SshKey]:
        return self._list_ssh_keys()

    @guarded(_get_ssh_key, "pass public keys on the instance instead")
    def get_ssh_key(self, key_id: str) -> SshKey:
        return self._get_ssh_key(self.check_id("ssh_key", key_id))

    def find_ssh_key(self, name: str) -> SshKey | None:
        return unique_by_name(self.list_ssh_keys(), name, "ssh key", self.name)

    def create_ssh_key(self, spec: SshKeySpec, *, attempts: int = 1) -> SshKey:
        self.validate_ssh_key_spec(spec)
        send, find = (lambda: self._create_ssh_key(spec)), (lambda: self.find_ssh_key(spec.name))
        return engine.create_adopting(self.name, send, find, attempts=attempts)

    @guarded(_delete_ssh_key)
    def delete_ssh_key(self, key_id: str) -> None:
        try:
            self._delete_ssh_key(self.check_id("ssh_key", key_id))
        except errors.NotFound:
            return

    def resolve_ssh_keys(self, refs: Sequence[str]) -> tuple[list[str], list[str]]:
        """Split key references into (registered key ids, raw public keys to pass by content); see
        :func:`engine.resolve_ssh_keys`."""
        return engine.resolve_ssh_keys(self, refs)

    # --- catalogue ----------------------------------------------------------------------------------
    @guarded(_list_offers)
    def list_offers(self) -> list[Offer]:
        return self._list_offers()

    @guarded(_list_images)
    def list_images(self) -> list[Image]:
        return self._list_images()

    @guarded(_list_locations)
    def list_locations(self) -> list[Location]:
        return self._list_locations()

    def location_names(self) -> dict[str, str]:
        """Readable names for the ids an Instance's ``location`` holds; {} when the API lists no locations."""
        if Capability.LOCATIONS not in self.capabilities:
            return {}
        return {loc.id: loc.name for loc in self._list_locations()}

    # Specs may name an instance type in a provider's alternative spelling (e.g. a preset id);
    # reconcile compares what this returns with what the API reports.
    def canonical_instance_type(self, value: str) -> str:
        return value

    def names_instance_type(self, value: str, instance: Instance) -> bool:
        """Whether ``value`` names ``instance``'s own type without a catalogue lookup (an API call on some
        providers): a no-op run then compares nothing more. False means "ask canonical_instance_type"."""
        return value == instance.instance_type


_STATUS_ERRORS: dict[int, type[errors.GpuCloudError]] = {
    400: errors.ValidationError,
    401: errors.AuthError,
    402: errors.InsufficientFunds,
    403: errors.AuthError,
    404: errors.NotFound,
    409: errors.Conflict,
    422: errors.ValidationError,
    429: errors.RateLimited,
}


def build_error(
    provider: str,
    response: httpx.Response,
    *,
    code: str | None,
    message: str | None,
    by_code: dict[str, type[errors.GpuCloudError]] | None = None,
    details: object = None,
) -> errors.GpuCloudError:
    """Map an HTTP error to our hierarchy: the provider's own error code wins, then the HTTP status."""

    cls = (by_code or {}).get(code or "") or _STATUS_ERRORS.get(response.status_code, errors.ProviderError)
    text = f"{provider}: {message or response.reason_phrase or 'HTTP ' + str(response.status_code)}"
    context: errors.ErrorContext = {
        "provider": provider,
        "status_code": response.status_code,
        "code": code,
        "request_id": request_id_of(response),
        "details": details,
    }
    if cls is errors.RateLimited:
        return errors.RateLimited(text, retry_after=retry_after_seconds(response), **context)
    return cls(text, **context)


def json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def as_float(value: Any) -> float | None:
    """Prices arrive as numbers or strings ("5.00") depending on the provider; absent or junk is None."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None

"""The one dynamic ResourceProvider behind Instance, Volume and SshKey, parameterised by resource kind.

Pulumi pickles this provider (with dill) into every resource's state under ``__provider``. It is a class in
an importable module, so dill pickles it *by reference*: the pickle holds ``pulumi_gpucloud._provider``,
the class name and ``{"kind": ...}``, nothing else. Credentials are read inside the provider process when an
RPC runs (stack config ``gpucloud:<provider>_<setting>`` > ``GPUCLOUD_*`` env > the gpucloud config file),
never stored on the object, so they cannot end up in state.

Every decision comes from the shared core: ``check`` runs the adapters' own offline validation,
``diff`` calls the reconcile planners the Ansible modules use, and create/update/delete call
``gpucloud.ensure`` (adoption by name after a lost create response, waiting, already-gone deletes).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import pydantic
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown
from pulumi.runtime import rpc

import gpucloud
from gpucloud import ensure, errors
from gpucloud.capabilities import Capability
from gpucloud.config import PROVIDERS, ProviderConfig, env_var
from gpucloud.models import Instance, InstanceSpec, SshKey, SshKeySpec, Status, Volume, VolumeSpec
from gpucloud.providers import implemented, provider_class
from gpucloud.reconcile import Plan, plan_ssh_key

PROVIDER_KEY: Final = "__provider"
# Set by ``X.get()``: the Read comes from ReadResource (the program's inputs), not from a refresh (prior outputs).
GET_MARKER: Final = "_gpucloud_get"
CONFIG_NAMESPACE: Final = "gpucloud"
KINDS: Final = ("instance", "volume", "ssh_key")
_VOLUME_DELETED: Final = "deleted"  # Volume.status is the provider's word; "deleted" where APIs keep deleted ones


class GpuCloudResourceError(Exception):
    """A gpucloud failure, reported to Pulumi as one line naming the operation, resource and cause."""


# --- input schema ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    required: bool = False
    secret: bool = False
    item: type | None = None  # element type of a list / value type of a dict
    default: Any = None


_STR, _INT, _BOOL, _NUM = str, int, bool, (int, float)
INSTANCE_INPUTS: Final[dict[str, Field]] = {
    "provider": Field(_STR, required=True),
    "name": Field(_STR, required=True),
    "instance_type": Field(_STR, required=True),
    "kind": Field(_STR, default="vm"),
    "image": Field(_STR),
    "location": Field(_STR),
    "ssh_keys": Field(list, item=str),
    "volumes": Field(list, item=str),
    "tags": Field(dict, item=str),
    "startup_script": Field(_STR),
    "password": Field(_STR, secret=True),
    "wait_for_ssh": Field(_BOOL, default=False),
    "wait_timeout": Field(_NUM, default=ensure.DEFAULT_TIMEOUT),
    "adopt": Field(_BOOL),
    "keep_os_volume": Field(_BOOL, default=False),
    "power_state": Field(_STR),
    "spot": Field(_BOOL),
    "on_spot_discontinue": Field(_STR),
    "os_disk_size_gb": Field(_INT),
    "recreate_discontinued": Field(_BOOL, default=False),
}
VOLUME_INPUTS: Final[dict[str, Field]] = {
    "provider": Field(_STR, required=True),
    "name": Field(_STR, required=True),
    "size_gb": Field(_INT, required=True),
    "volume_type": Field(_STR),
    "location": Field(_STR),
    "attach_to": Field(_STR),
    "adopt": Field(_BOOL),
}
SSH_KEY_INPUTS: Final[dict[str, Field]] = {
    "provider": Field(_STR, required=True),
    "name": Field(_STR, required=True),
    "public_key": Field(_STR, required=True),
    "adopt": Field(_BOOL),
}
INPUTS: Final[dict[str, dict[str, Field]]] = {
    "instance": INSTANCE_INPUTS,
    "volume": VOLUME_INPUTS,
    "ssh_key": SSH_KEY_INPUTS,
}
# Outputs that are always secrets, whatever the program marked.
SECRET_OUTPUTS: Final[dict[str, tuple[str, ...]]] = {
    "instance": ("password", "root_password"),
    "volume": (),
    "ssh_key": (),
}
# Inputs no API reports back: only their previous value can show a change, and they take effect at create only.
_CREATE_ONLY: Final[dict[str, tuple[str, ...]]] = {
    # spot is also reported back (and compared by the plan); here so that removing spot=True replaces too.
    "instance": ("startup_script", "password", "volumes", "spot", "on_spot_discontinue", "os_disk_size_gb"),
    "volume": (),
    "ssh_key": (),
}
# Inputs that steer this provider, not the cloud resource: a change is an update that calls no API.
_LOCAL_ONLY: Final[dict[str, tuple[str, ...]]] = {
    "instance": ("wait_for_ssh", "wait_timeout", "keep_os_volume", "recreate_discontinued"),
    "volume": (),
    "ssh_key": (),
}
# Inputs that only steer a create: a change of them changes nothing.
_CREATE_FLAGS: Final = ("adopt",)
# Which input needs which capability (for naming the property of an Unsupported failure).
_CAPABILITY_INPUT: Final[dict[Capability, str]] = {
    Capability.INSTANCE_BARE_METAL: "kind",
    Capability.INSTANCE_STOP_RELEASED: "power_state",
    Capability.INSTANCE_TAGS: "tags",
    Capability.INSTANCE_STARTUP_SCRIPT: "startup_script",
    Capability.INSTANCE_PASSWORD: "password",
    Capability.INSTANCE_LOCATION_CHOICE: "location",
    Capability.INSTANCE_VOLUMES_AT_CREATE: "volumes",
    Capability.INSTANCE_SPOT: "spot",
    Capability.INSTANCE_OS_DISK_SIZE: "os_disk_size_gb",
    Capability.VOLUME_TYPES: "volume_type",
    Capability.VOLUME_LOCATION: "location",
    Capability.VOLUME_ATTACH: "attach_to",
}


def is_unknown(value: Any) -> bool:
    """An input Pulumi cannot know during preview (an output of a resource not created yet)."""
    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_unknown(v) for v in value)
    return False


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", list: "a list", dict: "a map"}
    if isinstance(kind, tuple):
        return "a number"
    return names.get(kind, kind.__name__)


def _coerce(name: str, spec: Field, value: Any) -> tuple[Any, str | None]:
    """The value as the core expects it (numbers arrive as floats over gRPC), or a reason it is wrong."""
    if spec.kind is int and isinstance(value, float) and not isinstance(value, bool):
        if not value.is_integer():
            return value, f"{name} must be a whole number, got {value}"
        value = int(value)
    if isinstance(spec.kind, tuple) and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value <= 0:
            return value, f"{name} must be a positive number of seconds, got {value}"
        return float(value), None
    if spec.kind is not bool and isinstance(value, bool):
        return value, f"{name} must be {_type_name(spec.kind)}, got a boolean"
    if not isinstance(value, spec.kind):
        return value, f"{name} must be {_type_name(spec.kind)}, got {type(value).__name__}"
    if isinstance(value, list):
        item = spec.item or object
        bad = [i for i, v in enumerate(value) if not is_unknown(v) and not isinstance(v, item)]
        if bad:
            return value, f"{name}[{bad[0]}] must be {_type_name(item)}"
    if isinstance(value, dict):
        item = spec.item or object
        bad_keys = [k for k, v in value.items() if not is_unknown(v) and not isinstance(v, item)]
        if bad_keys:
            return value, f"{name}[{bad_keys[0]!r}] must be {_type_name(item)}"
    if isinstance(value, str) and spec.required and not value.strip():
        return value, f"{name} must not be empty"
    return value, None


def _clean(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: rpc.unwrap_rpc_secret(v) for k, v in props.items() if k != PROVIDER_KEY}


def _offline(provider: str) -> gpucloud.Provider:
    """The adapter's validation methods without a connection: they read only class attributes and the spec.

    Constructing a real adapter would need an API URL and credentials; validation needs neither, and calling
    the adapter's own ``validate_*_spec`` keeps Pulumi's Check and the adapters' create-time checks identical.
    """
    cls = provider_class(provider)
    return cls.__new__(cls)


def _property_of(error: errors.GpuCloudError, fallback: str) -> str:
    if isinstance(error, errors.ValidationError) and error.field:
        return error.field.split("[", 1)[0]
    if isinstance(error, errors.Unsupported):
        for capability, prop in _CAPABILITY_INPUT.items():
            if capability.value == error.capability:
                return str(prop)
    return fallback


def _pydantic_failures(exc: pydantic.ValidationError) -> list[CheckFailure]:
    failures = []
    for item in exc.errors():
        prop = str(item["loc"][0]) if item["loc"] else "name"
        failures.append(CheckFailure(prop, f"{prop}: {item['msg']}"))
    return failures


# --- model <-> properties ----------------------------------------------------------------------------------
def _instance_spec(props: Mapping[str, Any]) -> InstanceSpec:
    return InstanceSpec(
        name=props["name"],
        instance_type=props["instance_type"],
        kind=props.get("kind") or "vm",
        image=props.get("image"),
        location=props.get("location"),
        ssh_keys=tuple(props.get("ssh_keys") or ()),
        volumes=tuple(props.get("volumes") or ()),
        tags=None if props.get("tags") is None else dict(props["tags"]),  # omitted: tags are not managed
        startup_script=props.get("startup_script"),
        password=props.get("password"),
        spot=props.get("spot"),
        on_spot_discontinue=props.get("on_spot_discontinue"),
        os_disk_size_gb=props.get("os_disk_size_gb"),
    )


def _volume_spec(props: Mapping[str, Any]) -> VolumeSpec:
    return VolumeSpec(
        name=props["name"],
        size_gb=int(props["size_gb"]),
        volume_type=props.get("volume_type"),
        location=props.get("location"),
        attach_to=props.get("attach_to"),
    )


def _ssh_key_spec(props: Mapping[str, Any]) -> SshKeySpec:
    return SshKeySpec(name=props["name"], public_key=props["public_key"])


def instance_outputs(instance: Instance) -> dict[str, Any]:
    """What the API reports, under the names the Instance resource exposes (the model's JSON form)."""
    outs = instance.model_dump(mode="json", exclude={"raw", "id", "provider"})
    outs["ssh_host"] = instance.public_ip
    return outs


def _instance_from_state(id_: str, provider: str, olds: Mapping[str, Any]) -> Instance:
    return Instance(
        id=id_,
        provider=provider,
        name=olds["name"],
        status=Status(olds.get("status") or "unknown"),
        raw_status=olds.get("raw_status") or "",
        kind=olds.get("kind") or "vm",
        compute_released=bool(olds.get("compute_released")),
        instance_type=olds.get("instance_type"),
        location=olds.get("location"),
        image=olds.get("image"),
        ssh_key_ids=tuple(olds.get("ssh_key_ids") or ()),
        tags=dict(olds.get("tags") or {}),
        spot=bool(olds.get("spot")),
    )


# power_state input -> the ensure power state; None (not given) leaves power alone.
_POWER_STATES: Final[dict[str, ensure.PowerState]] = {
    "running": "started",
    "stopped": "stopped",
    "stopped_disassociated": "stopped_disassociated",
}


def _power_state_failure(provider: str, props: Mapping[str, Any]) -> CheckFailure | None:
    """``power_state`` must be one of :data:`_POWER_STATES` that this provider and this kind of instance have."""
    wanted = props.get("power_state")
    if wanted is None or is_unknown(wanted):
        return None
    if wanted not in _POWER_STATES:
        return CheckFailure("power_state", f"power_state {wanted!r}: choose one of {', '.join(_POWER_STATES)}")
    adapter = _offline(provider)
    stand_in = Instance(
        id="-", provider=provider, name="-", status=Status.RUNNING, raw_status="", kind=props.get("kind") or "vm"
    )
    if wanted != "running" and not adapter.supports(Capability.INSTANCE_START_STOP):
        return CheckFailure("power_state", f"power_state: {provider} instances cannot be stopped; remove it")
    if wanted == "stopped_disassociated" and not adapter.supports(Capability.INSTANCE_STOP_RELEASED):
        refusal = errors.Unsupported(provider, Capability.INSTANCE_STOP_RELEASED.value, "use stopped")
        return CheckFailure("power_state", f"power_state: {refusal}")
    if wanted == "stopped_disassociated" and not adapter.can_release(stand_in):
        return CheckFailure(
            "power_state",
            f"power_state: {provider} {stand_in.kind} instances cannot be stopped with their compute released; "
            "use stopped",
        )
    return None


def _power_matches(state: Mapping[str, Any], wanted: str | None) -> bool:
    """Whether the instance's last known outputs already show the ``power_state`` asked for."""
    if wanted is None:
        return True
    status, released = state.get("status"), bool(state.get("compute_released"))
    if wanted == "running":
        return status in (Status.RUNNING.value, Status.PENDING.value)
    return status == Status.STOPPED.value and (released or wanted == "stopped")


def volume_outputs(volume: Volume) -> dict[str, Any]:
    return volume.model_dump(mode="json", exclude={"raw", "id", "provider"})


def _volume_from_state(id_: str, provider: str, olds: Mapping[str, Any]) -> Volume:
    return Volume(
        id=id_,
        provider=provider,
        name=olds["name"],
        size_gb=int(olds["size_gb"]),
        status=olds.get("status") or "unknown",
        volume_type=olds.get("volume_type"),
        location=olds.get("location"),
        attached_to=tuple(olds.get("attached_to") or ()),
    )


def _live_volume(cloud: gpucloud.Provider, volume_id: str) -> Volume | None:
    """The volume as ``up`` finds it (None: gone, and ``up`` would create it)."""
    try:
        return cloud.get_volume(volume_id)
    except errors.NotFound:
        return None


# How a Pulumi program stops the instance a volume attaches to (the Ansible wording is ``state: stopped``).
_ATTACH_FIX: Final = "power_state: stopped on that Instance"


def _attach_refusal(cloud: gpucloud.Provider, spec: VolumeSpec, current: Volume | None) -> str | None:
    """Why the provider would refuse the attaches and detaches that ``up`` makes for ``spec`` (ensure's own plan
    and rule, against ``current``: the volume as the API reports it now), naming the property and the fix; None
    when it would not."""
    plan, attach_id = ensure.plan_for_volume(cloud, spec, current, predict=True)
    try:
        ensure.require_volume_attachable(cloud, spec.name, plan, current, attach_id, fix=_ATTACH_FIX)
    except errors.Conflict as exc:
        return f"attach_to: {exc.message}"
    return None


def ssh_key_outputs(key: SshKey) -> dict[str, Any]:
    return key.model_dump(mode="json", exclude={"raw", "id", "provider"})


def _ssh_key_from_state(id_: str, provider: str, olds: Mapping[str, Any]) -> SshKey:
    return SshKey(id=id_, provider=provider, name=olds["name"], public_key=olds["public_key"])


# --- adapters ------------------------------------------------------------------------------------------------
# One adapter per provider and settings for the life of the provider process (one Pulumi operation), shared by
# every RPC. A new one per RPC cost a config load, an httpx client with a freshly parsed CA bundle (~25 ms of
# CPU) and a new TCP/TLS connection (a round trip or more) before each API call; a shared one keeps its
# connection and, for OAuth providers, its access token. Adapters are thread-safe (the SDK serves RPCs from a
# thread pool) and hold no resource state, only their client and catalogue caches. Settings (which may hold
# secrets) are part of the key, in memory only, so different credentials never share an adapter.
_ADAPTERS: dict[tuple[str, tuple[tuple[str, str], ...]], gpucloud.Provider] = {}
_ADAPTERS_LOCK = threading.Lock()


def _adapter(provider: str, settings: Mapping[str, str]) -> gpucloud.Provider:
    key = (provider, tuple(sorted(settings.items())))
    with _ADAPTERS_LOCK:
        cloud = _ADAPTERS.get(key)
        if cloud is None:
            cloud = _ADAPTERS[key] = gpucloud.connect(provider, **settings)
        return cloud


# --- the provider ----------------------------------------------------------------------------------------
class GpuCloudProvider(ResourceProvider):
    """CRUD for one kind of gpucloud resource ("instance", "volume" or "ssh_key") on any provider."""

    kind: str
    _settings: dict[str, dict[str, str]]

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self._settings = {}

    # Only the kind is ever pickled into state; settings from configure() stay in the provider process.
    def __getstate__(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.kind = state["kind"]
        self._settings = {}

    # --- configuration ------------------------------------------------------------------------------
    def configure(self, req: ConfigureRequest) -> None:
        """Pick up ``gpucloud:<provider>_<setting>`` stack config (the same names as the env variables)."""
        settings: dict[str, dict[str, str]] = {}
        for provider in PROVIDERS:
            for field in ProviderConfig.model_fields:
                if field == "provider":
                    continue
                suffix = env_var(provider, field).removeprefix(f"GPUCLOUD_{provider.upper()}_").lower()
                value = req.config.get(f"{CONFIG_NAMESPACE}:{provider}_{suffix}")
                if value not in (None, ""):
                    settings.setdefault(provider, {})[field] = str(rpc.unwrap_rpc_secret(value))
        self._settings = settings

    @contextmanager
    def _cloud(self, provider: str, action: str, what: str) -> Iterator[gpucloud.Provider]:
        try:
            yield _adapter(provider, self._settings.get(provider, {}))
        except errors.GpuCloudError as exc:
            raise GpuCloudResourceError(f"{action} {self.kind} {what} on {provider}: {exc}") from None

    # --- check -----------------------------------------------------------------------------------------
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        schema = INPUTS[self.kind]
        props = _clean(news)
        failures: list[CheckFailure] = []
        inputs: dict[str, Any] = {}
        for name in props:
            if name not in schema and props[name] is not None:
                failures.append(CheckFailure(name, f"unknown property {name!r}; expected one of {', '.join(schema)}"))
        for name, spec in schema.items():
            value = props.get(name)
            if value is None:
                if spec.required:
                    failures.append(CheckFailure(name, f"{name} is required"))
                elif spec.default is not None:
                    inputs[name] = spec.default
                continue
            if is_unknown(value):
                inputs[name] = value
                continue
            value, problem = _coerce(name, spec, value)
            if problem:
                failures.append(CheckFailure(name, problem))
            inputs[name] = value
        provider = inputs.get("provider")
        if isinstance(provider, str) and provider not in implemented():
            failures.append(
                CheckFailure("provider", f"provider {provider!r} is not available; choose one of {implemented()}")
            )
        if not failures and isinstance(provider, str):
            failures += self._check_with_adapter(provider, inputs, _clean(_olds))
            failures += self._attach_failures(provider, inputs) if self.kind == "volume" and not _olds else []
            power = _power_state_failure(provider, inputs) if self.kind == "instance" else None
            failures += [power] if power else []
        for name in SECRET_OUTPUTS[self.kind]:
            if inputs.get(name) is not None and not is_unknown(inputs[name]):
                inputs[name] = rpc.wrap_rpc_secret(inputs[name])
        return CheckResult(inputs, failures)

    def _check_with_adapter(self, provider: str, inputs: dict[str, Any], olds: dict[str, Any]) -> list[CheckFailure]:
        """The adapter's own offline rules, with unknown values left out (and their failures ignored)."""
        unknown = {name for name, value in inputs.items() if is_unknown(value)}
        known = {k: v for k, v in inputs.items() if k not in unknown}
        for name in unknown & {"name", "instance_type", "public_key"}:
            known[name] = "placeholder"
        if "size_gb" in unknown:
            known["size_gb"] = 1
        if self.kind == "ssh_key" and "public_key" in unknown:
            return []
        adapter = _offline(provider)
        try:
            if self.kind == "instance":
                adapter.validate_instance_spec(_instance_spec(known))
                adapter.validate_delete_options(keep_os_volume=bool(known.get("keep_os_volume")))
            elif self.kind == "volume":
                adapter.validate_volume_spec(_volume_spec(known))
                old_size = olds.get("size_gb")
                if "size_gb" not in unknown and isinstance(old_size, int | float) and known["size_gb"] < old_size:
                    raise errors.ValidationError(
                        f"size_gb cannot shrink from {int(old_size)} to {known['size_gb']}; volumes only grow",
                        field="size_gb",
                    )
            else:
                adapter.validate_ssh_key_spec(_ssh_key_spec(known))
        except pydantic.ValidationError as exc:
            return [f for f in _pydantic_failures(exc) if f.property not in unknown]
        except errors.GpuCloudError as exc:
            prop = _property_of(exc, "provider")
            return [] if prop in unknown else [CheckFailure(prop, f"{prop}: {exc}")]
        return []

    def _attach_failures(self, provider: str, inputs: dict[str, Any]) -> list[CheckFailure]:
        """A volume create (or adoption) attaching to an instance in a state the API refuses: refused now, by the
        rule ``up`` applies (a preview of it otherwise shows a create that ``up`` refuses).

        Only where the provider restricts attaching (DataCrunch: stopped instances) and ``attach_to`` is known; an
        instance created in the same program is unknown here, so that refusal waits for ``up``.
        """
        if provider_class(provider).volume_attach_statuses is None or any(is_unknown(v) for v in inputs.values()):
            return []
        if not inputs.get("attach_to"):
            return []
        spec = _volume_spec(inputs)
        with self._cloud(provider, "check", repr(spec.name)) as cloud:
            refusal = _attach_refusal(cloud, spec, cloud.find_volume(spec.name))  # what a create finds (adopts)
        return [CheckFailure("attach_to", refusal)] if refusal else []

    # --- diff ------------------------------------------------------------------------------------------
    def diff(self, id_: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        olds, news = _clean(_olds), _clean(_news)
        schema = INPUTS[self.kind]
        replaces: list[str] = []
        changes: list[str] = []
        if news.get("provider") != olds.get("provider"):
            replaces.append("provider")
        else:
            unknown = [name for name in schema if is_unknown(news.get(name)) and name not in _CREATE_FLAGS]
            # Unknowns (preview): plan the known inputs with the old values standing in for the unknown ones,
            # and add what a change of each unknown one would do.
            replaces, changes = self._classify_unknown(olds["provider"], unknown)
            known = {k: olds.get(k) if k in unknown else v for k, v in news.items()}
            known = {k: v for k, v in known.items() if v is not None}
            plan = self._plan(id_, olds, known, attach_unknown="attach_to" in unknown)
            replaces += plan.replace_fields
            changes += plan.update_fields
            for name in _CREATE_ONLY[self.kind]:
                if name not in unknown and (news.get(name) or None) != (olds.get(name) or None):
                    replaces.append(name)
            for name in _LOCAL_ONLY[self.kind]:
                default = schema[name].default
                if name not in unknown and news.get(name, default) != olds.get(name, default):
                    changes.append(name)
            if self.kind == "instance" and (
                is_unknown(news.get("power_state")) or not _power_matches(olds, news.get("power_state"))
            ):
                changes.append("power_state")
        replaces = sorted(set(replaces))
        changed = bool(replaces or changes)
        # Names are unique per account (lookups by name refuse duplicates): keep the name -> delete first.
        same_name = news.get("name") == olds.get("name")
        return DiffResult(
            changes=changed,
            replaces=replaces,
            delete_before_replace=bool(replaces) and same_name,
        )

    def _classify_unknown(self, provider: str, unknown: list[str]) -> tuple[list[str], list[str]]:
        """Preview with unknown inputs: say what would happen if each of them changed."""
        caps = provider_class(provider).capabilities
        in_place = {
            "instance": ({"tags"} if Capability.INSTANCE_TAG_UPDATE in caps else set())
            | ({"name"} if Capability.INSTANCE_RENAME in caps else set())
            | ({"instance_type"} if Capability.INSTANCE_RESIZE in caps else set()),
            "volume": {"attach_to"}
            | ({"name"} if Capability.VOLUME_RENAME in caps else set())
            | ({"size_gb"} if Capability.VOLUME_RESIZE in caps else set()),
            "ssh_key": set(),
        }[self.kind] | set(_LOCAL_ONLY[self.kind])
        replaces = [n for n in unknown if n not in in_place]
        return replaces, [n for n in unknown if n in in_place]

    def _plan(self, id_: str, olds: dict[str, Any], news: dict[str, Any], *, attach_unknown: bool = False) -> Plan:
        provider = news["provider"]
        if self.kind == "ssh_key":
            return plan_ssh_key(_ssh_key_spec(news), _ssh_key_from_state(id_, provider, olds))
        with self._cloud(provider, "diff", repr(news.get("name"))) as cloud:
            if self.kind == "instance":
                current = _instance_from_state(id_, provider, olds)
                # A diff plans; what it names may be created earlier in the same update (predicted, not refused).
                return ensure.plan_for_instance(
                    cloud,
                    _instance_spec(news),
                    current,
                    predict=True,
                    recreate_discontinued=bool(news.get("recreate_discontinued")),
                )
            spec = _volume_spec(news)
            # The state's attached_to may be stale (an instance deleted since): the rule judges the live volume.
            refusal = None
            if not attach_unknown and cloud.volume_attach_statuses is not None:
                refusal = _attach_refusal(cloud, spec, _live_volume(cloud, id_))
            if refusal:
                raise errors.Conflict(refusal, provider=provider, code="instance_state")
            return ensure.plan_for_volume(cloud, spec, _volume_from_state(id_, provider, olds), predict=True)[0]

    # --- create / update -------------------------------------------------------------------------------
    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = _clean(props)
        provider = inputs["provider"]
        with self._cloud(provider, "create", repr(inputs["name"])) as cloud:
            if inputs.get("adopt") is False:
                self._refuse_existing(cloud, inputs["name"])
            if self.kind == "instance":
                outcome = ensure.ensure_instance(
                    cloud,
                    _instance_spec(inputs),
                    wait=True,
                    wait_for_ssh=bool(inputs.get("wait_for_ssh")),
                    wait_timeout=float(inputs.get("wait_timeout") or ensure.DEFAULT_TIMEOUT),
                    recreate_discontinued=bool(inputs.get("recreate_discontinued")),
                )
                assert outcome.after is not None
                after = self._apply_power(cloud, outcome.after, inputs)
                root_password = outcome.secrets.get("root_password") or outcome.secrets.get("password")
                outs = self._outputs(inputs, instance_outputs(after), root_password=root_password)
                return CreateResult(outcome.after.id, outs)
            if self.kind == "volume":
                volume = ensure.ensure_volume(cloud, _volume_spec(inputs)).after
                assert volume is not None
                return CreateResult(volume.id, self._outputs(inputs, volume_outputs(volume)))
            key = ensure.ensure_ssh_key(cloud, _ssh_key_spec(inputs)).after
            assert key is not None
            return CreateResult(key.id, self._outputs(inputs, ssh_key_outputs(key)))

    def update(self, id_: str, _olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        olds, inputs = _clean(_olds), _clean(_news)
        provider = inputs["provider"]
        with self._cloud(provider, "update", repr(inputs["name"])) as cloud:
            if self.kind == "instance":
                outcome = ensure.ensure_instance(
                    cloud,
                    _instance_spec(inputs),
                    instance_id=id_,
                    wait=True,
                    wait_for_ssh=bool(inputs.get("wait_for_ssh")),
                    wait_timeout=float(inputs.get("wait_timeout") or ensure.DEFAULT_TIMEOUT),
                )
                assert outcome.after is not None
                outs = instance_outputs(self._apply_power(cloud, outcome.after, inputs))
                return UpdateResult(self._outputs(inputs, outs, root_password=olds.get("root_password")))
            if self.kind == "volume":
                volume = ensure.ensure_volume(cloud, _volume_spec(inputs), volume_id=id_).after
                assert volume is not None
                return UpdateResult(self._outputs(inputs, volume_outputs(volume)))
            key = ensure.ensure_ssh_key(cloud, _ssh_key_spec(inputs)).after
            assert key is not None
            return UpdateResult(self._outputs(inputs, ssh_key_outputs(key)))

    @staticmethod
    def _apply_power(cloud: gpucloud.Provider, instance: Instance, inputs: Mapping[str, Any]) -> Instance:
        """Bring the instance to its ``power_state`` (if given) once it exists and matches the other inputs."""
        wanted = inputs.get("power_state")
        if wanted is None:
            return instance
        outcome = ensure.ensure_instance_power(
            cloud,
            _POWER_STATES[wanted],
            instance_id=instance.id,
            wait=True,
            wait_for_ssh=bool(inputs.get("wait_for_ssh")) and wanted == "running",
            wait_timeout=float(inputs.get("wait_timeout") or ensure.DEFAULT_TIMEOUT),
        )
        return outcome.after or instance

    def _refuse_existing(self, cloud: gpucloud.Provider, name: str) -> None:
        """``adopt=False``: a resource of this name that exists already is an error, not this resource."""
        find: dict[str, Callable[[str], Any]] = {
            "instance": cloud.find_instance,
            "volume": cloud.find_volume,
            "ssh_key": cloud.find_ssh_key,
        }
        existing = find[self.kind](name)
        if existing is not None:
            raise errors.Conflict(
                f"one named {name!r} exists already (id {existing.id}) and adopt is false; set adopt=True to "
                "manage it from this stack, read it with .get() without managing it, or choose another name"
            )

    # --- read / delete ---------------------------------------------------------------------------------
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh (props are the last outputs) and ``X.get()`` (props are the program's inputs)."""
        state = _clean(props)
        lookup = bool(state.pop(GET_MARKER, False))
        provider = state.get("provider")
        if not isinstance(provider, str):
            raise GpuCloudResourceError(
                f"read {self.kind} {id_!r}: provider is required (pass provider= to get() or set gpucloud:provider)"
            )
        fetch: dict[str, Callable[[gpucloud.Provider], dict[str, Any]]] = {
            "instance": lambda cloud: instance_outputs(cloud.get_instance(id_)),
            "volume": lambda cloud: volume_outputs(cloud.get_volume(id_)),
            "ssh_key": lambda cloud: ssh_key_outputs(cloud.get_ssh_key(id_)),
        }
        with self._cloud(provider, "read", repr(id_)) as cloud:
            try:
                live = fetch[self.kind](cloud)
            except errors.NotFound:
                live = {}
        if not live or live.get("status") == (Status.DELETED.value if self.kind == "instance" else _VOLUME_DELETED):
            if lookup:  # the engine would take an empty answer to .get() as a resource with no outputs
                raise GpuCloudResourceError(f"get {self.kind} {id_!r} on {provider}: no such {self.kind}")
            return ReadResult("", {})  # gone (some APIs keep answering for deleted ones): dropped from the state
        outs = self._outputs(state, live, root_password=state.get("root_password"))
        schema = INPUTS[self.kind]
        inputs = {k: v for k, v in outs.items() if k in schema and v is not None}
        result = ReadResult(id_, outs)
        result.inputs = inputs  # an attribute, not an argument: SDKs whose ReadResult lacks it still work
        return result

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        props = _clean(_props)
        provider = props["provider"]
        with self._cloud(provider, "delete", repr(props.get("name", id_))) as cloud:
            if self.kind == "instance":
                timeout = float(props.get("wait_timeout") or ensure.DEFAULT_TIMEOUT)
                keep = bool(props.get("keep_os_volume"))
                ensure.ensure_instance_absent(
                    cloud, instance_id=id_, wait=True, wait_timeout=timeout, keep_os_volume=keep
                )
            elif self.kind == "volume":
                try:
                    if cloud.get_volume(id_).status == _VOLUME_DELETED:  # e.g. deleted along with its instance
                        return
                except errors.NotFound:
                    return
                ensure.ensure_volume_absent(cloud, volume_id=id_)
            else:
                ensure.ensure_ssh_key_absent(cloud, key_id=id_)

    # --- helpers ---------------------------------------------------------------------------------------
    def _outputs(self, inputs: Mapping[str, Any], live: dict[str, Any], *, root_password: Any = None) -> dict[str, Any]:
        """Inputs echoed (user spelling), overridden by what the API reports; secrets wrapped as secrets."""
        schema = INPUTS[self.kind]
        outs = {k: v for k, v in inputs.items() if k in schema}
        # A field the API leaves empty (e.g. a key text it never returns) keeps the value the program gave.
        outs.update({k: v for k, v in live.items() if v not in (None, "") or k not in outs})
        if self.kind == "instance":
            outs["root_password"] = rpc.unwrap_rpc_secret(root_password) if root_password else None
        for name in SECRET_OUTPUTS[self.kind]:
            if outs.get(name) is not None:
                outs[name] = rpc.wrap_rpc_secret(rpc.unwrap_rpc_secret(outs[name]))
        return outs

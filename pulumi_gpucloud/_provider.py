"""The one dynamic ResourceProvider behind Instance, Volume and SshKey; what differs per kind is in _kinds.py.

Pulumi pickles this provider (with dill) into every resource's state under ``__provider``. It is a class in
an importable module, so dill pickles it *by reference*: the pickle holds ``pulumi_gpucloud._provider``,
the class name and ``{"kind": ...}``, nothing else. Credentials are read inside the provider process when an
RPC runs (stack config ``gpucloud:<provider>_<setting>`` > ``GPUCLOUD_*`` env > the gpucloud config file),
never stored on the object, so they cannot end up in state.

Every decision comes from the shared core, through the kind's object: ``check`` runs the adapters' own offline
validation, ``diff`` calls the planners the Ansible modules use (and classifies inputs unknown in a preview by
reconcile's own in-place rules), and create/update/delete call ``gpucloud.ensure`` (adoption by name after a
lost create response, waiting, already-gone deletes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
from pulumi.runtime import rpc

import gpucloud
from gpucloud import errors
from gpucloud.capabilities import Capability
from gpucloud.config import PROVIDERS, ProviderConfig, env_var
from gpucloud.providers import implemented, provider_class
from pulumi_gpucloud._inputs import Field, clean, is_unknown, schema_inputs
from pulumi_gpucloud._kinds import KINDS, Kind

# Set by ``X.get()``: the Read comes from ReadResource (the program's inputs), not from a refresh (prior outputs).
GET_MARKER: Final = "_gpucloud_get"
CONFIG_NAMESPACE: Final = "gpucloud"
INPUTS: Final[dict[str, Mapping[str, Field]]] = {name: kind.inputs for name, kind in KINDS.items()}
SECRET_OUTPUTS: Final[dict[str, tuple[str, ...]]] = {name: kind.secret_outputs for name, kind in KINDS.items()}
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


class GpuCloudResourceError(Exception):
    """A gpucloud failure, reported to Pulumi as one line naming the operation, resource and cause."""


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
            raise ValueError(f"kind must be one of {tuple(KINDS)}, got {kind!r}")
        self.kind = kind
        self._settings = {}

    # Only the kind is ever pickled into state; settings from configure() stay in the provider process.
    def __getstate__(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.kind = state["kind"]
        self._settings = {}

    @property
    def rules(self) -> Kind:
        """This kind's object (the pickle holds only its name)."""
        return KINDS[self.kind]

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

    def _connect(self, provider: str) -> gpucloud.Provider:
        return _adapter(provider, self._settings.get(provider, {}))

    @contextmanager
    def _reported(self, provider: str, action: str, what: str) -> Iterator[None]:
        """gpucloud errors in the block reported as one line naming the operation, resource and cause."""
        try:
            yield
        except errors.GpuCloudError as exc:
            cause = exc.describe(name_provider=False)  # the line names the provider already
            raise GpuCloudResourceError(f"{action} {self.kind} {what} on {provider}: {cause}") from None

    @contextmanager
    def _cloud(self, provider: str, action: str, what: str) -> Iterator[gpucloud.Provider]:
        with self._reported(provider, action, what):
            yield self._connect(provider)

    # --- check -----------------------------------------------------------------------------------------
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        kind, olds = self.rules, clean(_olds)
        inputs, failures = schema_inputs(
            kind.inputs,
            clean(news),
            lambda name: f"unknown property {name!r}; expected one of {', '.join(kind.inputs)}",
        )
        provider = inputs.get("provider")
        if isinstance(provider, str) and provider not in implemented():
            failures.append(
                CheckFailure("provider", f"provider {provider!r} is not available; choose one of {implemented()}")
            )
        if not failures and isinstance(provider, str):
            failures += self._check_with_adapter(provider, inputs, olds)
            with self._reported(provider, "check", repr(inputs.get("name"))):
                failures += kind.check_more(provider, inputs, olds, lambda: self._connect(provider), valid=not failures)
        for name in kind.secret_outputs:
            if inputs.get(name) is not None and not is_unknown(inputs[name]):
                inputs[name] = rpc.wrap_rpc_secret(inputs[name])
        return CheckResult(inputs, failures)

    def _check_with_adapter(self, provider: str, inputs: dict[str, Any], olds: dict[str, Any]) -> list[CheckFailure]:
        """The adapter's own offline rules, with unknown values left out (and their failures ignored)."""
        kind = self.rules
        unknown = {name for name, value in inputs.items() if is_unknown(value)}
        known = {k: v for k, v in inputs.items() if k not in unknown}
        known.update({k: v for k, v in kind.placeholders.items() if k in unknown})
        try:
            # The adapter class, not an adapter: its validation rules are class methods that need no URL,
            # credentials or connection, so Check runs exactly the checks the adapter runs at create.
            kind.validate(provider_class(provider), known, olds, unknown)
        except pydantic.ValidationError as exc:
            return [f for f in _pydantic_failures(exc) if f.property not in unknown]
        except errors.GpuCloudError as exc:
            prop = _property_of(exc, "provider")
            return [] if prop in unknown else [CheckFailure(prop, exc.describe(prop))]
        return []

    # --- diff ------------------------------------------------------------------------------------------
    def diff(self, id_: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        olds, news = clean(_olds), clean(_news)
        replaces: list[str]
        changes: list[str]
        if news.get("provider") != olds.get("provider"):
            replaces, changes = ["provider"], []
        else:
            replaces, changes = self._changes(id_, olds, news)
        replaces = sorted(set(replaces))
        # Names are unique per account (lookups by name refuse duplicates): keep the name -> delete first.
        same_name = news.get("name") == olds.get("name")
        return DiffResult(
            changes=bool(replaces or changes), replaces=replaces, delete_before_replace=bool(replaces) and same_name
        )

    def _changes(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(inputs whose change replaces, inputs changed in place), on one provider."""
        kind, provider = self.rules, olds["provider"]
        unknown = {name for name in kind.inputs if is_unknown(news.get(name)) and name not in _CREATE_FLAGS}
        # Unknowns (preview): what a change of each would do, by the core's in-place rules (an input Pulumi sends
        # only at create replaces whatever the API could change); the known inputs are planned with the old
        # values standing in for the unknown ones.
        updatable = (kind.in_place(provider_class(provider).capabilities) - set(kind.create_only)) | set(
            kind.local_only
        )
        replaces = [n for n in unknown if n not in updatable]
        changes = [n for n in unknown if n in updatable]
        known = {k: olds.get(k) if k in unknown else v for k, v in news.items()}
        known = {k: v for k, v in known.items() if v is not None}
        with self._reported(provider, "diff", repr(news.get("name"))):
            plan = kind.plan(lambda: self._connect(provider), id_, olds, known, unknown)
        replaces += plan.replace_fields
        changes += plan.update_fields
        for name in kind.create_only:
            if name not in unknown and (news.get(name) or None) != (olds.get(name) or None):
                replaces.append(name)
        for name in kind.local_only:
            default = kind.inputs[name].default
            if name not in unknown and news.get(name, default) != olds.get(name, default):
                changes.append(name)
        return replaces, changes + kind.diff_more(olds, news)

    # --- create / update -------------------------------------------------------------------------------
    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = clean(props)
        provider = inputs["provider"]
        with self._cloud(provider, "create", repr(inputs["name"])) as cloud:
            if inputs.get("adopt") is False:
                self._refuse_existing(cloud, inputs["name"])
            id_, live = self.rules.create(cloud, inputs)
        return CreateResult(id_, self._outputs(inputs, live, {}))

    def update(self, id_: str, _olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        olds, inputs = clean(_olds), clean(_news)
        provider = inputs["provider"]
        with self._cloud(provider, "update", repr(inputs["name"])) as cloud:
            live = self.rules.update(cloud, id_, inputs)
        return UpdateResult(self._outputs(inputs, live, olds))

    def _refuse_existing(self, cloud: gpucloud.Provider, name: str) -> None:
        """``adopt=False``: a resource of this name that exists already is an error, not this resource."""
        existing = self.rules.find(cloud, name)
        if existing is not None:
            raise errors.Conflict(
                f"one named {name!r} exists already (id {existing.id}) and adopt is false; set adopt=True to "
                "manage it from this stack, read it with .get() without managing it, or choose another name"
            )

    # --- read / delete ---------------------------------------------------------------------------------
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh (props are the last outputs) and ``X.get()`` (props are the program's inputs)."""
        state = clean(props)
        lookup = bool(state.pop(GET_MARKER, False))
        provider = state.get("provider")
        if not isinstance(provider, str):
            raise GpuCloudResourceError(
                f"read {self.kind} {id_!r}: provider is required (pass provider= to get() or set gpucloud:provider)"
            )
        with self._cloud(provider, "read", repr(id_)) as cloud:
            live = self.rules.read(cloud, id_)
        if not live:
            if lookup:  # the engine would take an empty answer to .get() as a resource with no outputs
                raise GpuCloudResourceError(f"get {self.kind} {id_!r} on {provider}: no such {self.kind}")
            return ReadResult("", {})  # gone (some APIs keep answering for deleted ones): dropped from the state
        outs = self._outputs(state, live, state)
        result = ReadResult(id_, outs)
        # An attribute, not an argument: SDKs whose ReadResult lacks it still work.
        result.inputs = {k: v for k, v in outs.items() if k in self.rules.inputs and v is not None}
        return result

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        props = clean(_props)
        provider = props["provider"]
        with self._cloud(provider, "delete", repr(props.get("name", id_))) as cloud:
            self.rules.delete(cloud, id_, props)

    # --- helpers ---------------------------------------------------------------------------------------
    def _outputs(self, inputs: Mapping[str, Any], live: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
        """Inputs echoed (user spelling), overridden by what the API reports; what the API showed once kept from
        ``previous`` outputs; secrets wrapped as secrets."""
        kind = self.rules
        outs = {k: v for k, v in inputs.items() if k in kind.inputs}
        # A field the API leaves empty (e.g. a key text it never returns) keeps the value the program gave.
        outs.update({k: v for k, v in live.items() if v not in (None, "") or k not in outs})
        for name in kind.shown_once:
            shown = live.get(name) or previous.get(name)
            outs[name] = rpc.unwrap_rpc_secret(shown) if shown else None
        for name in kind.secret_outputs:
            if outs.get(name) is not None:
                outs[name] = rpc.wrap_rpc_secret(rpc.unwrap_rpc_secret(outs[name]))
        return outs

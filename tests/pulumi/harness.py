"""An engine stand-in for Pulumi dynamic providers: drives the SDK's own provider server over gRPC.

The Pulumi CLI (and so the engine) cannot be installed here. This module does, RPC by RPC and workflow by
workflow, what the engine does with a Python dynamic provider, following the engine's code (pulumi/pulumi,
``pkg/resource/...``, read at commit 1b5949891b3c of 2026-08-21). Where a behaviour is not listed here, the
harness does not reproduce it (see the end of this docstring).

Process and handshake
  ``python -u -m pulumi.dynamic`` (what ``pulumi-resource-pulumi-python`` runs) in the project directory; the
  port is the first stdout line; then GetPluginInfo and Configure (all stack config, ``project:key`` names,
  ``acceptSecrets=True`` offered; the SDK answers ``acceptSecrets=False``) -- ``plugin/provider_plugin.go``
  ``(*provider).Configure``.

Marshalling (every RPC) -- ``plugin/provider_plugin.go`` ``MarshalProperties``/``UnmarshalProperties``
  Secrets are stripped before sending (the provider does not accept them) and re-applied to replies by a port of
  ``annotateSecrets``; unknowns are sent only where the engine sets ``KeepUnknowns`` (Check and Diff in a
  preview, and the dependent-replacement Diff); numbers travel as doubles.

Check -- ``deploy/step_generator.go`` ``continueStepsFromImport`` and ``plugin/provider_plugin.go`` ``Check``
  olds = the old inputs, or none for a create; news = the program's inputs with ``__provider``. A replacement
  checks again with no olds (``continueStepsFromDiff``: "recompute the default values").
Diff -- ``deploy/step_generator.go`` ``diff``/``diffResource``, ``plugin/provider_plugin.go`` ``Diff``
  olds = old outputs, old_inputs = old inputs, news = checked inputs. DIFF_UNKNOWN falls back to comparing the
  inputs (``diffResource``). ``deleteBeforeReplace`` from the provider unless the resource option overrides it.
Create -- ``deploy/step.go`` ``CreateStep.Apply``, ``plugin/provider_plugin.go`` ``Create``
  properties = checked inputs. In a preview there is no RPC (``supportsPreview`` is false): the outputs are the
  inputs and the id is unknown.
Update -- ``deploy/step.go`` ``UpdateStep.Apply``, ``plugin/provider_plugin.go`` ``Update``
  olds = old outputs, news = checked inputs, old_inputs. In a preview no RPC: outputs = new inputs, id kept.
Delete -- ``deploy/step.go`` ``DeleteStep.Apply``, ``plugin/provider_plugin.go`` ``Delete``
  properties = outputs, old_inputs = inputs. Never in a preview.
Read, three ways -- ``plugin/provider_plugin.go`` ``Read``
  refresh (``deploy/step.go`` ``RefreshStep.Apply``): properties = old outputs, inputs = old inputs; an empty id
  means gone (dropped from the state), new inputs from the reply replace the old ones.
  ``opts.id`` / ``Resource.get()`` (``deploy/step.go`` ``ReadStep.Apply``): inputs and properties both = the
  program's inputs; runs in previews too; the result is an external resource (never deleted by destroy).
  ``opts.import_`` / ``pulumi import`` (``deploy/step.go`` ``ImportStep.Apply``): URN, name, type and the ID
  only -- no inputs, no properties; no outputs back means "does not exist", no inputs back means "provider does
  not support importing". Then Check (olds = imported inputs) and Diff against the imported state.

Workflows
  up (:meth:`DynamicProviderHarness.deploy`) -- ``deploy/deployment_executor.go`` ``Execute``/``handleSingleEvent``:
    a resource registers once the outputs it uses are resolved (the SDK awaits them), so it runs after its
    dependencies' steps; each resource's steps are one chain (``ExecuteSerial``) and chains of independent
    resources run concurrently on ``--parallel`` workers (``deploy/step_executor.go``; default GOMAXPROCS x 4,
    ``cmd/pulumi/operations/up.go`` ``defaultParallel``), all against the one provider process.
  replace -- ``deploy/step_generator.go`` ``continueStepsFromDiff``: create-before-delete by default, the old
    one deleted with the other deletes after every registration (``performPostSteps``); with
    deleteBeforeReplace, dependents that ``calculateDependentReplacements`` finds would be replaced (Diff with
    the dependent properties unknown) are deleted first in reverse dependency order and created again when they
    register, then the old resource is deleted and the new one created.
  deletes and destroy -- ``deploy/step_generator.go`` ``GenerateDeletes`` + ``ScheduleDeletes``: resources no
    longer in the program (all of them for destroy) and replaced ones are deleted in antichains, dependents
    before what they depend on, each antichain in parallel.
  preview -- the same walk with ``DryRun``: unknowns reach Check and Diff; dependents see a created or replaced
    resource's id as unknown and its outputs as its inputs (SDK ``rpc.resolve_properties``: a value missing or
    None in a preview is unknown).
  refresh (``up --refresh``) -- ``deploy/deployment_executor.go`` ``refresh``: a RefreshStep for every resource
    of the state, in parallel, before the update.

Not reproduced: state files and encryption, URNs across parents and aliases, ignoreChanges, replaceOnChanges,
targets, protect, retries and custom timeouts, the detailed-diff rendering, plans, policy packs.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill
import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.dynamic.dynamic import PROVIDER_KEY, ResourceProvider, serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from pulumi_gpucloud._pickling import pickler_restored

SECRET_SIG_KEY = rpc._special_sig_key
SECRET_SIG = rpc._special_secret_sig


@dataclass(frozen=True)
class Secret:
    """Engine-side marker: a secret property value."""

    value: Any


class _Computed:
    def __repr__(self) -> str:
        return "COMPUTED"


COMPUTED = _Computed()  # engine-side marker: a value unknown during preview


class CheckFailed(Exception):
    def __init__(self, failures: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{prop}: {reason}" for prop, reason in failures))
        self.failures = failures


class ProviderFailed(Exception):
    """A provider RPC failed (gRPC UNKNOWN, with the provider process's traceback as details)."""

    def __init__(self, rpc_name: str, error: grpc.RpcError) -> None:
        self.rpc_name = rpc_name
        self.code = error.code()
        self.details = error.details() or ""
        super().__init__(f"{rpc_name} failed ({self.code.name}): {self.details}")


@dataclass
class ResourceState:
    """One resource of a stack's state, as the engine keeps it."""

    type_token: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: tuple[str, ...] = ()  # names of the resources it depends on (any property or dependsOn)
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    external: bool = False  # read with opts.id / .get(): not managed, never deleted


@dataclass
class DiffOutcome:
    changes: int
    replaces: list[str]
    delete_before_replace: bool
    stables: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.changes == provider_pb2.DiffResponse.DIFF_NONE:
            return "none"
        if self.changes == provider_pb2.DiffResponse.DIFF_UNKNOWN:
            return "unknown"
        return "replace" if self.replaces else "update"


@dataclass
class UpResult:
    state: ResourceState
    operation: str  # create | update | replace | same | read | import
    diff: DiffOutcome | None = None
    steps: list[str] = field(default_factory=list)


# --- values: engine <-> wire ----------------------------------------------------------------------------
def reveal(value: Any) -> Any:
    """The plain value with every Secret marker removed."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def _to_wire(value: Any, *, keep_unknowns: bool, keep_secrets: bool) -> Any:
    if isinstance(value, Secret):
        inner = _to_wire(value.value, keep_unknowns=keep_unknowns, keep_secrets=keep_secrets)
        return {SECRET_SIG_KEY: SECRET_SIG, "value": inner} if keep_secrets else inner
    if value is COMPUTED:
        if not keep_unknowns:
            raise AssertionError("the engine never sends unknowns outside preview")
        return rpc.UNKNOWN
    if isinstance(value, dict):
        return {k: _to_wire(v, keep_unknowns=keep_unknowns, keep_secrets=keep_secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_wire(v, keep_unknowns=keep_unknowns, keep_secrets=keep_secrets) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)  # protobuf Struct numbers are doubles
    raise TypeError(f"cannot marshal {type(value).__name__}")


def marshal(props: Mapping[str, Any], *, keep_unknowns: bool = False, keep_secrets: bool = False) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    wire = {
        k: _to_wire(v, keep_unknowns=keep_unknowns, keep_secrets=keep_secrets)
        for k, v in props.items()
        if v is not None
    }
    struct.update(wire)
    return struct


def _from_wire(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return Secret(_from_wire(value.get("value")))
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if value == rpc.UNKNOWN:
        return COMPUTED
    return value


def unmarshal(struct: struct_pb2.Struct) -> dict[str, Any]:
    """With KeepSecrets and KeepUnknowns, as the engine reads provider replies."""
    from google.protobuf.json_format import MessageToDict

    decoded: dict[str, Any] = {k: _from_wire(v) for k, v in MessageToDict(struct).items()}
    return decoded


def annotate_secrets(outputs: dict[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Port of the engine's annotateSecrets: an output whose same-named input was secret is secret."""
    result = dict(outputs)
    for key, value in inputs.items():
        if isinstance(value, Secret) and key in result and not isinstance(result[key], Secret):
            result[key] = Secret(result[key])
    return result


def program_inputs(provider: ResourceProvider, props: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs a program registers, as the engine holds them: what ``dynamic.Resource.__init__`` sends.

    ``props`` may hold :class:`Secret` / ``COMPUTED`` markers (an ``Output.secret`` / an unknown in preview).
    """
    if PROVIDER_KEY in props:
        raise ValueError("A dynamic resource must not define the __provider key")
    with pickler_restored():  # as pulumi_gpucloud's resources do around the SDK's call (pulumi/pulumi#17803)
        serialized = serialize_provider(provider)
    always = getattr(provider, "serialize_as_secret_always", True)
    plain = {k: v for k, v in props.items() if v is not None}

    async def sdk_serialize() -> struct_pb2.Struct:
        return await rpc.serialize_properties(_to_sdk(plain), {})

    # A private loop: asyncio.run() would leave the thread without a current loop, which set_mocks needs.
    loop = asyncio.new_event_loop()
    try:
        struct = loop.run_until_complete(sdk_serialize())
    finally:
        loop.close()
    serialized_props = unmarshal(struct)
    # Markers the SDK cannot express without a running engine connection are re-applied here.
    inputs: dict[str, Any] = {k: _restore(serialized_props.get(k), v) for k, v in plain.items()}
    inputs[PROVIDER_KEY] = Secret(serialized) if always else serialized
    return inputs


def _restore(serialized: Any, original: Any) -> Any:
    if original is COMPUTED:
        return COMPUTED
    if isinstance(original, Secret):
        return Secret(_restore(serialized, original.value))
    if isinstance(original, dict) and isinstance(serialized, dict):
        return {k: _restore(serialized.get(k), v) for k, v in original.items()}
    if isinstance(original, list | tuple) and isinstance(serialized, list):
        return [_restore(s, o) for s, o in zip(serialized, original, strict=True)]
    return serialized


def _to_sdk(value: Any) -> Any:
    if isinstance(value, Secret):
        return _to_sdk(value.value)
    if value is COMPUTED:
        return None
    if isinstance(value, dict):
        return {k: _to_sdk(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_sdk(v) for v in value]
    return value


def decode_provider(serialized: Any) -> bytes:
    """The raw dill pickle behind a ``__provider`` value."""
    return base64.b64decode(reveal(serialized))


def load_provider(serialized: Any) -> ResourceProvider:
    provider: ResourceProvider = dill.loads(decode_provider(serialized))
    return provider


def inputs_differ(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    """The engine's fallback when Diff says DIFF_UNKNOWN: compare all inputs, secrets unwrapped (diffResource)."""
    return bool(reveal(dict(olds)) != reveal(dict(news)))


# --- a program, as the engine sees it ------------------------------------------------------------------
@dataclass(frozen=True)
class Ref:
    """A program's use of another resource's output (``res.id``, ``res.name``...): a dependency of the user."""

    resource: str
    output: str = "id"


@dataclass(frozen=True)
class Apply:
    """``pulumi.Output.all(*args).apply(fn)``: unknown in a preview when any argument is unknown."""

    fn: Callable[[list[Any]], Any]
    args: tuple[Any, ...]


@dataclass
class Declared:
    """One resource of a program: its inputs (which may hold :class:`Ref`/:class:`Apply`) and options."""

    name: str
    type_token: str
    provider: ResourceProvider
    props: dict[str, Any]
    delete_before_replace: bool | None = None  # ResourceOptions(delete_before_replace=...)
    depends_on: tuple[str, ...] = ()
    read_id: str | None = None  # ResourceOptions(id=...), what Resource.get() uses
    import_id: str | None = None  # ResourceOptions(import_=...)


Stack = dict[str, ResourceState]


@dataclass(frozen=True)
class Event:
    resource: str
    step: str  # check | diff | create | update | delete | read | refresh | import
    phase: str  # start | end


@dataclass
class Planned:
    """What happened to one resource in a deployment (or would, in a preview)."""

    operation: str  # create | update | replace | same | read | import | delete | refresh
    steps: list[str] = field(default_factory=list)
    diff: DiffOutcome | None = None
    checked: dict[str, Any] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Deployment:
    stack: Stack
    planned: dict[str, Planned] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def at(self, resource: str, step: str, phase: str = "start") -> int:
        """Position of an event in the order the harness saw them (steps of one chain are ordered)."""
        return self.events.index(Event(resource, step, phase))

    def operations(self) -> dict[str, str]:
        return {name: planned.operation for name, planned in self.planned.items()}


def default_parallel() -> int:
    """``--parallel`` when unset: GOMAXPROCS (the CPU count) x 4 (cmd/pulumi/operations/up.go defaultParallel)."""
    return (os.cpu_count() or 1) * 4


def references(value: Any) -> set[str]:
    if isinstance(value, Ref):
        return {value.resource}
    if isinstance(value, Apply):
        return set().union(*(references(a) for a in value.args))
    if isinstance(value, Secret):
        return references(value.value)
    if isinstance(value, dict):
        return set().union(*(references(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(references(v) for v in value))
    return set()


def _has_unknown(value: Any) -> bool:
    if value is COMPUTED:
        return True
    if isinstance(value, Secret):
        return _has_unknown(value.value)
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_unknown(v) for v in value)
    return False


def _has_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(_has_secret(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_secret(v) for v in value)
    return False


def resolve(value: Any, visible: Mapping[str, Mapping[str, Any]], *, preview: bool) -> Any:
    """A program value with every reference replaced by what the program sees of that output."""
    if isinstance(value, Ref):
        return visible[value.resource].get(value.output, COMPUTED if preview else None)
    if isinstance(value, Apply):
        args = [resolve(a, visible, preview=preview) for a in value.args]
        if any(_has_unknown(a) for a in args):
            return COMPUTED  # an apply never runs on an unknown value
        result = value.fn([reveal(a) for a in args])
        return Secret(result) if any(_has_secret(a) for a in args) else result
    if isinstance(value, Secret):
        return Secret(resolve(value.value, visible, preview=preview))
    if isinstance(value, dict):
        return {k: resolve(v, visible, preview=preview) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, visible, preview=preview) for v in value]
    return value


def _seen_by_program(
    state: ResourceState, props: Mapping[str, Any], *, preview: bool, id_known: bool
) -> dict[str, Any]:
    """What the SDK resolves a resource's outputs to (``rpc.resolve_outputs``/``resolve_properties``).

    In an update an input the engine gave no output for keeps the program's value; in a preview a value that is
    missing or None is unknown, as is the id of a resource not created yet.
    """
    seen: dict[str, Any] = {k: v for k, v in state.outputs.items() if k != PROVIDER_KEY}
    if preview:
        seen = {k: (COMPUTED if v is None else v) for k, v in seen.items()}
    else:
        for key, value in props.items():
            seen.setdefault(key, value)
    seen["id"] = state.id if id_known and state.id else (COMPUTED if preview else state.id)
    return seen


# --- the harness ----------------------------------------------------------------------------------------
class DynamicProviderHarness:
    def __init__(
        self,
        project_dir: Path,
        *,
        project: str = "project",
        stack: str = "test",
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.project = project
        self.stack = stack
        self.config = dict(config or {})
        self.timeout = timeout
        self.env = {**os.environ, **(env or {}), "PULUMI_PROJECT": project, "PULUMI_STACK": stack}
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self.accept_secrets = False
        self.version = ""

    # --- process --------------------------------------------------------------------------------------
    def start(self) -> DynamicProviderHarness:
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.dynamic", "127.0.0.1:0"],
            cwd=self.project_dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"provider did not announce a port: {line!r}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.version = self.stub.GetPluginInfo(empty_pb2.Empty()).version
        self.configure(self.config)
        return self

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        self.process = None

    def __enter__(self) -> DynamicProviderHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, name: str, request: Any) -> Any:
        assert self.stub is not None, "start() first"
        try:
            return getattr(self.stub, name)(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ProviderFailed(name, error) from None

    # --- raw RPCs -------------------------------------------------------------------------------------
    def configure(self, config: Mapping[str, Any]) -> None:
        namespaced = {k if ":" in k else f"{self.project}:{k}": v for k, v in config.items()}
        response = self._call(
            "Configure",
            provider_pb2.ConfigureRequest(
                args=marshal(namespaced, keep_secrets=True),
                variables={k: str(reveal(v)) for k, v in namespaced.items()},
                acceptSecrets=True,
                acceptResources=True,
            ),
        )
        self.accept_secrets = response.acceptSecrets

    def _urn(self, type_token: str, name: str) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{type_token}::{name}"

    def _wire(self, props: Mapping[str, Any], *, preview: bool = False) -> struct_pb2.Struct:
        return marshal(props, keep_unknowns=preview, keep_secrets=self.accept_secrets)

    def check(
        self, type_token: str, name: str, olds: Mapping[str, Any], news: Mapping[str, Any], *, preview: bool = False
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        response = self._call(
            "Check",
            provider_pb2.CheckRequest(
                urn=self._urn(type_token, name),
                name=name,
                type=type_token,
                olds=self._wire(olds, preview=preview),
                news=self._wire(news, preview=preview),
            ),
        )
        failures = [(f.property, f.reason) for f in response.failures]
        return annotate_secrets(unmarshal(response.inputs), news), failures

    def diff(self, state: ResourceState, news: Mapping[str, Any], *, preview: bool = False) -> DiffOutcome:
        """Diff, with the engine's input comparison when the provider answers DIFF_UNKNOWN (diffResource)."""
        response = self._call(
            "Diff",
            provider_pb2.DiffRequest(
                id=state.id,
                urn=self._urn(state.type_token, state.name),
                name=state.name,
                type=state.type_token,
                olds=self._wire(state.outputs),
                news=self._wire(news, preview=preview),
                old_inputs=self._wire(state.inputs),
            ),
        )
        outcome = DiffOutcome(
            response.changes, list(response.replaces), response.deleteBeforeReplace, list(response.stables)
        )
        if outcome.changes == provider_pb2.DiffResponse.DIFF_UNKNOWN:
            changed = inputs_differ(state.inputs, news)
            outcome.changes = provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE
        return outcome

    def create(self, type_token: str, name: str, inputs: Mapping[str, Any]) -> ResourceState:
        response = self._call(
            "Create",
            provider_pb2.CreateRequest(
                urn=self._urn(type_token, name), name=name, type=type_token, properties=self._wire(inputs)
            ),
        )
        if not response.id:
            raise RuntimeError(f"plugin returned empty resource.ID from create '{self._urn(type_token, name)}'")
        outputs = annotate_secrets(unmarshal(response.properties), inputs)
        return ResourceState(type_token, name, response.id, dict(inputs), outputs)

    def read(self, state: ResourceState) -> ResourceState | None:
        """Read as a refresh sends it (RefreshStep): prior outputs and inputs; None when the resource is gone."""
        response = self._call(
            "Read",
            provider_pb2.ReadRequest(
                id=state.id,
                urn=self._urn(state.type_token, state.name),
                name=state.name,
                type=state.type_token,
                properties=self._wire(state.outputs),
                inputs=self._wire(state.inputs),
            ),
        )
        if not response.id:
            return None
        outputs = annotate_secrets(unmarshal(response.properties), state.outputs)
        inputs = unmarshal(response.inputs) if response.HasField("inputs") else dict(state.inputs)
        inputs = annotate_secrets(inputs, state.inputs)
        return ResourceState(
            state.type_token,
            state.name,
            response.id,
            inputs,
            outputs,
            state.dependencies,
            state.property_dependencies,
            state.external,
        )

    def read_resource(self, type_token: str, name: str, id_: str, inputs: Mapping[str, Any]) -> ResourceState:
        """Read as ``opts.id`` / ``Resource.get()`` sends it (ReadStep): the inputs, also as the state."""
        response = self._call(
            "Read",
            provider_pb2.ReadRequest(
                id=id_,
                urn=self._urn(type_token, name),
                name=name,
                type=type_token,
                properties=self._wire(inputs),
                inputs=self._wire(inputs),
            ),
        )
        outputs = annotate_secrets(unmarshal(response.properties), inputs)
        return ResourceState(type_token, name, response.id or id_, dict(inputs), outputs, external=True)

    def import_read(self, type_token: str, name: str, id_: str) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """Read as ``opts.import_`` / ``pulumi import`` sends it (ImportStep): URN, name, type and ID only."""
        response = self._call(
            "Read",
            provider_pb2.ReadRequest(id=id_, urn=self._urn(type_token, name), name=name, type=type_token),
        )
        inputs = unmarshal(response.inputs) if response.HasField("inputs") else None
        return response.id, unmarshal(response.properties), inputs

    def update(self, state: ResourceState, news: Mapping[str, Any]) -> ResourceState:
        response = self._call(
            "Update",
            provider_pb2.UpdateRequest(
                id=state.id,
                urn=self._urn(state.type_token, state.name),
                name=state.name,
                type=state.type_token,
                olds=self._wire(state.outputs),
                news=self._wire(news),
                old_inputs=self._wire(state.inputs),
            ),
        )
        outputs = annotate_secrets(unmarshal(response.properties), news)
        return ResourceState(state.type_token, state.name, state.id, dict(news), outputs)

    def delete(self, state: ResourceState) -> None:
        self._call(
            "Delete",
            provider_pb2.DeleteRequest(
                id=state.id,
                urn=self._urn(state.type_token, state.name),
                name=state.name,
                type=state.type_token,
                properties=self._wire(state.outputs),
                old_inputs=self._wire(state.inputs),
            ),
        )

    # --- engine workflows over a program --------------------------------------------------------------
    def deploy(
        self,
        program: Sequence[Declared],
        stack: Mapping[str, ResourceState] | None = None,
        *,
        preview: bool = False,
        refresh: bool = False,
        parallel: int | None = None,
        before_step: Callable[[str, str], None] | None = None,
    ) -> Deployment:
        """``pulumi up`` (``preview=True``: ``pulumi preview``; ``refresh=True``: ``--refresh``) of a program.

        On failure the exception carries ``deployment`` with the state as far as it got (for clean-up), as the
        engine persists its snapshot step by step. ``before_step(resource, step)`` runs in the worker thread
        before each provider step (tests use it to observe concurrency without timing anything).
        """
        run = _Run(self, program, dict(stack or {}), preview, parallel or default_parallel(), before_step)
        return run.execute(refresh=refresh)

    def destroy_stack(
        self, stack: Mapping[str, ResourceState], *, before_step: Callable[[str, str], None] | None = None
    ) -> Deployment:
        """``pulumi destroy``: every resource deleted, dependents first (GenerateDeletes + ScheduleDeletes)."""
        return self.deploy([], stack, before_step=before_step)

    # --- one-resource programs (the workflows most tests need) ----------------------------------------
    def up(
        self,
        name: str,
        provider: ResourceProvider,
        props: Mapping[str, Any],
        type_token: str,
        state: ResourceState | None = None,
        *,
        delete_before_replace: bool | None = None,
    ) -> UpResult:
        """``pulumi up`` of a program holding this one resource (and a state holding at most it)."""
        declared = Declared(name, type_token, provider, dict(props), delete_before_replace)
        deployment = self.deploy([declared], {name: state} if state else {})
        planned = deployment.planned[name]
        return UpResult(deployment.stack[name], planned.operation, planned.diff, planned.steps)

    def preview(
        self,
        name: str,
        provider: ResourceProvider,
        props: Mapping[str, Any],
        type_token: str,
        state: ResourceState | None = None,
    ) -> tuple[dict[str, Any], list[tuple[str, str]], DiffOutcome | None]:
        """``pulumi preview`` of that one-resource program: checked inputs, Check failures and the Diff."""
        declared = Declared(name, type_token, provider, dict(props))
        try:
            planned = self.deploy([declared], {name: state} if state else {}, preview=True).planned[name]
        except CheckFailed as failed:
            planned = failed.deployment.planned[name]  # type: ignore[attr-defined]
        return planned.checked or {}, planned.failures, planned.diff

    def refresh(self, state: ResourceState) -> ResourceState | None:
        return self.read(state)

    def import_(
        self, name: str, provider: ResourceProvider, props: Mapping[str, Any], type_token: str, id_: str
    ) -> UpResult:
        """``ResourceOptions(import_=id)`` in a one-resource program."""
        declared = Declared(name, type_token, provider, dict(props), import_id=id_)
        deployment = self.deploy([declared])
        planned = deployment.planned[name]
        return UpResult(deployment.stack[name], planned.operation, planned.diff, planned.steps)

    def get(
        self, name: str, provider: ResourceProvider, props: Mapping[str, Any], type_token: str, id_: str
    ) -> ResourceState:
        """``ResourceOptions(id=id)`` (``Resource.get``) in a one-resource program."""
        declared = Declared(name, type_token, provider, dict(props), read_id=id_)
        return self.deploy([declared]).stack[name]

    def destroy(self, state: ResourceState) -> None:
        """``pulumi destroy`` of a stack holding this one resource."""
        self.destroy_stack({state.name: state})


# --- one deployment -------------------------------------------------------------------------------------
_PENDING = " (pending delete)"  # state key of a replaced resource not deleted yet (the engine's Delete=true)


class _Run:
    """One ``pulumi up``/``preview``/``destroy``: steps generated and executed as the engine does."""

    def __init__(
        self,
        harness: DynamicProviderHarness,
        program: Sequence[Declared],
        stack: Stack,
        preview: bool,
        parallel: int,
        before_step: Callable[[str, str], None] | None,
    ) -> None:
        names = [d.name for d in program]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate resource names in the program: {names}")
        self.h = harness
        self.program = list(program)
        self.base = dict(stack)  # what a preview leaves as it was
        self.olds = stack
        self.preview = preview
        self.parallel = parallel
        self.before_step = before_step
        self.news: Stack = {}
        self.visible: dict[str, dict[str, Any]] = {}
        self.pending_deletes: list[ResourceState] = []
        self.deleted_early: set[str] = set()  # dependents of a delete-before-replace, created again later
        self.deleted: set[str] = set()  # resources of the old state deleted so far
        self.registered: set[str] = set()
        self.lock = threading.Lock()
        self.deployment = Deployment(stack={})

    # --- driver -------------------------------------------------------------------------------------
    def execute(self, *, refresh: bool) -> Deployment:
        try:
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                if refresh:
                    self._refresh_all(pool)
                self._register_all(pool)
                self._delete_the_rest(pool)
        except BaseException as exc:
            self.deployment.stack = self.base if self.preview else self._stack_so_far()
            exc.deployment = self.deployment  # type: ignore[attr-defined]
            raise
        self.deployment.stack = self.base if self.preview else self._stack_so_far()
        return self.deployment

    def _stack_so_far(self) -> Stack:
        stack = {k: v for k, v in self.olds.items() if k not in self.deleted}
        stack.update(self.news)
        stack.update({s.name + _PENDING: s for s in self.pending_deletes})
        return stack

    def _event(self, resource: str, step: str, phase: str) -> None:
        with self.lock:
            self.deployment.events.append(Event(resource, step, phase))

    def _step(self, resource: str, step: str, action: Callable[[], Any]) -> Any:
        if self.before_step is not None:
            self.before_step(resource, step)
        self._event(resource, step, "start")
        result = action()
        self._event(resource, step, "end")
        return result

    def _planned(self, name: str, operation: str) -> Planned:
        with self.lock:
            planned = self.deployment.planned.setdefault(name, Planned(operation))
            planned.operation = operation
            return planned

    # --- refresh (deployment_executor.go refresh) ---------------------------------------------------
    def _refresh_all(self, pool: ThreadPoolExecutor) -> None:
        def one(key: str, state: ResourceState) -> tuple[str, ResourceState | None]:
            return key, self._step(state.name, "refresh", lambda: self.h.read(state))

        for key, refreshed in pool.map(lambda item: one(*item), list(self.olds.items())):
            self._planned(key, "refresh").steps.append("refresh")
            if refreshed is None:
                del self.olds[key]  # gone: dropped from the state
            else:
                self.olds[key] = refreshed

    # --- registrations (deployment_executor.go handleSingleEvent, step_generator.go) -----------------
    def _dependencies(self, declared: Declared) -> set[str]:
        deps = references(declared.props) | set(declared.depends_on)
        unknown = deps - {d.name for d in self.program}
        if unknown:
            raise ValueError(f"{declared.name} refers to resources not in the program: {sorted(unknown)}")
        return deps

    def _register_all(self, pool: ThreadPoolExecutor) -> None:
        waiting = list(self.program)
        running: dict[Future[None], Declared] = {}
        done: set[str] = set()
        error: BaseException | None = None
        while waiting or running:
            if error is None:  # a failed step cancels the deployment: no new chains start
                for declared in [d for d in waiting if self._dependencies(d) <= done]:
                    waiting.remove(declared)
                    news, property_deps = self._program_inputs(declared)
                    running[pool.submit(self._chain, declared, news, property_deps)] = declared
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                declared = running.pop(future)
                failure = future.exception()
                if failure is not None:
                    error = error or failure
                else:
                    done.add(declared.name)
        if error is not None:
            raise error

    def _program_inputs(self, declared: Declared) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
        """What the SDK registers: resolved values and ``__provider`` (serialised here, in one thread)."""
        with self.lock:
            visible = {name: dict(seen) for name, seen in self.visible.items()}
            self.registered.add(declared.name)
        props = {k: resolve(v, visible, preview=self.preview) for k, v in declared.props.items()}
        property_deps = {k: tuple(sorted(references(v))) for k, v in declared.props.items() if references(v)}
        return program_inputs(declared.provider, props), property_deps

    def _chain(self, declared: Declared, news: dict[str, Any], property_deps: dict[str, tuple[str, ...]]) -> None:
        deps = tuple(sorted(self._dependencies(declared)))
        if declared.read_id is not None:
            state, id_known = self._read_step(declared, news), True
        elif declared.import_id is not None and declared.name not in self.olds:
            state, id_known = self._import_step(declared, news), True
        else:
            state, id_known = self._register_step(declared, news)
        state.dependencies, state.property_dependencies = deps, property_deps
        given = {k: v for k, v in news.items() if k != PROVIDER_KEY}
        seen = _seen_by_program(state, given, preview=self.preview, id_known=id_known)
        with self.lock:
            self.news[declared.name] = state
            self.visible[declared.name] = seen

    def _check(self, declared: Declared, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Any]:
        planned = self._planned(declared.name, "create")
        planned.steps.append("check")
        checked, failures = self._step(
            declared.name,
            "check",
            lambda: self.h.check(declared.type_token, declared.name, olds, news, preview=self.preview),
        )
        planned.checked, planned.failures = checked, failures
        if failures:
            raise CheckFailed(failures)
        return checked

    def _diff(self, declared: Declared, old: ResourceState, checked: Mapping[str, Any]) -> DiffOutcome:
        planned = self._planned(declared.name, "same")
        planned.steps.append("diff")
        diff: DiffOutcome = self._step(declared.name, "diff", lambda: self.h.diff(old, checked, preview=self.preview))
        planned.diff = diff
        return diff

    def _create(self, declared: Declared, checked: dict[str, Any], operation: str) -> tuple[ResourceState, bool]:
        self._planned(declared.name, operation).steps.append("create")
        if self.preview:  # supportsPreview is false: no RPC, the inputs stand for the outputs, no id yet
            return ResourceState(declared.type_token, declared.name, "", dict(checked), dict(checked)), False
        state = self._step(declared.name, "create", lambda: self.h.create(declared.type_token, declared.name, checked))
        return state, True

    def _delete(self, state: ResourceState, planned_as: str) -> None:
        planned = self._planned(state.name, planned_as)
        planned.steps.append("delete")
        if state.external or self.preview:  # external resources are only forgotten; previews change nothing
            return
        self._step(state.name, "delete", lambda: self.h.delete(state))

    def _register_step(self, declared: Declared, news: dict[str, Any]) -> tuple[ResourceState, bool]:
        old = self.olds.get(declared.name)
        with self.lock:
            recreating = declared.name in self.deleted_early
        if old is None or recreating or old.external:
            checked = self._check(declared, {}, news)
            if old is not None and old.external:
                self.pending_deletes.append(old)
            return self._create(declared, checked, "replace" if old is not None else "create")
        checked = self._check(declared, old.inputs, news)
        diff = self._diff(declared, old, checked)
        if diff.kind == "none":
            self._planned(declared.name, "same")
            return ResourceState(declared.type_token, declared.name, old.id, checked, old.outputs), True
        if not diff.replaces:
            return self._update(declared, old, checked)
        return self._replace(declared, old, news, diff)

    def _update(self, declared: Declared, old: ResourceState, checked: dict[str, Any]) -> tuple[ResourceState, bool]:
        self._planned(declared.name, "update").steps.append("update")
        if self.preview:  # no RPC: the new inputs stand for the outputs, the id is kept
            return ResourceState(declared.type_token, declared.name, old.id, dict(checked), dict(checked)), True
        return self._step(declared.name, "update", lambda: self.h.update(old, checked)), True

    def _replace(
        self, declared: Declared, old: ResourceState, news: dict[str, Any], diff: DiffOutcome
    ) -> tuple[ResourceState, bool]:
        checked = self._check(declared, {}, news)  # "recompute the default values" for the new resource
        self._planned(declared.name, "replace")
        delete_first = diff.delete_before_replace
        if declared.delete_before_replace is not None:
            delete_first = declared.delete_before_replace
        if not delete_first:
            created = self._create(declared, checked, "replace")
            with self.lock:
                self.pending_deletes.append(old)  # deleted with the other deletes, after every registration
            return created
        for dependent in reversed(self._dependent_replacements(old)):
            with self.lock:
                if dependent.name in self.deleted_early:
                    continue
                self.deleted_early.add(dependent.name)
            self._delete(dependent, "replace")
            with self.lock:
                self.deleted.add(dependent.name)
        self._delete(old, "replace")
        with self.lock:
            self.deleted.add(old.name)
        return self._create(declared, checked, "replace")

    def _dependent_replacements(self, root: ResourceState) -> list[ResourceState]:
        """step_generator.go calculateDependentReplacements: dependents a change of ``root`` would replace."""
        with self.lock:
            impossible = set(self.registered)
        replace_set, condemned = {root.name}, [root.name]
        to_replace: list[ResourceState] = []
        for state in self.olds.values():
            if not set(state.dependencies) & set(condemned) or state.name in impossible or state.external:
                continue
            condemned.append(state.name)  # a transitive dependent, in dependency order
            for_diff, hit = {}, False
            for key, value in state.inputs.items():
                if set(state.property_dependencies.get(key, ())) & replace_set:
                    value, hit = COMPUTED, True
                for_diff[key] = value
            if not hit:
                continue
            self._event(state.name, "diff", "start")
            diff = self.h.diff(state, for_diff, preview=True)  # allowUnknowns: always
            self._event(state.name, "diff", "end")
            if diff.replaces:
                to_replace.append(state)
                replace_set.add(state.name)
        return to_replace

    def _read_step(self, declared: Declared, news: dict[str, Any]) -> ResourceState:
        """step.go ReadStep.Apply (also in previews)."""
        assert declared.read_id is not None
        read_id = declared.read_id
        self._planned(declared.name, "read").steps.append("read")
        state: ResourceState = self._step(
            declared.name,
            "read",
            lambda: self.h.read_resource(declared.type_token, declared.name, read_id, news),
        )
        old = self.olds.get(declared.name)
        if old is not None and not old.external:
            with self.lock:
                self.pending_deletes.append(old)
        return state

    def _import_step(self, declared: Declared, news: dict[str, Any]) -> ResourceState:
        """step.go ImportStep.Apply, then continueStepsFromImport: Check and Diff against what was read."""
        assert declared.import_id is not None
        import_id = declared.import_id
        planned = self._planned(declared.name, "import")
        planned.steps.append("import")
        read_id, outputs, inputs = self._step(
            declared.name, "import", lambda: self.h.import_read(declared.type_token, declared.name, import_id)
        )
        if not outputs:
            raise LookupError(f"resource '{import_id}' does not exist")
        if inputs is None:
            raise RuntimeError("provider does not support importing resources; please try updating the plugin")
        imported = ResourceState(declared.type_token, declared.name, read_id or import_id, inputs, outputs)
        checked = self._check(declared, imported.inputs, news)
        diff = self._diff(declared, imported, checked)
        self._planned(declared.name, "import")
        if diff.replaces:
            raise RuntimeError("previously-imported resources that still specify an ID may not be replaced")
        if diff.kind == "none":
            return ResourceState(declared.type_token, declared.name, imported.id, checked, outputs)
        return self._update(declared, imported, checked)[0]

    # --- deletes (step_generator.go GenerateDeletes + ScheduleDeletes) ------------------------------
    def _delete_the_rest(self, pool: ThreadPoolExecutor) -> None:
        names = {d.name for d in self.program}
        condemned = [s for k, s in self.olds.items() if k not in names and k not in self.deleted]
        condemned += self.pending_deletes
        for antichain in schedule_deletes(condemned):
            operation = {s.name: "replace" if s.name in names else "delete" for s in antichain}
            futures = [pool.submit(self._delete, state, operation[state.name]) for state in antichain]
            failures = [f.exception() for f in futures if f.exception() is not None]
            if failures:
                raise failures[0]  # type: ignore[misc]
            with self.lock:
                for state in antichain:
                    if state in self.pending_deletes:
                        self.pending_deletes.remove(state)
                    else:
                        self.deleted.update(k for k, old in self.olds.items() if old is state)


def schedule_deletes(condemned: Iterable[ResourceState]) -> list[list[ResourceState]]:
    """Antichains of deletions, dependents first; each antichain may run in parallel (ScheduleDeletes)."""
    remaining = list(condemned)
    antichains: list[list[ResourceState]] = []
    while remaining:
        names = {s.name for s in remaining}
        ready = [s for s in remaining if not (set(s.dependencies) - {s.name}) & names]
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(names)}")
        antichains.append(ready)
        remaining = [s for s in remaining if s not in ready]
    antichains.reverse()
    return antichains

"""An engine stand-in for Pulumi dynamic providers: drives the SDK's own provider server over gRPC.

The Pulumi CLI (and so the engine) cannot be installed here, so this does what the engine does with a Python
dynamic provider (``pkg/resource/plugin/provider_plugin.go``):

- launches ``python -u -m pulumi.dynamic`` (what ``pulumi-resource-pulumi-python`` runs) in the project
  directory, reads the port from the first line of stdout, calls GetPluginInfo and Configure (stack config with
  ``project:key`` names);
- builds a resource's inputs as the program would (``__provider`` from ``serialize_provider``, a secret unless
  the provider opts out; properties through ``rpc.serialize_properties``);
- marshals like the engine: the SDK answers ``acceptSecrets=False``, so secrets are removed before sending and
  restored on replies (``annotateSecrets``: an output whose same-named input was secret is secret again);
  unknowns are sent only to Check and Diff (preview); numbers travel as protobuf doubles;
- sequences operations like ``pulumi up``/``preview``/``refresh``/``destroy``, including replacement order
  (``deleteBeforeReplace``) and the engine's own input comparison when Diff answers DIFF_UNKNOWN.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Mapping
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
    type_token: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


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
    operation: str  # create | update | replace | same
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
    """The engine's fallback when Diff says DIFF_UNKNOWN: compare inputs."""
    return reveal({k: v for k, v in olds.items() if k != PROVIDER_KEY}) != reveal(
        {k: v for k, v in news.items() if k != PROVIDER_KEY}
    )


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
                olds=self._wire(olds),
                news=self._wire(news, preview=preview),
            ),
        )
        failures = [(f.property, f.reason) for f in response.failures]
        return annotate_secrets(unmarshal(response.inputs), news), failures

    def diff(
        self,
        state: ResourceState,
        news: Mapping[str, Any],
        *,
        preview: bool = False,
    ) -> DiffOutcome:
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
        return DiffOutcome(
            response.changes, list(response.replaces), response.deleteBeforeReplace, list(response.stables)
        )

    def create(self, type_token: str, name: str, inputs: Mapping[str, Any]) -> ResourceState:
        response = self._call(
            "Create",
            provider_pb2.CreateRequest(
                urn=self._urn(type_token, name), name=name, type=type_token, properties=self._wire(inputs)
            ),
        )
        outputs = annotate_secrets(unmarshal(response.properties), inputs)
        return ResourceState(type_token, name, response.id, dict(inputs), outputs)

    def read(self, state: ResourceState, *, import_only: bool = False) -> ResourceState | None:
        """Refresh (prior outputs sent) or import (only the program's inputs sent); None when gone."""
        response = self._call(
            "Read",
            provider_pb2.ReadRequest(
                id=state.id,
                urn=self._urn(state.type_token, state.name),
                name=state.name,
                type=state.type_token,
                properties=self._wire({} if import_only else state.outputs),
                inputs=self._wire(state.inputs),
            ),
        )
        if not response.id:
            return None
        outputs = annotate_secrets(unmarshal(response.properties), state.inputs)
        inputs = unmarshal(response.inputs) if response.HasField("inputs") else dict(state.inputs)
        inputs = annotate_secrets(inputs, state.inputs)
        return ResourceState(state.type_token, state.name, response.id, inputs, outputs)

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

    # --- engine workflows -----------------------------------------------------------------------------
    def up(
        self,
        name: str,
        provider: ResourceProvider,
        props: Mapping[str, Any],
        type_token: str,
        state: ResourceState | None = None,
    ) -> UpResult:
        news = program_inputs(provider, props)
        checked, failures = self.check(type_token, name, state.inputs if state else {}, news)
        if failures:
            raise CheckFailed(failures)
        if state is None:
            return UpResult(self.create(type_token, name, checked), "create", steps=["check", "create"])
        diff = self.diff(state, checked)
        kind = diff.kind
        if kind == "unknown":
            kind = "update" if inputs_differ(state.inputs, checked) else "none"
        if kind == "none":
            same = ResourceState(type_token, name, state.id, checked, state.outputs)
            return UpResult(same, "same", diff, ["check", "diff"])
        if kind == "update":
            return UpResult(self.update(state, checked), "update", diff, ["check", "diff", "update"])
        if diff.delete_before_replace:
            self.delete(state)
            created = self.create(type_token, name, checked)
            return UpResult(created, "replace", diff, ["check", "diff", "delete", "create"])
        created = self.create(type_token, name, checked)
        self.delete(state)
        return UpResult(created, "replace", diff, ["check", "diff", "create", "delete"])

    def preview(
        self,
        name: str,
        provider: ResourceProvider,
        props: Mapping[str, Any],
        type_token: str,
        state: ResourceState | None = None,
    ) -> tuple[dict[str, Any], list[tuple[str, str]], DiffOutcome | None]:
        news = program_inputs(provider, props)
        checked, failures = self.check(type_token, name, state.inputs if state else {}, news, preview=True)
        if failures or state is None:
            return checked, failures, None
        return checked, failures, self.diff(state, checked, preview=True)

    def refresh(self, state: ResourceState) -> ResourceState | None:
        return self.read(state)

    def import_(
        self, name: str, provider: ResourceProvider, props: Mapping[str, Any], type_token: str, id_: str
    ) -> tuple[ResourceState, DiffOutcome]:
        """``ResourceOptions(import_=id)``: Read with the program's inputs, then Check and Diff must agree."""
        news = program_inputs(provider, props)
        found = self.read(ResourceState(type_token, name, id_, news, {}), import_only=True)
        if found is None:
            raise LookupError(f"resource {id_!r} does not exist")
        checked, failures = self.check(type_token, name, found.inputs, news)
        if failures:
            raise CheckFailed(failures)
        diff = self.diff(found, checked)
        return ResourceState(type_token, name, found.id, checked, found.outputs), diff

    def destroy(self, state: ResourceState) -> None:
        self.delete(state)

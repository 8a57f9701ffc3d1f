"""Instance, Volume and SshKey: thin ``pulumi.dynamic.Resource`` subclasses over the one generic provider.

Each takes either an ``*Args`` object or the same fields as keyword arguments. ``provider`` picks the cloud
(``datacrunch``, ``voltagepark``, ...); when omitted it comes from the stack config ``gpucloud:provider``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import pulumi
import pulumi.dynamic

from pulumi_gpucloud._provider import CONFIG_NAMESPACE, INPUTS, SECRET_OUTPUTS, GpuCloudProvider


@dataclass
class InstanceArgs:
    """Inputs of :class:`Instance`. ``instance_type``/``location``/``image``/``ssh_keys`` changes replace it."""

    instance_type: pulumi.Input[str]
    name: pulumi.Input[str] | None = None  # default: the Pulumi resource name
    provider: pulumi.Input[str] | None = None
    image: pulumi.Input[str] | None = None
    location: pulumi.Input[str] | None = None
    ssh_keys: pulumi.Input[list[pulumi.Input[str]]] | None = None  # names, ids or public key texts
    volumes: pulumi.Input[list[pulumi.Input[str]]] | None = None
    tags: pulumi.Input[dict[str, pulumi.Input[str]]] | None = None
    startup_script: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None  # always stored as a secret
    wait_for_ssh: pulumi.Input[bool] | None = None  # create/update also wait until SSH answers
    wait_timeout: pulumi.Input[float] | None = None  # seconds (default 600)
    # Deleting (or replacing) it also deletes its OS volume where that is billed separately (DataCrunch);
    # True keeps that volume, detached and billed until deleted.
    keep_os_volume: pulumi.Input[bool] | None = None


@dataclass
class VolumeArgs:
    size_gb: pulumi.Input[int]
    name: pulumi.Input[str] | None = None
    provider: pulumi.Input[str] | None = None
    volume_type: pulumi.Input[str] | None = None
    location: pulumi.Input[str] | None = None
    attach_to: pulumi.Input[str] | None = None  # instance name or id


@dataclass
class SshKeyArgs:
    public_key: pulumi.Input[str]
    name: pulumi.Input[str] | None = None
    provider: pulumi.Input[str] | None = None


def _default_provider() -> str | None:
    return pulumi.Config(CONFIG_NAMESPACE).get("provider")


class _GpuCloudResource(pulumi.dynamic.Resource):
    _kind: ClassVar[str]
    provider: pulumi.Output[str]
    name: pulumi.Output[str]

    def _register(
        self, resource_name: str, args: dict[str, Any], opts: pulumi.ResourceOptions | None, outputs: tuple[str, ...]
    ) -> None:
        props: dict[str, Any] = {k: v for k, v in args.items() if v is not None}
        props.setdefault("name", resource_name)
        if "provider" not in props:
            default = _default_provider()
            if default is None:
                raise ValueError(
                    f"{type(self).__name__} {resource_name!r}: set provider= or the stack config gpucloud:provider"
                )
            props["provider"] = default
        for name, field in INPUTS[self._kind].items():
            if field.secret and props.get(name) is not None:
                props[name] = pulumi.Output.secret(props[name])
        for name in (*INPUTS[self._kind], *outputs):
            props.setdefault(name, None)  # only keys present here become output attributes
        secret = pulumi.ResourceOptions(additional_secret_outputs=list(SECRET_OUTPUTS[self._kind]))
        super().__init__(GpuCloudProvider(self._kind), resource_name, props, pulumi.ResourceOptions.merge(secret, opts))


def _args(args: Any, kwargs: dict[str, Any], cls: type) -> dict[str, Any]:
    if args is not None and kwargs:
        raise TypeError(f"pass either a {cls.__name__} or keyword arguments, not both")
    if args is None:
        unknown = set(kwargs) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unexpected arguments: {sorted(unknown)}")
        return dict(kwargs)
    return {f.name: getattr(args, f.name) for f in fields(args)}  # shallow: values may be Outputs


class Instance(_GpuCloudResource, module="gpucloud", name="Instance"):
    """A GPU instance; created when running (and answering SSH with ``wait_for_ssh``), deleted when gone."""

    _kind = "instance"
    instance_type: pulumi.Output[str]
    image: pulumi.Output[str | None]
    location: pulumi.Output[str | None]
    ssh_keys: pulumi.Output[list[str] | None]
    volumes: pulumi.Output[list[str] | None]
    tags: pulumi.Output[dict[str, str]]
    startup_script: pulumi.Output[str | None]
    password: pulumi.Output[str | None]
    wait_for_ssh: pulumi.Output[bool]
    wait_timeout: pulumi.Output[float]
    keep_os_volume: pulumi.Output[bool]
    status: pulumi.Output[str]
    raw_status: pulumi.Output[str]
    gpu_model: pulumi.Output[str | None]
    gpu_count: pulumi.Output[int]
    public_ip: pulumi.Output[str | None]
    ssh_host: pulumi.Output[str | None]
    ssh_port: pulumi.Output[int | None]
    ssh_user: pulumi.Output[str | None]
    ssh_key_ids: pulumi.Output[list[str]]
    volume_ids: pulumi.Output[list[str]]
    price_per_hour: pulumi.Output[float | None]
    created_at: pulumi.Output[str | None]
    root_password: pulumi.Output[str | None]  # secret; set when the provider generates one

    OUTPUTS: ClassVar[tuple[str, ...]] = (
        "status",
        "raw_status",
        "gpu_model",
        "gpu_count",
        "public_ip",
        "ssh_host",
        "ssh_port",
        "ssh_user",
        "ssh_key_ids",
        "volume_ids",
        "price_per_hour",
        "created_at",
        "root_password",
    )

    def __init__(
        self,
        resource_name: str,
        args: InstanceArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self._register(resource_name, _args(args, kwargs, InstanceArgs), opts, self.OUTPUTS)


class Volume(_GpuCloudResource, module="gpucloud", name="Volume"):
    """A block volume; grows in place where the API allows, never shrinks."""

    _kind = "volume"
    size_gb: pulumi.Output[int]
    volume_type: pulumi.Output[str | None]
    location: pulumi.Output[str | None]
    attach_to: pulumi.Output[str | None]
    status: pulumi.Output[str]
    attached_to: pulumi.Output[list[str]]
    price_per_hour: pulumi.Output[float | None]
    created_at: pulumi.Output[str | None]

    OUTPUTS: ClassVar[tuple[str, ...]] = ("status", "attached_to", "price_per_hour", "created_at")

    def __init__(
        self,
        resource_name: str,
        args: VolumeArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self._register(resource_name, _args(args, kwargs, VolumeArgs), opts, self.OUTPUTS)


class SshKey(_GpuCloudResource, module="gpucloud", name="SshKey"):
    """An account SSH key; new content replaces it (providers cannot edit keys)."""

    _kind = "ssh_key"
    public_key: pulumi.Output[str]
    fingerprint: pulumi.Output[str | None]

    OUTPUTS: ClassVar[tuple[str, ...]] = ("fingerprint",)

    def __init__(
        self,
        resource_name: str,
        args: SshKeyArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self._register(resource_name, _args(args, kwargs, SshKeyArgs), opts, self.OUTPUTS)

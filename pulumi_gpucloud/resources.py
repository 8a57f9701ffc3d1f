"""Instance, Volume and SshKey: thin ``pulumi.dynamic.Resource`` subclasses over the one generic provider.

Each takes either an ``*Args`` object or the same fields as keyword arguments. ``provider`` picks the cloud
(``datacrunch``, ``voltagepark``, ...); when omitted it comes from the stack config ``gpucloud:provider``.

Existing resources: ``adopt`` (on by default) lets a create take over a resource of the same name, and
``X.get(name, id, provider=...)`` reads one without managing it. ``ResourceOptions(import_=...)`` and
``pulumi import`` cannot work with a dynamic provider: the engine's import Read sends the id only, and the SDK's
provider server needs the serialised provider from the resource's properties to answer any RPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self, cast

import pulumi
import pulumi.dynamic

from pulumi_gpucloud._inputs import Field
from pulumi_gpucloud._pickling import pickler_restored
from pulumi_gpucloud._placement import KIND as PLACED
from pulumi_gpucloud._placement import PLACED_INPUTS, PLACED_OUTPUTS, PlacementProvider
from pulumi_gpucloud._provider import CONFIG_NAMESPACE, GET_MARKER, INPUTS, SECRET_OUTPUTS, GpuCloudProvider


@dataclass
class InstanceArgs:
    """Inputs of :class:`Instance`. ``instance_type``/``location``/``image``/``ssh_keys`` changes replace it."""

    instance_type: pulumi.Input[str] | None = None  # required unless provider="auto"
    name: pulumi.Input[str] | None = None  # default: the Pulumi resource name
    # "vm" (default) or "bare_metal" (Voltage Park bare-metal rentals); other providers refuse bare_metal at
    # preview. A change replaces the instance. With provider="auto" it is a requirement: "vm" (default),
    # "bare_metal" or "any" (the kinds of offer placement may choose).
    kind: pulumi.Input[str] | None = None
    provider: pulumi.Input[str] | None = None  # "auto": placed by the requirement below (gpucloud.placement)
    image: pulumi.Input[str] | None = None
    location: pulumi.Input[str] | None = None
    ssh_keys: pulumi.Input[list[pulumi.Input[str]]] | None = None  # names, ids or public key texts
    volumes: pulumi.Input[list[pulumi.Input[str]]] | None = None
    tags: pulumi.Input[dict[str, pulumi.Input[str]]] | None = None
    startup_script: pulumi.Input[str] | None = None
    password: pulumi.Input[str] | None = None  # always stored as a secret
    wait_for_ssh: pulumi.Input[bool] | None = None  # create/update also wait until SSH answers
    wait_timeout: pulumi.Input[float] | None = None  # seconds (default 600)
    adopt: pulumi.Input[bool] | None = None  # default True: create takes over an instance of this name
    # Deleting (or replacing) it also deletes its OS volume where that is billed separately (DataCrunch);
    # True keeps that volume, detached and billed until deleted.
    keep_os_volume: pulumi.Input[bool] | None = None
    # None: power is not managed. "running", "stopped", or "stopped_disassociated" (Voltage Park VMs: stopped
    # with the compute released, billed for storage only; refused at preview elsewhere). Changes in place.
    power_state: pulumi.Input[str] | None = None
    # Create-only (a change replaces it): a spot instance (DataCrunch), what its OS volume does when the provider
    # discontinues it (keep_detached / move_to_trash / delete_permanently; needs os_disk_size_gb), the OS disk size.
    # With provider="auto" spot is a requirement: "never" (default), "allowed" or "required" (True: required).
    spot: pulumi.Input[bool | str] | None = None
    on_spot_discontinue: pulumi.Input[str] | None = None
    os_disk_size_gb: pulumi.Input[int] | None = None
    # A spot instance the provider discontinued (status "discontinued" after a refresh) is replaced on the next
    # update; without it, it is kept in the state as it is.
    recreate_discontinued: pulumi.Input[bool] | None = None
    # --- placement (provider="auto"): keep this block together. The cheapest matching offer with capacity,
    # failing over when a provider has none; the choice is in the outputs placed_provider and placement.
    gpu: pulumi.Input[str] | None = None  # any spelling or part of one: h100, a100-80gb
    gpu_count: pulumi.Input[int] | None = None  # exactly; default 1 with gpu
    min_vcpus: pulumi.Input[int] | None = None
    min_memory_gb: pulumi.Input[float] | None = None
    min_disk_gb: pulumi.Input[float] | None = None  # stated by the offer, or chosen at create (DataCrunch)
    locations: pulumi.Input[list[pulumi.Input[str]]] | None = None  # allowed; empty: any
    max_price: pulumi.Input[float] | None = None  # USD per hour, at the price it is bought (spot or on-demand)
    providers: pulumi.Input[list[pulumi.Input[str]]] | None = None  # allowed, in order of preference
    images: pulumi.Input[dict[str, pulumi.Input[str]]] | None = None  # provider -> image, over image
    force_replace: pulumi.Input[bool] | None = None  # replace it when it no longer meets the requirement


@dataclass
class VolumeArgs:
    size_gb: pulumi.Input[int]
    name: pulumi.Input[str] | None = None
    provider: pulumi.Input[str] | None = None
    volume_type: pulumi.Input[str] | None = None
    location: pulumi.Input[str] | None = None
    attach_to: pulumi.Input[str] | None = None  # instance name or id (e.g. box.name)
    adopt: pulumi.Input[bool] | None = None  # default True: create takes over a volume of this name


@dataclass
class SshKeyArgs:
    public_key: pulumi.Input[str]
    name: pulumi.Input[str] | None = None
    provider: pulumi.Input[str] | None = None
    adopt: pulumi.Input[bool] | None = None  # default True: create takes over a key of this name


def _default_provider() -> str | None:
    return pulumi.Config(CONFIG_NAMESPACE).get("provider")


class _GpuCloudResource(pulumi.dynamic.Resource):
    _kind: ClassVar[str]
    provider: pulumi.Output[str]
    name: pulumi.Output[str]

    OUTPUTS: ClassVar[tuple[str, ...]]

    def _register(
        self,
        resource_name: str,
        args: dict[str, Any],
        opts: pulumi.ResourceOptions | None,
        outputs: tuple[str, ...],
        *,
        read: bool = False,
        kind: str | None = None,
    ) -> None:
        kind = kind or self._kind
        props: dict[str, Any] = {k: v for k, v in args.items() if v is not None}
        if not read:
            props.setdefault("name", resource_name)
        if "provider" not in props:
            default = _default_provider()
            if default is None:
                raise ValueError(
                    f"{type(self).__name__} {resource_name!r}: set provider= or the stack config gpucloud:provider"
                )
            props["provider"] = default
        schema, secrets, provider = _parts(kind)
        for name, field in schema.items():
            if field.secret and props.get(name) is not None:
                props[name] = pulumi.Output.secret(props[name])
        for name in (*schema, *outputs):
            props.setdefault(name, None)  # only keys present here become output attributes
        secret = pulumi.ResourceOptions(additional_secret_outputs=list(secrets))
        # The SDK serialises the provider synchronously inside __init__; see _pickling for why it is guarded.
        with pickler_restored():
            super().__init__(provider, resource_name, props, pulumi.ResourceOptions.merge(secret, opts))

    @classmethod
    def get(
        cls,
        resource_name: str,
        id: pulumi.Input[str],  # the name every Pulumi get() uses
        *,
        provider: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> Self:
        """Read an existing resource by its id into the program, without managing it.

        Pulumi's ReadResource: the resource's outputs (``name``, ``status``, ``ssh_host``...) come from the API on
        every ``up`` and ``preview``; ``destroy`` forgets it and leaves it running. An id that does not exist
        fails the deployment. ``provider`` defaults to the stack config ``gpucloud:provider``.
        """
        resource = cls.__new__(cls)
        read = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id))
        resource._register(resource_name, {"provider": provider, GET_MARKER: True}, read, cls.OUTPUTS, read=True)
        return resource


def _parts(kind: str) -> tuple[Mapping[str, Field], tuple[str, ...], pulumi.dynamic.ResourceProvider]:
    """A kind's inputs, its always-secret outputs and its dynamic provider (a placed instance is an instance)."""
    if kind == PLACED:
        return PLACED_INPUTS, SECRET_OUTPUTS["instance"], PlacementProvider()
    return INPUTS[kind], SECRET_OUTPUTS[kind], GpuCloudProvider(kind)


def _tied_to_its_resources(value: pulumi.Output[str]) -> pulumi.Output[str]:
    """``value``, unknown whenever the id of a resource it comes from is unknown.

    ``box.name`` stays known in a preview even when ``box`` is about to be replaced (the engine hands back an
    instance's inputs as its outputs), so a volume attached by that name would preview as unchanged and then be
    re-attached during ``up``. Tied to ``box.id``, which a preview leaves unknown for a resource it creates or
    replaces, the volume's Diff sees an unknown ``attach_to`` and previews the update ``up`` then makes.
    """

    async def tied() -> pulumi.Output[str]:
        owners = [r for r in await value.resources() if isinstance(r, pulumi.CustomResource)]
        return pulumi.Output.all(value, *(owner.id for owner in owners)).apply(lambda values: values[0])

    return cast(pulumi.Output[str], pulumi.Output.from_input(tied()))


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
    kind: pulumi.Output[str]
    power_state: pulumi.Output[str | None]
    compute_released: pulumi.Output[bool]
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
    spot: pulumi.Output[bool]
    on_spot_discontinue: pulumi.Output[str | None]
    os_disk_size_gb: pulumi.Output[int | None]
    recreate_discontinued: pulumi.Output[bool]
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
    placed_provider: pulumi.Output[str]  # provider="auto": where it was placed
    placement: pulumi.Output[dict[str, Any]]  # provider="auto": the offer, failed attempts, requirement

    OUTPUTS: ClassVar[tuple[str, ...]] = (
        "status",
        "raw_status",
        "compute_released",
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
        values = _args(args, kwargs, InstanceArgs)
        if values.get("provider") == "auto":
            self._register(resource_name, values, opts, (*self.OUTPUTS, *PLACED_OUTPUTS), kind=PLACED)
            return
        placing = sorted(k for k in PLACED_INPUTS if k not in INPUTS["instance"] and values.get(k) is not None)
        if placing:
            raise ValueError(f"Instance {resource_name!r}: {', '.join(placing)} need provider='auto'")
        self._register(resource_name, {k: v for k, v in values.items() if k in INPUTS["instance"]}, opts, self.OUTPUTS)


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
        inputs = _args(args, kwargs, VolumeArgs)
        if isinstance(inputs.get("attach_to"), pulumi.Output):
            inputs["attach_to"] = _tied_to_its_resources(inputs["attach_to"])
        self._register(resource_name, inputs, opts, self.OUTPUTS)


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

"""Voltage Park On-Demand API: bearer token, ``offset``/``limit`` pages, instant-deploy VMs from presets.

Mapping choices (the API has no direct equivalent for these):
- instance type: VMs are deployed from *presets*; an instance's type is its shape,
  ``<gpus>x-<gpu model>-<vcpus>vcpu-<ram>gb``. A spec may name the shape or a preset id.
- tags: the API keeps a list of strings; ``{"k": "v"}`` is stored as ``"k=v"`` and a bare tag reads as ``{tag: ""}``.
- location: instant deploy places the VM itself, so it cannot be chosen; it is read back from the hostnode.
- volumes: shared storage, "attached" to VMs through its ``order_ids``.
- startup script: sent as cloud-init that writes the script to a file and runs it.
- bare metal (``kind: bare_metal``): a rental of whole 8-GPU nodes, typed
  ``baremetal-<gpus>x-<gpu model>-<infiniband|ethernet>``; an instance is one node (the offers, from
  ``/bare-metal/locations``). Its location can be chosen (by id); the rental list does not report it, so it reads
  back empty. SSH goes to the first node's ``public_ip`` at ``ssh_port`` (default 22) as the rental's
  ``username``. The doc has no GET for one rental: the list is read instead. A rental id and a VM id look alike,
  so an operation on an id tries the VM endpoint first and the bare-metal one on a 404 (ids already seen as
  rentals go straight there).
- ``stopped_disassociated``: a VM stopped with its compute released (``StoppedDisassociated``), billed for
  storage only; starting it again needs free capacity on its hostnode. Bare-metal rentals only stop.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from gpucloud import errors
from gpucloud.auth import BearerAuth, HeaderTokenAuth
from gpucloud.capabilities import Capability as C
from gpucloud.config import ProviderConfig
from gpucloud.engine import unique_by_name
from gpucloud.httputil import url_path
from gpucloud.models import (
    CreatedInstance,
    Image,
    Instance,
    InstanceKind,
    InstanceSpec,
    Location,
    LocationAvailability,
    Offer,
    SshKey,
    SshKeySpec,
    Status,
    Volume,
    VolumeSpec,
)
from gpucloud.pagination import Page, fetch_offset_pages, in_parallel
from gpucloud.providers.base import (
    UUID_SHAPE,
    IdKind,
    IdShape,
    Provider,
    as_float,
    build_error,
    json_body,
)
from gpucloud.transport import Transport
from gpucloud.validation import DISPLAY_NAME_PATTERN, DISPLAY_NAME_RULE, choose_from, validate_name
from gpucloud.wire import Count, Id, Text, When, Wire

# The API's VM statuses are Running, Stopped, StoppedDisassociated (stopped, compute released), Outbid (spot
# only), Relocating and Terminated. The reference lists no transitional states; the ones below are accepted so
# a deploy/stop/terminate in progress reads as such instead of "unknown" (the emulator reports them).
_STATUS = {
    "provisioning": Status.PENDING,
    "starting": Status.PENDING,
    "relocating": Status.PENDING,
    "stopping": Status.STOPPING,
    "terminating": Status.DELETING,
    "running": Status.RUNNING,
    "pending": Status.PENDING,  # bare-metal rentals (deploying, rebooting)
    "stopped": Status.STOPPED,
    "stoppeddisassociated": Status.STOPPED,
    "outbid": Status.STOPPED,
    "terminated": Status.DELETED,
}

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# Page-size maxima from the API reference, per list endpoint.
_PAGE_MAX = {
    "virtual-machines/": 100,
    "bare-metal/": 100,
    "storage/": 100,
    "organization/ssh-keys": 150,
    "locations/": 15,
}
_NO_CAPACITY: dict[str, type[errors.GpuCloudError]] = {"no_capacity": errors.NoCapacity}
STARTUP_SCRIPT_PATH = "/var/lib/gpucloud/startup.sh"
BARE_METAL_PREFIX = "baremetal-"
_BARE_METAL_TYPE = re.compile(r"baremetal-(?P<gpus>[0-9]+)x-(?P<model>.+)-(?P<network>infiniband|ethernet)")
_NETWORKS = ("infiniband", "ethernet")


W = TypeVar("W", bound=Wire)
R = TypeVar("R")


# --- answer shapes (what this adapter reads; see gpucloud.wire) ---------------------------------
class _GpuCount(Wire):
    count: Count = None


class _Resources(Wire):
    gpus: dict[str, _GpuCount] | None = None
    vcpu_count: Count = None
    ram_gb: Count = None


class _PortForward(Wire):
    internal_port: Count = None
    external_port: Count = None


class _Pricing(Wire):
    pass


class _Vm(Wire):
    id: Id
    name: Text = None
    status: Text = None
    resources: _Resources | None = None
    port_forwards: list[_PortForward] | None = None
    hostnode_id: Id | None = None
    operating_system: Text = None
    public_ip: Text = None
    tags: list[StrictStr] | None = None
    pricing: _Pricing | None = None
    timestamp_creation: When = None


class _Hostnode(Wire):
    id: Id


class _Location(Wire):
    id: Id
    hostnodes: list[_Hostnode] = Field(default_factory=list)
    city: Text = None
    region: Text = None
    country: Text = None


class _Preset(Wire):
    id: StrictStr
    resources: _Resources
    operating_system: Text = None
    location_ids_with_availability: list[StrictStr] | None = None


class _Storage(Wire):
    id: Id
    name: Text = None
    size_in_gb: Count = None
    status: Text = None
    order_ids: list[Id] | None = None


class _Key(Wire):
    id: Id
    name: Text = None
    content: Text = None


class _Deployed(Wire):
    vm_id: Id


class _NodeSpecs(Wire):
    gpu_model: Text = None
    gpu_count: Count = None
    ram_gb: Count = None


class _Node(Wire):
    public_ip: Text = None


class _Rental(Wire):
    id: Id
    name: Text = None
    status: Text = None
    power_status: Text = None
    node_count: Count = None
    specs_per_node: _NodeSpecs | None = None
    rate_hourly: Text = None
    network_type: Text = None
    username: Text = None
    node_networking: list[_Node] | None = None
    tags: list[StrictStr] | None = None
    creation_timestamp: When = None


class _BareMetalLocation(Wire):
    id: Id
    gpu_count_ethernet: Count = None
    gpu_price_ethernet: StrictFloat | StrictInt | None = None
    gpu_count_infiniband: Count = None
    gpu_price_infiniband: StrictFloat | StrictInt | None = None
    specs_per_node: _NodeSpecs | None = None


class _Rented(Wire):
    rental_id: Id


class _Page(Wire, Generic[W]):
    """One page of an ``offset``/``limit`` list: without ``results`` it is malformed, never empty."""

    results: list[W]
    total_result_count: Count = None
    has_next: StrictBool | None = None


_PAGES: dict[str, Any] = {
    "virtual-machines/": _Page[_Vm],
    "bare-metal/": _Page[_Rental],
    "storage/": _Page[_Storage],
    "organization/ssh-keys": _Page[_Key],
    "locations/": _Page[_Location],
}


class _DocumentedHeaderAuth(httpx.Auth):
    """The key in the header each endpoint's doc example shows: ``x-api-token`` for the organization SSH-key and
    storage calls, ``Authorization: Bearer`` for the rest (the API may refuse the other one)."""

    _API_TOKEN_PATHS = ("organization/ssh-keys", "storage")

    def __init__(self, token: str, base_path: str) -> None:
        self._base_path = base_path.rstrip("/") + "/"
        self._bearer = BearerAuth(token)
        self._api_key = HeaderTokenAuth("x-api-token", token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        endpoint = request.url.path.removeprefix(self._base_path)
        chosen = self._api_key if endpoint.startswith(self._API_TOKEN_PATHS) else self._bearer
        yield from chosen.auth_flow(request)


def first_gpu(resources: dict[str, Any]) -> tuple[str | None, int]:
    """VMs carry one GPU model: ``{"gpus": {"h100-sxm5-80gb": {"count": 1}}}`` -> ("h100-sxm5-80gb", 1)."""
    gpus: dict[str, dict[str, Any]] = resources.get("gpus") or {}
    for model, info in gpus.items():
        return model, int(info.get("count") or 0)
    return None, 0


def short_shape_name(resources: dict[str, Any]) -> str:
    model, count = first_gpu(resources)
    return f"{count}x-{model or 'cpu'}"


def shape_name(resources: dict[str, Any]) -> str:
    return f"{short_shape_name(resources)}-{resources.get('vcpu_count', 0)}vcpu-{resources.get('ram_gb', 0)}gb"


def bare_metal_type(gpus: int, model: str, network: str) -> str:
    return f"{BARE_METAL_PREFIX}{gpus}x-{model}-{network}"


def parse_bare_metal_type(value: str) -> tuple[int, str, str] | None:
    """(GPUs, GPU model, network type) of a bare-metal instance type, or None when it is not one."""
    match = _BARE_METAL_TYPE.fullmatch(value)
    if match is None:
        return None
    return int(match["gpus"]), match["model"], match["network"]


def _location_name(location: dict[str, Any]) -> str:
    return str(location.get("city") or location.get("region") or location["id"])


def tags_to_list(tags: dict[str, str]) -> list[str]:
    return [f"{k}={v}" if v else k for k, v in sorted(tags.items())]


def tags_from_list(tags: list[str] | None) -> dict[str, str]:
    pairs = (t.split("=", 1) if "=" in t else (t, "") for t in tags or [])
    return {k: v for k, v in pairs}


class VoltagePark(Provider):
    name = "voltagepark"
    title = "Voltage Park"
    auth_kinds = "bearer; x-api-token for SSH keys, storage"
    ssh_endpoint = "public_ip + port forward of 22"
    default_ssh_user = "ubuntu"
    # Virtual machines, storage volumes and organization SSH keys are all addressed by UUID.
    id_shapes: ClassVar[Mapping[IdKind, IdShape]] = {
        "instance": UUID_SHAPE,
        "volume": UUID_SHAPE,
        "ssh_key": UUID_SHAPE,
    }
    capabilities = frozenset(
        {
            C.INSTANCES,
            C.INSTANCE_START_STOP,
            C.INSTANCE_RENAME,
            C.INSTANCE_TAGS,
            C.INSTANCE_TAG_UPDATE,
            C.INSTANCE_STARTUP_SCRIPT,
            C.INSTANCE_PASSWORD,
            C.INSTANCE_BARE_METAL,
            C.INSTANCE_STOP_RELEASED,
            C.VOLUMES,
            C.VOLUME_CREATE,
            C.VOLUME_DELETE,
            C.VOLUME_ATTACH,
            C.VOLUME_RESIZE,
            C.VOLUME_RENAME,
            C.SSH_KEYS,
            C.SSH_KEYS_BY_CONTENT,
            C.OFFERS,
            C.IMAGES,
            C.LOCATIONS,
        }
    )
    inferred = frozenset({C.VOLUME_ATTACH})  # the docs never say what a storage's order_ids mean

    def __init__(self, config: ProviderConfig, *, http_transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(config, http_transport=http_transport)
        self._hostnode_locations: dict[str, str] | None = None
        self._rental_ids: set[str] = set()  # ids seen as bare-metal rentals: their operations go there first
        self._lock = threading.Lock()

    def _make_transport(self, config: ProviderConfig, http_transport: httpx.BaseTransport | None) -> Transport:
        token = config.secret("token")
        if not token:
            raise errors.AuthError(
                "voltagepark needs an API key: set GPUCLOUD_VOLTAGEPARK_TOKEN (keys are issued by support)",
                provider=self.name,
            )
        base_path = httpx.URL(str(config.base_url)).path
        return self._transport(config, http_transport, _DocumentedHeaderAuth(token, base_path))

    def _map_error(self, response: httpx.Response) -> errors.GpuCloudError:
        body = json_body(response)
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):  # FastAPI validation errors: [{loc, msg, type}, ...]
            message = "; ".join(
                f"{'.'.join(str(p) for p in d.get('loc', []) if p != 'body')}: {d.get('msg')}" for d in detail
            )
            return build_error(self.name, response, code="validation_error", message=message, details=detail)
        if response.status_code == 400 and isinstance(detail, str) and detail.lower().startswith("no availability"):
            # Voltage Park says "no capacity" with a plain 400: a capacity problem, not bad input.
            return build_error(self.name, response, code="no_capacity", message=detail, by_code=_NO_CAPACITY)
        return build_error(self.name, response, code=None, message=str(detail) if detail else None)

    def _all(self, path: str) -> list[dict[str, Any]]:
        size = _PAGE_MAX[path]

        def fetch(offset: int, limit: int) -> Page[dict[str, Any]]:
            body = self._get(path, _PAGES[path], params={"offset": offset, "limit": limit})
            return Page(body["results"], body.get("total_result_count"), bool(body.get("has_next")))

        return fetch_offset_pages(fetch, size, workers=self.config.page_workers, provider=self.name)

    # --- instances ----------------------------------------------------------------------------------
    def _locations_by_hostnode(self) -> dict[str, str]:
        with self._lock:
            if self._hostnode_locations is None:
                self._hostnode_locations = {
                    node["id"]: loc["id"] for loc in self._all("locations/") for node in loc.get("hostnodes", [])
                }
            return self._hostnode_locations

    def _to_instance(self, data: dict[str, Any], locations: dict[str, str]) -> Instance:
        raw_status = str(data.get("status") or "unknown")
        released = raw_status.lower() == "stoppeddisassociated"
        resources = data.get("resources") or {}
        model, count = first_gpu(resources)
        ssh_port = next(
            (
                int(p["external_port"])
                for p in data.get("port_forwards") or []
                if p.get("internal_port") == 22 and p.get("external_port") is not None
            ),
            None,
        )
        return Instance(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            status=_STATUS.get(raw_status.lower(), Status.UNKNOWN),
            raw_status=raw_status,
            instance_type=shape_name(resources),
            gpu_model=model,
            gpu_count=count,
            location=locations.get(str(data.get("hostnode_id"))),
            image=data.get("operating_system"),
            public_ip=data.get("public_ip") or None,
            ssh_port=ssh_port if data.get("public_ip") else None,
            ssh_user=self.ssh_user,
            tags=tags_from_list(data.get("tags")),
            compute_released=released,
            # Released: only storage is billed (total_disassociated_per_hr); otherwise, stopped or not, the whole rate.
            price_per_hour=as_float(
                (data.get("pricing") or {}).get(f"total_{'dis' if released else ''}associated_per_hr")
            ),
            created_at=data.get("timestamp_creation"),
            raw=data,
        )

    def _rental_to_instance(self, data: dict[str, Any]) -> Instance:
        """A bare-metal rental: ``status`` says deployed or not, ``power_status`` whether its nodes run."""
        status, power = str(data.get("status") or "unknown"), data.get("power_status")
        raw_status = str(power) if status.lower() == "running" and power else status
        specs = data.get("specs_per_node") or {}
        gpus = int(data.get("node_count") or 1) * int(specs.get("gpu_count") or 0)
        model = specs.get("gpu_model")
        ip = next((n.get("public_ip") for n in data.get("node_networking") or [] if n.get("public_ip")), None)
        self._rental_ids.add(str(data["id"]))
        return Instance(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            status=_STATUS.get(raw_status.lower(), Status.UNKNOWN),
            raw_status=raw_status,
            kind="bare_metal",
            instance_type=bare_metal_type(gpus, model or "gpu", str(data.get("network_type") or "")),
            gpu_model=model,
            gpu_count=gpus,
            public_ip=ip,
            ssh_port=(self.config.ssh_port or 22) if ip else None,
            ssh_user=self.config.ssh_user or data.get("username") or self.default_ssh_user,
            tags=tags_from_list(data.get("tags")),
            price_per_hour=as_float(data.get("rate_hourly")),
            created_at=data.get("creation_timestamp"),
            raw=data,
        )

    def _list_instances(self) -> list[Instance]:
        # The hostnode -> location map and the bare-metal rentals are lists of their own: fetched alongside.
        vms, rentals = in_parallel(self._list_vms, self._list_rentals)
        return vms + rentals

    def find_instance(self, name: str, *, kind: InstanceKind | None = None) -> Instance | None:
        # VMs and rentals are two lists: when the caller's kind is found by name in its own list, the other one
        # is not read (a VM no-op costs the VM list and the location map). Otherwise the other list is read too,
        # so a create still sees a name the other kind holds, and an unkinded lookup (state absent) finds either.
        if kind is None:
            return super().find_instance(name)
        self.require(C.INSTANCES)
        lists = (self._list_vms, self._list_rentals)
        own, other = lists if kind == "vm" else lists[::-1]
        found = unique_by_name(own(), name, "instance", self.name)
        if found is None:
            found = unique_by_name(other(), name, "instance", self.name)
        return found if found is not None else self._instance_in_flight(name)

    def _list_vms(self) -> list[Instance]:
        vms, locations = in_parallel(lambda: self._all("virtual-machines/"), self._locations_by_hostnode)
        return [self._to_instance(vm, locations) for vm in vms]

    def _list_rentals(self) -> list[Instance]:
        return [self._rental_to_instance(r) for r in self._all("bare-metal/")]

    def list_instances_detailed(self) -> list[Instance]:
        # A VM names no volumes; each volume names its VMs (order_ids). The volume list comes in alongside
        # the VMs, and only for listings that show hosts (the inventory): a lookup by name keeps its calls.
        instances, volumes = in_parallel(self.list_instances, lambda: self._all("storage/"))
        attached: dict[str, list[str]] = {}
        for volume in volumes:
            for vm_id in volume.get("order_ids") or ():
                attached.setdefault(str(vm_id), []).append(str(volume["id"]))
        return [i.model_copy(update={"volume_ids": tuple(attached.get(i.id, ()))}) for i in instances]

    def _get_instance(self, instance_id: str) -> Instance:
        return self._by_kind(instance_id, lambda: self._get_vm(instance_id), lambda: self._get_rental(instance_id))

    def _get_vm(self, instance_id: str) -> Instance:
        vm = self._get(url_path("virtual-machines/{instance_id}", instance_id=instance_id), _Vm)
        return self._to_instance(vm, self._locations_by_hostnode())

    def _get_rental(self, rental_id: str) -> Instance:
        # The API documents no GET for one rental: the list is the only read.
        for rental in self._all("bare-metal/"):
            if str(rental["id"]) == rental_id:
                return self._rental_to_instance(rental)
        raise errors.NotFound(f"{self.name}: instance {rental_id} not found", provider=self.name, status_code=404)

    def _by_kind(self, instance_id: str, vm: Callable[[], R], bare_metal: Callable[[], R]) -> R:
        """Run the VM or the bare-metal form of an operation on ``instance_id``: ids do not say which it is."""
        if instance_id in self._rental_ids:
            return bare_metal()
        try:
            return vm()
        except errors.NotFound:
            return bare_metal()

    def _presets(self) -> list[dict[str, Any]]:
        presets: list[dict[str, Any]] = self._get("instant-deploy-presets/", list[_Preset])
        return presets

    def _presets_named(self, instance_type: str) -> list[dict[str, Any]]:
        """Presets that ``instance_type`` names: by id, full shape, or short shape when that is unambiguous."""
        presets = self._presets()
        exact = [p for p in presets if instance_type in (p["id"], shape_name(p["resources"]))]
        if exact:
            return exact
        short = [p for p in presets if short_shape_name(p["resources"]) == instance_type]
        shapes = sorted({shape_name(p["resources"]) for p in short})
        if len(shapes) > 1:
            raise errors.ValidationError(
                f"instance_type {instance_type!r} matches several voltagepark shapes: {', '.join(shapes)}",
                field="instance_type",
                provider=self.name,
            )
        if not short:
            known = (shape_name(p["resources"]) for p in presets)
            raise errors.ValidationError(
                f"instance_type {instance_type!r} is not a voltagepark preset; "
                f"{choose_from(self.name, 'instance_type', known)}",
                field="instance_type",
                provider=self.name,
            )
        return short

    def canonical_instance_type(self, value: str) -> str:
        if parse_bare_metal_type(value) is not None:
            return value
        return shape_name(self._presets_named(value)[0]["resources"])

    def names_instance_type(self, value: str, instance: Instance) -> bool:
        # The short shape (1x-h100-sxm5-80gb) of the VM's own resources names it too: the VM already is what
        # the spec asks for, so a no-op needs no preset list (which may since have dropped or split the shape).
        resources = instance.raw.get("resources") or {}
        return super().names_instance_type(value, instance) or (
            bool(resources) and value == short_shape_name(resources)
        )

    def _preset_for(self, spec: InstanceSpec) -> dict[str, Any]:
        matches = self._presets_named(spec.instance_type)
        if spec.image:
            matches = [p for p in matches if (p.get("operating_system") or "").lower() == spec.image.lower()]
            if not matches:
                raise errors.ValidationError(
                    f"image {spec.image!r} is not offered with {spec.instance_type}; Voltage Park presets fix the "
                    "operating system: leave image empty or use the preset's operating_system",
                    field="image",
                    provider=self.name,
                )
        available = [p for p in matches if p.get("location_ids_with_availability")]
        return (available or matches)[0]

    @staticmethod
    def _validate_display_name(name: str) -> None:
        validate_name(name, "name", pattern=DISPLAY_NAME_PATTERN, rule=DISPLAY_NAME_RULE, min_len=1, max_len=255)

    @classmethod
    def _validate_volume_spec(cls, spec: VolumeSpec) -> None:
        cls._validate_display_name(spec.name)

    @classmethod
    def _validate_instance_spec(cls, spec: InstanceSpec) -> None:
        cls._validate_display_name(spec.name)
        if spec.password is not None and len(spec.password) < 8:
            raise errors.ValidationError("password must have at least 8 characters", field="password")
        if spec.kind == "bare_metal":
            cls._validate_bare_metal_spec(spec)
        elif spec.instance_type.startswith(BARE_METAL_PREFIX):
            raise errors.ValidationError(
                f"instance_type {spec.instance_type!r} is a bare-metal type: set kind: bare_metal (or pick a VM "
                "shape from the offers)",
                field="kind",
                provider=cls.name,
            )

    @classmethod
    def _validate_bare_metal_spec(cls, spec: InstanceSpec) -> None:
        def refuse(field: str, message: str) -> errors.ValidationError:
            return errors.ValidationError(f"{field} {message}", field=field, provider=cls.name)

        parsed = parse_bare_metal_type(spec.instance_type)
        if parsed is None or parsed[0] < 8 or parsed[0] % 8:
            raise refuse(
                "instance_type",
                f"{spec.instance_type!r} is not a bare-metal type; kind bare_metal takes whole 8-GPU nodes, "
                "e.g. baremetal-8x-h100-sxm5-80gb-infiniband (see `gpucloud offers voltagepark`)",
            )
        if spec.password:
            raise refuse("password", "is not taken by bare-metal rentals; log in with ssh_keys")
        if spec.image:
            raise refuse("image", "cannot be chosen for bare-metal rentals (the provider installs the OS); remove it")
        if spec.location and not _UUID.fullmatch(spec.location):
            raise refuse(
                "location",
                f"{spec.location!r}: bare-metal rentals take a location id (see `gpucloud offers voltagepark`)",
            )

    @classmethod
    def chooses_location(cls, kind: InstanceKind) -> bool:
        return kind == "bare_metal" or super().chooses_location(kind)

    def _common_payload(self, spec: InstanceSpec) -> dict[str, Any]:
        """What VM and bare-metal deploys share: name, SSH keys (registered by id, others by content), tags."""
        key_ids, key_texts = self.resolve_ssh_keys(spec.ssh_keys)
        return {
            "name": spec.name,
            "organization_ssh_keys": {"mode": "selective", "ssh_key_ids": key_ids} if key_ids else {"mode": "none"},
            "ssh_keys": key_texts,
            "tags": tags_to_list(spec.tags or {}),
        }

    @staticmethod
    def _cloud_init(script: str) -> dict[str, Any]:
        return {
            "write_files": [{"path": STARTUP_SCRIPT_PATH, "permissions": "0755", "content": script}],
            "runcmd": [STARTUP_SCRIPT_PATH],
        }

    def _create_instance(self, spec: InstanceSpec) -> CreatedInstance:
        if spec.kind == "bare_metal":
            return self._create_rental(spec)
        preset = self._preset_for(spec)
        payload: dict[str, Any] = {"config_id": preset["id"], **self._common_payload(spec)}
        if spec.password:
            payload["password"] = spec.password
        if spec.startup_script:
            payload["cloud_init"] = self._cloud_init(spec.startup_script)
        created = self._read(self.transport.request("POST", "virtual-machines/instant", json=payload), _Deployed)
        return CreatedInstance(instance=self._get_vm(str(created["vm_id"])))

    def _create_rental(self, spec: InstanceSpec) -> CreatedInstance:
        parsed = parse_bare_metal_type(spec.instance_type)
        assert parsed is not None  # validate_instance_spec refused anything else
        gpus, _model, network = parsed
        payload: dict[str, Any] = {
            "location_id": spec.location or self._bare_metal_location_for(network, gpus),
            "gpu_count": gpus,
            "network_type": network,
            **self._common_payload(spec),
        }
        if spec.startup_script:
            payload["cloudinit_script"] = self._cloud_init(spec.startup_script)
        created = self._read(self.transport.request("POST", "bare-metal/", json=payload), _Rented)
        return CreatedInstance(instance=self._get_rental(str(created["rental_id"])))

    def _bare_metal_locations(self) -> list[dict[str, Any]]:
        body = self._get("bare-metal/locations", _Page[_BareMetalLocation])
        rows: list[dict[str, Any]] = body["results"]
        return rows

    def _bare_metal_location_for(self, network: str, gpus: int) -> str:
        """The first location with ``gpus`` free GPUs on ``network``; with none, the first one (whose refusal
        then says there is no capacity)."""
        rows = self._bare_metal_locations()
        if not rows:
            raise errors.NoCapacity(f"{self.name}: no bare-metal locations are offered", provider=self.name)
        free = [r for r in rows if int(r.get(f"gpu_count_{network}") or 0) >= gpus]
        return str((free or rows)[0]["id"])

    def _delete_instance(self, instance_id: str) -> None:
        self._by_kind(
            instance_id,
            lambda: self._send("DELETE", "virtual-machines/{instance_id}", instance_id),
            lambda: self._send("DELETE", "bare-metal/{instance_id}", instance_id),
        )

    def _send(self, method: str, template: str, instance_id: str, body: dict[str, Any] | None = None) -> None:
        self.transport.request(method, url_path(template, instance_id=instance_id), json=body)

    def _power(self, instance_id: str, status: str) -> None:
        body = {"status": status}
        self._by_kind(
            instance_id,
            lambda: self._send("PUT", "virtual-machines/{instance_id}/power-status", instance_id, body),
            lambda: self._send("PUT", "bare-metal/{instance_id}/power-status", instance_id, body),
        )

    def _start_instance(self, instance_id: str) -> None:
        self._power(instance_id, "started")

    def _stop_instance(self, instance_id: str) -> None:
        self._power(instance_id, "stopped")

    @classmethod
    def can_release(cls, instance: Instance) -> bool:
        return instance.kind == "vm"

    def _stop_instance_released(self, instance_id: str) -> None:
        # VMs only (can_release): a rental id answers 404 here, which is the truth for that endpoint.
        self._send(
            "PUT", "virtual-machines/{instance_id}/power-status", instance_id, {"status": "stopped_disassociated"}
        )

    def reboots(self, instance: Instance) -> bool:
        return instance.kind == "bare_metal"  # VMs have no reboot call: a restart stops and starts them

    def reboot_instance(self, instance_id: str) -> None:
        rental = None
        if UUID_SHAPE.matches(instance_id):
            with contextlib.suppress(errors.NotFound):
                rental = self._get_rental(instance_id)
        if rental is None:  # VMs have no reboot call: the base refuses, saying what to do instead
            super().reboot_instance(instance_id)
            return
        ips = [str(n["public_ip"]) for n in rental.raw.get("node_networking") or [] if n.get("public_ip")]
        self._send("POST", "bare-metal/{instance_id}/reboot", rental.id, {"public_ips": ips})

    def _update_instance(self, instance_id: str, *, name: str | None, tags: dict[str, str] | None) -> Instance:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = tags_to_list(tags)
        self._by_kind(
            instance_id,
            lambda: self._send("PATCH", "virtual-machines/{instance_id}", instance_id, body),
            lambda: self._send("PATCH", "bare-metal/{instance_id}", instance_id, body),
        )
        return self._get_instance(instance_id)

    # --- volumes ------------------------------------------------------------------------------------
    def _to_volume(self, data: dict[str, Any]) -> Volume:
        return Volume(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            size_gb=int(data.get("size_in_gb") or 0),
            status=str(data.get("status") or "unknown"),
            attached_to=tuple(str(i) for i in data.get("order_ids") or ()),
            price_per_hour=as_float(data.get("rate_hourly")),
            raw=data,
        )

    def _list_volumes(self) -> list[Volume]:
        return [self._to_volume(d) for d in self._all("storage/")]

    def _get_volume(self, volume_id: str) -> Volume:
        return self._to_volume(self._get(url_path("storage/{volume_id}", volume_id=volume_id), _Storage))

    def _create_volume(self, spec: VolumeSpec) -> Volume:
        order_ids = [self._instance_id(spec.attach_to)] if spec.attach_to else []
        body = {"size_in_gb": spec.size_gb, "name": spec.name, "order_ids": order_ids}
        return self._to_volume(self._read(self.transport.request("POST", "storage/", json=body), _Storage))

    def _instance_id(self, ref: str) -> str:
        if _UUID.fullmatch(ref):
            return ref
        found = self.find_instance(ref)
        if found is None:
            raise errors.ValidationError(
                f"attach_to: no voltagepark instance named {ref!r}", field="attach_to", provider=self.name
            )
        return found.id

    def _patch_volume(self, volume_id: str, **fields: Any) -> None:
        self.transport.request("PATCH", url_path("storage/{volume_id}", volume_id=volume_id), json=fields)

    def _delete_volume(self, volume_id: str) -> None:
        self.transport.request("DELETE", url_path("storage/{volume_id}", volume_id=volume_id))

    def _attach_volume(self, volume_id: str, instance_id: str) -> None:
        current = list(self._get_volume(volume_id).attached_to)
        if instance_id not in current:
            self._patch_volume(volume_id, order_ids=[*current, instance_id])

    def _detach_volume(self, volume_id: str, instance_id: str | None) -> None:
        current = list(self._get_volume(volume_id).attached_to)
        remaining = [i for i in current if instance_id is not None and i != instance_id]
        if remaining != current:
            self._patch_volume(volume_id, order_ids=remaining)

    def _resize_volume(self, volume_id: str, size_gb: int) -> None:
        self._patch_volume(volume_id, size_in_gb=size_gb)

    def _rename_volume(self, volume_id: str, name: str) -> None:
        self._patch_volume(volume_id, name=name)

    # --- ssh keys -----------------------------------------------------------------------------------
    def _to_key(self, data: dict[str, Any]) -> SshKey:
        return SshKey(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            public_key=str(data.get("content") or ""),
            raw=data,
        )

    def _list_ssh_keys(self) -> list[SshKey]:
        return [self._to_key(d) for d in self._all("organization/ssh-keys")]

    def _get_ssh_key(self, key_id: str) -> SshKey:
        # The API has no GET by id for keys; the list is the only way to read one.
        for key in self._list_ssh_keys():
            if key.id == key_id:
                return key
        raise errors.NotFound(f"{self.name}: ssh key {key_id} not found", provider=self.name, status_code=404)

    @classmethod
    def _validate_ssh_key_spec(cls, spec: SshKeySpec) -> None:
        validate_name(
            spec.name,
            "name",
            pattern=r"[A-Za-z0-9 -]+",
            rule="only letters, digits, hyphens and spaces",
            min_len=3,
            max_len=64,
        )

    def _create_ssh_key(self, spec: SshKeySpec) -> SshKey:
        body = {"name": spec.name, "content": spec.public_key.strip()}
        return self._to_key(self._read(self.transport.request("POST", "organization/ssh-keys", json=body), _Key))

    def _delete_ssh_key(self, key_id: str) -> None:
        self.transport.request("DELETE", url_path("organization/ssh-keys/{key_id}", key_id=key_id))

    # --- catalogue ----------------------------------------------------------------------------------
    def _list_offers(self) -> list[Offer]:
        """One offer per shape: presets that differ only in operating system are one machine type."""
        vm_rows, bare_metal = in_parallel(lambda: self._all("locations/"), self._bare_metal_locations)
        names = {str(d["id"]): _location_name(d) for d in vm_rows}
        by_shape: dict[str, list[dict[str, Any]]] = {}
        for preset in self._presets():
            by_shape.setdefault(shape_name(preset.get("resources") or {}), []).append(preset)
        offers = [self._offer(shape, presets, names) for shape, presets in by_shape.items()]
        return offers + self._bare_metal_offers(bare_metal, names)

    def _bare_metal_offers(self, rows: list[dict[str, Any]], names: dict[str, str]) -> list[Offer]:
        """One node (8 GPUs) per network type; its price is the cheapest location's, for the whole node."""
        offers = []
        for network in _NETWORKS:
            priced = [r for r in rows if r.get(f"gpu_price_{network}") is not None]
            if not priced:
                continue
            specs = priced[0].get("specs_per_node") or {}
            per_node = int(specs.get("gpu_count") or 8)
            model = str(specs.get("gpu_model") or "gpu")
            offers.append(
                Offer(
                    provider=self.name,
                    instance_type=bare_metal_type(per_node, model, network),
                    kind="bare_metal",
                    gpu_model=model,
                    gpu_count=per_node,
                    memory_gb=specs.get("ram_gb"),
                    disk_gb=as_float(specs.get("storage_gb")),
                    price_per_hour=min(float(r[f"gpu_price_{network}"]) for r in priced) * per_node,
                    locations=tuple(
                        LocationAvailability(
                            location=str(r["id"]),
                            available=int(r.get(f"gpu_count_{network}") or 0) >= per_node,
                            name=names.get(str(r["id"])),
                        )
                        for r in priced
                    ),
                )
            )
        return offers

    def _offer(self, shape: str, presets: list[dict[str, Any]], names: dict[str, str]) -> Offer:
        resources = presets[0].get("resources") or {}
        model, count = first_gpu(resources)
        prices = [p for p in (as_float(p.get("compute_rate_hourly")) for p in presets) if p is not None]
        available = sorted({loc for p in presets for loc in p.get("location_ids_with_availability") or []})
        # Presets of one shape differ in operating system; should their disks differ too, the smallest is sure.
        disks = [d for d in (as_float((p.get("resources") or {}).get("storage_gb")) for p in presets) if d is not None]
        return Offer(
            provider=self.name,
            instance_type=shape,
            gpu_model=model,
            gpu_count=count,
            vcpus=resources.get("vcpu_count"),
            memory_gb=resources.get("ram_gb"),
            disk_gb=min(disks) if disks else None,
            price_per_hour=min(prices) if prices else None,
            locations=tuple(
                LocationAvailability(location=loc, available=True, name=names.get(loc)) for loc in available
            ),
        )

    def _list_images(self) -> list[Image]:
        systems = sorted({p["operating_system"] for p in self._presets() if p.get("operating_system")})
        return [Image(id=os_name, provider=self.name, name=os_name) for os_name in systems]

    def _list_locations(self) -> list[Location]:
        # Bare-metal locations come from a list of their own; any the VM list lacks are listed by id, so a
        # bare-metal location passes the catalogue check.
        vm_rows, bare_metal = in_parallel(lambda: self._all("locations/"), self._bare_metal_locations)
        locations = [
            Location(
                id=str(d["id"]),
                provider=self.name,
                name=_location_name(d),
                country=d.get("country"),
                raw={k: v for k, v in d.items() if k != "hostnodes"},
            )
            for d in vm_rows
        ]
        known = {loc.id for loc in locations}
        extra = [str(r["id"]) for r in bare_metal if str(r["id"]) not in known]
        return locations + [Location(id=i, provider=self.name, name=i) for i in extra]


PROVIDER = VoltagePark

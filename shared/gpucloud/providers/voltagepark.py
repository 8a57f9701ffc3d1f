"""Voltage Park On-Demand API: bearer token, ``offset``/``limit`` pages, instant-deploy VMs from presets.

Mapping choices (the API has no direct equivalent for these):
- instance type: VMs are deployed from *presets*; an instance's type is its shape,
  ``<gpus>x-<gpu model>-<vcpus>vcpu-<ram>gb``. A spec may name the shape or a preset id.
- tags: the API keeps a list of strings; ``{"k": "v"}`` is stored as ``"k=v"`` and a bare tag reads as ``{tag: ""}``.
- location: instant deploy places the VM itself, so it cannot be chosen; it is read back from the hostnode.
- volumes: shared storage, "attached" to VMs through its ``order_ids``.
- startup script: sent as cloud-init that writes the script to a file and runs it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Generator, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import Field, StrictBool, StrictStr

from gpucloud import errors
from gpucloud.auth import BearerAuth, HeaderTokenAuth
from gpucloud.capabilities import Capability as C
from gpucloud.config import ProviderConfig
from gpucloud.httputil import url_path
from gpucloud.models import (
    CreatedInstance,
    Image,
    Instance,
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
from gpucloud.providers.base import UUID_SHAPE, IdKind, IdShape, Provider, as_float, build_error, json_body
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
    "stopped": Status.STOPPED,
    "stoppeddisassociated": Status.STOPPED,
    "outbid": Status.STOPPED,
    "terminated": Status.DELETED,
}

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
# Page-size maxima from the API reference, per list endpoint.
_PAGE_MAX = {"virtual-machines/": 100, "storage/": 100, "organization/ssh-keys": 150, "locations/": 15}
_NO_CAPACITY: dict[str, type[errors.GpuCloudError]] = {"no_capacity": errors.NoCapacity}
STARTUP_SCRIPT_PATH = "/var/lib/gpucloud/startup.sh"


W = TypeVar("W", bound=Wire)


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


class _Page(Wire, Generic[W]):
    """One page of an ``offset``/``limit`` list: without ``results`` it is malformed, never empty."""

    results: list[W]
    total_result_count: Count = None
    has_next: StrictBool | None = None


_PAGES: dict[str, Any] = {
    "virtual-machines/": _Page[_Vm],
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

        return fetch_offset_pages(fetch, size, workers=self.config.page_workers)

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
            price_per_hour=as_float((data.get("pricing") or {}).get("total_associated_per_hr")),
            created_at=data.get("timestamp_creation"),
            raw=data,
        )

    def _list_instances(self) -> list[Instance]:
        # The hostnode -> location map is a list of its own: fetch it while the VM pages come in.
        vms, locations = in_parallel(lambda: self._all("virtual-machines/"), self._locations_by_hostnode)
        return [self._to_instance(vm, locations) for vm in vms]

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
        vm = self._get(url_path("virtual-machines/{instance_id}", instance_id=instance_id), _Vm)
        return self._to_instance(vm, self._locations_by_hostnode())

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

    def _validate_volume_spec(self, spec: VolumeSpec) -> None:
        self._validate_display_name(spec.name)

    def _validate_instance_spec(self, spec: InstanceSpec) -> None:
        self._validate_display_name(spec.name)
        if spec.password is not None and len(spec.password) < 8:
            raise errors.ValidationError("password must have at least 8 characters", field="password")

    def _create_instance(self, spec: InstanceSpec) -> CreatedInstance:
        preset = self._preset_for(spec)
        key_ids, key_texts = self.resolve_ssh_keys(spec.ssh_keys)
        payload: dict[str, Any] = {
            "config_id": preset["id"],
            "name": spec.name,
            "organization_ssh_keys": {"mode": "selective", "ssh_key_ids": key_ids} if key_ids else {"mode": "none"},
            "ssh_keys": key_texts,
            "tags": tags_to_list(spec.tags or {}),
        }
        if spec.password:
            payload["password"] = spec.password
        if spec.startup_script:
            payload["cloud_init"] = {
                "write_files": [{"path": STARTUP_SCRIPT_PATH, "permissions": "0755", "content": spec.startup_script}],
                "runcmd": [STARTUP_SCRIPT_PATH],
            }
        created = self._read(self.transport.request("POST", "virtual-machines/instant", json=payload), _Deployed)
        return CreatedInstance(instance=self._get_instance(created["vm_id"]))

    def _delete_instance(self, instance_id: str) -> None:
        self.transport.request("DELETE", url_path("virtual-machines/{instance_id}", instance_id=instance_id))

    def _power(self, instance_id: str, status: str) -> None:
        self.transport.request(
            "PUT",
            url_path("virtual-machines/{instance_id}/power-status", instance_id=instance_id),
            json={"status": status},
        )

    def _start_instance(self, instance_id: str) -> None:
        self._power(instance_id, "started")

    def _stop_instance(self, instance_id: str) -> None:
        self._power(instance_id, "stopped")

    def _update_instance(self, instance_id: str, *, name: str | None, tags: dict[str, str] | None) -> Instance:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = tags_to_list(tags)
        self.transport.request("PATCH", url_path("virtual-machines/{instance_id}", instance_id=instance_id), json=body)
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

    def _validate_ssh_key_spec(self, spec: SshKeySpec) -> None:
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
        names = {loc.id: loc.name for loc in self._list_locations()}
        by_shape: dict[str, list[dict[str, Any]]] = {}
        for preset in self._presets():
            by_shape.setdefault(shape_name(preset.get("resources") or {}), []).append(preset)
        return [self._offer(shape, presets, names) for shape, presets in by_shape.items()]

    def _offer(self, shape: str, presets: list[dict[str, Any]], names: dict[str, str]) -> Offer:
        resources = presets[0].get("resources") or {}
        model, count = first_gpu(resources)
        prices = [p for p in (as_float(p.get("compute_rate_hourly")) for p in presets) if p is not None]
        available = sorted({loc for p in presets for loc in p.get("location_ids_with_availability") or []})
        return Offer(
            provider=self.name,
            instance_type=shape,
            gpu_model=model,
            gpu_count=count,
            vcpus=resources.get("vcpu_count"),
            memory_gb=resources.get("ram_gb"),
            price_per_hour=min(prices) if prices else None,
            locations=tuple(
                LocationAvailability(location=loc, available=True, name=names.get(loc)) for loc in available
            ),
        )

    def _list_images(self) -> list[Image]:
        systems = sorted({p["operating_system"] for p in self._presets() if p.get("operating_system")})
        return [Image(id=os_name, provider=self.name, name=os_name) for os_name in systems]

    def _list_locations(self) -> list[Location]:
        return [
            Location(
                id=str(d["id"]),
                provider=self.name,
                name=str(d.get("city") or d.get("region") or d["id"]),
                country=d.get("country"),
                raw={k: v for k, v in d.items() if k != "hostnodes"},
            )
            for d in self._all("locations/")
        ]


PROVIDER = VoltagePark

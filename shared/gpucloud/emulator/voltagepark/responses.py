"""Voltage Park On-Demand API, emulated under ``/voltagepark/api/v1`` (wire format only).

Follows /work/shared/api-docs/voltagepark.txt. The real service is a FastAPI app, so request validation
errors are FastAPI's own 422 ``{"detail": [...]}`` and other errors are ``{"detail": "message"}``.
Auth, per endpoint as the doc's examples show it: ``x-api-token: <token>`` on the organization SSH-key
and storage endpoints (``/organization/ssh-keys*``, ``/storage*``), ``Authorization: Bearer <token>`` on
all others; the other header alone is refused (401 naming the header to send), so a client that sends the
wrong one is caught. The endpoints documented without auth (instant-deploy presets, bare-metal locations,
cloud-init validation) stay open. Lists use ``limit``/``offset`` with the documented
per-endpoint default and maximum (above the maximum -> 422) and answer
``{"results", "total_result_count", "has_previous", "has_next"}``. Ids are UUIDs (a malformed id -> 422).

Choices where the docs are silent:
- VM statuses. Steady states come from a third-party typed client of this API (``Running``, ``Stopped``,
  ``StoppedDisassociated``); the transitional ones are the emulator's own. With P = ``provision_seconds``:
  create -> ``Provisioning`` -> ``Running`` (P); power ``stopped`` -> ``Stopping`` -> ``Stopped`` (P/2);
  ``stopped_disassociated`` -> ``Stopping`` -> ``StoppedDisassociated`` (P/2, releases the GPUs: starting
  again needs free capacity, else 400); ``started`` -> ``Starting`` -> ``Running`` (P);
  ``DELETE`` -> 202, ``Terminating`` (sshd stops at once), gone after P/2 (then 404; the list only shows
  unterminated VMs). ``Running`` implies sshd already answers.
- Power enum: ``started`` | ``stopped`` | ``stopped_disassociated`` (the third from the same typed client,
  matching the docs' "disassociating resources"). Asking for the state a VM is already in (or heading to)
  is a 200 no-op; power changes on a ``Terminating`` VM, or ``started`` while ``Stopping``, are 400.
- ``public_ip`` is ``""`` and ``port_forwards`` ``[]`` until the VM first reaches ``Running``; then the VM
  keeps a distinct 127.x.y.z and ``[{"internal_port": 22, "external_port": <unique port>}]``, and sshd
  listens on ``public_ip:external_port``.
- Capacity: a preset is available at a location while ``World.set_capacity("voltagepark", <preset id>,
  <location id or None>, ...)`` allows it and one of the location's hostnodes has enough free GPUs.
  Deploying a preset with no availability -> 400; an unknown ``config_id`` -> 400.
- SSH keys for a VM (``ssh_keys`` texts plus the selected organization keys) are fixed at creation, as the
  docs say for organization keys. Key names must be unique (duplicate -> 400).
- Storage: ``order_ids`` link a volume to VMs (attach); size can only grow (400); deleting a volume still
  linked to a live VM -> 400; terminating a VM unlinks it. Storage costs 0.017408 $/GB/hour, the
  ``hourly_rate_per_gb`` of the doc's ``/storage/hourly-rate`` example, so that endpoint prints it exactly
  at six places. A volume's ``rate_hourly`` is size x that rate at six places; the doc's storage-list
  example (100 GB at "0.017408") contradicts the per-GB example and is not reproduced.
- Billing: ``Stopped`` VMs are billed as running ones and ``StoppedDisassociated`` ones for storage only, as the
  power-status doc says. Billing transactions and monthly reports are empty.
- Bare metal: whole 8-GPU nodes (``specs_per_node``), a pool of its own per location and network type;
  ``/bare-metal/locations`` lists the free GPUs (whole nodes) per network type, 0 where
  ``World.set_capacity("voltagepark", "bare-metal-<network>", <location id or None>, False)`` switched it off.
  ``POST /bare-metal/``: ``gpu_count`` must be a multiple of 8 (400), an unknown location or storage id is a
  400, too few free nodes a 400 "No availability ...". A rental is ``Pending`` (``power_status`` too), then
  ``Running``/``Running`` after P with sshd on its first node's ``public_ip`` at the emulator's SSH port (bare
  metal has no port forward; one sshd per rental, not per node); user ``ubuntu``. Power ``stopped`` ->
  ``power_status`` ``Stopping`` -> ``Stopped`` (P/2), ``started`` -> ``Starting`` -> ``Running`` (P); asking
  for the current power state is a no-op; power or reboot while pending, terminating or changing -> 400.
  Reboot (``public_ips`` of its nodes, else 400) makes the rental ``Pending`` for P/2 (sshd restarts).
  ``DELETE`` -> 202, ``Terminating`` (sshd stops at once), gone after P/2. A rental is billed ``rate_hourly``
  (GPUs x the location's per-GPU price) until terminated, stopped or not. The doc lists no
  ``GET /bare-metal/{id}``, so there is none: the list is the only read. ``limit`` is a number (the doc's
  alternative string enum names no values).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator

from gpucloud.emulator.base import ProviderError, ProviderSpec, WorldDep, ledger_item, parse_public_key, utc_now
from gpucloud.emulator.base import with_and_without_slash as both
from gpucloud.emulator.sshd import SshSpec
from gpucloud.emulator.world import JSONDict, Step, World
from gpucloud.providers.voltagepark import shape_name  # stock is set per machine shape, the offers' type
from gpucloud.registry import registration

NAME = "voltagepark"
PREFIX = registration(NAME).emulator_prefix
_NS = uuid.UUID("9a1c2e47-5b3d-4c8e-8f21-6d0b7e3a4c10")  # stable catalogue ids across runs
_GPU = "h100-sxm5-80gb"
_GPU_PRICE = 1.99
_STORAGE_RATE_PER_GB = 0.017408
_TENANT_ID = 1001

# ------------------------------------------------------------------------------------------ catalogue
_NODE_TOTAL = {"gpus": 8, "ram_gb": 960, "storage_gb": 14000, "vcpu_count": 208}
_LOCATION_ROWS = [
    ("Seattle", "Washington", "United States", 2),
    ("Salt Lake City", "Utah", "United States", 1),
    ("Dallas", "Texas", "United States", 1),
    ("Ashburn", "Virginia", "United States", 1),
]
LOCATIONS: list[JSONDict] = [
    {
        "id": str(uuid.uuid5(_NS, city)),
        "city": city,
        "region": region,
        "country": country,
        "hostnode_ids": [str(uuid.uuid5(_NS, f"{city}-node-{n}")) for n in range(nodes)],
    }
    for city, region, country, nodes in _LOCATION_ROWS
]
_HOSTNODE_LOCATION = {node: loc["id"] for loc in LOCATIONS for node in loc["hostnode_ids"]}

# (name, gpus, vCPUs, RAM GB, disk GB, OS)
_PRESET_ROWS = [
    ("1x-h100-ubuntu-22.04", 1, 26, 120, 1500, "Ubuntu 22.04 LTS"),
    ("1x-h100-ubuntu-24.04", 1, 26, 120, 1500, "Ubuntu 24.04 LTS"),
    ("8x-h100-ubuntu-22.04", 8, 208, 960, 12000, "Ubuntu 22.04 LTS"),
]
PRESETS: dict[str, JSONDict] = {
    str(uuid.uuid5(_NS, name)): {
        "id": str(uuid.uuid5(_NS, name)),
        "resources": {"gpus": {_GPU: {"count": gpus}}, "vcpu_count": vcpus, "ram_gb": ram, "storage_gb": disk},
        "operating_system": os_name,
        "compute_rate_hourly": f"{gpus * _GPU_PRICE:.6f}",
        "storage_rate_hourly": f"{disk * 0.00003:.6f}",
    }
    for name, gpus, vcpus, ram, disk, os_name in _PRESET_ROWS
}

_LIVE_GPU_STATES = ("Provisioning", "Running", "Starting", "Stopping", "Stopped")


def _fmt(value: float) -> str:
    return f"{value:.6f}"


def _gpus_of(resources: JSONDict) -> int:
    return int(sum(g["count"] for g in resources["gpus"].values()))


# ------------------------------------------------------------------------------------------ errors, auth
def error_body(status: int, message: str, code: str | None = None) -> JSONDict:
    return {"detail": message}


def _bad(message: str) -> ProviderError:
    return ProviderError(400, message)


def _not_found(message: str) -> ProviderError:
    return ProviderError(404, message)


_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_api_key = APIKeyHeader(name="x-api-token", auto_error=False, description="API key")


_API_TOKEN_PATHS = ("/organization/ssh-keys", "/storage")  # documented with x-api-token; the rest with Bearer


def require_token(
    request: Request,
    world: WorldDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> None:
    if request.url.path.removeprefix(PREFIX).startswith(_API_TOKEN_PATHS):
        offered, wanted = api_key, "the x-api-token header"
    else:
        offered, wanted = (bearer.credentials if bearer else None), "an Authorization: Bearer header"
    if not offered:
        raise ProviderError(401, f"Not authenticated: this endpoint takes the API key in {wanted}")
    if offered != world.settings.credentials[NAME]["token"]:
        raise ProviderError(401, "Invalid API token")


open_api = APIRouter()
api = APIRouter()

Limit = Annotated[int, Query(ge=1)]
Offset = Annotated[int, Query(ge=0)]


def _page(items: list[JSONDict], limit: int, offset: int) -> JSONDict:
    return {
        "results": items[offset : offset + limit],
        "total_result_count": len(items),
        "has_previous": offset > 0,
        "has_next": offset + limit < len(items),
    }


# ------------------------------------------------------------------------------------------ capacity views
def _vms(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "instances")


def _free_gpus(world: World, hostnode_id: str) -> int:
    used = sum(
        world.private(NAME, vm["id"]).get("gpus", 0)
        for vm in _vms(world).values()
        if vm["hostnode_id"] == hostnode_id and vm["status"] in _LIVE_GPU_STATES
    )
    return _NODE_TOTAL["gpus"] - int(used)


def _hostnode(world: World, node_id: str) -> JSONDict:
    free = _free_gpus(world, node_id)
    share = free / _NODE_TOTAL["gpus"]
    return {
        "id": node_id,
        "location_id": _HOSTNODE_LOCATION[node_id],
        "available_resources": {
            "gpus": {_GPU: {"count": free}},
            "ram_gb": int(_NODE_TOTAL["ram_gb"] * share),
            "storage_gb": int(_NODE_TOTAL["storage_gb"] * share),
            "vcpu_count": int(_NODE_TOTAL["vcpu_count"] * share),
        },
        "pricing": {
            "per_gpu_hr": {_GPU: _fmt(_GPU_PRICE)},
            "per_vcpu_hr": _fmt(0),
            "per_gb_ram_hr": _fmt(0),
            "per_gb_storage_hr": _fmt(0.00003),
        },
        "available_ports": [],
    }


def _location(world: World, loc: JSONDict) -> JSONDict:
    fields = {k: v for k, v in loc.items() if k != "hostnode_ids"}
    return {**fields, "hostnodes": [_hostnode(world, n) for n in loc["hostnode_ids"]]}


def _placement(world: World, preset: JSONDict, location_id: str) -> str | None:
    """A hostnode at ``location_id`` that can take ``preset`` now, or None."""
    loc = next(loc for loc in LOCATIONS if loc["id"] == location_id)
    if not world.has_capacity(NAME, preset["id"], location_id, shape_name(preset["resources"])):
        return None
    need = _gpus_of(preset["resources"])
    return next((n for n in loc["hostnode_ids"] if _free_gpus(world, n) >= need), None)


def _preset(world: World, preset: JSONDict) -> JSONDict:
    available = [loc["id"] for loc in LOCATIONS if _placement(world, preset, loc["id"])]
    return {**preset, "location_ids_with_availability": available}


# ------------------------------------------------------------------------------------------ open endpoints
@both(open_api.get, "/instant-deploy-presets/")
def list_presets(world: WorldDep, available: bool | None = None) -> list[JSONDict]:
    with world.lock:
        presets = [_preset(world, p) for p in PRESETS.values()]
    if available is None:
        return presets
    return [p for p in presets if bool(p["location_ids_with_availability"]) == available]


@both(open_api.get, "/instant-deploy-presets/{instant_deploy_preset_id}")
def get_preset(instant_deploy_preset_id: uuid.UUID, world: WorldDep) -> JSONDict:
    preset = PRESETS.get(str(instant_deploy_preset_id))
    if preset is None:
        raise _not_found("Instant deploy preset not found")
    with world.lock:
        return _preset(world, preset)


class CloudInitCheck(BaseModel):
    type: Literal["instant-vm", "bare-metal"]
    content: str | dict[str, Any]


@both(open_api.post, "/validate/cloudinit")
def validate_cloudinit(body: CloudInitCheck) -> JSONDict:
    if isinstance(body.content, dict) or body.content.lstrip().startswith(("#cloud-config", "#!")):
        return {"error": False, "message": "cloud-init content is valid"}
    return {"error": True, "message": "cloud-init content must start with #cloud-config or #!"}


# ------------------------------------------------------------------------------------------ locations
@both(api.get, "/locations/")
def list_locations(world: WorldDep, limit: Annotated[int, Query(ge=1, le=15)] = 3, offset: Offset = 0) -> JSONDict:
    with world.lock:
        return _page([_location(world, loc) for loc in LOCATIONS], limit, offset)


@both(api.get, "/locations/{location_id}")
def get_location(location_id: uuid.UUID, world: WorldDep) -> JSONDict:
    loc = next((loc for loc in LOCATIONS if loc["id"] == str(location_id)), None)
    if loc is None:
        raise _not_found("Location not found")
    with world.lock:
        return _location(world, loc)


@both(api.get, "/hostnodes/{hostnode_id}")
def get_hostnode(hostnode_id: uuid.UUID, world: WorldDep) -> JSONDict:
    if str(hostnode_id) not in _HOSTNODE_LOCATION:
        raise _not_found("HostNode not found")
    with world.lock:
        return _hostnode(world, str(hostnode_id))


# ------------------------------------------------------------------------------------------ organization ssh keys
def _check_key(value: str) -> str:
    if parse_public_key(value) is None:
        raise ValueError("not a valid OpenSSH public key")
    return value.strip()


class OrgKeyCreate(BaseModel):
    name: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9 \-]+$")
    content: str

    @field_validator("content")
    @classmethod
    def _valid_content(cls, value: str) -> str:
        return _check_key(value)


def _org_keys(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "ssh_keys")


@both(api.get, "/organization/ssh-keys")
def list_org_keys(world: WorldDep, limit: Annotated[int, Query(ge=1, le=150)] = 150, offset: Offset = 0) -> JSONDict:
    with world.lock:
        return _page(list(_org_keys(world).values()), limit, offset)


@both(api.post, "/organization/ssh-keys", status_code=201)
def create_org_key(body: OrgKeyCreate, world: WorldDep) -> JSONDict:
    with world.lock:
        if any(k["name"] == body.name for k in _org_keys(world).values()):
            raise _bad(f"An SSH key named {body.name!r} already exists")
        key = {"id": world.new_id(), "name": body.name, "content": body.content}
        _org_keys(world)[key["id"]] = key
        return key


@both(api.delete, "/organization/ssh-keys/{ssh_key_id}", status_code=204)
def delete_org_key(ssh_key_id: uuid.UUID, world: WorldDep) -> Response:
    with world.lock:
        if str(ssh_key_id) not in _org_keys(world):
            raise _not_found("SSH key not found")
        world.forget(NAME, "ssh_keys", str(ssh_key_id))
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------ virtual machines
class OrgKeysNone(BaseModel):
    mode: Literal["none"]


class OrgKeysAll(BaseModel):
    mode: Literal["all"]


class OrgKeysSelective(BaseModel):
    mode: Literal["selective"]
    ssh_key_ids: list[uuid.UUID]


class VmCreate(BaseModel):
    config_id: uuid.UUID
    name: str = Field(min_length=1)
    password: Annotated[str, Field(min_length=8)] | None = None
    organization_ssh_keys: Annotated[OrgKeysNone | OrgKeysAll | OrgKeysSelective, Field(discriminator="mode")] = (
        OrgKeysNone(mode="none")
    )
    ssh_keys: list[str] = []
    cloud_init: dict[str, Any] | None = None
    tags: list[str] = []

    @field_validator("ssh_keys")
    @classmethod
    def _valid_keys(cls, keys: list[str]) -> list[str]:
        return [_check_key(k) for k in keys]


class VmPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1)
    tags: list[str] | None = None


class PowerStatus(BaseModel):
    status: Literal["started", "stopped", "stopped_disassociated"]


def _vm_or_404(world: World, vm_id: uuid.UUID) -> JSONDict:
    vm = _vms(world).get(str(vm_id))
    if vm is None:
        raise _not_found("Virtual machine not found")
    return vm


def _vm_keys(world: World, body: VmCreate | BareMetalCreate) -> tuple[str, ...]:
    org = body.organization_ssh_keys
    keys = list(body.ssh_keys)
    if isinstance(org, OrgKeysAll):
        keys += [k["content"] for k in _org_keys(world).values()]
    elif isinstance(org, OrgKeysSelective):
        for key_id in map(str, org.ssh_key_ids):
            if key_id not in _org_keys(world):
                raise _bad(f"Organization SSH key {key_id} not found")
            keys.append(_org_keys(world)[key_id]["content"])
    return tuple(keys)


def _pricing(preset: JSONDict) -> JSONDict:
    compute, storage = float(preset["compute_rate_hourly"]), float(preset["storage_rate_hourly"])
    return {
        "gpus_per_hr": _fmt(compute),
        "vcpus_per_hr": _fmt(0),
        "ram_per_hr": _fmt(0),
        "storage_per_hr": _fmt(storage),
        "total_associated_per_hr": _fmt(compute + storage),
        "total_disassociated_per_hr": _fmt(storage),
    }


def _new_vm(world: World, body: VmCreate, preset: JSONDict, hostnode_id: str, keys: tuple[str, ...]) -> JSONDict:
    vm_id = world.new_id()
    vm: JSONDict = {
        "id": vm_id,
        "hostnode_id": hostnode_id,
        "type": "ondem",
        "status": "Provisioning",
        "name": body.name,
        "resources": {**preset["resources"], "gpus": dict(preset["resources"]["gpus"])},
        "operating_system": preset["operating_system"],
        "pricing": _pricing(preset),
        "public_ip": "",
        "port_forwards": [],
        "timestamp_creation": utc_now(),
        "tags": list(body.tags),
    }
    _vms(world)[vm_id] = vm
    ip = world.allocate_ip()
    private = world.private(NAME, vm_id)
    private.update(
        gpus=_gpus_of(preset["resources"]),
        preset=preset["id"],
        ssh=SshSpec(ip=ip, port=world.allocate_port(ip), authorized_keys=keys),
    )
    return vm


def _to_status(world: World, vm_id: str, status: str) -> Callable[[], None]:
    def apply() -> None:
        vm = _vms(world).get(vm_id)
        if vm is None:
            return
        vm["status"] = status
        if status == "Running":
            spec: SshSpec = world.private(NAME, vm_id)["ssh"]
            vm.update(public_ip=spec.ip, port_forwards=[{"internal_port": 22, "external_port": spec.port}])

    return apply


@both(api.post, "/virtual-machines/instant", status_code=201)
def create_vm(body: VmCreate, world: WorldDep) -> JSONDict:
    with world.lock:
        preset = PRESETS.get(str(body.config_id))
        if preset is None:
            raise _bad(f"Instant deploy preset {body.config_id} not found")
        keys = _vm_keys(world, body)
        spot = next(((loc["id"], n) for loc in LOCATIONS if (n := _placement(world, preset, loc["id"]))), None)
        if spot is None or not world.take_capacity(NAME, preset["id"], spot[0], shape_name(preset["resources"])):
            raise _bad(f"No availability for instant deploy preset {body.config_id}: try again later")
        node = spot[1]
        vm_id = _new_vm(world, body, preset, node, keys)["id"]
    p = world.settings.provision_seconds
    world.run_steps(NAME, vm_id, [Step(at=p, ssh="up", apply=_to_status(world, vm_id, "Running"))])
    return {"vm_id": vm_id}


@both(api.get, "/virtual-machines/", response_model=JSONDict)
def list_vms(world: WorldDep, limit: Annotated[int, Query(ge=1, le=100)] = 10, offset: Offset = 0) -> Response:
    # Rendered here, under the lock, straight to JSON: FastAPI's response validation and encoding of thousands
    # of instances (seed_hosts) cost more than the listing itself.
    with world.lock:
        return JSONResponse(_page(list(_vms(world).values()), limit, offset))


@both(api.get, "/virtual-machines/{virtual_machine_id}")
def get_vm(virtual_machine_id: uuid.UUID, world: WorldDep) -> JSONDict:
    with world.lock:
        return _vm_or_404(world, virtual_machine_id)


@both(api.patch, "/virtual-machines/{virtual_machine_id}")
def patch_vm(virtual_machine_id: uuid.UUID, body: VmPatch, world: WorldDep) -> JSONDict:
    with world.lock:
        vm = _vm_or_404(world, virtual_machine_id)
        if vm["status"] == "Terminating":
            raise _bad("Virtual machine is terminating")
        if body.name is not None:
            vm["name"] = body.name
        if body.tags is not None:
            vm["tags"] = list(body.tags)
        return {"name": vm["name"], "tags": vm["tags"]}


@both(api.delete, "/virtual-machines/{virtual_machine_id}", status_code=202)
def delete_vm(virtual_machine_id: uuid.UUID, world: WorldDep) -> None:
    with world.lock:
        vm = _vm_or_404(world, virtual_machine_id)
        if vm["status"] == "Terminating":
            return  # already on its way out: deleting again is harmless
        vm["status"] = "Terminating"
        for volume in _storage(world).values():
            if vm["id"] in volume["order_ids"]:
                volume["order_ids"].remove(vm["id"])
    vm_id, half = vm["id"], world.settings.provision_seconds / 2
    world.run_steps(
        NAME,
        vm_id,
        [
            Step(at=0, ssh="down", apply=lambda: None),
            Step(at=half, apply=lambda: world.forget(NAME, "instances", vm_id)),
        ],
    )


@both(api.put, "/virtual-machines/{virtual_machine_id}/power-status")
def set_power(virtual_machine_id: uuid.UUID, body: PowerStatus, world: WorldDep) -> JSONDict:
    with world.lock:
        vm = _vm_or_404(world, virtual_machine_id)
        steps = _power_steps(world, vm, body.status)
    if steps:
        world.run_steps(NAME, vm["id"], steps)
    return {"status": body.status}


def _power_steps(world: World, vm: JSONDict, wanted: str) -> list[Step]:
    """Validate a power change and start it (status set now); the remaining steps to schedule."""
    status, vm_id, p = vm["status"], vm["id"], world.settings.provision_seconds
    if status == "Terminating":
        raise _bad("Virtual machine is terminating")
    if wanted == "started":
        if status in ("Provisioning", "Running", "Starting"):
            return []
        if status == "Stopping":
            raise _bad("Virtual machine is stopping; start it once it has stopped")
        if status == "StoppedDisassociated" and not _free_gpus_for(world, vm):
            raise _bad("No capacity on the host node to start this virtual machine")
        vm["status"] = "Starting"
        return [Step(at=p, ssh="up", apply=_to_status(world, vm_id, "Running"))]
    target = "Stopped" if wanted == "stopped" else "StoppedDisassociated"
    if status == target:
        return []
    if status in ("Provisioning", "Starting"):
        raise _bad(f"Virtual machine is {status.lower()}; stop it once it is running")
    if status == "StoppedDisassociated":
        raise _bad("Virtual machine is already stopped with its resources released")
    vm["status"] = "Stopping"
    return [Step(at=p / 2, ssh="down", apply=_to_status(world, vm_id, target))]


def _free_gpus_for(world: World, vm: JSONDict) -> bool:
    need: int = world.private(NAME, vm["id"]).get("gpus", 0)
    return _free_gpus(world, vm["hostnode_id"]) >= need


# ------------------------------------------------------------------------------------------ storage
class StorageCreate(BaseModel):
    size_in_gb: int = Field(ge=1)
    name: str = Field(min_length=1)
    order_ids: list[uuid.UUID] = []


class StoragePatch(BaseModel):
    size_in_gb: int | None = Field(default=None, ge=1)
    name: str | None = Field(default=None, min_length=1)
    order_ids: list[uuid.UUID] | None = None


def _storage(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "volumes")


def _storage_or_404(world: World, storage_id: uuid.UUID) -> JSONDict:
    volume = _storage(world).get(str(storage_id))
    if volume is None:
        raise _not_found("Storage volume not found")
    return volume


def _linkable(world: World, order_ids: list[uuid.UUID]) -> list[str]:
    ids = [str(i) for i in order_ids]
    for vm_id in ids:
        vm = _vms(world).get(vm_id)
        if vm is None or vm["status"] == "Terminating":
            raise _bad(f"Virtual machine {vm_id} not found")
    return ids


@both(api.get, "/storage/hourly-rate")
def storage_rate() -> JSONDict:
    return {"hourly_rate_per_gb": _fmt(_STORAGE_RATE_PER_GB)}


@both(api.get, "/storage/")
def list_storage(world: WorldDep, limit: Annotated[int, Query(ge=1, le=100)] = 20, offset: Offset = 0) -> JSONDict:
    with world.lock:
        return _page(list(_storage(world).values()), limit, offset)


@both(api.get, "/storage/{storage_id}")
def get_storage(storage_id: uuid.UUID, world: WorldDep) -> JSONDict:
    with world.lock:
        return {"used_capacity_bytes": 0, **_storage_or_404(world, storage_id)}


@both(api.post, "/storage/", status_code=201)
def create_storage(body: StorageCreate, world: WorldDep) -> JSONDict:
    with world.lock:
        order_ids = _linkable(world, body.order_ids)
        volume: JSONDict = {
            "id": world.new_id(),
            "size_in_gb": body.size_in_gb,
            "name": body.name,
            "status": "active",
            "rate_hourly": _fmt(body.size_in_gb * _STORAGE_RATE_PER_GB),
            "order_ids": order_ids,
            "tenant_id": _TENANT_ID,
            "vip": f"10.100.0.{len(_storage(world)) % 250 + 2}",
        }
        _storage(world)[volume["id"]] = volume
        return volume


@both(api.patch, "/storage/{storage_id}")
def patch_storage(storage_id: uuid.UUID, body: StoragePatch, world: WorldDep) -> JSONDict:
    with world.lock:
        volume = _storage_or_404(world, storage_id)
        if body.size_in_gb is not None and body.size_in_gb < volume["size_in_gb"]:
            raise _bad(f"Storage volumes can only grow (current size {volume['size_in_gb']} GB)")
        order_ids = _linkable(world, body.order_ids) if body.order_ids is not None else volume["order_ids"]
        if body.size_in_gb is not None:
            volume.update(size_in_gb=body.size_in_gb, rate_hourly=_fmt(body.size_in_gb * _STORAGE_RATE_PER_GB))
        if body.name is not None:
            volume["name"] = body.name
        volume["order_ids"] = order_ids
        return volume


@both(api.delete, "/storage/{storage_id}", status_code=204)
def delete_storage(storage_id: uuid.UUID, world: WorldDep) -> Response:
    with world.lock:
        volume = _storage_or_404(world, storage_id)
        if volume["order_ids"]:
            raise _bad("Storage volume is attached to virtual machines; remove its order_ids first")
        if any(r["storage_id"] == volume["id"] for r in _rentals(world).values()):
            raise _bad("Storage volume is in use by a bare metal rental; terminate the rental first")
        world.forget(NAME, "volumes", volume["id"])
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------ billing
@both(api.get, "/billing/hourly-rate")
def hourly_rate(world: WorldDep) -> JSONDict:
    total = 0.0
    with world.lock:
        for vm in _vms(world).values():
            if vm["status"] in _LIVE_GPU_STATES:
                total += float(vm["pricing"]["total_associated_per_hr"])
            elif vm["status"] == "StoppedDisassociated":
                total += float(vm["pricing"]["total_disassociated_per_hr"])
        total += sum(v["size_in_gb"] * _STORAGE_RATE_PER_GB for v in _storage(world).values())
        total += sum(float(r["rate_hourly"]) for r in _rentals(world).values())
    return {"rate_hourly": _fmt(total)}


@both(api.get, "/billing/transactions")
def list_transactions(
    limit: Limit = 30,
    offset: Offset = 0,
    types: Annotated[list[str] | None, Query()] = None,
    earliest: date | None = None,
    latest: date | None = None,
) -> JSONDict:
    return _page([], limit, offset)


@both(api.get, "/billing/reports/{year}/{month}/transactions")
def monthly_report(year: Annotated[int, Path(ge=2000)], month: Annotated[int, Path(ge=1, le=12)]) -> JSONDict:
    zero = "0.00"
    return {
        "transactions": [],
        "balance_at_period_start": zero,
        "balance_delta_in_period": zero,
        "balance_at_period_end": zero,
    }


# ------------------------------------------------------------------------------------------ bare metal
# Whole 8-GPU nodes per location and network type (a pool apart from the VM hostnodes), and the per-GPU price.
_BM_NODES = {
    "Seattle": {"infiniband": 2, "ethernet": 2},
    "Salt Lake City": {"infiniband": 1, "ethernet": 1},
    "Dallas": {"ethernet": 1},
    "Ashburn": {"infiniband": 1},
}
_BM_GPU_PRICE = {"infiniband": 2.25, "ethernet": 1.95}
_BM_SPECS: JSONDict = {
    "gpu_model": _GPU,
    "gpu_count": 8,
    "cpu_model": "Intel Xeon Platinum 8470",
    "cpu_count": 2,
    "ram_gb": 2048,
    "storage_gb": 30000,
}
_BM_CITY = {loc["id"]: loc["city"] for loc in LOCATIONS}
_BM_LIVE = ("Pending", "Running")  # rental statuses that hold nodes ("Terminating" gives them back)
_BM_USER = "ubuntu"
NetworkType = Literal["infiniband", "ethernet"]


class BareMetalCreate(BaseModel):
    location_id: uuid.UUID
    gpu_count: int
    name: str = Field(min_length=1)
    network_type: NetworkType
    organization_ssh_keys: Annotated[OrgKeysNone | OrgKeysAll | OrgKeysSelective, Field(discriminator="mode")] = (
        OrgKeysNone(mode="none")
    )
    ssh_keys: list[str] = []
    sub_order: int | str | None = None
    storage_id: uuid.UUID | None = None
    tags: list[str] = []
    cloudinit_script: dict[str, Any] | None = None

    @field_validator("ssh_keys")
    @classmethod
    def _valid_keys(cls, keys: list[str]) -> list[str]:
        return [_check_key(k) for k in keys]


class BareMetalPower(BaseModel):
    status: Literal["started", "stopped"]


class BareMetalReboot(BaseModel):
    public_ips: list[str]


def _rentals(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "bare_metal")


def _rental_or_404(world: World, rental_id: uuid.UUID) -> JSONDict:
    rental = _rentals(world).get(str(rental_id))
    if rental is None:
        raise _not_found("Bare metal rental not found")
    return rental


def _free_bm_gpus(world: World, location_id: str, network: str) -> int:
    """GPUs in whole free nodes of ``network`` at the location (0 while capacity is switched off there)."""
    if not world.has_capacity(NAME, f"bare-metal-{network}", location_id):
        return 0
    total = _BM_NODES.get(_BM_CITY[location_id], {}).get(network, 0)
    used = sum(
        r["node_count"]
        for r in _rentals(world).values()
        if r["network_type"] == network
        and r["status"] in _BM_LIVE
        and world.private(NAME, r["id"])["location"] == location_id
    )
    return int(total - used) * int(_BM_SPECS["gpu_count"])


def _bm_location(world: World, location_id: str) -> JSONDict:
    row: JSONDict = {"id": location_id}
    for network in ("ethernet", "infiniband"):
        row[f"gpu_count_{network}"] = _free_bm_gpus(world, location_id, network)
        row[f"gpu_price_{network}"] = _BM_GPU_PRICE[network]
    row["specs_per_node"] = dict(_BM_SPECS)
    return row


@both(open_api.get, "/bare-metal/locations")
def list_bare_metal_locations(world: WorldDep) -> JSONDict:
    with world.lock:
        rows = [_bm_location(world, loc["id"]) for loc in LOCATIONS if _BM_NODES.get(loc["city"])]
    return _page(rows, len(rows), 0)


@both(api.get, "/bare-metal/")
def list_bare_metal(world: WorldDep, limit: Annotated[int, Query(ge=1, le=100)] = 20, offset: Offset = 0) -> JSONDict:
    with world.lock:
        return _page(list(_rentals(world).values()), limit, offset)


def _check_bm_order(world: World, body: BareMetalCreate) -> str:
    """The location id, once the order can be met; else the 400 the doc lists for a refused deploy."""
    location_id = str(body.location_id)
    if location_id not in _BM_CITY or not _BM_NODES.get(_BM_CITY[location_id]):
        raise _bad(f"Bare metal location {location_id} not found")
    per_node = int(_BM_SPECS["gpu_count"])
    if body.gpu_count < per_node or body.gpu_count % per_node:
        raise _bad(f"gpu_count must be a whole number of nodes: a multiple of {per_node} (got {body.gpu_count})")
    if body.storage_id is not None and str(body.storage_id) not in _storage(world):
        raise _bad(f"Storage volume {body.storage_id} not found")
    free = _free_bm_gpus(world, location_id, body.network_type)
    if free < body.gpu_count:
        raise _bad(
            f"No availability for {body.gpu_count} {body.network_type} GPUs at location {location_id} "
            f"({free} available): try another location or network type"
        )
    return location_id


def _new_rental(world: World, body: BareMetalCreate, location_id: str, keys: tuple[str, ...]) -> JSONDict:
    rental_id, nodes = world.new_id(), body.gpu_count // int(_BM_SPECS["gpu_count"])
    port = world.settings.ssh_port  # bare metal answers SSH on the machine itself: no port forward
    ips = [world.allocate_ip(port) for _ in range(nodes)]
    rental: JSONDict = {
        "id": rental_id,
        "name": body.name,
        "creation_timestamp": utc_now(),
        "status": "Pending",
        "power_status": "Pending",
        "node_count": nodes,
        "specs_per_node": dict(_BM_SPECS),
        "rate_hourly": _fmt(body.gpu_count * _BM_GPU_PRICE[body.network_type]),
        "network_type": body.network_type,
        "username": _BM_USER,
        "node_networking": [
            {"public_ip": ip, "private_ip": f"192.168.{n // 250}.{n % 250 + 2}"} for n, ip in enumerate(ips)
        ],
        "sub_order": None if body.sub_order is None else str(body.sub_order),
        "storage_id": None if body.storage_id is None else str(body.storage_id),
        "storage_pv": None,
        "storage_pvc": None,
        "k8s_cluster_id": world.new_id(),
        "kubeconfig": None,
        "tags": list(body.tags),
    }
    _rentals(world)[rental_id] = rental
    # One sshd per rental, on its first node (the emulator does not run one per node).
    world.private(NAME, rental_id).update(location=location_id, ssh=SshSpec(ip=ips[0], port=port, authorized_keys=keys))
    return rental


def _rental_to(world: World, rental_id: str, **fields: str) -> Callable[[], None]:
    def apply() -> None:
        rental = _rentals(world).get(rental_id)
        if rental is not None:
            rental.update(fields)

    return apply


@both(api.post, "/bare-metal/", status_code=201)
def create_bare_metal(body: BareMetalCreate, world: WorldDep) -> JSONDict:
    with world.lock:
        keys = _vm_keys(world, body)
        location_id = _check_bm_order(world, body)
        rental_id = _new_rental(world, body, location_id, keys)["id"]
    up = _rental_to(world, rental_id, status="Running", power_status="Running")
    world.run_steps(NAME, rental_id, [Step(at=world.settings.provision_seconds, ssh="up", apply=up)])
    return {"rental_id": rental_id, "warning": None}


@both(api.patch, "/bare-metal/{baremetal_rental_id}")
def patch_bare_metal(baremetal_rental_id: uuid.UUID, body: VmPatch, world: WorldDep) -> JSONDict:
    with world.lock:
        rental = _rental_or_404(world, baremetal_rental_id)
        if rental["status"] == "Terminating":
            raise _bad("Bare metal rental is terminating")
        if body.name is not None:
            rental["name"] = body.name
        if body.tags is not None:
            rental["tags"] = list(body.tags)
        return {"name": rental["name"], "tags": rental["tags"]}


@both(api.delete, "/bare-metal/{baremetal_rental_id}", status_code=202)
def delete_bare_metal(baremetal_rental_id: uuid.UUID, world: WorldDep) -> None:
    with world.lock:
        rental = _rental_or_404(world, baremetal_rental_id)
        if rental["status"] == "Terminating":
            return  # already on its way out: deleting again is harmless
        rental["status"] = "Terminating"
    rental_id = rental["id"]
    world.run_steps(
        NAME,
        rental_id,
        [
            Step(at=0, ssh="down", apply=lambda: None),
            Step(at=world.settings.provision_seconds / 2, apply=lambda: world.forget(NAME, "bare_metal", rental_id)),
        ],
    )


def _settled(rental: JSONDict, action: str) -> None:
    """Power and reboot need a rental that is neither terminating nor in the middle of a change."""
    if rental["status"] != "Running" or rental["power_status"] in ("Starting", "Stopping"):
        state = rental["status"] if rental["status"] != "Running" else rental["power_status"]
        raise _bad(f"Bare metal rental is {state.lower()}; {action} it once that is over")


@both(api.put, "/bare-metal/{baremetal_rental_id}/power-status")
def set_bare_metal_power(baremetal_rental_id: uuid.UUID, body: BareMetalPower, world: WorldDep) -> Response:
    p = world.settings.provision_seconds
    with world.lock:
        rental = _rental_or_404(world, baremetal_rental_id)
        wanted = "Running" if body.status == "started" else "Stopped"
        if rental["status"] == "Running" and rental["power_status"] == wanted:
            return Response(status_code=200)
        _settled(rental, "start" if body.status == "started" else "stop")
        rental_id = rental["id"]
        if body.status == "started":
            rental["power_status"] = "Starting"
            steps = [Step(at=p, ssh="up", apply=_rental_to(world, rental_id, power_status="Running"))]
        else:
            rental["power_status"] = "Stopping"
            steps = [Step(at=p / 2, ssh="down", apply=_rental_to(world, rental_id, power_status="Stopped"))]
    world.run_steps(NAME, rental_id, steps)
    return Response(status_code=200)


@both(api.post, "/bare-metal/{baremetal_rental_id}/reboot", status_code=201)
def reboot_bare_metal(baremetal_rental_id: uuid.UUID, body: BareMetalReboot, world: WorldDep) -> Response:
    with world.lock:
        rental = _rental_or_404(world, baremetal_rental_id)
        ips = {node["public_ip"] for node in rental["node_networking"]}
        unknown = sorted(set(body.public_ips) - ips)
        if not body.public_ips or unknown:
            raise _bad(f"Not nodes of this rental: {', '.join(unknown) or '(no public_ips given)'}")
        _settled(rental, "reboot")
        if rental["power_status"] != "Running":
            raise _bad("Bare metal rental is stopped; start it instead of rebooting")
        rental["status"] = "Pending"  # as the doc says a reboot does
        rental_id = rental["id"]
    back = _rental_to(world, rental_id, status="Running")
    half = world.settings.provision_seconds / 2
    world.run_steps(NAME, rental_id, [Step(at=0, ssh="down", apply=lambda: None), Step(at=half, ssh="up", apply=back)])
    return Response(status_code=201)


# ------------------------------------------------------------------------------------------ seeding
_SEED_TAGS = (("team", ("research", "training", "inference")), ("env", ("prod", "staging")))


def seed_instances(world: World, count: int, first: int) -> None:
    """``count`` ``Running`` VMs (World.seed_hosts) cycling through presets, hostnodes and tags.

    They hold no GPUs of their hostnode (five nodes could never carry thousands of VMs), so creates keep
    working next to them; they have an address and a port forward but no sshd. Call with ``world.lock`` held.
    """
    presets = list(PRESETS.values())
    nodes = [node for loc in LOCATIONS for node in loc["hostnode_ids"]]
    now = utc_now()
    for index in range(first, first + count):
        preset = presets[index % len(presets)]
        tags = [f"{key}={values[index % len(values)]}" for key, values in _SEED_TAGS]
        vm_id = world.new_id()
        ip = world.allocate_ip()
        port = world.allocate_port(ip)
        _vms(world)[vm_id] = {
            "id": vm_id,
            "hostnode_id": nodes[index // len(presets) % len(nodes)],
            "type": "ondem",
            "status": "Running",
            "name": f"seed-{index:05d}",
            "resources": {**preset["resources"], "gpus": dict(preset["resources"]["gpus"])},
            "operating_system": preset["operating_system"],
            "pricing": _pricing(preset),
            "public_ip": ip,
            "port_forwards": [{"internal_port": 22, "external_port": port}],
            "timestamp_creation": now,
            "tags": tags,
        }
        world.private(NAME, vm_id).update(
            gpus=0, preset=preset["id"], ssh=SshSpec(ip=ip, port=port, authorized_keys=())
        )


# Routes are copied when a router is included, so this must come after every route above.
router = APIRouter()
router.include_router(open_api, tags=["voltagepark: open"])
router.include_router(api, dependencies=[Depends(require_token)], tags=["voltagepark"])

_CREATE_PATHS = {"/virtual-machines/instant", "/storage", "/organization/ssh-keys", "/bare-metal"}


def ledger(world: World) -> list[JSONDict]:
    """VMs (a ``Stopped`` VM is billed as a running one, as the doc says; a ``StoppedDisassociated`` one only for
    its storage: ``total_disassociated_per_hr``), bare-metal rentals (``rate_hourly`` until terminated, stopped or
    not: the nodes stay reserved), storage volumes, org keys."""
    with world.lock:
        items = []
        for vm in _vms(world).values():
            rate = "total_disassociated_per_hr" if vm["status"] == "StoppedDisassociated" else "total_associated_per_hr"
            items.append(ledger_item("instance", vm["id"], vm["name"], float(vm["pricing"][rate])))
        items += [
            ledger_item("bare_metal", r["id"], r["name"], float(r["rate_hourly"])) for r in _rentals(world).values()
        ]
        items += [ledger_item("volume", v["id"], v["name"], float(v["rate_hourly"])) for v in _storage(world).values()]
        items += [ledger_item("ssh_key", k["id"], k["name"], None, billed=False) for k in _org_keys(world).values()]
        return items


SPEC = ProviderSpec(
    name=NAME,
    prefix=PREFIX,
    router=router,
    error_body=error_body,
    is_create_request=lambda method, path: method == "POST" and path.rstrip("/") in _CREATE_PATHS,
    seed=seed_instances,
    ledger=ledger,
)

"""Voltage Park's wire: routes with their request and response shapes, offset pages, error bodies, and SPEC.

State changes go through :mod:`.models`.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator

from gpucloud.emulator.base import ProviderError, ProviderSpec, WorldDep
from gpucloud.emulator.base import with_and_without_slash as both
from gpucloud.emulator.common import find, posts_to
from gpucloud.emulator.voltagepark.models import (
    BM_NODES,
    HOSTNODE_LOCATION,
    LIVE_GPU_STATES,
    LOCATIONS,
    NAME,
    PRESETS,
    STORAGE_RATE_PER_GB,
    BareMetalCreate,
    StorageCreate,
    StoragePatch,
    VmCreate,
    bad,
    bm_location,
    change_storage,
    check_key,
    deploy_rental,
    deploy_vm,
    fmt,
    hostnode,
    ledger,
    location_view,
    new_storage,
    not_found,
    org_keys,
    power_rental,
    power_vm,
    preset_view,
    reboot_rental,
    remove_storage,
    rental_or_404,
    rentals,
    seed_instances,
    storage_or_404,
    storage_volumes,
    terminate_rental,
    terminate_vm,
    vm_or_404,
    vms,
)
from gpucloud.emulator.world import JSONDict


# ------------------------------------------------------------------------------------------ errors, auth
def error_body(status: int, message: str, code: str | None = None) -> JSONDict:
    return {"detail": message}


_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_api_key = APIKeyHeader(name="x-api-token", auto_error=False, description="API key")
_API_TOKEN_PATHS = ("/organization/ssh-keys", "/storage")  # documented with x-api-token; the rest with Bearer


async def require_token(
    request: Request,
    world: WorldDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> None:
    if SPEC.relative(request.url.path).startswith(_API_TOKEN_PATHS):
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


# ------------------------------------------------------------------------------------------ open endpoints
@both(open_api.get, "/instant-deploy-presets/")
def list_presets(world: WorldDep, available: bool | None = None) -> list[JSONDict]:
    with world.lock:
        presets = [preset_view(world, p) for p in PRESETS.values()]
    if available is None:
        return presets
    return [p for p in presets if bool(p["location_ids_with_availability"]) == available]


@both(open_api.get, "/instant-deploy-presets/{instant_deploy_preset_id}")
def get_preset(instant_deploy_preset_id: uuid.UUID, world: WorldDep) -> JSONDict:
    preset = find(PRESETS, instant_deploy_preset_id, lambda: not_found("Instant deploy preset not found"))
    with world.lock:
        return preset_view(world, preset)


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
        return _page([location_view(world, loc) for loc in LOCATIONS], limit, offset)


@both(api.get, "/locations/{location_id}")
def get_location(location_id: uuid.UUID, world: WorldDep) -> JSONDict:
    loc = next((loc for loc in LOCATIONS if loc["id"] == str(location_id)), None)
    if loc is None:
        raise not_found("Location not found")
    with world.lock:
        return location_view(world, loc)


@both(api.get, "/hostnodes/{hostnode_id}")
def get_hostnode(hostnode_id: uuid.UUID, world: WorldDep) -> JSONDict:
    if str(hostnode_id) not in HOSTNODE_LOCATION:
        raise not_found("HostNode not found")
    with world.lock:
        return hostnode(world, str(hostnode_id))


class OrgKeyCreate(BaseModel):
    name: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9 \-]+$")
    content: str

    @field_validator("content")
    @classmethod
    def _valid_content(cls, value: str) -> str:
        return check_key(value)


@both(api.get, "/organization/ssh-keys")
def list_org_keys(world: WorldDep, limit: Annotated[int, Query(ge=1, le=150)] = 150, offset: Offset = 0) -> JSONDict:
    with world.lock:
        return _page(list(org_keys(world).values()), limit, offset)


@both(api.post, "/organization/ssh-keys", status_code=201)
def create_org_key(body: OrgKeyCreate, world: WorldDep) -> JSONDict:
    with world.lock:
        if any(k["name"] == body.name for k in org_keys(world).values()):
            raise bad(f"An SSH key named {body.name!r} already exists")
        key = {"id": world.new_id(), "name": body.name, "content": body.content}
        org_keys(world)[key["id"]] = key
        return key


@both(api.delete, "/organization/ssh-keys/{ssh_key_id}", status_code=204)
def delete_org_key(ssh_key_id: uuid.UUID, world: WorldDep) -> Response:
    with world.lock:
        if str(ssh_key_id) not in org_keys(world):
            raise not_found("SSH key not found")
        world.forget(NAME, "ssh_keys", str(ssh_key_id))
    return Response(status_code=204)


class VmPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1)
    tags: list[str] | None = None


def _rename_and_tag(record: JSONDict, body: VmPatch, what: str) -> JSONDict:
    """PATCH of a VM or a bare-metal rental: the fields given change (not while it terminates)."""
    if record["status"] == "Terminating":
        raise bad(f"{what} is terminating")
    if body.name is not None:
        record["name"] = body.name
    if body.tags is not None:
        record["tags"] = list(body.tags)
    return {"name": record["name"], "tags": record["tags"]}


class PowerStatus(BaseModel):
    status: Literal["started", "stopped", "stopped_disassociated"]


@both(api.post, "/virtual-machines/instant", status_code=201)
def create_vm(body: VmCreate, world: WorldDep) -> JSONDict:
    return {"vm_id": deploy_vm(world, body)}


@both(api.get, "/virtual-machines/", response_model=JSONDict)
def list_vms(world: WorldDep, limit: Annotated[int, Query(ge=1, le=100)] = 10, offset: Offset = 0) -> Response:
    # Rendered here, under the lock, straight to JSON: FastAPI's response validation and encoding of thousands
    # of instances (seed_hosts) cost more than the listing itself.
    with world.lock:
        return JSONResponse(_page(list(vms(world).values()), limit, offset))


@both(api.get, "/virtual-machines/{virtual_machine_id}")
def get_vm(virtual_machine_id: uuid.UUID, world: WorldDep) -> JSONDict:
    with world.lock:
        return vm_or_404(world, virtual_machine_id)


@both(api.patch, "/virtual-machines/{virtual_machine_id}")
def patch_vm(virtual_machine_id: uuid.UUID, body: VmPatch, world: WorldDep) -> JSONDict:
    with world.lock:
        return _rename_and_tag(vm_or_404(world, virtual_machine_id), body, "Virtual machine")


@both(api.delete, "/virtual-machines/{virtual_machine_id}", status_code=202)
def delete_vm(virtual_machine_id: uuid.UUID, world: WorldDep) -> None:
    terminate_vm(world, virtual_machine_id)


@both(api.put, "/virtual-machines/{virtual_machine_id}/power-status")
def set_power(virtual_machine_id: uuid.UUID, body: PowerStatus, world: WorldDep) -> JSONDict:
    power_vm(world, virtual_machine_id, body.status)
    return {"status": body.status}


# ------------------------------------------------------------------------------------------ storage
@both(api.get, "/storage/hourly-rate")
def storage_rate() -> JSONDict:
    return {"hourly_rate_per_gb": fmt(STORAGE_RATE_PER_GB)}


@both(api.get, "/storage/")
def list_storage(world: WorldDep, limit: Annotated[int, Query(ge=1, le=100)] = 20, offset: Offset = 0) -> JSONDict:
    with world.lock:
        return _page(list(storage_volumes(world).values()), limit, offset)


@both(api.get, "/storage/{storage_id}")
def get_storage(storage_id: uuid.UUID, world: WorldDep) -> JSONDict:
    with world.lock:
        return {"used_capacity_bytes": 0, **storage_or_404(world, storage_id)}


@both(api.post, "/storage/", status_code=201)
def create_storage(body: StorageCreate, world: WorldDep) -> JSONDict:
    return new_storage(world, body)


@both(api.patch, "/storage/{storage_id}")
def patch_storage(storage_id: uuid.UUID, body: StoragePatch, world: WorldDep) -> JSONDict:
    return change_storage(world, storage_id, body)


@both(api.delete, "/storage/{storage_id}", status_code=204)
def delete_storage(storage_id: uuid.UUID, world: WorldDep) -> Response:
    remove_storage(world, storage_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------ billing
@both(api.get, "/billing/hourly-rate")
def hourly_rate(world: WorldDep) -> JSONDict:
    total = 0.0
    with world.lock:
        for vm in vms(world).values():
            if vm["status"] in LIVE_GPU_STATES:
                total += float(vm["pricing"]["total_associated_per_hr"])
            elif vm["status"] == "StoppedDisassociated":
                total += float(vm["pricing"]["total_disassociated_per_hr"])
        total += sum(v["size_in_gb"] * STORAGE_RATE_PER_GB for v in storage_volumes(world).values())
        total += sum(float(r["rate_hourly"]) for r in rentals(world).values())
    return {"rate_hourly": fmt(total)}


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


class BareMetalPower(BaseModel):
    status: Literal["started", "stopped"]


class BareMetalReboot(BaseModel):
    public_ips: list[str]


@both(open_api.get, "/bare-metal/locations")
def list_bare_metal_locations(world: WorldDep) -> JSONDict:
    with world.lock:
        rows = [bm_location(world, loc["id"]) for loc in LOCATIONS if BM_NODES.get(loc["city"])]
    return _page(rows, len(rows), 0)


@both(api.get, "/bare-metal/")
def list_bare_metal(world: WorldDep, limit: Annotated[int, Query(ge=1, le=100)] = 20, offset: Offset = 0) -> JSONDict:
    with world.lock:
        return _page(list(rentals(world).values()), limit, offset)


@both(api.post, "/bare-metal/", status_code=201)
def create_bare_metal(body: BareMetalCreate, world: WorldDep) -> JSONDict:
    return {"rental_id": deploy_rental(world, body), "warning": None}


@both(api.patch, "/bare-metal/{baremetal_rental_id}")
def patch_bare_metal(baremetal_rental_id: uuid.UUID, body: VmPatch, world: WorldDep) -> JSONDict:
    with world.lock:
        return _rename_and_tag(rental_or_404(world, baremetal_rental_id), body, "Bare metal rental")


@both(api.delete, "/bare-metal/{baremetal_rental_id}", status_code=202)
def delete_bare_metal(baremetal_rental_id: uuid.UUID, world: WorldDep) -> None:
    terminate_rental(world, baremetal_rental_id)


@both(api.put, "/bare-metal/{baremetal_rental_id}/power-status")
def set_bare_metal_power(baremetal_rental_id: uuid.UUID, body: BareMetalPower, world: WorldDep) -> Response:
    power_rental(world, baremetal_rental_id, body.status)
    return Response(status_code=200)


@both(api.post, "/bare-metal/{baremetal_rental_id}/reboot", status_code=201)
def reboot_bare_metal(baremetal_rental_id: uuid.UUID, body: BareMetalReboot, world: WorldDep) -> Response:
    reboot_rental(world, baremetal_rental_id, body.public_ips)
    return Response(status_code=201)


# Routes are copied when a router is included, so this must come after every route above.
router = APIRouter()
router.include_router(open_api, tags=["voltagepark: open"])
router.include_router(api, dependencies=[Depends(require_token)], tags=["voltagepark"])


SPEC = ProviderSpec(
    name=NAME,
    router=router,
    error_body=error_body,
    is_create_request=posts_to("/virtual-machines/instant", "/storage", "/organization/ssh-keys", "/bare-metal"),
    seed=seed_instances,
    ledger=ledger,
)

"""DataCrunch / Verda public API v1, emulated under ``/datacrunch/v1`` (wire format only).

Follows /work/shared/api-docs/datacrunch.txt and the wire facts of the official ``verda`` SDK
(datacrunch-sdk-notes.md, section 9): JSON OAuth2 token endpoint, bearer auth everywhere else, every
error as ``{"code", "message"}`` (request validation errors are 400 ``invalid_request``, not 422),
bare-text ids from create endpoints, ``GET /sshkeys/{id}`` and ``GET /scripts/{id}`` as one-element lists.

Choices where the docs are silent:
- Create status codes: instances and volumes 202 (asynchronous work), ssh keys and scripts 201; the body is
  always the bare id as ``text/plain``. ``PUT /instances`` answers 202 with ``[{action, instanceId, status}]``
  (accepted by both official SDKs); ``PUT /volumes`` answers 202 with an empty body, except ``clone``
  (a JSON array of new ids). Deletes answer 204.
- Instance lifecycle (P = ``provision_seconds``): ``ordered`` -> ``provisioning`` (0.1 P) -> ``running``
  (P). At ``running`` sshd already accepts connections, and ``ip``, ``os_volume_id`` and ``volume_ids``
  are set. ``shutdown``: stays ``running`` until ``offline`` (P/2). ``start``/``boot``: ``provisioning``
  -> ``running`` (P). ``force_shutdown``: ``offline`` at once. ``hibernate``: ``starting_hibernation`` ->
  ``hibernating`` (P/2); ``restore``: ``restoring`` -> ``running`` (P).
- ``delete``: status ``deleting`` at once (sshd stops), then after P/2 the instance is gone:
  absent from ``GET /instances`` and ``GET /instances/{id}`` answers 404 ``not_found``. Volumes named
  in ``volume_ids`` are deleted with it (to trash, or for good with ``delete_permanently``); its other
  volumes, including the OS volume, are detached and kept.
- Actions invalid for the current status -> 400 ``invalid_request`` (nothing is applied if any id fails);
  unknown ids -> 404. ``start``/``boot`` need ``offline``; ``shutdown`` needs ``running``;
  ``hibernate`` needs ``running``/``offline``; ``restore`` needs ``hibernating``.
- Volumes: a deleted volume keeps answering ``GET /volumes/{id}`` with ``status: "deleted"``; if it went
  to trash it is listed by ``GET /volumes/trash`` until deleted permanently. Attach, detach and delete of
  an attached volume need its instance ``offline``. Resize only grows.
- Instance creation checks, in order: request shape, ``instance_type``, ``location_code`` (required),
  image (an image type the instance type supports, or a detached OS volume id), ``ssh_key_ids``,
  ``startup_script_id``, ``existing_volumes`` -> 400; balance < price per hour -> 402
  ``insufficient_funds``; no capacity (``World.set_capacity``) -> 503 ``service_unavailable``.
- ``GET /instance-types/price-history``: the doc lists only the path; the query (``num_of_months`` 1-12,
  default 1; ``currency``) and body (``{instance_type: [{date, fixed_price_per_hour,
  dynamic_price_per_hour, currency}]}``, one record per day, newest first) follow the Go SDK [ext].
  Prices here never change, so every record repeats today's price. It is declared before
  ``/instance-types/{instance_type}`` so that route does not shadow it.
- Spot: ``is_spot`` instances bill the type's ``spot_price``. The control API call
  ``POST /_emulator/datacrunch/discontinue {"instance_id"}`` does what the real cloud does when it takes a spot
  instance back: status ``discontinued`` (sshd stops, billing stops), each volume created with it handled per its
  ``on_spot_discontinue`` (``keep_detached``, the default here, detaches and keeps it; ``move_to_trash`` and
  ``delete_permanently`` delete it), existing volumes detached. The record stays listed until a ``delete``.
- Availability: ``GET /instance-availability[/{type}]`` answers from the world's capacity switches
  (``POST /_emulator/capacity``); ``isSpot`` is accepted, and spot and on-demand stock are the same switches.
- SSH keys of an instance are resolved when it is created (later key deletions do not lock anyone out,
  as with cloud-init on the real service); its sshd listens on ``<ip>:<settings.ssh_port>``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from gpucloud.emulator.base import (
    ProviderError,
    ProviderSpec,
    WorldDep,
    fingerprint,
    ledger_item,
    parse_public_key,
    utc_now,
)
from gpucloud.emulator.sshd import SshSpec
from gpucloud.emulator.world import JSONDict, Step, World
from gpucloud.registry import registration

NAME = "datacrunch"
PREFIX = registration(NAME).emulator_prefix
_NS = uuid.UUID("4f7d6a52-3c1e-4d7b-9a55-0f1f6f0c9d21")  # stable catalogue ids across runs
_EUR_PER_USD = 0.92

_CODE_BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized_request",
    402: "insufficient_funds",
    403: "forbidden_action",
    404: "not_found",
    429: "too_many_requests",
    500: "server_error",
    503: "service_unavailable",
}

# ------------------------------------------------------------------------------------------ catalogue
_GPU_IMAGES = ("ubuntu-24.04-cuda-12.8-open-docker", "ubuntu-22.04-cuda-12.4-docker")
_PLAIN_IMAGES = ("ubuntu-24.04", "ubuntu-22.04")
_IMAGES: list[JSONDict] = [
    {
        "id": str(uuid.uuid5(_NS, image_type)),
        "name": name,
        "image_type": image_type,
        "details": details,
        "is_default": image_type == _GPU_IMAGES[0],
        "is_cluster": False,
        "category": "ubuntu",
    }
    for image_type, name, details in (
        (_GPU_IMAGES[0], "Ubuntu 24.04 + CUDA 12.8 Open + Docker", ["Ubuntu 24.04", "CUDA 12.8 open", "Docker"]),
        (_GPU_IMAGES[1], "Ubuntu 22.04 + CUDA 12.4 + Docker", ["Ubuntu 22.04", "CUDA 12.4", "Docker"]),
        (_PLAIN_IMAGES[0], "Ubuntu 24.04", ["Ubuntu 24.04"]),
        (_PLAIN_IMAGES[1], "Ubuntu 22.04", ["Ubuntu 22.04"]),
    )
]

# (type, gpu name, model, gpus, GB per GPU, vCPUs, RAM GB, USD/h, spot USD/h, p2p, best_for)
_TYPE_ROWS: list[tuple[str, str, str, int, int, int, int, float, float, str, list[str]]] = [
    ("1V100.6V", "Tesla V100 16GB", "V100", 1, 16, 6, 23, 0.39, 0.14, "", ["Inference", "Small training"]),
    ("1A100.22V", "A100 SXM4 80GB", "A100", 1, 80, 22, 120, 1.29, 0.45, "", ["Training", "Inference"]),
    ("1H100.80S.30V", "H100 SXM5 80GB", "H100", 1, 80, 30, 120, 2.29, 0.80, "", ["Training", "LLM inference"]),
    ("8H100.80S.176V", "H100 SXM5 80GB", "H100", 8, 80, 176, 1480, 18.32, 6.40, "900 GB/s", ["Large training"]),
    ("1L40S.20V", "L40S 48GB", "L40S", 1, 48, 20, 60, 0.91, 0.32, "", ["Inference", "Rendering"]),
    ("CPU.4V.16G", "", "CPU Node", 0, 0, 4, 16, 0.03, 0.01, "", ["Development", "CI"]),
]


def _type_entry(row: tuple[str, str, str, int, int, int, int, float, float, str, list[str]]) -> JSONDict:
    itype, gpu_name, model, gpus, gpu_gb, cpus, ram, price, spot, p2p, best_for = row
    gpu_desc = f"{gpus}x {gpu_name}" if gpus else ""
    return {
        "id": str(uuid.uuid5(_NS, itype)),
        "instance_type": itype,
        "price_per_hour": price,  # USD; rendered per currency by _render_type
        "spot_price": spot,
        "description": f"Dedicated Hardware Instance ({gpu_desc or f'{cpus} CPU'})",
        "cpu": {"description": f"{cpus} CPU", "number_of_cores": cpus},
        "gpu": {"description": gpu_desc, "number_of_gpus": gpus},
        "memory": {"description": f"{ram}GB RAM", "size_in_gigabytes": ram},
        "gpu_memory": {"description": f"{gpus * gpu_gb}GB GPU RAM" if gpus else "", "size_in_gigabytes": gpus * gpu_gb},
        "storage": {"description": "Dynamic"},
        "best_for": best_for,
        "model": model,
        "name": gpu_name or "CPU Node",
        "p2p": p2p,
        "manufacturer": "NVIDIA" if gpus else "AMD",
        "display_name": f"{gpus}x {model}" if gpus else f"{cpus} vCPU / {ram}GB",
        "supported_os": [*(_GPU_IMAGES if gpus else ()), *_PLAIN_IMAGES],
        "deploy_warning": None,
    }


INSTANCE_TYPES: dict[str, JSONDict] = {row[0]: _type_entry(row) for row in _TYPE_ROWS}

LOCATIONS: list[JSONDict] = [
    {"code": "FIN-01", "name": "Finland 1", "country": "Finland", "country_code": "FI"},
    {"code": "FIN-02", "name": "Finland 2", "country": "Finland", "country_code": "FI"},
    {"code": "FIN-03", "name": "Finland 3", "country": "Finland", "country_code": "FI"},
    {"code": "ICE-01", "name": "Iceland 1", "country": "Iceland", "country_code": "IS"},
]
_LOCATION_CODES = {loc["code"] for loc in LOCATIONS}

_VOLUME_PRICES = {"NVMe": 0.20, "HDD": 0.05, "NVMe_Shared": 0.20}  # USD per GB-month
VOLUME_TYPES: list[JSONDict] = [
    {
        "type": vtype,
        "price": {"price_per_month_per_gb": price, "cps_per_gb": round(price / 730, 6), "currency": "usd"},
        "is_shared_fs": vtype == "NVMe_Shared",
        "iops": "100k" if vtype.startswith("NVMe") else "1k",
    }
    for vtype, price in _VOLUME_PRICES.items()
]

_PERIODS: list[JSONDict] = [
    {
        "code": code,
        "name": name,
        "is_enabled": True,
        "unit_name": "month",
        "unit_value": months,
        "discount_percentage": discount,
    }
    for code, name, months, discount in (
        ("1_MONTH", "1 month", 1, 5),
        ("3_MONTHS", "3 months", 3, 10),
        ("12_MONTHS", "12 months", 12, 20),
    )
]

_DEFAULT_OS_VOLUME_GB = 50


def _render_type(entry: JSONDict, currency: str) -> JSONDict:
    rate = _EUR_PER_USD if currency == "eur" else 1.0
    price, spot = entry["price_per_hour"] * rate, entry["spot_price"] * rate
    return {
        **entry,
        "price_per_hour": f"{price:.2f}",  # the real API sends prices as strings
        "spot_price": f"{spot:.2f}",
        "dynamic_price": f"{price:.2f}",
        "max_dynamic_price": f"{price * 1.5:.2f}",
        "currency": currency,
    }


# ------------------------------------------------------------------------------------------ errors, auth
def error_body(status: int, message: str, code: str | None = None) -> JSONDict:
    fallback = "server_error" if status >= 500 else "invalid_request"
    return {"code": code or _CODE_BY_STATUS.get(status, fallback), "message": message}


def _http_error(status: int, detail: str) -> JSONDict:
    if status == 404:
        return error_body(404, "Resource not found, or invalid path", "not_found")
    return error_body(status, detail)


def _validation_error(errors: list[Any]) -> tuple[int, JSONDict]:
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg', 'invalid')}")
    return 400, error_body(400, "; ".join(parts) or "Invalid request", "invalid_request")


def _bad(message: str) -> ProviderError:
    return ProviderError(400, message, "invalid_request")


def _not_found(what: str, rid: str) -> ProviderError:
    return ProviderError(404, f"{what} {rid} not found", "not_found")


_bearer = HTTPBearer(auto_error=False, description="Access token from POST /oauth2/token")


def require_token(
    world: WorldDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProviderError(401, "Access token is missing", "unauthorized_request")
    verdict = world.check_access(NAME, credentials.credentials)
    if verdict != "ok":
        message = "Access token expired" if verdict == "expired" else "Access token is invalid"
        raise ProviderError(401, message, "unauthorized_request")


token_router = APIRouter()
api = APIRouter()


# ------------------------------------------------------------------------------------------ oauth2
class TokenRequest(BaseModel):
    grant_type: str
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None


@token_router.post("/oauth2/token", summary="Get access token for public API")
def get_token(body: TokenRequest, world: WorldDep) -> JSONDict:
    if body.grant_type == "client_credentials":
        if not body.client_id or not body.client_secret:
            raise _bad("client_id and client_secret are required")
        creds = world.settings.credentials[NAME]
        if (body.client_id, body.client_secret) != (creds["client_id"], creds["client_secret"]):
            raise ProviderError(401, "Invalid client credentials", "unauthorized_request")
        pair = world.issue_tokens(NAME, "client_credentials")
    elif body.grant_type == "refresh_token":
        if not body.refresh_token:
            raise _bad("refresh_token is required")
        refreshed = world.refresh_tokens(NAME, body.refresh_token)
        if refreshed is None:
            raise ProviderError(401, "Refresh token is invalid or revoked", "unauthorized_request")
        pair = refreshed
    else:
        raise _bad(f"Unsupported grant_type {body.grant_type!r}")
    return {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "scope": "cloud-api-v1",
    }


# ------------------------------------------------------------------------------------------ catalogue routes
@api.get("/balance")
def get_balance(world: WorldDep) -> JSONDict:
    return {"amount": round(world.balance(NAME), 2), "currency": "usd"}


@api.get("/instance-types")
@api.get("/instances/types", include_in_schema=False)
def list_instance_types(currency: Literal["usd", "eur"] = "usd") -> list[JSONDict]:
    return [_render_type(t, currency) for t in INSTANCE_TYPES.values()]


@api.get("/instance-types/price-history")
def get_price_history(
    num_of_months: Annotated[int, Query(ge=1, le=12)] = 1,
    currency: Literal["usd", "eur"] = "usd",
) -> dict[str, list[JSONDict]]:
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(num_of_months * 30)]
    return {name: _price_records(_render_type(t, currency), days) for name, t in INSTANCE_TYPES.items()}


def _price_records(rendered: JSONDict, days: list[str]) -> list[JSONDict]:
    record = {
        "fixed_price_per_hour": rendered["price_per_hour"],
        "dynamic_price_per_hour": rendered["dynamic_price"],
        "currency": rendered["currency"],
    }
    return [{"date": day, **record} for day in days]


@api.get("/instance-types/{instance_type}")
def get_instance_type(instance_type: str, currency: Literal["usd", "eur"] = "usd") -> JSONDict:
    return _render_type(_type_or_404(instance_type), currency)


def _type_or_404(instance_type: str) -> JSONDict:
    entry = INSTANCE_TYPES.get(instance_type)
    if entry is None:
        raise _not_found("Instance type", instance_type)
    return entry


@api.get("/images")
def list_images(instance_type: str | None = None) -> list[JSONDict]:
    if instance_type is None:
        return _IMAGES
    entry = INSTANCE_TYPES.get(instance_type)
    if entry is None:
        raise _bad(f"Unknown instance type {instance_type}")
    return [i for i in _IMAGES if i["image_type"] in entry["supported_os"]]


@api.get("/images/cluster")
def list_cluster_images() -> list[JSONDict]:
    return []


@api.get("/locations")
def list_locations() -> list[JSONDict]:
    return LOCATIONS


@api.get("/volume-types")
def list_volume_types() -> list[JSONDict]:
    return VOLUME_TYPES


@api.get("/long-term/periods")
@api.get("/long-term/periods/instances")
@api.get("/long-term/periods/clusters")
def list_long_term_periods() -> list[JSONDict]:
    return _PERIODS


@api.get("/instance-availability")
def list_availability(
    world: WorldDep,
    is_spot: Annotated[str | None, Query(alias="isSpot")] = None,
    location_code: str | None = None,
) -> list[JSONDict]:
    codes = [c["code"] for c in LOCATIONS if location_code in (None, c["code"])]
    return [
        {"location_code": code, "availabilities": [t for t in INSTANCE_TYPES if world.has_capacity(NAME, t, code)]}
        for code in codes
    ]


@api.get("/instance-availability/{instance_type}")
@api.get("/instances/availability/{instance_type}", include_in_schema=False)
def get_availability(
    instance_type: str,
    world: WorldDep,
    is_spot: Annotated[str | None, Query(alias="isSpot")] = None,
    location_code: str | None = None,
) -> bool:
    _type_or_404(instance_type)
    codes = [location_code] if location_code else sorted(_LOCATION_CODES)
    return any(world.has_capacity(NAME, instance_type, code) for code in codes)


# ------------------------------------------------------------------------------------------ ssh keys
class SshKeyCreate(BaseModel):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


class SshKeyBulkDelete(BaseModel):
    keys: list[str]


def _keys(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "ssh_keys")


@api.get("/sshkeys")
@api.get("/ssh-keys")
def list_ssh_keys(world: WorldDep) -> list[JSONDict]:
    with world.lock:
        return list(_keys(world).values())


@api.get("/sshkeys/{key_id}")
@api.get("/ssh-keys/{key_id}")
def get_ssh_key(key_id: str, world: WorldDep) -> list[JSONDict]:
    with world.lock:
        key = _keys(world).get(key_id)
        if key is None:
            raise _not_found("SSH key", key_id)
        return [key]


@api.post("/sshkeys", status_code=201, response_class=PlainTextResponse)
@api.post("/ssh-keys", status_code=201, response_class=PlainTextResponse)
def create_ssh_key(body: SshKeyCreate, world: WorldDep) -> PlainTextResponse:
    if parse_public_key(body.key) is None:
        raise _bad("key is not a valid OpenSSH public key")
    key_id = world.new_id()
    record = {
        "id": key_id,
        "name": body.name,
        "key": body.key.strip(),
        "fingerprint": fingerprint(body.key),
        "created_at": utc_now(),
    }
    with world.lock:
        _keys(world)[key_id] = record
    return PlainTextResponse(key_id, status_code=201)


@api.delete("/sshkeys/{key_id}", status_code=204)
@api.delete("/ssh-keys/{key_id}", status_code=204)
def delete_ssh_key(key_id: str, world: WorldDep) -> Response:
    _delete_many(world, "ssh_keys", [key_id], "SSH key")
    return Response(status_code=204)


@api.delete("/sshkeys", status_code=204)
@api.delete("/ssh-keys", status_code=204)
def delete_ssh_keys(body: SshKeyBulkDelete, world: WorldDep) -> Response:
    _delete_many(world, "ssh_keys", body.keys, "SSH key")
    return Response(status_code=204)


def _delete_many(world: World, kind: str, ids: list[str], what: str) -> None:
    with world.lock:
        items = world.collection(NAME, kind)
        missing = [i for i in ids if i not in items]
        if missing:
            raise _not_found(what, missing[0])
        for rid in ids:
            world.forget(NAME, kind, rid)


# ------------------------------------------------------------------------------------------ startup scripts
class ScriptCreate(BaseModel):
    name: str = Field(min_length=1)
    script: str


class ScriptBulkDelete(BaseModel):
    scripts: list[str]


@api.get("/scripts")
def list_scripts(
    world: WorldDep,
    response: Response,
    page: Annotated[int | None, Query(ge=1)] = None,
    page_size: Annotated[int | None, Query(alias="pageSize", ge=1, le=100)] = None,
) -> list[JSONDict]:
    with world.lock:
        scripts = list(world.collection(NAME, "scripts").values())
    if page is None and page_size is None:
        return scripts  # the whole list, as the SDK expects
    page, size = page or 1, page_size or 100
    response.headers.update({"X-Page": str(page), "X-Page-Size": str(size), "X-Total-Count": str(len(scripts))})
    return scripts[(page - 1) * size : page * size]


@api.get("/scripts/{script_id}")
def get_script(script_id: str, world: WorldDep) -> list[JSONDict]:
    with world.lock:
        script = world.collection(NAME, "scripts").get(script_id)
        if script is None:
            raise _not_found("Startup script", script_id)
        return [script]


@api.post("/scripts", status_code=201, response_class=PlainTextResponse)
def create_script(body: ScriptCreate, world: WorldDep) -> PlainTextResponse:
    script_id = world.new_id()
    with world.lock:
        world.collection(NAME, "scripts")[script_id] = {
            "id": script_id,
            "name": body.name,
            "script": body.script,
            "created_at": utc_now(),
        }
    return PlainTextResponse(script_id, status_code=201)


@api.delete("/scripts/{script_id}", status_code=204)
def delete_script(script_id: str, world: WorldDep) -> Response:
    _delete_many(world, "scripts", [script_id], "Startup script")
    return Response(status_code=204)


@api.delete("/scripts", status_code=204)
def delete_scripts(body: ScriptBulkDelete, world: WorldDep) -> Response:
    _delete_many(world, "scripts", body.scripts, "Startup script")
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------ volumes (store)
def _volumes(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "volumes")


def _instances(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "instances")


def _new_volume(world: World, name: str, size: int, vtype: str, location: str, *, is_os: bool = False) -> JSONDict:
    vol_id = world.new_id()
    monthly = round(size * _VOLUME_PRICES[vtype], 2)
    volume: JSONDict = {
        "id": vol_id,
        "status": "detached",
        "name": name,
        "size": size,
        "type": vtype,
        "is_os_volume": is_os,
        "created_at": utc_now(),
        "target": None,
        "location": location,
        "instance_id": None,
        "ssh_key_ids": [],
        "deleted_at": None,
        "pseudo_path": None,
        "mount_command": None,
        "create_directory_command": None,
        "filesystem_to_fstab_command": None,
        "contract": "PAY_AS_YOU_GO",
        "base_hourly_cost": round(monthly / 730, 4),
        "monthly_price": monthly,
        "currency": "usd",
        "long_term": None,
    }
    if vtype == "NVMe_Shared":
        path = f"/{name}-{vol_id[:8]}"
        volume.update(
            pseudo_path=path,
            mount_command=f"mount -t nfs nfs.{location.lower()}.emulator.invalid:{path} /mnt/{name}",
            create_directory_command=f"mkdir -p /mnt/{name}",
            filesystem_to_fstab_command=(
                f"echo 'nfs.{location.lower()}.emulator.invalid:{path} /mnt/{name} nfs defaults 0 0' >> /etc/fstab"
            ),
        )
    _volumes(world)[vol_id] = volume
    return volume


def _attach(world: World, volume: JSONDict, instance: JSONDict, status: str = "attached") -> None:
    used = {v["target"] for v in _volumes(world).values() if v["instance_id"] == instance["id"]}
    target = "vda" if volume["is_os_volume"] else next(f"vd{c}" for c in "bcdefghijklmnop" if f"vd{c}" not in used)
    volume.update(status=status, instance_id=instance["id"], target=target, ssh_key_ids=list(instance["ssh_key_ids"]))
    if instance["status"] not in ("ordered", "provisioning") and volume["id"] not in instance["volume_ids"]:
        instance["volume_ids"].append(volume["id"])


def _detach(world: World, volume: JSONDict) -> None:
    instance = _instances(world).get(volume["instance_id"] or "")
    if instance is not None and volume["id"] in instance["volume_ids"]:
        instance["volume_ids"].remove(volume["id"])
    volume.update(status="detached", instance_id=None, target=None)


def _delete_volume(world: World, volume: JSONDict, permanent: bool) -> None:
    _detach(world, volume)
    volume.update(status="deleted", deleted_at=volume["deleted_at"] or utc_now())
    world.private(NAME, volume["id"])["in_trash"] = not permanent


def _live_volume(world: World, vol_id: str) -> JSONDict:
    volume = _volumes(world).get(vol_id)
    if volume is None or volume["status"] == "deleted":
        raise _not_found("Volume", vol_id)
    return volume


def _target_instance(instance_id: str | None, instance_ids: list[str] | None) -> str | None:
    """The Go SDK sends ``instance_ids``; the Python SDK ``instance_id``."""
    return instance_id or next(iter(instance_ids or []), None)


def _require_offline(world: World, volume: JSONDict, doing: str) -> None:
    instance = _instances(world).get(volume["instance_id"] or "")
    if instance is not None and instance["status"] != "offline":
        raise _bad(f"Cannot {doing} volume {volume['id']}: instance {instance['id']} must be offline")


# ------------------------------------------------------------------------------------------ volumes (routes)
class VolumeCreate(BaseModel):
    type: str
    name: str = Field(min_length=1)
    size: int = Field(ge=1)
    instance_id: str | None = None
    instance_ids: list[str] | None = None
    location_code: str = "FIN-03"


class VolumeAction(BaseModel):
    id: str | list[str]
    action: str
    instance_id: str | None = None
    instance_ids: list[str] | None = None
    name: str | None = None
    size: int | None = None
    type: str | None = None
    is_permanent: bool = False


class VolumeDelete(BaseModel):
    is_permanent: bool = False


@api.get("/volumes")
def list_volumes(world: WorldDep, status: str | None = None) -> list[JSONDict]:
    with world.lock:
        vols = list(_volumes(world).values())
    if status is None:
        return [v for v in vols if v["status"] != "deleted"]
    return [v for v in vols if v["status"] == status]


@api.get("/volumes/trash")
def list_trash(world: WorldDep) -> list[JSONDict]:
    with world.lock:
        return [v for v in _volumes(world).values() if world.private(NAME, v["id"]).get("in_trash")]


@api.get("/volumes/{volume_id}")
def get_volume(volume_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        volume = _volumes(world).get(volume_id)
        if volume is None:
            raise _not_found("Volume", volume_id)
        return volume


@api.post("/volumes", status_code=202, response_class=PlainTextResponse)
def create_volume(body: VolumeCreate, world: WorldDep) -> PlainTextResponse:
    if body.type not in _VOLUME_PRICES:
        raise _bad(f"Unknown volume type {body.type}; expected one of {sorted(_VOLUME_PRICES)}")
    if body.location_code not in _LOCATION_CODES:
        raise _bad(f"Unknown location_code {body.location_code}")
    instance_id = _target_instance(body.instance_id, body.instance_ids)
    with world.lock:
        instance = None
        if instance_id is not None:
            instance = _instances(world).get(instance_id)
            if instance is None:
                raise _not_found("Instance", instance_id)
            if instance["status"] != "offline":
                raise _bad(f"Instance {instance_id} must be offline to attach a new volume")
        volume = _new_volume(world, body.name, body.size, body.type, body.location_code)
        if instance is not None:
            _attach(world, volume, instance)
        return PlainTextResponse(volume["id"], status_code=202)


@api.put("/volumes", status_code=202)
def volume_action(body: VolumeAction, world: WorldDep) -> Response:
    ids = [body.id] if isinstance(body.id, str) else list(body.id)
    handler = _VOLUME_ACTIONS.get(body.action)
    if handler is None:
        raise _bad(f"Unknown volume action {body.action}; expected one of {sorted(_VOLUME_ACTIONS)}")
    if not ids:
        raise _bad("id must name at least one volume")
    with world.lock:
        return handler(world, ids, body)


@api.delete("/volumes/{volume_id}", status_code=204)
def delete_volume(volume_id: str, world: WorldDep, body: VolumeDelete | None = None, force: bool = False) -> Response:
    permanent = force or (body is not None and body.is_permanent)
    with world.lock:
        _vol_delete(world, [volume_id], VolumeAction(id=volume_id, action="delete", is_permanent=permanent))
    return Response(status_code=204)


def _vol_attach(world: World, ids: list[str], body: VolumeAction) -> Response:
    instance_id = _target_instance(body.instance_id, body.instance_ids)
    if not instance_id:
        raise _bad("instance_id is required for attach")
    instance = _instances(world).get(instance_id)
    if instance is None:
        raise _not_found("Instance", instance_id)
    volumes = [_live_volume(world, i) for i in ids]
    if instance["status"] != "offline":
        raise _bad(f"Instance {instance_id} must be offline to attach volumes")
    for volume in volumes:
        if volume["instance_id"] is not None:
            raise _bad(f"Volume {volume['id']} is already attached")
        if volume["location"] != instance["location"]:
            raise _bad(f"Volume {volume['id']} is in {volume['location']}, instance in {instance['location']}")
    for volume in volumes:
        _attach(world, volume, instance)
    return Response(status_code=202)


def _vol_detach(world: World, ids: list[str], body: VolumeAction) -> Response:
    volumes = [_live_volume(world, i) for i in ids]
    for volume in volumes:
        if volume["instance_id"] is None:
            raise _bad(f"Volume {volume['id']} is not attached")
        _require_offline(world, volume, "detach")
    for volume in volumes:
        _detach(world, volume)
    return Response(status_code=202)


def _vol_rename(world: World, ids: list[str], body: VolumeAction) -> Response:
    if not body.name:
        raise _bad("name is required for rename")
    for volume in [_live_volume(world, i) for i in ids]:
        volume["name"] = body.name
    return Response(status_code=202)


def _vol_resize(world: World, ids: list[str], body: VolumeAction) -> Response:
    if body.size is None:
        raise _bad("size is required for resize")
    volumes = [_live_volume(world, i) for i in ids]
    for volume in volumes:
        if body.size <= volume["size"]:
            raise _bad(f"Volume {volume['id']} can only grow: {body.size} GB <= current {volume['size']} GB")
    for volume in volumes:
        monthly = round(body.size * _VOLUME_PRICES[volume["type"]], 2)
        volume.update(size=body.size, monthly_price=monthly, base_hourly_cost=round(monthly / 730, 4))
    return Response(status_code=202)


def _vol_delete(world: World, ids: list[str], body: VolumeAction) -> Response:
    volumes = []
    for vol_id in ids:
        volume = _volumes(world).get(vol_id)
        in_trash = volume is not None and world.private(NAME, vol_id).get("in_trash")
        if volume is None or (volume["status"] == "deleted" and not in_trash):
            raise _not_found("Volume", vol_id)
        _require_offline(world, volume, "delete")
        volumes.append(volume)
    for volume in volumes:
        _delete_volume(world, volume, body.is_permanent)
    return Response(status_code=202)


def _vol_clone(world: World, ids: list[str], body: VolumeAction) -> Response:
    sources = [_live_volume(world, i) for i in ids]
    if body.type is not None and body.type not in _VOLUME_PRICES:
        raise _bad(f"Unknown volume type {body.type}")
    new_ids = []
    for src in sources:
        name = body.name or f"{src['name']}-clone"
        clone = _new_volume(world, name, src["size"], body.type or src["type"], src["location"])
        new_ids.append(clone["id"])
    return JSONResponse(new_ids, status_code=202)


_VOLUME_ACTIONS: dict[str, Callable[[World, list[str], VolumeAction], Response]] = {
    "attach": _vol_attach,
    "detach": _vol_detach,
    "rename": _vol_rename,
    "resize": _vol_resize,
    "delete": _vol_delete,
    "clone": _vol_clone,
}


# ------------------------------------------------------------------------------------------ instances (store)
OnSpotDiscontinue = Literal["keep_detached", "move_to_trash", "delete_permanently"]


class OsVolumeSpec(BaseModel):
    name: str = Field(min_length=1)
    size: int = Field(ge=1)
    on_spot_discontinue: OnSpotDiscontinue | None = None


class NewVolumeSpec(BaseModel):
    name: str = Field(min_length=1)
    size: int = Field(ge=1)
    type: str = "NVMe"
    location_code: str | None = None
    on_spot_discontinue: OnSpotDiscontinue | None = None


class InstanceCreate(BaseModel):
    instance_type: str
    image: str
    hostname: str = Field(min_length=1)
    description: str = ""
    location_code: str  # required by the real API since 2026-03-23
    ssh_key_ids: list[str] = []
    startup_script_id: str | None = None
    os_volume: OsVolumeSpec | None = None
    volumes: list[NewVolumeSpec] = []
    existing_volumes: list[str] = []
    is_spot: bool = False
    coupon: str | None = None
    contract: Literal["LONG_TERM", "PAY_AS_YOU_GO", "SPOT"] | None = None
    pricing: Literal["DYNAMIC_PRICE", "FIXED_PRICE"] | None = None


class InstanceAction(BaseModel):
    id: str | list[str]
    action: str
    volume_ids: list[str] | None = None
    delete_permanently: bool = False


def _check_create(world: World, body: InstanceCreate) -> tuple[JSONDict, JSONDict | None]:
    """Validate a create request (400s); returns (instance type entry, existing OS volume or None)."""
    entry = INSTANCE_TYPES.get(body.instance_type)
    if entry is None:
        raise _bad(f"Unknown instance_type {body.instance_type}")
    if body.location_code not in _LOCATION_CODES:
        raise _bad(f"Unknown location_code {body.location_code}")
    os_volume = _volumes(world).get(body.image)
    if os_volume is not None:
        if not os_volume["is_os_volume"] or os_volume["status"] != "detached":
            raise _bad(f"Volume {body.image} is not a detached OS volume")
    elif body.image not in entry["supported_os"]:
        raise _bad(f"Image {body.image} is not available for {body.instance_type}")
    missing = [k for k in body.ssh_key_ids if k not in _keys(world)]
    if missing:
        raise _bad(f"SSH key {missing[0]} not found")
    if body.startup_script_id and body.startup_script_id not in world.collection(NAME, "scripts"):
        raise _bad(f"Startup script {body.startup_script_id} not found")
    for vol_id in body.existing_volumes:
        vol = _volumes(world).get(vol_id)
        if vol is None or vol["status"] != "detached" or vol["location"] != body.location_code:
            raise _bad(f"Volume {vol_id} is not a detached volume in {body.location_code}")
    if any(v.type not in _VOLUME_PRICES for v in body.volumes):
        raise _bad(f"Unknown volume type; expected one of {sorted(_VOLUME_PRICES)}")
    return entry, os_volume


def _check_funds_and_capacity(world: World, body: InstanceCreate, entry: JSONDict) -> float:
    price = float(entry["spot_price"] if body.is_spot else entry["price_per_hour"])
    if world.balance(NAME) < price:
        raise ProviderError(402, "Not enough funds to deploy this instance", "insufficient_funds")
    if not world.take_capacity(NAME, body.instance_type, body.location_code):
        raise ProviderError(
            503,
            f"No capacity for {body.instance_type} in {body.location_code}, try again later",
            "service_unavailable",
        )
    return price


def _new_instance(world: World, body: InstanceCreate, entry: JSONDict, price: float) -> JSONDict:
    image = next((i for i in _IMAGES if i["image_type"] == body.image), None)
    inst_id = world.new_id()
    instance: JSONDict = {
        "id": inst_id,
        "instance_type": body.instance_type,
        "price_per_hour": price,
        "hostname": body.hostname,
        "description": body.description,
        "status": "ordered",
        "created_at": utc_now(),
        "ssh_key_ids": list(body.ssh_key_ids),
        **{k: dict(entry[k]) for k in ("cpu", "gpu", "memory", "gpu_memory", "storage")},
        "ip": None,
        "os_volume_id": None,
        "location": body.location_code,
        "image": body.image,
        "os_name": image["name"] if image else None,
        "startup_script_id": body.startup_script_id,
        "is_spot": body.is_spot,
        "contract": body.contract or ("SPOT" if body.is_spot else "PAY_AS_YOU_GO"),
        "pricing": body.pricing or "FIXED_PRICE",
        "jupyter_token": world.random_token(16),
        "volume_ids": [],
    }
    _instances(world)[inst_id] = instance
    return instance


def _create_volumes(world: World, body: InstanceCreate, instance: JSONDict, os_volume: JSONDict | None) -> None:
    """Attach the OS volume (new or given) and data volumes; they become 'attached' at running."""
    if os_volume is None:
        spec = body.os_volume or OsVolumeSpec(name=f"OS-{world.random_token(4)}", size=_DEFAULT_OS_VOLUME_GB)
        os_volume = _new_volume(world, spec.name, spec.size, "NVMe", body.location_code, is_os=True)
    private = world.private(NAME, instance["id"])
    private["os_volume"] = os_volume["id"]
    # What each volume made with the instance does if the spot instance is discontinued (default: kept).
    policies = private.setdefault("on_spot_discontinue", {})
    policies[os_volume["id"]] = (body.os_volume and body.os_volume.on_spot_discontinue) or "keep_detached"
    _attach(world, os_volume, instance, status="creating")
    for spec_v in body.volumes:
        vol = _new_volume(world, spec_v.name, spec_v.size, spec_v.type, spec_v.location_code or body.location_code)
        policies[vol["id"]] = spec_v.on_spot_discontinue or "keep_detached"
        _attach(world, vol, instance, status="creating")
    for vol_id in body.existing_volumes:
        _attach(world, _volumes(world)[vol_id], instance, status="creating")


def _ssh_spec(world: World, key_ids: list[str]) -> SshSpec:
    keys = tuple(_keys(world)[k]["key"] for k in key_ids)
    ip = world.allocate_ip(world.settings.ssh_port)
    return SshSpec(ip=ip, port=world.settings.ssh_port, authorized_keys=keys)


# ------------------------------------------------------------------------------------------ lifecycle
def _set_status(world: World, inst_id: str, status: str, only_from: tuple[str, ...] = ()) -> Callable[[], None]:
    def apply() -> None:
        instance = _instances(world).get(inst_id)
        if instance is not None and (not only_from or instance["status"] in only_from):
            instance["status"] = status

    return apply


def _mark_running(world: World, inst_id: str) -> Callable[[], None]:
    def apply() -> None:
        instance = _instances(world).get(inst_id)
        if instance is None:
            return
        private = world.private(NAME, inst_id)
        attached = [v for v in _volumes(world).values() if v["instance_id"] == inst_id]
        for vol in attached:
            if vol["status"] == "creating":
                vol["status"] = "attached"
        instance.update(
            status="running",
            ip=private["ssh"].ip,
            os_volume_id=private.get("os_volume"),
            volume_ids=[v["id"] for v in attached],
        )

    return apply


def _boot_steps(world: World, inst_id: str) -> list[Step]:
    p = world.settings.provision_seconds
    return [Step(at=p, ssh="up", apply=_mark_running(world, inst_id))]


def _act_start(world: World, instance: JSONDict, body: InstanceAction) -> None:
    instance["status"] = "provisioning"
    world.run_steps(NAME, instance["id"], _boot_steps(world, instance["id"]))


def _act_shutdown(world: World, instance: JSONDict, body: InstanceAction) -> None:
    half = world.settings.provision_seconds / 2
    world.run_steps(
        NAME, instance["id"], [Step(at=half, ssh="down", apply=_set_status(world, instance["id"], "offline"))]
    )


def _act_force_shutdown(world: World, instance: JSONDict, body: InstanceAction) -> None:
    instance["status"] = "offline"
    world.run_steps(NAME, instance["id"], [Step(at=0, ssh="down", apply=lambda: None)])


def _act_hibernate(world: World, instance: JSONDict, body: InstanceAction) -> None:
    instance["status"] = "starting_hibernation"
    half = world.settings.provision_seconds / 2
    world.run_steps(
        NAME, instance["id"], [Step(at=half, ssh="down", apply=_set_status(world, instance["id"], "hibernating"))]
    )


def _act_restore(world: World, instance: JSONDict, body: InstanceAction) -> None:
    instance["status"] = "restoring"
    world.run_steps(NAME, instance["id"], _boot_steps(world, instance["id"]))


def _act_delete(world: World, instance: JSONDict, body: InstanceAction) -> None:
    inst_id = instance["id"]
    instance["status"] = "deleting"
    doomed = set(body.volume_ids or ())
    for volume in [v for v in _volumes(world).values() if v["instance_id"] == inst_id]:
        if volume["id"] in doomed:
            _delete_volume(world, volume, body.delete_permanently)
        else:
            _detach(world, volume)
    for vol_id in doomed:  # named volumes that were not attached to this instance
        other = _volumes(world).get(vol_id)
        if other is not None and other["status"] != "deleted":
            _delete_volume(world, other, body.delete_permanently)
    half = world.settings.provision_seconds / 2
    world.run_steps(
        NAME,
        inst_id,
        [
            Step(at=0, ssh="down", apply=lambda: None),
            Step(at=half, apply=lambda: world.forget(NAME, "instances", inst_id)),
        ],
    )


def discontinue_spot(world: World, inst_id: str) -> JSONDict:
    """The cloud takes a spot instance back (control API): see the module docstring."""
    with world.lock:
        instance = _instances(world).get(inst_id)
        if instance is None:
            raise _not_found("Instance", inst_id)
        if not instance["is_spot"] or instance["status"] in ("deleting", "discontinued"):
            raise _bad(f"Instance {inst_id} is not a live spot instance ({instance['status']})")
        policies = world.private(NAME, inst_id).get("on_spot_discontinue", {})
        for volume in [v for v in _volumes(world).values() if v["instance_id"] == inst_id]:
            policy = policies.get(volume["id"], "keep_detached")
            if policy == "keep_detached":
                _detach(world, volume)
            else:
                _delete_volume(world, volume, permanent=policy == "delete_permanently")
        instance.update(status="discontinued", ip=None)
        world.run_steps(NAME, inst_id, [Step(at=0, ssh="down", apply=lambda: None)])
        return instance


_ANY_LIVE = (
    "ordered",
    "provisioning",
    "running",
    "offline",
    "starting_hibernation",
    "hibernating",
    "restoring",
    "error",
)
_INSTANCE_ACTIONS: dict[str, tuple[tuple[str, ...], Callable[[World, JSONDict, InstanceAction], None]]] = {
    "start": (("offline",), _act_start),
    "boot": (("offline",), _act_start),
    "shutdown": (("running",), _act_shutdown),
    "force_shutdown": (("ordered", "provisioning", "running", "error"), _act_force_shutdown),
    "hibernate": (("running", "offline"), _act_hibernate),
    "restore": (("hibernating",), _act_restore),
    "delete": ((*_ANY_LIVE, "discontinued"), _act_delete),  # a discontinued one's record goes only this way
    "discontinue": (_ANY_LIVE, _act_delete),
}


# ------------------------------------------------------------------------------------------ instances (routes)
@api.get("/instances", response_model=list[JSONDict])
def list_instances(world: WorldDep, status: str | None = None) -> Response:
    # Rendered here, under the lock, straight to JSON: FastAPI's response validation and encoding of thousands
    # of instances (seed_hosts) cost more than the listing itself.
    with world.lock:
        return JSONResponse([i for i in _instances(world).values() if status is None or i["status"] == status])


@api.get("/instances/{instance_id}")
def get_instance(instance_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        instance = _instances(world).get(instance_id)
        if instance is None:
            raise _not_found("Instance", instance_id)
        return instance


@api.post("/instances", status_code=202, response_class=PlainTextResponse)
def create_instance(body: InstanceCreate, world: WorldDep) -> PlainTextResponse:
    with world.lock:
        entry, os_volume = _check_create(world, body)
        price = _check_funds_and_capacity(world, body, entry)
        instance = _new_instance(world, body, entry, price)
        _create_volumes(world, body, instance, os_volume)
        world.private(NAME, instance["id"])["ssh"] = _ssh_spec(world, body.ssh_key_ids)
        inst_id = instance["id"]
    p = world.settings.provision_seconds
    world.run_steps(
        NAME,
        inst_id,
        [
            Step(at=p * 0.1, apply=_set_status(world, inst_id, "provisioning", only_from=("ordered",))),
            *_boot_steps(world, inst_id),
        ],
    )
    return PlainTextResponse(inst_id, status_code=202)


@api.put("/instances", status_code=202)
@api.post("/instances/action", status_code=202, include_in_schema=False)
def instance_action(body: InstanceAction, world: WorldDep) -> list[JSONDict]:
    ids = [body.id] if isinstance(body.id, str) else list(body.id)
    allowed_and_handler = _INSTANCE_ACTIONS.get(body.action)
    if allowed_and_handler is None:
        raise _bad(f"Unknown action {body.action}; expected one of {sorted(_INSTANCE_ACTIONS)}")
    if not ids:
        raise _bad("id must name at least one instance")
    allowed, handler = allowed_and_handler
    with world.lock:
        instances = [_instances(world).get(i) for i in ids]
        for inst_id, instance in zip(ids, instances, strict=True):
            if instance is None:
                raise _not_found("Instance", inst_id)
            if instance["status"] not in allowed:
                raise _bad(f"Cannot {body.action} instance {inst_id} while it is {instance['status']}")
        for instance in instances:
            assert instance is not None
            handler(world, instance, body)
    return [{"action": body.action, "instanceId": i, "status": "success"} for i in ids]


# ------------------------------------------------------------------------------------------ seeding
def seed_instances(world: World, count: int, first: int) -> None:
    """``count`` running instances (World.seed_hosts) cycling through types, locations and images.

    No OS volume and no sshd: only the listing endpoints are meant to see them; they can still be stopped
    or deleted like any other instance. Call with ``world.lock`` held.
    """
    types = sorted(INSTANCE_TYPES)
    locations = sorted(_LOCATION_CODES)
    now = utc_now()
    for index in range(first, first + count):
        entry = INSTANCE_TYPES[types[index % len(types)]]
        image = entry["supported_os"][index % len(entry["supported_os"])]
        name = f"seed-{index:05d}"
        inst_id = world.new_id()
        ip = world.allocate_ip()
        _instances(world)[inst_id] = {
            "id": inst_id,
            "instance_type": entry["instance_type"],
            "price_per_hour": entry["price_per_hour"],
            "hostname": name,
            "description": name,
            "status": "running",
            "created_at": now,
            "ssh_key_ids": [],
            **{k: dict(entry[k]) for k in ("cpu", "gpu", "memory", "gpu_memory", "storage")},
            "ip": ip,
            "os_volume_id": None,
            "location": locations[index // len(types) % len(locations)],
            "image": image,
            "os_name": next(i["name"] for i in _IMAGES if i["image_type"] == image),
            "startup_script_id": None,
            "is_spot": False,
            "contract": "PAY_AS_YOU_GO",
            "pricing": "FIXED_PRICE",
            "jupyter_token": world.random_token(16),
            "volume_ids": [],
        }
        world.private(NAME, inst_id)["ssh"] = SshSpec(ip=ip, port=world.settings.ssh_port, authorized_keys=())


class DiscontinueBody(BaseModel):
    instance_id: str


# Mounted by the app under the control API prefix (its token required): what the cloud does on its own.
control = APIRouter()


@control.post("/discontinue")
def control_discontinue(body: DiscontinueBody, world: WorldDep) -> JSONDict:
    return discontinue_spot(world, body.instance_id)


# Routes are copied when a router is included, so this must come after every route above.
router = APIRouter()
router.include_router(token_router, tags=["datacrunch: authentication"])
router.include_router(api, dependencies=[Depends(require_token)], tags=["datacrunch"])

_CREATE_PATHS = {"/instances", "/volumes", "/sshkeys", "/ssh-keys", "/scripts"}


def ledger(world: World) -> list[JSONDict]:
    """Instances (deleting ones bill until gone), volumes not deleted (detached OS volumes included), volumes
    in trash (kept, not billed here: the docs name no trash price), startup scripts and SSH keys."""
    with world.lock:
        instances = _instances(world).values()
        items = [
            ledger_item("instance", i["id"], i["hostname"], i["price_per_hour"])
            if i["status"] != "discontinued"
            else ledger_item("instance (discontinued)", i["id"], i["hostname"], None, billed=False)
            for i in instances
        ]
        for volume in _volumes(world).values():
            kind = "os_volume" if volume["is_os_volume"] else "volume"
            if volume["status"] != "deleted":
                items.append(ledger_item(kind, volume["id"], volume["name"], volume["base_hourly_cost"]))
            elif world.private(NAME, volume["id"]).get("in_trash"):
                name = volume["name"]
                items.append(ledger_item(f"{kind} (trash)", volume["id"], name, None, billed=False, purged=True))
        scripts = world.collection(NAME, "scripts").values()
        items += [ledger_item("script", s["id"], s["name"], None, billed=False) for s in scripts]
        items += [ledger_item("ssh_key", k["id"], k["name"], None, billed=False) for k in _keys(world).values()]
        return items


SPEC = ProviderSpec(
    name=NAME,
    prefix=PREFIX,
    router=router,
    error_body=error_body,
    validation_error=_validation_error,
    http_error=_http_error,
    is_auth_request=lambda method, path: path.rstrip("/") == "/oauth2/token",
    is_create_request=lambda method, path: method == "POST" and path.rstrip("/") in _CREATE_PATHS,
    seed=seed_instances,
    ledger=ledger,
    control=control,
)

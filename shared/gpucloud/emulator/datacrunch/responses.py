"""DataCrunch's wire: routes with their request and response shapes, error bodies, the token endpoint, and SPEC.

State changes go through :mod:`.models`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from gpucloud.emulator.base import (
    ProviderError,
    ProviderSpec,
    WorldDep,
    fingerprint,
    parse_public_key,
    utc_now,
)
from gpucloud.emulator.common import (
    error_code,
    find,
    http_error_as,
    path_is,
    posts_to,
    validation_error_as,
)
from gpucloud.emulator.datacrunch.models import (
    EUR_PER_USD,
    IMAGES,
    INSTANCE_ACTIONS,
    INSTANCE_TYPES,
    LOCATION_CODES,
    LOCATIONS,
    NAME,
    PERIODS,
    VOLUME_ACTIONS,
    VOLUME_PRICES,
    VOLUME_TYPES,
    InstanceAction,
    InstanceCreate,
    VolumeAction,
    attach,
    bad,
    deploy_instance,
    discontinue_spot,
    instance_store,
    key_store,
    ledger,
    new_volume,
    not_found,
    seed_instances,
    target_instance,
    vol_delete,
    volume_store,
)
from gpucloud.emulator.world import JSONDict, World

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


def _render_type(entry: JSONDict, currency: str) -> JSONDict:
    rate = EUR_PER_USD if currency == "eur" else 1.0
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
    # Codes pass as given: this API's names for 429 and 500 are the generic ones.
    code = error_code(status, code, _CODE_BY_STATUS, client="invalid_request", server="server_error", generic=())
    return {"code": code, "message": message}


_bearer = HTTPBearer(auto_error=False, description="Access token from POST /oauth2/token")


async def require_token(
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
            raise bad("client_id and client_secret are required")
        creds = world.settings.credentials[NAME]
        if (body.client_id, body.client_secret) != (creds["client_id"], creds["client_secret"]):
            raise ProviderError(401, "Invalid client credentials", "unauthorized_request")
        pair = world.issue_tokens(NAME, "client_credentials")
    elif body.grant_type == "refresh_token":
        if not body.refresh_token:
            raise bad("refresh_token is required")
        refreshed = world.refresh_tokens(NAME, body.refresh_token)
        if refreshed is None:
            raise ProviderError(401, "Refresh token is invalid or revoked", "unauthorized_request")
        pair = refreshed
    else:
        raise bad(f"Unsupported grant_type {body.grant_type!r}")
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
    return find(INSTANCE_TYPES, instance_type, lambda: not_found("Instance type", instance_type))


@api.get("/images")
def list_images(instance_type: str | None = None) -> list[JSONDict]:
    if instance_type is None:
        return IMAGES
    entry = find(INSTANCE_TYPES, instance_type, lambda: bad(f"Unknown instance type {instance_type}"))
    return [i for i in IMAGES if i["image_type"] in entry["supported_os"]]


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
    return PERIODS


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
    codes = [location_code] if location_code else sorted(LOCATION_CODES)
    return any(world.has_capacity(NAME, instance_type, code) for code in codes)


# ------------------------------------------------------------------------------------------ ssh keys
class SshKeyCreate(BaseModel):
    name: str = Field(min_length=1)
    key: str = Field(min_length=1)


class SshKeyBulkDelete(BaseModel):
    keys: list[str]


@api.get("/sshkeys")
@api.get("/ssh-keys")
def list_ssh_keys(world: WorldDep) -> list[JSONDict]:
    with world.lock:
        return list(key_store(world).values())


@api.get("/sshkeys/{key_id}")
@api.get("/ssh-keys/{key_id}")
def get_ssh_key(key_id: str, world: WorldDep) -> list[JSONDict]:
    with world.lock:
        key = find(key_store(world), key_id, lambda: not_found("SSH key", key_id))
        return [key]


@api.post("/sshkeys", status_code=201, response_class=PlainTextResponse)
@api.post("/ssh-keys", status_code=201, response_class=PlainTextResponse)
def create_ssh_key(body: SshKeyCreate, world: WorldDep) -> PlainTextResponse:
    if parse_public_key(body.key) is None:
        raise bad("key is not a valid OpenSSH public key")
    key_id = world.new_id()
    record = {
        "id": key_id,
        "name": body.name,
        "key": body.key.strip(),
        "fingerprint": fingerprint(body.key),
        "created_at": utc_now(),
    }
    with world.lock:
        key_store(world)[key_id] = record
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
            raise not_found(what, missing[0])
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
        script = find(world.collection(NAME, "scripts"), script_id, lambda: not_found("Startup script", script_id))
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


# ------------------------------------------------------------------------------------------ volumes (routes)
class VolumeCreate(BaseModel):
    type: str
    name: str = Field(min_length=1)
    size: int = Field(ge=1)
    instance_id: str | None = None
    instance_ids: list[str] | None = None
    location_code: str = "FIN-03"


class VolumeDelete(BaseModel):
    is_permanent: bool = False


@api.get("/volumes")
def list_volumes(world: WorldDep, status: str | None = None) -> list[JSONDict]:
    with world.lock:
        vols = list(volume_store(world).values())
    if status is None:
        return [v for v in vols if v["status"] != "deleted"]
    return [v for v in vols if v["status"] == status]


@api.get("/volumes/trash")
def list_trash(world: WorldDep) -> list[JSONDict]:
    with world.lock:
        return [v for v in volume_store(world).values() if world.private(NAME, v["id"]).get("in_trash")]


@api.get("/volumes/{volume_id}")
def get_volume(volume_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        return find(volume_store(world), volume_id, lambda: not_found("Volume", volume_id))


@api.post("/volumes", status_code=202, response_class=PlainTextResponse)
def create_volume(body: VolumeCreate, world: WorldDep) -> PlainTextResponse:
    if body.type not in VOLUME_PRICES:
        raise bad(f"Unknown volume type {body.type}; expected one of {sorted(VOLUME_PRICES)}")
    if body.location_code not in LOCATION_CODES:
        raise bad(f"Unknown location_code {body.location_code}")
    instance_id = target_instance(body.instance_id, body.instance_ids)
    with world.lock:
        instance = None
        if instance_id is not None:
            instance = find(instance_store(world), instance_id, lambda: not_found("Instance", instance_id))
            if instance["status"] != "offline":
                raise bad(f"Instance {instance_id} must be offline to attach a new volume")
        volume = new_volume(world, body.name, body.size, body.type, body.location_code)
        if instance is not None:
            attach(world, volume, instance)
        return PlainTextResponse(volume["id"], status_code=202)


@api.put("/volumes", status_code=202)
def volume_action(body: VolumeAction, world: WorldDep) -> Response:
    ids = [body.id] if isinstance(body.id, str) else list(body.id)
    handler = find(
        VOLUME_ACTIONS,
        body.action,
        lambda: bad(f"Unknown volume action {body.action}; expected one of {sorted(VOLUME_ACTIONS)}"),
    )
    if not ids:
        raise bad("id must name at least one volume")
    with world.lock:
        new_ids = handler(world, ids, body)
    return Response(status_code=202) if new_ids is None else JSONResponse(new_ids, status_code=202)


@api.delete("/volumes/{volume_id}", status_code=204)
def delete_volume(volume_id: str, world: WorldDep, body: VolumeDelete | None = None, force: bool = False) -> Response:
    permanent = force or (body is not None and body.is_permanent)
    with world.lock:
        vol_delete(world, [volume_id], VolumeAction(id=volume_id, action="delete", is_permanent=permanent))
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------ instances (routes)
@api.get("/instances", response_model=list[JSONDict])
def list_instances(world: WorldDep, status: str | None = None) -> Response:
    # Rendered here, under the lock, straight to JSON: FastAPI's response validation and encoding of thousands
    # of instances (seed_hosts) cost more than the listing itself.
    with world.lock:
        return JSONResponse([i for i in instance_store(world).values() if status is None or i["status"] == status])


@api.get("/instances/{instance_id}")
def get_instance(instance_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        return find(instance_store(world), instance_id, lambda: not_found("Instance", instance_id))


@api.post("/instances", status_code=202, response_class=PlainTextResponse)
def create_instance(body: InstanceCreate, world: WorldDep) -> PlainTextResponse:
    return PlainTextResponse(deploy_instance(world, body), status_code=202)


@api.put("/instances", status_code=202)
@api.post("/instances/action", status_code=202, include_in_schema=False)
def instance_action(body: InstanceAction, world: WorldDep) -> list[JSONDict]:
    ids = [body.id] if isinstance(body.id, str) else list(body.id)
    allowed_and_handler = find(
        INSTANCE_ACTIONS,
        body.action,
        lambda: bad(f"Unknown action {body.action}; expected one of {sorted(INSTANCE_ACTIONS)}"),
    )
    if not ids:
        raise bad("id must name at least one instance")
    allowed, handler = allowed_and_handler
    with world.lock:
        instances = [instance_store(world).get(i) for i in ids]
        for inst_id, instance in zip(ids, instances, strict=True):
            if instance is None:
                raise not_found("Instance", inst_id)
            if instance["status"] not in allowed:
                raise bad(f"Cannot {body.action} instance {inst_id} while it is {instance['status']}")
        for instance in instances:
            assert instance is not None
            handler(world, instance, body)
    return [{"action": body.action, "instanceId": i, "status": "success"} for i in ids]


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


SPEC = ProviderSpec(
    name=NAME,
    router=router,
    error_body=error_body,
    validation_error=validation_error_as(error_body, "invalid_request", "Invalid request"),
    http_error=http_error_as(error_body, "Resource not found, or invalid path"),
    is_auth_request=path_is("/oauth2/token"),
    is_create_request=posts_to("/instances", "/volumes", "/sshkeys", "/ssh-keys", "/scripts"),
    seed=seed_instances,
    ledger=ledger,
    control=control,
)

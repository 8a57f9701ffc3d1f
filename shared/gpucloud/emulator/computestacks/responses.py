"""ComputeStacks' wire: the routes with their request and response shapes, error bodies, pagination, and SPEC.

State changes go through :mod:`.models`; versioning and authentication are in :mod:`.auth`.
"""

from __future__ import annotations

import json
import struct
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from gpucloud.emulator.base import ProviderError, ProviderSpec, WorldDep, parse_public_key, utc_now
from gpucloud.emulator.common import find, page_of, path_is, posts_to
from gpucloud.emulator.computestacks.auth import (
    DEPRECATED_VERSIONS,
    SUPPORTED_VERSIONS,
    VersionedRoute,
    check_version,
    identify,
    require_public,
    require_user,
    token_router,
)
from gpucloud.emulator.computestacks.catalogue import IMAGES, LOCATIONS, PRODUCTS, VOLUME_PARAMS, ZONES, image_json
from gpucloud.emulator.computestacks.models import (
    NAME,
    POWER,
    OrderRejected,
    RecordNotFound,
    bastion_of,
    check_order,
    coll,
    delete_project_of,
    delete_service_of,
    find_project,
    find_service,
    ledger,
    new_order,
    next_id,
    refresh_bastion_keys,
    resize_service,
    schedule_order,
    seed_instances,
    services_of,
    set_power,
    skey,
    to_i,
    volumes_of_service,
)
from gpucloud.emulator.world import JSONDict

CONTROLLER_VERSION = "9.3.1"
DEFAULT_PER_PAGE = 30
_UNKNOWN_ROUTE = "Unknown API Call. Please check the documentation."
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


# ------------------------------------------------------------------------------------------ errors
def error_body(status: int, message: str, code: str | None = None) -> JSONDict:
    """``code`` picks a shape: ``oauth:<error>`` (Doorkeeper), ``rails`` (Rails' exception page), else ours."""
    if code and code.startswith("oauth:"):
        return {"error": code.removeprefix("oauth:"), "error_description": message}
    if code == "rails":
        return {"status": status, "error": message}
    return {"errors": [message]}


def _http_error(status: int, detail: str) -> JSONDict:
    return {"errors": [_UNKNOWN_ROUTE if status == 404 else detail]}


def _validation_error(errors: list[Any]) -> tuple[int, JSONDict]:
    return 400, error_body(400, "Bad Request", "rails")


def _invalid(*messages: Any) -> JSONResponse:
    """``api_obj_error``: 422 with every message (BuildOrderService may add an integer)."""
    return JSONResponse({"errors": list(messages)}, status_code=422)


def _no_action() -> JSONResponse:
    """A routed path whose controller lacks the action: Rails' own 404, without the ``errors`` list."""
    return JSONResponse(error_body(404, "Not Found", "rails"), status_code=404)


# ------------------------------------------------------------------------------------------ request helpers
async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ProviderError(400, "Bad Request", "rails") from None


Body = Annotated[Any, Depends(json_body)]


def _documented_body(root: str, properties: JSONDict, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI text for a body ``json_body`` reads by hand (Rails params), so /docs and schema fuzzers see it."""
    inner: JSONDict = {"type": "object", "properties": properties}
    if required:
        inner["required"] = list(required)
    schema = {"type": "object", "properties": {root: inner}, "required": [root]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_ORDER_CONTAINER: JSONDict = {
    "type": "object",
    "properties": {
        "image_variant_id": _INT,
        "name": _STR,
        "resources": {"type": "object", "properties": {"product_id": _INT}},
        "params": {"type": "array", "items": {"type": "object", "properties": {"key": _STR, "value": _STR}}},
        "domains": {"type": "array", "items": _STR},
        "source": _STR,
        "volumes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "csrn": _STR,
                    "action": {"type": "string", "enum": ["create", "clone", "mount", "skip"]},
                    "source": _STR,
                    "snapshot": _STR,
                    "mount_ro": _BOOL,
                },
            },
        },
    },
    "required": ["image_variant_id"],
}


def paginate(request: Request, items: list[JSONDict], root: str) -> Response:
    page = to_i(request.query_params.get("page", "1")) or 0
    per_page = to_i(request.query_params.get("per_page", str(DEFAULT_PER_PAGE))) or 0
    if page < 1 or per_page < 1:
        return _no_action()  # will_paginate's InvalidPage, which Rails maps to 404
    headers = {"Total": str(len(items)), "Per-Page": str(per_page)}
    link = _link_header(request, page, per_page, len(items))
    if link:
        headers["Link"] = link
    return JSONResponse({root: page_of(items, page, per_page)}, headers=headers)


def _link_header(request: Request, page: int, per_page: int, total: int) -> str:
    last = max(1, -(-total // per_page))
    rels = {"first": 1, "prev": page - 1} if page > 1 else {}
    if page < last:
        rels.update(next=page + 1, last=last)
    base = str(request.url.replace(query=""))
    return ", ".join(f'<{base}?{urlencode({"page": n, "per_page": per_page})}>; rel="{rel}"' for rel, n in rels.items())


public = APIRouter(route_class=VersionedRoute)
api = APIRouter(route_class=VersionedRoute)
fallback = APIRouter(route_class=VersionedRoute)


# ------------------------------------------------------------------------------------------ public routes
@public.get("/api/version")
def version() -> JSONDict:
    major_minor = "".join(CONTROLLER_VERSION.split(".")[:2])
    return {
        "version": CONTROLLER_VERSION,
        "api_latest_version": int(major_minor),  # computed from the app version, not VersionCake's 80
        "api_available_versions": [*DEPRECATED_VERSIONS, *SUPPORTED_VERSIONS],
    }


@public.get("/api/container_images", response_model=None)
def list_images(request: Request) -> Response:
    return paginate(request, [image_json(i) for i in IMAGES.values()], "container_images")


@public.get("/api/container_images/{image_id}", response_model=None)
def show_image(image_id: str) -> Any:
    return {"container_image": image_json(_catalogue_image(image_id))}


@public.get("/api/container_images/{image_id}/volume_params", response_model=None)
def list_volume_params(image_id: str) -> Any:
    return {"volume_params": VOLUME_PARAMS[_catalogue_image(image_id)["id"]]}


def _catalogue_image(image_id: str) -> JSONDict:
    image = IMAGES.get(to_i(image_id) or 0)
    if image is None:
        raise RecordNotFound
    return image


# ------------------------------------------------------------------------------------------ account
@api.get("/api/users")
def show_user(world: WorldDep) -> JSONDict:
    with world.lock:
        services = len(coll(world, "instances"))
        projects = len(coll(world, "projects"))
    return {
        "user": {
            "id": 1,
            "fname": "Emulated",
            "lname": "User",
            "email": "user@example.com",
            "locale": "en",
            "country": "US",
            "timezone": "UTC",
            "c_sftp_pass": True,
            "currency": {"code": "USD", "symbol": "$"},
            "billing_plan": {"id": 1, "name": "default"},
            "services": {"projects": projects, "container_services": services, "containers": services},
        }
    }


def valid_openssh_key(text: str) -> bool:
    """What ``SSHData::PublicKey.parse_openssh`` accepts: a known type whose blob names the same type."""
    parsed = parse_public_key(text)
    if parsed is None:
        return False
    key_type, blob = parsed
    (length,) = struct.unpack(">I", blob[:4]) if len(blob) >= 4 else (0,)
    return blob[4 : 4 + length] == key_type.encode()


@api.get("/api/users/ssh_keys")
def list_ssh_keys(world: WorldDep) -> JSONDict:
    with world.lock:
        return {"ssh_keys": list(coll(world, "ssh_keys").values())}


@api.get("/api/users/ssh_keys/{key_id}", response_model=None)
def show_ssh_key(key_id: str, world: WorldDep) -> Any:
    with world.lock:
        key = find(coll(world, "ssh_keys"), key_id, RecordNotFound)
        return {"ssh_key": key}


@api.post(
    "/api/users/ssh_keys",
    status_code=201,
    response_model=None,
    openapi_extra=_documented_body("user_ssh_key", {"pubkey": _STR}, ("pubkey",)),
)
def create_ssh_key(body: Body, world: WorldDep) -> Any:
    params = body.get("user_ssh_key") if isinstance(body, dict) else None
    if not isinstance(params, dict) or not params:
        raise ProviderError(400, "Bad Request", "rails")  # params.require(:user_ssh_key)
    pubkey = str(params.get("pubkey") or "")
    if not pubkey.strip():
        return _invalid("Pubkey can't be blank", "Pubkey is not a valid openssh public key")
    if not valid_openssh_key(pubkey):
        return _invalid("Pubkey is not a valid openssh public key")
    parts = pubkey.split()
    now = utc_now()
    with world.lock:
        key_id = next_id(world, "ssh_key")
        key = {"id": key_id, "label": parts[2] if len(parts) > 2 else None, "created_at": now, "updated_at": now}
        coll(world, "ssh_keys")[str(key_id)] = key
        world.private(NAME, f"key-{key_id}")["pubkey"] = pubkey.strip()
        refresh_bastion_keys(world)
        return JSONResponse({"ssh_key": key}, status_code=201)


@api.delete("/api/users/ssh_keys/{key_id}", response_model=None)
def delete_ssh_key(key_id: str, world: WorldDep) -> Any:
    with world.lock:
        find(coll(world, "ssh_keys"), key_id, RecordNotFound)
        world.forget(NAME, "ssh_keys", key_id)
        world.private(NAME, f"key-{key_id}").clear()
        refresh_bastion_keys(world)
    # The key is gone, then `render status: :accepted` finds no destroy template.
    return JSONResponse(error_body(500, "Internal Server Error", "rails"), status_code=500)


# ------------------------------------------------------------------------------------------ catalogue
@api.get("/api/locations", response_model=None)
def list_locations(request: Request) -> Response:
    return paginate(request, LOCATIONS, "locations")


@api.get("/api/locations/{location_id}", response_model=None)
def show_location(location_id: str) -> Any:
    loc = next((loc for loc in LOCATIONS if loc["id"] == to_i(location_id)), None)
    if loc is None:
        raise RecordNotFound
    return {"location": loc}


@api.get("/api/products")
def list_products() -> JSONDict:
    """``User#package_list``: one entry per product and availability zone, not paginated."""
    entries = []
    for zone in ZONES:
        for product in PRODUCTS.values():
            if zone in product["zones"]:
                entries.append({k: v for k, v in product.items() if k != "zones"} | {"region": zone})
    return {"products": entries}


def _bastion_json(bastion: JSONDict, *, show: bool = False) -> JSONDict:
    fields = {k: v for k, v in bastion.items() if k != "project_id" and (show or k != "pw_auth")}
    return fields


@api.get("/api/orders", response_model=None)
def list_orders(request: Request, world: WorldDep) -> Response:
    with world.lock:
        orders = sorted(coll(world, "orders").values(), key=lambda o: o["created_at"], reverse=True)
        rows = [{k: o[k] for k in ("id", "status", "created_at", "updated_at", "project")} for o in orders]
    return paginate(request, rows, "orders")


@api.get("/api/orders/{order_id}", response_model=None)
def show_order(order_id: str, world: WorldDep) -> Any:
    with world.lock:
        order = find(coll(world, "orders"), order_id, RecordNotFound)
        return {"order": order}


@api.post(
    "/api/orders",
    status_code=201,
    response_model=None,
    openapi_extra=_documented_body(
        "order",
        {
            "project_name": _STR,
            "project_id": _INT,
            "location_id": _INT,
            "skip_ssh": _BOOL,
            "containers": {"type": "array", "items": _ORDER_CONTAINER},
        },
        ("project_name", "containers"),
    ),
)
def create_order(body: Body, world: WorldDep) -> Any:
    params = body.get("order") if isinstance(body, dict) else None
    if not isinstance(params, dict) or not params:
        raise ProviderError(500, "param is missing or the value is empty: order")  # rescued by the action
    with world.lock:
        try:
            project, location, items = check_order(world, params)
        except OrderRejected as rejected:
            return _invalid(*rejected.messages)
        order = new_order(world, params, project, location, items)
    schedule_order(world, order["id"], items)
    return JSONResponse({"order": {"id": order["id"], "redirect_url": None, "load_balancer_ip": None}}, 201)


# ------------------------------------------------------------------------------------------ projects
@api.get("/api/projects", response_model=None)
def list_projects(request: Request, world: WorldDep) -> Response:
    with world.lock:
        return paginate(request, list(coll(world, "projects").values()), "projects")


@api.get("/api/projects/{project_id}", response_model=None)
def show_project(project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = find_project(world, project_id)
        return {"project": project}


@api.delete("/api/projects/{project_id}", status_code=202, response_model=None)
def delete_project(project_id: str, world: WorldDep) -> Any:
    with world.lock:
        delete_project_of(world, find_project(world, project_id))
    return JSONResponse({}, status_code=202)


@api.get("/api/projects/{project_id}/services", response_model=None)
def list_project_services(request: Request, project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = find_project(world, project_id)
        return paginate(request, services_of(world, project["id"]), "container_services")


@api.get("/api/projects/{project_id}/volumes", response_model=None)
def list_project_volumes(request: Request, project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = find_project(world, project_id)
        volumes = [v for s in services_of(world, project["id"]) for v in volumes_of_service(world, s["id"])]
        return paginate(request, volumes, "volumes")


@api.get("/api/projects/{project_id}/bastions", response_model=None)
def list_project_bastions(request: Request, project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = find_project(world, project_id)
        bastion = bastion_of(world, project["id"])
        return paginate(request, [_bastion_json(bastion)] if bastion else [], "bastions")


@api.get("/api/projects/{project_id}/bastions/{bastion_id}", response_model=None)
def show_project_bastion(project_id: str, bastion_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = find_project(world, project_id)
        bastion = bastion_of(world, project["id"])
        if bastion is None or str(bastion["id"]) != bastion_id:
            return JSONResponse({"errors": ["Unknown sftp container"]}, status_code=404)
        return {"bastion": _bastion_json(bastion, show=True)}


def _service_image_json(service: JSONDict) -> JSONDict:
    return image_json(IMAGES[service["image"]["id"]])


@api.get("/api/container_services", response_model=None)
def list_services(request: Request, world: WorldDep) -> Response:
    with world.lock:
        return paginate(request, list(coll(world, "instances").values()), "container_services")


@api.get("/api/container_services/{service_id}", response_model=None)
def show_service(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = find_service(world, service_id)
        return {"container_service": service, "container_image": _service_image_json(service)}


@api.patch(
    "/api/container_services/{service_id}",
    status_code=202,
    response_model=None,
    openapi_extra=_documented_body("container_service", {"label": _STR, "command": _STR, "tag_list": _STR}),
)
def update_service(service_id: str, body: Body, world: WorldDep) -> Any:
    """Edit a service. ``tag_list`` is taken as the controller takes it (``acts_as_taggable``: a string of
    comma-separated tags; anything else is dropped by its strong parameters) and kept out of every answer, as
    the service view renders no tags."""
    params = body.get("container_service") if isinstance(body, dict) else None
    with world.lock:
        service = find_service(world, service_id)
        if not isinstance(params, dict) or not params:
            raise ProviderError(400, "Bad Request", "rails")  # params.require(:container_service)
        if "label" in params:
            if not str(params["label"] or "").strip():
                return _invalid("Label can't be blank")
            service.update(label=str(params["label"]), updated_at=utc_now())
        if "command" in params:
            service["command"] = params["command"]
        if isinstance(params.get("tag_list"), str):
            tags = [tag.strip() for tag in params["tag_list"].split(",") if tag.strip()]
            world.private(NAME, skey(service["id"]))["tag_list"] = list(dict.fromkeys(tags))
        return JSONResponse({"container_service": service, "container_image": _service_image_json(service)}, 202)


@api.delete("/api/container_services/{service_id}", status_code=202, response_model=None)
def delete_service(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        delete_service_of(world, find_service(world, service_id))
    return JSONResponse({}, status_code=202)


@api.put("/api/container_services/{service_id}/power/{action}", response_model=None)
@api.patch("/api/container_services/{service_id}/power/{action}", response_model=None, include_in_schema=False)
def power(service_id: str, action: str, world: WorldDep) -> Any:
    with world.lock:
        service = find_service(world, service_id)
        if action not in POWER:
            return _invalid("Unknown action.", f"Available actions are: {', '.join(POWER)}")
        set_power(world, service, action)
    return JSONResponse({}, status_code=202)


@api.post("/api/container_services/{service_id}/power/{action}", response_model=None)
def power_by_post(service_id: str, action: str) -> Response:
    return _no_action()  # `resources :power` routes POST to a `create` the controller lacks


@api.post(
    "/api/container_services/{service_id}/resize",
    status_code=202,
    response_model=None,
    openapi_extra=_documented_body("container_service", {"product_id": _INT}, ("product_id",)),
)
def resize(service_id: str, body: Body, world: WorldDep) -> Any:
    params = body.get("container_service") if isinstance(body, dict) else None
    with world.lock:
        service = find_service(world, service_id)
        if not isinstance(params, dict) or not params:
            # params.require raises inside the action's `rescue => e`: api_fatal_error
            raise ProviderError(500, "param is missing or the value is empty: container_service")
        product = PRODUCTS.get(to_i(params.get("product_id")) or 0)
        if product is None:
            return _invalid(f"Missing package id: {params.get('product_id')}")
        resize_service(world, service, product)
    return JSONResponse({}, status_code=202)


@api.get("/api/container_services/{service_id}/containers", response_model=None)
def list_service_containers(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = find_service(world, service_id)
        items = [c for c in coll(world, "containers").values() if c["container_service_id"] == service["id"]]
        return {"containers": items}


@api.get("/api/container_services/{service_id}/bastions", response_model=None)
def list_service_bastions(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = find_service(world, service_id)
        bastion = bastion_of(world, service["project"]["id"])
        return {"bastions": [_bastion_json(bastion)] if bastion else []}


@api.get("/api/container_services/{service_id}/volumes", response_model=None)
def list_service_volumes(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = find_service(world, service_id)
        return {"volumes": volumes_of_service(world, service["id"])}


@api.get("/api/containers/{container_id}", response_model=None)
def show_container(container_id: str, world: WorldDep) -> Any:
    with world.lock:
        container = find(coll(world, "containers"), container_id, RecordNotFound)
        return {"container": container}


# ------------------------------------------------------------------------------------------ volumes
@api.get("/api/volumes", response_model=None)
def list_volumes(request: Request, world: WorldDep) -> Response:
    with world.lock:
        active = [v for v in coll(world, "volumes").values() if not v["to_trash"]]
        return paginate(request, active, "volumes")


@api.get("/api/volumes/{volume_id}", response_model=None)
def show_volume(volume_id: str, world: WorldDep) -> Any:
    with world.lock:
        volume = find(coll(world, "volumes"), volume_id, RecordNotFound)
        return {"volume": volume}


_BORG_FIELDS = {
    "borg_freq",
    "borg_strategy",
    "borg_keep_hourly",
    "borg_keep_daily",
    "borg_keep_weekly",
    "borg_keep_monthly",
    "borg_rollback",
    "borg_enabled",
    "borg_keep_annually",
}


@api.patch(
    "/api/volumes/{volume_id}",
    response_model=None,
    openapi_extra=_documented_body(
        "volume", {"borg_strategy": {"type": "string", "enum": ["file", "mysql", "postgres"]}}
    ),
)
def update_volume(volume_id: str, body: Body, world: WorldDep) -> Any:
    params = body.get("volume") if isinstance(body, dict) else None
    with world.lock:
        volume = find(coll(world, "volumes"), volume_id, RecordNotFound)
        if not isinstance(params, dict) or not params:
            raise ProviderError(400, "Bad Request", "rails")
        if params.get("borg_strategy", volume["borg_strategy"]) not in ("file", "mysql", "postgres"):
            return _invalid("Borg strategy is not included in the list")
        volume.update({k: v for k, v in params.items() if k in _BORG_FIELDS}, updated_at=utc_now())
        return {"volume": volume}


# Routes that exist (`resources ...`) but whose controller has no such action.
for _method, _path in (
    ("POST", "/api/volumes"),
    ("DELETE", "/api/volumes/{volume_id}"),
    ("POST", "/api/projects"),
    ("POST", "/api/container_services"),
    ("GET", "/api/containers"),
):
    api.add_api_route(_path, _no_action, methods=[_method], name=f"no_action_{_method}_{_path}")


# ------------------------------------------------------------------------------------------ unknown routes
@fallback.api_route("/api/{path:path}", methods=_ALL_METHODS, include_in_schema=False, response_model=None)
def unknown_route() -> JSONResponse:
    return JSONResponse({"errors": [_UNKNOWN_ROUTE]}, status_code=404)


# Routes are copied when a router is included, so this must come after every route above.
router = APIRouter()
router.include_router(token_router, tags=["computestacks: oauth"])
_versioned = [Depends(check_version)]
router.include_router(public, dependencies=[*_versioned, Depends(require_public)], tags=["computestacks: public"])
router.include_router(api, dependencies=[*_versioned, Depends(require_user)], tags=["computestacks"])
router.include_router(fallback, dependencies=[*_versioned, Depends(identify)])


SPEC = ProviderSpec(
    name=NAME,
    router=router,
    error_body=error_body,
    validation_error=_validation_error,
    http_error=_http_error,
    is_auth_request=path_is("/api/oauth/token"),
    is_create_request=posts_to("/api/orders", "/api/users/ssh_keys"),
    seed=seed_instances,
    ledger=ledger,
)

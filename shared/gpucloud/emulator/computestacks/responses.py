"""ComputeStacks end-user API (controller 9.3.1), emulated under ``/computestacks`` (wire format only).

Follows /work/shared/api-docs/computestacks.txt (auth, pagination, versioning, errors) and
computestacks-resources.md (routes, RABL views and services read from the open-source controller). Where the
published docs and the controller disagree, the controller wins:

- Versioning: ``Accept: application/json; api_version=NN`` (the first ``api_version=<digits>``). No version ->
  80. Supported 80; deprecated but served 51-71 (answered with ``API-Deprecated: true``); anything else ->
  422 ``{"errors": ["You requested an unsupported version (NN)"]}`` with ``API-Version-Supported: false``.
  The check runs before authentication (VersionCake's prepended filter) on every ``/api`` route except the
  OAuth token endpoint (a Doorkeeper controller). ``GET /api/version`` (the docs' ``/version`` is stale).
- Auth: HTTP Basic with API credentials (bad -> 401 ``{"errors": ["Not Authorized"]}``), or a Doorkeeper
  bearer token from ``POST /api/oauth/token`` (form or JSON body; client via Basic header or
  ``client_id``/``client_secret``). Grants: ``password`` (API credentials; the token acts as the user) and
  ``client_credentials`` (no user: scopes ``public``/``register`` only, so it reads the API version and
  public images and gets 403 ``insufficient_scope`` elsewhere). Refresh tokens are only issued for the
  authorization-code grant, which is not emulated, so none are issued. Doorkeeper's own errors keep its
  OAuth shape ``{"error", "error_description"}``: bad client 401 ``invalid_client``, bad user 400
  ``invalid_grant``; a request with no credentials at all 401 ``invalid_token``. An unknown or expired
  bearer token -> 403 ``{"errors": [...]}``, as computestacks.txt documents ("403 Forbidden: OAuth will
  return this for invalid tokens"; the controller notes say nothing about invalid tokens, so nothing
  contradicts it). The emulator enforces token expiry (the notes leave open whether 9.3.1 does for user
  tokens).
- Errors are ``{"errors": [...]}`` (422 validation, 404 with a message, 500 exceptions) except where the
  controller renders none: record-not-found is a 404 with an empty body (``head :not_found``), and Rails'
  own exceptions (malformed JSON 400, a routed path whose action does not exist 404, a missing template 500)
  answer ``{"status": N, "error": "<reason>"}``. Unknown ``/api`` paths -> 404
  ``{"errors": ["Unknown API Call. Please check the documentation."]}``.
- Pagination (api-pagination + will_paginate) on the lists the controller paginates: ``page``/``per_page``
  (default 30, no maximum), headers ``Total``, ``Per-Page`` and ``Link``; page or per_page below 1 -> 404.
  SSH keys, products, a service's containers and an image's volume params are not paginated.
- Orders are the only way to create projects, services and volumes. ``POST /api/orders`` validates like
  ``BuildOrderService`` (422 with its messages, an unknown ``location_id`` -> the 500 its nil region causes)
  and answers 201; with P = ``provision_seconds`` the order goes ``pending`` -> ``processing`` (0.1 P:
  project, bastion, services, containers and volumes exist, services ``working``) -> ``completed`` (0.5 P)
  and the services turn ``online`` at P. No capacity for the product at the location
  (``World.set_capacity("computestacks", <product name>, <location id>, False)``) -> the order ``failed``
  after creating the (empty) project, as ``ProcessOrderService`` does.
- Image variants: the user view renders ``image_variants`` through the variant partial with the image as
  object, which in 9.3.1 most likely yields the image's own fields; the emulator renders the list the
  controller documents (the admin view's shape), since orders need a variant id and nothing else in the user
  API lists them. Volume params have no ``csrn`` in their view; order volumes are matched by the exact csrn
  ``csrn:caas:template:vol:<resource name>:<id>``, computed as the model does.
- Services: power ``start``/``restart``/``rebuild`` -> ``working`` -> ``online`` (P), ``stop`` -> ``working``
  -> ``inactive`` (P/2) via PUT/PATCH (the docs' POST has no action: 404); unknown action -> 422. DELETE ->
  202, ``working``, gone after P/2 with its volumes. Resize -> ``working``, new package at P/2.
- Bastion (``Deployment::Sftp``): one per project unless ``skip_ssh``, on its own 127.x address and port, user
  ``sftpuser`` (the emulator's sshd logs in the user running it; see ``emulator.client``). It accepts the
  account's SSH keys (updated when keys change), runs while any service of the project is online (or
  restarting) and stops before the last one reports ``inactive`` or disappears.
- ``DELETE /api/users/ssh_keys/{id}`` deletes the key and then fails with 500: the controller renders a
  ``destroy`` template that does not exist. Volume ``size``/``location_id`` are listed in the view but are
  not model attributes, so RABL leaves them out. 429s injected by faults use the ``{"errors"}`` body (the real
  Rack::Attack answer is the text ``Throttled``). Account lockout after failed logins is not emulated.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import struct
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from gpucloud.emulator.base import ProviderError, ProviderSpec, WorldDep, ledger_item, parse_public_key, utc_now
from gpucloud.emulator.sshd import SshSpec
from gpucloud.emulator.world import JSONDict, Step, World
from gpucloud.registry import registration

NAME = "computestacks"
PREFIX = registration(NAME).emulator_prefix
CONTROLLER_VERSION = "9.3.1"
DEFAULT_API_VERSION = 80
SUPPORTED_VERSIONS = (80,)
DEPRECATED_VERSIONS = (51, 52, 53, 54, 60, 61, 62, 65, 70, 71)
DEFAULT_PER_PAGE = 30
SFTP_USER = "sftpuser"
_UNKNOWN_ROUTE = "Unknown API Call. Please check the documentation."
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

# ------------------------------------------------------------------------------------------ catalogue
# Locations with their availability zones ("regions" in JSON).
LOCATIONS: list[JSONDict] = [
    {"id": 1, "name": "Emulator East", "regions": [{"id": 11, "name": "east-a"}]},
    {"id": 2, "name": "Emulator West", "regions": [{"id": 21, "name": "west-a"}, {"id": 22, "name": "west-b"}]},
]
_ZONES = {zone["id"]: loc for loc in LOCATIONS for zone in loc["regions"]}

# (product id, name, cpu, memory MB, storage GB, price, term, zones where it is sold)
_PRODUCT_ROWS: list[tuple[int, str, str, int, int, str, str, tuple[int, ...]]] = [
    (1, "micro", "0.5", 512, 5, "0.005", "hour", (11, 21, 22)),
    (2, "small", "1.0", 1024, 10, "0.01", "hour", (11, 21, 22)),
    (3, "medium", "2.0", 4096, 20, "15.0", "month", (11, 21, 22)),
    (4, "large", "4.0", 8192, 40, "0.06", "hour", (11, 21, 22)),
    (5, "xlarge", "8.0", 16384, 80, "0.12", "hour", (21, 22)),  # only in the west
]
PRODUCTS: dict[int, JSONDict] = {
    pid: {
        "id": pid,
        "name": name,
        "cpu": cpu,  # BigDecimal renders as a string
        "memory": memory,
        "storage": storage,
        "bandwidth": 1000,
        "local_disk": storage,
        "backup": storage,
        "memory_swap": memory,
        "memory_swappiness": 60,
        "price": price,
        "term": term,
        "zones": zones,
    }
    for pid, name, cpu, memory, storage, price, term, zones in _PRODUCT_ROWS
}


def _variant(vid: int, label: str, default: bool) -> JSONDict:
    return {
        "id": vid,
        "label": label,
        "is_default": default,
        "version": 0 if default else 1,
        "registry_image_tag": label,
        "before_migrate": None,
        "after_migrate": None,
        "rollback_migrate": None,
        "validated_tag": True,
        "validated_tag_updated": "2024-01-01T00:00:00.000Z",
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
    }


def _volume_param(pid: int, label: str, path: str, sftp: bool) -> JSONDict:
    return {
        "id": pid,
        "label": label,
        "mount_path": path,
        "enable_sftp": sftp,
        "borg_enabled": True,
        "borg_freq": "@daily",
        "borg_strategy": "file",
        "borg_keep_hourly": 1,
        "borg_keep_daily": 5,
        "borg_keep_weekly": 2,
        "borg_keep_monthly": 3,
        "borg_keep_annually": 0,
        "borg_pre_backup": [],
        "borg_pre_restore": [],
        "borg_post_restore": [],
        "borg_rollback": [],
        "mount_ro": False,
        "source_volume_id": None,
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
    }


def _image(
    iid: int, label: str, role: str, category: str, min_cpu: str, min_memory: int, variants: list[JSONDict]
) -> JSONDict:
    return {
        "id": iid,
        "active": True,
        "can_scale": True,
        "command": None,
        "container_image_provider_id": 1,
        "description": f"{label} (emulated)",
        "is_free": False,
        "label": label,
        "min_cpu": min_cpu,
        "min_memory": min_memory,
        "registry_custom": False,
        "registry_image_path": f"cmptstks/{role}",
        "registry_auth": False,
        "is_load_balancer": False,
        "role": role,
        "category": category,
        "labels": {},
        "validated_tag": True,
        "validated_tag_updated": "2024-01-01T00:00:00.000Z",
        "shm_size": 0,
        "docker_init": False,
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
        "icon_url": f"/assets/icons/{role}.png",
        "system_image": True,
        "available_vars": [],
        "env_params": [],
        "host_entries": [],
        "setting_params": [],
        "ingress_params": [],
        "image_variants": variants,
        "links": {"container_image_provider": "/api/container_image_providers/1"},
    }


IMAGES: dict[int, JSONDict] = {
    1: _image(1, "Nginx", "nginx", "web", "0.5", 256, [_variant(101, "latest", True), _variant(102, "1.25", False)]),
    2: _image(2, "MariaDB", "mysql", "database", "1.0", 768, [_variant(201, "10.11", True)]),
    3: _image(3, "WordPress", "wordpress", "web", "1.0", 512, [_variant(301, "latest", True)]),
}
VOLUME_PARAMS: dict[int, list[JSONDict]] = {
    1: [
        _volume_param(1001, "html", "/usr/share/nginx/html", True),
        _volume_param(1002, "Config Files", "/etc/nginx/conf.d", True),
    ],
    2: [_volume_param(2001, "data", "/var/lib/mysql", False)],
    3: [_volume_param(3001, "wordpress", "/var/www/html", True)],
}
DEPENDENCIES: dict[int, list[int]] = {3: [2]}  # WordPress needs a MariaDB in the same project
_VARIANTS = {v["id"]: (iid, v) for iid, image in IMAGES.items() for v in image["image_variants"]}


def resource_name(label: str | None) -> str:
    """The csrn friendly name, as ``ContainerImage::VolumeParam#resource_name`` computes it."""
    if not label or not label.strip():
        return "null"
    lowered = re.sub(r"[^a-z0-9 \t\r\n\f\v]", "", label.strip().lower())
    return lowered.replace(" ", "_")[:11]


def volume_param_csrn(param: JSONDict) -> str:
    return f"csrn:caas:template:vol:{resource_name(param['label'])}:{param['id']}"


def _image_json(image: JSONDict) -> JSONDict:
    return {**image, "volumes": VOLUME_PARAMS[image["id"]], "required_containers": DEPENDENCIES.get(image["id"], [])}


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


def _missing() -> Response:
    """``head :not_found``: what the controller answers for a record it cannot find."""
    return Response(status_code=404)


def _invalid(*messages: Any) -> JSONResponse:
    """``api_obj_error``: 422 with every message (BuildOrderService may add an integer)."""
    return JSONResponse({"errors": list(messages)}, status_code=422)


def _no_action() -> JSONResponse:
    """A routed path whose controller lacks the action: Rails' own 404, without the ``errors`` list."""
    return JSONResponse(error_body(404, "Not Found", "rails"), status_code=404)


# ------------------------------------------------------------------------------------------ version, auth
def requested_version(accept: str | None) -> int | None:
    match = re.search(r"api_version=(\d+)", accept or "")
    return int(match.group(1)) if match else None


def check_version(request: Request) -> None:
    accept = request.headers.get("accept")
    version = requested_version(accept)
    if version is None or version in SUPPORTED_VERSIONS:
        return
    if version in DEPRECATED_VERSIONS:
        request.state.api_deprecated = True  # _VersionedRoute adds the header to whatever the handler answers
        return
    shown = (accept or "").split("; ")[-1].split("=")[-1]
    raise HTTPException(422, f"You requested an unsupported version ({shown})", {"API-Version-Supported": "false"})


class _VersionedRoute(APIRoute):
    """Marks answers to a deprecated API version with ``API-Deprecated: true``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response = await handler(request)
            if getattr(request.state, "api_deprecated", False):
                response.headers["API-Deprecated"] = "true"
            return response

        return route


@dataclass(frozen=True)
class Caller:
    user: bool  # False: a client-credentials token (public scope only)


_bearer = HTTPBearer(auto_error=False, description="Doorkeeper access token from POST /api/oauth/token")


def _token_key(token: str) -> str:
    return f"token-{token}"


def identify(
    request: Request,
    world: WorldDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller | None:
    """``auth_request!`` (Basic) then Doorkeeper's token lookup; None when the request carries neither."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic"):
        if not _basic_ok(world, header):
            raise ProviderError(401, "Not Authorized")
        return Caller(user=True)
    if bearer is None:
        return None
    verdict = world.check_access(NAME, bearer.credentials)
    if verdict != "ok":
        text = "The access token expired" if verdict == "expired" else "The access token is invalid"
        raise ProviderError(403, text)  # the documented status and {errors: [...]} body
    with world.lock:
        user = bool(world.private(NAME, _token_key(bearer.credentials)).get("user"))
    return Caller(user=user)


def _basic_ok(world: World, header: str) -> bool:
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1], validate=True).decode()
    except (IndexError, binascii.Error, UnicodeDecodeError):
        return False
    username, _, password = decoded.partition(":")
    creds = world.settings.credentials[NAME]
    return (username, password) == (creds["username"], creds["password"])


CallerDep = Annotated[Caller | None, Depends(identify)]


def require_user(caller: CallerDep) -> None:
    """``doorkeeper_authorize! <scope>, unless: :current_user`` for every scope but ``public``."""
    if caller is None:
        raise ProviderError(401, "The access token is invalid", "oauth:invalid_token")
    if not caller.user:
        message = "The request requires higher privileges than provided by the access token."
        raise ProviderError(403, message, "oauth:insufficient_scope")


def require_public(caller: CallerDep) -> None:
    """``doorkeeper_authorize! :public, ...``: any valid token, or a user."""
    if caller is None:
        raise ProviderError(401, "The access token is invalid", "oauth:invalid_token")


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


def _int(value: Any) -> int | None:
    """Ruby's ``to_i`` for ids: digits only, else None (``find_by`` then finds nothing)."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None


def paginate(request: Request, items: list[JSONDict], root: str) -> Response:
    page = _int(request.query_params.get("page", "1")) or 0
    per_page = _int(request.query_params.get("per_page", str(DEFAULT_PER_PAGE))) or 0
    if page < 1 or per_page < 1:
        return _no_action()  # will_paginate's InvalidPage, which Rails maps to 404
    chunk = items[(page - 1) * per_page : page * per_page]
    headers = {"Total": str(len(items)), "Per-Page": str(per_page)}
    link = _link_header(request, page, per_page, len(items))
    if link:
        headers["Link"] = link
    return JSONResponse({root: chunk}, headers=headers)


def _link_header(request: Request, page: int, per_page: int, total: int) -> str:
    last = max(1, -(-total // per_page))
    rels = {"first": 1, "prev": page - 1} if page > 1 else {}
    if page < last:
        rels.update(next=page + 1, last=last)
    base = str(request.url.replace(query=""))
    return ", ".join(f'<{base}?{urlencode({"page": n, "per_page": per_page})}>; rel="{rel}"' for rel, n in rels.items())


def _next_id(world: World, kind: str) -> int:
    counters = world.private(NAME, "_ids")
    counters[kind] = counters.get(kind, 0) + 1
    return int(counters[kind])


def _coll(world: World, kind: str) -> dict[str, JSONDict]:
    return world.collection(NAME, kind)


def _ref(item: JSONDict) -> JSONDict:
    return {"id": item["id"], "name": item["name"]}


# ------------------------------------------------------------------------------------------ routers
token_router = APIRouter()
public = APIRouter(route_class=_VersionedRoute)
api = APIRouter(route_class=_VersionedRoute)
fallback = APIRouter(route_class=_VersionedRoute)


# ------------------------------------------------------------------------------------------ oauth2
def _token_params(request: Request, raw: bytes) -> dict[str, str]:
    if "json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}


def _client_ok(world: World, request: Request, params: dict[str, str]) -> bool:
    uid, secret = params.get("client_id"), params.get("client_secret")
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            uid, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
    creds = world.settings.credentials[NAME]
    return (uid, secret) == (creds["client_id"], creds["client_secret"])


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


_INVALID_GRANT = (
    "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used "
    "in the authorization request, or was issued to another client."
)


@token_router.post("/api/oauth/token", summary="Doorkeeper token endpoint", response_model=None)
async def token(request: Request, world: WorldDep) -> Response:
    params = _token_params(request, await request.body())
    grant = params.get("grant_type", "")
    if grant not in ("password", "client_credentials", "refresh_token", "authorization_code"):
        return _oauth_error(400, "unsupported_grant_type", "The authorization grant type is not supported.")
    if not _client_ok(world, request, params):
        return _oauth_error(401, "invalid_client", "Client authentication failed due to unknown client.")
    scopes = (params.get("scope") or "public").split()
    if grant == "password":
        creds = world.settings.credentials[NAME]
        if (params.get("username"), params.get("password")) != (creds["username"], creds["password"]):
            return _oauth_error(400, "invalid_grant", _INVALID_GRANT)
        return _issue(world, scopes, user=True)
    if grant == "client_credentials":
        if not set(scopes) <= {"public", "register"}:
            # Auth::OauthTokensController#enforce_user_scopes!: a token without a user gets public scopes only
            return _oauth_error(403, "unauthorized_client", "The requested scope is invalid, unknown, or malformed.")
        return _issue(world, scopes, user=False)
    return _oauth_error(400, "invalid_grant", _INVALID_GRANT)  # no refresh tokens or codes are ever issued


def _issue(world: World, scopes: list[str], *, user: bool) -> Response:
    pair = world.issue_tokens(NAME, "password" if user else "client_credentials")
    with world.lock:
        world.private(NAME, _token_key(pair.access_token))["user"] = user
    body = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "scope": " ".join(scopes),
        "created_at": int(time.time()),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


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
    return paginate(request, [_image_json(i) for i in IMAGES.values()], "container_images")


@public.get("/api/container_images/{image_id}", response_model=None)
def show_image(image_id: str) -> Any:
    image = IMAGES.get(_int(image_id) or 0)
    return _missing() if image is None else {"container_image": _image_json(image)}


@public.get("/api/container_images/{image_id}/volume_params", response_model=None)
def list_volume_params(image_id: str) -> Any:
    image = IMAGES.get(_int(image_id) or 0)
    return _missing() if image is None else {"volume_params": VOLUME_PARAMS[image["id"]]}


# ------------------------------------------------------------------------------------------ account
@api.get("/api/users")
def show_user(world: WorldDep) -> JSONDict:
    with world.lock:
        services = len(_coll(world, "instances"))
        projects = len(_coll(world, "projects"))
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


def _key_texts(world: World) -> tuple[str, ...]:
    return tuple(world.private(NAME, f"key-{k}")["pubkey"] for k in _coll(world, "ssh_keys"))


def _refresh_bastion_keys(world: World) -> None:
    """``UserSshKey#reload_ssh_keys``: every bastion of the account gets the new key list."""
    keys = _key_texts(world)
    for project in _coll(world, "projects").values():
        data = world.private(NAME, _pkey(project["id"]))
        spec = data.get("ssh")
        if isinstance(spec, SshSpec):
            data["ssh"] = replace(spec, authorized_keys=keys)
            if world.sshd is not None:
                world.sshd.set_keys(world.ssh_name(NAME, _pkey(project["id"])), keys)


@api.get("/api/users/ssh_keys")
def list_ssh_keys(world: WorldDep) -> JSONDict:
    with world.lock:
        return {"ssh_keys": list(_coll(world, "ssh_keys").values())}


@api.get("/api/users/ssh_keys/{key_id}", response_model=None)
def show_ssh_key(key_id: str, world: WorldDep) -> Any:
    with world.lock:
        key = _coll(world, "ssh_keys").get(key_id)
        return _missing() if key is None else {"ssh_key": key}


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
        key_id = _next_id(world, "ssh_key")
        key = {"id": key_id, "label": parts[2] if len(parts) > 2 else None, "created_at": now, "updated_at": now}
        _coll(world, "ssh_keys")[str(key_id)] = key
        world.private(NAME, f"key-{key_id}")["pubkey"] = pubkey.strip()
        _refresh_bastion_keys(world)
        return JSONResponse({"ssh_key": key}, status_code=201)


@api.delete("/api/users/ssh_keys/{key_id}", response_model=None)
def delete_ssh_key(key_id: str, world: WorldDep) -> Any:
    with world.lock:
        if key_id not in _coll(world, "ssh_keys"):
            return _missing()
        world.forget(NAME, "ssh_keys", key_id)
        world.private(NAME, f"key-{key_id}").clear()
        _refresh_bastion_keys(world)
    # The key is gone, then `render status: :accepted` finds no destroy template.
    return JSONResponse(error_body(500, "Internal Server Error", "rails"), status_code=500)


# ------------------------------------------------------------------------------------------ catalogue
@api.get("/api/locations", response_model=None)
def list_locations(request: Request) -> Response:
    return paginate(request, LOCATIONS, "locations")


@api.get("/api/locations/{location_id}", response_model=None)
def show_location(location_id: str) -> Any:
    loc = next((loc for loc in LOCATIONS if loc["id"] == _int(location_id)), None)
    return _missing() if loc is None else {"location": loc}


@api.get("/api/products")
def list_products() -> JSONDict:
    """``User#package_list``: one entry per product and availability zone, not paginated."""
    entries = []
    for zone in _ZONES:
        for product in PRODUCTS.values():
            if zone in product["zones"]:
                entries.append({k: v for k, v in product.items() if k != "zones"} | {"region": zone})
    return {"products": entries}


# ------------------------------------------------------------------------------------------ state views
def _pkey(project_id: int) -> str:
    return f"project-{project_id}"


def _skey(service_id: int) -> str:
    return f"service-{service_id}"


def _services_of(world: World, project_id: int) -> list[JSONDict]:
    return [s for s in _coll(world, "instances").values() if s["project"]["id"] == project_id]


def _bastion_of(world: World, project_id: int) -> JSONDict | None:
    return next((b for b in _coll(world, "bastions").values() if b["project_id"] == project_id), None)


def _bastion_json(bastion: JSONDict, *, show: bool = False) -> JSONDict:
    fields = {k: v for k, v in bastion.items() if k != "project_id" and (show or k != "pw_auth")}
    return fields


def _volumes_of_service(world: World, service_id: int) -> list[JSONDict]:
    return [
        v
        for v in _coll(world, "volumes").values()
        if any(m["container_service"]["id"] == service_id for m in v["volume_maps"])
    ]


# ------------------------------------------------------------------------------------------ lifecycle
@dataclass(frozen=True)
class _Pending:
    due: float  # time.monotonic()
    target: str  # "online" | "inactive" | "gone"
    then: Callable[[], None] | None = None


def _pending(world: World, project_id: int) -> dict[str, _Pending]:
    data = world.private(NAME, _pkey(project_id))
    pending: dict[str, _Pending] = data.setdefault("pending", {})
    return pending


def _transition(
    world: World, project_id: int, key: str, target: str, delay: float, then: Callable[[], None] | None = None
) -> None:
    """Schedule ``key`` (a service id, or "project") to reach ``target``; hold ``world.lock``."""
    _pending(world, project_id)[key] = _Pending(time.monotonic() + delay, target, then)
    _replan(world, project_id)


def _holds(world: World, project_id: int) -> dict[str, bool]:
    """Which services keep the bastion up now: online, or restarting after having been online."""
    return {
        str(s["id"]): bool(world.private(NAME, _skey(s["id"])).get("hold")) for s in _services_of(world, project_id)
    }


def _replan(world: World, project_id: int) -> None:
    """One lifecycle chain per project, rebuilt after every change: each step settles what is due and
    starts the bastion's sshd before a service reports online, or stops it before the last one goes away."""
    pending = _pending(world, project_id)
    bastion = _bastion_of(world, project_id)
    up = bastion is not None and bastion["status"] == "running"
    hold = _holds(world, project_id)
    now = time.monotonic()
    steps = []
    for due in sorted({p.due for p in pending.values()}):
        for key, item in pending.items():
            if item.due == due and key in hold:
                hold[key] = item.target == "online"
        need = bastion is not None and any(hold.values())
        ssh: Literal["up", "down"] | None = "up" if need and not up else "down" if up and not need else None
        up = need
        steps.append(Step(at=max(0.0, due - now), ssh=ssh, apply=partial(_settle, world, project_id, due)))
    world.run_steps(NAME, _pkey(project_id), steps)


def _settle(world: World, project_id: int, due: float) -> None:
    """Apply every transition due by ``due`` (runs under the world lock, after any sshd change)."""
    pending = _pending(world, project_id)
    for key, item in sorted(pending.items(), key=lambda kv: kv[1].due):
        if item.due > due:
            continue
        del pending[key]
        if key != "project":
            _apply_service_state(world, int(key), item.target)
        if item.then is not None:
            item.then()
    bastion = _bastion_of(world, project_id)
    if bastion is not None:
        bastion["status"] = "running" if any(_holds(world, project_id).values()) else "stopped"
        bastion["updated_at"] = utc_now()


def _apply_service_state(world: World, service_id: int, target: str) -> None:
    service = _coll(world, "instances").get(str(service_id))
    if service is None:
        return
    if target == "gone":
        _remove_service(world, service)
        return
    private = world.private(NAME, _skey(service_id))
    private["hold"] = target == "online"
    _set_state(world, service, target)


def _set_state(world: World, service: JSONDict, state: str) -> None:
    service["current_state"] = state
    service["updated_at"] = utc_now()
    container_state = {"online": "online", "inactive": "offline"}.get(state, "working")
    req = world.private(NAME, _skey(service["id"])).get("req_state", "running")
    for container in _coll(world, "containers").values():
        if container["container_service_id"] == service["id"]:
            container.update(current_state=container_state, req_state=req, updated_at=service["updated_at"])


def _remove_service(world: World, service: JSONDict) -> None:
    sid = service["id"]
    for volume in _volumes_of_service(world, sid):
        world.forget(NAME, "volumes", str(volume["id"]))  # trashed with the service
    for cid in [c for c, item in _coll(world, "containers").items() if item["container_service_id"] == sid]:
        world.forget(NAME, "containers", cid)
    world.forget(NAME, "instances", str(sid))
    world.private(NAME, _skey(sid)).clear()


# ------------------------------------------------------------------------------------------ orders
@dataclass
class _OrderItem:
    label: str | None
    image: JSONDict
    variant: JSONDict
    product: JSONDict
    volumes: list[JSONDict]


class _OrderRejected(Exception):
    def __init__(self, messages: list[Any]) -> None:
        super().__init__(str(messages))
        self.messages = messages


def _check_order(world: World, order: JSONDict) -> tuple[JSONDict | None, JSONDict, list[_OrderItem]]:
    """``BuildOrderService#valid_order?`` and ``#valid_container_params?``: (project, location, items)."""
    errors: list[Any] = []
    if not str(order.get("project_name") or "").strip():
        errors.append("Missing project name")
    containers: list[Any] = order["containers"] if isinstance(order.get("containers"), list) else []
    if not containers:
        errors.append("Missing containers")
    project = None
    if order.get("project_id") not in (None, ""):
        project = _coll(world, "projects").get(str(_int(order["project_id"])))
        if project is None:
            errors.append("Unknown project")
    if errors:
        raise _OrderRejected(errors)
    location = _order_location(project, order)
    items = [_check_container(world, project, c, containers, errors) for c in containers]
    if errors:
        raise _OrderRejected(errors)
    return project, location, [i for i in items if i is not None]


def _order_location(project: JSONDict | None, order: JSONDict) -> JSONDict:
    if project is not None:
        return _ZONES[project["availability_zone"]["id"]]
    if order.get("location_id") in (None, ""):
        return LOCATIONS[0]
    location = next((loc for loc in LOCATIONS if loc["id"] == _int(order["location_id"])), None)
    if location is None:
        # "Unknown Region", then `region.allow_user?` on a nil region raises inside the action's rescue.
        raise ProviderError(500, "undefined method `allow_user?' for nil:NilClass")
    return location


def _check_container(
    world: World, project: JSONDict | None, item: Any, order_items: list[Any], errors: list[Any]
) -> _OrderItem | None:
    item = item if isinstance(item, dict) else {}
    found = _VARIANTS.get(_int(item.get("image_variant_id")) or 0)
    if found is None:
        errors.append(f"Invalid image. Image Variant ID: {item.get('image_variant_id')} | {item.get('name')}.")
        return None
    image, variant = IMAGES[found[0]], found[1]
    resources = item.get("resources") if isinstance(item.get("resources"), dict) else {}
    product_id = _int((resources or {}).get("product_id") or item.get("product_id") or item.get("package_id"))
    if product_id is None:
        errors.append(f"Missing package selection for {image['label']}")
        return None
    product = PRODUCTS.get(product_id)
    if product is None:
        errors.append(f"Unknown package: {product_id}")
        return None
    if float(product["cpu"]) < float(image["min_cpu"]) or product["memory"] < image["min_memory"]:
        errors.append(
            f"Package {product['name']} not suitable for the image {image['label']}. CPU must be greater than "
            f"{image['min_cpu']}, and memory must be greater than {image['min_memory']} MB."
        )
        return None
    _check_dependencies(world, project, image, variant, order_items, errors)
    volumes = item.get("volumes") if isinstance(item.get("volumes"), list) else []
    _check_volumes(volumes, errors)
    return _OrderItem(item.get("name"), image, variant, product, volumes)


def _check_dependencies(
    world: World, project: JSONDict | None, image: JSONDict, variant: JSONDict, items: list[Any], errors: list[Any]
) -> None:
    included = []
    for other in items:
        found = _VARIANTS.get(_int(other.get("image_variant_id")) or 0) if isinstance(other, dict) else None
        if found is not None:
            included.append(found[0])
    if project is not None:
        included += [s["image"]["id"] for s in _services_of(world, project["id"])]
    needed = DEPENDENCIES.get(image["id"], [])
    missing = [d for d in needed if d not in included]
    if missing:
        have = [d for d in needed if d in included]
        errors.append(f"Missing required dependent services. Have {have}, Need {missing}")
        errors.append(variant["id"])


def _check_volumes(volumes: list[Any], errors: list[Any]) -> None:
    for vol in volumes:
        vol = vol if isinstance(vol, dict) else {}
        action, source, snapshot = vol.get("action"), vol.get("source"), vol.get("snapshot")
        if action == "create":
            continue
        if action == "mount":
            errors.append("Requested mounted volume template is not found in this order")
        elif action == "skip":
            if source:
                errors.append("Skip action is not compatible with a source volume")
            if snapshot:
                errors.append("Skip action is not compatible with a snapshot")
        elif action == "clone":
            if not source:
                errors.append("Clone action requires a source volume")
        else:
            errors.append(f"Unknown action: {action or 'null'}")


@api.get("/api/orders", response_model=None)
def list_orders(request: Request, world: WorldDep) -> Response:
    with world.lock:
        orders = sorted(_coll(world, "orders").values(), key=lambda o: o["created_at"], reverse=True)
        rows = [{k: o[k] for k in ("id", "status", "created_at", "updated_at", "project")} for o in orders]
    return paginate(request, rows, "orders")


@api.get("/api/orders/{order_id}", response_model=None)
def show_order(order_id: str, world: WorldDep) -> Any:
    with world.lock:
        order = _coll(world, "orders").get(order_id)
        return _missing() if order is None else {"order": order}


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
            project, location, items = _check_order(world, params)
        except _OrderRejected as rejected:
            return _invalid(*rejected.messages)
        order = _new_order(world, params, project, location, items)
    p = world.settings.provision_seconds
    world.run_steps(
        NAME,
        f"order-{order['id']}",
        [
            Step(at=p * 0.1, apply=partial(_process_order, world, order["id"], items)),
            Step(at=p * 0.5, apply=partial(_complete_order, world, order["id"])),
        ],
    )
    return JSONResponse({"order": {"id": order["id"], "redirect_url": None, "load_balancer_ip": None}}, 201)


def _new_order(
    world: World, params: JSONDict, project: JSONDict | None, location: JSONDict, items: list[_OrderItem]
) -> JSONDict:
    now = utc_now()
    zone = project["availability_zone"]["id"] if project else location["regions"][0]["id"]
    name = project["name"] if project else str(params["project_name"])
    raw_order = [
        {
            "product_type": "container",
            "label": i.label,
            "image_variant_id": i.variant["id"],
            "qty": 1,
            "resources": {"product_id": i.product["id"], "cpu": i.product["cpu"], "memory": i.product["memory"]},
            "volume_config": i.volumes,
        }
        for i in items
    ]
    order: JSONDict = {
        "id": world.new_id(),
        "status": "pending",
        "order_data": {
            "raw_order": raw_order,
            "project": {
                "id": project["id"] if project else None,
                "name": name,
                "skip_ssh": bool(params.get("skip_ssh")),
            },
            "region_id": zone,
            "location_id": location["id"],
            "load_balancer_ip": None,
        },
        "created_at": now,
        "updated_at": now,
        "project": _ref(project) if project else None,
        "location": {"id": location["id"], "name": location["name"]},
    }
    _coll(world, "orders")[order["id"]] = order
    return order


def _process_order(world: World, order_id: str, items: list[_OrderItem]) -> None:
    """``ProcessOrderService#perform``: project first, then every service (or fail on capacity)."""
    order = _coll(world, "orders").get(order_id)
    if order is None or order["status"] != "pending":
        return
    data = order["order_data"]
    order.update(status="processing", updated_at=utc_now())
    project = _coll(world, "projects").get(str(data["project"]["id"])) or _new_project(world, data)
    order["project"] = _ref(project)
    location = str(data["location_id"])
    if not all(world.take_capacity(NAME, i.product["name"], location) for i in items):
        order.update(status="failed", updated_at=utc_now())
        return
    for item in items:
        service = _new_service(world, project, item)
        _transition(world, project["id"], str(service["id"]), "online", world.settings.provision_seconds * 0.9)
    images = [IMAGES[i] for i in sorted({s["image"]["id"] for s in _services_of(world, project["id"])})]
    project["container_image_ids"] = [i["id"] for i in images]
    project["metadata"] = {"icons": [i["icon_url"] for i in images], "image_names": [i["label"] for i in images]}


def _complete_order(world: World, order_id: str) -> None:
    order = _coll(world, "orders").get(order_id)
    if order is not None and order["status"] == "processing":
        order.update(status="completed", updated_at=utc_now())


def _new_project(world: World, data: JSONDict) -> JSONDict:
    pid = _next_id(world, "project")
    zone = data["region_id"]
    location = _ZONES[zone]
    now = utc_now()
    project = {
        "id": pid,
        "name": data["project"]["name"],
        "skip_ssh": data["project"]["skip_ssh"],
        "current_state": "ok",
        "created_at": now,
        "updated_at": now,
        "container_image_ids": [],
        "region": _ref(location),
        "availability_zone": next(z for z in location["regions"] if z["id"] == zone),
        "links": {
            "services": f"/api/projects/{pid}/services",
            "container_images": f"/api/projects/{pid}/images",
            "bastions": f"/api/projects/{pid}/bastions",
        },
        "metadata": {"icons": [], "image_names": []},
    }
    _coll(world, "projects")[str(pid)] = project
    if not project["skip_ssh"]:
        _new_bastion(world, pid, now)
    return project


def _new_bastion(world: World, project_id: int, now: str) -> None:
    bid = _next_id(world, "bastion")
    ip = world.allocate_ip()
    port = world.allocate_port(ip)
    world.private(NAME, _pkey(project_id))["ssh"] = SshSpec(ip=ip, port=port, authorized_keys=_key_texts(world))
    _coll(world, "bastions")[str(bid)] = {
        "id": bid,
        "name": f"sftp-{project_id}-{bid}",
        "status": "pending",
        "node_id": 1,
        "ip_addr": ip,
        "port": port,
        "username": SFTP_USER,
        "password": secrets.token_urlsafe(12),  # generated per bastion, like Deployment::Sftp
        "pw_auth": True,
        "on_latest_image": True,
        "created_at": now,
        "updated_at": now,
        "project_id": project_id,
    }


def _new_service(world: World, project: JSONDict, item: _OrderItem) -> JSONDict:
    sid = _next_id(world, "service")
    system_name = f"{item.image['role']}-{world.random_token(3)}"
    now = utc_now()
    bastion = _bastion_of(world, project["id"])
    service = {
        "id": sid,
        "name": system_name,
        "label": item.label or item.image["label"],
        "default_domain": f"{system_name}.apps.example.com",
        "public_ip": [],
        "command": None,
        "is_load_balancer": False,
        "has_domain_management": True,
        "current_state": "working",
        "auto_scale": False,
        "auto_scale_horizontal": False,
        "auto_scale_max": 0,
        "labels": {},
        "created_at": now,
        "updated_at": now,
        "region": project["region"],
        "availability_zone": project["availability_zone"],
        "project": _ref(project),
        "image": _service_image(item.image, item.variant),
        "package": _package(item.product),
        "has_sftp": False,
        "ingress_rules": [],
        "product_id": item.product["id"],
        "bastions": [bastion["id"]] if bastion else [],
        "domains": [],
        "deployed_containers": 1,
        "help": {"general": "", "ssh": "", "remote": "", "domain": ""},
        "links": _service_links(project["id"], sid),
    }
    _coll(world, "instances")[str(sid)] = service
    world.private(NAME, _skey(sid)).update(hold=False, req_state="running")
    _new_container(world, service, now)
    service["has_sftp"] = _provision_volumes(world, project, service, item, now)
    return service


def _service_image(image: JSONDict, variant: JSONDict) -> JSONDict:
    return {
        "id": image["id"],
        "name": image["role"],
        "label": image["label"],
        "role": image["role"],
        "variant": {
            "id": variant["id"],
            "label": variant["label"],
            "name": f"{image['label']}-{variant['label']}",
            "path": f"{image['registry_image_path']}:{variant['registry_image_tag']}",
            "default": variant["is_default"],
            "sort": variant["version"],
        },
    }


def _package(product: JSONDict) -> JSONDict:
    keys = ("cpu", "memory", "storage", "bandwidth", "local_disk", "backup", "memory_swap", "memory_swappiness")
    return {"label": product["name"], **{k: product[k] for k in keys}}


def _service_links(project_id: int, sid: int) -> JSONDict:
    base = f"/api/container_services/{sid}"
    return {
        "project": f"/api/projects/{project_id}",
        **{
            part: f"{base}/{part}" for part in ("bastions", "containers", "events", "ingress_rules", "metadata", "logs")
        },
        "products": "/api/products",
    }


def _new_container(world: World, service: JSONDict, now: str) -> None:
    cid = _next_id(world, "container")
    _coll(world, "containers")[str(cid)] = {
        "id": cid,
        "name": f"{service['name']}-{cid}",
        "req_state": "running",
        "current_state": "working",
        "stats": {"cpu": 0.0, "mem": 0.0},
        "local_ip": f"10.134.0.{cid % 250 + 2}",
        "public_ip": None,
        "project_id": service["project"]["id"],
        "container_service_id": service["id"],
        "region": service["region"],
        "availability_zone": service["availability_zone"],
        "ingress_rules": [],
        "on_latest_image": True,
        "links": {
            "container_service": f"/api/container_services/{service['id']}",
            "logs": f"/api/containers/{cid}/logs",
            "project": f"/api/projects/{service['project']['id']}",
        },
        "created_at": now,
        "updated_at": now,
    }


def _provision_volumes(world: World, project: JSONDict, service: JSONDict, item: _OrderItem, now: str) -> bool:
    """``build_volumes!``: every volume param of the image, except those the order marks ``skip``."""
    skip = {v.get("csrn") for v in item.volumes if isinstance(v, dict) and v.get("action") == "skip"}
    has_sftp = False
    for param in VOLUME_PARAMS[item.image["id"]]:
        if volume_param_csrn(param) in skip:
            continue
        vid = _next_id(world, "volume")
        _coll(world, "volumes")[str(vid)] = _new_volume(vid, project, service, item.image, param, now)
        has_sftp = has_sftp or param["enable_sftp"]
    return has_sftp


def _new_volume(vid: int, project: JSONDict, service: JSONDict, image: JSONDict, param: JSONDict, now: str) -> JSONDict:
    borg = {k: v for k, v in param.items() if k.startswith("borg_")}
    return {
        "id": vid,
        "csrn": f"csrn:caas:project:vol:{resource_name(param['label'])}:{vid}",
        "name": str(uuid.uuid4()),
        "label": param["label"],
        "user_id": 1,
        "region_id": project["availability_zone"]["id"],
        "to_trash": False,
        "trash_after": None,
        "usage": "0.0",
        "usage_checked": None,
        "trashed_by_id": None,
        "detached_at": None,
        "subscription_id": None,
        "enable_sftp": param["enable_sftp"],
        **borg,
        "borg_post_backup": [],
        "created_at": now,
        "updated_at": now,
        "volume_maps": [
            {
                "id": vid,
                "mount_ro": param["mount_ro"],
                "mount_path": param["mount_path"],
                "container_service": {
                    "id": service["id"],
                    "csrn": f"csrn:caas:project:service:{service['name']}:{service['id']}",
                    "name": service["name"],
                    "label": service["label"],
                },
            }
        ],
        "template": {
            "id": param["id"],
            "csrn": volume_param_csrn(param),
            "container_image": {
                "id": image["id"],
                "csrn": f"csrn:caas:template:image:{image['role']}:{image['id']}",
                "label": image["label"],
            },
        },
    }


# ------------------------------------------------------------------------------------------ projects
@api.get("/api/projects", response_model=None)
def list_projects(request: Request, world: WorldDep) -> Response:
    with world.lock:
        return paginate(request, list(_coll(world, "projects").values()), "projects")


def _project(world: World, project_id: str) -> JSONDict | None:
    return _coll(world, "projects").get(project_id)


@api.get("/api/projects/{project_id}", response_model=None)
def show_project(project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = _project(world, project_id)
        return _missing() if project is None else {"project": project}


@api.delete("/api/projects/{project_id}", status_code=202, response_model=None)
def delete_project(project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = _project(world, project_id)
        if project is None:
            return _missing()
        pid = project["id"]
        project["current_state"] = "deleting"
        # One due time for the project and its services: they vanish in the same step, so nobody sees the
        # services gone while the (emptied) project still exists.
        due = time.monotonic() + world.settings.provision_seconds / 2
        for service in _services_of(world, pid):
            world.private(NAME, _skey(service["id"])).update(req_state="stopped")
            _set_state(world, service, "working")
            _pending(world, pid)[str(service["id"])] = _Pending(due, "gone")
        _pending(world, pid)["project"] = _Pending(due, "gone", partial(_remove_project, world, pid))
        _replan(world, pid)
    return JSONResponse({}, status_code=202)


def _remove_project(world: World, project_id: int) -> None:
    bastion = _bastion_of(world, project_id)
    if bastion is not None:
        world.forget(NAME, "bastions", str(bastion["id"]))
    world.forget(NAME, "projects", str(project_id))


@api.get("/api/projects/{project_id}/services", response_model=None)
def list_project_services(request: Request, project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = _project(world, project_id)
        if project is None:
            return _missing()
        return paginate(request, _services_of(world, project["id"]), "container_services")


@api.get("/api/projects/{project_id}/volumes", response_model=None)
def list_project_volumes(request: Request, project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = _project(world, project_id)
        if project is None:
            return _missing()
        volumes = [v for s in _services_of(world, project["id"]) for v in _volumes_of_service(world, s["id"])]
        return paginate(request, volumes, "volumes")


@api.get("/api/projects/{project_id}/bastions", response_model=None)
def list_project_bastions(request: Request, project_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = _project(world, project_id)
        if project is None:
            return _missing()
        bastion = _bastion_of(world, project["id"])
        return paginate(request, [_bastion_json(bastion)] if bastion else [], "bastions")


@api.get("/api/projects/{project_id}/bastions/{bastion_id}", response_model=None)
def show_project_bastion(project_id: str, bastion_id: str, world: WorldDep) -> Any:
    with world.lock:
        project = _project(world, project_id)
        if project is None:
            return _missing()
        bastion = _bastion_of(world, project["id"])
        if bastion is None or str(bastion["id"]) != bastion_id:
            return JSONResponse({"errors": ["Unknown sftp container"]}, status_code=404)
        return {"bastion": _bastion_json(bastion, show=True)}


# ------------------------------------------------------------------------------------------ services
def _service(world: World, service_id: str) -> JSONDict | None:
    return _coll(world, "instances").get(service_id)


def _service_image_json(service: JSONDict) -> JSONDict:
    return _image_json(IMAGES[service["image"]["id"]])


@api.get("/api/container_services", response_model=None)
def list_services(request: Request, world: WorldDep) -> Response:
    with world.lock:
        return paginate(request, list(_coll(world, "instances").values()), "container_services")


@api.get("/api/container_services/{service_id}", response_model=None)
def show_service(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = _service(world, service_id)
        if service is None:
            return _missing()
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
        service = _service(world, service_id)
        if service is None:
            return _missing()
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
            world.private(NAME, _skey(service["id"]))["tag_list"] = list(dict.fromkeys(tags))
        return JSONResponse({"container_service": service, "container_image": _service_image_json(service)}, 202)


@api.delete("/api/container_services/{service_id}", status_code=202, response_model=None)
def delete_service(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = _service(world, service_id)
        if service is None:
            return _missing()
        world.private(NAME, _skey(service["id"])).update(req_state="stopped")
        _set_state(world, service, "working")
        half = world.settings.provision_seconds / 2
        _transition(world, service["project"]["id"], str(service["id"]), "gone", half)
    return JSONResponse({}, status_code=202)


_POWER = {"start": ("running", "online", 1.0), "stop": ("stopped", "inactive", 0.5)}
_POWER.update(restart=_POWER["start"], rebuild=_POWER["start"])


@api.put("/api/container_services/{service_id}/power/{action}", response_model=None)
@api.patch("/api/container_services/{service_id}/power/{action}", response_model=None, include_in_schema=False)
def power(service_id: str, action: str, world: WorldDep) -> Any:
    with world.lock:
        service = _service(world, service_id)
        if service is None:
            return _missing()
        if action not in _POWER:
            return _invalid("Unknown action.", f"Available actions are: {', '.join(_POWER)}")
        req_state, target, share = _POWER[action]
        world.private(NAME, _skey(service["id"]))["req_state"] = req_state
        _set_state(world, service, "working")
        delay = world.settings.provision_seconds * share
        _transition(world, service["project"]["id"], str(service["id"]), target, delay)
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
        service = _service(world, service_id)
        if service is None:
            return _missing()
        if not isinstance(params, dict) or not params:
            # params.require raises inside the action's `rescue => e`: api_fatal_error
            raise ProviderError(500, "param is missing or the value is empty: container_service")
        product = PRODUCTS.get(_int(params.get("product_id")) or 0)
        if product is None:
            return _invalid(f"Missing package id: {params.get('product_id')}")
        if product["id"] != service["product_id"]:
            _set_state(world, service, "working")
            half = world.settings.provision_seconds / 2
            then = partial(_switch_package, service, product)
            _transition(world, service["project"]["id"], str(service["id"]), "online", half, then)
    return JSONResponse({}, status_code=202)


def _switch_package(service: JSONDict, product: JSONDict) -> None:
    service.update(product_id=product["id"], package=_package(product))


@api.get("/api/container_services/{service_id}/containers", response_model=None)
def list_service_containers(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = _service(world, service_id)
        if service is None:
            return _missing()
        items = [c for c in _coll(world, "containers").values() if c["container_service_id"] == service["id"]]
        return {"containers": items}


@api.get("/api/container_services/{service_id}/bastions", response_model=None)
def list_service_bastions(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = _service(world, service_id)
        if service is None:
            return _missing()
        bastion = _bastion_of(world, service["project"]["id"])
        return {"bastions": [_bastion_json(bastion)] if bastion else []}


@api.get("/api/container_services/{service_id}/volumes", response_model=None)
def list_service_volumes(service_id: str, world: WorldDep) -> Any:
    with world.lock:
        service = _service(world, service_id)
        return _missing() if service is None else {"volumes": _volumes_of_service(world, service["id"])}


@api.get("/api/containers/{container_id}", response_model=None)
def show_container(container_id: str, world: WorldDep) -> Any:
    with world.lock:
        container = _coll(world, "containers").get(container_id)
        return _missing() if container is None else {"container": container}


# ------------------------------------------------------------------------------------------ volumes
@api.get("/api/volumes", response_model=None)
def list_volumes(request: Request, world: WorldDep) -> Response:
    with world.lock:
        active = [v for v in _coll(world, "volumes").values() if not v["to_trash"]]
        return paginate(request, active, "volumes")


@api.get("/api/volumes/{volume_id}", response_model=None)
def show_volume(volume_id: str, world: WorldDep) -> Any:
    with world.lock:
        volume = _coll(world, "volumes").get(volume_id)
        return _missing() if volume is None else {"volume": volume}


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
        volume = _coll(world, "volumes").get(volume_id)
        if volume is None:
            return _missing()
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


# ------------------------------------------------------------------------------------------ seeding
SEED_SERVICES_PER_PROJECT = 25


def seed_instances(world: World, count: int, first: int) -> None:
    """``count`` online services (World.seed_hosts), ``SEED_SERVICES_PER_PROJECT`` to a project.

    Each project gets a running bastion (an address and a port, no sshd) and its services cycle through
    images and the products sold in the project's zone; containers and volumes exist as after an order.
    Call with ``world.lock`` held.
    """
    zones = sorted(_ZONES)
    now = utc_now()
    project: JSONDict | None = None
    for offset, index in enumerate(range(first, first + count)):
        if offset % SEED_SERVICES_PER_PROJECT == 0:
            zone = zones[offset // SEED_SERVICES_PER_PROJECT % len(zones)]
            name = f"seed-project-{index:05d}"
            project = _new_project(world, {"region_id": zone, "project": {"name": name, "skip_ssh": False}})
            bastion = _bastion_of(world, project["id"])
            if bastion is not None:
                bastion["status"] = "running"
        assert project is not None
        zone_id = project["availability_zone"]["id"]
        products = [p for p in PRODUCTS.values() if zone_id in p["zones"]]
        image = IMAGES[sorted(IMAGES)[index % len(IMAGES)]]
        variant = image["image_variants"][0]
        item = _OrderItem(f"seed-{index:05d}", image, variant, products[index % len(products)], [])
        service = _new_service(world, project, item)
        world.private(NAME, _skey(service["id"]))["hold"] = True
        _set_state(world, service, "online")
        service["created_at"] = service["updated_at"] = now
        project_images = sorted(set(project["container_image_ids"]) | {image["id"]})
        project["container_image_ids"] = project_images
        project["metadata"] = {
            "icons": [IMAGES[i]["icon_url"] for i in project_images],
            "image_names": [IMAGES[i]["label"] for i in project_images],
        }


# Routes are copied when a router is included, so this must come after every route above.
router = APIRouter()
router.include_router(token_router, tags=["computestacks: oauth"])
_versioned = [Depends(check_version)]
router.include_router(public, dependencies=[*_versioned, Depends(require_public)], tags=["computestacks: public"])
router.include_router(api, dependencies=[*_versioned, Depends(require_user)], tags=["computestacks"])
router.include_router(fallback, dependencies=[*_versioned, Depends(identify)])

_HOURS_PER_TERM = {"hour": 1.0, "month": 730.0}


def ledger(world: World) -> list[JSONDict]:
    """Services at their product's price per hour; projects (with their bastion), volumes (part of their
    service's package) and SSH keys cost nothing by themselves but stay in the account."""
    with world.lock:
        items = []
        for service in _coll(world, "instances").values():
            product = PRODUCTS[service["product_id"]]
            hourly = float(product["price"]) / _HOURS_PER_TERM[product["term"]]
            items.append(ledger_item("instance", service["id"], service["label"], hourly))
        kept = (("project", "projects", "name"), ("volume", "volumes", "label"), ("ssh_key", "ssh_keys", "label"))
        for kind, collection, name in kept:
            objects = _coll(world, collection).values()
            items += [ledger_item(kind, o["id"], o.get(name), None, billed=False) for o in objects]
        return items


SPEC = ProviderSpec(
    name=NAME,
    prefix=PREFIX,
    router=router,
    error_body=error_body,
    validation_error=_validation_error,
    http_error=_http_error,
    is_auth_request=lambda method, path: path.rstrip("/") == "/api/oauth/token",
    is_create_request=lambda method, path: (
        method == "POST" and path.rstrip("/") in {"/api/orders", "/api/users/ssh_keys"}
    ),
    seed=seed_instances,
    ledger=ledger,
)

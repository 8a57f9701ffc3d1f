"""ComputeStacks' API versioning (``Accept: ...; api_version=NN``) and authentication: HTTP Basic, Doorkeeper
bearer tokens and the OAuth token endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from gpucloud.emulator.base import ProviderError, WorldDep
from gpucloud.emulator.computestacks.models import NAME, RecordNotFound
from gpucloud.emulator.world import World

DEFAULT_API_VERSION = 80
SUPPORTED_VERSIONS = (80,)
DEPRECATED_VERSIONS = (51, 52, 53, 54, 60, 61, 62, 65, 70, 71)


# ------------------------------------------------------------------------------------------ version, auth
def requested_version(accept: str | None) -> int | None:
    match = re.search(r"api_version=(\d+)", accept or "")
    return int(match.group(1)) if match else None


async def check_version(request: Request) -> None:
    accept = request.headers.get("accept")
    version = requested_version(accept)
    if version is None or version in SUPPORTED_VERSIONS:
        return
    if version in DEPRECATED_VERSIONS:
        request.state.api_deprecated = True  # VersionedRoute adds the header to whatever the handler answers
        return
    shown = (accept or "").split("; ")[-1].split("=")[-1]
    raise HTTPException(422, f"You requested an unsupported version ({shown})", {"API-Version-Supported": "false"})


class VersionedRoute(APIRoute):
    """Marks answers to a deprecated API version with ``API-Deprecated: true``, and answers a record the handler
    could not find (:class:`~.models.RecordNotFound`) as the controller does."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except RecordNotFound:
                response = Response(status_code=404)  # ``head :not_found``
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


async def identify(
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


async def require_user(caller: CallerDep) -> None:
    """``doorkeeper_authorize! <scope>, unless: :current_user`` for every scope but ``public``."""
    if caller is None:
        raise ProviderError(401, "The access token is invalid", "oauth:invalid_token")
    if not caller.user:
        message = "The request requires higher privileges than provided by the access token."
        raise ProviderError(403, message, "oauth:insufficient_scope")


async def require_public(caller: CallerDep) -> None:
    """``doorkeeper_authorize! :public, ...``: any valid token, or a user."""
    if caller is None:
        raise ProviderError(401, "The access token is invalid", "oauth:invalid_token")


# ------------------------------------------------------------------------------------------ routers
token_router = APIRouter()


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

"""The emulator's FastAPI app: every provider router under its own prefix, the control API, /docs.

Adding a provider or an endpoint: see :mod:`gpucloud.emulator` (the part exposes ``SPEC``, see
:mod:`gpucloud.emulator.base`, and the provider is registered in :mod:`gpucloud.registry`).

FastAPI exception handlers are app-wide, so the handlers below pick the error body shape by path prefix:
DataCrunch gets ``{"code", "message"}`` (validation errors as 400), Voltage Park and everything else keep
FastAPI's ``{"detail": ...}`` (validation errors as 422).
"""

from __future__ import annotations

import importlib
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpucloud.__about__ import __version__
from gpucloud.emulator.base import ProviderError, ProviderSpec, WorldDep
from gpucloud.emulator.middleware import CONTROL_PREFIX, CONTROL_TOKEN_HEADER, FaultMiddleware
from gpucloud.emulator.world import FaultRule, JSONDict, World
from gpucloud.registry import REGISTRY

PROVIDERS: tuple[ProviderSpec, ...] = tuple(importlib.import_module(entry.emulator_module).SPEC for entry in REGISTRY)


def provider_for(path: str) -> ProviderSpec | None:
    return next((p for p in PROVIDERS if p.owns(path)), None)


def build_app(world: World) -> FastAPI:
    app = FastAPI(
        title="gpucloud emulator",
        version=__version__,
        description="Emulated GPU cloud provider APIs. Base URLs: "
        + ", ".join(f"{p.name} `{p.prefix}`" for p in PROVIDERS)
        + f". Control API under `{CONTROL_PREFIX}`.",
    )
    app.state.world = world
    for spec in PROVIDERS:
        app.include_router(spec.router, prefix=spec.prefix)
    app.include_router(open_control, prefix=CONTROL_PREFIX, tags=["emulator control"])
    app.include_router(control, prefix=CONTROL_PREFIX, tags=["emulator control"])
    for spec in PROVIDERS:
        if spec.control is not None:  # this provider's own emulator controls (e.g. discontinue a spot instance)
            app.include_router(
                spec.control,
                prefix=f"{CONTROL_PREFIX}/{spec.name}",
                dependencies=[Depends(require_control_token)],
                tags=["emulator control"],
            )
    app.add_exception_handler(ProviderError, _on_provider_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_server_error)
    app.add_middleware(FaultMiddleware, world=world, providers=PROVIDERS)
    if world.settings.seed_hosts:
        seed_hosts(world, world.settings.seed_hosts)
    return app


def seed_hosts(world: World, count: int) -> dict[str, int]:
    """Spread ``count`` running instances over every provider that can seed them (see World.seed_hosts)."""
    return world.seed_hosts(count, {p.name: p.seed for p in PROVIDERS if p.seed is not None})


# ------------------------------------------------------------------------------------------ error handlers
async def _on_provider_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProviderError)
    spec = provider_for(request.url.path)
    body = spec.error_body(exc.status, exc.message, exc.code) if spec else {"detail": exc.message}
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    spec = provider_for(request.url.path)
    if spec is not None and spec.validation_error is not None:
        status, body = spec.validation_error(list(exc.errors()))
        return JSONResponse(body, status_code=status)
    return await request_validation_exception_handler(request, exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    spec = provider_for(request.url.path)
    if spec is not None and spec.http_error is not None:
        body = spec.http_error(exc.status_code, str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    return await http_exception_handler(request, exc)


async def _on_server_error(request: Request, exc: Exception) -> Response:
    spec = provider_for(request.url.path)
    body = (
        spec.error_body(500, "Internal server error", "server_error") if spec else {"detail": "Internal Server Error"}
    )
    return JSONResponse(body, status_code=500)


# ------------------------------------------------------------------------------------------ control API
def require_control_token(
    world: WorldDep,
    token: Annotated[str | None, Header(alias=CONTROL_TOKEN_HEADER, include_in_schema=False)] = None,
) -> None:
    """The control API resets the world, reads every secret in it and injects faults: its own token only."""
    if token is None or not secrets.compare_digest(token.encode(), world.settings.control_token.encode()):
        raise StarletteHTTPException(
            401, f"the emulator's control API needs the {CONTROL_TOKEN_HEADER} header (see the emulator env file)"
        )


# Liveness only, for readiness waits: no state, no secrets.
open_control = APIRouter()
control = APIRouter(dependencies=[Depends(require_control_token)])


class FaultsPatch(BaseModel):
    """Only the fields present in the body change; ``rules`` replaces the rules (``[]``: none)."""

    latency_ms: float | None = Field(default=None, ge=0)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    rate_limit_burst: int | None = Field(default=None, ge=0)
    drop_create_rate: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    error_on_create: bool | None = None
    reject_auth: bool | None = None
    create_error_burst: int | None = Field(default=None, ge=0)
    rules: list[FaultRule] | None = None  # validated by FaultRule itself


class ProviderBody(BaseModel):
    provider: str = "datacrunch"


class RevokeBody(BaseModel):
    provider: str | None = None


class CapacityBody(BaseModel):
    provider: str
    instance_type: str
    location: str | None = None  # None: every location
    available: bool


class StockBody(BaseModel):
    """One type's stock at every location (see World.set_stock); a new body replaces the type's control."""

    provider: str
    instance_type: str
    left: int | None = Field(default=None, ge=0)  # creates that succeed before it is exhausted; None: unlimited
    flap: bool = False  # creates alternate refused / accepted, the first refused
    stale_catalogue: bool = False  # the catalogue shows it available even when creates are refused


class BalanceBody(BaseModel):
    provider: str = "datacrunch"
    amount: float


class RateLimitBody(BaseModel):
    provider: str
    per_minute: int | None = Field(default=None, ge=1)  # None: no limit


@open_control.get("/health")
def health(world: WorldDep) -> JSONDict:
    return {
        "status": "ok",
        "providers": {p.name: p.prefix for p in PROVIDERS},
        "ssh": world.sshd is not None,
        "ssh_port": world.settings.ssh_port,
        "ssh_user": world.ssh_user,
        "provision_seconds": world.settings.provision_seconds,
    }


@control.get("/requests")
def list_requests(world: WorldDep, provider: str | None = None) -> list[JSONDict]:
    return [r.to_json() for r in world.requests if provider is None or r.provider == provider]


@control.delete("/requests", status_code=204)
def clear_requests(world: WorldDep) -> Response:
    world.clear_requests()
    return Response(status_code=204)


@control.get("/faults")
def get_faults(world: WorldDep) -> dict[str, Any]:
    return vars(world.faults)


@control.post("/faults")
def set_faults(body: FaultsPatch, world: WorldDep) -> dict[str, Any]:
    changes = body.model_dump(include=body.model_fields_set - {"rules"})
    if body.rules is not None:
        changes["rules"] = body.rules
    return vars(world.set_faults(**changes))


@control.post("/rate-limit")
def set_rate_limit(body: RateLimitBody, world: WorldDep) -> JSONDict:
    world.set_rate_limit(body.provider, body.per_minute)
    return {"provider": body.provider, "per_minute": body.per_minute}


@control.post("/expire-tokens")
def expire_tokens(world: WorldDep, body: ProviderBody | None = None) -> JSONDict:
    provider = (body or ProviderBody()).provider
    world.expire_tokens(provider)
    return {"expired": provider}


@control.post("/revoke-access-tokens")
def revoke_access_tokens(world: WorldDep, body: ProviderBody | None = None) -> JSONDict:
    provider = (body or ProviderBody()).provider
    world.revoke_access_tokens(provider)
    return {"revoked": provider}


@control.post("/revoke-refresh-tokens")
def revoke_refresh_tokens(world: WorldDep, body: RevokeBody | None = None) -> JSONDict:
    provider = (body or RevokeBody()).provider
    world.revoke_refresh_tokens(provider)
    return {"revoked": provider or "all"}


@control.post("/capacity")
def set_capacity(body: CapacityBody, world: WorldDep) -> JSONDict:
    world.set_capacity(body.provider, body.instance_type, body.location, body.available)
    return body.model_dump()


@control.post("/stock")
def set_stock(body: StockBody, world: WorldDep) -> JSONDict:
    if body.provider not in {p.name for p in PROVIDERS}:
        raise StarletteHTTPException(404, f"unknown provider {body.provider!r}")
    fields = body.model_dump(exclude={"provider", "instance_type"})
    return {
        "provider": body.provider,
        "instance_type": body.instance_type,
        **vars(world.set_stock(body.provider, body.instance_type, **fields)),
    }


@control.get("/stock")
def get_stock(world: WorldDep) -> JSONDict:
    """Every stock control with how many creates it let through (``taken``) and refused."""
    return {p: {t: vars(s) for t, s in types.items()} for p, types in world.stock().items()}


@control.delete("/stock", status_code=204)
def clear_stock(world: WorldDep, provider: str | None = None) -> Response:
    world.clear_stock(provider)
    return Response(status_code=204)


@control.post("/balance")
def set_balance(body: BalanceBody, world: WorldDep) -> JSONDict:
    world.set_balance(body.provider, body.amount)
    return body.model_dump()


@control.post("/reset")
def reset(world: WorldDep) -> JSONDict:
    world.reset()
    return {"reset": True}


class SeedBody(BaseModel):
    hosts: int = Field(ge=0, le=100_000)


@control.post("/seed")
def seed(body: SeedBody, world: WorldDep) -> dict[str, int]:
    """Add running instances (no sshd) spread evenly over the providers; answers how many each got."""
    return seed_hosts(world, body.hosts)


@control.get("/state")
def state(world: WorldDep) -> JSONDict:
    return {"providers": world.state(), "faults": vars(world.faults)}


@control.get("/ledger")
def ledger(world: WorldDep, provider: str | None = None) -> JSONDict:
    """What each account holds and bills now: ``{provider: {items, hourly_usd, billed, kept}}``.

    ``hourly_usd`` sums the billed items with a known price; ``billed`` counts billed items, ``kept`` the
    ones that cost nothing by themselves (keys, scripts, projects) but stay behind in the account.
    """
    if provider is not None and provider not in {p.name for p in PROVIDERS}:
        raise StarletteHTTPException(404, f"unknown provider {provider!r}")
    accounts: JSONDict = {}
    for spec in PROVIDERS:
        if spec.ledger is None or provider not in (None, spec.name):
            continue
        items = spec.ledger(world)
        billed = [i for i in items if i["billed"]]
        accounts[spec.name] = {
            "items": items,
            "hourly_usd": round(sum(i["hourly_usd"] or 0.0 for i in billed), 6),
            "billed": len(billed),
            "kept": len(items) - len(billed),
        }
    return {"providers": accounts}

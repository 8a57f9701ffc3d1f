"""What a provider part hands to the app, and small helpers shared by the provider parts.

A provider part defines ``SPEC = ProviderSpec(...)``: its router (the wire; state lives in the
:class:`~gpucloud.emulator.world.World`), how its error bodies look, and which of its requests are auth or create
calls (faults treat those specially); its path prefix comes from :mod:`gpucloud.registry`. ``app.PROVIDERS`` lists
the specs. More helpers the parts share: :mod:`gpucloud.emulator.common`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Depends, Request

from gpucloud.emulator.world import JSONDict, Seeder, World
from gpucloud.registry import registration

F = TypeVar("F", bound=Callable[..., Any])

_KEY_TYPES = {
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
}


class ProviderError(Exception):
    """Raised by a router handler; rendered with the owning provider's error body shape."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ProviderSpec:
    name: str  # as registered in gpucloud.registry
    router: APIRouter
    # (status, message, code or None) -> JSON error body in the provider's own shape
    error_body: Callable[[int, str, str | None], JSONDict]
    # Request validation errors: (status, body) for providers that do not use FastAPI's 422 shape.
    validation_error: Callable[[list[Any]], tuple[int, JSONDict]] | None = None
    # (method, path relative to prefix) -> bool
    is_auth_request: Callable[[str, str], bool] = lambda method, path: False
    is_create_request: Callable[[str, str], bool] = lambda method, path: False
    # Shape of HTTPException bodies (unknown route, 405): None keeps FastAPI's {"detail": ...}.
    http_error: Callable[[int, str], JSONDict] | None = None
    # Adds running instances in the provider's wire shape for World.seed_hosts; None: cannot seed.
    seed: Seeder | None = None
    # Everything the account holds that the provider bills or keeps (see :func:`ledger_item`); hold no lock.
    ledger: Callable[[World], list[JSONDict]] | None = None
    # Controls of this provider's own (served under /_emulator/<name>, control token required); None: none.
    control: APIRouter | None = None

    @property
    def prefix(self) -> str:
        """Where the app mounts the router, e.g. "/datacrunch/v1": the provider's base URL is server URL + prefix."""
        return registration(self.name).emulator_prefix

    def owns(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def relative(self, path: str) -> str:
        return path[len(self.prefix) :] or "/"


def ledger_item(
    kind: str, rid: Any, name: Any, hourly_usd: float | None, *, billed: bool = True, purged: bool = False
) -> JSONDict:
    """One line of the account ledger: ``billed`` things cost ``hourly_usd`` (None where the provider
    publishes no price); the others (keys, scripts, projects) cost nothing but are still left in the account.
    ``purged``: deleted, held for recovery (a trash) until the provider removes it by itself."""
    return {
        "kind": kind,
        "id": str(rid),
        "name": str(name or ""),
        "hourly_usd": (round(hourly_usd, 6) if hourly_usd is not None else None) if billed else 0.0,
        "billed": billed,
        "purged_by_provider": purged,
    }


# Dependencies are ``async def`` (this one and each provider's auth check): FastAPI runs a plain ``def`` dependency
# on a worker thread, one hop per dependency per request, which was about a third of the emulator's CPU for a
# small answer (80 ComputeStacks bastion lookups at once queue behind each other). They do no I/O.
async def get_world(request: Request) -> World:
    return cast(World, request.app.state.world)


WorldDep = Annotated[World, Depends(get_world)]


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds and a Z, as both providers print timestamps."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_public_key(text: str) -> tuple[str, bytes] | None:
    """(key type, key blob) of an OpenSSH public key line, or None when it is not one."""
    parts = text.strip().split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return (parts[0], blob) if blob else None


def valid_public_key(text: str) -> bool:
    """An OpenSSH public key whose blob names the same key type as its prefix (what sshd would accept)."""
    parsed = parse_public_key(text)
    if parsed is None or len(parsed[1]) < 4:
        return False
    kind, blob = parsed
    length = int.from_bytes(blob[:4], "big")
    return blob[4 : 4 + length] == kind.encode()


def fingerprint(text: str) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint ('' for an unparseable key)."""
    parsed = parse_public_key(text)
    if parsed is None:
        return ""
    digest = hashlib.sha256(parsed[1]).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def with_and_without_slash(register: Callable[..., Callable[[F], F]], path: str, **kw: Any) -> Callable[[F], F]:
    """Register a route at ``path`` and at its slash-twin (hidden from /docs).

    Clients disagree on trailing slashes and Starlette would answer the twin with a 307 redirect, which
    httpx does not follow by default; serving both paths avoids that surprise.
    """
    twin = path.rstrip("/") if path.endswith("/") else path + "/"

    def decorate(fn: F) -> F:
        register(path, **kw)(fn)
        register(twin, include_in_schema=False, **kw)(fn)
        return fn

    return decorate

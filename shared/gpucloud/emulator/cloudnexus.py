"""CloudNexus Compute API, emulated under ``/cloudnexus/v1`` (one file: state and wire are small enough together).

Follows /work/shared/api-docs/cloudnexus.txt: bearer keys with a ``cn_live_``/``cn_test_`` prefix;
``GET /compute/instances`` with ``page``/``per_page`` (max 100, above -> 400) and ``region``/``status``
filters (and ``tags``, shape assumed below), answering
``{"data": [...], "pagination": {total, page, per_page, total_pages}}``;
``POST /compute/instances`` answering a job id; ``POST /compute/instances/{id}/actions`` with
``start|stop|reboot|resize|snapshot``; 429 beyond 120 requests a minute (the World's default limit).

Inferred (not in the captured docs), built on the same conventions:
- The list's ``tags`` filter: the doc says "Supports filtering by region, status, and tags" but documents
  no parameter for tags. Since ``tags`` is a key-value object at create, the emulator takes
  ``tags=key:value[,key:value...]``: an instance matches when it carries every listed pair (AND). A
  malformed item (no ``:``, or an empty key) -> 400 ``invalid_request``.
- ``GET /jobs/{job_id}`` -> ``{id, type, status: queued|running|completed|failed, resource_id, error,
  created_at, updated_at}``; ``error`` is null or ``{code, message}``.
- ``GET /compute/instances/{id}`` -> the instance; ``DELETE /compute/instances/{id}`` -> 202 with a job.
- ``GET /ssh-keys`` (paginated like instances), ``POST /ssh-keys`` ``{name, public_key}`` -> 201 key,
  ``GET /ssh-keys/{id}``, ``DELETE /ssh-keys/{id}`` -> 204. Key ids look like ``key_<12 hex>``.

Choices where the docs are silent:
- Error body: ``{"error": {"code", "message"}}``. Codes: ``invalid_request`` (400, request validation
  included), ``invalid_state`` (400, an action the status does not allow), ``unauthorized`` (401),
  ``forbidden`` (403), ``not_found`` (404), ``rate_limit_exceeded`` (429 + ``Retry-After``),
  ``internal_error`` (500).
- Single resources are bare objects; creates, actions and deletes answer 202 ``{"job_id", "status"}``.
- 403: the read-only key (:func:`read_only_token`, one per run) may only read; anything else it sends is
  forbidden.
- Instances carry ``image``, ``ssh_keys`` (ids) and ``tags`` besides the documented list fields, and
  ``ipv4`` is null until the first ``running``. Each instance has a distinct 127.x address and its sshd
  listens on the emulator's fixed ``settings.ssh_port`` (the API reports no port).
- Statuses, with P = ``provision_seconds`` (a job follows each change: queued -> running -> completed):
  create -> ``provisioning`` -> ``running`` (P); stop -> ``stopping`` -> ``stopped`` (P/2);
  start -> ``starting`` -> ``running`` (P); reboot -> ``rebooting`` -> ``running`` (P);
  resize -> ``resizing`` -> back to ``running`` (P) or ``stopped`` (P/2) with the new ``type``;
  delete -> ``deleting`` -> gone (P/2, then 404). snapshot keeps the status; its job's ``resource_id``
  is a ``snap_...`` id that ``image`` accepts at create. start needs ``stopped``; stop, reboot need
  ``running``; resize, snapshot need ``running``/``stopped``; else 400 ``invalid_state``.
- A create where ``World.set_capacity("cloudnexus", <type>, <region or None>, False)`` says no capacity is
  accepted, then its job fails (``capacity_unavailable``) and the instance disappears. A job whose work
  is superseded by a later action on the same instance fails with ``superseded``.
- Names need not be unique (the docs do not say they must).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from gpucloud.emulator.base import (
    ProviderError,
    ProviderSpec,
    WorldDep,
    fingerprint,
    ledger_item,
    utc_now,
    valid_public_key,
)
from gpucloud.emulator.common import (
    error_code,
    find,
    http_error_as,
    page_of,
    posts_to,
    validation_error_as,
)
from gpucloud.emulator.sshd import SshSpec
from gpucloud.emulator.world import EmulatorSettings, JSONDict, Step, World
from gpucloud.registry import registration

NAME = "cloudnexus"
MAX_PER_PAGE = 100

_CODE_BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    429: "rate_limit_exceeded",
    500: "internal_error",
}

# Instance types named in the docs (plus the list example's), as vCPUs x GB of memory.
TYPES: dict[str, JSONDict] = {
    name: {"vcpus": vcpus, "memory_gb": memory}
    for name, vcpus, memory in (
        ("standard-2x4", 2, 4),
        ("standard-4x8", 4, 8),
        ("compute-8x16", 8, 16),
        ("memory-4x32", 4, 32),
    )
}
REGIONS = ("us-east-1", "us-west-2", "eu-west-2", "ap-southeast-1")
IMAGES = ("ubuntu-22.04-lts", "ubuntu-24.04-lts", "debian-12")


# ------------------------------------------------------------------------------------------ errors, auth
def error_body(status: int, message: str, code: str | None = None) -> JSONDict:
    code = error_code(status, code, _CODE_BY_STATUS, client="invalid_request", server="internal_error")
    return {"error": {"code": code, "message": message}}


def _bad(message: str, code: str = "invalid_request") -> ProviderError:
    return ProviderError(400, message, code)


def _not_found(what: str, rid: str) -> ProviderError:
    return ProviderError(404, f"{what} {rid} does not exist", "not_found")


def read_only_token(settings: EmulatorSettings) -> str:
    """This run's read-only API key: derived from the run's control token, so it is new every run, stays the same
    across resets, and needs no field of its own in the provider-neutral settings."""
    digest = hmac.new(settings.control_token.encode(), b"cloudnexus read-only key", hashlib.sha256).hexdigest()
    return f"{registration(NAME).token_prefix}{digest[:32]}"


_bearer = HTTPBearer(auto_error=False, description="API key (cn_live_... or cn_test_...)")


async def require_key(
    request: Request, world: WorldDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    if credentials is None:
        raise ProviderError(401, "Missing API key", "unauthorized")
    key = credentials.credentials
    if key == read_only_token(world.settings):
        if request.method not in ("GET", "HEAD"):
            raise ProviderError(403, "This API key is read-only", "forbidden")
        return
    if key != world.settings.credentials[NAME]["token"]:
        raise ProviderError(401, "Invalid API key", "unauthorized")


api = APIRouter()

Page = Annotated[int, Query(ge=1)]
PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE)]


def _page(items: list[JSONDict], page: int, per_page: int) -> JSONDict:
    return {
        "data": page_of(items, page, per_page),
        "pagination": {
            "total": len(items),
            "page": page,
            "per_page": per_page,
            "total_pages": math.ceil(len(items) / per_page),
        },
    }


def _rid(world: World, prefix: str, nbytes: int = 8) -> str:
    return f"{prefix}_{world.random_token(nbytes)}"


# ------------------------------------------------------------------------------------------ jobs
def _jobs(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "jobs")


def _new_job(world: World, kind: str, resource_id: str) -> JSONDict:
    """A queued job for ``resource_id``; an unfinished earlier job of that resource is superseded."""
    now = utc_now()
    private = world.private(NAME, resource_id)
    previous = _jobs(world).get(private.get("job", ""))
    if previous is not None and previous["status"] in ("queued", "running"):
        _finish(previous, "failed", {"code": "superseded", "message": f"superseded by {kind}"})
    job_id = _rid(world, "job")
    job: JSONDict = {
        "id": job_id,
        "type": kind,
        "status": "queued",
        "resource_id": resource_id,
        "error": None,
        "created_at": now,
        "updated_at": now,
    }
    _jobs(world)[job_id] = job
    private["job"] = job_id
    return job


def _finish(job: JSONDict, status: str, error: JSONDict | None = None) -> None:
    job.update(status=status, error=error, updated_at=utc_now())


def _job_step(world: World, job_id: str, at: float) -> Step:
    """queued -> running a little after the job was accepted."""

    def apply() -> None:
        job = _jobs(world).get(job_id)
        if job is not None and job["status"] == "queued":
            _finish(job, "running")

    return Step(at=at, apply=apply)


def _accepted(job: JSONDict) -> JSONDict:
    return {"job_id": job["id"], "status": job["status"]}


@api.get("/jobs/{job_id}")
def get_job(job_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        return find(_jobs(world), job_id, lambda: _not_found("Job", job_id))


# ------------------------------------------------------------------------------------------ ssh keys
class SshKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    public_key: str


def _keys(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "ssh_keys")


@api.get("/ssh-keys")
def list_ssh_keys(world: WorldDep, page: Page = 1, per_page: PerPage = 20) -> JSONDict:
    with world.lock:
        return _page(list(_keys(world).values()), page, per_page)


@api.post("/ssh-keys", status_code=201)
def create_ssh_key(body: SshKeyCreate, world: WorldDep) -> JSONDict:
    if not valid_public_key(body.public_key):
        raise _bad("public_key is not a valid OpenSSH public key")
    with world.lock:
        key = {
            "id": _rid(world, "key", 6),
            "name": body.name,
            "public_key": body.public_key.strip(),
            "fingerprint": fingerprint(body.public_key),
            "created_at": utc_now(),
        }
        _keys(world)[key["id"]] = key
        return key


@api.get("/ssh-keys/{key_id}")
def get_ssh_key(key_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        return find(_keys(world), key_id, lambda: _not_found("SSH key", key_id))


@api.delete("/ssh-keys/{key_id}", status_code=204)
def delete_ssh_key(key_id: str, world: WorldDep) -> Response:
    with world.lock:
        if key_id not in _keys(world):
            raise _not_found("SSH key", key_id)
        world.forget(NAME, "ssh_keys", key_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------------------------ instances
class InstanceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    type: str
    region: str
    image: str
    ssh_keys: list[str] = []
    tags: dict[str, str] = {}


class InstanceAction(BaseModel):
    action: Literal["start", "stop", "reboot", "resize", "snapshot"]
    type: str | None = None


def _instances(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "instances")


def _instance_or_404(world: World, instance_id: str) -> JSONDict:
    return find(_instances(world), instance_id, lambda: _not_found("Instance", instance_id))


def _check_create(world: World, body: InstanceCreate) -> None:
    if body.type not in TYPES:
        raise _bad(f"Unknown instance type {body.type!r}; one of {', '.join(TYPES)}")
    if body.region not in REGIONS:
        raise _bad(f"Unknown region {body.region!r}")
    if body.image not in IMAGES and body.image not in world.collection(NAME, "snapshots"):
        raise _bad(f"Unknown image {body.image!r}: not an image slug or a snapshot id")
    missing = [k for k in body.ssh_keys if k not in _keys(world)]
    if missing:
        raise _bad(f"SSH key {missing[0]} does not exist")


def _set(world: World, inst_id: str, job_id: str, **fields: Any) -> Callable[[], None]:
    """Complete ``job_id`` and update the instance with ``fields`` (ipv4 appears on the first run)."""

    def apply() -> None:
        instance = _instances(world).get(inst_id)
        job = _jobs(world).get(job_id)
        if instance is None or job is None:
            return
        instance.update(fields)
        if fields.get("status") == "running" and instance["ipv4"] is None:
            instance["ipv4"] = world.private(NAME, inst_id)["ssh"].ip
        _finish(job, "completed")

    return apply


def _fail_create(world: World, inst_id: str, job_id: str, message: str) -> Callable[[], None]:
    def apply() -> None:
        job = _jobs(world).get(job_id)
        if job is not None and job["status"] in ("queued", "running"):
            _finish(job, "failed", {"code": "capacity_unavailable", "message": message})
        world.forget(NAME, "instances", inst_id)

    return apply


@api.get("/compute/instances", response_model=JSONDict)
def list_instances(
    world: WorldDep,
    page: Page = 1,
    per_page: PerPage = 20,
    region: str | None = None,
    status: str | None = None,
    tags: str | None = None,
) -> Response:
    wanted = _tag_filter(tags)
    # Rendered here, under the lock, straight to JSON: FastAPI's response validation and encoding of thousands
    # of instances (seed_hosts) cost more than the listing itself.
    with world.lock:
        items = [
            i
            for i in _instances(world).values()
            if region in (None, i["region"]) and status in (None, i["status"]) and wanted.items() <= i["tags"].items()
        ]
        return JSONResponse(_page(items, page, per_page))


def _tag_filter(raw: str | None) -> dict[str, str]:
    """``key:value,key:value`` -> the pairs an instance must all carry (the assumed shape, see the docstring)."""
    if raw is None:
        return {}
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise _bad(f"tags: {item!r} is not key:value; use tags=key:value[,key:value...]")
        pairs[key.strip()] = value.strip()
    return pairs


@api.post("/compute/instances", status_code=202)
def create_instance(body: InstanceCreate, world: WorldDep) -> JSONDict:
    with world.lock:
        _check_create(world, body)
        inst_id = _rid(world, "inst")
        keys = tuple(_keys(world)[k]["public_key"] for k in body.ssh_keys)
        world.private(NAME, inst_id)["ssh"] = SshSpec(
            ip=world.allocate_ip(world.settings.ssh_port), port=world.settings.ssh_port, authorized_keys=keys
        )
        _instances(world)[inst_id] = {
            "id": inst_id,
            "name": body.name,
            "type": body.type,
            "region": body.region,
            "image": body.image,
            "status": "provisioning",
            "ipv4": None,
            "ssh_keys": list(body.ssh_keys),
            "tags": dict(body.tags),
            "created_at": utc_now(),
        }
        job = _new_job(world, "instance.create", inst_id)
        capacity = world.take_capacity(NAME, body.type, body.region)
    p = world.settings.provision_seconds
    if capacity:
        done = Step(at=p, ssh="up", apply=_set(world, inst_id, job["id"], status="running"))
    else:
        message = f"No capacity for {body.type} in {body.region}; try another region or type"
        done = Step(at=p / 2, apply=_fail_create(world, inst_id, job["id"], message))
    world.run_steps(NAME, inst_id, [_job_step(world, job["id"], p * 0.1), done])
    return _accepted(job)


@api.get("/compute/instances/{instance_id}")
def get_instance(instance_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        return _instance_or_404(world, instance_id)


@api.delete("/compute/instances/{instance_id}", status_code=202)
def delete_instance(instance_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        instance = _instance_or_404(world, instance_id)
        if instance["status"] == "deleting":  # already on its way out: same job
            return _accepted(_jobs(world)[world.private(NAME, instance_id)["job"]])
        instance["status"] = "deleting"
        job = _new_job(world, "instance.delete", instance_id)

    def gone() -> None:
        _finish(_jobs(world)[job["id"]], "completed")
        world.forget(NAME, "instances", instance_id)

    half = world.settings.provision_seconds / 2
    world.run_steps(
        NAME,
        instance_id,
        [Step(at=0, ssh="down", apply=lambda: None), _job_step(world, job["id"], 0), Step(at=half, apply=gone)],
    )
    return _accepted(job)


# action -> (statuses it needs, status while it runs)
_ACTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "start": (("stopped",), "starting"),
    "stop": (("running",), "stopping"),
    "reboot": (("running",), "rebooting"),
    "resize": (("running", "stopped"), "resizing"),
    "snapshot": (("running", "stopped"), None),
}


def _action_steps(world: World, instance: JSONDict, body: InstanceAction, job_id: str, was: str) -> list[Step]:
    inst_id, p = instance["id"], world.settings.provision_seconds
    if body.action == "start":
        return [Step(at=p, ssh="up", apply=_set(world, inst_id, job_id, status="running"))]
    if body.action == "stop":
        return [Step(at=p / 2, ssh="down", apply=_set(world, inst_id, job_id, status="stopped"))]
    if body.action == "resize" and was == "stopped":
        return [Step(at=p / 2, apply=_set(world, inst_id, job_id, status="stopped", type=body.type))]
    # reboot, and resizing a running machine: the guest goes down and comes back
    fields = {"status": "running", **({"type": body.type} if body.action == "resize" else {})}
    return [
        Step(at=0, ssh="down", apply=lambda: None),
        Step(at=p, ssh="up", apply=_set(world, inst_id, job_id, **fields)),
    ]


def _snapshot(world: World, instance: JSONDict) -> JSONDict:
    snap_id = _rid(world, "snap", 6)
    job = _new_job(world, "instance.snapshot", snap_id)

    def done() -> None:
        world.collection(NAME, "snapshots")[snap_id] = {
            "id": snap_id,
            "instance_id": instance["id"],
            "created_at": utc_now(),
        }
        _finish(_jobs(world)[job["id"]], "completed")

    world.run_steps(NAME, snap_id, [Step(at=world.settings.provision_seconds / 2, apply=done)])
    return job


@api.post("/compute/instances/{instance_id}/actions", status_code=202)
def instance_action(instance_id: str, body: InstanceAction, world: WorldDep) -> JSONDict:
    needs, during = _ACTIONS[body.action]
    with world.lock:
        instance = _instance_or_404(world, instance_id)
        was = instance["status"]
        if was not in needs:
            raise _bad(f"Cannot {body.action} an instance that is {was}", "invalid_state")
        if body.action == "resize":
            if not body.type:
                raise _bad("type is required for resize")
            if body.type not in TYPES:
                raise _bad(f"Unknown instance type {body.type!r}; one of {', '.join(TYPES)}")
            if body.type == instance["type"]:
                raise _bad(f"Instance is already {body.type}")
        if body.action == "snapshot":
            return {**_accepted(_snapshot(world, instance)), "action": body.action}
        instance["status"] = during
        job = _new_job(world, f"instance.{body.action}", instance_id)
        steps = _action_steps(world, instance, body, job["id"], was)
    world.run_steps(NAME, instance_id, [_job_step(world, job["id"], 0), *steps])
    return {**_accepted(job), "action": body.action}


# ------------------------------------------------------------------------------------------ seeding
_SEED_TAGS = {"team": ("research", "training", "inference"), "env": ("prod", "staging")}


def seed_instances(world: World, count: int, first: int) -> None:
    """``count`` running instances (World.seed_hosts) cycling through types, regions, images and tags.

    Each has its own address (sshd would listen on ``settings.ssh_port``) but no sshd and no job.
    Call with ``world.lock`` held.
    """
    types = sorted(TYPES)
    now = utc_now()
    for index in range(first, first + count):
        inst_id = _rid(world, "inst")
        ip = world.allocate_ip()
        world.private(NAME, inst_id)["ssh"] = SshSpec(ip=ip, port=world.settings.ssh_port, authorized_keys=())
        _instances(world)[inst_id] = {
            "id": inst_id,
            "name": f"seed-{index:05d}",
            "type": types[index % len(types)],
            "region": REGIONS[index // len(types) % len(REGIONS)],
            "image": IMAGES[index % len(IMAGES)],
            "status": "running",
            "ipv4": ip,
            "ssh_keys": [],
            "tags": {key: values[index % len(values)] for key, values in _SEED_TAGS.items()},
            "created_at": now,
        }


# Routes are copied when a router is included, so this must come after every route above.
router = APIRouter()
router.include_router(api, dependencies=[Depends(require_key)], tags=["cloudnexus"])


def ledger(world: World) -> list[JSONDict]:
    """Instances and snapshots (billed, but the docs publish no prices: hourly_usd is None) and SSH keys."""
    with world.lock:
        items = [ledger_item("instance", i["id"], i["name"], None) for i in _instances(world).values()]
        snapshots = world.collection(NAME, "snapshots").values()
        items += [ledger_item("snapshot", s["id"], s["instance_id"], None) for s in snapshots]
        items += [ledger_item("ssh_key", k["id"], k["name"], None, billed=False) for k in _keys(world).values()]
        return items


SPEC = ProviderSpec(
    name=NAME,
    router=router,
    error_body=error_body,
    validation_error=validation_error_as(error_body, "invalid_request", "Invalid parameters"),
    http_error=http_error_as(error_body, "Resource not found"),
    is_create_request=posts_to("/compute/instances", "/ssh-keys"),
    seed=seed_instances,
    ledger=ledger,
)

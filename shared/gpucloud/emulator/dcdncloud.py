"""dcdncloud compute API, emulated under ``/dcdncloud/api/v1/compute`` (one file: state and wire are small together).

Follows /work/shared/api-docs/dcdncloud.txt: bearer token on every endpoint, ``{"plans": [...]}``-style
catalogue lists, a create answer that carries the SSH endpoint and the one-time ``root_password``,
documented statuses 400/401/402/404/409 and 429 beyond 60 requests a minute (the World's default limit).

Choices where the docs are silent:
- Error body: ``{"error": "<code>", "message": "<text>"}``. Codes: ``bad_request`` (400, request validation
  included, never FastAPI's 422), ``invalid_state`` (400, an action the instance's status does not allow),
  ``unauthorized`` (401), ``insufficient_credits`` (402), ``not_found`` (404), ``name_in_use`` (409),
  ``rate_limited`` (429, with ``Retry-After``), ``internal_error`` (500), ``no_capacity`` (503).
- ``GET /instances`` answers ``{"instances": [...]}`` (like the other lists; no pagination is documented);
  ``GET /instances/{id}`` a bare object. Neither ever shows ``root_password``.
- Statuses, with P = ``provision_seconds``: create -> ``creating`` -> ``running`` (P); stop -> ``stopping``
  -> ``stopped`` (P/2); start -> ``starting`` -> ``running`` (P); restart -> ``restarting`` -> ``running``
  (P). start needs ``stopped``, stop and restart need ``running``, else 400 ``invalid_state``. ``DELETE``
  destroys at once (the documented ``{"status": "destroyed"}``); the instance is gone from then on.
- ``ip_address``/``ssh_port`` are set at create, as in the documented create answer, and sshd listens
  there from ``running`` on: a distinct 127.x address and a unique high port per instance.
- ``POST /instances/{id}/ssh-key`` adds the key to the instance's authorized keys at once (a running sshd
  re-reads them at each login); duplicates are ignored. An invalid key -> 400.
- Names: unique among the user's live instances (409) and a DNS label (the hostname is
  ``<name>.compute...``), else 400.
- Money: ``price_usd`` of a plan is its monthly price and an instance's ``monthly_cost_usd`` equals it.
  A create needs credits (``World`` balance ``dcdncloud``) of at least one hour, ``price_usd / 730``, else
  402. ``World.set_capacity("dcdncloud", <plan>, <region or None>, False)`` makes creates there 503.
- Plans carry no GPU fields (the docs show none), so emulated instances have no GPUs either.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from gpucloud.emulator.base import ProviderError, ProviderSpec, WorldDep, ledger_item, utc_now, valid_public_key
from gpucloud.emulator.common import error_code, find, http_error_as, posts_to, validation_error_as
from gpucloud.emulator.sshd import SshSpec
from gpucloud.emulator.world import JSONDict, Step, World

NAME = "dcdncloud"
HOURS_PER_MONTH = 730

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    402: "insufficient_credits",
    404: "not_found",
    409: "name_in_use",
    429: "rate_limited",
    500: "internal_error",
    503: "no_capacity",
}

# ------------------------------------------------------------------------------------------ catalogue
# (id, vCPUs, RAM MB, disk GB, bandwidth TB, USD per month, cpu type)
_PLAN_ROWS = [
    ("nano", 1, 512, 10, 0.5, 2.0, "shared"),
    ("s-small", 1, 2048, 40, 1.0, 5.0, "shared"),
    ("s-medium", 2, 4096, 80, 2.0, 10.0, "shared"),
    ("s-large", 4, 8192, 160, 4.0, 20.0, "shared"),
    ("d-medium", 2, 8192, 100, 4.0, 30.0, "dedicated"),
    ("d-large", 4, 16384, 200, 8.0, 60.0, "dedicated"),
]
PLANS: dict[str, JSONDict] = {
    row[0]: {
        "id": row[0],
        "vcpus": row[1],
        "ram_mb": row[2],
        "disk_gb": row[3],
        "bandwidth_tb": row[4],
        "price_usd": row[5],
        "cpu_type": row[6],
        "dedicated_ip": row[6] == "dedicated",
    }
    for row in _PLAN_ROWS
}

IMAGES: list[JSONDict] = [
    {"id": image_id, "name": name}
    for image_id, name in (
        ("ubuntu-24.04", "Ubuntu 24.04 LTS"),
        ("ubuntu-22.04", "Ubuntu 22.04 LTS"),
        ("ubuntu-20.04", "Ubuntu 20.04 LTS"),
        ("debian-12", "Debian 12 (Bookworm)"),
        ("debian-11", "Debian 11 (Bullseye)"),
        ("rocky-9", "Rocky Linux 9"),
        ("rocky-8", "Rocky Linux 8"),
        ("almalinux-9", "AlmaLinux 9"),
        ("almalinux-8", "AlmaLinux 8"),
        ("centos-stream-9", "CentOS Stream 9"),
        ("fedora-40", "Fedora 40"),
        ("alpine-3.20", "Alpine Linux 3.20"),
        ("opensuse-15.6", "openSUSE Leap 15.6"),
        ("arch", "Arch Linux"),
        ("freebsd-14", "FreeBSD 14"),
    )
]
_IMAGE_IDS = {i["id"] for i in IMAGES}

REGIONS: list[JSONDict] = [
    {"id": "eu-central", "nodes": 2},
    {"id": "eu-west", "nodes": 1},
    {"id": "us-east", "nodes": 1},
    {"id": "us-west", "nodes": 1},
    {"id": "sa-east", "nodes": 3},
]
_NODES = {r["id"]: r["nodes"] for r in REGIONS}

TEMPLATES: list[JSONDict] = [
    {"id": "docker", "name": "Docker CE", "image": "ubuntu-22.04", "description": "Docker Engine and Compose"},
    {"id": "lamp", "name": "LAMP stack", "image": "debian-12", "description": "Apache, MariaDB, PHP"},
    {"id": "nodejs", "name": "Node.js", "image": "ubuntu-24.04", "description": "Node.js LTS with pm2"},
]

_NAME_RULE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)


# ------------------------------------------------------------------------------------------ errors, auth
def error_body(status: int, message: str, code: str | None = None) -> JSONDict:
    code = error_code(status, code, _CODE_BY_STATUS, client="bad_request", server="internal_error")
    return {"error": code, "message": message}


def _bad(message: str, code: str = "bad_request") -> ProviderError:
    return ProviderError(400, message, code)


_bearer = HTTPBearer(auto_error=False, description="API token")


async def require_token(
    world: WorldDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    if credentials is None:
        raise ProviderError(401, "Missing bearer token", "unauthorized")
    if credentials.credentials != world.settings.credentials[NAME]["token"]:
        raise ProviderError(401, "Invalid token", "unauthorized")


api = APIRouter()


# ------------------------------------------------------------------------------------------ catalogue routes
@api.get("/plans")
def list_plans() -> JSONDict:
    return {"plans": list(PLANS.values())}


@api.get("/images")
def list_images() -> JSONDict:
    return {"images": IMAGES}


@api.get("/regions")
def list_regions() -> JSONDict:
    return {"regions": REGIONS}


@api.get("/templates")
def list_templates() -> JSONDict:
    return {"templates": TEMPLATES}


# ------------------------------------------------------------------------------------------ instances
class InstanceCreate(BaseModel):
    name: str = Field(min_length=1)
    plan: str
    image: str
    region: str
    cpu_type: Literal["shared", "dedicated"] | None = None
    ssh_keys: list[str] = []
    redundant: bool = False


class SshKeyAdd(BaseModel):
    public_key: str


def _instances(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "instances")


def _instance_or_404(world: World, instance_id: str) -> JSONDict:
    return find(
        _instances(world), instance_id, lambda: ProviderError(404, f"Instance {instance_id} not found", "not_found")
    )


def _check_create(world: World, body: InstanceCreate) -> JSONDict:
    """400s for the request itself, then 409, 402 and 503, in that order; returns the plan."""
    if not _NAME_RULE.fullmatch(body.name):
        raise _bad(f"Invalid name {body.name!r}: letters, digits and '-', at most 63 characters")
    plan = find(PLANS, body.plan, lambda: _bad(f"Invalid plan {body.plan!r}; see GET /plans"))
    if body.image not in _IMAGE_IDS:
        raise _bad(f"Invalid image {body.image!r}; see GET /images")
    if body.region not in _NODES:
        raise _bad(f"Invalid region {body.region!r}; see GET /regions")
    if body.cpu_type not in (None, plan["cpu_type"]):
        raise _bad(f"Plan {body.plan} has {plan['cpu_type']} CPUs, not {body.cpu_type}")
    bad_keys = [i for i, key in enumerate(body.ssh_keys) if not valid_public_key(key)]
    if bad_keys:
        raise _bad(f"ssh_keys[{bad_keys[0]}] is not a valid OpenSSH public key")
    if any(i["name"] == body.name for i in _instances(world).values()):
        raise ProviderError(409, f"Name {body.name!r} is already in use", "name_in_use")
    if world.balance(NAME) < plan["price_usd"] / HOURS_PER_MONTH:
        raise ProviderError(402, "Insufficient credits: top up your balance", "insufficient_credits")
    if not world.take_capacity(NAME, body.plan, body.region):
        raise ProviderError(503, f"No node in {body.region} can take plan {body.plan} right now", "no_capacity")
    return plan


def _new_instance(world: World, body: InstanceCreate, plan: JSONDict) -> JSONDict:
    inst_id = world.new_id()
    ip = world.allocate_ip()
    port = world.allocate_port(ip)
    node_count = _NODES[body.region]
    node = f"node-{body.region}-{len(_instances(world)) % node_count + 1}"
    instance: JSONDict = {
        "id": inst_id,
        "name": body.name,
        "status": "creating",
        "plan": body.plan,
        "image": body.image,
        "region": body.region,
        "node": node,
        "cpu_type": plan["cpu_type"],
        "redundant": body.redundant,
        "ip_address": ip,
        "ssh_port": port,
        "ssh_command": f"ssh root@{ip} -p {port}",
        "hostname": f"{body.name}.compute.dcdncloud.test",
        "monthly_cost_usd": plan["price_usd"],
        "created_at": utc_now(),
        "usage": {"cpu_percent": 0.0, "ram_used_mb": 0, "disk_used_gb": 0.0, "bandwidth_used_gb": 0.0},
    }
    _instances(world)[inst_id] = instance
    keys = tuple(k.strip() for k in body.ssh_keys)
    world.private(NAME, inst_id)["ssh"] = SshSpec(ip=ip, port=port, authorized_keys=keys)
    return instance


def _set_status(world: World, inst_id: str, status: str) -> Callable[[], None]:
    def apply() -> None:
        instance = _instances(world).get(inst_id)
        if instance is not None:
            instance["status"] = status
            running = status == "running"
            instance["usage"].update(cpu_percent=1.5 if running else 0.0, ram_used_mb=180 if running else 0)

    return apply


@api.get("/instances", response_model=JSONDict)
def list_instances(world: WorldDep) -> Response:
    # Rendered here, under the lock, straight to JSON: FastAPI's response validation and encoding of thousands
    # of instances (seed_hosts) cost more than the listing itself.
    with world.lock:
        return JSONResponse({"instances": list(_instances(world).values())})


@api.post("/instances", status_code=201)
def create_instance(body: InstanceCreate, world: WorldDep) -> JSONDict:
    with world.lock:
        plan = _check_create(world, body)
        instance = _new_instance(world, body, plan)
        answer = {**instance, "root_password": secrets.token_urlsafe(16)}
    p = world.settings.provision_seconds
    world.run_steps(NAME, instance["id"], [Step(at=p, ssh="up", apply=_set_status(world, instance["id"], "running"))])
    answer.pop("usage")
    return {**answer, "message": "Instance is being created. SSH will be available in a few seconds."}


@api.get("/instances/{instance_id}")
def get_instance(instance_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        return _instance_or_404(world, instance_id)


def _transition(world: World, instance_id: str, allowed: str, now: str, steps: Callable[[str], list[Step]]) -> JSONDict:
    """Move an instance from status ``allowed`` to ``now`` and schedule the rest of the change."""
    with world.lock:
        instance = _instance_or_404(world, instance_id)
        if instance["status"] != allowed:
            raise _bad(f"Instance is {instance['status']}; this action needs it {allowed}", "invalid_state")
        instance["status"] = now
    world.run_steps(NAME, instance_id, steps(instance_id))
    return {"id": instance_id, "status": now}


@api.post("/instances/{instance_id}/start")
def start_instance(instance_id: str, world: WorldDep) -> JSONDict:
    p = world.settings.provision_seconds
    return _transition(
        world,
        instance_id,
        "stopped",
        "starting",
        lambda i: [Step(at=p, ssh="up", apply=_set_status(world, i, "running"))],
    )


@api.post("/instances/{instance_id}/stop")
def stop_instance(instance_id: str, world: WorldDep) -> JSONDict:
    half = world.settings.provision_seconds / 2
    return _transition(
        world,
        instance_id,
        "running",
        "stopping",
        lambda i: [Step(at=half, ssh="down", apply=_set_status(world, i, "stopped"))],
    )


@api.post("/instances/{instance_id}/restart")
def restart_instance(instance_id: str, world: WorldDep) -> JSONDict:
    p = world.settings.provision_seconds

    def steps(inst_id: str) -> list[Step]:
        # A restart is a stop and a start: SSH goes away, then comes back with the status "running".
        return [
            Step(at=0, ssh="down", apply=lambda: None),
            Step(at=p, ssh="up", apply=_set_status(world, inst_id, "running")),
        ]

    return _transition(world, instance_id, "running", "restarting", steps)


@api.post("/instances/{instance_id}/reset-password")
def reset_password(instance_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        _instance_or_404(world, instance_id)
    return {"root_password": secrets.token_urlsafe(16)}


@api.post("/instances/{instance_id}/ssh-key")
def add_ssh_key(instance_id: str, body: SshKeyAdd, world: WorldDep) -> JSONDict:
    if not valid_public_key(body.public_key):
        raise _bad("public_key is not a valid OpenSSH public key")
    with world.lock:
        _instance_or_404(world, instance_id)
        private = world.private(NAME, instance_id)
        spec: SshSpec = private["ssh"]
        key = body.public_key.strip()
        if key not in spec.authorized_keys:
            spec = SshSpec(ip=spec.ip, port=spec.port, authorized_keys=(*spec.authorized_keys, key))
            private["ssh"] = spec  # a later start/restart of sshd uses the new list
            if world.sshd is not None:
                world.sshd.set_keys(world.ssh_name(NAME, instance_id), spec.authorized_keys)
    return {"status": "ok", "message": "SSH key added"}


@api.delete("/instances/{instance_id}")
def delete_instance(instance_id: str, world: WorldDep) -> JSONDict:
    with world.lock:
        _instance_or_404(world, instance_id)
        _instances(world).pop(instance_id)  # gone for readers at once; sshd stops right after
    world.run_steps(
        NAME, instance_id, [Step(at=0, ssh="down", apply=lambda: world.forget(NAME, "instances", instance_id))]
    )
    return {"status": "destroyed", "message": "Instance has been permanently destroyed"}


# ------------------------------------------------------------------------------------------ seeding
def seed_instances(world: World, count: int, first: int) -> None:
    """``count`` running instances (World.seed_hosts) cycling through plans, images and regions.

    Each has its own address and port, as created ones do, but no sshd. Call with ``world.lock`` held.
    """
    plans = list(PLANS.values())
    regions = [r["id"] for r in REGIONS]
    now = utc_now()
    for index in range(first, first + count):
        plan = plans[index % len(plans)]
        region = regions[index // len(plans) % len(regions)]
        name = f"seed-{index:05d}"
        inst_id = world.new_id()
        ip = world.allocate_ip()
        port = world.allocate_port(ip)
        _instances(world)[inst_id] = {
            "id": inst_id,
            "name": name,
            "status": "running",
            "plan": plan["id"],
            "image": IMAGES[index % len(IMAGES)]["id"],
            "region": region,
            "node": f"node-{region}-{index % _NODES[region] + 1}",
            "cpu_type": plan["cpu_type"],
            "redundant": False,
            "ip_address": ip,
            "ssh_port": port,
            "ssh_command": f"ssh root@{ip} -p {port}",
            "hostname": f"{name}.compute.dcdncloud.test",
            "monthly_cost_usd": plan["price_usd"],
            "created_at": now,
            "usage": {"cpu_percent": 1.5, "ram_used_mb": 180, "disk_used_gb": 0.0, "bandwidth_used_gb": 0.0},
        }
        world.private(NAME, inst_id)["ssh"] = SshSpec(ip=ip, port=port, authorized_keys=())


# Routes are copied when a router is included, so this must come after every route above.
router = APIRouter()
router.include_router(api, dependencies=[Depends(require_token)], tags=["dcdncloud"])


def ledger(world: World) -> list[JSONDict]:
    """Instances only (keys are passed by content, nothing else is kept): the monthly cost per hour."""
    with world.lock:
        return [
            ledger_item("instance", i["id"], i["name"], i["monthly_cost_usd"] / HOURS_PER_MONTH)
            for i in _instances(world).values()
        ]


SPEC = ProviderSpec(
    name=NAME,
    router=router,
    error_body=error_body,
    validation_error=validation_error_as(error_body, "bad_request", "Invalid request"),
    http_error=http_error_as(error_body, "Not found"),
    is_create_request=posts_to("/instances"),
    seed=seed_instances,
    ledger=ledger,
)

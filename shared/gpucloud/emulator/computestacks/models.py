"""ComputeStacks' state machine: ids, projects, services, containers, volumes and bastions in the world's store,
the order pipeline (check, process, complete), the per-project lifecycle chain, seeding and the ledger.

Nothing here knows a route; the handlers in :mod:`.responses` call these with ``world.lock`` held.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

from gpucloud.emulator.base import ProviderError, ledger_item, utc_now
from gpucloud.emulator.common import find
from gpucloud.emulator.computestacks.catalogue import (
    DEPENDENCIES,
    IMAGES,
    LOCATIONS,
    PRODUCTS,
    VARIANTS,
    VOLUME_PARAMS,
    ZONES,
    resource_name,
    volume_param_csrn,
)
from gpucloud.emulator.sshd import SshSpec
from gpucloud.emulator.world import JSONDict, Step, World

NAME = "computestacks"
SFTP_USER = "sftpuser"


def to_i(value: Any) -> int | None:
    """Ruby's ``to_i`` for ids: digits only, else None (``find_by`` then finds nothing)."""
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None


def next_id(world: World, kind: str) -> int:
    counters = world.private(NAME, "_ids")
    counters[kind] = counters.get(kind, 0) + 1
    return int(counters[kind])


def coll(world: World, kind: str) -> dict[str, JSONDict]:
    return world.collection(NAME, kind)


def _ref(item: JSONDict) -> JSONDict:
    return {"id": item["id"], "name": item["name"]}


def _key_texts(world: World) -> tuple[str, ...]:
    return tuple(world.private(NAME, f"key-{k}")["pubkey"] for k in coll(world, "ssh_keys"))


def refresh_bastion_keys(world: World) -> None:
    """``UserSshKey#reload_ssh_keys``: every bastion of the account gets the new key list."""
    keys = _key_texts(world)
    for project in coll(world, "projects").values():
        data = world.private(NAME, _pkey(project["id"]))
        spec = data.get("ssh")
        if isinstance(spec, SshSpec):
            data["ssh"] = replace(spec, authorized_keys=keys)
            if world.sshd is not None:
                world.sshd.set_keys(world.ssh_name(NAME, _pkey(project["id"])), keys)


class RecordNotFound(Exception):
    """``ActiveRecord::RecordNotFound``: the controller answers ``head :not_found`` (a 404 without a body); the
    API's route class turns it into that answer."""


# ------------------------------------------------------------------------------------------ state views
def _pkey(project_id: int) -> str:
    return f"project-{project_id}"


def skey(service_id: int) -> str:
    return f"service-{service_id}"


def services_of(world: World, project_id: int) -> list[JSONDict]:
    return [s for s in coll(world, "instances").values() if s["project"]["id"] == project_id]


def bastion_of(world: World, project_id: int) -> JSONDict | None:
    return next((b for b in coll(world, "bastions").values() if b["project_id"] == project_id), None)


def volumes_of_service(world: World, service_id: int) -> list[JSONDict]:
    return [
        v
        for v in coll(world, "volumes").values()
        if any(m["container_service"]["id"] == service_id for m in v["volume_maps"])
    ]


# ------------------------------------------------------------------------------------------ lifecycle
@dataclass(frozen=True)
class Pending:
    due: float  # time.monotonic()
    target: str  # "online" | "inactive" | "gone"
    then: Callable[[], None] | None = None


def pending_of(world: World, project_id: int) -> dict[str, Pending]:
    data = world.private(NAME, _pkey(project_id))
    pending: dict[str, Pending] = data.setdefault("pending", {})
    return pending


def transition(
    world: World, project_id: int, key: str, target: str, delay: float, then: Callable[[], None] | None = None
) -> None:
    """Schedule ``key`` (a service id, or "project") to reach ``target``; hold ``world.lock``."""
    pending_of(world, project_id)[key] = Pending(time.monotonic() + delay, target, then)
    replan(world, project_id)


def _holds(world: World, project_id: int) -> dict[str, bool]:
    """Which services keep the bastion up now: online, or restarting after having been online."""
    return {str(s["id"]): bool(world.private(NAME, skey(s["id"])).get("hold")) for s in services_of(world, project_id)}


def replan(world: World, project_id: int) -> None:
    """One lifecycle chain per project, rebuilt after every change: each step settles what is due and
    starts the bastion's sshd before a service reports online, or stops it before the last one goes away."""
    pending = pending_of(world, project_id)
    bastion = bastion_of(world, project_id)
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
    pending = pending_of(world, project_id)
    for key, item in sorted(pending.items(), key=lambda kv: kv[1].due):
        if item.due > due:
            continue
        del pending[key]
        if key != "project":
            _apply_service_state(world, int(key), item.target)
        if item.then is not None:
            item.then()
    bastion = bastion_of(world, project_id)
    if bastion is not None:
        bastion["status"] = "running" if any(_holds(world, project_id).values()) else "stopped"
        bastion["updated_at"] = utc_now()


def _apply_service_state(world: World, service_id: int, target: str) -> None:
    service = coll(world, "instances").get(str(service_id))
    if service is None:
        return
    if target == "gone":
        _remove_service(world, service)
        return
    private = world.private(NAME, skey(service_id))
    private["hold"] = target == "online"
    set_state(world, service, target)


def set_state(world: World, service: JSONDict, state: str) -> None:
    service["current_state"] = state
    service["updated_at"] = utc_now()
    container_state = {"online": "online", "inactive": "offline"}.get(state, "working")
    req = world.private(NAME, skey(service["id"])).get("req_state", "running")
    for container in coll(world, "containers").values():
        if container["container_service_id"] == service["id"]:
            container.update(current_state=container_state, req_state=req, updated_at=service["updated_at"])


def _remove_service(world: World, service: JSONDict) -> None:
    sid = service["id"]
    for volume in volumes_of_service(world, sid):
        world.forget(NAME, "volumes", str(volume["id"]))  # trashed with the service
    for cid in [c for c, item in coll(world, "containers").items() if item["container_service_id"] == sid]:
        world.forget(NAME, "containers", cid)
    world.forget(NAME, "instances", str(sid))
    world.private(NAME, skey(sid)).clear()


# ------------------------------------------------------------------------------------------ orders
@dataclass
class _OrderItem:
    label: str | None
    image: JSONDict
    variant: JSONDict
    product: JSONDict
    volumes: list[JSONDict]


class OrderRejected(Exception):
    def __init__(self, messages: list[Any]) -> None:
        super().__init__(str(messages))
        self.messages = messages


def check_order(world: World, order: JSONDict) -> tuple[JSONDict | None, JSONDict, list[_OrderItem]]:
    """``BuildOrderService#valid_order?`` and ``#valid_container_params?``: (project, location, items)."""
    errors: list[Any] = []
    if not str(order.get("project_name") or "").strip():
        errors.append("Missing project name")
    containers: list[Any] = order["containers"] if isinstance(order.get("containers"), list) else []
    if not containers:
        errors.append("Missing containers")
    project = None
    if order.get("project_id") not in (None, ""):
        project = coll(world, "projects").get(str(to_i(order["project_id"])))
        if project is None:
            errors.append("Unknown project")
    if errors:
        raise OrderRejected(errors)
    location = _order_location(project, order)
    items = [_check_container(world, project, c, containers, errors) for c in containers]
    if errors:
        raise OrderRejected(errors)
    return project, location, [i for i in items if i is not None]


def _order_location(project: JSONDict | None, order: JSONDict) -> JSONDict:
    if project is not None:
        return ZONES[project["availability_zone"]["id"]]
    if order.get("location_id") in (None, ""):
        return LOCATIONS[0]
    location = next((loc for loc in LOCATIONS if loc["id"] == to_i(order["location_id"])), None)
    if location is None:
        # "Unknown Region", then `region.allow_user?` on a nil region raises inside the action's rescue.
        raise ProviderError(500, "undefined method `allow_user?' for nil:NilClass")
    return location


def _check_container(
    world: World, project: JSONDict | None, item: Any, order_items: list[Any], errors: list[Any]
) -> _OrderItem | None:
    item = item if isinstance(item, dict) else {}
    found = VARIANTS.get(to_i(item.get("image_variant_id")) or 0)
    if found is None:
        errors.append(f"Invalid image. Image Variant ID: {item.get('image_variant_id')} | {item.get('name')}.")
        return None
    image, variant = IMAGES[found[0]], found[1]
    resources = item.get("resources") if isinstance(item.get("resources"), dict) else {}
    product_id = to_i((resources or {}).get("product_id") or item.get("product_id") or item.get("package_id"))
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
        found = VARIANTS.get(to_i(other.get("image_variant_id")) or 0) if isinstance(other, dict) else None
        if found is not None:
            included.append(found[0])
    if project is not None:
        included += [s["image"]["id"] for s in services_of(world, project["id"])]
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


def new_order(
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
    coll(world, "orders")[order["id"]] = order
    return order


def schedule_order(world: World, order_id: str, items: list[_OrderItem]) -> None:
    """``ProcessOrderService`` in the background: ``processing`` at 0.1 P (everything made), ``completed`` at 0.5 P."""
    p = world.settings.provision_seconds
    world.run_steps(
        NAME,
        f"order-{order_id}",
        [
            Step(at=p * 0.1, apply=partial(process_order, world, order_id, items)),
            Step(at=p * 0.5, apply=partial(complete_order, world, order_id)),
        ],
    )


def process_order(world: World, order_id: str, items: list[_OrderItem]) -> None:
    """``ProcessOrderService#perform``: project first, then every service (or fail on capacity)."""
    order = coll(world, "orders").get(order_id)
    if order is None or order["status"] != "pending":
        return
    data = order["order_data"]
    order.update(status="processing", updated_at=utc_now())
    project = coll(world, "projects").get(str(data["project"]["id"])) or _new_project(world, data)
    order["project"] = _ref(project)
    location = str(data["location_id"])
    if not all(world.take_capacity(NAME, i.product["name"], location) for i in items):
        order.update(status="failed", updated_at=utc_now())
        return
    for item in items:
        service = _new_service(world, project, item)
        transition(world, project["id"], str(service["id"]), "online", world.settings.provision_seconds * 0.9)
    images = [IMAGES[i] for i in sorted({s["image"]["id"] for s in services_of(world, project["id"])})]
    project["container_image_ids"] = [i["id"] for i in images]
    project["metadata"] = {"icons": [i["icon_url"] for i in images], "image_names": [i["label"] for i in images]}


def complete_order(world: World, order_id: str) -> None:
    order = coll(world, "orders").get(order_id)
    if order is not None and order["status"] == "processing":
        order.update(status="completed", updated_at=utc_now())


def _new_project(world: World, data: JSONDict) -> JSONDict:
    pid = next_id(world, "project")
    zone = data["region_id"]
    location = ZONES[zone]
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
    coll(world, "projects")[str(pid)] = project
    if not project["skip_ssh"]:
        _new_bastion(world, pid, now)
    return project


def _new_bastion(world: World, project_id: int, now: str) -> None:
    bid = next_id(world, "bastion")
    ip = world.allocate_ip()
    port = world.allocate_port(ip)
    world.private(NAME, _pkey(project_id))["ssh"] = SshSpec(ip=ip, port=port, authorized_keys=_key_texts(world))
    coll(world, "bastions")[str(bid)] = {
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
    sid = next_id(world, "service")
    system_name = f"{item.image['role']}-{world.random_token(3)}"
    now = utc_now()
    bastion = bastion_of(world, project["id"])
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
    coll(world, "instances")[str(sid)] = service
    world.private(NAME, skey(sid)).update(hold=False, req_state="running")
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
    cid = next_id(world, "container")
    coll(world, "containers")[str(cid)] = {
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
        vid = next_id(world, "volume")
        coll(world, "volumes")[str(vid)] = _new_volume(vid, project, service, item.image, param, now)
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


def find_project(world: World, project_id: str) -> JSONDict:
    return find(coll(world, "projects"), project_id, RecordNotFound)


def delete_project_of(world: World, project: JSONDict) -> None:
    """``deleting`` now; the project and all its services gone at P/2."""
    pid = project["id"]
    project["current_state"] = "deleting"
    # One due time for the project and its services: they vanish in the same step, so nobody sees the
    # services gone while the (emptied) project still exists.
    due = time.monotonic() + world.settings.provision_seconds / 2
    for service in services_of(world, pid):
        world.private(NAME, skey(service["id"])).update(req_state="stopped")
        set_state(world, service, "working")
        pending_of(world, pid)[str(service["id"])] = Pending(due, "gone")
    pending_of(world, pid)["project"] = Pending(due, "gone", partial(remove_project, world, pid))
    replan(world, pid)


def delete_service_of(world: World, service: JSONDict) -> None:
    """``working`` now, gone with its volumes at P/2."""
    world.private(NAME, skey(service["id"])).update(req_state="stopped")
    set_state(world, service, "working")
    half = world.settings.provision_seconds / 2
    transition(world, service["project"]["id"], str(service["id"]), "gone", half)


# power action -> (requested state, state reached, share of P it takes)
POWER = {"start": ("running", "online", 1.0), "stop": ("stopped", "inactive", 0.5)}
POWER.update(restart=POWER["start"], rebuild=POWER["start"])


def set_power(world: World, service: JSONDict, action: str) -> None:
    """``working`` now, then the state ``action`` (a key of :data:`POWER`) reaches."""
    req_state, target, share = POWER[action]
    world.private(NAME, skey(service["id"]))["req_state"] = req_state
    set_state(world, service, "working")
    delay = world.settings.provision_seconds * share
    transition(world, service["project"]["id"], str(service["id"]), target, delay)


def resize_service(world: World, service: JSONDict, product: JSONDict) -> None:
    """``working`` now, on the new package at P/2 (nothing happens for the package it already has)."""
    if product["id"] != service["product_id"]:
        set_state(world, service, "working")
        half = world.settings.provision_seconds / 2
        then = partial(switch_package, service, product)
        transition(world, service["project"]["id"], str(service["id"]), "online", half, then)


def remove_project(world: World, project_id: int) -> None:
    bastion = bastion_of(world, project_id)
    if bastion is not None:
        world.forget(NAME, "bastions", str(bastion["id"]))
    world.forget(NAME, "projects", str(project_id))


# ------------------------------------------------------------------------------------------ services
def find_service(world: World, service_id: str) -> JSONDict:
    return find(coll(world, "instances"), service_id, RecordNotFound)


def switch_package(service: JSONDict, product: JSONDict) -> None:
    service.update(product_id=product["id"], package=_package(product))


# ------------------------------------------------------------------------------------------ seeding
SEED_SERVICES_PER_PROJECT = 25


def seed_instances(world: World, count: int, first: int) -> None:
    """``count`` online services (World.seed_hosts), ``SEED_SERVICES_PER_PROJECT`` to a project.

    Each project gets a running bastion (an address and a port, no sshd) and its services cycle through
    images and the products sold in the project's zone; containers and volumes exist as after an order.
    Call with ``world.lock`` held.
    """
    zones = sorted(ZONES)
    now = utc_now()
    project: JSONDict | None = None
    for offset, index in enumerate(range(first, first + count)):
        if offset % SEED_SERVICES_PER_PROJECT == 0:
            zone = zones[offset // SEED_SERVICES_PER_PROJECT % len(zones)]
            name = f"seed-project-{index:05d}"
            project = _new_project(world, {"region_id": zone, "project": {"name": name, "skip_ssh": False}})
            bastion = bastion_of(world, project["id"])
            if bastion is not None:
                bastion["status"] = "running"
        assert project is not None
        zone_id = project["availability_zone"]["id"]
        products = [p for p in PRODUCTS.values() if zone_id in p["zones"]]
        image = IMAGES[sorted(IMAGES)[index % len(IMAGES)]]
        variant = image["image_variants"][0]
        item = _OrderItem(f"seed-{index:05d}", image, variant, products[index % len(products)], [])
        service = _new_service(world, project, item)
        world.private(NAME, skey(service["id"]))["hold"] = True
        set_state(world, service, "online")
        service["created_at"] = service["updated_at"] = now
        project_images = sorted(set(project["container_image_ids"]) | {image["id"]})
        project["container_image_ids"] = project_images
        project["metadata"] = {
            "icons": [IMAGES[i]["icon_url"] for i in project_images],
            "image_names": [IMAGES[i]["label"] for i in project_images],
        }


_HOURS_PER_TERM = {"hour": 1.0, "month": 730.0}


def ledger(world: World) -> list[JSONDict]:
    """Services at their product's price per hour; projects (with their bastion), volumes (part of their
    service's package) and SSH keys cost nothing by themselves but stay in the account."""
    with world.lock:
        items = []
        for service in coll(world, "instances").values():
            product = PRODUCTS[service["product_id"]]
            hourly = float(product["price"]) / _HOURS_PER_TERM[product["term"]]
            items.append(ledger_item("instance", service["id"], service["label"], hourly))
        kept = (("project", "projects", "name"), ("volume", "volumes", "label"), ("ssh_key", "ssh_keys", "label"))
        for kind, collection, name in kept:
            objects = coll(world, collection).values()
            items += [ledger_item(kind, o["id"], o.get(name), None, billed=False) for o in objects]
        return items

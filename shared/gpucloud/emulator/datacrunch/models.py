"""DataCrunch's catalogue and state machine: instance types, images, locations and volume types; instances, volumes
and their attachments in the world's store; create checks, instance actions, spot discontinuation, seeding and
the ledger.

Nothing here knows a route; the handlers in :mod:`.responses` call these with ``world.lock`` held. The create and
action bodies are defined here because the state machine reads them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from gpucloud.emulator.base import (
    ProviderError,
    ledger_item,
    utc_now,
)
from gpucloud.emulator.common import find
from gpucloud.emulator.sshd import SshSpec
from gpucloud.emulator.world import JSONDict, Step, World

NAME = "datacrunch"
_NS = uuid.UUID("4f7d6a52-3c1e-4d7b-9a55-0f1f6f0c9d21")  # stable catalogue ids across runs
EUR_PER_USD = 0.92


# ------------------------------------------------------------------------------------------ catalogue
_GPU_IMAGES = ("ubuntu-24.04-cuda-12.8-open-docker", "ubuntu-22.04-cuda-12.4-docker")
_PLAIN_IMAGES = ("ubuntu-24.04", "ubuntu-22.04")
IMAGES: list[JSONDict] = [
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


LOCATION_CODES = {loc["code"] for loc in LOCATIONS}
VOLUME_PRICES = {"NVMe": 0.20, "HDD": 0.05, "NVMe_Shared": 0.20}  # USD per GB-month
VOLUME_TYPES: list[JSONDict] = [
    {
        "type": vtype,
        "price": {"price_per_month_per_gb": price, "cps_per_gb": round(price / 730, 6), "currency": "usd"},
        "is_shared_fs": vtype == "NVMe_Shared",
        "iops": "100k" if vtype.startswith("NVMe") else "1k",
    }
    for vtype, price in VOLUME_PRICES.items()
]


PERIODS: list[JSONDict] = [
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


def bad(message: str) -> ProviderError:
    return ProviderError(400, message, "invalid_request")


def not_found(what: str, rid: str) -> ProviderError:
    return ProviderError(404, f"{what} {rid} not found", "not_found")


def key_store(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "ssh_keys")


# ------------------------------------------------------------------------------------------ volumes (store)
def volume_store(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "volumes")


def instance_store(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "instances")


def new_volume(world: World, name: str, size: int, vtype: str, location: str, *, is_os: bool = False) -> JSONDict:
    vol_id = world.new_id()
    monthly = round(size * VOLUME_PRICES[vtype], 2)
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
    volume_store(world)[vol_id] = volume
    return volume


def attach(world: World, volume: JSONDict, instance: JSONDict, status: str = "attached") -> None:
    used = {v["target"] for v in volume_store(world).values() if v["instance_id"] == instance["id"]}
    target = "vda" if volume["is_os_volume"] else next(f"vd{c}" for c in "bcdefghijklmnop" if f"vd{c}" not in used)
    volume.update(status=status, instance_id=instance["id"], target=target, ssh_key_ids=list(instance["ssh_key_ids"]))
    if instance["status"] not in ("ordered", "provisioning") and volume["id"] not in instance["volume_ids"]:
        instance["volume_ids"].append(volume["id"])


def detach(world: World, volume: JSONDict) -> None:
    instance = instance_store(world).get(volume["instance_id"] or "")
    if instance is not None and volume["id"] in instance["volume_ids"]:
        instance["volume_ids"].remove(volume["id"])
    volume.update(status="detached", instance_id=None, target=None)


def remove_volume(world: World, volume: JSONDict, permanent: bool) -> None:
    detach(world, volume)
    volume.update(status="deleted", deleted_at=volume["deleted_at"] or utc_now())
    world.private(NAME, volume["id"])["in_trash"] = not permanent


def live_volume(world: World, vol_id: str) -> JSONDict:
    volume = volume_store(world).get(vol_id)
    if volume is None or volume["status"] == "deleted":
        raise not_found("Volume", vol_id)
    return volume


def target_instance(instance_id: str | None, instance_ids: list[str] | None) -> str | None:
    """The Go SDK sends ``instance_ids``; the Python SDK ``instance_id``."""
    return instance_id or next(iter(instance_ids or []), None)


def require_offline(world: World, volume: JSONDict, doing: str) -> None:
    instance = instance_store(world).get(volume["instance_id"] or "")
    if instance is not None and instance["status"] != "offline":
        raise bad(f"Cannot {doing} volume {volume['id']}: instance {instance['id']} must be offline")


class VolumeAction(BaseModel):
    id: str | list[str]
    action: str
    instance_id: str | None = None
    instance_ids: list[str] | None = None
    name: str | None = None
    size: int | None = None
    type: str | None = None
    is_permanent: bool = False


def vol_attach(world: World, ids: list[str], body: VolumeAction) -> list[str] | None:
    instance_id = target_instance(body.instance_id, body.instance_ids)
    if not instance_id:
        raise bad("instance_id is required for attach")
    instance = find(instance_store(world), instance_id, lambda: not_found("Instance", instance_id))
    volumes = [live_volume(world, i) for i in ids]
    if instance["status"] != "offline":
        raise bad(f"Instance {instance_id} must be offline to attach volumes")
    for volume in volumes:
        if volume["instance_id"] is not None:
            raise bad(f"Volume {volume['id']} is already attached")
        if volume["location"] != instance["location"]:
            raise bad(f"Volume {volume['id']} is in {volume['location']}, instance in {instance['location']}")
    for volume in volumes:
        attach(world, volume, instance)
    return None


def vol_detach(world: World, ids: list[str], body: VolumeAction) -> list[str] | None:
    volumes = [live_volume(world, i) for i in ids]
    for volume in volumes:
        if volume["instance_id"] is None:
            raise bad(f"Volume {volume['id']} is not attached")
        require_offline(world, volume, "detach")
    for volume in volumes:
        detach(world, volume)
    return None


def vol_rename(world: World, ids: list[str], body: VolumeAction) -> list[str] | None:
    if not body.name:
        raise bad("name is required for rename")
    for volume in [live_volume(world, i) for i in ids]:
        volume["name"] = body.name
    return None


def vol_resize(world: World, ids: list[str], body: VolumeAction) -> list[str] | None:
    if body.size is None:
        raise bad("size is required for resize")
    volumes = [live_volume(world, i) for i in ids]
    for volume in volumes:
        if body.size <= volume["size"]:
            raise bad(f"Volume {volume['id']} can only grow: {body.size} GB <= current {volume['size']} GB")
    for volume in volumes:
        monthly = round(body.size * VOLUME_PRICES[volume["type"]], 2)
        volume.update(size=body.size, monthly_price=monthly, base_hourly_cost=round(monthly / 730, 4))
    return None


def vol_delete(world: World, ids: list[str], body: VolumeAction) -> list[str] | None:
    volumes = []
    for vol_id in ids:
        volume = volume_store(world).get(vol_id)
        in_trash = volume is not None and world.private(NAME, vol_id).get("in_trash")
        if volume is None or (volume["status"] == "deleted" and not in_trash):
            raise not_found("Volume", vol_id)
        require_offline(world, volume, "delete")
        volumes.append(volume)
    for volume in volumes:
        remove_volume(world, volume, body.is_permanent)
    return None


def vol_clone(world: World, ids: list[str], body: VolumeAction) -> list[str] | None:
    sources = [live_volume(world, i) for i in ids]
    if body.type is not None and body.type not in VOLUME_PRICES:
        raise bad(f"Unknown volume type {body.type}")
    new_ids = []
    for src in sources:
        name = body.name or f"{src['name']}-clone"
        clone = new_volume(world, name, src["size"], body.type or src["type"], src["location"])
        new_ids.append(clone["id"])
    return new_ids


# PUT /volumes actions: each checks every volume first, then changes them all; clone answers the new ids.
VOLUME_ACTIONS: dict[str, Callable[[World, list[str], VolumeAction], list[str] | None]] = {
    "attach": vol_attach,
    "detach": vol_detach,
    "rename": vol_rename,
    "resize": vol_resize,
    "delete": vol_delete,
    "clone": vol_clone,
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


def check_create(world: World, body: InstanceCreate) -> tuple[JSONDict, JSONDict | None]:
    """Validate a create request (400s); returns (instance type entry, existing OS volume or None)."""
    entry = find(INSTANCE_TYPES, body.instance_type, lambda: bad(f"Unknown instance_type {body.instance_type}"))
    if body.location_code not in LOCATION_CODES:
        raise bad(f"Unknown location_code {body.location_code}")
    os_volume = volume_store(world).get(body.image)
    if os_volume is not None:
        if not os_volume["is_os_volume"] or os_volume["status"] != "detached":
            raise bad(f"Volume {body.image} is not a detached OS volume")
    elif body.image not in entry["supported_os"]:
        raise bad(f"Image {body.image} is not available for {body.instance_type}")
    missing = [k for k in body.ssh_key_ids if k not in key_store(world)]
    if missing:
        raise bad(f"SSH key {missing[0]} not found")
    if body.startup_script_id and body.startup_script_id not in world.collection(NAME, "scripts"):
        raise bad(f"Startup script {body.startup_script_id} not found")
    for vol_id in body.existing_volumes:
        vol = volume_store(world).get(vol_id)
        if vol is None or vol["status"] != "detached" or vol["location"] != body.location_code:
            raise bad(f"Volume {vol_id} is not a detached volume in {body.location_code}")
    if any(v.type not in VOLUME_PRICES for v in body.volumes):
        raise bad(f"Unknown volume type; expected one of {sorted(VOLUME_PRICES)}")
    return entry, os_volume


def check_funds_and_capacity(world: World, body: InstanceCreate, entry: JSONDict) -> float:
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


def new_instance(world: World, body: InstanceCreate, entry: JSONDict, price: float) -> JSONDict:
    image = next((i for i in IMAGES if i["image_type"] == body.image), None)
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
    instance_store(world)[inst_id] = instance
    return instance


def create_volumes(world: World, body: InstanceCreate, instance: JSONDict, os_volume: JSONDict | None) -> None:
    """Attach the OS volume (new or given) and data volumes; they become 'attached' at running."""
    if os_volume is None:
        spec = body.os_volume or OsVolumeSpec(name=f"OS-{world.random_token(4)}", size=_DEFAULT_OS_VOLUME_GB)
        os_volume = new_volume(world, spec.name, spec.size, "NVMe", body.location_code, is_os=True)
    private = world.private(NAME, instance["id"])
    private["os_volume"] = os_volume["id"]
    # What each volume made with the instance does if the spot instance is discontinued (default: kept).
    policies = private.setdefault("on_spot_discontinue", {})
    policies[os_volume["id"]] = (body.os_volume and body.os_volume.on_spot_discontinue) or "keep_detached"
    attach(world, os_volume, instance, status="creating")
    for spec_v in body.volumes:
        vol = new_volume(world, spec_v.name, spec_v.size, spec_v.type, spec_v.location_code or body.location_code)
        policies[vol["id"]] = spec_v.on_spot_discontinue or "keep_detached"
        attach(world, vol, instance, status="creating")
    for vol_id in body.existing_volumes:
        attach(world, volume_store(world)[vol_id], instance, status="creating")


def deploy_instance(world: World, body: InstanceCreate) -> str:
    """Check and create the instance with its volumes (``ordered``); ``provisioning`` at 0.1 P, ``running`` at P.
    Returns its id."""
    with world.lock:
        entry, os_volume = check_create(world, body)
        price = check_funds_and_capacity(world, body, entry)
        instance = new_instance(world, body, entry, price)
        create_volumes(world, body, instance, os_volume)
        world.private(NAME, instance["id"])["ssh"] = ssh_spec(world, body.ssh_key_ids)
        inst_id: str = instance["id"]
    p = world.settings.provision_seconds
    world.run_steps(
        NAME,
        inst_id,
        [
            Step(at=p * 0.1, apply=set_status(world, inst_id, "provisioning", only_from=("ordered",))),
            *boot_steps(world, inst_id),
        ],
    )
    return inst_id


def ssh_spec(world: World, key_ids: list[str]) -> SshSpec:
    keys = tuple(key_store(world)[k]["key"] for k in key_ids)
    ip = world.allocate_ip(world.settings.ssh_port)
    return SshSpec(ip=ip, port=world.settings.ssh_port, authorized_keys=keys)


# ------------------------------------------------------------------------------------------ lifecycle
def set_status(world: World, inst_id: str, status: str, only_from: tuple[str, ...] = ()) -> Callable[[], None]:
    def apply() -> None:
        instance = instance_store(world).get(inst_id)
        if instance is not None and (not only_from or instance["status"] in only_from):
            instance["status"] = status

    return apply


def _mark_running(world: World, inst_id: str) -> Callable[[], None]:
    def apply() -> None:
        instance = instance_store(world).get(inst_id)
        if instance is None:
            return
        private = world.private(NAME, inst_id)
        attached = [v for v in volume_store(world).values() if v["instance_id"] == inst_id]
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


def boot_steps(world: World, inst_id: str) -> list[Step]:
    p = world.settings.provision_seconds
    return [Step(at=p, ssh="up", apply=_mark_running(world, inst_id))]


def _act_start(world: World, instance: JSONDict, body: InstanceAction) -> None:
    instance["status"] = "provisioning"
    world.run_steps(NAME, instance["id"], boot_steps(world, instance["id"]))


def _act_shutdown(world: World, instance: JSONDict, body: InstanceAction) -> None:
    half = world.settings.provision_seconds / 2
    world.run_steps(
        NAME, instance["id"], [Step(at=half, ssh="down", apply=set_status(world, instance["id"], "offline"))]
    )


def _act_force_shutdown(world: World, instance: JSONDict, body: InstanceAction) -> None:
    instance["status"] = "offline"
    world.run_steps(NAME, instance["id"], [Step(at=0, ssh="down", apply=lambda: None)])


def _act_hibernate(world: World, instance: JSONDict, body: InstanceAction) -> None:
    instance["status"] = "starting_hibernation"
    half = world.settings.provision_seconds / 2
    world.run_steps(
        NAME, instance["id"], [Step(at=half, ssh="down", apply=set_status(world, instance["id"], "hibernating"))]
    )


def _act_restore(world: World, instance: JSONDict, body: InstanceAction) -> None:
    instance["status"] = "restoring"
    world.run_steps(NAME, instance["id"], boot_steps(world, instance["id"]))


def _act_delete(world: World, instance: JSONDict, body: InstanceAction) -> None:
    inst_id = instance["id"]
    instance["status"] = "deleting"
    doomed = set(body.volume_ids or ())
    for volume in [v for v in volume_store(world).values() if v["instance_id"] == inst_id]:
        if volume["id"] in doomed:
            remove_volume(world, volume, body.delete_permanently)
        else:
            detach(world, volume)
    for vol_id in doomed:  # named volumes that were not attached to this instance
        other = volume_store(world).get(vol_id)
        if other is not None and other["status"] != "deleted":
            remove_volume(world, other, body.delete_permanently)
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
        instance = find(instance_store(world), inst_id, lambda: not_found("Instance", inst_id))
        if not instance["is_spot"] or instance["status"] in ("deleting", "discontinued"):
            raise bad(f"Instance {inst_id} is not a live spot instance ({instance['status']})")
        policies = world.private(NAME, inst_id).get("on_spot_discontinue", {})
        for volume in [v for v in volume_store(world).values() if v["instance_id"] == inst_id]:
            policy = policies.get(volume["id"], "keep_detached")
            if policy == "keep_detached":
                detach(world, volume)
            else:
                remove_volume(world, volume, permanent=policy == "delete_permanently")
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


INSTANCE_ACTIONS: dict[str, tuple[tuple[str, ...], Callable[[World, JSONDict, InstanceAction], None]]] = {
    "start": (("offline",), _act_start),
    "boot": (("offline",), _act_start),
    "shutdown": (("running",), _act_shutdown),
    "force_shutdown": (("ordered", "provisioning", "running", "error"), _act_force_shutdown),
    "hibernate": (("running", "offline"), _act_hibernate),
    "restore": (("hibernating",), _act_restore),
    "delete": ((*_ANY_LIVE, "discontinued"), _act_delete),  # a discontinued one's record goes only this way
    "discontinue": (_ANY_LIVE, _act_delete),
}


# ------------------------------------------------------------------------------------------ seeding
def seed_instances(world: World, count: int, first: int) -> None:
    """``count`` running instances (World.seed_hosts) cycling through types, locations and images.

    No OS volume and no sshd: only the listing endpoints are meant to see them; they can still be stopped
    or deleted like any other instance. Call with ``world.lock`` held.
    """
    types = sorted(INSTANCE_TYPES)
    locations = sorted(LOCATION_CODES)
    now = utc_now()
    for index in range(first, first + count):
        entry = INSTANCE_TYPES[types[index % len(types)]]
        image = entry["supported_os"][index % len(entry["supported_os"])]
        name = f"seed-{index:05d}"
        inst_id = world.new_id()
        ip = world.allocate_ip()
        instance_store(world)[inst_id] = {
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
            "os_name": next(i["name"] for i in IMAGES if i["image_type"] == image),
            "startup_script_id": None,
            "is_spot": False,
            "contract": "PAY_AS_YOU_GO",
            "pricing": "FIXED_PRICE",
            "jupyter_token": world.random_token(16),
            "volume_ids": [],
        }
        world.private(NAME, inst_id)["ssh"] = SshSpec(ip=ip, port=world.settings.ssh_port, authorized_keys=())


def ledger(world: World) -> list[JSONDict]:
    """Instances (deleting ones bill until gone), volumes not deleted (detached OS volumes included), volumes
    in trash (kept, not billed here: the docs name no trash price), startup scripts and SSH keys."""
    with world.lock:
        instances = instance_store(world).values()
        items = [
            ledger_item("instance", i["id"], i["hostname"], i["price_per_hour"])
            if i["status"] != "discontinued"
            else ledger_item("instance (discontinued)", i["id"], i["hostname"], None, billed=False)
            for i in instances
        ]
        for volume in volume_store(world).values():
            kind = "os_volume" if volume["is_os_volume"] else "volume"
            if volume["status"] != "deleted":
                items.append(ledger_item(kind, volume["id"], volume["name"], volume["base_hourly_cost"]))
            elif world.private(NAME, volume["id"]).get("in_trash"):
                name = volume["name"]
                items.append(ledger_item(f"{kind} (trash)", volume["id"], name, None, billed=False, purged=True))
        scripts = world.collection(NAME, "scripts").values()
        items += [ledger_item("script", s["id"], s["name"], None, billed=False) for s in scripts]
        items += [ledger_item("ssh_key", k["id"], k["name"], None, billed=False) for k in key_store(world).values()]
        return items

"""Voltage Park's catalogue and state machine: locations, hostnodes and presets; VMs, storage volumes, org keys
and bare-metal rentals in the world's store; placement, power changes, seeding and the ledger.

Nothing here knows a route; the handlers in :mod:`.responses` call these with ``world.lock`` held. The create
bodies are defined here because the state machine reads them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from gpucloud.emulator.base import ProviderError, ledger_item, parse_public_key, utc_now
from gpucloud.emulator.common import find
from gpucloud.emulator.sshd import SshSpec
from gpucloud.emulator.world import JSONDict, Step, World

NAME = "voltagepark"
_NS = uuid.UUID("9a1c2e47-5b3d-4c8e-8f21-6d0b7e3a4c10")  # stable catalogue ids across runs
_GPU = "h100-sxm5-80gb"
_GPU_PRICE = 1.99
STORAGE_RATE_PER_GB = 0.017408
TENANT_ID = 1001


# ------------------------------------------------------------------------------------------ catalogue
_NODE_TOTAL = {"gpus": 8, "ram_gb": 960, "storage_gb": 14000, "vcpu_count": 208}
_LOCATION_ROWS = [
    ("Seattle", "Washington", "United States", 2),
    ("Salt Lake City", "Utah", "United States", 1),
    ("Dallas", "Texas", "United States", 1),
    ("Ashburn", "Virginia", "United States", 1),
]


LOCATIONS: list[JSONDict] = [
    {
        "id": str(uuid.uuid5(_NS, city)),
        "city": city,
        "region": region,
        "country": country,
        "hostnode_ids": [str(uuid.uuid5(_NS, f"{city}-node-{n}")) for n in range(nodes)],
    }
    for city, region, country, nodes in _LOCATION_ROWS
]


HOSTNODE_LOCATION = {node: loc["id"] for loc in LOCATIONS for node in loc["hostnode_ids"]}


# (name, gpus, vCPUs, RAM GB, disk GB, OS)
_PRESET_ROWS = [
    ("1x-h100-ubuntu-22.04", 1, 26, 120, 1500, "Ubuntu 22.04 LTS"),
    ("1x-h100-ubuntu-24.04", 1, 26, 120, 1500, "Ubuntu 24.04 LTS"),
    ("8x-h100-ubuntu-22.04", 8, 208, 960, 12000, "Ubuntu 22.04 LTS"),
]


PRESETS: dict[str, JSONDict] = {
    str(uuid.uuid5(_NS, name)): {
        "id": str(uuid.uuid5(_NS, name)),
        "resources": {"gpus": {_GPU: {"count": gpus}}, "vcpu_count": vcpus, "ram_gb": ram, "storage_gb": disk},
        "operating_system": os_name,
        "compute_rate_hourly": f"{gpus * _GPU_PRICE:.6f}",
        "storage_rate_hourly": f"{disk * 0.00003:.6f}",
    }
    for name, gpus, vcpus, ram, disk, os_name in _PRESET_ROWS
}


LIVE_GPU_STATES = ("Provisioning", "Running", "Starting", "Stopping", "Stopped")


def fmt(value: float) -> str:
    return f"{value:.6f}"


def shape_name(resources: JSONDict) -> str:
    """The instance type gpucloud users name a VM shape by (``1x-h100-sxm5-80gb-26vcpu-120gb``): stock controls
    (``POST /_emulator/stock``) are keyed by it, as tests set stock for the type they ask for.

    Its own copy of the adapter's rule (``gpucloud.providers.voltagepark.shape_name``): the emulator is the outside
    truth the adapter is tested against, so it imports nothing of it; tests/unit/test_emulator_parts.py checks
    both name every preset alike.
    """
    model, count = next(((m, int(g.get("count") or 0)) for m, g in resources["gpus"].items()), (None, 0))
    return f"{count}x-{model or 'cpu'}-{resources.get('vcpu_count', 0)}vcpu-{resources.get('ram_gb', 0)}gb"


def _gpus_of(resources: JSONDict) -> int:
    return int(sum(g["count"] for g in resources["gpus"].values()))


def bad(message: str) -> ProviderError:
    return ProviderError(400, message)


def not_found(message: str) -> ProviderError:
    return ProviderError(404, message)


# ------------------------------------------------------------------------------------------ capacity views
def vms(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "instances")


def _free_gpus(world: World, hostnode_id: str) -> int:
    used = sum(
        world.private(NAME, vm["id"]).get("gpus", 0)
        for vm in vms(world).values()
        if vm["hostnode_id"] == hostnode_id and vm["status"] in LIVE_GPU_STATES
    )
    return _NODE_TOTAL["gpus"] - int(used)


def hostnode(world: World, node_id: str) -> JSONDict:
    free = _free_gpus(world, node_id)
    share = free / _NODE_TOTAL["gpus"]
    return {
        "id": node_id,
        "location_id": HOSTNODE_LOCATION[node_id],
        "available_resources": {
            "gpus": {_GPU: {"count": free}},
            "ram_gb": int(_NODE_TOTAL["ram_gb"] * share),
            "storage_gb": int(_NODE_TOTAL["storage_gb"] * share),
            "vcpu_count": int(_NODE_TOTAL["vcpu_count"] * share),
        },
        "pricing": {
            "per_gpu_hr": {_GPU: fmt(_GPU_PRICE)},
            "per_vcpu_hr": fmt(0),
            "per_gb_ram_hr": fmt(0),
            "per_gb_storage_hr": fmt(0.00003),
        },
        "available_ports": [],
    }


def location_view(world: World, loc: JSONDict) -> JSONDict:
    fields = {k: v for k, v in loc.items() if k != "hostnode_ids"}
    return {**fields, "hostnodes": [hostnode(world, n) for n in loc["hostnode_ids"]]}


def placement(world: World, preset: JSONDict, location_id: str) -> str | None:
    """A hostnode at ``location_id`` that can take ``preset`` now, or None."""
    loc = next(loc for loc in LOCATIONS if loc["id"] == location_id)
    if not world.has_capacity(NAME, preset["id"], location_id, shape_name(preset["resources"])):
        return None
    need = _gpus_of(preset["resources"])
    return next((n for n in loc["hostnode_ids"] if _free_gpus(world, n) >= need), None)


def preset_view(world: World, preset: JSONDict) -> JSONDict:
    available = [loc["id"] for loc in LOCATIONS if placement(world, preset, loc["id"])]
    return {**preset, "location_ids_with_availability": available}


# ------------------------------------------------------------------------------------------ organization ssh keys
def check_key(value: str) -> str:
    if parse_public_key(value) is None:
        raise ValueError("not a valid OpenSSH public key")
    return value.strip()


def org_keys(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "ssh_keys")


# ------------------------------------------------------------------------------------------ virtual machines
class OrgKeysNone(BaseModel):
    mode: Literal["none"]


class OrgKeysAll(BaseModel):
    mode: Literal["all"]


class OrgKeysSelective(BaseModel):
    mode: Literal["selective"]
    ssh_key_ids: list[uuid.UUID]


class VmCreate(BaseModel):
    config_id: uuid.UUID
    name: str = Field(min_length=1)
    password: Annotated[str, Field(min_length=8)] | None = None
    organization_ssh_keys: Annotated[OrgKeysNone | OrgKeysAll | OrgKeysSelective, Field(discriminator="mode")] = (
        OrgKeysNone(mode="none")
    )
    ssh_keys: list[str] = []
    cloud_init: dict[str, Any] | None = None
    tags: list[str] = []

    @field_validator("ssh_keys")
    @classmethod
    def _valid_keys(cls, keys: list[str]) -> list[str]:
        return [check_key(k) for k in keys]


def vm_or_404(world: World, vm_id: uuid.UUID) -> JSONDict:
    return find(vms(world), vm_id, lambda: not_found("Virtual machine not found"))


def vm_keys(world: World, body: VmCreate | BareMetalCreate) -> tuple[str, ...]:
    org = body.organization_ssh_keys
    keys = list(body.ssh_keys)
    if isinstance(org, OrgKeysAll):
        keys += [k["content"] for k in org_keys(world).values()]
    elif isinstance(org, OrgKeysSelective):
        for key_id in map(str, org.ssh_key_ids):
            if key_id not in org_keys(world):
                raise bad(f"Organization SSH key {key_id} not found")
            keys.append(org_keys(world)[key_id]["content"])
    return tuple(keys)


def _pricing(preset: JSONDict) -> JSONDict:
    compute, storage = float(preset["compute_rate_hourly"]), float(preset["storage_rate_hourly"])
    return {
        "gpus_per_hr": fmt(compute),
        "vcpus_per_hr": fmt(0),
        "ram_per_hr": fmt(0),
        "storage_per_hr": fmt(storage),
        "total_associated_per_hr": fmt(compute + storage),
        "total_disassociated_per_hr": fmt(storage),
    }


def new_vm(world: World, body: VmCreate, preset: JSONDict, hostnode_id: str, keys: tuple[str, ...]) -> JSONDict:
    vm_id = world.new_id()
    vm: JSONDict = {
        "id": vm_id,
        "hostnode_id": hostnode_id,
        "type": "ondem",
        "status": "Provisioning",
        "name": body.name,
        "resources": {**preset["resources"], "gpus": dict(preset["resources"]["gpus"])},
        "operating_system": preset["operating_system"],
        "pricing": _pricing(preset),
        "public_ip": "",
        "port_forwards": [],
        "timestamp_creation": utc_now(),
        "tags": list(body.tags),
    }
    vms(world)[vm_id] = vm
    ip = world.allocate_ip()
    private = world.private(NAME, vm_id)
    private.update(
        gpus=_gpus_of(preset["resources"]),
        preset=preset["id"],
        ssh=SshSpec(ip=ip, port=world.allocate_port(ip), authorized_keys=keys),
    )
    return vm


def deploy_vm(world: World, body: VmCreate) -> str:
    """Place and create a VM (``Provisioning``) on the first location with a hostnode that can take its preset;
    ``Running`` at P. Returns its id."""
    with world.lock:
        preset = find(PRESETS, body.config_id, lambda: bad(f"Instant deploy preset {body.config_id} not found"))
        keys = vm_keys(world, body)
        spot = next(((loc["id"], n) for loc in LOCATIONS if (n := placement(world, preset, loc["id"]))), None)
        if spot is None or not world.take_capacity(NAME, preset["id"], spot[0], shape_name(preset["resources"])):
            raise bad(f"No availability for instant deploy preset {body.config_id}: try again later")
        node = spot[1]
        vm_id: str = new_vm(world, body, preset, node, keys)["id"]
    p = world.settings.provision_seconds
    world.run_steps(NAME, vm_id, [Step(at=p, ssh="up", apply=to_status(world, vm_id, "Running"))])
    return vm_id


def terminate_vm(world: World, vm_id: uuid.UUID) -> None:
    """``Terminating`` now (sshd stops, storage unlinks), gone at P/2; a VM already terminating is left alone."""
    with world.lock:
        vm = vm_or_404(world, vm_id)
        if not _mark_terminating(vm):
            return
        for volume in storage_volumes(world).values():
            if vm["id"] in volume["order_ids"]:
                volume["order_ids"].remove(vm["id"])
    _retire(world, "instances", vm["id"])


def _mark_terminating(record: JSONDict) -> bool:
    """False for a record already on its way out: deleting it again is harmless and changes nothing."""
    if record["status"] == "Terminating":
        return False
    record["status"] = "Terminating"
    return True


def _retire(world: World, kind: str, rid: str) -> None:
    """sshd down now, the record gone at P/2 (the caller has marked it ``Terminating``)."""
    half = world.settings.provision_seconds / 2
    world.run_steps(
        NAME,
        rid,
        [Step(at=0, ssh="down", apply=lambda: None), Step(at=half, apply=lambda: world.forget(NAME, kind, rid))],
    )


def to_status(world: World, vm_id: str, status: str) -> Callable[[], None]:
    def apply() -> None:
        vm = vms(world).get(vm_id)
        if vm is None:
            return
        vm["status"] = status
        if status == "Running":
            spec: SshSpec = world.private(NAME, vm_id)["ssh"]
            vm.update(public_ip=spec.ip, port_forwards=[{"internal_port": 22, "external_port": spec.port}])

    return apply


def power_vm(world: World, vm_id: uuid.UUID, wanted: str) -> None:
    """Start or stop a VM (``started``, ``stopped``, ``stopped_disassociated``); see :func:`power_steps`."""
    with world.lock:
        vm = vm_or_404(world, vm_id)
        steps = power_steps(world, vm, wanted)
    if steps:
        world.run_steps(NAME, vm["id"], steps)


def power_steps(world: World, vm: JSONDict, wanted: str) -> list[Step]:
    """Validate a power change and start it (status set now); the remaining steps to schedule."""
    status, vm_id, p = vm["status"], vm["id"], world.settings.provision_seconds
    if status == "Terminating":
        raise bad("Virtual machine is terminating")
    if wanted == "started":
        if status in ("Provisioning", "Running", "Starting"):
            return []
        if status == "Stopping":
            raise bad("Virtual machine is stopping; start it once it has stopped")
        if status == "StoppedDisassociated" and not _free_gpus_for(world, vm):
            raise bad("No capacity on the host node to start this virtual machine")
        vm["status"] = "Starting"
        return [Step(at=p, ssh="up", apply=to_status(world, vm_id, "Running"))]
    target = "Stopped" if wanted == "stopped" else "StoppedDisassociated"
    if status == target:
        return []
    if status in ("Provisioning", "Starting"):
        raise bad(f"Virtual machine is {status.lower()}; stop it once it is running")
    if status == "StoppedDisassociated":
        raise bad("Virtual machine is already stopped with its resources released")
    vm["status"] = "Stopping"
    return [Step(at=p / 2, ssh="down", apply=to_status(world, vm_id, target))]


def _free_gpus_for(world: World, vm: JSONDict) -> bool:
    need: int = world.private(NAME, vm["id"]).get("gpus", 0)
    return _free_gpus(world, vm["hostnode_id"]) >= need


class StorageCreate(BaseModel):
    size_in_gb: int = Field(ge=1)
    name: str = Field(min_length=1)
    order_ids: list[uuid.UUID] = []


class StoragePatch(BaseModel):
    size_in_gb: int | None = Field(default=None, ge=1)
    name: str | None = Field(default=None, min_length=1)
    order_ids: list[uuid.UUID] | None = None


def storage_volumes(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "volumes")


def storage_or_404(world: World, storage_id: uuid.UUID) -> JSONDict:
    return find(storage_volumes(world), storage_id, lambda: not_found("Storage volume not found"))


def linkable(world: World, order_ids: list[uuid.UUID]) -> list[str]:
    ids = [str(i) for i in order_ids]
    for vm_id in ids:
        vm = vms(world).get(vm_id)
        if vm is None or vm["status"] == "Terminating":
            raise bad(f"Virtual machine {vm_id} not found")
    return ids


def new_storage(world: World, body: StorageCreate) -> JSONDict:
    with world.lock:
        order_ids = linkable(world, body.order_ids)
        volume: JSONDict = {
            "id": world.new_id(),
            "size_in_gb": body.size_in_gb,
            "name": body.name,
            "status": "active",
            "rate_hourly": fmt(body.size_in_gb * STORAGE_RATE_PER_GB),
            "order_ids": order_ids,
            "tenant_id": TENANT_ID,
            "vip": f"10.100.0.{len(storage_volumes(world)) % 250 + 2}",
        }
        storage_volumes(world)[volume["id"]] = volume
        return volume


def change_storage(world: World, storage_id: uuid.UUID, body: StoragePatch) -> JSONDict:
    """Grow, rename or relink a volume (it never shrinks)."""
    with world.lock:
        volume = storage_or_404(world, storage_id)
        if body.size_in_gb is not None and body.size_in_gb < volume["size_in_gb"]:
            raise bad(f"Storage volumes can only grow (current size {volume['size_in_gb']} GB)")
        order_ids = linkable(world, body.order_ids) if body.order_ids is not None else volume["order_ids"]
        if body.size_in_gb is not None:
            volume.update(size_in_gb=body.size_in_gb, rate_hourly=fmt(body.size_in_gb * STORAGE_RATE_PER_GB))
        if body.name is not None:
            volume["name"] = body.name
        volume["order_ids"] = order_ids
        return volume


def remove_storage(world: World, storage_id: uuid.UUID) -> None:
    """Delete a volume no VM or rental uses."""
    with world.lock:
        volume = storage_or_404(world, storage_id)
        if volume["order_ids"]:
            raise bad("Storage volume is attached to virtual machines; remove its order_ids first")
        if any(r["storage_id"] == volume["id"] for r in rentals(world).values()):
            raise bad("Storage volume is in use by a bare metal rental; terminate the rental first")
        world.forget(NAME, "volumes", volume["id"])


# ------------------------------------------------------------------------------------------ bare metal
# Whole 8-GPU nodes per location and network type (a pool apart from the VM hostnodes), and the per-GPU price.
BM_NODES = {
    "Seattle": {"infiniband": 2, "ethernet": 2},
    "Salt Lake City": {"infiniband": 1, "ethernet": 1},
    "Dallas": {"ethernet": 1},
    "Ashburn": {"infiniband": 1},
}


_BM_GPU_PRICE = {"infiniband": 2.25, "ethernet": 1.95}
_BM_SPECS: JSONDict = {
    "gpu_model": _GPU,
    "gpu_count": 8,
    "cpu_model": "Intel Xeon Platinum 8470",
    "cpu_count": 2,
    "ram_gb": 2048,
    "storage_gb": 30000,
}


_BM_CITY = {loc["id"]: loc["city"] for loc in LOCATIONS}
_BM_LIVE = ("Pending", "Running")  # rental statuses that hold nodes ("Terminating" gives them back)
_BM_USER = "ubuntu"
NetworkType = Literal["infiniband", "ethernet"]


class BareMetalCreate(BaseModel):
    location_id: uuid.UUID
    gpu_count: int
    name: str = Field(min_length=1)
    network_type: NetworkType
    organization_ssh_keys: Annotated[OrgKeysNone | OrgKeysAll | OrgKeysSelective, Field(discriminator="mode")] = (
        OrgKeysNone(mode="none")
    )
    ssh_keys: list[str] = []
    sub_order: int | str | None = None
    storage_id: uuid.UUID | None = None
    tags: list[str] = []
    cloudinit_script: dict[str, Any] | None = None

    @field_validator("ssh_keys")
    @classmethod
    def _valid_keys(cls, keys: list[str]) -> list[str]:
        return [check_key(k) for k in keys]


def rentals(world: World) -> dict[str, JSONDict]:
    return world.collection(NAME, "bare_metal")


def rental_or_404(world: World, rental_id: uuid.UUID) -> JSONDict:
    return find(rentals(world), rental_id, lambda: not_found("Bare metal rental not found"))


def _free_bm_gpus(world: World, location_id: str, network: str) -> int:
    """GPUs in whole free nodes of ``network`` at the location (0 while capacity is switched off there)."""
    if not world.has_capacity(NAME, f"bare-metal-{network}", location_id):
        return 0
    total = BM_NODES.get(_BM_CITY[location_id], {}).get(network, 0)
    used = sum(
        r["node_count"]
        for r in rentals(world).values()
        if r["network_type"] == network
        and r["status"] in _BM_LIVE
        and world.private(NAME, r["id"])["location"] == location_id
    )
    return int(total - used) * int(_BM_SPECS["gpu_count"])


def bm_location(world: World, location_id: str) -> JSONDict:
    row: JSONDict = {"id": location_id}
    for network in ("ethernet", "infiniband"):
        row[f"gpu_count_{network}"] = _free_bm_gpus(world, location_id, network)
        row[f"gpu_price_{network}"] = _BM_GPU_PRICE[network]
    row["specs_per_node"] = dict(_BM_SPECS)
    return row


def check_bm_order(world: World, body: BareMetalCreate) -> str:
    """The location id, once the order can be met; else the 400 the doc lists for a refused deploy."""
    location_id = str(body.location_id)
    if location_id not in _BM_CITY or not BM_NODES.get(_BM_CITY[location_id]):
        raise bad(f"Bare metal location {location_id} not found")
    per_node = int(_BM_SPECS["gpu_count"])
    if body.gpu_count < per_node or body.gpu_count % per_node:
        raise bad(f"gpu_count must be a whole number of nodes: a multiple of {per_node} (got {body.gpu_count})")
    if body.storage_id is not None and str(body.storage_id) not in storage_volumes(world):
        raise bad(f"Storage volume {body.storage_id} not found")
    free = _free_bm_gpus(world, location_id, body.network_type)
    if free < body.gpu_count:
        raise bad(
            f"No availability for {body.gpu_count} {body.network_type} GPUs at location {location_id} "
            f"({free} available): try another location or network type"
        )
    return location_id


def new_rental(world: World, body: BareMetalCreate, location_id: str, keys: tuple[str, ...]) -> JSONDict:
    rental_id, nodes = world.new_id(), body.gpu_count // int(_BM_SPECS["gpu_count"])
    port = world.settings.ssh_port  # bare metal answers SSH on the machine itself: no port forward
    ips = [world.allocate_ip(port) for _ in range(nodes)]
    rental: JSONDict = {
        "id": rental_id,
        "name": body.name,
        "creation_timestamp": utc_now(),
        "status": "Pending",
        "power_status": "Pending",
        "node_count": nodes,
        "specs_per_node": dict(_BM_SPECS),
        "rate_hourly": fmt(body.gpu_count * _BM_GPU_PRICE[body.network_type]),
        "network_type": body.network_type,
        "username": _BM_USER,
        "node_networking": [
            {"public_ip": ip, "private_ip": f"192.168.{n // 250}.{n % 250 + 2}"} for n, ip in enumerate(ips)
        ],
        "sub_order": None if body.sub_order is None else str(body.sub_order),
        "storage_id": None if body.storage_id is None else str(body.storage_id),
        "storage_pv": None,
        "storage_pvc": None,
        "k8s_cluster_id": world.new_id(),
        "kubeconfig": None,
        "tags": list(body.tags),
    }
    rentals(world)[rental_id] = rental
    # One sshd per rental, on its first node (the emulator does not run one per node).
    world.private(NAME, rental_id).update(location=location_id, ssh=SshSpec(ip=ips[0], port=port, authorized_keys=keys))
    return rental


def deploy_rental(world: World, body: BareMetalCreate) -> str:
    """Check and create a rental (``Pending``); ``Running`` and powered on at P. Returns its id."""
    with world.lock:
        keys = vm_keys(world, body)
        location_id = check_bm_order(world, body)
        rental_id: str = new_rental(world, body, location_id, keys)["id"]
    up = rental_to(world, rental_id, status="Running", power_status="Running")
    world.run_steps(NAME, rental_id, [Step(at=world.settings.provision_seconds, ssh="up", apply=up)])
    return rental_id


def power_rental(world: World, rental_id: uuid.UUID, status: str) -> None:
    """``started``: ``Starting`` -> ``Running`` (P); ``stopped``: ``Stopping`` -> ``Stopped`` (P/2); nothing
    when it is already so."""
    p = world.settings.provision_seconds
    with world.lock:
        rental = rental_or_404(world, rental_id)
        wanted = "Running" if status == "started" else "Stopped"
        if rental["status"] == "Running" and rental["power_status"] == wanted:
            return
        settled(rental, "start" if status == "started" else "stop")
        rid = rental["id"]
        if status == "started":
            rental["power_status"] = "Starting"
            steps = [Step(at=p, ssh="up", apply=rental_to(world, rid, power_status="Running"))]
        else:
            rental["power_status"] = "Stopping"
            steps = [Step(at=p / 2, ssh="down", apply=rental_to(world, rid, power_status="Stopped"))]
    world.run_steps(NAME, rid, steps)


def reboot_rental(world: World, rental_id: uuid.UUID, public_ips: list[str]) -> None:
    """Reboot the nodes named (all of this rental's): ``Pending`` (sshd down) -> ``Running`` at P/2."""
    with world.lock:
        rental = rental_or_404(world, rental_id)
        ips = {node["public_ip"] for node in rental["node_networking"]}
        unknown = sorted(set(public_ips) - ips)
        if not public_ips or unknown:
            raise bad(f"Not nodes of this rental: {', '.join(unknown) or '(no public_ips given)'}")
        settled(rental, "reboot")
        if rental["power_status"] != "Running":
            raise bad("Bare metal rental is stopped; start it instead of rebooting")
        rental["status"] = "Pending"  # as the doc says a reboot does
        rid = rental["id"]
    back = rental_to(world, rid, status="Running")
    half = world.settings.provision_seconds / 2
    world.run_steps(NAME, rid, [Step(at=0, ssh="down", apply=lambda: None), Step(at=half, ssh="up", apply=back)])


def terminate_rental(world: World, rental_id: uuid.UUID) -> None:
    """``Terminating`` now (its nodes free at once), gone at P/2; a rental already terminating is left alone."""
    with world.lock:
        rental = rental_or_404(world, rental_id)
        if not _mark_terminating(rental):
            return
    _retire(world, "bare_metal", rental["id"])


def rental_to(world: World, rental_id: str, **fields: str) -> Callable[[], None]:
    def apply() -> None:
        rental = rentals(world).get(rental_id)
        if rental is not None:
            rental.update(fields)

    return apply


def settled(rental: JSONDict, action: str) -> None:
    """Power and reboot need a rental that is neither terminating nor in the middle of a change."""
    if rental["status"] != "Running" or rental["power_status"] in ("Starting", "Stopping"):
        state = rental["status"] if rental["status"] != "Running" else rental["power_status"]
        raise bad(f"Bare metal rental is {state.lower()}; {action} it once that is over")


# ------------------------------------------------------------------------------------------ seeding
_SEED_TAGS = (("team", ("research", "training", "inference")), ("env", ("prod", "staging")))


def seed_instances(world: World, count: int, first: int) -> None:
    """``count`` ``Running`` VMs (World.seed_hosts) cycling through presets, hostnodes and tags.

    They hold no GPUs of their hostnode (five nodes could never carry thousands of VMs), so creates keep
    working next to them; they have an address and a port forward but no sshd. Call with ``world.lock`` held.
    """
    presets = list(PRESETS.values())
    nodes = [node for loc in LOCATIONS for node in loc["hostnode_ids"]]
    now = utc_now()
    for index in range(first, first + count):
        preset = presets[index % len(presets)]
        tags = [f"{key}={values[index % len(values)]}" for key, values in _SEED_TAGS]
        vm_id = world.new_id()
        ip = world.allocate_ip()
        port = world.allocate_port(ip)
        vms(world)[vm_id] = {
            "id": vm_id,
            "hostnode_id": nodes[index // len(presets) % len(nodes)],
            "type": "ondem",
            "status": "Running",
            "name": f"seed-{index:05d}",
            "resources": {**preset["resources"], "gpus": dict(preset["resources"]["gpus"])},
            "operating_system": preset["operating_system"],
            "pricing": _pricing(preset),
            "public_ip": ip,
            "port_forwards": [{"internal_port": 22, "external_port": port}],
            "timestamp_creation": now,
            "tags": tags,
        }
        world.private(NAME, vm_id).update(
            gpus=0, preset=preset["id"], ssh=SshSpec(ip=ip, port=port, authorized_keys=())
        )


def ledger(world: World) -> list[JSONDict]:
    """VMs (a ``Stopped`` VM is billed as a running one, as the doc says; a ``StoppedDisassociated`` one only for
    its storage: ``total_disassociated_per_hr``), bare-metal rentals (``rate_hourly`` until terminated, stopped or
    not: the nodes stay reserved), storage volumes, org keys."""
    with world.lock:
        items = []
        for vm in vms(world).values():
            rate = "total_disassociated_per_hr" if vm["status"] == "StoppedDisassociated" else "total_associated_per_hr"
            items.append(ledger_item("instance", vm["id"], vm["name"], float(vm["pricing"][rate])))
        items += [
            ledger_item("bare_metal", r["id"], r["name"], float(r["rate_hourly"])) for r in rentals(world).values()
        ]
        items += [
            ledger_item("volume", v["id"], v["name"], float(v["rate_hourly"])) for v in storage_volumes(world).values()
        ]
        items += [ledger_item("ssh_key", k["id"], k["name"], None, billed=False) for k in org_keys(world).values()]
        return items

"""Every capability cell the table claims ("yes", or "inferred") has a round trip through ``gpucloud.ensure``.

The table (``gpucloud providers``, the README's generated section) is walked row by row: each claimed cell's
column must have a round trip below, and the round trip runs against the emulator through the ensure functions
both front-ends call. Each one asserts the effect on the account (what the API reports afterwards) and that
ensure reached it through the adapter operation the capability names, so a cell saying "yes" while ensure
plans a replacement, or never calls the operation, fails. A column added to the table without a round trip
fails :func:`test_every_claimed_cell_has_a_round_trip` before anything runs.

One walk per provider shares one instance (created with every create option the provider claims) across the
round trips, in the order below, and ends by deleting it: the walk is also a teardown scenario on the ledger.
Options that make a different instance (spot, bare metal, a copy booted from a snapshot) create and delete one
of their own. One-off actions (snapshot, password reset, adding a key) have no ensure function: they are called
on the adapter as the Ansible instance_action module calls them. A snapshot has no documented delete, so the one
the walk takes is the only thing it may leave on the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, Status, VolumeSpec
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.ensure import (
    Outcome,
    ensure_instance,
    ensure_instance_absent,
    ensure_instance_power,
    ensure_ssh_key,
    ensure_ssh_key_absent,
    ensure_volume,
    ensure_volume_absent,
)
from gpucloud.models import Instance, Volume
from gpucloud.providers import OPTION_COLUMNS, TABLE_COLUMNS, capability_table, implemented, provider_class
from gpucloud.reconcile import Action
from tests.ledger import Item, holdings, settle

from ..conftest import connect
from .specs import INSTANCE, OTHER_TYPE, VOLUME

FAST = {"wait_timeout": 60.0}
SCRIPT = "#!/bin/sh\necho round-trip > /tmp/round-trip\n"
PASSWORD = "Round-trip-password-42"
# Volumes named at create: ComputeStacks creates the image's own volumes by label (the contract image, Nginx,
# has "html"); elsewhere a volume made beforehand is named.
IMAGE_VOLUME = {"computestacks": "html"}
# A volume type other than the one a volume gets when none is asked for (DataCrunch: NVMe by default).
OTHER_VOLUME_TYPE = {"datacrunch": "HDD"}
# An OS disk size other than the image's default (DataCrunch: 50 GB), for providers that let it be chosen.
OS_DISK_GB = 60
# A bare-metal type, for providers that rent whole nodes.
BARE_METAL = {"voltagepark": "baremetal-8x-h100-sxm5-80gb-infiniband"}
# Adapter operations a round trip may have to reach (spied on, per walk).
OPERATIONS = (
    "create_instance",
    "list_instances",
    "delete_instance",
    "start_instance",
    "stop_instance",
    "reboot_instance",
    "resize_instance",
    "update_instance",
    "create_volume",
    "delete_volume",
    "attach_volume",
    "detach_volume",
    "resize_volume",
    "rename_volume",
    "create_ssh_key",
    "delete_ssh_key",
    "stop_instance_released",
    "snapshot_instance",
    "reset_root_password",
    "add_instance_ssh_key",
)


@dataclass
class Walk:
    """One provider's walk: the adapter (operations spied on), the account and the shared instance."""

    cloud: gpucloud.Provider
    emulator: EmulatorServer
    public_key: str
    calls: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list, repr=False)  # JSON bodies of answered requests
    created: Outcome[Instance] | None = None
    volume: Volume | None = None
    boot_volume: str | None = None  # made for "volumes at create", deleted after the instance
    kept: list[Item] = field(default_factory=list)  # ledger items the walk made to keep (no API deletes them)

    @property
    def provider(self) -> str:
        return self.cloud.name

    @property
    def name(self) -> str:
        return f"walk-{self.provider}"

    def has(self, capability: Capability) -> bool:
        return capability in provider_class(self.provider).capabilities

    def spec(self, **changes: Any) -> InstanceSpec:
        """The instance with every create option the provider claims."""
        options: dict[str, Any] = {}
        if self.has(Capability.INSTANCE_TAGS):
            options["tags"] = {"team": "red"}
        if self.has(Capability.INSTANCE_STARTUP_SCRIPT):
            options["startup_script"] = SCRIPT
        if self.has(Capability.INSTANCE_PASSWORD):
            options["password"] = PASSWORD
        if self.has(Capability.SSH_KEYS_BY_CONTENT):
            options["ssh_keys"] = (self.public_key,)
        if self.has(Capability.INSTANCE_VOLUMES_AT_CREATE):
            options["volumes"] = (self.at_create_volume(),)
        if self.has(Capability.INSTANCE_OS_DISK_SIZE):
            options["os_disk_size_gb"] = OS_DISK_GB
        return InstanceSpec(**{"name": self.name, **INSTANCE[self.provider], **options, **changes})

    def at_create_volume(self) -> str:
        if self.provider in IMAGE_VOLUME:
            return IMAGE_VOLUME[self.provider]
        made = ensure_volume(self.cloud, VolumeSpec(name=f"{self.name}-boot", size_gb=10, **VOLUME[self.provider]))
        assert made.after is not None
        self.boot_volume = made.after.id
        return made.after.name

    def instance(self) -> Instance:
        """The walk's instance, created through ensure on first use; its current state after that."""
        if self.created is None:
            self.created = ensure_instance(self.cloud, self.spec(), **FAST)
            assert self.created.action is Action.CREATE
        assert self.created.after is not None
        return self.cloud.get_instance(self.created.after.id)

    def reached(self, *operations: str, since: int = 0) -> None:
        missing = [op for op in operations if op not in self.calls[since:]]
        assert not missing, f"ensure never called {missing} (called: {self.calls[since:]})"

    def other(self, suffix: str, **changes: Any) -> InstanceSpec:
        """A second instance with the walk's create options (volumes aside: those are the walk instance's)."""
        return self.spec(name=f"{self.name}-{suffix}", volumes=(), **changes)

    def billed(self, instance_id: str) -> float:
        """What the account is billed per hour for the instance (the emulator's ledger)."""
        items = holdings(self.emulator, self.provider)
        return float(next(i["hourly_usd"] for i in items if i["kind"] == "instance" and i["id"] == instance_id))

    def orders(self) -> int:
        """Instance orders (POST to the instance collection) this provider's API has seen so far."""
        requests = self.emulator.world.requests
        return sum(1 for r in requests if r.provider == self.provider and (r.method, r.path) == ("POST", "/instances"))

    def sent(self, text: str) -> bool:
        """Whether an answered request body carried ``text`` (a script body, a key, a password): options no
        API reports back are proven by what the API accepted."""
        return any(text in body for body in self.bodies)


def spied(cloud: gpucloud.Provider, calls: list[str], bodies: list[str]) -> None:
    """Record every call of :data:`OPERATIONS` on this adapter object (ensure's and the adapter's own) and
    the body of every request its transport got an answer to."""
    transport = cloud.transport  # type: ignore[attr-defined]
    send = transport.request

    def request(method: str, path: str, **kwargs: Any) -> Any:
        response = send(method, path, **kwargs)
        bodies.append(json.dumps(kwargs.get("json"), default=str))
        return response

    transport.request = request
    for operation in OPERATIONS:
        original = getattr(cloud, operation)

        def spy(*args: Any, _op: str = operation, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            calls.append(_op)
            return _original(*args, **kwargs)

        setattr(cloud, operation, spy)


# --- round trips, by table column --------------------------------------------------------------------------
def instance_create(w: Walk) -> None:
    live = w.instance()
    assert live.status is Status.RUNNING and live.name == w.name
    w.reached("create_instance")


def instance_list(w: Walk) -> None:
    live, start = w.instance(), len(w.calls)
    assert live.id in {i.id for i in w.cloud.list_instances()}, "the listing does not show the instance"
    w.reached("list_instances", since=start)
    # A rerun finds it by name (through the listing or a cheaper lookup by name: adapters differ) and is a no-op.
    start = len(w.calls)
    again = ensure_instance(w.cloud, w.spec(), **FAST)
    assert not again.changed and again.after is not None and again.after.id == live.id
    assert "create_instance" not in w.calls[start:]


def start_stop(w: Walk) -> None:
    start = len(w.calls)
    stopped = ensure_instance_power(w.cloud, "stopped", name=w.name, **FAST)
    assert stopped.action == "stop" and w.instance().status is Status.STOPPED
    started = ensure_instance_power(w.cloud, "started", name=w.name, **FAST)
    assert started.action == "start" and w.instance().status is Status.RUNNING
    w.reached("stop_instance", "start_instance", since=start)


def reboot(w: Walk) -> None:
    start = len(w.calls)
    rebooted = ensure_instance_power(w.cloud, "restarted", name=w.name, **FAST)
    assert rebooted.action == "restart" and w.instance().status is Status.RUNNING
    w.reached("reboot_instance", since=start)
    assert "stop_instance" not in w.calls[start:], "a reboot call, not stop then start"


def resize(w: Walk) -> None:
    start, before = len(w.calls), w.instance()
    resized = ensure_instance(w.cloud, w.spec(instance_type=OTHER_TYPE[w.provider]), **FAST)
    assert resized.action is Action.UPDATE, resized.plan
    live = w.instance()
    assert live.id == before.id and live.instance_type == w.cloud.canonical_instance_type(OTHER_TYPE[w.provider])
    w.reached("resize_instance", since=start)
    back = ensure_instance(w.cloud, w.spec(), **FAST)  # and back, so the walk goes on with the spec's type
    assert back.action is Action.UPDATE and w.instance().id == before.id


def tag_update(w: Walk) -> None:
    start, before = len(w.calls), w.instance()
    retagged = ensure_instance(w.cloud, w.spec(tags={"team": "blue"}), **FAST)
    assert retagged.action is Action.UPDATE, retagged.plan
    live = w.instance()
    assert live.id == before.id and live.tags == {"team": "blue"}
    w.reached("update_instance", since=start)


def rename(w: Walk) -> None:
    start, before = len(w.calls), w.instance()
    renamed = ensure_instance(w.cloud, w.spec(name=f"{w.name}-renamed"), instance_id=before.id, **FAST)
    assert renamed.action is Action.UPDATE, renamed.plan
    assert w.cloud.get_instance(before.id).name == f"{w.name}-renamed"
    back = ensure_instance(w.cloud, w.spec(), instance_id=before.id, **FAST)
    assert back.action is Action.UPDATE and w.instance().name == w.name
    w.reached("update_instance", since=start)


def offers(w: Walk) -> None:
    live = w.instance()
    listed = {o.instance_type: o for o in w.cloud.list_offers()}
    assert live.instance_type in listed, f"{live.instance_type} is not among the offers"
    offer_price = listed[live.instance_type].price_per_hour
    if offer_price is not None and live.price_per_hour is not None:  # the machine, plus its disk on some APIs
        assert live.price_per_hour >= offer_price - 1e-9


def images(w: Walk) -> None:
    live = w.instance()
    listed = {i.id for i in w.cloud.list_images()} | {i.name for i in w.cloud.list_images()}
    assert live.image in listed, f"{live.image} is not among the images"


def locations(w: Walk) -> None:
    live = w.instance()
    listed = {loc.id for loc in w.cloud.list_locations()}
    assert live.location in listed, f"{live.location} is not among the locations"


def choose_location(w: Walk) -> None:
    assert w.spec().location is not None and w.instance().location == w.spec().location


def tags_at_create(w: Walk) -> None:
    assert w.instance().tags == {"team": "red"}


def startup_script(w: Walk) -> None:
    w.instance()
    assert w.sent(json.dumps(SCRIPT)[1:-1]), "no accepted request carried the script"


def root_password(w: Walk) -> None:
    w.instance()
    assert w.sent(PASSWORD), "no accepted request carried the password"


def keys_by_content(w: Walk) -> None:
    w.instance()
    assert w.sent(w.public_key.split()[1]), "no accepted request carried the key"


def volumes_at_create(w: Walk) -> None:
    live = w.instance()
    wanted = w.spec().volumes[0]
    attached = [v for v in w.cloud.list_volumes() if live.id in v.attached_to]
    assert wanted in [v.name for v in attached], (wanted, attached)


def volume_create(w: Walk) -> None:
    start = len(w.calls)
    made = ensure_volume(w.cloud, VolumeSpec(name=f"{w.name}-data", size_gb=10, **VOLUME[w.provider]))
    assert made.action is Action.CREATE and made.after is not None
    assert w.cloud.find_volume(f"{w.name}-data") is not None
    w.volume = made.after
    w.reached("create_volume", since=start)


def _volume(w: Walk) -> Volume:
    if w.volume is None:
        volume_create(w)
    assert w.volume is not None
    return w.cloud.get_volume(w.volume.id)


def volume_types(w: Walk) -> None:
    default = _volume(w).volume_type
    wanted = OTHER_VOLUME_TYPE[w.provider]
    typed = ensure_volume(
        w.cloud, VolumeSpec(name=f"{w.name}-typed", size_gb=10, volume_type=wanted, **VOLUME[w.provider])
    )
    assert typed.after is not None and w.cloud.get_volume(typed.after.id).volume_type == wanted != default
    ensure_volume_absent(w.cloud, volume_id=typed.after.id)


def volume_attach(w: Walk) -> None:
    volume, start = _volume(w), len(w.calls)
    ensure_instance_power(w.cloud, "stopped", name=w.name, **FAST)  # DataCrunch attaches only offline
    spec = VolumeSpec(name=volume.name, size_gb=volume.size_gb, attach_to=w.name, **VOLUME[w.provider])
    attached = ensure_volume(w.cloud, spec)
    assert attached.action is Action.UPDATE and w.cloud.get_volume(volume.id).attached_to == (w.instance().id,)
    detached = ensure_volume(w.cloud, spec.model_copy(update={"attach_to": ""}))
    assert detached.action is Action.UPDATE and w.cloud.get_volume(volume.id).attached_to == ()
    ensure_instance_power(w.cloud, "started", name=w.name, **FAST)
    w.reached("attach_volume", "detach_volume", since=start)


def volume_resize(w: Walk) -> None:
    volume, start = _volume(w), len(w.calls)
    grown = ensure_volume(w.cloud, VolumeSpec(name=volume.name, size_gb=volume.size_gb + 10, **VOLUME[w.provider]))
    assert grown.action is Action.UPDATE and w.cloud.get_volume(volume.id).size_gb == volume.size_gb + 10
    w.reached("resize_volume", since=start)


def volume_rename(w: Walk) -> None:
    volume, start = _volume(w), len(w.calls)
    spec = VolumeSpec(name=f"{volume.name}-renamed", size_gb=volume.size_gb, **VOLUME[w.provider])
    renamed = ensure_volume(w.cloud, spec, volume_id=volume.id)
    assert renamed.action is Action.UPDATE and w.cloud.get_volume(volume.id).name == spec.name
    w.reached("rename_volume", since=start)


def volume_delete(w: Walk) -> None:
    volume, start = _volume(w), len(w.calls)
    gone = ensure_volume_absent(w.cloud, volume_id=volume.id)
    assert gone.changed and w.cloud.find_volume(volume.name) is None
    w.volume = None
    w.reached("delete_volume", since=start)


def ssh_keys(w: Walk) -> None:
    start, name = len(w.calls), f"{w.name}-key"
    made = ensure_ssh_key(w.cloud, SshKeySpec(name=name, public_key=w.public_key))
    assert made.action is Action.CREATE and w.cloud.find_ssh_key(name) is not None
    assert ensure_ssh_key_absent(w.cloud, name=name).changed and w.cloud.find_ssh_key(name) is None
    w.reached("create_ssh_key", "delete_ssh_key", since=start)


def instance_delete(w: Walk) -> None:
    start = len(w.calls)
    w.instance()
    assert ensure_instance_absent(w.cloud, name=w.name, **FAST).changed
    assert w.cloud.find_instance(w.name) is None
    w.reached("delete_instance", since=start)


def os_disk_size(w: Walk) -> None:
    live = w.instance()
    assert w.spec().os_disk_size_gb == OS_DISK_GB and w.cloud.os_disk_size_gb(live) == OS_DISK_GB


def stop_released(w: Walk) -> None:
    live, start = w.instance(), len(w.calls)
    running_rate = w.billed(live.id)
    released = ensure_instance_power(w.cloud, "stopped_disassociated", name=w.name, **FAST)
    stopped = w.instance()
    assert released.changed and stopped.status is Status.STOPPED and stopped.compute_released
    assert stopped.price_per_hour is not None and w.billed(live.id) == stopped.price_per_hour < running_rate
    started = ensure_instance_power(w.cloud, "started", name=w.name, **FAST)
    again = w.instance()
    assert started.action == "start" and again.status is Status.RUNNING and not again.compute_released
    assert w.billed(live.id) == running_rate
    w.reached("stop_instance_released", "start_instance", since=start)


def snapshot(w: Walk) -> None:
    live, start = w.instance(), len(w.calls)
    snap = w.cloud.snapshot_instance(live.id)
    kept = [i for i in holdings(w.emulator, w.provider) if i["kind"] == "snapshot" and i["id"] == snap]
    assert kept, f"snapshot {snap} is not on the account"
    w.kept += kept  # the API documents no snapshot delete: it stays, on purpose
    copy = ensure_instance(w.cloud, w.other("copy", image=snap), **FAST)
    assert copy.action is Action.CREATE and copy.after is not None
    booted = w.cloud.get_instance(copy.after.id)
    assert booted.image == snap and booted.status is Status.RUNNING
    assert ensure_instance_absent(w.cloud, name=booted.name, **FAST).changed
    w.reached("snapshot_instance", "create_instance", "delete_instance", since=start)


def password_reset(w: Walk) -> None:
    live, start = w.instance(), len(w.calls)
    assert w.created is not None
    first = w.cloud.reset_root_password(live.id)
    second = w.cloud.reset_root_password(live.id)  # each reset is a new password the API answered with
    old = {w.created.secrets.get("root_password"), PASSWORD}
    assert first and second and first != second and not {first, second} & old
    assert w.instance().status is Status.RUNNING
    w.reached("reset_root_password", since=start)


def add_key(w: Walk) -> None:
    live, start = w.instance(), len(w.calls)
    key = Ed25519PrivateKey.generate().public_key()
    added = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    w.cloud.add_instance_ssh_key(live.id, added)
    with w.emulator.world.lock:
        authorized = w.emulator.world.private(w.provider, live.id)["ssh"].authorized_keys
    assert added in authorized, "the instance does not authorize the added key"
    w.reached("add_instance_ssh_key", since=start)


def spot(w: Walk) -> None:
    start, orders = len(w.calls), w.orders()
    made = ensure_instance(w.cloud, w.other("spot", spot=True), **FAST)
    assert made.action is Action.CREATE and made.after is not None and w.orders() == orders + 1
    live = w.cloud.get_instance(made.after.id)
    assert live.spot is True and live.status is Status.RUNNING and w.instance().spot is False
    assert ensure_instance_absent(w.cloud, name=live.name, **FAST).changed
    w.reached("create_instance", "delete_instance", since=start)


def stock_check(w: Walk) -> None:
    spec, start = w.other("no-stock"), len(w.calls)
    assert spec.location is not None
    w.emulator.world.set_capacity(w.provider, spec.instance_type, spec.location, False)
    try:
        orders = w.orders()
        with pytest.raises(gpucloud.NoCapacity) as refused:
            ensure_instance(w.cloud, spec, **FAST)
        assert w.orders() == orders, "an order was sent for a type out of stock"
    finally:
        w.emulator.world.set_capacity(w.provider, spec.instance_type, spec.location, True)
    elsewhere = refused.value.details["alternatives"]
    assert elsewhere and spec.location not in elsewhere and all(loc in str(refused.value) for loc in elsewhere)
    assert w.cloud.find_instance(spec.name) is None
    w.reached("create_instance", since=start)


def bare_metal(w: Walk) -> None:
    start, name = len(w.calls), f"{w.name}-bm"
    spec = InstanceSpec(name=name, kind="bare_metal", instance_type=BARE_METAL[w.provider])
    made = ensure_instance(w.cloud, spec, **FAST)
    assert made.action is Action.CREATE and made.after is not None
    live = w.cloud.get_instance(made.after.id)
    assert live.kind == "bare_metal" and live.status is Status.RUNNING
    assert ensure_instance_absent(w.cloud, name=name, **FAST).changed and w.cloud.find_instance(name) is None
    w.reached("create_instance", "delete_instance", since=start)


# Column label -> round trip, in the order a walk runs them (create options first, the delete last).
ROUND_TRIPS: dict[str, Callable[[Walk], None]] = {
    "instance create": instance_create,
    "tags at create": tags_at_create,
    "startup script": startup_script,
    "root password": root_password,
    "SSH keys by content": keys_by_content,
    "volumes at create": volumes_at_create,
    "choose location": choose_location,
    "OS disk size": os_disk_size,
    "offers/prices": offers,
    "images": images,
    "locations": locations,
    "list": instance_list,
    "start/stop": start_stop,
    "reboot": reboot,
    "resize": resize,
    "tag update": tag_update,
    "rename": rename,
    "stop, storage-only billing": stop_released,
    "password reset": password_reset,
    "add key to instance": add_key,
    "snapshot": snapshot,
    "spot": spot,
    "stock check before create": stock_check,
    "bare metal": bare_metal,
    "volume create": volume_create,
    "volume types": volume_types,
    "volume attach": volume_attach,
    "volume resize": volume_resize,
    "volume rename": volume_rename,
    "volume delete": volume_delete,
    "ssh key create/delete": ssh_keys,
    "delete": instance_delete,
}


def claimed(provider: str) -> list[str]:
    """The columns whose cell in ``provider``'s rows of both tables is not "no"."""
    title = provider_class(provider).title
    columns: list[str] = []
    for options, labels in ((False, TABLE_COLUMNS), (True, OPTION_COLUMNS)):
        headers, rows = capability_table(options=options)
        row = dict(zip(headers, next(r for r in rows if r[0] == title), strict=True))
        columns += [label for label, _ in labels if row[label] != "no"]
    return columns


def test_every_claimed_cell_has_a_round_trip() -> None:
    missing = sorted({(p, c) for p in implemented() for c in claimed(p) if c not in ROUND_TRIPS})
    assert not missing, f"capability cells claimed without a round trip through ensure: {missing}"


@pytest.fixture
def walk(
    overrides: dict[str, dict[str, object]], emulator: EmulatorServer, keypair: tuple, request: pytest.FixtureRequest
) -> Iterator[Walk]:
    with connect(overrides, request.param) as cloud:
        state = Walk(cloud, emulator, keypair[1])
        spied(cloud, state.calls, state.bodies)
        yield state


@pytest.mark.parametrize("walk", implemented(), indirect=True)
def test_the_table_row_holds_through_ensure(walk: Walk) -> None:
    before = holdings(walk.emulator, walk.provider)
    cells = set(claimed(walk.provider))
    assert {"instance create", "delete"} <= cells, "the walk needs instances"
    for column, round_trip in ROUND_TRIPS.items():
        if column in cells:
            round_trip(walk)
    if walk.boot_volume is not None:
        ensure_volume_absent(walk.cloud, volume_id=walk.boot_volume)
    assert settle(walk.emulator, walk.provider, before + walk.kept) == []

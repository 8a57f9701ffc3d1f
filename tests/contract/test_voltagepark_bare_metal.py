"""Voltage Park bare metal (``kind: bare_metal``) and ``stopped_disassociated`` through gpucloud.ensure, against the
emulator: the same lifecycle, check-mode, fault and leftover guarantees as VMs, with real SSH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud import InstanceSpec, Status, ensure, sshexec
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.reconcile import Action
from tests.ledger import holdings, settle

from ..conftest import connect, providers_without
from .specs import INSTANCE

BARE_METAL = "baremetal-8x-h100-sxm5-80gb-infiniband"


def _spec(name: str, **extra: Any) -> InstanceSpec:
    return InstanceSpec(**{"name": name, "instance_type": BARE_METAL, "kind": "bare_metal", **extra})


def _vp_requests(emulator: EmulatorServer) -> int:
    return emulator.world.request_count("voltagepark")


def test_bare_metal_offers_are_whole_nodes(overrides: dict[str, Any]) -> None:
    with connect(overrides, "voltagepark") as vp:
        offers = {o.instance_type: o for o in vp.list_offers() if o.kind == "bare_metal"}
        vm_offers = [o for o in vp.list_offers() if o.kind == "vm"]
    assert set(offers) == {BARE_METAL, BARE_METAL.replace("infiniband", "ethernet")}
    for offer in offers.values():
        assert offer.gpu_count == 8 and offer.price_per_hour and offer.available
    assert vm_offers and all(not o.instance_type.startswith("baremetal-") for o in vm_offers)


def test_bare_metal_lifecycle_through_ensure_with_real_ssh(
    overrides: dict[str, Any], emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    private, public = keypair
    before = holdings(emulator, "voltagepark")
    spec = _spec("bm-life", ssh_keys=(public,), tags={"team": "research"})
    with connect(overrides, "voltagepark") as vp:
        try:
            predicted = ensure.ensure_instance(vp, spec, check_mode=True)
            assert predicted.changed and predicted.action is Action.CREATE and vp.find_instance(spec.name) is None

            made = ensure.ensure_instance(vp, spec, wait_for_ssh=True, wait_timeout=60)
            rental = made.after
            assert rental is not None and made.action is Action.CREATE
            assert (rental.kind, rental.status, rental.gpu_count) == ("bare_metal", Status.RUNNING, 8)
            assert rental.instance_type == BARE_METAL and rental.tags == {"team": "research"}
            assert sshexec.run(rental, "echo metal", identity_file=private).strip() == "metal"
            billed = {i["id"]: i for i in holdings(emulator, "voltagepark")}
            assert billed[rental.id]["hourly_usd"] == rental.price_per_hour

            again = ensure.ensure_instance(vp, spec, wait_timeout=60)  # no duplicate, nothing to do
            assert (again.changed, again.after.id if again.after else None) == (False, rental.id)
            assert [i.id for i in vp.list_instances() if i.name == spec.name] == [rental.id]
            renamed = ensure.ensure_instance(vp, spec.model_copy(update={"tags": {"team": "infra"}}))
            assert renamed.action is Action.UPDATE and renamed.after and renamed.after.tags == {"team": "infra"}

            stopped = ensure.ensure_instance_power(vp, "stopped", name=spec.name, wait_timeout=60)
            assert stopped.after is not None and stopped.after.status is Status.STOPPED
            assert ensure.ensure_instance_power(vp, "stopped", name=spec.name).changed is False
            with pytest.raises(gpucloud.Unsupported, match="stopped_disassociated"):
                ensure.ensure_instance_power(vp, "stopped_disassociated", name=spec.name)
            started = ensure.ensure_instance_power(vp, "started", name=spec.name, wait_for_ssh=True, wait_timeout=60)
            assert started.after is not None and started.after.status is Status.RUNNING
            rebooted = ensure.ensure_instance_power(vp, "restarted", name=spec.name, wait_for_ssh=True, wait_timeout=60)
            assert rebooted.action == "restart" and rebooted.after and rebooted.after.status is Status.RUNNING
            assert any(r.path.endswith("/reboot") for r in emulator.world.requests if r.provider == "voltagepark")
            assert sshexec.run(rebooted.after, "echo back", identity_file=private).strip() == "back"
        finally:
            gone = ensure.ensure_instance_absent(vp, name=spec.name, wait_timeout=60)
        assert gone.changed and vp.find_instance(spec.name) is None
    assert settle(emulator, "voltagepark", before) == []


def test_bare_metal_check_mode_sends_no_write(overrides: dict[str, Any], emulator: EmulatorServer) -> None:
    start = len(emulator.world.requests)
    with connect(overrides, "voltagepark") as vp:
        (offer,) = [o for o in vp.list_offers() if o.instance_type == BARE_METAL]
        where = next(loc.location for loc in offer.locations if loc.available)
        outcome = ensure.ensure_instance(vp, _spec("bm-check", location=where), check_mode=True)
        assert outcome.action is Action.CREATE and outcome.after is None
        with pytest.raises(gpucloud.ValidationError) as info:  # a UUID, but no location of the catalogue
            ensure.ensure_instance(vp, _spec("bm-check", location="00000000-0000-4000-8000-000000000000"))
        assert info.value.field == "location"
    sent = [r for r in emulator.world.requests[start:] if r.provider == "voltagepark"]
    assert sent and all(r.method == "GET" for r in sent)


def test_lost_bare_metal_create_is_adopted_not_repeated(overrides: dict[str, Any], emulator: EmulatorServer) -> None:
    before = holdings(emulator, "voltagepark")
    spec = _spec("bm-lost")
    with connect(overrides, "voltagepark") as vp:
        try:
            emulator.world.set_faults(drop_create_rate=1.0)  # committed, answer cut off
            made = ensure.ensure_instance(vp, spec, wait=False)
            emulator.world.set_faults(drop_create_rate=0.0)
            assert made.after is not None and made.after.kind == "bare_metal"
            assert [i.id for i in vp.list_instances() if i.name == spec.name] == [made.after.id]
            drops = [r for r in emulator.world.requests if r.fault == "drop" and r.path.startswith("/bare-metal")]
            assert drops, "the create's answer was never cut off: the test proves nothing"
        finally:
            emulator.world.set_faults(drop_create_rate=0.0)
            ensure.ensure_instance_absent(vp, name=spec.name, wait_timeout=60)
    assert settle(emulator, "voltagepark", before) == []


def test_no_bare_metal_capacity_is_no_capacity(overrides: dict[str, Any], emulator: EmulatorServer) -> None:
    emulator.world.set_capacity("voltagepark", "bare-metal-ethernet", None, False)
    try:
        with connect(overrides, "voltagepark") as vp:
            spec = _spec("bm-full", instance_type=BARE_METAL.replace("infiniband", "ethernet"))
            with pytest.raises(gpucloud.NoCapacity):
                vp.create_instance(spec)
            assert vp.find_instance(spec.name) is None
    finally:
        emulator.world.set_capacity("voltagepark", "bare-metal-ethernet", None, True)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"instance_type": "1x-h100-sxm5-80gb"}, "instance_type"),  # a VM shape with kind bare_metal
        ({"instance_type": "baremetal-4x-h100-sxm5-80gb-infiniband"}, "instance_type"),  # not whole nodes
        ({"password": "long-enough-secret"}, "password"),
        ({"image": "Ubuntu 22.04 LTS"}, "image"),
        ({"location": "Seattle"}, "location"),
        ({"kind": "vm"}, "kind"),  # a bare-metal type with kind vm
    ],
)
def test_bad_bare_metal_specs_fail_before_any_request(
    overrides: dict[str, Any], emulator: EmulatorServer, fields: dict[str, Any], field: str
) -> None:
    spec = InstanceSpec(**{"name": "bm-bad", "instance_type": BARE_METAL, "kind": "bare_metal", **fields})
    with connect(overrides, "voltagepark") as vp:
        sent = _vp_requests(emulator)
        with pytest.raises(gpucloud.ValidationError) as info:
            ensure.ensure_instance(vp, spec)
        assert info.value.field == field
        assert _vp_requests(emulator) == sent


@pytest.mark.parametrize("provider", providers_without(Capability.INSTANCE_BARE_METAL))
def test_kind_bare_metal_elsewhere_is_unsupported_before_any_request(
    overrides: dict[str, Any], emulator: EmulatorServer, provider: str
) -> None:
    spec = InstanceSpec(name="bm-elsewhere", kind="bare_metal", **INSTANCE[provider])
    start = emulator.world.request_count(provider)
    with connect(overrides, provider) as cloud, pytest.raises(gpucloud.Unsupported, match="bare-metal"):
        ensure.ensure_instance(cloud, spec)
    assert emulator.world.request_count(provider) == start


def test_stopped_disassociated_drops_the_bill_to_storage(overrides: dict[str, Any], emulator: EmulatorServer) -> None:
    before = holdings(emulator, "voltagepark")
    spec = InstanceSpec(name="vm-released", **INSTANCE["voltagepark"])

    def billed(instance_id: str) -> float:
        return float(next(i["hourly_usd"] for i in holdings(emulator, "voltagepark") if i["id"] == instance_id))

    with connect(overrides, "voltagepark") as vp:
        try:
            vm = ensure.ensure_instance(vp, spec, wait_timeout=60).after
            assert vm is not None
            running_rate = billed(vm.id)
            preview = ensure.ensure_instance_power(vp, "stopped_disassociated", name=spec.name, check_mode=True)
            assert preview.changed and preview.action == "stop_disassociated"
            assert vp.get_instance(vm.id).status is Status.RUNNING  # check mode changed nothing

            released = ensure.ensure_instance_power(vp, "stopped_disassociated", name=spec.name, wait_timeout=60)
            after = released.after
            assert after is not None and after.status is Status.STOPPED and after.compute_released
            assert after.raw_status == "StoppedDisassociated"
            assert billed(vm.id) == after.price_per_hour < running_rate
            again = ensure.ensure_instance_power(vp, "stopped_disassociated", name=spec.name)
            assert not again.changed
            assert not ensure.ensure_instance_power(vp, "stopped", name=spec.name).changed  # it is stopped

            started = ensure.ensure_instance_power(vp, "started", name=spec.name, wait_timeout=60)
            assert started.after is not None and not started.after.compute_released
            assert billed(vm.id) == running_rate
        finally:
            ensure.ensure_instance_absent(vp, name=spec.name, wait_timeout=60)
    assert settle(emulator, "voltagepark", before) == []


@pytest.mark.parametrize("provider", providers_without(Capability.INSTANCE_STOP_RELEASED))
def test_stopped_disassociated_elsewhere_is_unsupported_before_any_request(
    overrides: dict[str, Any], emulator: EmulatorServer, provider: str
) -> None:
    start = emulator.world.request_count(provider)
    with connect(overrides, provider) as cloud, pytest.raises(gpucloud.Unsupported, match="storage only"):
        ensure.ensure_instance_power(cloud, "stopped_disassociated", name="anything")
    assert emulator.world.request_count(provider) == start

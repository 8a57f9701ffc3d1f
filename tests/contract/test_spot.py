"""DataCrunch spot instances, OS disk size, the stock check before a create, and hibernate (refused).

End to end against the emulator over HTTP, through ``gpucloud.ensure`` (what both front-ends call). The
emulator's control API discontinues a spot instance the way the real cloud takes one back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import gpucloud
from gpucloud import InstanceSpec, Status
from gpucloud.capabilities import Capability
from gpucloud.config import load_config
from gpucloud.emulator import EmulatorServer
from gpucloud.ensure import ensure_instance, ensure_instance_absent, ensure_instance_power
from gpucloud.providers import provider_class
from gpucloud.reconcile import Action
from gpucloud.waiters import ssh_banner
from tests.ledger import holdings, settle

from ..conftest import connect, providers_without
from .specs import INSTANCE

DC = INSTANCE["datacrunch"]
FAST = {"wait_timeout": 60.0}


@pytest.fixture
def dc(overrides: dict[str, dict[str, object]]) -> Iterator[gpucloud.Provider]:
    with connect(overrides, "datacrunch", poll_interval=0.1) as cloud:
        yield cloud


def discontinue(emulator: EmulatorServer, instance_id: str) -> httpx.Response:
    """What the cloud does when it takes a spot instance back (the emulator's control API)."""
    return httpx.post(
        f"{emulator.url}/_emulator/datacrunch/discontinue",
        json={"instance_id": instance_id},
        headers=emulator.control_headers,
    )


def creates(emulator: EmulatorServer) -> list[Any]:
    requests = emulator.world.requests
    return [r for r in requests if r.provider == "datacrunch" and (r.method, r.path) == ("POST", "/instances")]


def test_spot_create_bills_the_spot_price_and_offers_show_both_prices(
    dc: gpucloud.Provider, emulator: EmulatorServer
) -> None:
    offer = next(o for o in dc.list_offers() if o.instance_type == DC["instance_type"])
    assert offer.price_per_hour is not None and offer.spot_price_per_hour is not None
    assert offer.spot_price_per_hour < offer.price_per_hour
    spec = InstanceSpec(name="spot-price", spot=True, **DC)
    outcome = ensure_instance(dc, spec, **FAST)
    try:
        assert outcome.after is not None and outcome.after.spot is True
        assert outcome.after.price_per_hour == offer.spot_price_per_hour
        assert outcome.after.raw["is_spot"] is True and outcome.after.raw["contract"] == "SPOT"
        assert ensure_instance(dc, spec, **FAST).action is Action.NONE  # spot is reported back: no drift
        unmanaged = spec.model_copy(update={"spot": None})  # not given: the existing instance is left as it is
        assert ensure_instance(dc, unmanaged, check_mode=True, **FAST).action is Action.NONE
    finally:
        ensure_instance_absent(dc, name=spec.name, **FAST)


def test_changing_spot_or_os_disk_size_is_a_labelled_replace(dc: gpucloud.Provider) -> None:
    spec = InstanceSpec(name="spot-replace", os_disk_size_gb=60, **DC)
    created = ensure_instance(dc, spec, **FAST).after
    try:
        assert created is not None and created.spot is False
        os_volume = dc.get_volume(created.raw["os_volume_id"])
        assert os_volume.size_gb == 60 and os_volume.raw["is_os_volume"] is True
        assert dc.os_disk_size_gb(created) == 60
        for change, field in (({"spot": True}, "spot"), ({"os_disk_size_gb": 100}, "os_disk_size_gb")):
            wanted = spec.model_copy(update=change)
            with pytest.raises(gpucloud.Conflict, match=field) as info:
                ensure_instance(dc, wanted, check_mode=True, **FAST)
            assert info.value.details == {"fields": [field]}
            preview = ensure_instance(dc, wanted, check_mode=True, force_replace=True, **FAST)
            assert preview.action is Action.REPLACE and preview.plan.replace_fields == [field]
        assert dc.get_instance(created.id).status is Status.RUNNING  # check mode changed nothing
        replaced = ensure_instance(dc, spec.model_copy(update={"spot": True}), force_replace=True, **FAST).after
        assert replaced is not None and replaced.spot is True and replaced.id != created.id
        assert dc.os_disk_size_gb(replaced) == 60
    finally:
        ensure_instance_absent(dc, name=spec.name, **FAST)


def test_no_stock_fails_fast_naming_where_the_type_is(dc: gpucloud.Provider, emulator: EmulatorServer) -> None:
    world = emulator.world
    itype = DC["instance_type"]
    spec = InstanceSpec(name="no-stock", spot=True, **DC)
    world.set_capacity("datacrunch", itype, "FIN-01", False)
    world.set_capacity("datacrunch", itype, "FIN-03", False)
    try:
        before = len(creates(emulator))
        with pytest.raises(gpucloud.NoCapacity) as info:
            ensure_instance(dc, spec, **FAST)
        assert "FIN-01" in str(info.value) and "FIN-02, ICE-01" in str(info.value)
        assert info.value.details["alternatives"] == ["FIN-02", "ICE-01"]
        assert len(creates(emulator)) == before, "no order may be sent for a type out of stock"
        world.set_capacity("datacrunch", itype, None, False)
        with pytest.raises(gpucloud.NoCapacity, match="nowhere"):
            ensure_instance(dc, spec, **FAST)
        assert dc.find_instance(spec.name) is None
    finally:
        world.set_capacity("datacrunch", itype, None, True)
    moved = ensure_instance(dc, spec.model_copy(update={"location": "FIN-02"}), **FAST).after
    assert moved is not None and moved.location == "FIN-02"
    ensure_instance_absent(dc, name=spec.name, **FAST)


def test_discontinued_spot_is_reported_then_recreated_when_asked(
    dc: gpucloud.Provider, emulator: EmulatorServer
) -> None:
    before = holdings(emulator, "datacrunch")
    spec = InstanceSpec(name="spot-gone", spot=True, **DC)
    first = ensure_instance(dc, spec, wait_for_ssh=True, **FAST).after
    assert first is not None
    assert discontinue(emulator, first.id).status_code == 200
    assert discontinue(emulator, first.id).status_code == 400, "a discontinued instance is not live any more"
    gone = dc.get_instance(first.id)
    assert gone.status is Status.DISCONTINUED and gone.raw_status == "discontinued"
    assert ssh_banner(first.public_ip or "", first.ssh_port or 22, timeout=1) is None

    reported = ensure_instance(dc, spec, **FAST)  # by default: reported as it is, nothing sent
    assert reported.changed is False and reported.after is not None
    assert reported.after.status is Status.DISCONTINUED
    with pytest.raises(gpucloud.Conflict, match="recreate_discontinued"):
        ensure_instance_power(dc, "started", name=spec.name, **FAST)

    preview = ensure_instance(dc, spec, check_mode=True, recreate_discontinued=True, **FAST)
    assert preview.action is Action.REPLACE and preview.plan.replace_fields == ["status"]
    assert dc.get_instance(first.id).status is Status.DISCONTINUED
    again = ensure_instance(dc, spec, recreate_discontinued=True, wait_for_ssh=True, **FAST)
    assert again.action is Action.REPLACE and again.after is not None
    assert again.after.status is Status.RUNNING and again.after.id != first.id and again.after.spot
    assert [i.id for i in dc.list_instances() if i.name == spec.name] == [again.after.id]
    ensure_instance_absent(dc, name=spec.name, **FAST)
    assert settle(emulator, "datacrunch", before) == []


@pytest.mark.parametrize("policy", ["keep_detached", "move_to_trash", "delete_permanently"])
def test_teardown_of_a_discontinued_spot_leaves_nothing(
    dc: gpucloud.Provider, emulator: EmulatorServer, policy: str
) -> None:
    before = holdings(emulator, "datacrunch")
    spec = InstanceSpec(name=f"spot-td-{policy[:4]}", spot=True, os_disk_size_gb=55, on_spot_discontinue=policy, **DC)
    created = ensure_instance(dc, spec, **FAST).after
    assert created is not None
    os_volume_id = created.raw["os_volume_id"]
    assert discontinue(emulator, created.id).status_code == 200
    kept = [v.id for v in dc.list_volumes()]
    assert (os_volume_id in kept) == (policy == "keep_detached")
    ledger = {i["id"]: i for i in holdings(emulator, "datacrunch")}
    assert ledger[created.id]["billed"] is False, "a discontinued instance is no longer billed"
    outcome = ensure_instance_absent(dc, name=spec.name, **FAST)
    assert outcome.changed and outcome.before is not None and outcome.before.status is Status.DISCONTINUED
    assert dc.find_instance(spec.name) is None
    assert settle(emulator, "datacrunch", before) == []


def test_spot_create_then_destroy_leaves_nothing(dc: gpucloud.Provider, emulator: EmulatorServer) -> None:
    before = holdings(emulator, "datacrunch")
    spec = InstanceSpec(name="spot-td", spot=True, os_disk_size_gb=70, on_spot_discontinue="move_to_trash", **DC)
    ensure_instance(dc, spec, **FAST)
    ensure_instance_absent(dc, name=spec.name, **FAST)
    assert settle(emulator, "datacrunch", before) == []


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"spot": True, "on_spot_discontinue": "keep", "os_disk_size_gb": 50}, "on_spot_discontinue", "keep_detached"),
        ({"on_spot_discontinue": "keep_detached", "os_disk_size_gb": 50}, "on_spot_discontinue", "spot: true"),
        ({"spot": True, "on_spot_discontinue": "keep_detached"}, "os_disk_size_gb", "os_volume"),
    ],
)
def test_bad_spot_options_fail_before_any_request(
    dc: gpucloud.Provider, emulator: EmulatorServer, options: dict[str, Any], field: str, message: str
) -> None:
    before = emulator.world.request_count()
    with pytest.raises(gpucloud.ValidationError, match=message) as info:
        ensure_instance(dc, InstanceSpec(name="bad-spot", **{**DC, **options}), **FAST)
    assert info.value.field == field
    assert emulator.world.request_count() == before


def test_os_disk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="os_disk_size_gb"):
        InstanceSpec(name="x", instance_type="t", os_disk_size_gb=0)


@pytest.mark.parametrize("provider", ["datacrunch", *providers_without(Capability.INSTANCE_SPOT)])
def test_hibernate_is_unsupported_everywhere(overrides: dict[str, dict[str, object]], provider: str) -> None:
    with connect(overrides, provider) as cloud, pytest.raises(gpucloud.Unsupported, match="hibernate") as info:
        ensure_instance_power(cloud, "hibernated", name="any")
    assert "state=stopped" in str(info.value)


class _StockGoesAfterTheCheck(httpx.HTTPTransport):
    """The type sells out between the stock check and the order (the emulator's switch flips in between)."""

    def __init__(self, emulator: EmulatorServer, instance_type: str) -> None:
        super().__init__()
        self.world, self.instance_type = emulator.world, instance_type

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if "/instance-availability/" in request.url.path:
            self.world.set_capacity("datacrunch", self.instance_type, None, False)
        return response


def test_stock_gone_between_check_and_order_is_no_capacity(
    overrides: dict[str, dict[str, object]], emulator: EmulatorServer
) -> None:
    spec = InstanceSpec(name="stock-race", **DC)
    config = load_config("datacrunch", dict(overrides["datacrunch"]))
    cloud = provider_class("datacrunch")(config, http_transport=_StockGoesAfterTheCheck(emulator, DC["instance_type"]))
    before = len(creates(emulator))
    try:
        with cloud, pytest.raises(gpucloud.NoCapacity) as info:
            ensure_instance(cloud, spec, **FAST)
        assert info.value.status_code == 503 and info.value.code == "service_unavailable"
        assert len(creates(emulator)) == before + 1, "the refused order is not sent again"
    finally:
        emulator.world.set_capacity("datacrunch", DC["instance_type"], None, True)
    with connect(overrides, "datacrunch") as fresh:
        assert fresh.find_instance(spec.name) is None

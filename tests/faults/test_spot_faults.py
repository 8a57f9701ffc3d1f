"""DataCrunch spot creates under faults: a lost create answer is adopted (one spot instance, never two), and
5xx bursts on the stock check before the create are retried like any read, without an order being lost."""

from __future__ import annotations

from typing import Any

from gpucloud import InstanceSpec, ensure
from gpucloud.emulator import EmulatorServer, FaultRule
from tests.contract.specs import INSTANCE

from .conftest import Tally, faults_since, fconnect

Overrides = dict[str, dict[str, Any]]
AVAILABILITY = "/instance-availability"


def _posts(server: EmulatorServer, start: int) -> list[Any]:
    return [
        r
        for r in server.world.requests[start:]
        if r.provider == "datacrunch" and (r.method, r.path) == ("POST", "/instances")
    ]


def test_lost_spot_create_is_adopted_once(fault_emulator: EmulatorServer, fault_overrides: Overrides) -> None:
    world = fault_emulator.world
    spec = InstanceSpec(name="spot-lost", spot=True, os_disk_size_gb=50, **INSTANCE["datacrunch"])
    with fconnect(fault_overrides, "datacrunch") as cloud:
        start = len(world.requests)
        world.set_faults(drop_create_rate=1.0)  # the server commits every create, the client never hears back
        try:
            outcome = ensure.ensure_instance(cloud, spec, wait_timeout=30)
        finally:
            world.set_faults(drop_create_rate=0.0)
        try:
            assert outcome.after is not None and outcome.after.spot is True
            assert [i.id for i in cloud.list_instances() if i.name == spec.name] == [outcome.after.id]
            assert len(_posts(fault_emulator, start)) == 1, "the lost create is adopted, not sent again"
            assert cloud.os_disk_size_gb(outcome.after) == 50
            Tally(operations=1, faults=faults_since(fault_emulator, start), duplicates=0, orphans=0).publish()
        finally:
            ensure.ensure_instance_absent(cloud, name=spec.name, wait_timeout=30)


def test_stock_check_survives_a_5xx_burst(fault_emulator: EmulatorServer, fault_overrides: Overrides) -> None:
    world = fault_emulator.world
    spec = InstanceSpec(name="spot-burst", spot=True, **INSTANCE["datacrunch"])
    with fconnect(fault_overrides, "datacrunch", max_retries=8) as cloud:
        start = len(world.requests)
        # The first two stock checks answer 500, and every third read besides (creates are spared: their 5xx
        # have tests of their own). Counted, not diced, so every run fails the same requests.
        burst = FaultRule("error", methods=("GET",), path=AVAILABILITY, nth=(1, 2))
        world.set_faults(rules=(burst, FaultRule("error", methods=("GET",), every=3)))
        try:
            outcome = ensure.ensure_instance(cloud, spec, wait=False, wait_timeout=60)
        finally:
            world.set_faults(rules=())
        try:
            checks = [r for r in world.requests[start:] if r.path.startswith(AVAILABILITY)]
            assert [r.status for r in checks[:2]] == [500, 500] and checks[2].status == 200, checks
            assert outcome.after is not None and outcome.after.spot is True
            assert len(_posts(fault_emulator, start)) == 1
            assert [i.id for i in cloud.list_instances() if i.name == spec.name] == [outcome.after.id]
            Tally(operations=1, faults=faults_since(fault_emulator, start), duplicates=0, orphans=0).publish()
        finally:
            ensure.ensure_instance_absent(cloud, name=spec.name, wait_timeout=30)

"""Voltage Park bare metal (``kind``) and ``power_state`` (``stopped_disassociated``) through the real Pulumi
dynamic-provider gRPC server: preview refusals, create, no-op diff, in-place power changes, destroy, nothing left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud.emulator import EmulatorServer
from tests.ledger import holdings, settle

from ..conftest import connect
from ..contract.specs import INSTANCE
from .conftest import PROVIDERS, TYPES, unique, up
from .harness import DynamicProviderHarness, reveal

Overrides = dict[str, dict[str, object]]
BARE_METAL = "baremetal-8x-h100-sxm5-80gb-infiniband"


def _writes(emulator: EmulatorServer) -> int:
    return sum(
        1
        for r in emulator.world.requests
        if r.provider == "voltagepark" and r.method in ("POST", "PUT", "PATCH", "DELETE")
    )


def _failures(harness: DynamicProviderHarness, props: dict[str, Any]) -> list[tuple[str, str]]:
    _, failures, _ = harness.preview(props["name"], PROVIDERS["instance"], props, TYPES["instance"])
    return failures


def test_bare_metal_instance_lifecycle(
    harness: DynamicProviderHarness, emulator: EmulatorServer, overrides: Overrides, keypair: tuple[Path, str]
) -> None:
    before = holdings(emulator, "voltagepark")
    name = unique("pl-bm")
    props: dict[str, Any] = {
        "provider": "voltagepark", "name": name, "kind": "bare_metal", "instance_type": BARE_METAL,
        "ssh_keys": [keypair[1]], "wait_for_ssh": True, "wait_timeout": 60,
    }  # fmt: skip
    with connect(overrides, "voltagepark") as cloud:
        created = up(harness, "instance", name, props)
        state = created.state
        out = reveal(state.outputs)
        live = cloud.find_instance(name)
        assert live is not None and live.id == state.id and live.kind == "bare_metal"
        assert (out["kind"], out["status"], out["gpu_count"]) == ("bare_metal", "running", 8)
        assert gpucloud.waiters.ssh_banner(out["ssh_host"], int(out["ssh_port"]), timeout=5)

        writes = _writes(emulator)
        same = up(harness, "instance", name, props, state)
        assert same.operation == "same" and _writes(emulator) == writes

        stopped = up(harness, "instance", name, {**props, "power_state": "stopped"}, state)
        assert stopped.operation == "update" and stopped.diff is not None and stopped.diff.replaces == []
        assert reveal(stopped.state.outputs)["status"] == "stopped"
        assert cloud.get_instance(state.id).status is gpucloud.Status.STOPPED
        state = stopped.state

        # A VM would be another instance: the kind change replaces it (checked in preview, nothing sent).
        writes = _writes(emulator)
        _, _, diff = harness.preview(
            name, PROVIDERS["instance"], {**props, "kind": "vm", **INSTANCE["voltagepark"]}, TYPES["instance"], state
        )
        assert diff is not None and "kind" in diff.replaces and _writes(emulator) == writes

        harness.destroy(state)
        assert cloud.find_instance(name) is None
    assert settle(emulator, "voltagepark", before) == []


def test_power_state_stopped_disassociated_lowers_the_bill(
    harness: DynamicProviderHarness, emulator: EmulatorServer, overrides: Overrides
) -> None:
    before = holdings(emulator, "voltagepark")
    name = unique("pl-released")
    props: dict[str, Any] = {"provider": "voltagepark", "name": name, "wait_timeout": 60, **INSTANCE["voltagepark"]}

    def billed(instance_id: str) -> float:
        return float(next(i["hourly_usd"] for i in holdings(emulator, "voltagepark") if i["id"] == instance_id))

    state = up(harness, "instance", name, props).state
    running_rate = billed(state.id)
    released = up(harness, "instance", name, {**props, "power_state": "stopped_disassociated"}, state)
    assert released.operation == "update" and released.diff is not None and released.diff.replaces == []
    out = reveal(released.state.outputs)
    assert (out["status"], out["raw_status"], out["compute_released"]) == ("stopped", "StoppedDisassociated", True)
    assert billed(state.id) == out["price_per_hour"] < running_rate
    writes = _writes(emulator)
    again = up(harness, "instance", name, {**props, "power_state": "stopped_disassociated"}, released.state)
    assert again.operation == "same" and _writes(emulator) == writes

    running = up(harness, "instance", name, {**props, "power_state": "running"}, released.state)
    assert reveal(running.state.outputs)["status"] == "running" and billed(state.id) == running_rate
    harness.destroy(running.state)
    assert settle(emulator, "voltagepark", before) == []


@pytest.mark.parametrize(
    ("props", "prop", "reason"),
    [
        ({"provider": "datacrunch", "kind": "bare_metal", **INSTANCE["datacrunch"]}, "kind", "bare-metal"),
        ({"provider": "datacrunch", "power_state": "stopped_disassociated", **INSTANCE["datacrunch"]},
         "power_state", "storage only"),
        ({"provider": "voltagepark", "kind": "bare_metal", "instance_type": BARE_METAL,
          "power_state": "stopped_disassociated"}, "power_state", "bare_metal instances"),
        ({"provider": "voltagepark", "kind": "metal", **INSTANCE["voltagepark"]}, "kind", "vm"),
        ({"provider": "voltagepark", "power_state": "paused", **INSTANCE["voltagepark"]}, "power_state", "running"),
    ],
)  # fmt: skip
def test_preview_refuses_kind_and_power_state_that_cannot_be(
    harness: DynamicProviderHarness, emulator: EmulatorServer, props: dict[str, Any], prop: str, reason: str
) -> None:
    start = emulator.world.request_count(props["provider"])
    failures = _failures(harness, {"name": unique("pl-refused"), **props})
    assert [f for f in failures if f[0] == prop and reason in f[1]], failures
    assert emulator.world.request_count(props["provider"]) == start

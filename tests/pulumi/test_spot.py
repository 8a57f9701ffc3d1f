"""DataCrunch spot instances through the real dynamic-provider gRPC server: create, no-op, labelled replaces of
the create-only inputs, Check refusing spot where it is unsupported, a discontinued instance kept in the state
until ``recreate_discontinued`` replaces it, and destroy leaving nothing in the account."""

from __future__ import annotations

from typing import Any

import httpx

from gpucloud.emulator import EmulatorServer
from tests.ledger import holdings, settle

from ..conftest import connect
from ..contract.specs import INSTANCE
from .conftest import PROVIDERS, TYPES, unique, up
from .harness import DynamicProviderHarness, reveal

Overrides = dict[str, dict[str, object]]


def _writes(emulator: EmulatorServer) -> int:
    return sum(
        1
        for r in emulator.world.requests
        if r.provider == "datacrunch" and r.method in ("POST", "PUT", "DELETE") and "oauth" not in r.path
    )


def test_spot_instance_through_the_dynamic_provider(
    harness: DynamicProviderHarness, emulator: EmulatorServer, overrides: Overrides
) -> None:
    before = holdings(emulator, "datacrunch")
    name = unique("pl-spot")
    props: dict[str, Any] = {
        "provider": "datacrunch",
        "name": name,
        **INSTANCE["datacrunch"],
        "spot": True,
        "os_disk_size_gb": 60,
        "on_spot_discontinue": "keep_detached",
        "wait_timeout": 60,
    }
    with connect(overrides, "datacrunch") as cloud:
        created = up(harness, "instance", name, props)
        state = created.state
        out = reveal(state.outputs)
        assert created.steps == ["check", "create"] and out["spot"] is True and out["status"] == "running"
        live = cloud.get_instance(state.id)
        assert live.spot and cloud.os_disk_size_gb(live) == 60

        writes = _writes(emulator)
        assert up(harness, "instance", name, props, state).operation == "same"
        on_demand = {"spot": False, "on_spot_discontinue": None}
        for change, fields in (
            (on_demand, ["on_spot_discontinue", "spot"]),
            ({"os_disk_size_gb": 80}, ["os_disk_size_gb"]),
        ):
            _, failures, diff = harness.preview(
                name, PROVIDERS["instance"], {**props, **change}, TYPES["instance"], state
            )
            assert (
                not failures
                and diff is not None
                and diff.kind == "replace"
                and diff.replaces == fields
                and diff.delete_before_replace
            )
        assert _writes(emulator) == writes, "diffs and a no-op up write nothing"

        response = httpx.post(
            f"{emulator.url}/_emulator/datacrunch/discontinue",
            json={"instance_id": state.id},
            headers=emulator.control_headers,
        )
        assert response.status_code == 200, response.text
        refreshed = harness.refresh(state)
        assert refreshed is not None and reveal(refreshed.outputs)["status"] == "discontinued"
        kept = up(harness, "instance", name, props, refreshed)
        assert kept.operation == "same" and kept.state.id == state.id, "reported, not recreated, by default"
        assert _writes(emulator) == writes

        recreating = {**props, "recreate_discontinued": True}
        replaced = up(harness, "instance", name, recreating, kept.state)
        assert replaced.diff is not None and replaced.diff.replaces == ["status"]
        assert replaced.steps == ["check", "diff", "check", "delete", "create"]
        assert replaced.state.id != state.id and reveal(replaced.state.outputs)["status"] == "running"
        assert [i.id for i in cloud.list_instances() if i.name == name] == [replaced.state.id]

        harness.destroy(replaced.state)
        assert cloud.find_instance(name) is None
    assert settle(emulator, "datacrunch", before) == []


def test_check_refuses_spot_and_os_disk_size_where_unsupported(harness: DynamicProviderHarness) -> None:
    def failures(props: dict[str, Any]) -> list[tuple[str, str]]:
        return harness.preview(str(props["name"]), PROVIDERS["instance"], props, TYPES["instance"])[1]

    props = {"provider": "voltagepark", "name": "pl-no-spot", **INSTANCE["voltagepark"]}
    for extra, field in (({"spot": True}, "spot"), ({"os_disk_size_gb": 80}, "os_disk_size_gb")):
        found = failures({**props, **extra})
        assert [f[0] for f in found] == [field] and "voltagepark" in found[0][1], found
    bad = {"provider": "datacrunch", "name": "pl-bad", **INSTANCE["datacrunch"], "spot": True}
    found = failures({**bad, "on_spot_discontinue": "keep", "os_disk_size_gb": 50})
    assert [f[0] for f in found] == ["on_spot_discontinue"] and "keep_detached" in found[0][1], found

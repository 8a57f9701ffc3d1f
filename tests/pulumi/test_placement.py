"""Instance(provider="auto", gpu=..., max_price=...) over the real dynamic-provider protocol and the emulator:
preview names the offer, up fails over and records the choice, a rerun and a still-met change stay put, a change
the instance no longer meets is a replace, destroy leaves nothing."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from gpucloud import presentation
from gpucloud.emulator import EmulatorServer
from pulumi_gpucloud import ansible
from pulumi_gpucloud._placement import PlacementProvider
from tests import ledger

from ..conftest import connect
from .conftest import TYPES, unique
from .harness import DynamicProviderHarness, reveal
from .test_program_mocks import ExecutingMocks, emulator_in_process

__all__ = ["emulator_in_process"]  # the fixture, re-exported for pytest

H100_VP = "1x-h100-sxm5-80gb-26vcpu-120gb"
PROVIDER = PlacementProvider()
PLACED = ("voltagepark", "datacrunch")


def _props(name: str, **changes: Any) -> dict[str, Any]:
    return {
        "provider": "auto",
        "name": name,
        "gpu": "h100",
        "max_price": 3.0,
        "providers": list(PLACED),
        "images": {"datacrunch": "ubuntu-24.04-cuda-12.8-open-docker"},
        "wait_timeout": 120.0,
        **changes,
    }


@pytest.fixture
def account(emulator: EmulatorServer) -> Iterator[None]:
    before = {p: ledger.holdings(emulator, p) for p in PLACED}
    yield
    emulator.world.clear_stock()
    left = {p: ledger.settle(emulator, p, items) for p, items in before.items()}
    assert left == {p: [] for p in PLACED}


def test_preview_up_rerun_and_requirement_changes(
    harness: DynamicProviderHarness, emulator: EmulatorServer, account: None, overrides: dict[str, dict[str, object]]
) -> None:
    name = unique("pl-auto")
    checked, failures, _ = harness.preview(name, PROVIDER, _props(name), TYPES["instance"])
    assert failures == []
    assert checked["planned_offer"].startswith(f"voltagepark {H100_VP}")
    assert "capacity is known only at create time" in checked["planned_offer"]

    emulator.world.set_stock("voltagepark", H100_VP, left=0, stale_catalogue=True)
    made = harness.up(name, PROVIDER, _props(name), TYPES["instance"])
    state = made.state
    try:
        assert made.operation == "create"
        outs = reveal(state.outputs)
        assert (outs["provider"], outs["placed_provider"], outs["status"]) == ("auto", "datacrunch", "running")
        record = outs["placement"]
        assert [(a["provider"], a["error_class"]) for a in record["attempts"]] == [("voltagepark", "NoCapacity")]
        assert record["requirement"]["gpu"] == "h100"
        # The Ansible export lists it under the provider it went to, with the requirement it was placed for.
        host = ansible.inventory([outs])["all"]["hosts"][f"datacrunch-{name}"]
        assert host["gpucloud_provider"] == "datacrunch" and host["gpucloud_placement"] == record["requirement"]

        emulator.world.clear_stock()  # the cheaper offer is back: no move
        again = harness.up(name, PROVIDER, _props(name), TYPES["instance"], state)
        state = again.state
        assert again.operation == "same" and again.state.id == made.state.id, again.diff

        # Still met by the DataCrunch H100 ($2.29/h): an update that calls no API, the new requirement recorded.
        cheaper_cap = harness.up(name, PROVIDER, _props(name, max_price=2.5), TYPES["instance"], state)
        state = cheaper_cap.state
        assert cheaper_cap.operation == "update" and state.id == made.state.id
        assert reveal(cheaper_cap.state.outputs)["placement"]["requirement"]["max_price_per_hour"] == 2.5

        # Only Voltage Park allowed now: the DataCrunch instance no longer meets it -> replace.
        _, _, diff = harness.preview(
            name, PROVIDER, _props(name, max_price=2.5, providers=["voltagepark"]), TYPES["instance"], cheaper_cap.state
        )
        assert diff is not None and diff.kind == "replace" and diff.replaces == ["providers"]
        moved = harness.up(
            name, PROVIDER, _props(name, max_price=2.5, providers=["voltagepark"]), TYPES["instance"], cheaper_cap.state
        )
        state = moved.state
        assert moved.operation == "replace" and reveal(state.outputs)["placed_provider"] == "voltagepark"
        # Voltage Park keeps tags: the instance itself carries the requirement, as the Pulumi record says.
        with connect(overrides, "voltagepark") as cloud:
            live = cloud.get_instance(state.id)
        requirement = reveal(state.outputs)["placement"]["requirement"]
        assert (
            presentation.instance_facts(live)["placement"]
            == requirement
            == {
                "gpu": "h100",
                "max_price_per_hour": 2.5,
                "providers": ["voltagepark"],
            }
        )
    finally:
        harness.destroy(state)


def test_preview_with_spot_allowed_and_a_disk_minimum_plans_the_datacrunch_spot_offer(
    harness: DynamicProviderHarness,
) -> None:
    name = unique("pl-spot")
    checked, failures, _ = harness.preview(
        name, PROVIDER, _props(name, spot="allowed", min_disk_gb=2000), TYPES["instance"]
    )
    assert failures == []
    assert checked["planned_offer"].startswith("datacrunch spot 1H100.80S.30V"), checked["planned_offer"]


def test_preview_plans_a_bare_metal_node_only_with_kind_allowing_it(harness: DynamicProviderHarness) -> None:
    name = unique("pl-kind")
    eight = {"gpu_count": 8, "max_price": None, "providers": ["voltagepark"]}
    checked, failures, _ = harness.preview(name, PROVIDER, _props(name, **eight), TYPES["instance"])
    assert failures == [] and checked["kind"] == "vm"  # the default, filled in
    assert not checked["planned_offer"].startswith("voltagepark baremetal-"), checked["planned_offer"]
    checked, failures, _ = harness.preview(name, PROVIDER, _props(name, **eight, kind="bare_metal"), TYPES["instance"])
    assert failures == [] and checked["planned_offer"].startswith("voltagepark baremetal-8x-h100"), checked


def test_bad_requirements_fail_check_naming_the_input(harness: DynamicProviderHarness) -> None:
    name = unique("pl-bad")
    for changes, prop in (
        ({"gpu_count": 2, "gpu": None}, "gpu_count"),
        ({"providers": ["aws"]}, "providers"),
        ({"max_price": -1.0}, "max_price"),
        ({"min_disk_gb": 0}, "min_disk_gb"),
        ({"spot": "sometimes"}, "spot"),
        ({"kind": "container"}, "kind"),
        ({"max_price": True}, "max_price"),  # not $1/h
        ({"instance_type": "1V100.6V"}, "instance_type"),
    ):
        _, failures, _ = harness.preview(name, PROVIDER, _props(name, **changes), TYPES["instance"])
        assert [p for p, _ in failures] == [prop], failures


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pulumi-placement" / "__main__.py"


@pytest.fixture
def example_run(emulator_in_process: None, overrides: dict[str, dict[str, object]]) -> Iterator[ExecutingMocks]:
    mocks = ExecutingMocks()
    pulumi.runtime.set_mocks(mocks, project="gpucloud-placement", stack=unique("pl-ex"), preview=False)
    yield mocks
    for provider in PLACED:
        with connect(overrides, provider) as cloud:
            found = cloud.find_instance("trainer-h100")
            if found is not None:
                cloud.delete_instance(found.id)
                cloud.wait_for_instance_gone(found.id, timeout=60, interval=0.2)


@pulumi.runtime.test
def test_example_program_places_the_h100_and_exports_the_choice(
    account: None,
    example_run: ExecutingMocks,  # account first: its leftover check runs after the cleanup
) -> Any:
    sys.modules.pop("__main__placement", None)
    spec = importlib.util.spec_from_file_location("__main__placement", EXAMPLE)
    assert spec is not None and spec.loader is not None
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)

    def check(values: list[Any]) -> None:
        provider, record = values
        assert provider == "voltagepark" and record["offer"]["instance_type"] == H100_VP
        assert record["requirement"]["max_price_per_hour"] == 3.0
        typ, _, outs = example_run.created["trainer-h100"]
        assert typ.endswith(":Instance") and outs["status"] == "running"

    return pulumi.Output.all(program.trainer.placed_provider, program.trainer.placement).apply(check)

"""`gpucloud place`, run as a user would, against the emulator: dry run, failover, rerun, bad input."""

import json

import pytest

from gpucloud.emulator import EmulatorServer
from tests.conftest import connect
from tests.test_cli import env, run

__all__ = ["env"]  # the fixture, re-exported for pytest

H100_VP = "1x-h100-sxm5-80gb-26vcpu-120gb"
REQUIREMENT = ("--gpu", "h100", "--max-price", "3", "-p", "voltagepark", "-p", "datacrunch")
IMAGE = ("--image", "datacrunch=ubuntu-24.04-cuda-12.8-open-docker")


def test_dry_run_names_the_offer_it_would_try_first_and_creates_nothing(
    env: dict[str, str], emulator: EmulatorServer
) -> None:
    emulator.world.clear_requests()
    result = run(env, "place", "cli-dry", *REQUIREMENT, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["action"], record["changed"], record["provider"]) == ("create", True, "voltagepark")
    assert record["offer"]["instance_type"] == H100_VP and record["instance"] is None
    assert [c["provider"] for c in record["candidates"]][:2] == ["voltagepark", "datacrunch"]
    assert "capacity is known only at create time" in record["note"]
    assert not [r for r in emulator.world.requests if r.method != "GET" and "token" not in r.path]
    table = run(env, "place", "cli-dry", *REQUIREMENT, "--dry-run")
    assert table.returncode == 0 and "would try voltagepark" in table.stdout


def test_dry_run_with_spot_allowed_and_a_disk_minimum_names_the_spot_offer(env: dict[str, str]) -> None:
    wanted = ("--spot", "allowed", "--min-disk-gb", "2000")
    result = run(env, "place", "cli-spot", *REQUIREMENT, *wanted, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    # Voltage Park's H100 (1500 GB) is out; DataCrunch's spot price ($0.80/h) before its on-demand one.
    assert (record["provider"], record["offer"]["spot"], record["price_per_hour"]) == ("datacrunch", True, 0.8)
    assert (record["requirement"]["spot"], record["requirement"]["min_disk_gb"]) == ("allowed", 2000.0)
    assert {c["provider"] for c in record["candidates"]} == {"datacrunch"}
    assert "would try datacrunch spot" in record["note"]


def test_dry_run_with_kind_bare_metal_names_the_bare_metal_node(env: dict[str, str]) -> None:
    wanted = ("--gpu", "h100", "--gpu-count", "8", "-p", "voltagepark", "--kind", "bare_metal")
    result = run(env, "place", "cli-metal", *wanted, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["offer"]["kind"], record["requirement"]["kind"]) == ("bare_metal", "bare_metal")
    assert {c["instance_type"].split("-")[0] for c in record["candidates"]} == {"baremetal"}


def test_place_fails_over_and_a_rerun_changes_nothing(
    env: dict[str, str], emulator: EmulatorServer, overrides: dict[str, dict[str, object]]
) -> None:
    emulator.world.set_stock("voltagepark", H100_VP, left=0, stale_catalogue=True)
    try:
        first = run(env, "place", "cli-placed", *REQUIREMENT, *IMAGE, "--json")
        assert first.returncode == 0, first.stderr
        record = json.loads(first.stdout)
        assert (record["action"], record["provider"]) == ("create", "datacrunch")
        assert [(a["provider"], a["error_class"]) for a in record["attempts"]] == [("voltagepark", "NoCapacity")]
        assert record["instance"]["status"] == "running"
        again = json.loads(run(env, "place", "cli-placed", *REQUIREMENT, *IMAGE, "--json").stdout)
        assert (again["changed"], again["provider"], again["instance"]["id"]) == (
            False,
            "datacrunch",
            record["instance"]["id"],
        )
    finally:
        emulator.world.clear_stock()
        with connect(overrides, "datacrunch") as cloud:
            found = cloud.find_instance("cli-placed")
            if found is not None:
                cloud.delete_instance(found.id)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("-p", "aws"), "providers"),
        (("--gpu-count", "2"), "gpu_count: needs gpu"),
        (("--max-price", "0"), "max_price_per_hour"),
        (("--min-disk-gb", "0"), "min_disk_gb"),
        (("--spot", "sometimes"), "spot: Input should be"),
        (("--kind", "container"), "kind: Input should be"),
    ],
)
def test_bad_requirements_are_bad_usage_naming_the_field(
    env: dict[str, str], emulator: EmulatorServer, args: tuple[str, ...], named: str
) -> None:
    emulator.world.clear_requests()
    result = run(env, "place", "cli-bad", *args, "--dry-run")
    assert result.returncode == 2 and named in result.stderr
    assert not emulator.world.requests


def test_nothing_meets_the_requirement_is_exit_code_1_saying_so(env: dict[str, str]) -> None:
    result = run(env, "place", "cli-none", "--gpu", "b200", "--dry-run")
    assert result.returncode == 1 and "no offer meets the requirement" in result.stderr

"""pulumi_gpucloud.instance_fleet: members named from a pattern, registered as ordinary Instance resources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

import gpucloud

from ..conftest import connect
from ..contract.specs import INSTANCE
from .conftest import unique
from .test_program_mocks import ExecutingMocks, PlainMocks

Overrides = dict[str, dict[str, object]]


@pytest.fixture
def plain_mocks() -> Iterator[PlainMocks]:
    mocks = PlainMocks()
    pulumi.runtime.set_mocks(mocks, project="unit", stack="dev", preview=False)
    yield mocks


@pulumi.runtime.test
def test_members_are_named_from_the_pattern_and_share_the_args(plain_mocks: PlainMocks) -> Any:
    import pulumi_gpucloud as gpu

    fleet = gpu.instance_fleet(
        "trainer-{index}",
        3,
        gpu.InstanceArgs(instance_type="1x-h100-sxm5-80gb", provider="voltagepark", tags={"a": "b"}),
    )
    assert len(fleet) == 3 and all(isinstance(m, gpu.Instance) for m in fleet)

    def check(names: list[str]) -> None:
        assert names == ["trainer-1", "trainer-2", "trainer-3"]
        registered = {a.name: a.inputs for a in plain_mocks.created}
        assert sorted(registered) == names  # logical names follow the pattern too
        assert {registered[n]["instance_type"] for n in names} == {"1x-h100-sxm5-80gb"}
        assert all(registered[n]["tags"] == {"a": "b"} and registered[n]["name"] == n for n in names)

    return pulumi.Output.all(*[m.name for m in fleet]).apply(check)


@pulumi.runtime.test
def test_resource_names_can_differ_from_instance_names(plain_mocks: PlainMocks) -> Any:
    import pulumi_gpucloud as gpu

    fleet = gpu.instance_fleet(
        "node-{index}.example", 2, resource_name_pattern="n{index}", provider="datacrunch", instance_type="1V100.6V"
    )

    def check(names: list[str]) -> None:
        assert names == ["node-1.example", "node-2.example"]
        assert sorted(a.name for a in plain_mocks.created) == ["n1", "n2"]

    return pulumi.Output.all(*[m.name for m in fleet]).apply(check)


def test_bad_patterns_and_arguments_fail_in_the_program(plain_mocks: PlainMocks) -> None:
    import pulumi_gpucloud as gpu

    with pytest.raises(ValueError, match=r"name_pattern 'trainer' needs the \{index\} placeholder"):
        gpu.instance_fleet("trainer", 2, provider="datacrunch", instance_type="1V100.6V")
    with pytest.raises(ValueError, match="count must be a whole number"):
        gpu.instance_fleet("t-{index}", -1, provider="datacrunch", instance_type="1V100.6V")
    with pytest.raises(ValueError, match="resource_name_pattern"):
        gpu.instance_fleet("t-{index}", 2, resource_name_pattern="same", instance_type="x")
    with pytest.raises(TypeError, match="name_pattern"):
        gpu.instance_fleet("t-{index}", 2, name="fixed", instance_type="x")
    with pytest.raises(TypeError, match="instance_type"):
        gpu.instance_fleet("t-{index}", 2, provider="datacrunch")
    with pytest.raises(TypeError, match="either"):
        gpu.instance_fleet("t-{index}", 2, gpu.InstanceArgs(instance_type="x"), image="y")
    assert gpu.instance_fleet("t-{index}", 0, instance_type="x", provider="datacrunch") == []
    assert plain_mocks.created == []


@pytest.fixture
def executing(emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, overrides: Overrides) -> Iterator[str]:
    for key, value in emulator_env.items():
        monkeypatch.setenv(key, value)
    prefix = unique("pf")
    pulumi.runtime.set_mocks(ExecutingMocks(), project="fleet", stack=prefix, preview=False)
    yield prefix
    with connect(overrides, "dcdncloud") as cloud:
        for instance in cloud.list_instances():
            if instance.name.startswith(prefix):
                cloud.delete_instance(instance.id)


@pulumi.runtime.test
def test_members_are_created_on_the_provider(executing: str, overrides: Overrides) -> Any:
    import pulumi_gpucloud as gpu

    prefix = executing
    fleet = gpu.instance_fleet(prefix + "-{index}", 3, provider="dcdncloud", **INSTANCE["dcdncloud"])

    def check(values: list[Any]) -> None:
        with connect(overrides, "dcdncloud") as cloud:
            live = {i.name: i for i in cloud.list_instances() if i.name.startswith(prefix)}
        assert sorted(live) == [f"{prefix}-{i}" for i in (1, 2, 3)]
        assert all(i.status is gpucloud.Status.RUNNING for i in live.values())
        statuses, ips = values[:3], values[3:]
        assert statuses == ["running"] * 3
        assert sorted(ips) == sorted(i.public_ip for i in live.values())

    return pulumi.Output.all(*[m.status for m in fleet], *[m.public_ip for m in fleet]).apply(check)

"""A program with thousands of gpucloud resources constructs in one process (pulumi/pulumi#17803).

The SDK's ``serialize_provider`` stacks one more wrapper on ``pickle._Pickler._batch_setitems`` with every
dynamic resource; unguarded, the ~980th resource of a process raises RecursionError. These run in the test
process itself, after whatever other Pulumi tests this worker ran, as a long-lived program would.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from .conftest import PROVIDERS
from .harness import program_inputs

RESOURCES = 3_000


class CountingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: Counter[str] = Counter()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.registered[args.typ.rsplit(":", 1)[-1]] += 1
        return f"{args.name}-id", {k: v for k, v in args.inputs.items() if k != "__provider"}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def mocks() -> Iterator[CountingMocks]:
    counting = CountingMocks()
    pulumi.runtime.set_mocks(counting, project="many", stack="dev", preview=False)
    yield counting


def _pickler_state() -> tuple[Any, Any]:
    pickler: Any = pickle._Pickler  # type: ignore[attr-defined]
    return pickler._batch_setitems, pickler.save_dict


@pulumi.runtime.test
def test_three_thousand_resources_construct_in_one_process(mocks: CountingMocks) -> Any:
    import pulumi_gpucloud as gpu

    before = _pickler_state()
    names = []
    for index in range(RESOURCES // 3):
        key = gpu.SshKey(f"key-{index}", provider="datacrunch", public_key=f"ssh-ed25519 AAAA{index} k{index}")
        volume = gpu.Volume(f"vol-{index}", provider="datacrunch", size_gb=50 + index % 7)
        box = gpu.Instance(f"box-{index}", provider="datacrunch", instance_type="1V100.6V", ssh_keys=[key.name])
        names += [key.name, volume.name, box.name]
    assert _pickler_state() == before  # the guard leaves the pickler as it found it

    def check(resolved: list[str]) -> None:
        assert len(resolved) == RESOURCES
        assert mocks.registered == {"SshKey": 1000, "Volume": 1000, "Instance": 1000}
        assert resolved[-1] == f"box-{RESOURCES // 3 - 1}"

    return pulumi.Output.all(*names).apply(check)


def test_the_harness_serialises_without_growing_the_pickler() -> None:
    """The test harness builds ``__provider`` as the SDK does, so it needs the same guard (CI ran ~1,000 of them)."""
    before = _pickler_state()
    for index in range(1_200):
        program_inputs(PROVIDERS["ssh_key"], {"name": f"k{index}", "public_key": "ssh-ed25519 AAAA k"})
    assert _pickler_state() == before

"""The inventory's list path reads host facts straight off each Instance; it must give exactly what the
model path (``model_dump(mode="json")``, then the mapping path Pulumi state takes) gives, on every provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import gpucloud
from gpucloud import presentation
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.providers import implemented

IMPLEMENTED = implemented()


@pytest.fixture(scope="module")
def seeded() -> Iterator[EmulatorServer]:
    with EmulatorServer(ssh=False, seed_hosts=40 * len(IMPLEMENTED)) as server:
        yield server


def _via_model_dump(instance: gpucloud.Instance, names: dict[str, str]) -> dict[str, Any]:
    return presentation.instance_facts(instance.model_dump(mode="json", exclude={"raw"}), names)


@pytest.mark.parametrize("provider", IMPLEMENTED)
def test_list_path_facts_equal_the_model_path(seeded: EmulatorServer, provider: str) -> None:
    with gpucloud.connect(provider, **client_overrides(seeded.url, seeded.settings)[provider]) as cloud:
        instances, names = cloud.list_instances_detailed(), cloud.location_names()
    assert len(instances) >= 40
    for instance in instances:
        fast, reference = presentation.instance_facts(instance, names), _via_model_dump(instance, names)
        assert fast == reference
        assert list(fast) == list(reference), "same facts in the same order"
        assert all(type(fast[k]) is type(reference[k]) for k in fast), "same JSON types"
    assert any(f["created_at"] for f in (presentation.instance_facts(i, names) for i in instances))

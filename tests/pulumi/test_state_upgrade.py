"""Stacks written by an older gpucloud: an input that did not exist then must not show as a change now."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gpucloud.capabilities import Capability

from ..conftest import providers_with
from ..contract.specs import INSTANCE
from .conftest import unique, up
from .harness import DynamicProviderHarness


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES))
def test_state_without_kind_is_not_updated(fast_harness: DynamicProviderHarness, provider: str) -> None:
    """Instances created before ``kind`` existed have no ``kind`` in their state: ``kind`` defaults to vm, and a
    program that does not set it leaves those instances alone (no update, no replace)."""
    props: dict[str, Any] = {"provider": provider, "name": unique("pre-kind"), **INSTANCE[provider]}
    created = up(fast_harness, "instance", "box", props)
    old = copy.deepcopy(created.state)
    for bag in (old.inputs, old.outputs):
        assert bag.pop("kind") == "vm"
    try:
        again = up(fast_harness, "instance", "box", props, old)
        assert again.operation == "same", again.diff
    finally:
        fast_harness.delete(created.state)

"""Parts of the inventory plugin (``gpucloud.cloud.gpucloud``) that are checked without running Ansible."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ansible_collections.gpucloud.cloud.plugins.inventory import gpucloud as plugin


@pytest.fixture
def collector() -> Iterator[None]:
    """Restore the cyclic collector as the test found it (on, nothing frozen)."""
    was_enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


@pytest.mark.usefixtures("collector")
def test_listing_pauses_the_collector_and_freezes_what_it_keeps() -> None:
    gc.enable()
    frozen_before = gc.get_freeze_count()
    with plugin._kept_until_exit():
        assert not gc.isenabled()
        kept = [[index] for index in range(1000)]  # lists are tracked by the collector
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    # Frozen: no generation the collector walks holds them any more.
    watched = {id(obj) for obj in gc.get_objects()}
    assert not any(id(item) in watched for item in kept)


@pytest.mark.usefixtures("collector")
def test_a_collector_switched_off_stays_off() -> None:
    gc.disable()
    with plugin._kept_until_exit():
        pass
    assert not gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_the_collector_is_restored_when_the_listing_fails() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), plugin._kept_until_exit():
        raise RuntimeError("a provider failed")
    assert gc.isenabled()

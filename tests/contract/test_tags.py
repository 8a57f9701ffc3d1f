"""Tags as amazon.aws users know them: not given = not managed; given = exactly these (purge_tags, the
default) or these on top of the others (purge_tags=False); check mode predicts the same."""

from __future__ import annotations

import pytest

import gpucloud
from gpucloud import InstanceSpec
from gpucloud.capabilities import Capability
from gpucloud.ensure import ensure_instance, ensure_instance_absent
from gpucloud.reconcile import Action

from ..conftest import providers_with
from .specs import INSTANCE

FAST = {"wait_timeout": 60.0}


@pytest.mark.parametrize("cloud", providers_with(Capability.INSTANCE_TAG_UPDATE), indirect=True)
def test_tags_unmanaged_merged_or_purged(cloud: gpucloud.Provider, keypair: tuple) -> None:
    tags = {"a": "1", "b": "2"}
    spec = InstanceSpec(name=f"tags2-{cloud.name}", ssh_keys=(keypair[1],), tags=tags, **INSTANCE[cloud.name])
    created = ensure_instance(cloud, spec, **FAST).after
    assert created is not None and created.tags == {"a": "1", "b": "2"}
    try:
        unmanaged = spec.model_copy(update={"tags": None})
        assert not ensure_instance(cloud, unmanaged, **FAST).changed
        assert cloud.get_instance(created.id).tags == {"a": "1", "b": "2"}

        merged = spec.model_copy(update={"tags": {"a": "9"}, "purge_tags": False})
        preview = ensure_instance(cloud, merged, check_mode=True, **FAST)
        assert preview.action is Action.UPDATE and preview.plan.updates[0].desired == {"a": "9", "b": "2"}
        assert ensure_instance(cloud, merged, **FAST).changed
        assert cloud.get_instance(created.id).tags == {"a": "9", "b": "2"}
        assert not ensure_instance(cloud, merged, **FAST).changed

        purged = spec.model_copy(update={"tags": {"a": "9"}})  # purge_tags defaults to True
        assert ensure_instance(cloud, purged, check_mode=True, **FAST).plan.updates[0].desired == {"a": "9"}
        assert ensure_instance(cloud, purged, **FAST).changed
        assert cloud.get_instance(created.id).tags == {"a": "9"}
    finally:
        ensure_instance_absent(cloud, instance_id=created.id, **FAST)

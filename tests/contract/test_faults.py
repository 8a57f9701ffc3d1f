"""Transport behaviour against the emulator's fault injection, over real HTTP."""

import time

import pytest

import gpucloud
from gpucloud import SshKeySpec, VolumeSpec, ensure
from gpucloud.capabilities import Capability
from tests import figures

from ..conftest import IMPLEMENTED, connect, providers_with
from .specs import VOLUME


@pytest.mark.parametrize("provider", IMPLEMENTED)
def test_reads_survive_5xx_and_429_bursts(overrides: dict, provider: str, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    # Enough retries that six 50% failures in a row (1 in 64 per request) cannot fail the test.
    cloud = connect(overrides, provider, retry_backoff=0.02, max_retries=15)
    start = len(world.requests)
    world.set_faults(rate_limit_burst=2)
    cloud.list_instances()
    statuses = [r.status for r in world.requests[start:]]
    assert statuses.count(429) == 2 and statuses[-1] == 200, statuses
    world.set_faults(rate_limit_burst=0, error_rate=0.5, seed=7)
    for _ in range(5):
        cloud.list_instances()
    assert any(r.status >= 500 for r in world.requests[-15:])


@pytest.mark.parametrize("cloud", providers_with(Capability.VOLUME_CREATE, Capability.SSH_KEYS), indirect=True)
def test_lost_create_response_is_adopted_not_duplicated(cloud: gpucloud.Provider, emulator: object, keypair) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    name = f"lost-{cloud.name}"
    world.set_faults(drop_create_rate=1.0)
    try:
        volume = cloud.create_volume(VolumeSpec(name=name, size_gb=10, **VOLUME[cloud.name]))
    finally:
        world.set_faults(drop_create_rate=0.0)
    try:
        assert volume.name == name
        assert [v.id for v in cloud.list_volumes() if v.name == name] == [volume.id]
        assert any(r.was_fault for r in world.requests if r.method == "POST")
    finally:
        cloud.delete_volume(volume.id)
    world.set_faults(drop_create_rate=1.0)
    try:
        key = cloud.create_ssh_key(SshKeySpec(name=f"lost key {cloud.name}", public_key=keypair[1]))
    finally:
        world.set_faults(drop_create_rate=0.0)
    assert [k.id for k in cloud.list_ssh_keys() if k.name == key.name] == [key.id]
    cloud.delete_ssh_key(key.id)


def test_datacrunch_token_expiry_is_refreshed_transparently(overrides: dict, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    with connect(overrides, "datacrunch") as cloud:
        cloud.list_instances()
        grants_before = cloud.auth.token_requests  # type: ignore[attr-defined]
        world.expire_tokens("datacrunch")
        cloud.list_instances()
        assert cloud.auth.token_requests == grants_before + 1  # type: ignore[attr-defined]
        world.expire_tokens("datacrunch")
        world.revoke_refresh_tokens()
        cloud.list_instances()  # falls back to a fresh client-credentials grant
        assert cloud.auth.token_requests == grants_before + 2  # type: ignore[attr-defined]


def test_voltagepark_pages_are_fetched_within_the_limit(overrides: dict, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    with connect(overrides, "voltagepark") as cloud:
        created = [cloud.create_volume(VolumeSpec(name=f"page-{i}", size_gb=1)) for i in range(130)]
        try:
            start = len(world.requests)
            names = {v.name for v in cloud.list_volumes()}
            pages = [r for r in world.requests[start:] if r.path.endswith("/storage/")]
            assert {f"page-{i}" for i in range(130)} <= names
            assert len(pages) == 2 and all(r.status == 200 for r in pages)
        finally:
            for volume in created:
                cloud.delete_volume(volume.id)


@pytest.mark.parametrize("cloud", providers_with(Capability.SSH_KEYS), indirect=True)
def test_5xx_on_create_is_looked_up_then_sent_again(cloud: gpucloud.Provider, emulator: object, keypair) -> None:
    """A 500 to a create says nothing about whether it was applied: adopt by name, else send once more."""
    world = emulator.world  # type: ignore[attr-defined]
    spec = SshKeySpec(name=f"five-hundred {cloud.name}", public_key=keypair[1])
    start = len(world.requests)
    world.set_faults(create_error_burst=2)
    try:
        outcome = ensure.ensure_ssh_key(cloud, spec)
    finally:
        world.set_faults(create_error_burst=0)
    failed_creates = [r for r in world.requests[start:] if r.method == "POST" and r.fault == "error"]
    keys = [k.id for k in cloud.list_ssh_keys() if k.name == spec.name]
    cloud.delete_ssh_key(keys[0])
    figures.record("operations tried")
    figures.record("faults injected", sum(r.was_fault for r in world.requests[start:]))
    figures.record("duplicates", len(keys) - 1)
    assert len(failed_creates) == 2, "two creates failed with 500 and were looked up, the third one went through"
    assert outcome.after is not None and keys == [outcome.after.id]


def test_retry_pauses_stop_at_the_operation_deadline(overrides: dict, emulator: object) -> None:
    """Inside Transport.deadline no pause runs past it, whatever max_retries allows."""
    world = emulator.world  # type: ignore[attr-defined]
    pauses: list[float] = []
    with connect(overrides, "datacrunch", max_retries=50, retry_backoff=0.01) as cloud:
        cloud.list_instances()  # logged in before the faults start
        cloud.transport.sleep = pauses.append  # recorded, not slept: the deadline clock is shifted instead
        skipped = [0.0]
        cloud.transport.clock = lambda: time.monotonic() + sum(pauses) + skipped[0]
        world.set_faults(rate_limit_burst=1000)
        try:
            with cloud.transport.deadline(2.5), pytest.raises(gpucloud.RateLimited):
                cloud.list_instances()
        finally:
            world.set_faults(rate_limit_burst=0)
    assert 1 <= len(pauses) <= 2 and sum(pauses) < 2.5, pauses

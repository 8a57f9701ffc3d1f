"""CloudNexus through the adapter: key format, error mapping, job polling, resize/reboot, pages, pacing."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, Status, sshexec
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.cloudnexus import read_only_token
from gpucloud.emulator.world import PUBLISHED_RATE_LIMITS, World
from gpucloud.providers.cloudnexus import INFERRED_PATHS, CloudNexus
from gpucloud.reconcile import Action, plan_instance

from ..conftest import connect
from .specs import INSTANCE

Overrides = dict[str, dict[str, object]]
SPEC = InstanceSpec(name="cn", **INSTANCE["cloudnexus"])


@pytest.fixture
def cloud(overrides: Overrides) -> Iterator[CloudNexus]:
    with connect(overrides, "cloudnexus") as adapter:
        assert isinstance(adapter, CloudNexus)
        yield adapter


@pytest.fixture
def world(emulator: EmulatorServer) -> Iterator[World]:
    yield emulator.world
    emulator.world.set_rate_limit("cloudnexus", None)


@pytest.fixture
def key(cloud: CloudNexus, keypair: tuple[Path, str]) -> Iterator[gpucloud.SshKey]:
    created = cloud.create_ssh_key(SshKeySpec(name=f"cn key {time.monotonic_ns()}", public_key=keypair[1]))
    yield created
    cloud.delete_ssh_key(created.id)


@pytest.fixture
def slow(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lifecycles of 0.6 s (not 0.3), so a transitional status is still there when the next request reads it."""
    monkeypatch.setattr(emulator.world.settings, "provision_seconds", 0.6)


def _remove(cloud: CloudNexus, name: str) -> None:
    for instance in cloud.list_instances():
        if instance.name == name:
            cloud.delete_instance(instance.id)
            cloud.wait_for_instance_gone(instance.id, timeout=30, interval=0.1)


@pytest.mark.parametrize("token", ["sk_live_0123456789", "cn_prod_0123456789", "Bearer cn_live_x"])
def test_key_prefix_is_checked_before_any_request(overrides: Overrides, emulator: EmulatorServer, token: str) -> None:
    before = emulator.world.request_count()
    with pytest.raises(gpucloud.AuthError, match="GPUCLOUD_CLOUDNEXUS_TOKEN") as info:
        connect(overrides, "cloudnexus", token=token)
    assert "cn_live_" in str(info.value) and token not in str(info.value)
    with pytest.raises(gpucloud.AuthError, match="GPUCLOUD_CLOUDNEXUS_TOKEN"):
        connect(overrides, "cloudnexus", token="")
    assert emulator.world.request_count() == before


def test_documented_errors_map_to_their_classes(cloud: CloudNexus, overrides: Overrides, world: World) -> None:
    with pytest.raises(gpucloud.ValidationError) as invalid:
        cloud.create_instance(SPEC.model_copy(update={"instance_type": "huge-64x512"}))
    with (
        connect(overrides, "cloudnexus", token="cn_test_revoked") as revoked,
        pytest.raises(gpucloud.AuthError) as auth,
    ):
        revoked.list_instances()
    with (
        connect(overrides, "cloudnexus", token=read_only_token(world.settings)) as reader,
        pytest.raises(gpucloud.AuthError) as forbidden,
    ):
        assert reader.list_instances() is not None  # reads are allowed
        reader.create_instance(SPEC)
    with pytest.raises(gpucloud.NotFound) as missing:
        cloud.get_instance("inst_0000000000000000")
    with connect(overrides, "cloudnexus", max_retries=0) as impatient:
        world.set_faults(rate_limit_burst=1)
        with pytest.raises(gpucloud.RateLimited) as limited:
            impatient.list_instances()
        world.set_faults(error_rate=1.0)
        with pytest.raises(gpucloud.ProviderError) as broken:
            impatient.stop_instance("inst_0000000000000000")
    assert (invalid.value.status_code, invalid.value.code) == (400, "invalid_request")
    assert "huge-64x512" in str(invalid.value)
    assert (auth.value.status_code, auth.value.code) == (401, "unauthorized")
    assert (forbidden.value.status_code, forbidden.value.code) == (403, "forbidden")
    assert (missing.value.status_code, missing.value.code) == (404, "not_found")
    assert (limited.value.status_code, limited.value.code, limited.value.retry_after) == (
        429,
        "rate_limit_exceeded",
        1.0,
    )
    assert type(broken.value) is gpucloud.ProviderError
    assert (broken.value.status_code, broken.value.code) == (500, "internal_error")


def test_post_5xx_is_not_resent_but_reads_are(overrides: Overrides, world: World) -> None:
    cloud = connect(overrides, "cloudnexus", retry_backoff=0.02)
    world.set_faults(error_rate=1.0)
    before = world.request_count(provider="cloudnexus", method="POST")
    with pytest.raises(gpucloud.ProviderError):
        cloud.reboot_instance("inst_0000000000000000")
    assert world.request_count(provider="cloudnexus", method="POST") == before + 1
    world.set_faults(error_rate=0.5, seed=3)
    start = len(world.requests)
    for _ in range(4):
        cloud.list_instances()  # GETs are retried until they pass
    statuses = [r.status for r in world.requests[start:]]
    assert 500 in statuses and statuses.count(200) == 4
    cloud.close()


def test_create_polls_its_job_and_returns_the_running_instance(
    cloud: CloudNexus, world: World, key: gpucloud.SshKey
) -> None:
    start = len(world.requests)
    created = cloud.create_instance(SPEC.model_copy(update={"name": "cn-job", "ssh_keys": (key.name,)}))
    try:
        instance = created.instance
        assert instance.status is Status.RUNNING and instance.public_ip and instance.ssh_key_ids == (key.id,)
        assert created.secrets == {}
        paths = [r.path for r in world.requests[start:]]
        # key name -> id, the create, its job until completed, then the instance it made
        assert paths[:2] == ["/ssh-keys", "/compute/instances"] and paths[-1] == f"/compute/instances/{instance.id}"
        assert paths[2:-1] and all(p.startswith("/jobs/job_") for p in paths[2:-1])
    finally:
        _remove(cloud, "cn-job")


def test_failed_job_is_a_provider_error_with_the_jobs_message(cloud: CloudNexus, world: World) -> None:
    world.set_capacity("cloudnexus", "compute-8x16", None, False)
    try:
        with pytest.raises(gpucloud.ProviderError) as info:
            cloud.create_instance(SPEC.model_copy(update={"name": "cn-full", "instance_type": "compute-8x16"}))
    finally:
        world.set_capacity("cloudnexus", "compute-8x16", None, True)
    assert info.value.code == "capacity_unavailable" and "No capacity for compute-8x16" in str(info.value)
    assert info.value.details["status"] == "failed"  # type: ignore[index]
    assert cloud.find_instance("cn-full") is None


def test_job_wait_is_bounded(cloud: CloudNexus, slow: None) -> None:
    cloud.job_timeout, cloud.job_interval = 0.05, 0.02
    try:
        with pytest.raises(gpucloud.Timeout) as info:
            cloud.create_instance(SPEC.model_copy(update={"name": "cn-slow"}))
        resource = info.value.details["resource_id"]  # type: ignore[index]
        assert resource.startswith("inst_") and resource in str(info.value)
        assert info.value.details["job_id"].startswith("job_")  # type: ignore[index]
    finally:
        _remove(cloud, "cn-slow")


def test_resize_and_reboot_with_real_ssh(
    cloud: CloudNexus, keypair: tuple[Path, str], key: gpucloud.SshKey, slow: None
) -> None:
    private = keypair[0]
    created = cloud.create_instance(SPEC.model_copy(update={"name": "cn-resize", "ssh_keys": (key.id,)})).instance
    try:
        cloud.wait_for_ssh(created, timeout=10)
        assert sshexec.run(created, "echo before", identity_file=private).strip() == "before"
        with pytest.raises(gpucloud.ValidationError, match="already"):
            cloud.resize_instance(created.id, created.instance_type or "")
        cloud.resize_instance(created.id, "memory-4x32")
        assert cloud.get_instance(created.id).raw_status == "resizing"
        resized = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=30, interval=0.1)
        assert resized.instance_type == "memory-4x32"
        cloud.wait_for_ssh(resized, timeout=10)
        assert sshexec.run(resized, "echo resized", identity_file=private).strip() == "resized"

        cloud.reboot_instance(created.id)
        assert cloud.get_instance(created.id).status is Status.PENDING
        rebooted = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=30, interval=0.1)
        cloud.wait_for_ssh(rebooted, timeout=10)
        assert sshexec.run(rebooted, "echo rebooted", identity_file=private).strip() == "rebooted"
        with pytest.raises(gpucloud.Conflict) as wrong_state:
            cloud.start_instance(created.id)
        assert (wrong_state.value.status_code, wrong_state.value.code) == (400, "invalid_state")
    finally:
        _remove(cloud, "cn-resize")


def test_tags_are_set_at_create_and_not_changed_in_place(cloud: CloudNexus, key: gpucloud.SshKey) -> None:
    tagged = SPEC.model_copy(update={"name": "cn-tags", "ssh_keys": (key.id,), "tags": {"team": "ml"}})
    created = cloud.create_instance(tagged).instance
    try:
        assert created.tags == {"team": "ml"} and cloud.get_instance(created.id).tags == {"team": "ml"}
        with pytest.raises(gpucloud.Unsupported) as info:
            cloud.update_instance(created.id, tags={"team": "infra"})
        assert info.value.capability == Capability.INSTANCE_TAG_UPDATE.value
        assert cloud.get_instance(created.id).tags == {"team": "ml"}
        plan = plan_instance(tagged.model_copy(update={"tags": {"team": "infra"}}), created, cloud.capabilities)
        assert plan.action is Action.REPLACE and plan.replace_fields == ["tags"]  # never claimed as in place
    finally:
        _remove(cloud, "cn-tags")


def test_snapshot_waits_for_its_job(cloud: CloudNexus, key: gpucloud.SshKey) -> None:
    created = cloud.create_instance(SPEC.model_copy(update={"name": "cn-snap", "ssh_keys": (key.id,)})).instance
    try:
        snapshot = cloud.snapshot_instance(created.id)
        assert snapshot.startswith("snap_")
    finally:
        _remove(cloud, "cn-snap")


def test_list_walks_every_page(cloud: CloudNexus, world: World) -> None:
    names = [f"cn-page-{i}" for i in range(5)]
    body = {"type": "standard-2x4", "region": "us-west-2", "image": "debian-12"}
    for name in names:  # straight to the API: no job wait needed for a listing test
        cloud.transport.request("POST", "compute/instances", json={"name": name, **body})
    cloud.page_size = 2
    try:
        start = len(world.requests)
        everything = cloud.list_instances()  # other tests' instances may share the emulator
        pages = [r for r in world.requests[start:] if r.path == "/compute/instances"]
        assert sorted(i.name for i in everything if i.name.startswith("cn-page-")) == names
        assert len(pages) == math.ceil(len(everything) / 2) >= 3 and all(r.status == 200 for r in pages)
    finally:
        for instance in cloud.list_instances():
            if instance.name in names:
                cloud.delete_instance(instance.id)


def test_lost_create_answer_is_adopted_by_name(cloud: CloudNexus, world: World) -> None:
    world.set_faults(drop_create_rate=1.0)
    try:
        adopted = cloud.create_instance(SPEC.model_copy(update={"name": "cn-lost"})).instance
    finally:
        world.set_faults(drop_create_rate=0.0)
    try:
        assert adopted.name == "cn-lost" and adopted.id.startswith("inst_")
        assert [i.id for i in cloud.list_instances() if i.name == "cn-lost"] == [adopted.id]
    finally:
        _remove(cloud, "cn-lost")


def test_inferred_endpoints_are_declared_and_can_be_moved(cloud: CloudNexus, emulator: EmulatorServer) -> None:
    # Images and locations are the examples its docs show (no listing endpoint), hence inferred too; a snapshot's id
    # comes from its (inferred) job.
    assert CloudNexus.inferred == {
        Capability.INSTANCES,
        Capability.INSTANCE_SNAPSHOT,
        Capability.SSH_KEYS,
        Capability.IMAGES,
        Capability.LOCATIONS,
    }
    assert CloudNexus.example_catalogues == {Capability.IMAGES, Capability.LOCATIONS}
    assert set(INFERRED_PATHS) == {"job", "instance", "ssh_keys", "ssh_key"}
    cloud.paths["ssh_keys"] = "keys"
    with pytest.raises(gpucloud.NotFound):
        cloud.list_ssh_keys()
    cloud.paths["ssh_keys"] = emulator.base_url("cloudnexus") + "/ssh-keys"  # absolute: another base URL
    assert isinstance(cloud.list_ssh_keys(), list)


def test_token_never_reaches_logs(cloud: CloudNexus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = cloud.config.token.get_secret_value() if cloud.config.token else ""
    assert token
    cloud.list_instances()
    with pytest.raises(gpucloud.NotFound) as info:
        cloud.get_instance("inst_missing")
    assert token not in caplog.text and token not in str(info.value.to_dict()) and token not in repr(cloud.config)
    assert "gpucloud.transport" in {r.name for r in caplog.records}


def _instant_retry_sleeps(world: World, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """This thread's sleeps return at once and reset the emulator's window, as if the wait had passed."""
    slept: list[float] = []
    real_sleep: Callable[[float], None] = time.sleep
    me = threading.current_thread()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is not me:
            real_sleep(seconds)
            return
        slept.append(seconds)
        world.set_rate_limit("cloudnexus", PUBLISHED_RATE_LIMITS["cloudnexus"])

    monkeypatch.setattr(time, "sleep", sleep)
    return slept


def test_real_limit_gives_429_and_the_retry_waits_retry_after(
    overrides: Overrides, emulator: EmulatorServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.set_rate_limit("cloudnexus", PUBLISHED_RATE_LIMITS["cloudnexus"])
    with connect(overrides, "cloudnexus", requests_per_minute=None) as paced:
        assert paced.transport.limiter is not None and paced.transport.limiter.rate * 60 == 120.0
    headers = {"Authorization": f"Bearer {emulator.credentials['cloudnexus']['token']}"}
    with httpx.Client(base_url=emulator.base_url("cloudnexus"), headers=headers, timeout=10) as raw:
        with ThreadPoolExecutor(12) as pool:  # the emulator answers in ~45 ms: fill the window in parallel
            assert set(pool.map(lambda _: raw.get("/ssh-keys").status_code, range(120))) == {200}
        refused = raw.get("/ssh-keys")
    retry_after = int(refused.headers["Retry-After"])
    assert refused.status_code == 429 and 55 <= retry_after <= 60
    slept = _instant_retry_sleeps(world, monkeypatch)
    with connect(overrides, "cloudnexus") as cloud:
        assert isinstance(cloud.list_ssh_keys(), list)
    assert len(slept) == 1 and retry_after - 1 <= slept[0] <= retry_after + 2
    assert [r.status for r in world.requests[-2:]] == [429, 200]

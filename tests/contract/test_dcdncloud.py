"""dcdncloud through the adapter: error mapping, the one-time root password, keys on a live instance, pacing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import gpucloud
from gpucloud import InstanceSpec, Status, sshexec
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.world import PUBLISHED_RATE_LIMITS, World
from gpucloud.providers.dcdncloud import DcdnCloud, error_fields

from ..conftest import connect
from .specs import INSTANCE

Overrides = dict[str, dict[str, object]]
SPEC = InstanceSpec(name="dcdn", **INSTANCE["dcdncloud"])


@pytest.fixture
def cloud(overrides: Overrides) -> Iterator[DcdnCloud]:
    with connect(overrides, "dcdncloud") as adapter:
        assert isinstance(adapter, DcdnCloud)
        yield adapter


@pytest.fixture
def world(emulator: EmulatorServer) -> Iterator[World]:
    yield emulator.world
    emulator.world.set_rate_limit("dcdncloud", None)


@pytest.fixture
def slow(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lifecycles of 0.6 s (not 0.3), so a transitional status is still there when the next request reads it."""
    monkeypatch.setattr(emulator.world.settings, "provision_seconds", 0.6)


def _cleanup(cloud: gpucloud.Provider, *names: str) -> None:
    for instance in cloud.list_instances():
        if instance.name in names:
            cloud.delete_instance(instance.id)


def _sleeps_that_skip_time(world: World, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make this thread's sleeps instant, and have each one clear the emulator's window as if time had passed.

    The transport's retry sleeps through ``time.sleep``; other threads (sshd, the emulator) keep the real one.
    """
    slept: list[float] = []
    real_sleep: Callable[[float], None] = time.sleep
    me = threading.current_thread()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is not me:
            real_sleep(seconds)
            return
        slept.append(seconds)
        world.set_rate_limit("dcdncloud", PUBLISHED_RATE_LIMITS["dcdncloud"])

    monkeypatch.setattr(time, "sleep", sleep)
    return slept


def test_documented_errors_map_to_their_classes(cloud: DcdnCloud, overrides: Overrides, world: World) -> None:
    with pytest.raises(gpucloud.NotFound) as not_found:
        cloud.get_instance("00000000-0000-4000-8000-000000000000")
    with pytest.raises(gpucloud.ValidationError) as invalid:
        cloud.create_instance(SPEC.model_copy(update={"image": "windows-95"}))
    created = cloud.create_instance(SPEC).instance
    try:
        with pytest.raises(gpucloud.Conflict) as taken:
            cloud.create_instance(SPEC)
        with pytest.raises(gpucloud.Conflict) as wrong_state:
            cloud.start_instance(created.id)  # creating, not stopped
        world.set_balance("dcdncloud", 0.0)
        with pytest.raises(gpucloud.InsufficientFunds) as broke:
            cloud.create_instance(SPEC.model_copy(update={"name": "dcdn-poor"}))
    finally:
        world.set_balance("dcdncloud", 100.0)
        cloud.delete_instance(created.id)
    with connect(overrides, "dcdncloud", token="wrong-token") as denied, pytest.raises(gpucloud.AuthError) as auth:
        denied.list_instances()
    with connect(overrides, "dcdncloud", max_retries=0) as impatient:
        world.set_faults(rate_limit_burst=1)
        with pytest.raises(gpucloud.RateLimited) as limited:
            impatient.list_instances()
    assert (not_found.value.status_code, not_found.value.code) == (404, "not_found")
    assert (invalid.value.status_code, invalid.value.code) == (400, "bad_request")
    assert "windows-95" in str(invalid.value)
    assert (taken.value.status_code, taken.value.code) == (409, "name_in_use")
    assert (wrong_state.value.status_code, wrong_state.value.code) == (400, "invalid_state")
    assert (broke.value.status_code, broke.value.code) == (402, "insufficient_credits")
    assert (auth.value.status_code, auth.value.code) == (401, "unauthorized") and "wrong-token" not in str(auth.value)
    assert (limited.value.status_code, limited.value.retry_after) == (429, 1.0)


def test_no_capacity_is_final(cloud: DcdnCloud, world: World) -> None:
    world.set_capacity("dcdncloud", "s-small", "eu-central", False)
    try:
        before = world.request_count(provider="dcdncloud", method="POST")
        with pytest.raises(gpucloud.NoCapacity) as info:
            cloud.create_instance(SPEC)
        assert (info.value.status_code, info.value.code) == (503, "no_capacity")
        assert world.request_count(provider="dcdncloud", method="POST") == before + 1
    finally:
        world.set_capacity("dcdncloud", "s-small", "eu-central", True)


def _token(cloud: DcdnCloud) -> str:
    assert cloud.config.token is not None
    return cloud.config.token.get_secret_value()


def test_root_password_is_a_one_time_secret(cloud: DcdnCloud, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    created = cloud.create_instance(SPEC.model_copy(update={"name": "dcdn-secret"}))
    try:
        password = created.secrets["root_password"]
        assert len(password) >= 16
        fetched = cloud.get_instance(created.instance.id)
        listed = cloud.find_instance("dcdn-secret")
        for shown in (repr(created), repr(created.instance), str(created.instance.raw), str(fetched.raw), repr(listed)):
            assert password not in shown
        assert "root_password" not in created.instance.raw and "root_password" not in fetched.raw
        renewed = cloud.reset_root_password(created.instance.id)
        assert renewed and renewed != password
    finally:
        cloud.delete_instance(created.instance.id)
    assert password not in caplog.text and renewed not in caplog.text and _token(cloud) not in caplog.text
    assert "gpucloud.transport" in {r.name for r in caplog.records}


def test_key_added_to_a_running_instance_lets_ssh_in(
    cloud: DcdnCloud, emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    private, public = keypair
    created = cloud.create_instance(SPEC.model_copy(update={"name": "dcdn-keys"})).instance  # no keys yet
    try:
        running = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=30, interval=0.1)
        assert (running.public_ip, running.ssh_port) == (created.public_ip, created.ssh_port)  # known at create
        cloud.wait_for_ssh(running, timeout=10)
        with pytest.raises(gpucloud.ProviderError, match="exited 255"):
            sshexec.run(running, "true", identity_file=private)
        before = emulator.world.request_count()
        with pytest.raises(gpucloud.ValidationError):
            cloud.add_instance_ssh_key(created.id, "ssh-rsa not-a-key")
        assert emulator.world.request_count() == before  # refused before any request
        cloud.add_instance_ssh_key(created.id, public)
        assert sshexec.run(running, "echo in", identity_file=private).strip() == "in"
    finally:
        cloud.delete_instance(created.id)


def test_reboot_keeps_the_endpoint_and_ssh_comes_back(cloud: DcdnCloud, keypair: tuple[Path, str], slow: None) -> None:
    private, public = keypair
    created = cloud.create_instance(SPEC.model_copy(update={"name": "dcdn-reboot", "ssh_keys": (public,)})).instance
    try:
        running = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=30, interval=0.1)
        cloud.reboot_instance(created.id)
        rebooting = cloud.get_instance(created.id)
        assert (rebooting.status, rebooting.raw_status) == (Status.PENDING, "restarting")
        again = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=30, interval=0.1)
        assert again.ssh_ready_address == running.ssh_ready_address
        cloud.wait_for_ssh(again, timeout=10)
        assert sshexec.run(again, "echo rebooted", identity_file=private).strip() == "rebooted"
    finally:
        cloud.delete_instance(created.id)
    with pytest.raises(gpucloud.NotFound):
        cloud.get_instance(created.id)  # destroyed at once


def test_lost_create_answer_is_adopted_without_the_password(cloud: DcdnCloud, world: World) -> None:
    world.set_faults(drop_create_rate=1.0)
    try:
        adopted = cloud.create_instance(SPEC.model_copy(update={"name": "dcdn-lost"}))
    finally:
        world.set_faults(drop_create_rate=0.0)
    try:
        assert adopted.instance.name == "dcdn-lost" and adopted.secrets == {}
        assert [i.id for i in cloud.list_instances() if i.name == "dcdn-lost"] == [adopted.instance.id]
    finally:
        _cleanup(cloud, "dcdn-lost")


def test_spec_rules_are_checked_before_any_request(cloud: DcdnCloud, emulator: EmulatorServer) -> None:
    before = emulator.world.request_count()
    for update, field in (({"location": None}, "location"), ({"image": None}, "image"), ({"name": "no_under"}, "name")):
        with pytest.raises(gpucloud.ValidationError) as info:
            cloud.create_instance(SPEC.model_copy(update=update))
        assert info.value.field == field
    with pytest.raises(gpucloud.Unsupported):
        cloud.create_instance(SPEC.model_copy(update={"tags": {"a": "b"}}))
    assert emulator.world.request_count() == before


def test_offers_are_plans_priced_per_hour_without_gpus(cloud: DcdnCloud) -> None:
    offers = {o.instance_type: o for o in cloud.list_offers()}
    small = offers["s-small"]
    assert small.price_per_hour == pytest.approx(5.0 / 730) and (small.vcpus, small.memory_gb) == (1, 2.0)
    assert all(o.gpu_count == 0 and o.gpu_model is None for o in offers.values())
    assert {loc.location for loc in small.locations} == {loc.id for loc in cloud.list_locations()}
    assert any(t["id"] == "docker" for t in cloud.list_templates())


def test_client_paces_itself_under_60_per_minute(overrides: Overrides, world: World) -> None:
    world.set_rate_limit("dcdncloud", PUBLISHED_RATE_LIMITS["dcdncloud"])
    with connect(overrides, "dcdncloud", requests_per_minute=None) as cloud:  # the adapter's own default
        limiter = cloud.transport.limiter
        assert limiter is not None and (limiter.rate * 60, limiter.capacity) == (60.0, 10.0)
        start, first = time.monotonic(), len(world.requests)
        for _ in range(12):
            cloud.list_locations()
        elapsed = time.monotonic() - start
    statuses = [r.status for r in world.requests[first:]]
    assert statuses == [200] * 12 and elapsed >= 1.8  # a burst of 10, then one a second


def test_real_limit_gives_429_and_the_retry_waits_retry_after(
    overrides: Overrides, emulator: EmulatorServer, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.set_rate_limit("dcdncloud", PUBLISHED_RATE_LIMITS["dcdncloud"])
    headers = {"Authorization": f"Bearer {emulator.credentials['dcdncloud']['token']}"}
    with httpx.Client(base_url=emulator.base_url("dcdncloud"), headers=headers, timeout=10) as raw:
        with ThreadPoolExecutor(12) as pool:  # the emulator answers in ~45 ms: fill the window in parallel
            assert set(pool.map(lambda _: raw.get("/regions").status_code, range(60))) == {200}
        refused = raw.get("/regions")
    retry_after = int(refused.headers["Retry-After"])
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited" and 55 <= retry_after <= 60
    slept = _sleeps_that_skip_time(world, monkeypatch)
    with connect(overrides, "dcdncloud") as cloud:
        assert cloud.list_locations()
    assert len(slept) == 1 and retry_after - 1 <= slept[0] <= retry_after + 2  # waited what the server asked
    assert [r.status for r in world.requests[-2:]] == [429, 200]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": "name_in_use", "message": "taken"}, ("name_in_use", "taken")),
        ({"error": {"code": "bad_request", "message": "no plan"}}, ("bad_request", "no plan")),
        ({"detail": "Not authenticated"}, (None, "Not authenticated")),
        ({"message": "slow down"}, (None, "slow down")),
        ("Bad Gateway", (None, "Bad Gateway")),
        (None, (None, None)),
        ([1, 2], (None, None)),
    ],
)
def test_undocumented_error_bodies_are_read_defensively(body: object, expected: tuple[str | None, str | None]) -> None:
    assert error_fields(body) == expected

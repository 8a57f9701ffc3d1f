"""Auth faults: tokens expiring or revoked mid-run are renewed without the caller noticing; when renewal fails
too the caller gets one clean AuthError; wrong credentials cost one request, not a retry storm.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import gpucloud
from gpucloud import InstanceSpec, Status, ensure
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.world import RequestRecord
from tests.ansible.test_modules import task
from tests.contract.specs import INSTANCE
from tests.pulumi.conftest import PROVIDERS, TYPES
from tests.pulumi.harness import DynamicProviderHarness

from .conftest import Tally, fconnect

Overrides = dict[str, dict[str, Any]]
DC = "datacrunch"


def token_requests(records: list[RequestRecord]) -> int:
    return sum(1 for r in records if r.provider == DC and r.path.startswith("/oauth2/token"))


@contextmanager
def on_first(world: Any, seen: Callable[[RequestRecord], bool], act: Callable[[], None]) -> Iterator[list[bool]]:
    """Run ``act`` (once) as soon as a request matching ``seen`` is logged: a fault in the middle of a run."""
    start = len(world.requests)
    fired: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if any(seen(r) for r in world.requests[start:]):
                act()
                fired.append(True)
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        stop.set()
        thread.join(timeout=5)


def polling(record: RequestRecord) -> bool:
    """A status poll of one DataCrunch instance: the create went through and the wait has begun."""
    return record.provider == DC and record.method == "GET" and record.path.startswith("/instances/")


def test_token_expired_or_revoked_mid_wait_is_renewed(
    fault_emulator: EmulatorServer, fault_overrides: Overrides
) -> None:
    world = fault_emulator.world
    with fconnect(fault_overrides, DC) as cloud:
        start = len(world.requests)
        spec = InstanceSpec(name="auth-renew", **INSTANCE[DC])
        with on_first(world, polling, lambda: world.revoke_access_tokens(DC)) as revoked:
            made = ensure.ensure_instance(cloud, spec, wait_timeout=60).after
        assert made is not None
        world.expire_tokens(DC)
        again = ensure.ensure_instance(cloud, spec, wait_timeout=60)
        grants = world.token_grants(DC)
        records = world.requests[start:]
        ensure.ensure_instance_absent(cloud, instance_id=made.id, wait_timeout=60)
    unauthorized = [r for r in records if r.provider == DC and r.status == 401]
    Tally(operations=2, faults=len(unauthorized)).publish()
    assert revoked, "the token was revoked while the run waited"
    assert made.status is Status.RUNNING and not again.changed and again.after is not None
    assert len(unauthorized) == 2, "one 401 each for the revoked and the expired token, each renewed once"
    assert grants.get("refresh_token", 0) >= 2, grants


def test_failed_renewal_is_one_clean_auth_error(fault_emulator: EmulatorServer, fault_overrides: Overrides) -> None:
    world = fault_emulator.world
    with fconnect(fault_overrides, DC, max_retries=8) as cloud:
        cloud.list_instances()
        start = len(world.requests)
        world.revoke_access_tokens(DC)
        world.set_faults(reject_auth=True)
        try:
            with pytest.raises(gpucloud.AuthError) as info:
                cloud.list_instances()
        finally:
            world.set_faults(reject_auth=False)
        records = world.requests[start:]
    Tally(operations=1, faults=token_requests(records)).publish()
    # The refused request, then one refresh grant and one client-credentials grant: nothing retried.
    assert len(records) == 3 and token_requests(records) == 2, [(r.method, r.path, r.status) for r in records]
    assert info.value.provider == DC and info.value.status_code == 401
    assert "could not obtain an access token" in str(info.value)


WRONG: dict[str, dict[str, str]] = {
    "datacrunch": {"client_secret": "wrong-secret-dc"},
    "voltagepark": {"token": "wrong-token-vp"},
    "dcdncloud": {"token": "wrong-token-dcdn"},
    "cloudnexus": {"token": "cn_test_wrong_token"},
    "computestacks": {"client_secret": "wrong-secret-cs"},
}


@pytest.mark.parametrize("provider", sorted(WRONG))
def test_wrong_credentials_are_one_clear_error(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, provider: str
) -> None:
    world = fault_emulator.world
    start = len(world.requests)
    with (
        fconnect(fault_overrides, provider, max_retries=8, **WRONG[provider]) as cloud,
        pytest.raises(gpucloud.AuthError) as info,
    ):
        cloud.list_instances()
    sent = [(r.method, r.path) for r in world.requests[start:] if r.provider == provider]
    Tally(operations=1).publish()
    # Nothing is sent twice (a listing that fetches collections in parallel sends each once: Voltage Park lists
    # VMs, bare-metal rentals and locations).
    assert len(sent) == len(set(sent)) <= 3, sent
    assert info.value.provider == provider and info.value.status_code in (401, 403)
    assert WRONG[provider].popitem()[1] not in str(info.value)


def test_auth_faults_through_pulumi_and_ansible(
    fault_emulator: EmulatorServer,
    fault_overrides: Overrides,
    fault_harness: DynamicProviderHarness,
    fault_ansible: Any,
) -> None:
    """Pulumi: the token is revoked while `up` waits for the machine -> renewed, created once. Ansible: the token
    is revoked and every grant refused while the task waits -> a clean AuthError; the next run adopts the
    machine that the failed run created."""
    world = fault_emulator.world
    start = len(world.requests)
    props = {"provider": DC, "name": "auth-pulumi", "wait_timeout": 60, **INSTANCE[DC]}
    with on_first(world, polling, lambda: world.revoke_access_tokens(DC)) as revoked_pulumi:
        state = fault_harness.up(props["name"], PROVIDERS["instance"], props, TYPES["instance"]).state

    def refuse_all() -> None:
        world.revoke_access_tokens(DC)
        world.set_faults(reject_auth=True)

    args = {"provider": DC, "name": "auth-ansible", "wait_timeout": 60, **INSTANCE[DC]}
    try:
        with on_first(world, polling, refuse_all) as revoked_ansible:
            failed = fault_ansible.play([task("instance", "made", ignore_errors=True, **args)])
    finally:
        world.set_faults(reject_auth=False)
    failed_tokens = token_requests(world.requests[start:])
    rerun = fault_ansible.play([task("instance", "made", **args)])
    with fconnect(fault_overrides, DC) as cloud:
        names = [i.name for i in cloud.list_instances() if i.name in ("auth-pulumi", "auth-ansible")]
        fault_harness.destroy(state)
        ensure.ensure_instance_absent(cloud, name="auth-ansible", wait_timeout=60)
    Tally(operations=3, faults=2, duplicates=len(names) - len(set(names))).publish()
    assert revoked_pulumi and revoked_ansible
    assert state.outputs["status"] == "running"
    got = failed["made"]
    assert got["failed"] and got["error_class"] == "AuthError" and got["provider"] == DC, got
    assert "Traceback" not in got["msg"] and got["http_status"] == 401
    # Each module process logs in once; the failed one then tried one refresh and one fresh grant, no more.
    assert failed_tokens <= 3 + 2, failed_tokens
    assert rerun.rc == 0 and rerun["made"]["changed"] is False, rerun.output[-2000:]
    assert rerun["made"]["instance"]["status"] == "running"
    assert sorted(names) == ["auth-ansible", "auth-pulumi"], "one machine each: adopted, not created again"

"""Server errors and rate limits: reads and power actions ride out 5xx and 429 bursts with jittered backoff,
no capacity fails cleanly and creates nothing, and all retrying of an operation ends within its wait_timeout.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import gpucloud
from gpucloud import InstanceSpec, Status, ensure
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer, FaultRule
from gpucloud.providers import implemented, provider_class
from tests.ansible.test_modules import task
from tests.contract.specs import INSTANCE, OTHER_TYPE

from .conftest import Tally, fconnect

Overrides = dict[str, dict[str, Any]]
ASYNC_CREATE = ("cloudnexus", "computestacks")
POWER = [p for p in implemented() if Capability.INSTANCE_START_STOP in provider_class(p).capabilities]


class Pauses:
    """The transport's retry pauses, recorded; taken on a virtual clock (the transport's deadline clock), so a
    Retry-After of 1 s costs no real second while the deadline arithmetic stays exactly as in production."""

    def __init__(self) -> None:
        self.taken: list[float] = []
        self.skipped = 0.0

    def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
        self.skipped += seconds

    def clock(self) -> float:
        return time.monotonic() + self.skipped

    def install(self, cloud: gpucloud.Provider) -> None:
        cloud.transport.sleep = self
        cloud.transport.clock = self.clock


@contextmanager
def no_capacity(world: Any, provider: str, cloud: gpucloud.Provider) -> Iterator[None]:
    import importlib

    module = importlib.import_module(f"gpucloud.emulator.{provider}")
    keys = {cloud.canonical_instance_type(INSTANCE[provider]["instance_type"]), *getattr(module, "PRESETS", {})}
    for key in keys:
        world.set_capacity(provider, key, None, False)
    try:
        yield
    finally:
        for key in keys:
            world.set_capacity(provider, key, None, True)


def _failed_actions(records: list[Any]) -> list[Any]:
    """Power actions (every non-GET here, token requests aside) that the fault answered with a 500."""
    return [r for r in records if r.method != "GET" and r.fault == "error"]


# Which requests fail is fixed by their count among their kind, never by dice over every request: status polls
# (how many depends on timing) cannot move a fault, so every run fails the same requests and counts the same.
# Per round: two 429s (rate_limit_burst) meet the listing, then its first retry meets a 500; the round's second
# power action (the start; every adapter sends power actions as PUT, POST or PATCH) meets a 500.
ROUND_FAULTS = (
    FaultRule("error", methods=("GET",), nth=(1,)),
    FaultRule("error", methods=("PUT", "POST", "PATCH"), nth=(2,)),
)
ROUNDS = 3


@pytest.mark.parametrize("provider", POWER)
def test_reads_and_actions_survive_5xx_and_429_bursts(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, provider: str
) -> None:
    world = fault_emulator.world
    pauses = Pauses()
    with fconnect(fault_overrides, provider, max_retries=8) as cloud:
        pauses.install(cloud)
        spec = InstanceSpec(name=f"err-{provider}", **INSTANCE[provider])
        made = ensure.ensure_instance(cloud, spec, wait_timeout=60).after
        assert made is not None
        start = len(world.requests)
        try:
            for round_ in range(ROUNDS):
                world.set_faults(rate_limit_burst=2, rules=ROUND_FAULTS)  # the rules count afresh each round
                assert made.id in {i.id for i in cloud.list_instances()}
                stopped = ensure.ensure_instance_power(cloud, "stopped", instance_id=made.id, wait_timeout=60)
                assert stopped.after is not None and stopped.after.status is Status.STOPPED, round_
                started = ensure.ensure_instance_power(cloud, "started", instance_id=made.id, wait_timeout=60)
                assert started.after is not None and started.after.status is Status.RUNNING, round_
                assert cloud.get_instance(made.id).name == spec.name
        finally:
            world.set_faults(rate_limit_burst=0, rules=())
            ensure.ensure_instance_absent(cloud, instance_id=made.id, wait_timeout=60)
        records = world.requests[start:]
    kinds = Counter(r.fault for r in records if r.was_fault)
    actions = _failed_actions(records)
    Tally(operations=4 * ROUNDS, faults=kinds.total()).publish()
    assert kinds == {"error": 2 * ROUNDS, "rate_limit_burst": 2 * ROUNDS}, kinds
    assert len(actions) == ROUNDS, "each round's start met a 5xx and was retried"
    limited = [p for p in pauses.taken if p >= 1.0]
    assert len(limited) >= 2 * ROUNDS, "every 429 waits out its Retry-After (1 s)"
    backoffs = [p for p in pauses.taken if p < 1.0]
    assert len(set(backoffs)) == len(backoffs) > 1, "backoff pauses are jittered, never the same twice"


@pytest.mark.parametrize(
    "provider", [p for p in implemented() if Capability.INSTANCES in provider_class(p).capabilities]
)
def test_no_capacity_fails_cleanly_and_creates_nothing(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, provider: str
) -> None:
    world = fault_emulator.world
    name = f"nocap-{provider}"
    with fconnect(fault_overrides, provider) as cloud, no_capacity(world, provider, cloud):
        start = len(world.requests)
        # CloudNexus and ComputeStacks create asynchronously: CloudNexus's job fails with the reason (a
        # ProviderError with its code, by design of that adapter); ComputeStacks's order fails and the reason is
        # in the project's event log, which the message points to. The others answer "no capacity" directly.
        expected = gpucloud.ProviderError if provider in ASYNC_CREATE else gpucloud.NoCapacity
        with pytest.raises(expected) as info:
            ensure.ensure_instance(cloud, InstanceSpec(name=name, **INSTANCE[provider]), wait_timeout=30)
        creates = [r for r in world.requests[start:] if r.method == "POST" and "token" not in r.path]
        assert cloud.find_instance(name) is None
    Tally(operations=1, faults=1, orphans=0).publish()
    assert info.value.provider == provider
    assert "capacity" in str(info.value).lower() or provider == "computestacks", str(info.value)
    assert provider != "cloudnexus" or info.value.code == "capacity_unavailable"
    if Capability.INSTANCE_AVAILABILITY_CHECK in cloud.capabilities:
        # The stock check answers first: no order is sent at all, and the error says where else to look.
        assert creates == [] and "in stock nowhere" in str(info.value), str(info.value)
    else:
        assert len(creates) == 1, "no capacity is final: the create is not sent again"
    assert str(info.value).startswith(f"{provider}: ") and "Traceback" not in str(info.value)


def test_retrying_ends_within_wait_timeout(fault_emulator: EmulatorServer, fault_overrides: Overrides) -> None:
    """429 forever with many retries allowed: the operation's wait_timeout, not max_retries, ends it.

    dcdncloud: its listing is one request at a time (Voltage Park's fetches three collections in parallel, each
    retried on its own, so how many of its requests fit in the time depends on how they interleave)."""
    world = fault_emulator.world
    pauses = Pauses()
    wait_timeout = 3.0
    with fconnect(fault_overrides, "dcdncloud", max_retries=100, retry_max_seconds=600) as cloud:
        pauses.install(cloud)
        start = len(world.requests)
        world.set_faults(rate_limit_burst=100_000)
        try:
            with pytest.raises(gpucloud.RateLimited):
                ensure.ensure_instance(
                    cloud, InstanceSpec(name="never", **INSTANCE["dcdncloud"]), wait_timeout=wait_timeout
                )
        finally:
            world.set_faults(rate_limit_burst=0)
        sent = len(world.requests) - start
    Tally(operations=1, faults=sent).publish()
    assert len(pauses.taken) >= 2 and sum(pauses.taken) < wait_timeout, pauses.taken
    # One attempt per Retry-After second that fits in wait_timeout, not 100 retries.
    assert sent <= wait_timeout, sent


def test_server_errors_through_ansible_playbook(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, fault_ansible: Any
) -> None:
    world = fault_emulator.world
    provider = "datacrunch"
    dc = {"provider": provider, "wait_timeout": 60, "max_retries": 8, **INSTANCE[provider]}
    name = "ans-5xx"
    tasks = [
        task("instance", "created", name=name, **dc),
        task("instance", "stopped", name=name, state="stopped", **dc),
        task("instance_info", "info", provider=provider, name=name),
        task("instance", "started", name=name, state="started", **dc),
        task("instance", "again", name=name, **dc),
        task(
            "instance", "nocap", name="ans-nocap", ignore_errors=True, **{**dc, "instance_type": OTHER_TYPE[provider]}
        ),
        # Permanent 429 (from here on) with 100 retries allowed: wait_timeout ends the task.
        task(
            "instance",
            "bounded",
            name="ans-bounded",
            ignore_errors=True,
            **{**dc, "wait_timeout": 3, "max_retries": 100},
        ),
    ]
    with fconnect(fault_overrides, provider) as cloud:
        start = len(world.requests)
        # Counted, not diced (see ROUND_FAULTS): the first stock check, and the first stop and the first start
        # (DataCrunch's actions are PUT /instances; the resend after each failed one is the 2nd and 4th PUT).
        stock_check = FaultRule("error", methods=("GET",), path="/instance-availability", nth=(1,))
        world.set_faults(rules=(stock_check, FaultRule("error", methods=("PUT",), nth=(1, 3))))
        world.set_capacity(provider, OTHER_TYPE[provider], None, False)  # only the "nocap" task asks for it
        try:
            # A pre_task flips the emulator into 429-forever just before the last task (control API, no fault).
            tasks.insert(
                -1,
                {
                    "name": "rate limit everything",
                    "ansible.builtin.uri": {
                        "url": f"{fault_emulator.url}/_emulator/faults",
                        "headers": fault_emulator.control_headers,
                        "method": "POST",
                        "body_format": "json",
                        "body": {"rate_limit_burst": 100000, "rules": []},
                    },
                },
            )
            play = fault_ansible.play(tasks)
        finally:
            world.set_faults(rules=(), rate_limit_burst=0)
            world.set_capacity(provider, OTHER_TYPE[provider], None, True)
        records = world.requests[start:]
        bounded = [r for r in records if r.fault == "rate_limit_burst"]
        leftover = [i.name for i in cloud.list_instances() if i.name in ("ans-nocap", "ans-bounded")]
        created = cloud.find_instance(name)
        if created is not None:
            ensure.ensure_instance_absent(cloud, instance_id=created.id, wait_timeout=60)
    errors = [r for r in records if r.fault == "error"]
    Tally(operations=6, faults=len(errors) + len(bounded), orphans=len(leftover)).publish()
    assert play.rc == 0, play.output[-3000:]
    assert [(r.method, r.path.split("/")[1]) for r in errors] == [
        ("GET", "instance-availability"),
        ("PUT", "instances"),
        ("PUT", "instances"),
    ], "the stock check, the stop and the start each met a 5xx (and were retried: the play passed)"
    assert play["created"]["instance"]["status"] == "running"
    assert play["stopped"]["instance"]["status"] == "stopped" and play["started"]["instance"]["status"] == "running"
    assert play["again"]["changed"] is False and play["info"]["instances"][0]["id"] == play["created"]["instance"]["id"]
    nocap = play["nocap"]
    # DataCrunch's stock check answers before any order is placed (no HTTP error to report, nothing ordered).
    assert nocap["failed"] and nocap["error_class"] == "NoCapacity" and nocap["http_status"] is None, nocap
    assert nocap["error_code"] == "no_capacity" and "nothing was ordered" in nocap["msg"], nocap
    assert "Traceback" not in nocap["msg"] and nocap["msg"].startswith(f"{provider}: ")
    bounded_result = play["bounded"]
    assert bounded_result["failed"] and bounded_result["error_class"] == "RateLimited", bounded_result
    # Retry-After is 1 s and wait_timeout 3 s: a handful of attempts, not 100.
    assert 2 <= len(bounded) <= 5, len(bounded)
    assert leftover == []

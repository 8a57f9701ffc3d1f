"""Check mode tells the truth: a stateful property test per provider, against the emulator over HTTP.

Each step is a "play" of one or two tasks (desired states: instance present with tags omitted, merged or purged
and one of two types, power states, instance absent, volume present attached or not, volume absent, and an
instance or volume whose target the same play creates first). The play runs in check mode first, then for real,
through the ``gpucloud.ensure`` functions both front-ends call. For every task the check-mode result must equal
the real one: ``changed``, action, the plan (fields, current and desired values) and the diff's ``before``; a
target the play creates is predicted as ``(to be created: NAME)`` and must turn out to be that resource. The diff's
``after`` is held to the plan: every in-place change the plan names is what the resource shows afterwards, and
running the same task again (check mode) finds nothing left to do.

The run is seeded: ``GPUCLOUD_PLAN_SEED`` picks the seed (else a random one, printed with any failure), so a failure
reproduces with that seed. Transitions are cheap: a dedicated emulator with instant lifecycle transitions and no
sshd, and a short poll interval.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, note, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test, precondition, rule

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, Status, VolumeSpec
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.ensure import (
    Outcome,
    ensure_instance,
    ensure_instance_absent,
    ensure_instance_power,
    ensure_ssh_key,
    ensure_ssh_key_absent,
    ensure_volume,
    ensure_volume_absent,
)
from gpucloud.providers import provider_class
from tests import figures

from ..conftest import IMPLEMENTED
from .specs import INSTANCE, OTHER_TYPE, VOLUME

# At least this many transitions (tasks run in check mode, then for real) per provider and run, 2,000 in all; the
# slower APIs (ComputeStacks makes ~17 requests a transition: projects, services, bastions) get fewer.
# GPUCLOUD_PLAN_TRANSITIONS (a multiplier) asks for a longer hunt.
TRANSITIONS = {"datacrunch": 480, "dcdncloud": 480, "cloudnexus": 400, "voltagepark": 400, "computestacks": 240}
SCALE = float(os.environ.get("GPUCLOUD_PLAN_TRANSITIONS") or 1)
SEED = int(os.environ.get("GPUCLOUD_PLAN_SEED") or random.randrange(2**32))
WAIT = {"wait_timeout": 30.0}
NEW = ("create", "replace")  # actions whose result is a new resource (a new instance runs once waited for)
PLACEHOLDER = re.compile(r"^\(to be created: (.+)\)$")
# Each example is a fresh sequence against real HTTP round trips, so examples are few and long; the too_slow
# health check measures exactly those round trips (by design here), not slow data generation.
SETTINGS = settings(
    max_examples=4,
    stateful_step_count=30,
    deadline=None,
    database=None,
    # No shrinking: each try is many HTTP round trips; the seed and the printed plays reproduce a failure.
    phases=(Phase.generate,),
    suppress_health_check=[HealthCheck.too_slow],
)
TAGS = st.one_of(st.none(), st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(["a", "b"]), max_size=2))


@pytest.fixture(scope="module")
def instant_emulator() -> Iterator[EmulatorServer]:
    """Lifecycle steps at once and no sshd: every transition costs only its HTTP round trips."""
    with EmulatorServer(provision_seconds=0.0, rate_limits={}, ssh=False) as server:
        yield server


def _connect(server: EmulatorServer, provider: str) -> gpucloud.Provider:
    return gpucloud.connect(
        provider, **{**client_overrides(server.url, server.settings)[provider], "poll_interval": 0.01}
    )


@dataclass(frozen=True)
class Task:
    """One desired state, as a playbook task or a resource declaration states it."""

    kind: str  # instance | power | instance_absent | volume | volume_absent
    name: str
    spec: InstanceSpec | VolumeSpec | None = None
    power: str = ""
    force_replace: bool = False

    def run(self, cloud: gpucloud.Provider, *, check_mode: bool) -> Outcome[Any] | gpucloud.GpuCloudError:
        try:
            return self._run(cloud, check_mode)
        except gpucloud.GpuCloudError as exc:
            return exc

    def _run(self, cloud: gpucloud.Provider, check_mode: bool) -> Outcome[Any]:
        if self.kind == "instance":
            assert isinstance(self.spec, InstanceSpec)
            return ensure_instance(cloud, self.spec, check_mode=check_mode, force_replace=self.force_replace, **WAIT)
        if self.kind == "power":
            return ensure_instance_power(cloud, self.power, name=self.name, check_mode=check_mode, **WAIT)  # type: ignore[arg-type]
        if self.kind == "instance_absent":
            return ensure_instance_absent(cloud, name=self.name, check_mode=check_mode, **WAIT)
        if self.kind == "volume":
            assert isinstance(self.spec, VolumeSpec)
            return ensure_volume(cloud, self.spec, check_mode=check_mode, force_replace=self.force_replace)
        return ensure_volume_absent(cloud, name=self.name, check_mode=check_mode)


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    """A check-mode placeholder for a resource the same play creates, as the id it turned out to have."""
    if isinstance(value, list | tuple):
        return [_resolve(v, ids) for v in value]
    match = PLACEHOLDER.match(value) if isinstance(value, str) else None
    return ids.get(match.group(1), value) if match else value


def summary(result: Outcome[Any] | gpucloud.GpuCloudError, ids: dict[str, str] | None = None) -> dict[str, Any]:
    """What a user reads from a task's result: changed, action, plan and the diff's before (or the error)."""
    ids = ids or {}
    if isinstance(result, gpucloud.GpuCloudError):
        # A refusal naming a resource the play creates names it by name in check mode and by id for real: then
        # the error's kind, code and field are compared, not its wording.
        message = None if "(to be created: " in str(result) else str(result)
        return {"error": type(result).__name__, "code": result.code, "field": getattr(result, "field", None)} | (
            {"message": message} if message else {}
        )
    changes = [(c.field, _resolve(c.current, ids), _resolve(c.desired, ids)) for c in result.plan.updates]
    replaces = [(c.field, c.current, c.desired) for c in result.plan.replacements]
    return {
        "changed": result.changed,
        "action": str(result.action),
        "updates": changes,
        "replacements": replaces,
        "before": result.diff()["before"],
    }


def _shows(after: Any, change_field: str, desired: Any) -> bool:
    """Whether the resource after the real run shows an in-place change the plan promised."""
    if change_field == "volumes":
        return set(desired) <= set(after.volume_ids)
    if change_field == "attached_to":
        return list(after.attached_to) == list(desired)
    return bool(getattr(after, change_field) == desired)


@dataclass
class Tally:
    transitions: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)


TALLY = Tally()


class PlanTruth(RuleBasedStateMachine):
    """Random desired states for one provider; subclasses (one per provider) set ``cloud`` and ``keys``."""

    cloud: gpucloud.Provider
    keys: tuple[str, ...] = ()
    runs = 0

    def __init__(self) -> None:
        super().__init__()
        PlanTruth.runs += 1
        prefix = f"pt{PlanTruth.runs}-{self.cloud.name[:4]}"
        self.instances = [f"{prefix}-i{k}" for k in range(2)]
        self.volumes = [f"{prefix}-v{k}" for k in range(2)]

    def can(self, *capabilities: Capability) -> bool:
        return all(self.cloud.supports(c) for c in capabilities)

    # --- tasks ------------------------------------------------------------------------------------------
    def instance_task(self, name: str, *, other_type: bool, tags: Any, purge: bool, force: bool, **extra: Any) -> Task:
        base = dict(INSTANCE[self.cloud.name])
        if other_type:
            base["instance_type"] = OTHER_TYPE[self.cloud.name]
        if self.can(Capability.INSTANCE_TAGS):
            base.update(tags=tags, purge_tags=purge)
        spec = InstanceSpec(name=name, ssh_keys=self.keys, **base, **extra)
        return Task("instance", name, spec, force_replace=force)

    def volume_task(self, name: str, *, attach_to: str | None, size: int = 10, force: bool = False) -> Task:
        spec = VolumeSpec(name=name, size_gb=size, attach_to=attach_to, **VOLUME[self.cloud.name])
        return Task("volume", name, spec, force_replace=force)

    # --- the play: check mode, then for real, then the comparison -----------------------------------------
    def play(self, *tasks: Task) -> None:
        note(f"play: {[(t.kind, t.name, t.power or t.spec) for t in tasks]}")
        predicted = [t.run(self.cloud, check_mode=True) for t in tasks]
        done = [t.run(self.cloud, check_mode=False) for t in tasks]
        ids = self.ids_by_name()
        for task, check, real in zip(tasks, predicted, done, strict=True):
            TALLY.transitions[self.cloud.name] += 1
            said, did = summary(check, ids), summary(real)
            if "error" in said and "message" not in said:
                did.pop("message", None)
            if said != did:
                TALLY.mismatches.append(f"{self.cloud.name} {task.kind} {task.name}: check {said} != real {did}")
            assert said == did, f"check mode said {said}\nthe real run did {did}"
            if isinstance(real, Outcome):
                self.holds_to_plan(task, real)

    def holds_to_plan(self, task: Task, real: Outcome[Any]) -> None:
        """The real result shows what the plan promised, and nothing is left to do for the same task."""
        if str(real.action) == "update" and real.after is not None:
            for change in real.plan.updates:
                assert _shows(real.after, change.field, change.desired), f"{change} not done: {real.after}"
        instance = task.kind in ("instance", "power")
        if instance and real.after is not None and (task.power in ("started", "restarted") or str(real.action) in NEW):
            assert real.after.status is Status.RUNNING, real.after
        if task.power == "stopped" and real.after is not None:
            assert real.after.status is Status.STOPPED, real.after
        if task.power != "restarted":
            again = task.run(self.cloud, check_mode=True)
            assert isinstance(again, Outcome) and not again.changed, f"not converged: {summary(again)}"

    def ids_by_name(self) -> dict[str, str]:
        found = {i.name: i.id for i in self.cloud.list_instances()}
        if self.can(Capability.VOLUMES):
            found.update({v.name: v.id for v in self.cloud.list_volumes()})
        return found

    # --- rules ------------------------------------------------------------------------------------------
    @rule(slot=st.integers(0, 1), other_type=st.booleans(), tags=TAGS, purge=st.booleans(), force=st.booleans())
    def instance_present(self, slot: int, other_type: bool, tags: Any, purge: bool, force: bool) -> None:
        name = self.instances[slot]
        self.play(self.instance_task(name, other_type=other_type, tags=tags, purge=purge, force=force))

    @precondition(lambda self: self.can(Capability.INSTANCE_START_STOP))
    @rule(slot=st.integers(0, 1), power=st.sampled_from(["started", "stopped", "restarted"]))
    def instance_power(self, slot: int, power: str) -> None:
        self.play(Task("power", self.instances[slot], power=power))

    @rule(slot=st.integers(0, 1))
    def instance_absent(self, slot: int) -> None:
        self.play(Task("instance_absent", self.instances[slot]))

    @precondition(lambda self: self.can(Capability.VOLUME_CREATE, Capability.VOLUME_ATTACH))
    @rule(slot=st.integers(0, 1), to=st.sampled_from([None, 0, 1]), grow=st.booleans())
    def volume_present(self, slot: int, to: int | None, grow: bool) -> None:
        """Attached to an existing instance or to none (an instance that does not exist fails for real only:
        check mode takes it to be created earlier in the same run, which is the next rule's business)."""
        existing = {i.name for i in self.cloud.list_instances()}
        attach = self.instances[to] if to is not None and self.instances[to] in existing else None
        self.play(self.volume_task(self.volumes[slot], attach_to=attach, size=20 if grow else 10))

    @precondition(lambda self: self.can(Capability.VOLUME_DELETE))
    @rule(slot=st.integers(0, 1))
    def volume_absent(self, slot: int) -> None:
        self.play(Task("volume_absent", self.volumes[slot]))

    @precondition(lambda self: self.can(Capability.VOLUME_CREATE, Capability.VOLUME_ATTACH))
    @rule(slot=st.integers(0, 1), vslot=st.integers(0, 1), tags=TAGS)
    def instance_then_volume_attached_to_it(self, slot: int, vslot: int, tags: Any) -> None:
        """The volume's ``attach_to`` names the instance the same play creates (or already has)."""
        name = self.instances[slot]
        first = self.instance_task(name, other_type=False, tags=tags, purge=True, force=False)
        self.play(first, self.volume_task(self.volumes[vslot], attach_to=name))

    @precondition(lambda self: self.can(Capability.VOLUME_CREATE, Capability.INSTANCE_VOLUMES_AT_CREATE))
    @rule(slot=st.integers(0, 1), vslot=st.integers(0, 1))
    def volume_then_instance_using_it(self, slot: int, vslot: int) -> None:
        """The instance's ``volumes`` names a volume the same play creates (or already has)."""
        volume = self.volumes[vslot]
        task = self.instance_task(
            self.instances[slot], other_type=False, tags=None, purge=True, force=False, volumes=(volume,)
        )
        self.play(self.volume_task(volume, attach_to=None), task)

    def teardown(self) -> None:
        for name in self.instances:
            ensure_instance_absent(self.cloud, name=name, **WAIT)
        if self.can(Capability.VOLUME_DELETE):
            for name in self.volumes:
                ensure_volume_absent(self.cloud, name=name)


def _run_until(machine: type[PlanTruth], target: int, provider: str) -> None:
    """Run seeded batches of examples until ``target`` transitions were tried (batches follow from the seed)."""
    batch = 0
    while TALLY.transitions[provider] < target:
        test: Callable[[], None] = get_state_machine_test(machine, settings=SETTINGS)
        seed(SEED + batch)(test)()
        batch += 1


@pytest.mark.timeout(900)  # a long property run by design; the limit only catches a hang
@pytest.mark.parametrize("provider", IMPLEMENTED)
def test_check_mode_result_equals_the_real_run(
    provider: str, instant_emulator: EmulatorServer, keypair: tuple[Any, str]
) -> None:
    with _connect(instant_emulator, provider) as cloud:
        keys: tuple[str, ...] = (keypair[1],)
        key = None
        if cloud.supports(Capability.SSH_KEYS):
            key = ensure_ssh_key(cloud, SshKeySpec(name=f"plan truth {provider}", public_key=keypair[1])).after
            assert key is not None
            keys = (key.name,)
        machine = type(f"PlanTruth_{provider}", (PlanTruth,), {"cloud": cloud, "keys": keys})
        before, wanted = TALLY.transitions[provider], int(TRANSITIONS[provider] * SCALE)
        try:
            _run_until(machine, before + wanted, provider)
        except BaseException as exc:
            exc.add_note(f"reproduce with GPUCLOUD_PLAN_SEED={SEED}")
            raise
        finally:
            tried = TALLY.transitions[provider] - before
            figures.record("transitions tried", tried)
            figures.record("plan mismatches", sum(m.startswith(provider + " ") for m in TALLY.mismatches))
            if key is not None:
                ensure_ssh_key_absent(cloud, key_id=key.id)
        assert not [m for m in TALLY.mismatches if m.startswith(provider + " ")]
        assert tried >= wanted
        assert cloud.list_instances() == [], "every example tears down what it made"


# --- regressions the property run found (each a check-mode "changed" the real run could not carry out) -------
OFFLINE_ATTACH = [p for p in IMPLEMENTED if provider_class(p).volume_attach_statuses is not None]


@pytest.mark.parametrize("provider", OFFLINE_ATTACH)
def test_volume_changes_on_a_running_instance_are_refused_in_check_mode_too(
    provider: str, instant_emulator: EmulatorServer, keypair: tuple[Any, str]
) -> None:
    """DataCrunch detaches (so deletes) and attaches only while the instance is offline: check mode said
    ``detach+delete`` and the real run failed at the API. Both now refuse alike, before any write."""
    world = instant_emulator.world
    with _connect(instant_emulator, provider) as cloud:
        key = ensure_ssh_key(cloud, SshKeySpec(name=f"offline key {provider}", public_key=keypair[1])).after
        assert key is not None
        spec = InstanceSpec(name=f"offline-{provider}", ssh_keys=(key.name,), **INSTANCE[provider])
        instance = ensure_instance(cloud, spec, **WAIT).after
        assert instance is not None
        ensure_instance_power(cloud, "stopped", instance_id=instance.id, **WAIT)
        volume_spec = VolumeSpec(name=f"offline-vol-{provider}", size_gb=10, attach_to=spec.name, **VOLUME[provider])
        assert ensure_volume(cloud, volume_spec).changed
        ensure_instance_power(cloud, "started", instance_id=instance.id, **WAIT)
        try:
            writes = world.request_count(method="PUT") + world.request_count(method="DELETE")
            for check_mode in (True, False):
                with pytest.raises(gpucloud.Conflict, match="only while the instance is stopped") as refused:
                    ensure_volume_absent(cloud, name=volume_spec.name, check_mode=check_mode)
                assert refused.value.code == "instance_state" and "state: stopped" in str(refused.value)
                with pytest.raises(gpucloud.Conflict, match="can detach"):
                    ensure_volume(cloud, volume_spec.model_copy(update={"attach_to": ""}), check_mode=check_mode)
            assert world.request_count(method="PUT") + world.request_count(method="DELETE") == writes

            ensure_instance_power(cloud, "stopped", instance_id=instance.id, **WAIT)
            said = ensure_volume_absent(cloud, name=volume_spec.name, check_mode=True)
            did = ensure_volume_absent(cloud, name=volume_spec.name)
            assert summary(said) == summary(did) and did.action == "detach+delete"
        finally:
            ensure_instance_absent(cloud, instance_id=instance.id, **WAIT)
            ensure_volume_absent(cloud, name=volume_spec.name)
            ensure_ssh_key_absent(cloud, key_id=key.id)


USES_VOLUMES = [
    p
    for p in IMPLEMENTED
    if {Capability.VOLUME_CREATE, Capability.INSTANCE_VOLUMES_AT_CREATE} <= provider_class(p).capabilities
]


@pytest.mark.parametrize("provider", USES_VOLUMES)
def test_an_instance_naming_a_volume_attached_elsewhere_is_refused_in_check_mode_too(
    provider: str, instant_emulator: EmulatorServer, keypair: tuple[Any, str]
) -> None:
    """Check mode said ``create`` for an instance whose ``volumes`` named a volume attached to another instance;
    the real create failed at the API. Both now name ``volumes[0]`` and the fix, before any write."""
    with _connect(instant_emulator, provider) as cloud:
        key = ensure_ssh_key(cloud, SshKeySpec(name=f"busy key {provider}", public_key=keypair[1])).after
        assert key is not None
        volume = ensure_volume(cloud, VolumeSpec(name=f"busy-vol-{provider}", size_gb=10, **VOLUME[provider])).after
        assert volume is not None
        owner = InstanceSpec(
            name=f"busy-a-{provider}", ssh_keys=(key.name,), volumes=(volume.name,), **INSTANCE[provider]
        )
        first = ensure_instance(cloud, owner, **WAIT).after
        assert first is not None and cloud.get_volume(volume.id).attached_to == (first.id,)
        second = owner.model_copy(update={"name": f"busy-b-{provider}"})
        try:
            for check_mode in (True, False):
                with pytest.raises(gpucloud.Conflict, match=r"volumes\[0\]: .* is attached to instance") as refused:
                    ensure_instance(cloud, second, check_mode=check_mode, **WAIT)
                assert refused.value.code == "volume_attached" and "detach it first" in str(refused.value)
            assert cloud.find_instance(second.name) is None
            assert not ensure_instance(cloud, owner, check_mode=True, **WAIT).changed  # its own volume is fine
        finally:
            ensure_instance_absent(cloud, instance_id=first.id, **WAIT)
            ensure_volume_absent(cloud, volume_id=volume.id)
            ensure_ssh_key_absent(cloud, key_id=key.id)

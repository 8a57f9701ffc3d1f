"""Fleets: N instances named from one pattern (``trainer-{index}``), made to exist concurrently.

Both front-ends use this: the Ansible ``instance`` module's ``count`` / ``exact_count`` and (for validation and
names) the Pulumi fleet helper. Rules:

- member names are ``pattern`` with ``{index}`` replaced by 1, 2, 3 ...; an instance whose name has that shape
  (any index) is a member, unless it is being deleted;
- ``count=N`` makes sure at least N members exist, ``exact_count=N`` exactly N: missing members get the lowest
  free indices, surplus members are removed from the highest index down;
- everything that needs no API call is checked first; then one list call plans the whole fleet;
- creates (and deletes) run concurrently, paced by the provider's client-side rate limiter; the wait for all of
  them costs one list call per poll cycle instead of one call per instance.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from gpucloud import errors, namelock, waiters
from gpucloud.capabilities import Capability
from gpucloud.catalogue import validate_instance_catalogue
from gpucloud.engine import unique_by_name
from gpucloud.ensure import DEFAULT_TIMEOUT, Outcome, ensure_instance, os_disk_to_compare, time_limit
from gpucloud.models import Instance, InstanceSpec, Status
from gpucloud.pagination import in_caller_context
from gpucloud.providers.base import Provider
from gpucloud.reconcile import Action, plan_instance
from gpucloud.transport import is_transient

INDEX = "{index}"
# Concurrent create/delete calls; the transport's rate limiter still paces them to the provider's limit.
DEFAULT_WORKERS = 8
# Statuses of instances on their way out: they are no longer members and their index is free again.
_LEAVING = frozenset({Status.DELETING, Status.DELETED})

T = TypeVar("T")
V = TypeVar("V")


# --- names ------------------------------------------------------------------------------------------
def validate_pattern(pattern: str, count: int, *, option: str = "name", count_option: str = "count") -> None:
    """Reject a pattern or count that cannot describe a fleet, before any request."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise errors.ValidationError(f"{count_option} must be a whole number >= 0, got {count!r}", field=count_option)
    if not pattern:
        raise errors.ValidationError(f"{option} must not be empty", field=option)
    placeholders = pattern.count(INDEX)
    if placeholders > 1:
        raise errors.ValidationError(
            f"{option} {pattern!r} may contain {INDEX} only once (it is replaced by the member's number)",
            field=option,
        )
    if "{" in pattern.replace(INDEX, "") or "}" in pattern.replace(INDEX, ""):
        raise errors.ValidationError(
            f"{option} {pattern!r} has braces other than the {INDEX} placeholder", field=option
        )
    if placeholders == 0 and count > 1:
        raise errors.ValidationError(
            f"{option} {pattern!r} needs the {INDEX} placeholder (e.g. '{pattern}-{INDEX}') "
            f"for {count_option}={count}: every instance needs its own name",
            field=option,
        )


def member_name(pattern: str, index: int) -> str:
    """The name of member ``index`` (1-based)."""
    return pattern.replace(INDEX, str(index)) if INDEX in pattern else pattern


def member_names(pattern: str, count: int) -> list[str]:
    return [member_name(pattern, i) for i in range(1, count + 1)]


def index_of(pattern: str, name: str) -> int | None:
    """The member number ``name`` has under ``pattern``, or None if it is not a member's name."""
    if INDEX not in pattern:
        return 1 if name == pattern else None
    prefix, suffix = pattern.split(INDEX)
    match = re.fullmatch(re.escape(prefix) + r"([1-9][0-9]*)" + re.escape(suffix), name)
    return int(match.group(1)) if match else None


# --- planning ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetPlan:
    """What a fleet needs: ``members`` found by index, indices to ``create`` and to ``remove``."""

    pattern: str
    wanted: int
    exact: bool
    members: Mapping[int, Instance]
    create: tuple[int, ...]
    remove: tuple[int, ...]

    @property
    def changed(self) -> bool:
        return bool(self.create or self.remove)

    @property
    def kept(self) -> list[int]:
        return sorted(i for i in self.members if i not in self.remove)

    def names(self, indices: Iterable[int]) -> list[str]:
        return [member_name(self.pattern, i) for i in indices]


def plan_fleet(pattern: str, instances: Iterable[Instance], *, count: int, exact: bool, provider: str) -> FleetPlan:
    """Which members exist among ``instances`` and which indices to create or remove to reach ``count``."""
    found: dict[int, list[Instance]] = {}
    for instance in instances:
        index = index_of(pattern, instance.name)
        if index is not None and instance.status not in _LEAVING:
            found.setdefault(index, []).append(instance)
    # Every instance under one index has the same name (the index has no leading zeros): the same
    # "several with one name" Conflict as a lookup by name.
    members = {
        index: unique_by_name(same, member_name(pattern, index), "instance", provider) or same[0]
        for index, same in sorted(found.items())
    }
    create: list[int] = []
    candidate = 1
    while len(members) + len(create) < count:
        if candidate not in members:
            create.append(candidate)
        candidate += 1
    surplus = len(members) - count if exact else 0
    remove = tuple(sorted(members, reverse=True)[: max(0, surplus)])
    return FleetPlan(pattern, count, exact, members, tuple(create), remove)


# --- outcome ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetOutcome:
    """After the run (predicted in check mode): members in index order and what was done to reach it."""

    changed: bool
    plan: FleetPlan
    instances: tuple[Instance, ...]
    created: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    # name -> secrets the provider showed once at create (e.g. a root password); callers must keep them secret.
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)


class FleetError(errors.GpuCloudError):
    """Some members failed; ``details`` names what was created, removed and what failed, so a re-run can finish."""


# --- running ----------------------------------------------------------------------------------------
def run_concurrently(fn: Callable[[T], V], items: Sequence[T], workers: int) -> list[V | errors.GpuCloudError]:
    """``fn`` over ``items`` on up to ``workers`` threads; each result or its GpuCloudError, in item order.

    Workers run in copies of the caller's context: the fleet's time limit bounds their requests, and each
    member's own operation (``ensure_instance``'s) sets its limit in its own copy, unseen by the others.
    """

    def one(item: T) -> V | errors.GpuCloudError:
        try:
            return fn(item)
        except errors.GpuCloudError as exc:
            return exc

    if len(items) <= 1 or workers <= 1:
        return [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="gpucloud-fleet") as pool:
        return list(pool.map(in_caller_context(one), items))


def _describe(instances: Mapping[str, Instance | None], wanted: frozenset[Status]) -> str:
    ready = sum(1 for i in instances.values() if i is not None and i.status in wanted)
    waiting = [
        f"{i.name} {i.status.value} ({i.raw_status})" if i is not None else f"{ref} not listed"
        for ref, i in instances.items()
        if i is None or i.status not in wanted
    ]
    more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
    return f"{ready}/{len(instances)} {'/'.join(s.value for s in wanted)}" + (
        f"; waiting for {', '.join(waiting[:3])}{more}" if waiting else ""
    )


def wait_for_instances(
    cloud: Provider,
    instance_ids: Sequence[str],
    statuses: Sequence[Status],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    started: float | None = None,
    interval: float | None = None,
) -> dict[str, Instance]:
    """Wait until every instance is in one of ``statuses`` with one list call per poll cycle, not one per instance.

    An instance not listed yet (a list that lags a create) counts as not ready. A member that reaches a terminal
    status it was not waited for fails the wait, naming it.
    """
    wanted = frozenset(statuses)
    ids = list(dict.fromkeys(instance_ids))
    if not ids:
        return {}

    def fetch() -> dict[str, Instance | None]:
        listed = {i.id: i for i in cloud.list_instances()}
        return {ref: listed.get(ref) for ref in ids}

    found = waiters.poll(
        fetch,
        done=lambda seen: all(i is not None and i.status in wanted for i in seen.values()),
        failed=lambda seen: any(
            i is not None and i.status in cloud.terminal_statuses and i.status not in wanted for i in seen.values()
        ),
        describe=lambda seen: _describe(seen, wanted),
        timeout=timeout,
        interval=interval or cloud.config.poll_interval,
        started=started,
        transient=is_transient,
        what=f"{len(ids)} {cloud.name} instances to be {'/'.join(s.value for s in wanted)}",
    )
    return {ref: inst for ref, inst in found.items() if inst is not None}


def wait_for_instances_gone(
    cloud: Provider, instance_ids: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, started: float | None = None
) -> None:
    """Wait until none of the instances is listed any more (or each shows as deleted), one list call per cycle."""
    ids = set(instance_ids)
    if not ids:
        return

    def fetch() -> list[Instance]:
        return [i for i in cloud.list_instances() if i.id in ids and i.status is not Status.DELETED]

    waiters.poll(
        fetch,
        done=lambda left: not left,
        describe=lambda left: ", ".join(f"{i.name} {i.status.value}" for i in left[:3]) or "gone",
        timeout=timeout,
        interval=cloud.config.poll_interval,
        started=started,
        transient=is_transient,
        what=f"{len(ids)} {cloud.name} instances to be deleted",
    )


def _fleet_lock(cloud: Provider, pattern: str, timeout: float) -> contextlib.AbstractContextManager[None]:
    return namelock.name_lock(
        namelock.canonical_scope(cloud.name, str(cloud.config.base_url)), "instance fleet", pattern, timeout=timeout
    )


def _member_spec(spec: InstanceSpec, pattern: str, index: int) -> InstanceSpec:
    return spec.model_copy(update={"name": member_name(pattern, index)})


def validate_fleet(cloud: Provider, spec: InstanceSpec, count: int, *, count_option: str = "count") -> None:
    """Every check that needs no request: the pattern, and the provider's rules for the longest member name."""
    validate_pattern(spec.name, count, count_option=count_option)
    if count:
        cloud.validate_instance_spec(_member_spec(spec, spec.name, count))


def ensure_fleet(
    cloud: Provider,
    spec: InstanceSpec,
    *,
    count: int | None = None,
    exact_count: int | None = None,
    check_mode: bool = False,
    wait: bool = True,
    wait_timeout: float = DEFAULT_TIMEOUT,
    wait_for_ssh: bool = False,
    force_replace: bool = False,
    workers: int = DEFAULT_WORKERS,
) -> FleetOutcome:
    """Make the members of the fleet ``spec.name`` (a pattern) number ``count`` or more / exactly ``exact_count``.

    Existing members are reconciled with ``spec`` as :func:`gpucloud.ensure.ensure_instance` would (in-place
    updates; replacement only with ``force_replace``). Nothing but reads is sent in check mode.
    """
    if (count is None) == (exact_count is None):
        raise errors.ValidationError("give exactly one of count and exact_count", field="count")
    option = "count" if exact_count is None else "exact_count"
    wanted = count if exact_count is None else exact_count
    assert wanted is not None
    validate_fleet(cloud, spec, wanted, count_option=option)
    # Every request of the fleet, in whichever worker, ends within wait_timeout (workers inherit the limit).
    with time_limit(cloud, wait_timeout):
        return _ensure_fleet(
            cloud, spec, wanted, exact_count is not None, check_mode, wait, wait_timeout, wait_for_ssh, force_replace,
            workers,
        )  # fmt: skip


def _ensure_fleet(
    cloud: Provider,
    spec: InstanceSpec,
    wanted: int,
    exact: bool,
    check_mode: bool,
    wait: bool,
    wait_timeout: float,
    wait_for_ssh: bool,
    force_replace: bool,
    workers: int,
) -> FleetOutcome:
    started = time.monotonic()
    # As ensure_instance: one creator per fleet on this machine. Two runs at once (say the task on several hosts
    # without run_once) would both see members missing and create them twice; the second waits, then finds them.
    lock = contextlib.nullcontext() if check_mode else _fleet_lock(cloud, spec.name, wait_timeout)
    with lock:
        plan = plan_fleet(spec.name, cloud.list_instances(), count=wanted, exact=exact, provider=cloud.name)
        if plan.create:
            # As ensure_instance before a create: catalogue reads only, once for the whole fleet, so a wrong type,
            # image or location fails before any member is created.
            validate_instance_catalogue(cloud, _member_spec(spec, spec.name, plan.create[0]))
        members: dict[int, Instance] = {i: plan.members[i] for i in plan.kept}
        updated = _reconcile_members(cloud, spec, plan, members, check_mode, wait, wait_timeout, force_replace, workers)
        if check_mode:
            return FleetOutcome(
                plan.changed or bool(updated),
                plan,
                tuple(members[i] for i in sorted(members)),
                tuple(plan.names(plan.create)),
                tuple(plan.names(plan.remove)),
                tuple(updated),
            )
        failures: dict[str, str] = {}
        secrets: dict[str, Mapping[str, str]] = {}
        specs = [_member_spec(spec, spec.name, i) for i in plan.create]
        created: dict[int, Instance] = {}
        for index, member, result in zip(
            plan.create, specs, run_concurrently(cloud.create_instance, specs, workers), strict=True
        ):
            if isinstance(result, errors.GpuCloudError):
                failures[member.name] = str(result)
                continue
            created[index] = result.instance
            if result.secrets:
                secrets[member.name] = dict(result.secrets)
        members.update(created)
        # The poll schedule counts from here: every new member boots at least this long, so each one is seen
        # within 10 % of its own boot time (counting from the fleet's start would allow more lag for the last).
        creates_done = time.monotonic()

    removed = _remove_members(cloud, plan, wait, wait_timeout, workers, failures)
    if wait:
        booting = set(created) | {i for i in plan.kept if plan.members[i].status is Status.PENDING}
        _wait_ready(cloud, members, booting, creates_done, started + wait_timeout, wait_for_ssh, failures)
    created_names = tuple(plan.names(sorted(created)))
    if failures:
        raise FleetError(
            f"{len(failures)} fleet member(s) failed: "
            + "; ".join(f"{name}: {why}" for name, why in sorted(failures.items())),
            provider=cloud.name,
            details={"created": list(created_names), "removed": list(removed), "failed": failures},
        )
    return FleetOutcome(
        plan.changed or bool(updated),
        plan,
        tuple(members[i] for i in sorted(members)),
        created_names,
        tuple(removed),
        tuple(updated),
        secrets,
    )


def _member_plans(cloud: Provider, spec: InstanceSpec, plan: FleetPlan, members: Mapping[int, Instance]) -> list[int]:
    """Indices of members that differ from ``spec``. As ensure.plan_for_instance, but SSH key references are
    resolved once for the whole fleet (one list call) instead of once per member. The OS disk, a create-time choice
    like spot, is compared as for one instance (a read per member, only when the spec sets a size)."""
    key_ids: list[str] | None = None
    if spec.ssh_keys and cloud.supports(Capability.SSH_KEYS):
        key_ids, _ = cloud.resolve_ssh_keys(spec.ssh_keys)
    desired_type = cloud.canonical_instance_type(spec.instance_type)
    return [
        index
        for index, current in members.items()
        if plan_instance(
            _member_spec(spec, plan.pattern, index),
            current,
            cloud.capabilities,
            desired_instance_type=desired_type,
            desired_ssh_key_ids=key_ids,
            current_os_disk_gb=os_disk_to_compare(cloud, spec, current),
        ).action
        is not Action.NONE
    ]


def _reconcile_members(
    cloud: Provider,
    spec: InstanceSpec,
    plan: FleetPlan,
    members: dict[int, Instance],
    check_mode: bool,
    wait: bool,
    wait_timeout: float,
    force_replace: bool,
    workers: int,
) -> list[str]:
    """Bring drifted members in line with ``spec``; returns their names. Members already matching cost no call."""
    to_fix = _member_plans(cloud, spec, plan, members) if members else []

    def fix(index: int) -> Outcome[Instance]:
        return ensure_instance(
            cloud,
            _member_spec(spec, plan.pattern, index),
            check_mode=check_mode,
            wait=wait,
            wait_timeout=wait_timeout,
            force_replace=force_replace,
            instance_id=members[index].id,
        )

    names = []
    for index, result in zip(to_fix, run_concurrently(fix, to_fix, workers), strict=True):
        if isinstance(result, errors.GpuCloudError):
            raise result
        if result.changed:
            names.append(member_name(plan.pattern, index))
            if result.after is not None:
                members[index] = result.after
    return names


def _remove_members(
    cloud: Provider, plan: FleetPlan, wait: bool, wait_timeout: float, workers: int, failures: dict[str, str]
) -> list[str]:
    """Delete the surplus members (highest index first) concurrently; wait for all with one list per cycle."""
    doomed = [(member_name(plan.pattern, i), plan.members[i]) for i in plan.remove]
    results = run_concurrently(lambda pair: cloud.delete_instance(pair[1].id), doomed, workers)
    removed = []
    for (name, instance), result in zip(doomed, results, strict=True):
        if isinstance(result, errors.GpuCloudError):
            failures[name] = str(result)
        else:
            removed.append((name, instance.id))
    if wait and removed:
        try:
            wait_for_instances_gone(cloud, [rid for _, rid in removed], timeout=wait_timeout)
        except errors.GpuCloudError as exc:
            failures.update({name: str(exc) for name, _ in removed})
    return [name for name, _ in removed]


def _wait_ready(
    cloud: Provider,
    members: dict[int, Instance],
    booting: set[int],
    started: float,
    deadline: float,
    wait_for_ssh: bool,
    failures: dict[str, str],
) -> None:
    """``booting`` members running (one list call per cycle), then answering SSH if asked (banners, no API calls).

    Members that are stopped on purpose are left alone, as ensure_instance leaves a stopped instance.
    """
    waiting = {i: members[i] for i in sorted(booting) if members[i].status is not Status.RUNNING}
    try:
        ready = wait_for_instances(
            cloud,
            [m.id for m in waiting.values()],
            [Status.RUNNING],
            timeout=max(1.0, deadline - time.monotonic()),
            started=started,
        )
    except errors.GpuCloudError as exc:
        failures.update({m.name: str(exc) for m in waiting.values()})
        return
    for index, member in waiting.items():
        members[index] = ready.get(member.id, member)
    if not wait_for_ssh:
        return
    indices = sorted(i for i in booting if members[i].status is Status.RUNNING)
    results = run_concurrently(
        lambda i: cloud.wait_for_ssh(members[i], timeout=max(1.0, deadline - time.monotonic())),
        indices,
        max(1, len(indices)),
    )
    for index, result in zip(indices, results, strict=True):
        if isinstance(result, errors.GpuCloudError):
            failures[members[index].name] = str(result)

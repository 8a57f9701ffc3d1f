"""Fleets (count / exact_count over a name pattern) against the emulator, for every provider."""

from __future__ import annotations

import itertools
import time

import pytest

import gpucloud
from gpucloud import InstanceSpec, Status
from gpucloud.fleet import FleetError, ensure_fleet, member_names, wait_for_instances

from .specs import INSTANCE

FAST = {"wait_timeout": 60.0}
_serial = itertools.count()


def _pattern(cloud: gpucloud.Provider, what: str) -> str:
    # Short and DNS-safe for every provider; unique per test so the session emulator's leftovers never count.
    return f"fl{what}{next(_serial)}-{{index}}"


def _spec(cloud: gpucloud.Provider, pattern: str) -> InstanceSpec:
    return InstanceSpec(name=pattern, **INSTANCE[cloud.name])


def _names(cloud: gpucloud.Provider, pattern: str) -> list[str]:
    prefix = pattern.split("{index}")[0]
    return sorted(i.name for i in cloud.list_instances() if i.name.startswith(prefix) and i.status != Status.DELETED)


def _writes(world: object) -> int:
    return sum(1 for r in world.requests if r.method in ("POST", "PUT", "PATCH", "DELETE") and "token" not in r.path)  # type: ignore[attr-defined]


def test_count_creates_then_is_a_no_op_and_exact_count_removes_the_highest(
    cloud: gpucloud.Provider, emulator: object
) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    pattern = _pattern(cloud, "a")
    spec = _spec(cloud, pattern)

    writes = _writes(world)
    planned = ensure_fleet(cloud, spec, count=3, check_mode=True)
    assert planned.changed and planned.created == tuple(member_names(pattern, 3)) and planned.instances == ()
    assert _writes(world) == writes and _names(cloud, pattern) == [], "check mode sends no writes"

    made = ensure_fleet(cloud, spec, count=3, **FAST)
    assert made.changed and made.created == tuple(member_names(pattern, 3)) and made.removed == ()
    assert [i.name for i in made.instances] == member_names(pattern, 3)
    assert all(i.status is Status.RUNNING for i in made.instances)
    assert _names(cloud, pattern) == sorted(member_names(pattern, 3))

    writes = _writes(world)
    again = ensure_fleet(cloud, spec, count=3, **FAST)
    assert not again.changed and again.created == () and again.removed == ()
    assert [i.id for i in again.instances] == [i.id for i in made.instances]
    assert _writes(world) == writes, "an unchanged fleet sends no writes"
    assert not ensure_fleet(cloud, spec, count=2, **FAST).changed, "count is a minimum: 3 members satisfy 2"

    shrink_plan = ensure_fleet(cloud, spec, exact_count=1, check_mode=True)
    assert shrink_plan.changed and shrink_plan.removed == (pattern.format(index=3), pattern.format(index=2))
    assert _writes(world) == writes and len(_names(cloud, pattern)) == 3

    shrunk = ensure_fleet(cloud, spec, exact_count=1, **FAST)
    assert shrunk.changed and set(shrunk.removed) == {pattern.format(index=2), pattern.format(index=3)}
    assert [i.name for i in shrunk.instances] == [pattern.format(index=1)]
    assert shrunk.instances[0].id == made.instances[0].id, "the lowest index survives untouched"
    assert _names(cloud, pattern) == [pattern.format(index=1)]

    assert ensure_fleet(cloud, spec, exact_count=0, **FAST).removed == (pattern.format(index=1),)
    assert _names(cloud, pattern) == []


@pytest.mark.parametrize("cloud", ["dcdncloud", "datacrunch"], indirect=True)
def test_missing_members_fill_the_lowest_free_index(cloud: gpucloud.Provider) -> None:
    pattern = _pattern(cloud, "g")
    spec = _spec(cloud, pattern)
    first = ensure_fleet(cloud, spec, count=3, **FAST)
    cloud.delete_instance(first.instances[1].id)
    cloud.wait_for_instance_gone(first.instances[1].id, timeout=30)

    refilled = ensure_fleet(cloud, spec, exact_count=3, **FAST)
    assert refilled.created == (pattern.format(index=2),) and refilled.removed == ()
    assert [i.name for i in refilled.instances] == member_names(pattern, 3)
    assert [refilled.instances[0].id, refilled.instances[2].id] == [first.instances[0].id, first.instances[2].id]
    ensure_fleet(cloud, spec, exact_count=0, **FAST)


@pytest.mark.parametrize("cloud", ["dcdncloud"], indirect=True)
def test_the_wait_lists_once_per_cycle_instead_of_getting_each_instance(
    cloud: gpucloud.Provider, emulator: object
) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    pattern = _pattern(cloud, "w")
    world.clear_requests()
    began = time.monotonic()
    made = ensure_fleet(cloud, _spec(cloud, pattern), count=4, **FAST)
    elapsed = time.monotonic() - began
    assert len(made.instances) == 4 and all(i.status is Status.RUNNING for i in made.instances)
    gets = [r for r in world.requests if r.method == "GET" and r.path.startswith("/instances/")]
    lists = [r for r in world.requests if r.method == "GET" and r.path.rstrip("/") == "/instances"]
    assert gets == [], "no per-instance polling"
    # One list to plan, then at most one per poll interval for all four (per-instance polling would be 4 a cycle).
    assert 2 <= len(lists) <= 2 + elapsed / cloud.config.poll_interval, (len(lists), elapsed)
    ensure_fleet(cloud, _spec(cloud, pattern), exact_count=0, **FAST)


@pytest.mark.parametrize("cloud", ["dcdncloud"], indirect=True)
def test_pattern_errors_name_the_option_before_any_request(cloud: gpucloud.Provider, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    before = len(world.requests)
    spec = InstanceSpec(name="trainer", **INSTANCE[cloud.name])
    with pytest.raises(gpucloud.ValidationError, match=r"\{index\}.*count=2") as info:
        ensure_fleet(cloud, spec, count=2)
    assert info.value.field == "name"
    with pytest.raises(gpucloud.ValidationError, match="exact_count") as bad:
        ensure_fleet(cloud, spec, exact_count=-1)
    assert bad.value.field == "exact_count"
    with pytest.raises(gpucloud.ValidationError, match="only once"):
        ensure_fleet(cloud, spec.model_copy(update={"name": "a{index}b{index}"}), count=2)
    with pytest.raises(gpucloud.ValidationError, match="hostname"):  # the provider's own name rules, longest name
        ensure_fleet(cloud, spec.model_copy(update={"name": "x" * 62 + "{index}"}), count=10)
    assert len(world.requests) == before
    # One instance needs no placeholder: the name is used as it is.
    solo = ensure_fleet(cloud, spec.model_copy(update={"name": f"solo{next(_serial)}"}), count=1, **FAST)
    assert [i.name for i in solo.instances] == [solo.plan.pattern] and solo.created == (solo.plan.pattern,)
    ensure_fleet(cloud, spec.model_copy(update={"name": solo.plan.pattern}), exact_count=0, **FAST)


@pytest.mark.parametrize("cloud", ["dcdncloud"], indirect=True)
def test_failed_creates_are_reported_together_and_a_rerun_finishes(cloud: gpucloud.Provider, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    pattern = _pattern(cloud, "f")
    spec = _spec(cloud, pattern)
    ensure_fleet(cloud, spec, count=1, **FAST)
    world.set_capacity(cloud.name, spec.instance_type, None, False)
    try:
        with pytest.raises(FleetError) as info:
            ensure_fleet(cloud, spec, count=3, **FAST)
    finally:
        world.set_capacity(cloud.name, spec.instance_type, None, True)
    assert sorted(info.value.details["failed"]) == [pattern.format(index=2), pattern.format(index=3)]  # type: ignore[index]
    assert "2 fleet member(s) failed" in info.value.message
    finished = ensure_fleet(cloud, spec, count=3, **FAST)
    assert finished.created == (pattern.format(index=2), pattern.format(index=3))
    ensure_fleet(cloud, spec, exact_count=0, **FAST)


@pytest.mark.parametrize("cloud", ["dcdncloud", "voltagepark"], indirect=True)
def test_drifted_members_are_reconciled_and_replacement_needs_force(cloud: gpucloud.Provider) -> None:
    pattern = _pattern(cloud, "d")
    spec = _spec(cloud, pattern)
    ensure_fleet(cloud, spec, count=2, **FAST)
    from .specs import OTHER_TYPE

    bigger = spec.model_copy(update={"instance_type": OTHER_TYPE[cloud.name]})
    with pytest.raises(gpucloud.Conflict, match="force_replace"):
        ensure_fleet(cloud, bigger, count=2, check_mode=True)
    replaced = ensure_fleet(cloud, bigger, count=2, force_replace=True, **FAST)
    assert replaced.changed and set(replaced.updated) == set(member_names(pattern, 2)) and replaced.created == ()
    assert {i.instance_type for i in replaced.instances} == {cloud.canonical_instance_type(bigger.instance_type)}
    assert not ensure_fleet(cloud, bigger, count=2, **FAST).changed
    ensure_fleet(cloud, bigger, exact_count=0, **FAST)


@pytest.mark.parametrize("cloud", ["datacrunch"], indirect=True)  # the provider whose OS disk size is chosen
def test_a_changed_os_disk_size_is_a_replace_of_every_member_as_for_one_instance(cloud: gpucloud.Provider) -> None:
    pattern = _pattern(cloud, "disk")
    spec = _spec(cloud, pattern).model_copy(update={"os_disk_size_gb": 60})
    try:
        ensure_fleet(cloud, spec, count=2, **FAST)
        assert not ensure_fleet(cloud, spec, count=2, **FAST).changed  # the same size: nothing to do
        bigger = spec.model_copy(update={"os_disk_size_gb": 80})
        with pytest.raises(gpucloud.Conflict, match="os_disk_size_gb") as info:
            ensure_fleet(cloud, bigger, count=2, check_mode=True)
        assert info.value.details == {"fields": ["os_disk_size_gb"]}
        replaced = ensure_fleet(cloud, bigger, count=2, force_replace=True, **FAST)
        assert replaced.changed and set(replaced.updated) == set(member_names(pattern, 2)) and replaced.created == ()
        assert [cloud.os_disk_size_gb(i) for i in replaced.instances] == [80, 80]
        assert not ensure_fleet(cloud, bigger, count=2, **FAST).changed
    finally:
        ensure_fleet(cloud, spec, exact_count=0, **FAST)


@pytest.mark.parametrize("cloud", ["datacrunch"], indirect=True)  # dcdncloud itself refuses a second name
def test_duplicate_member_names_are_a_conflict(cloud: gpucloud.Provider) -> None:
    pattern = _pattern(cloud, "x")
    spec = _spec(cloud, pattern)
    for _ in range(2):
        cloud.create_instance(spec.model_copy(update={"name": pattern.format(index=1)}))
    with pytest.raises(gpucloud.Conflict, match="2 instances named"):
        ensure_fleet(cloud, spec, count=1)
    for inst in cloud.list_instances():
        if inst.name == pattern.format(index=1):
            cloud.delete_instance(inst.id)


@pytest.mark.parametrize("cloud", ["datacrunch"], indirect=True)
def test_wait_for_instances_times_out_naming_what_is_missing(cloud: gpucloud.Provider) -> None:
    with pytest.raises(gpucloud.errors.Timeout, match="no-such-id not listed"):
        wait_for_instances(cloud, ["no-such-id"], [Status.RUNNING], timeout=0.5)
    assert wait_for_instances(cloud, [], [Status.RUNNING]) == {}


@pytest.mark.parametrize("cloud", ["datacrunch"], indirect=True)  # an API that accepts a second instance per name
def test_two_runs_at_once_make_one_fleet(cloud: gpucloud.Provider, overrides: dict[str, dict[str, object]]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ..conftest import connect

    pattern = _pattern(cloud, "c")
    spec = _spec(cloud, pattern)

    def run(_: int) -> tuple[str, ...]:
        with connect(overrides, cloud.name) as own:
            return ensure_fleet(own, spec, count=3, **FAST).created

    with ThreadPoolExecutor(2) as pool:
        created = list(pool.map(run, range(2)))
    assert sorted(created, key=len) == [(), tuple(member_names(pattern, 3))], "one run creates, the other adopts"
    assert _names(cloud, pattern) == sorted(member_names(pattern, 3))
    ensure_fleet(cloud, spec, exact_count=0, **FAST)

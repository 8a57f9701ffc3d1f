"""Fleet planning without a provider: member names, which indices exist, what to create and to remove."""

from __future__ import annotations

import threading

import pytest

from gpucloud import errors
from gpucloud.fleet import index_of, member_names, plan_fleet, run_concurrently, validate_pattern
from gpucloud.models import Instance, Status


def inst(name: str, status: Status = Status.RUNNING, rid: str | None = None) -> Instance:
    return Instance(id=rid or f"id-{name}", provider="p", name=name, status=status, raw_status=status.value)


def test_names_count_from_one() -> None:
    assert member_names("trainer-{index}", 3) == ["trainer-1", "trainer-2", "trainer-3"]
    assert member_names("{index}.gpu", 2) == ["1.gpu", "2.gpu"]
    assert member_names("solo", 1) == ["solo"] and member_names("x-{index}", 0) == []


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("trainer-1", 1),
        ("trainer-12", 12),
        ("trainer-0", None),
        ("trainer-01", None),  # not a name the pattern produces
        ("trainer-", None),
        ("trainer-1x", None),
        ("xtrainer-1", None),
        ("trainer.1", None),
    ],
)
def test_index_of_accepts_only_names_the_pattern_produces(name: str, index: int | None) -> None:
    assert index_of("trainer-{index}", name) == index


def test_regex_characters_in_a_pattern_are_literal() -> None:
    assert index_of("a.b-{index}", "a.b-2") == 2 and index_of("a.b-{index}", "axb-2") is None
    assert index_of("solo", "solo") == 1 and index_of("solo", "solo2") is None


@pytest.mark.parametrize(
    ("pattern", "count", "field", "message"),
    [
        ("trainer", 2, "name", "needs the {index} placeholder"),
        ("t-{index}-{index}", 2, "name", "only once"),
        ("t-{i}", 2, "name", "braces"),
        ("t-{index}", -1, "count", ">= 0"),
        ("", 1, "name", "empty"),
    ],
)
def test_validate_pattern_names_the_option(pattern: str, count: int, field: str, message: str) -> None:
    with pytest.raises(errors.ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")) as info:
        validate_pattern(pattern, count)
    assert info.value.field == field


def test_validate_pattern_uses_the_callers_option_names() -> None:
    with pytest.raises(errors.ValidationError, match="exact_count=3") as info:
        validate_pattern("box", 3, option="name_pattern", count_option="exact_count")
    assert info.value.field == "name_pattern"
    validate_pattern("box", 1)
    validate_pattern("box", 0)


def test_plan_creates_the_lowest_free_indices_up_to_count() -> None:
    have = [inst("t-2"), inst("t-5"), inst("other"), inst("t-x")]
    plan = plan_fleet("t-{index}", have, count=4, exact=False, provider="p")
    assert sorted(plan.members) == [2, 5] and plan.create == (1, 3) and plan.remove == ()
    assert plan.names(plan.create) == ["t-1", "t-3"]


def test_count_never_removes_but_exact_count_removes_from_the_top() -> None:
    have = [inst(f"t-{i}") for i in (1, 2, 3, 7)]
    at_least = plan_fleet("t-{index}", have, count=2, exact=False, provider="p")
    assert not at_least.changed and at_least.kept == [1, 2, 3, 7]
    exact = plan_fleet("t-{index}", have, count=2, exact=True, provider="p")
    assert exact.remove == (7, 3) and exact.create == () and exact.kept == [1, 2]
    assert plan_fleet("t-{index}", have, count=0, exact=True, provider="p").remove == (7, 3, 2, 1)
    assert not plan_fleet("t-{index}", have, count=4, exact=True, provider="p").changed


def test_instances_on_their_way_out_are_not_members() -> None:
    have = [inst("t-1"), inst("t-2", Status.DELETING), inst("t-3", Status.DELETED), inst("t-4", Status.STOPPED)]
    plan = plan_fleet("t-{index}", have, count=3, exact=True, provider="p")
    assert sorted(plan.members) == [1, 4] and plan.create == (2,) and plan.remove == ()


def test_two_live_instances_with_one_member_name_are_a_conflict() -> None:
    have = [inst("t-1", rid="a"), inst("t-1", rid="b"), inst("t-1", Status.DELETED, rid="c")]
    with pytest.raises(errors.Conflict, match=r"2 instances named 't-1'.*\(a, b\)") as info:
        plan_fleet("t-{index}", have, count=1, exact=True, provider="p")
    assert info.value.details == {"ids": ["a", "b"]}


def test_run_concurrently_keeps_order_returns_errors_and_overlaps() -> None:
    barrier = threading.Barrier(3, timeout=10)

    def work(n: int) -> int:
        barrier.wait()  # all three must be in flight at once, or this times out
        if n == 2:
            raise errors.NoCapacity("none left")
        return n * 10

    results = run_concurrently(work, [1, 2, 3], workers=3)
    assert results[0] == 10 and results[2] == 30 and isinstance(results[1], errors.NoCapacity)
    assert run_concurrently(lambda n: n, [], workers=4) == []

"""The poll schedule: lag proportional to the time waited, few calls, pauses counted from each call's start."""

from __future__ import annotations

import itertools

import pytest

from gpucloud import errors
from gpucloud.waiters import next_poll, poll


class FakeTime:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def _run(ready_at: float, *, call_seconds: float = 0.0, started: float | None = None) -> tuple[list[float], FakeTime]:
    fake = FakeTime()
    calls: list[float] = []

    def fetch() -> bool:
        calls.append(fake.now)
        fake.now += call_seconds  # the answer takes this long; the state is read when the call arrives
        return calls[-1] >= ready_at

    poll(
        fetch, done=bool, describe=str, timeout=3600, what="x", started=started,
        clock=lambda: fake.now, sleep=fake.sleep,
    )  # fmt: skip
    return calls, fake


@pytest.mark.parametrize("ready_at", [0.1, 3.0, 24.9, 25.1, 29.99, 30.0, 31.0, 45.0, 90.0, 299.0, 1800.0])
def test_a_state_is_seen_within_ten_percent_or_one_interval(ready_at: float) -> None:
    calls, _ = _run(ready_at)
    lag = calls[-1] - ready_at
    assert 0 <= lag <= max(2.5, 0.1 * ready_at) + 1e-9
    assert calls[-2] < ready_at, "it returns at the first call that sees the state"


def test_thirty_seconds_cost_at_most_thirteen_calls() -> None:
    calls, _ = _run(30.0)
    assert len(calls) <= 13
    assert len(_run(300.0)[0]) <= 40 and len(_run(600.0)[0]) <= 60  # the figures the docstring gives


def test_pauses_count_from_the_start_of_each_call() -> None:
    calls, fake = _run(10.0, call_seconds=1.0)
    assert [round(b - a, 6) for a, b in itertools.pairwise(calls)] == [2.5] * (len(calls) - 1)
    assert all(s == pytest.approx(1.5) for s in fake.sleeps)


def test_a_call_slowed_by_pacing_still_leaves_half_a_pause() -> None:
    calls, fake = _run(12.0, call_seconds=4.0)
    assert all(s == pytest.approx(1.25) for s in fake.sleeps), fake.sleeps
    assert all(b - a == pytest.approx(5.25) for a, b in itertools.pairwise(calls))


def test_started_continues_the_schedule_of_an_earlier_start() -> None:
    fake = FakeTime(now=200.0)
    calls: list[float] = []

    def fetch() -> bool:
        calls.append(fake.now)
        return len(calls) == 3

    poll(fetch, done=bool, describe=str, timeout=60, what="x", started=100.0, clock=lambda: fake.now, sleep=fake.sleep)
    assert fake.sleeps == [pytest.approx(10.0), pytest.approx(11.0)]  # 10% of the 100 s, then 110 s, waited
    fresh = FakeTime(now=200.0)
    poll(
        lambda: fresh.now >= 205,
        done=bool,
        describe=str,
        timeout=60,
        what="x",
        clock=lambda: fresh.now,
        sleep=fresh.sleep,
    )
    assert fresh.sleeps[0] == pytest.approx(2.5), "without started the wait starts at the shortest interval"


def test_started_in_the_future_is_treated_as_now() -> None:
    fake = FakeTime(now=5.0)
    calls: list[float] = []

    def fetch() -> bool:
        calls.append(fake.now)
        return len(calls) == 2

    poll(fetch, done=bool, describe=str, timeout=60, what="x", started=50.0, clock=lambda: fake.now, sleep=fake.sleep)
    assert fake.sleeps == [pytest.approx(2.5)]


def test_the_last_pause_is_cut_at_the_deadline() -> None:
    fake = FakeTime()
    with pytest.raises(errors.Timeout, match=r"after 4s.*last state: False"):
        poll(lambda: False, done=bool, describe=str, timeout=4, what="x", clock=lambda: fake.now, sleep=fake.sleep)
    assert fake.sleeps == [pytest.approx(2.5), pytest.approx(1.5)] and fake.now == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("elapsed", "expected"), [(0.0, 2.5), (10.0, 2.5), (25.0, 2.5), (40.0, 4.0), (150.0, 15.0), (10_000.0, 15.0)]
)
def test_next_poll_is_a_tenth_of_the_time_waited_within_bounds(elapsed: float, expected: float) -> None:
    assert next_poll(elapsed, 2.5, 15.0, 0.1) == pytest.approx(expected)

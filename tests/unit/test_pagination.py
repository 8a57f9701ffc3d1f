"""Pagination helpers and the shared token bucket.

Concurrency is proven with barriers, not clocks: a barrier that needs every page's fetch to arrive before any
may return only opens when those fetches really are in flight at the same time (sequential code times out).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from gpucloud.pagination import Page, fetch_each, fetch_numbered_pages, fetch_offset_pages, in_parallel
from gpucloud.ratelimit import TokenBucket

ITEMS = list(range(1, 951))  # 950 items: 10 pages of 100, the last one short


def _offset_api(
    items: list[int], *, total: bool, calls: list[tuple[int, int]], gate: Callable[[int], None] = lambda _: None
) -> Callable[[int, int], Page[int]]:
    lock = threading.Lock()

    def fetch(offset: int, limit: int) -> Page[int]:
        with lock:
            calls.append((offset, limit))
        gate(offset)
        chunk = items[offset : offset + limit]
        return Page(chunk, len(items) if total else None, offset + limit < len(items))

    return fetch


def test_known_total_fetches_the_other_pages_concurrently_and_in_order() -> None:
    rest = threading.Barrier(9, timeout=10)  # pages 2..10 must all be in flight together

    def gate(offset: int) -> None:
        if offset:
            rest.wait()

    calls: list[tuple[int, int]] = []
    got = fetch_offset_pages(_offset_api(ITEMS, total=True, calls=calls, gate=gate), 100, workers=16)
    assert got == ITEMS
    assert sorted(calls) == [(n * 100, 100) for n in range(10)]


def test_without_a_total_pages_are_walked_one_after_another() -> None:
    in_flight = 0
    lock = threading.Lock()
    peak = 0
    calls: list[tuple[int, int]] = []
    inner = _offset_api(ITEMS, total=False, calls=calls)

    def fetch(offset: int, limit: int) -> Page[int]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            return inner(offset, limit)
        finally:
            with lock:
                in_flight -= 1

    assert fetch_offset_pages(fetch, 100, workers=16) == ITEMS
    assert calls == [(n * 100, 100) for n in range(10)] and peak == 1


def test_workers_bound_the_pages_in_flight() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    three = threading.Barrier(3, timeout=10)

    def fetch(page: int, per_page: int) -> Page[int]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        if page > 1 and page <= 4:
            three.wait()  # the first three of the rest run together: at least 3 workers are used
        with lock:
            in_flight -= 1
        start = (page - 1) * per_page
        return Page(ITEMS[start : start + per_page], len(ITEMS))

    assert fetch_numbered_pages(fetch, 100, workers=3) == ITEMS
    assert peak == 3


def test_numbered_pages_start_at_the_first_page() -> None:
    seen: list[int] = []

    def fetch(page: int, per_page: int) -> Page[int]:
        seen.append(page)
        return Page(ITEMS[page * per_page : (page + 1) * per_page], len(ITEMS))

    assert fetch_numbered_pages(fetch, 100, first_page=0, workers=1) == ITEMS
    assert seen == list(range(10))


def test_a_single_page_is_one_request() -> None:
    calls: list[tuple[int, int]] = []
    assert fetch_offset_pages(_offset_api([1, 2, 3], total=True, calls=calls), 100) == [1, 2, 3]
    assert calls == [(0, 100)]


def test_fetch_each_runs_every_key_once_concurrently() -> None:
    together = threading.Barrier(4, timeout=10)
    calls: list[str] = []

    def fetch(key: str) -> str:
        calls.append(key)
        together.wait()
        return key.upper()

    assert fetch_each(fetch, ["a", "b", "a", "c", "d"], workers=8) == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert sorted(calls) == ["a", "b", "c", "d"]
    assert fetch_each(fetch, [], workers=8) == {}


def test_in_parallel_runs_both_at_once() -> None:
    both = threading.Barrier(2, timeout=10)

    def side(value: int) -> Callable[[], int]:
        def run() -> int:
            both.wait()
            return value

        return run

    assert in_parallel(side(1), side(2)) == (1, 2)


def test_in_parallel_raises_what_either_side_raised() -> None:
    def boom() -> int:
        raise ValueError("there")

    with pytest.raises(ValueError, match="there"):
        in_parallel(lambda: 1, boom)


def test_token_bucket_is_shared_safely_by_threads() -> None:
    """Twenty threads at one instant: five go at once (the burst), the rest queue one second apart."""
    now = [100.0]
    start = threading.Barrier(20, timeout=10)
    bucket = TokenBucket(60, burst=5, clock=lambda: now[0], sleep=lambda _: None)
    delays: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        start.wait()
        delay = bucket.acquire()
        with lock:
            delays.append(delay)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(delays) == pytest.approx([0.0] * 5 + [float(n) for n in range(1, 16)])


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(120, burst=2, clock=lambda: now[0], sleep=lambda _: None)
    assert [bucket.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])
    now[0] = 10.0  # long idle: back to a full burst, never more
    assert [bucket.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])

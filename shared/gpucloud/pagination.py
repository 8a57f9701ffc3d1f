"""Collect every item of a paginated list.

Once the first page tells the total, the remaining pages are independent and are fetched concurrently
(bounded by ``workers``); without a total the pages are walked one after another while ``has_next`` holds.
Pacing is not done here: every request goes through the provider's transport, whose token bucket is shared
by all threads of one connection, so more workers never means more than the provider's request rate.

Worker threads run in a copy of the caller's context (:func:`in_caller_context`): the page fetches of an operation
are part of it, so its time limit (kept in a context variable by the transport) bounds them too.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, ParamSpec, TypeVar

from gpucloud import errors

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
P = ParamSpec("P")

# The most items one list walk reads (docs/errors.md): far above any account the provider docs
# describe, so only a server that never stops paging (or claims a total of billions) reaches it.
MAX_LIST_ITEMS = 100_000


def in_caller_context(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn``, to be run on worker threads in a copy of the context of the thread calling this now.

    Threads start with an empty context, so without this a worker's requests would escape the operation's time
    limit. Each call gets its own copy: one context cannot be entered by two threads at once.
    """
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return run


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int | None = None
    has_next: bool = False


def _endless(provider: str, seen: str) -> errors.MalformedResponse:
    return errors.MalformedResponse(
        f"{provider}: the list never ends: {seen}; gpucloud stops rather than page forever "
        f"(at most {MAX_LIST_ITEMS} items are read; a misbehaving server or a wrong api_url?)",
        provider=provider,
    )


def _collect(fetch: Callable[[int], Page[T]], first_index: int, page_size: int, workers: int, provider: str) -> list[T]:
    max_pages = math.ceil(MAX_LIST_ITEMS / page_size) if page_size else 1
    first = fetch(first_index)
    items = list(first.items)
    if first.total is not None:
        pages = math.ceil(first.total / page_size) if page_size else 1
        if pages > max_pages:
            raise _endless(provider, f"the first page claims a total of {first.total} items")
        rest = range(first_index + 1, first_index + pages)
        if rest:
            with ThreadPoolExecutor(max_workers=max(1, min(workers, len(rest)))) as pool:
                for page in pool.map(in_caller_context(fetch), rest):
                    items.extend(page.items)
        return items
    page, index = first, first_index
    while page.has_next and page.items:
        if index - first_index + 1 >= max_pages:
            raise _endless(provider, f"page {index} still says another page follows")
        previous, index = page, index + 1
        page = fetch(index)
        if page.items == previous.items:
            # A server that ignores the page parameter answers every page alike: the walk would never end.
            raise _endless(provider, f"page {index} repeats page {index - 1}")
        items.extend(page.items)
    return items


def fetch_offset_pages(
    fetch: Callable[[int, int], Page[T]], page_size: int, *, workers: int = 4, provider: str = "the API"
) -> list[T]:
    """For ``offset``/``limit`` APIs: ``fetch(offset, limit)``. ``provider`` names the server in errors."""
    return _collect(lambda i: fetch(i * page_size, page_size), 0, page_size, workers, provider)


def fetch_numbered_pages(
    fetch: Callable[[int, int], Page[T]],
    page_size: int,
    *,
    first_page: int = 1,
    workers: int = 4,
    provider: str = "the API",
) -> list[T]:
    """For ``page``/``per_page`` APIs: ``fetch(page_number, per_page)``. ``provider`` names the server in errors."""
    return _collect(lambda n: fetch(n, page_size), first_page, page_size, workers, provider)


def in_parallel(here: Callable[[], A], there: Callable[[], B]) -> tuple[A, B]:
    """``(here(), there())`` with ``there`` on a thread: two independent reads cost one round trip, not two."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(in_caller_context(there))
        return here(), pending.result()


def fetch_each(fetch: Callable[[K], R], keys: Iterable[K], *, workers: int = 4) -> dict[K, R]:
    """``{key: fetch(key)}`` with up to ``workers`` requests in flight (e.g. one sub-resource per parent)."""
    unique = list(dict.fromkeys(keys))
    if len(unique) <= 1:
        return {key: fetch(key) for key in unique}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
        return dict(zip(unique, pool.map(in_caller_context(fetch), unique), strict=True))

"""Helpers every provider part uses the same way: look-ups that 404, error codes, validation text, pages, the
request predicates a :class:`~gpucloud.emulator.base.ProviderSpec` takes.

Only logic that is the same for every provider lives here; what each API says (its messages, code names, body
shapes, page metadata) stays in the provider's part and is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from gpucloud.emulator.world import JSONDict

T = TypeVar("T")

# Codes the app and the fault middleware pass for their own errors (429, 500); a provider with other names for
# those statuses maps them through :func:`error_code`.
GENERIC_CODES = frozenset({"too_many_requests", "server_error"})


def find(items: Mapping[str, T], rid: object, missing: Callable[[], Exception]) -> T:
    """``items[str(rid)]``, or raise what ``missing()`` builds (the provider's own not-found answer)."""
    item = items.get(str(rid))
    if item is None:
        raise missing()
    return item


def error_code(
    status: int,
    code: str | None,
    names: Mapping[int, str],
    *,
    client: str,
    server: str,
    generic: Collection[str] = GENERIC_CODES,
) -> str:
    """The provider's code for an error: ``code`` as given unless it is absent or one of ``generic``, else the
    provider's name for ``status`` (``client`` / ``server`` for a status it names nothing for)."""
    if code is not None and code not in generic:
        return code
    return names.get(status, server if status >= 500 else client)


def validation_message(errors: list[Any]) -> str:
    """FastAPI's request validation errors as one line: ``field.path: message; ...`` (``body`` for the whole)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body') or 'body'}: {err.get('msg', 'invalid')}"
        for err in errors
    )


ErrorBody = Callable[[int, str, str | None], JSONDict]


def validation_error_as(error_body: ErrorBody, code: str, empty: str) -> Callable[[list[Any]], tuple[int, JSONDict]]:
    """A ``ProviderSpec.validation_error`` for APIs that answer bad requests 400 with ``code`` in their own error
    body (not FastAPI's 422): the message lists the fields, ``empty`` when FastAPI names none."""
    return lambda errors: (400, error_body(400, validation_message(errors) or empty, code))


def http_error_as(error_body: ErrorBody, not_found: str) -> Callable[[int, str], JSONDict]:
    """A ``ProviderSpec.http_error`` (unknown route, wrong method) in the provider's error body, with its own text
    for an unknown path."""
    return lambda status, detail: error_body(status, not_found if status == 404 else detail, None)


def page_of(items: list[JSONDict], page: int, per_page: int) -> list[JSONDict]:
    """Page ``page`` (from 1) of ``per_page`` items: the slice every page-numbered API returns."""
    start = (page - 1) * per_page
    return items[start : start + per_page]


def path_is(*paths: str) -> Callable[[str, str], bool]:
    """A ``ProviderSpec.is_auth_request``: any method to one of ``paths`` (a trailing slash ignored)."""
    wanted = frozenset(paths)
    return lambda method, path: path.rstrip("/") in wanted


def posts_to(*paths: str) -> Callable[[str, str], bool]:
    """A ``ProviderSpec.is_create_request``: a POST to one of ``paths`` (a trailing slash ignored)."""
    wanted = frozenset(paths)
    return lambda method, path: method == "POST" and path.rstrip("/") in wanted

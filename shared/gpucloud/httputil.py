"""Small HTTP helpers shared by auth, transport and the adapters: response metadata, escaped URL paths."""

from __future__ import annotations

from urllib.parse import quote

import httpx

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-correlation-id")


def request_id_of(response: httpx.Response) -> str | None:
    for header in _REQUEST_ID_HEADERS:
        if header in response.headers:
            return response.headers[header]
    return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def path_segment(value: str) -> str:
    """``value`` escaped to stay one path segment, whatever it holds.

    An id is data, not path: ``../storage/x`` must not climb to another resource, nor ``a?b`` start a query.
    ``quote(safe="")`` escapes ``/ ? # %``; a segment of dots alone is escaped too, because URL normalisation
    would otherwise resolve it as ``.`` or ``..``.
    """
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if not quoted.strip(".") else quoted


def url_path(template: str, **segments: object) -> str:
    """``template`` with every ``{name}`` replaced by its value as one escaped path segment.

    Every adapter builds paths holding ids this way: ``url_path("instances/{id}/start", id=instance_id)``.
    """
    return template.format(**{name: path_segment(str(value)) for name, value in segments.items()})

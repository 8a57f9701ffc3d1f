"""Small readers of HTTP response metadata shared by auth and transport."""

from __future__ import annotations

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

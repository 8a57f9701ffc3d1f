"""Reading provider answers: every 2xx body is checked against the shape its adapter declares before use.

A server (or a proxy in front of it) may answer 200 with HTML, a truncated body, ``null``, a list where an
object belongs or an object without the collection we asked for. None of that may surface as a raw
``KeyError``/``JSONDecodeError``, and a list answer without its collection must never read as "nothing
there" (ensure would then create a second resource). So adapters read bodies through :func:`read`, which
raises :class:`MalformedResponse` naming the provider, the request and where the body differs from the shape.

Shapes are pydantic models (subclasses of :class:`Wire`) or types built from them (``list[Item]``). They
declare only what the adapter relies on; unknown keys are allowed, because adapters go on using the original
body (it becomes ``raw``): the validated copy is only the proof that it is safe to read, and is thrown away. So
it does not copy the unknown keys either (``extra="ignore"``): a listing of thousands of instances would
otherwise copy every field of every one a second time just to discard it.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, create_model
from pydantic import ValidationError as ShapeError

from gpucloud.errors import MalformedResponse

__all__ = ["MALFORMED", "Count", "Id", "MalformedResponse", "Text", "When", "Wire", "check", "decode", "read"]
MALFORMED = "malformed_response"
# Identifiers arrive as strings or numbers; empty strings, booleans and floats are not identifiers.
Id = Annotated[StrictStr, Field(min_length=1)] | StrictInt
# Free text the adapters copy into models: a string or absent; a number or object in its place is a misfit.
Text = StrictStr | None
# Counts and sizes: numbers or numeric strings (pydantic's lax int); prices are read leniently by as_float.
Count = int | None
When = datetime | None
# A bare identifier in a text/plain answer (DataCrunch's create endpoints).
_TEXT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class Wire(BaseModel):
    """Base of the declared shapes: the keys an adapter reads, with their types; other keys pass."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


@functools.lru_cache(maxsize=256)
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


def _what(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.path}"


def malformed(provider: str, response: httpx.Response | None, problem: str) -> MalformedResponse:
    """The error for an answer that is not what the API documents; ``problem`` says how (never the body)."""
    where = f" to {_what(response)}" if response is not None else ""
    return MalformedResponse(
        f"{provider}: malformed answer{where}: {problem} (not what the API documents; nothing was read from it)",
        provider=provider,
        code=MALFORMED,
        status_code=response.status_code if response is not None else None,
    )


def decode(response: httpx.Response, provider: str) -> Any:
    """The JSON body; anything else (HTML, truncated, empty) is a :class:`MalformedResponse`."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        size = len(response.content)
        state = "an empty body" if not size else f"{size} bytes of {kind} that are not JSON"
        raise malformed(provider, response, f"expected JSON, got {state}") from None


def check(body: Any, shape: Any, provider: str, response: httpx.Response | None = None) -> Any:
    """``body`` unchanged if it fits ``shape``; else a :class:`MalformedResponse` naming the first misfit."""
    try:
        _adapter(shape).validate_python(body)
    except ShapeError as invalid:
        problems = invalid.errors(include_input=False, include_url=False)
        first = problems[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise malformed(provider, response, f"{where}: {first['msg']}{more}") from None
    return body


def read(response: httpx.Response, shape: Any, provider: str) -> Any:
    """Decode ``response`` and check it against ``shape``; see the module docstring."""
    return check(decode(response, provider), shape, provider, response)


def text_id(response: httpx.Response, provider: str) -> str:
    """A bare identifier answered as text (no JSON, no markup, no whitespace inside)."""
    text = response.text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]  # a JSON-encoded string is the same identifier
    if not _TEXT_ID.fullmatch(text):
        problem = "an empty body" if not text else f"{len(text)} characters that are not an identifier"
        raise malformed(provider, response, f"expected the new resource's id, got {problem}")
    return text


@functools.lru_cache(maxsize=256)
def envelope(key: str, shape: Any) -> Any:
    """The shape ``{key: <shape>, ...}``: an answer that wraps what we asked for in one required key."""
    fields: dict[str, Any] = {key: (shape, ...)}
    model: Any = create_model(f"Envelope_{key}", __base__=Wire, **fields)
    return model


def unwrap(body: Any, key: str, shape: Any, provider: str, response: httpx.Response | None = None) -> Any:
    """``body[key]`` checked against ``shape``, for APIs that answer it either bare or as ``{key: ...}``."""
    if isinstance(body, dict):
        return check(body, envelope(key, shape), provider, response)[key]
    return check(body, shape, provider, response)

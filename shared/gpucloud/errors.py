"""One error hierarchy for all providers.

Each error carries enough to act on (provider, HTTP status, the provider's own code and message, request id)
and never a credential: messages are built from API error bodies and our own text only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypedDict, Unpack


class ErrorContext(TypedDict, total=False):
    provider: str | None
    status_code: int | None
    code: str | None
    request_id: str | None
    details: object


class GpuCloudError(Exception):
    def __init__(self, message: str, **context: Unpack[ErrorContext]) -> None:
        super().__init__(message)
        self.message = message
        self.provider = context.get("provider")
        self.status_code = context.get("status_code")
        self.code = context.get("code")
        self.request_id = context.get("request_id")
        self.details = context.get("details")
        # What finishes undoing a failed create, when its caller deferred it (see settling_deferred).
        self.settle: Callable[[], None] | None = None

    def __str__(self) -> str:
        return self.describe()

    def describe(self, option: str | None = None, *, provider: str | None = None, name_provider: bool = True) -> str:
        """The one line every front-end shows: ``[option: ]message (provider=.., http=.., code=.., request_id=..)``,
        naming the provider once.

        ``option`` is the setting at fault as the user spelled it (an Ansible option, a Pulumi property); it
        leads unless the message starts with it already. ``provider`` stands in when the error names none (the
        front-end knows which one it asked). The context names the provider only where the message does not
        start with it (``voltagepark: Invalid API token``); ``name_provider=False`` is for a line that names it
        already (``error: voltagepark: AuthError: ...``): then the text names it nowhere.
        """
        who = self.provider or provider
        text = self.message
        if who and not name_provider:
            text = text.removeprefix(f"{who}: ")
        if option and not _leads_with(text, option):
            text = f"{option}: {text}"
        named = not name_provider or (who is not None and _leads_with(self.message, who))
        context = self._context(None if named else who)
        return f"{text} ({', '.join(context)})" if context else text

    def _context(self, provider: str | None) -> list[str]:
        pairs = (("provider", provider), ("http", self.status_code), ("code", self.code))
        context = [f"{key}={value}" for key, value in pairs if value not in (None, "")]
        return context + ([f"request_id={self.request_id}"] if self.request_id else [])

    def to_dict(self) -> dict[str, object]:
        """The shape both front-ends report: Ansible's fail_json keys and Pulumi's error text."""
        return {
            "msg": self.message,
            "error_class": type(self).__name__,
            "provider": self.provider,
            "http_status": self.status_code,
            "error_code": self.code,
            "request_id": self.request_id,
            "details": self.details,
        }


def _leads_with(text: str, name: str) -> bool:
    """``text`` starts with the word ``name`` (``size_gb must...``, ``ssh_keys[0]: ...``), not ``size_gbx``."""
    after = text[len(name) : len(name) + 1]
    return text.startswith(name) and not (after.isalnum() or after == "_")


class AuthError(GpuCloudError):
    """Credentials missing, wrong, expired beyond refresh, or lacking permission."""


class NotFound(GpuCloudError):
    pass


class Conflict(GpuCloudError):
    """The request clashes with existing state, e.g. a name already in use or an action invalid now."""


class InsufficientFunds(GpuCloudError):
    pass


class NoCapacity(GpuCloudError):
    """The provider has no machine of this shape free at the location right now."""


class RateLimited(GpuCloudError):
    def __init__(self, message: str, *, retry_after: float | None = None, **context: Unpack[ErrorContext]) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class ValidationError(GpuCloudError):
    """Bad input, caught by us before any request or rejected by the provider."""

    def __init__(self, message: str, *, field: str | None = None, **context: Unpack[ErrorContext]) -> None:
        super().__init__(message, **context)
        self.field = field


class Unsupported(GpuCloudError):
    """The provider's API has no such capability; we refuse rather than emulate it."""

    def __init__(self, provider: str, capability: str, hint: str | None = None) -> None:
        text = f"{provider} does not support {capability}"
        super().__init__(f"{text}; {hint}" if hint else text, provider=provider, code="unsupported")
        self.capability = capability


class ProviderError(GpuCloudError):
    """The provider failed in a way none of the specific classes describe (5xx, malformed answer...)."""


class MalformedResponse(ProviderError):
    """A success answer that is not what the API documents (not JSON, a missing collection or id, a wrong type).
    The message names the request and where the body misfits, never the body; the request may have been applied,
    so a create answered this way is adopted by name (see gpucloud.wire)."""


class Timeout(GpuCloudError):
    def __init__(self, message: str, *, last_status: str | None = None, **context: Unpack[ErrorContext]) -> None:
        super().__init__(message, **context)
        self.last_status = last_status


# --- undoing a failed create: now, or beside the caller's next step -------------------------------------------
_DEFER_SETTLING: ContextVar[bool] = ContextVar("gpucloud_defer_settling", default=False)


@contextlib.contextmanager
def settling_deferred() -> Iterator[None]:
    """In the block, a create that failed after leaving something the adapter must undo (a ComputeStacks order
    that failed after making its project) raises at once with :attr:`GpuCloudError.settle` set, for the caller to
    run beside its next step (placement sends the next offer's create meanwhile) and to wait for before it
    returns. Outside it the adapter undoes it before raising, so a failed create leaves the account as it was."""
    token = _DEFER_SETTLING.set(True)
    try:
        yield
    finally:
        _DEFER_SETTLING.reset(token)


def settle_or_defer(error: GpuCloudError, settle: Callable[[], None]) -> GpuCloudError:
    """``error``, once ``settle`` has run, or with it attached when the caller deferred settling."""
    if _DEFER_SETTLING.get():
        error.settle = settle
    else:
        settle()
    return error

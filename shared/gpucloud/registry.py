"""Every provider gpucloud knows, declared once.

Configuration, the adapter lookup, the default endpoints, the emulator (its routers, client prefixes,
credentials, published rate limits and starting balances) and the capability table all read this tuple.
Adding a provider means its adapter module ``gpucloud.providers.<name>`` (exposing ``PROVIDER``), its emulator
part ``gpucloud.emulator.<name>`` (a module or package exposing ``SPEC``) and one line here; the Ansible
collection keeps static copies of the names (its documentation must be plain YAML), and
tests/unit/test_registry.py fails if any copy differs.

Only the standard library is imported here: ``gpucloud.config`` and the Ansible module_utils load it on every run.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Registration:
    name: str
    # None where every operator hosts their own API (the user must give the URL).
    default_url: str | None
    # Where the emulator serves this API: server URL + prefix is the provider's base URL.
    emulator_prefix: str
    # The connect() options holding credentials (secrets are the ones named secret/password/token).
    credential_fields: tuple[str, ...]
    # Requests per minute per user the provider publishes; the emulator enforces it by default.
    published_rate_limit: int | None = None
    # A prefix the provider's tokens carry (the adapter checks it), so emulated tokens carry it too.
    token_prefix: str = ""
    # USD the emulated account starts with, for providers whose creates check a balance or credits; None: none.
    emulator_balance: float | None = None

    @property
    def adapter_module(self) -> str:
        return f"gpucloud.providers.{self.name}"

    @property
    def emulator_module(self) -> str:
        return f"gpucloud.emulator.{self.name}"

    def random_credentials(self) -> dict[str, str]:
        """Fresh credentials of this provider's shape (the emulator makes new ones every run)."""
        return {field: self._random_value(field) for field in self.credential_fields}

    def _random_value(self, field: str) -> str:
        if field in ("client_id", "username"):
            return f"emulator-{secrets.token_urlsafe(6)}"
        prefix = self.token_prefix if field == "token" else ""
        return prefix + secrets.token_urlsafe(24)


REGISTRY: tuple[Registration, ...] = (
    Registration(
        "datacrunch",
        "https://api.datacrunch.io/v1",
        "/datacrunch/v1",
        ("client_id", "client_secret"),
        emulator_balance=1000.0,
    ),
    Registration("voltagepark", "https://cloud-api.voltagepark.com/api/v1", "/voltagepark/api/v1", ("token",)),
    Registration(
        "dcdncloud",
        "https://dcdncloud.com/api/v1/compute",
        "/dcdncloud/api/v1/compute",
        ("token",),
        published_rate_limit=60,
        emulator_balance=100.0,  # credits: a create needs one hour of its plan (else 402)
    ),
    Registration(
        "cloudnexus",
        "https://api.cloudnexus.com/v1",
        "/cloudnexus/v1",
        ("token",),
        published_rate_limit=120,
        token_prefix="cn_test_",
    ),
    Registration(
        "computestacks",
        None,  # each operator runs its own controller: GPUCLOUD_COMPUTESTACKS_URL is required
        "/computestacks",
        ("username", "password", "client_id", "client_secret"),
    ),
)

NAMES: tuple[str, ...] = tuple(entry.name for entry in REGISTRY)
_BY_NAME = {entry.name: entry for entry in REGISTRY}


def registration(name: str) -> Registration:
    """The entry for ``name``; KeyError naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(NAMES)}") from None

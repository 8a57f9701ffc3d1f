"""gpucloud: one adapter layer over GPU cloud providers, shared by the Pulumi and Ansible front-ends.

>>> import gpucloud
>>> with gpucloud.connect("voltagepark") as cloud:      # credentials from env / config file
...     cloud.list_instances()

Every Ansible task and every Pulumi provider process is a fresh interpreter, so import cost is paid per task:
the names below are loaded on first use (PEP 562), and ``import gpucloud`` alone imports neither pydantic nor
httpx. ``from gpucloud import InstanceSpec`` and ``gpucloud.InstanceSpec`` work as before.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

from gpucloud import registry as _registry
from gpucloud.__about__ import __version__

if TYPE_CHECKING:
    from gpucloud.capabilities import Capability
    from gpucloud.config import PROVIDERS, ProviderConfig, load_config
    from gpucloud.errors import (
        AuthError,
        Conflict,
        GpuCloudError,
        InsufficientFunds,
        MalformedResponse,
        NoCapacity,
        NotFound,
        ProviderError,
        RateLimited,
        Timeout,
        Unsupported,
        ValidationError,
    )
    from gpucloud.models import (
        CreatedInstance,
        Image,
        Instance,
        InstanceSpec,
        Location,
        Offer,
        SshKey,
        SshKeySpec,
        Status,
        Volume,
        VolumeSpec,
    )
    from gpucloud.providers.base import Provider

# httpx's __init__ imports its command-line client (click, rich and pygments: ~60 ms of CPU per process)
# whenever those happen to be installed, and they are: our own CLI uses typer and rich. Nothing in gpucloud
# uses httpx's CLI, so its import is blocked (None in sys.modules makes it raise ImportError, which httpx
# expects and answers by defining a stub ``httpx.main``). Only done while httpx is not imported yet: a
# process that already has it keeps whatever it loaded. The ``httpx`` console script is its own process.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

_LAZY: dict[str, str] = {
    "Capability": "gpucloud.capabilities",
    **dict.fromkeys(("PROVIDERS", "ProviderConfig", "load_config"), "gpucloud.config"),
    **dict.fromkeys(
        (
            "AuthError",
            "Conflict",
            "GpuCloudError",
            "InsufficientFunds",
            "MalformedResponse",
            "NoCapacity",
            "NotFound",
            "ProviderError",
            "RateLimited",
            "Timeout",
            "Unsupported",
            "ValidationError",
        ),
        "gpucloud.errors",
    ),
    **dict.fromkeys(
        (
            "CreatedInstance",
            "Image",
            "Instance",
            "InstanceSpec",
            "Location",
            "Offer",
            "SshKey",
            "SshKeySpec",
            "Status",
            "Volume",
            "VolumeSpec",
        ),
        "gpucloud.models",
    ),
    "Provider": "gpucloud.providers.base",
}

__all__ = [
    "PROVIDERS",
    "AuthError",
    "Capability",
    "Conflict",
    "CreatedInstance",
    "GpuCloudError",
    "Image",
    "Instance",
    "InstanceSpec",
    "InsufficientFunds",
    "Location",
    "MalformedResponse",
    "NoCapacity",
    "NotFound",
    "Offer",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "RateLimited",
    "SshKey",
    "SshKeySpec",
    "Status",
    "Timeout",
    "Unsupported",
    "ValidationError",
    "Volume",
    "VolumeSpec",
    "__version__",
    "connect",
    "load_config",
]

# Providers without one (ComputeStacks: each operator hosts its own) need GPUCLOUD_<PROVIDER>_URL.
DEFAULT_URLS = {entry.name: entry.default_url for entry in _registry.REGISTRY if entry.default_url}


if not TYPE_CHECKING:
    # Hidden from type checkers: they see the imports above, and a visible module __getattr__ would make them
    # type every ``from gpucloud import <submodule>`` (errors, ensure, ...) in the project as Any.
    def __getattr__(name: str) -> Any:
        module = _LAZY.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"gpucloud.{name}") is not None:
            # A submodule (``gpucloud.providers``, ``gpucloud.waiters``...): the eager package used to import
            # most of them, so ``import gpucloud`` followed by ``gpucloud.providers.X`` keeps working.
            value = importlib.import_module(f"gpucloud.{name}")
        else:
            raise AttributeError(f"module 'gpucloud' has no attribute {name!r}")
        globals()[name] = value  # later lookups are plain module attributes
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})


def connect(provider: str, **overrides: Any) -> Provider:
    """An adapter for ``provider`` configured from ``overrides`` > env > config file > defaults."""
    from gpucloud.config import load_config
    from gpucloud.providers import provider_class

    cls = provider_class(provider)
    config = load_config(provider, overrides)
    if config.base_url is None and provider in DEFAULT_URLS:
        config = config.model_copy(update={"base_url": DEFAULT_URLS[provider]})
    return cls(config)

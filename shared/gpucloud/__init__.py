"""gpucloud: one adapter layer over GPU cloud providers, shared by the Pulumi and Ansible front-ends.

>>> import gpucloud
>>> with gpucloud.connect("voltagepark") as cloud:      # credentials from env / config file
...     cloud.list_instances()
"""

from __future__ import annotations

from typing import Any

from gpucloud.__about__ import __version__
from gpucloud.capabilities import Capability
from gpucloud.config import PROVIDERS, ProviderConfig, load_config
from gpucloud.errors import (
    AuthError,
    Conflict,
    GpuCloudError,
    InsufficientFunds,
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

DEFAULT_URLS = {
    "datacrunch": "https://api.datacrunch.io/v1",
    "voltagepark": "https://cloud-api.voltagepark.com/api/v1",
    "dcdncloud": "https://dcdncloud.com/api/v1/compute",
    "cloudnexus": "https://api.cloudnexus.com/v1",
    # computestacks: none; each operator hosts its own, so GPUCLOUD_COMPUTESTACKS_URL is required.
}


def connect(provider: str, **overrides: Any) -> Provider:
    """An adapter for ``provider`` configured from ``overrides`` > env > config file > defaults."""
    from gpucloud.providers import provider_class

    cls = provider_class(provider)
    config = load_config(provider, overrides)
    if config.base_url is None and provider in DEFAULT_URLS:
        config = config.model_copy(update={"base_url": DEFAULT_URLS[provider]})
    return cls(config)

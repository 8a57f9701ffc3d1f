"""Provider adapters, looked up by id. Each module holds one provider's wire format and quirks."""

from __future__ import annotations

import importlib

from gpucloud.providers.base import Provider

_MODULES = {
    "datacrunch": "gpucloud.providers.datacrunch",
    "voltagepark": "gpucloud.providers.voltagepark",
}


def implemented() -> tuple[str, ...]:
    return tuple(_MODULES)


def provider_class(name: str) -> type[Provider]:
    from gpucloud import errors

    if name not in _MODULES:
        raise errors.Unsupported(name, "this gpucloud release", hint=f"implemented: {', '.join(_MODULES)}")
    # Imported lazily so an Ansible module that talks to one provider pays for one adapter only.
    module = importlib.import_module(_MODULES[name])
    cls: type[Provider] = module.PROVIDER
    return cls

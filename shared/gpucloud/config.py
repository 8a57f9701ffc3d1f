"""Where credentials and endpoints come from: explicit arguments > environment > profile file > defaults.

Environment variables are ``GPUCLOUD_<PROVIDER>_<FIELD>`` (``GPUCLOUD_DATACRUNCH_CLIENT_ID``,
``GPUCLOUD_VOLTAGEPARK_TOKEN``, ``GPUCLOUD_VOLTAGEPARK_URL`` ...). The profile file is TOML at
``$GPUCLOUD_CONFIG`` or ``~/.config/gpucloud/config.toml``, one table per provider; a ``[profiles.<name>]``
table holds alternative provider tables, selected with ``GPUCLOUD_PROFILE``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from gpucloud import errors

PROVIDERS: tuple[str, ...] = ("datacrunch", "voltagepark", "dcdncloud", "computestacks", "cloudnexus")

_SECRET_FIELDS = ("token", "client_secret", "password")
# Environment suffixes that differ from the field name; every other field uses its upper-cased name.
_ENV_ALIASES = {"base_url": "URL"}


class ProviderConfig(BaseModel):
    """Settings for one provider. Secrets are SecretStr so they never show up in repr, logs or dumps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    base_url: str | None = None
    token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    api_version: str | None = None
    ssh_user: str | None = None
    ssh_port: int | None = Field(default=None, ge=1, le=65535)
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)
    retry_max_seconds: float = Field(default=120.0, gt=0)
    retry_backoff: float = Field(default=0.5, gt=0, description="first backoff step; doubles per attempt")
    requests_per_minute: float | None = Field(default=None, gt=0)
    page_workers: int = Field(default=4, ge=1)
    poll_interval: float = Field(default=2.5, gt=0, description="shortest pause between status polls")

    def secret(self, field: str) -> str | None:
        value = getattr(self, field)
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def is_configured(self) -> bool:
        return bool(self.token or (self.client_id and self.client_secret) or (self.username and self.password))


def default_config_path() -> Path:
    explicit = os.environ.get("GPUCLOUD_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gpucloud" / "config.toml"


def env_var(provider: str, field: str) -> str:
    return f"GPUCLOUD_{provider.upper()}_{_ENV_ALIASES.get(field, field.upper())}"


def _from_env(provider: str, environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in ProviderConfig.model_fields:
        if field == "provider":
            continue
        value = environ.get(env_var(provider, field))
        if value not in (None, ""):
            values[field] = value
    return values


def _from_file(provider: str, path: Path, profile: str | None) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise errors.ValidationError(f"cannot read config file {path}: {exc}", field="config") from exc
    if profile:
        profiles = data.get("profiles", {})
        if profile not in profiles:
            raise errors.ValidationError(
                f"profile {profile!r} not found in {path}; known: {sorted(profiles) or 'none'}",
                field="profile",
            )
        data = profiles[profile]
    section = data.get(provider, {})
    if not isinstance(section, dict):
        raise errors.ValidationError(f"[{provider}] in {path} must be a table", field=provider)
    return dict(section)


def load_config(
    provider: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> ProviderConfig:
    """Merge the sources for one provider; ``None`` in ``overrides`` means "not given", not "unset"."""
    if provider not in PROVIDERS:
        raise errors.ValidationError(
            f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}", field="provider"
        )
    environ = os.environ if environ is None else environ
    path = config_path or default_config_path()
    merged = _from_file(provider, path, environ.get("GPUCLOUD_PROFILE"))
    merged.update(_from_env(provider, environ))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return ProviderConfig(provider=provider, **merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_input=False)
        )
        raise errors.ValidationError(f"invalid {provider} configuration: {problems}", field="config") from None


def configured_providers(environ: Mapping[str, str] | None = None) -> list[str]:
    return [p for p in PROVIDERS if load_config(p, environ=environ).is_configured()]


def secret_fields() -> tuple[str, ...]:
    return _SECRET_FIELDS

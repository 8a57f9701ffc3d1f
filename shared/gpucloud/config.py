"""Where credentials and endpoints come from: explicit arguments > environment > profile file > defaults.

Environment variables are ``GPUCLOUD_<PROVIDER>_<FIELD>`` (``GPUCLOUD_DATACRUNCH_CLIENT_ID``,
``GPUCLOUD_VOLTAGEPARK_TOKEN``, ``GPUCLOUD_VOLTAGEPARK_URL`` ...). The profile file is TOML at
``$GPUCLOUD_CONFIG`` or ``~/.config/gpucloud/config.toml``, one table per provider; a ``[profiles.<name>]``
table holds alternative provider tables, selected with ``GPUCLOUD_PROFILE``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from gpucloud import errors, registry

PROVIDERS: tuple[str, ...] = registry.NAMES

_SECRET_FIELDS = ("token", "client_secret", "password")
# Environment suffixes that differ from the field name; every other field uses its upper-cased name.
_ENV_ALIASES = {"base_url": "URL"}
# Booleans as TOML, Python and environment variables spell them. Pydantic reads True as 1 for a number: a
# ``timeout = true`` would silently mean a 1-second timeout, ``max_retries = true`` one retry.
_BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})


class ProviderConfig(BaseModel):
    """Settings for one provider. Secrets are SecretStr so they never show up in repr, logs or dumps."""

    # defer_build: pydantic builds the validator on first use, not at import: only a process that reads a config pays.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

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
    allow_insecure_http: bool = Field(default=False, description="permit http:// to a host other than loopback")
    # Opt-in: it writes OAuth access tokens to disk (gpucloud.tokencache says what, where and how).
    token_cache: bool = Field(default=False, description="reuse OAuth access tokens across runs (user cache dir, 0600)")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields[info.field_name or ""]
        if not {int, float} & {field.annotation, *get_args(field.annotation)}:
            return value
        if isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS):
            default = "" if field.default is None else f" (the default is {field.default})"
            raise PydanticCustomError(
                "not_a_boolean",
                "must be a number, not a boolean ({value}): give a number{default}, or leave the setting out",
                {"value": str(value).strip().lower(), "default": default},
            )
        return value

    def __repr_args__(self) -> Any:
        # repr() and str() show the URL without a password it may carry (https://user:pass@host).
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "base_url" and isinstance(value, str) else value

    def url_secrets(self) -> list[str]:
        """The userinfo of ``base_url`` (``user:password@``), to be redacted wherever secrets are."""
        return url_secrets(self.base_url or "")

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
    import tomllib  # here, not at import: most runs (credentials from the environment) have no file to parse

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
        raise _config_error(provider, exc) from None


def _config_error(provider: str, exc: ValidationError) -> errors.ValidationError:
    """Name each bad key with the variable that sets it; ``field`` is the first bad key, so front-ends can name
    their own option for it (Ansible's ``request_timeout`` for ``timeout``)."""
    problems, keys = [], []
    for err in exc.errors(include_input=False):
        key = ".".join(str(p) for p in err["loc"])
        keys.append(key)
        where = f" ({env_var(provider, key)})" if key in ProviderConfig.model_fields else ""
        problems.append(f"{key}{where}: {err['msg']}")
    return errors.ValidationError(
        f"invalid {provider} configuration: {'; '.join(problems)}", field=keys[0] if keys else "config"
    )


_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9])?")


def _valid_host(host: str) -> bool:
    """A DNS name (IDNs arrive as punycode) or an IP address; httpx lets spaces and the like through."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    # 0.0.0.0 and :: as a destination reach this machine (an emulator started with --host 0.0.0.0).
    return address.is_loopback or address.is_unspecified


# The authority's userinfo: everything between "scheme://" and the last "@" before the path.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")


def redact_url(url: str) -> str:
    """``url`` with the credentials it may carry (``https://user:password@host``) replaced by ``[REDACTED]``:
    the form of a URL for messages, logs and results."""
    return _USERINFO.sub(r"\1[REDACTED]@", url)


def url_secrets(url: str) -> list[str]:
    """The credentials in ``url``'s userinfo, as written and percent-decoded: the whole ``user:password`` and
    the password alone (a server or library may show either)."""
    from urllib.parse import unquote

    match = _USERINFO.match(url)
    if match is None:
        return []
    userinfo = match.group(2)
    password = userinfo.partition(":")[2]
    return [v for v in {userinfo, unquote(userinfo), password, unquote(password)} if v]


def check_base_url(config: ProviderConfig) -> None:
    """Reject an API URL that cannot work, or that would send credentials in cleartext, before any request.

    Plain http is allowed to loopback (the emulator, a local proxy) and elsewhere only with
    ``allow_insecure_http``: tokens and OAuth client secrets travel in every request.
    """
    import httpx  # here, not at import: the config is read by processes that never connect

    provider, variable = config.provider, env_var(config.provider, "base_url")
    url = redact_url(str(config.base_url))  # for the messages only; the check reads the URL as given
    try:
        parsed = httpx.URL(str(config.base_url))
    except httpx.InvalidURL as exc:
        why = str(exc)
        for secret in config.url_secrets():  # httpx may quote the part it could not parse
            why = why.replace(secret, "[REDACTED]")
        raise errors.ValidationError(
            f"base_url {url!r} is not a valid URL ({why}); set {variable} to e.g. https://api.example.com/v1",
            field="base_url",
            provider=provider,
        ) from None
    host = parsed.raw_host.decode("ascii", "replace")
    port_ok = parsed.port is None or 0 < parsed.port < 65536
    if parsed.scheme not in ("http", "https") or not _valid_host(host) or not port_ok:
        raise errors.ValidationError(
            f"base_url {url!r} must be an http(s) URL with a valid host and port, "
            f"e.g. https://api.example.com/v1; set {variable}",
            field="base_url",
            provider=provider,
        )
    if parsed.scheme == "http" and not config.allow_insecure_http and not _is_loopback(host):
        raise errors.ValidationError(
            f"base_url {url!r} uses plain http to {host}: credentials would travel unencrypted. Use https, "
            f"or set allow_insecure_http ({env_var(provider, 'allow_insecure_http')}=true) if the network is trusted",
            field="base_url",
            provider=provider,
        )


def configured_providers(environ: Mapping[str, str] | None = None) -> list[str]:
    return [p for p in PROVIDERS if load_config(p, environ=environ).is_configured()]


def secret_fields() -> tuple[str, ...]:
    return _SECRET_FIELDS

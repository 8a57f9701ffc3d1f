"""How clients reach an emulator: per-provider connection settings, an env file, and a readiness wait.

Emulated hosts let exactly one user log in (:func:`gpucloud.emulator.sshd.login_user`: the user running the
emulator, or an unprivileged account when that is root), so that is the SSH user clients must use. The API
credentials and the control token are random per run: they reach clients only through these overrides or the
env file (mode 0600).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from gpucloud.config import env_var
from gpucloud.emulator import EmulatorSettings
from gpucloud.emulator.middleware import CONTROL_TOKEN_HEADER
from gpucloud.emulator.sshd import login_user
from gpucloud.registry import REGISTRY

PATH_PREFIXES = {entry.name: entry.emulator_prefix for entry in REGISTRY}
UNPACED_PER_MINUTE = 1_000_000.0


def client_overrides(url: str, settings: EmulatorSettings) -> dict[str, dict[str, Any]]:
    """``gpucloud.connect(provider, **overrides[provider])`` talks to the emulator at ``url``."""
    user = login_user()
    overrides: dict[str, dict[str, Any]] = {}
    for provider, prefix in PATH_PREFIXES.items():
        # Emulated machines boot in about a second, so poll them more often than real clouds.
        options: dict[str, Any] = {"base_url": url.rstrip("/") + prefix, "ssh_user": user, "poll_interval": 0.2}
        options.update(settings.credentials[provider])
        # Pace under the limit this emulator enforces (not the real provider's): none means no waiting.
        options["requests_per_minute"] = settings.rate_limits.get(provider) or UNPACED_PER_MINUTE
        overrides[provider] = options
    # DataCrunch reports no SSH port: every emulated DataCrunch host listens on the emulator's fixed port.
    overrides["datacrunch"]["ssh_port"] = settings.ssh_port
    overrides["cloudnexus"]["ssh_port"] = settings.ssh_port  # nor does CloudNexus
    return overrides


# Where the env file puts the control API token (read by tests and scripts that drive the emulator).
CONTROL_TOKEN_ENV = "GPUCLOUD_EMULATOR_CONTROL_TOKEN"


def client_env(url: str, settings: EmulatorSettings) -> dict[str, str]:
    env = {
        env_var(provider, field): str(value)
        for provider, options in client_overrides(url, settings).items()
        for field, value in options.items()
    }
    env[CONTROL_TOKEN_ENV] = settings.control_token
    return env


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """A shell-sourceable file, readable by its owner only (it holds this run's credentials and control token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: never write the secrets through a link someone else planted; fchmod: an existing file
    # keeps its old mode under O_CREAT, so narrow it before anything is written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))


def read_ledger(url: str, provider: str | None = None, *, headers: Mapping[str, str]) -> dict[str, Any]:
    """What each emulated account holds and bills now (``GET /_emulator/ledger``), per provider.

    ``headers``: the control API's token (:func:`control_headers` of the env file, or
    ``EmulatorServer.control_headers``).
    """
    params = {"provider": provider} if provider else {}
    response = httpx.get(f"{url.rstrip('/')}/_emulator/ledger", params=params, headers=headers, timeout=10)
    response.raise_for_status()
    providers: dict[str, Any] = response.json()["providers"]
    return providers


def read_env_file(path: Path) -> dict[str, str]:
    """The variables :func:`write_env_file` wrote (how tests and scripts get a run's credentials)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        if name and not name.startswith("#"):
            env[name.strip()] = " ".join(shlex.split(value))
    return env


def control_headers(env: dict[str, str]) -> dict[str, str]:
    """The header a control API call needs, from an env file's variables."""
    return {CONTROL_TOKEN_HEADER: env[CONTROL_TOKEN_ENV]}


def wait_until_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url.rstrip('/')}/_emulator/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"emulator at {url} did not answer within {timeout:.0f}s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gpucloud.emulator.client")
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait", help="wait until an emulator answers")
    wait.add_argument("url")
    wait.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    wait_until_healthy(args.url, args.timeout)
    print(f"emulator at {args.url} is up", file=sys.stderr)


if __name__ == "__main__":
    main()

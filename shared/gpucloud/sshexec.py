"""Run a command on an instance with the system OpenSSH client, using what the provider reports."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gpucloud import errors
from gpucloud.models import Instance

# Emulated and freshly created hosts have unknown host keys; we still never write to the user's known_hosts.
_SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
)  # fmt: skip


def ssh_command(instance: Instance, identity_file: Path | None = None) -> list[str]:
    if instance.ssh_ready_address is None:
        raise errors.ProviderError(f"instance {instance.name} has no SSH address yet", provider=instance.provider)
    host, port = instance.ssh_ready_address
    identity = ["-i", str(identity_file), "-o", "IdentitiesOnly=yes"] if identity_file else []
    return ["ssh", *_SSH_OPTIONS, *identity, "-p", str(port), f"{instance.ssh_user or 'root'}@{host}"]


def run(instance: Instance, command: str, *, identity_file: Path | None = None, timeout: float = 60.0) -> str:
    """Run ``command`` remotely and return its stdout; a non-zero exit raises with stderr."""
    result = subprocess.run(
        [*ssh_command(instance, identity_file), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise errors.ProviderError(
            f"ssh to {instance.name} exited {result.returncode}: {result.stderr.strip()}", provider=instance.provider
        )
    return result.stdout

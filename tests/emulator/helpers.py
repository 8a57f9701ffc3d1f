"""Helpers shared by the emulator tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def ssh_argv(key: Path, user: str, ip: str, port: int, command: str) -> list[str]:
    """The real OpenSSH client, non-interactive, trusting any host key."""
    return [
        "ssh", "-i", str(key), "-p", str(port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
        f"{user}@{ip}", command,
    ]  # fmt: skip


def run_ssh(key: Path, user: str, ip: str, port: int, command: str) -> subprocess.CompletedProcess[str]:
    argv = ssh_argv(key, user, ip, port, command)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll until ``probe`` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def sshd_pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]

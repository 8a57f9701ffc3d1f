"""Shared fixtures: one real emulator over HTTP per test session, adapters connected to it."""

from __future__ import annotations

import compileall
import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.emulator.world import Faults
from gpucloud.providers import implemented, provider_class
from tests import figures

IMPLEMENTED = implemented()
ROOT = Path(__file__).resolve().parents[1]
# Packages the test run's subprocesses import from this checkout (Ansible module runs, Pulumi provider
# processes, the CLI): see pytest_configure.
CHECKOUT_PACKAGES = (ROOT / "shared" / "gpucloud", ROOT / "pulumi_gpucloud")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist): workers inherit the env
        os.environ[figures.ENV] = tempfile.mkdtemp(prefix="gpucloud-figures-")
        # Byte-compile the checkout as pip does for a regular install. Installed editable under
        # PYTHONDONTWRITEBYTECODE (as on the project machine and in CI), every process would otherwise compile
        # each gpucloud module it imports again: every Ansible task's module process, every Pulumi provider.
        for package in CHECKOUT_PACKAGES:
            compileall.compile_dir(package, quiet=1)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    directory = os.environ.get(figures.ENV)
    if hasattr(config, "workerinput") or not directory:
        return
    counts = figures.totals(Path(directory))
    shutil.rmtree(directory, ignore_errors=True)
    if not any(counts.values()):
        return
    terminalreporter.section("reliability figures")
    for metric in figures.METRICS:
        terminalreporter.write_line(f"{metric:<34} {counts[metric]:>8}")


def providers_with(*capabilities: Capability) -> list[str]:
    """Providers whose API has every one of ``capabilities`` (the others are tested for Unsupported)."""
    return [p for p in IMPLEMENTED if all(c in provider_class(p).capabilities for c in capabilities)]


def providers_without(capability: Capability) -> list[str]:
    return [p for p in IMPLEMENTED if capability not in provider_class(p).capabilities]


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh") is None:
        pytest.fail("OpenSSH (sshd + ssh) is required: run `make setup` or apt-get install openssh-server")
    # Published request limits off: dcdncloud's 60/min would make the suite crawl; their own tests cover them.
    with EmulatorServer(provision_seconds=0.3, rate_limits={}) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emulator" in request.fixturenames:
        # Every fault back to its default (the dice seed stays: it only matters while a fault is on).
        defaults = {f.name: getattr(Faults(), f.name) for f in dataclasses.fields(Faults) if f.name != "seed"}
        request.getfixturevalue("emulator").world.set_faults(**defaults)


@pytest.fixture(scope="session")
def overrides(emulator: EmulatorServer) -> dict[str, dict[str, object]]:
    return client_overrides(emulator.url, emulator.settings)


def connect(overrides: dict[str, dict[str, object]], provider: str, **extra: object) -> gpucloud.Provider:
    return gpucloud.connect(provider, **{**overrides[provider], **extra})


@pytest.fixture(params=IMPLEMENTED)
def cloud(request: pytest.FixtureRequest, overrides: dict[str, dict[str, object]]) -> Iterator[gpucloud.Provider]:
    """An adapter per implemented provider; narrow with ``@pytest.mark.parametrize("cloud", [...], indirect=True)``."""
    with connect(overrides, request.param) as provider:
        yield provider


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("ssh")
    private = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "contract", "-f", str(private)], check=True)
    return private, (directory / "id_ed25519.pub").read_text().strip()

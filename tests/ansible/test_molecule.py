"""`molecule test` on the collection's scenario: its create step makes instances with the collection's own modules."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import gpucloud
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides

from .conftest import BIN, COLLECTION


# molecule's whole create/converge/idempotence/verify/destroy sequence runs in one subprocess bounded at
# 600 s below; the suite's 300 s default would cut it first on a loaded machine.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("provider", ["datacrunch"])
def test_molecule_scenario_against_the_emulator(
    emulator: EmulatorServer, emulator_env: dict[str, str], tmp_path: Path, provider: str
) -> None:
    molecule = BIN / "molecule"
    if not molecule.exists():
        molecule = Path(shutil.which("molecule") or "molecule")
    home = tmp_path / "home"  # molecule installs a copy of the collection under ~/.ansible: keep it private
    home.mkdir()
    env = {
        **emulator_env,
        "HOME": str(home),
        "ANSIBLE_HOME": str(home / ".ansible"),
        "MOLECULE_GPUCLOUD_PROVIDER": provider,
        "PATH": f"{BIN}{os.pathsep}{emulator_env['PATH']}",
    }
    env.pop("ANSIBLE_COLLECTIONS_PATH")  # molecule finds and installs the collection it runs in
    env.pop("ANSIBLE_PYTHON_INTERPRETER")
    env.pop("ANSIBLE_SSH_ARGS")  # the scenario's own ssh_args apply (no control socket under the long tmp HOME)
    proc = subprocess.run([str(molecule), "test"], cwd=COLLECTION, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        assert step in output
    with gpucloud.connect(provider, **client_overrides(emulator.url, emulator.settings)[provider]) as cloud:
        assert cloud.find_instance("molecule-gpu-1") is None
        assert cloud.find_ssh_key("molecule-default") is None

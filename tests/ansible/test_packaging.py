"""The collection as users get it: built with ansible-galaxy, installed into a fresh path, run from there."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

from .conftest import COLLECTION, ansible_binary


def test_galaxy_build_install_and_run(emulator_env: dict[str, str], tmp_path: Path) -> None:
    built = subprocess.run(
        [ansible_binary("ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path", str(tmp_path)],
        env=emulator_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (tarball,) = tmp_path.glob("gpucloud-cloud-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "plugins/modules/instance.py" in names and "meta/runtime.yml" in names
    assert "plugins/inventory/gpucloud.py" in names and "requirements.txt" in names
    assert not [n for n in names if n.startswith("tests/output")]

    target = tmp_path / "installed"
    installed = subprocess.run(
        [
            ansible_binary("ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--force",
            "-p",
            str(target),
            str(tarball),
        ],
        env=emulator_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (target / "ansible_collections" / "gpucloud" / "cloud" / "plugins" / "modules" / "instance.py").exists()

    env = {**emulator_env, "ANSIBLE_COLLECTIONS_PATH": str(target), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.oneline"
    listed = subprocess.run(
        [ansible_binary("ansible-doc"), "--list", "gpucloud.cloud", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    modules = json.loads(listed.stdout)
    assert {f"gpucloud.cloud.{m}" for m in ("instance", "volume", "ssh_key", "offer_info")} <= set(modules)

    ran = subprocess.run(
        [ansible_binary("ansible"), "localhost", "-m", "gpucloud.cloud.offer_info", "-a", "gpu_model=h100"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout and '"offers": [{' in ran.stdout and "h100" in ran.stdout.lower()

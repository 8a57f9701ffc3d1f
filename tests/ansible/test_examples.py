"""examples/ansible as a user runs them: provision (+ configure over SSH via the inventory plugin), teardown."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

import gpucloud
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.providers import implemented

from .conftest import ROOT, ansible_binary, writable_by_emulated_hosts

EXAMPLES = ROOT / "examples" / "ansible"


def test_fleet_covers_every_implemented_provider() -> None:
    fleet = yaml.safe_load((EXAMPLES / "vars" / "fleet.yml").read_text())["fleet"]
    assert sorted(fleet) == sorted(implemented()), "add the new provider to examples/ansible/vars/fleet.yml"


def test_provision_configure_teardown(emulator: EmulatorServer, emulator_env: dict[str, str], tmp_path: Path) -> None:
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    reports = writable_by_emulated_hosts()  # the configure play writes here over SSH

    def playbook(name: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            ansible_binary("ansible-playbook"),
            "-i",
            "inventory.gpucloud.yml",
            name,
            "-e",
            f"fleet_report_dir={reports}",
        ]
        env = {**emulator_env, "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}
        return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)

    fleet = yaml.safe_load((work / "vars" / "fleet.yml").read_text())["fleet"]
    try:
        provisioned = playbook("provision.yml")
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
        written = sorted(p.name for p in reports.iterdir())
        expected = sorted(f"gpucloud-example-{p}-gpucloud-example-{p}.txt" for p in fleet)
        assert written == expected, provisioned.stdout
        for provider in fleet:
            text = (reports / f"gpucloud-example-{provider}-gpucloud-example-{provider}.txt").read_text()
            assert f"is a {provider} " in text and "kernel" in text

        again = playbook("provision.yml")
        assert again.returncode == 0, again.stdout + again.stderr
        recap = [line for line in again.stdout.splitlines() if line.startswith("localhost")]
        assert recap and "changed=0" in recap[0], again.stdout
    finally:
        torn = playbook("teardown.yml")
    shutil.rmtree(reports, ignore_errors=True)
    assert torn.returncode == 0, torn.stdout + torn.stderr
    overrides = client_overrides(emulator.url, emulator.settings)
    for provider in fleet:
        with gpucloud.connect(provider, **overrides[provider]) as cloud:
            assert not [i for i in cloud.list_instances() if i.name.startswith("gpucloud-example-")]

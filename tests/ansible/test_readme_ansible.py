"""The README's Ansible section works as pasted: its playbook, then its inventory, against the emulator."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import gpucloud
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides

from .conftest import ROOT, ansible_binary


def blocks() -> tuple[str, str, list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"\n## Ansible\n(.*?)\n## ", readme, re.S)
    assert section, "README lost its Ansible section"
    yamls = re.findall(r"```yaml\n(.*?)```", section.group(1), re.S)
    (shell,) = re.findall(r"```bash\n(.*?)```", section.group(1), re.S)
    commands = [line.split("  #")[0].strip() for line in shell.splitlines() if line.strip()]
    playbook, inventory = yamls
    assert len(playbook.strip().splitlines()) <= 10
    return playbook, inventory, commands


def test_readme_playbook_and_inventory(emulator: EmulatorServer, emulator_env: dict[str, str], tmp_path: Path) -> None:
    playbook, inventory, commands = blocks()
    (tmp_path / "site.yml").write_text(playbook)
    (tmp_path / "inventory.gpucloud.yml").write_text(inventory)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    env = {**emulator_env, "HOME": str(home), "ANSIBLE_PRIVATE_KEY_FILE": str(key)}
    assert commands[0] == "export ANSIBLE_COLLECTIONS_PATH=$PWD"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT)
    outputs = []
    try:
        for command in commands[1:]:
            program, *args = command.split()
            # Ad-hoc commands run on the emulated hosts, which log in as an account that may not reach this
            # interpreter (under root, an unprivileged one): there, as on a real host, Ansible finds the host's own.
            run_env = {**env, "ANSIBLE_PYTHON_INTERPRETER": "auto_silent"} if program == "ansible" else env
            proc = subprocess.run(
                [ansible_binary(program), *args], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=300
            )
            assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
            outputs.append(proc.stdout)
    finally:
        overrides = client_overrides(emulator.url, emulator.settings)["voltagepark"]
        with gpucloud.connect("voltagepark", **overrides) as cloud:
            found = cloud.find_instance("trainer-1")
            if found:
                cloud.delete_instance(found.id)
                cloud.wait_for_instance_gone(found.id, timeout=60, interval=0.2)
            key_found = cloud.find_ssh_key("laptop")
            if key_found:
                cloud.delete_ssh_key(key_found.id)
    played, graph, pinged = outputs
    assert re.search(r"ssh -p \d+ \S+@127\.", played)
    # The README's inventory names hosts by `hostnames: [name, ...]`, so the host is the instance's own name.
    group = re.search(r"@gpucloud_voltagepark:\n((?:  \|  \|--.*\n)+)", graph)
    assert group and "  |  |--trainer-1\n" in group.group(1), graph
    assert "trainer-1 | SUCCESS" in pinged and '"ping": "pong"' in pinged

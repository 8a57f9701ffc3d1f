"""Run the real ansible-playbook / ansible-inventory against the session emulator.

The collection is used from the source tree (``ANSIBLE_COLLECTIONS_PATH`` = the repository root, which holds
``ansible_collections/gpucloud/cloud``); modules run on localhost with this interpreter, where gpucloud is installed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_env
from gpucloud.emulator.sshd import ensure_login_user

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "ansible_collections" / "gpucloud" / "cloud"
BIN = Path(sys.executable).parent
# gpucloud_test_results: how Ansible.play collects registered results without a module process per play.
ACTION_PLUGINS = Path(__file__).resolve().parent / "action_plugins"


def ansible_binary(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: install the ansible extra (pip install -e '.[ansible]')")
    return path


def writable_by_emulated_hosts() -> Path:
    """A fresh directory tasks on emulated hosts can write to, removed by the caller.

    Emulated hosts log in as :func:`login_user`; under root that is an unprivileged account which cannot
    enter pytest's private tmp dirs, so the directory lives in /tmp and belongs to that account.
    """
    path = Path(tempfile.mkdtemp(prefix="gpucloud-hosts-", dir="/tmp"))
    if os.geteuid() == 0:
        os.chown(path, pwd.getpwnam(ensure_login_user()).pw_uid, -1)
    return path


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUCLOUD_", "ANSIBLE_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_COLLECTIONS_PATH=str(ROOT),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_SSH_ARGS="-o UserKnownHostsFile=/dev/null -o ControlMaster=auto -o ControlPersist=60s",
        ANSIBLE_SSH_USETTY="False",
        # ssh caps control socket paths at 108 bytes; pytest's tmp paths (longer under xdist) exceed it.
        ANSIBLE_SSH_CONTROL_PATH_DIR=tempfile.mkdtemp(prefix="cp", dir="/tmp"),
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_HOME=str(home / "ansible-home"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        GPUCLOUD_CONFIG=str(home / "no-config.toml"),
        HOME=str(home),
    )
    return env


@dataclass
class PlayResult:
    rc: int
    stdout: str
    stderr: str
    results: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        if name not in self.results:
            raise AssertionError(f"no result registered as {name!r} (rc={self.rc}):\n{self.output}")
        return self.results[name]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Ansible:
    """Writes a playbook from task dicts, runs it, and collects every registered result as JSON."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self._count = 0

    def play(
        self,
        tasks: list[dict[str, Any]],
        *,
        check: bool = False,
        diff: bool = False,
        hosts: str = "localhost",
        inventory: str | None = None,
        extra_env: dict[str, str] | None = None,
        gather_facts: bool = False,
        timeout: float = 240,
    ) -> PlayResult:
        self._count += 1
        run_dir = self.workdir / f"play{self._count}"
        run_dir.mkdir(parents=True)
        out = run_dir / "results.json"
        names = [task["register"] for task in tasks if "register" in task]
        collect = {
            "name": "Collect registered results",
            "delegate_to": "localhost",
            "run_once": True,
            "check_mode": False,
            "diff": False,
            "gpucloud_test_results": {
                "dest": str(out),
                "content": "{{ {" + ", ".join(f"'{n}': {n} | default(None)" for n in names) + "} | to_json }}",
            },
        }
        play = {"name": "test", "hosts": hosts, "gather_facts": gather_facts, "tasks": [*tasks, collect]}
        book = run_dir / "play.yml"
        book.write_text(yaml.safe_dump([play], sort_keys=False))
        cmd = [ansible_binary("ansible-playbook"), str(book)]
        cmd += ["-i", inventory] if inventory else ["-i", "localhost,", "-c", "local"]
        strict = {"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}  # a broken inventory fails, not warns
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        env = {**self.env, **strict, "ANSIBLE_ACTION_PLUGINS": str(ACTION_PLUGINS), **(extra_env or {})}
        proc = subprocess.run(cmd, env=env, cwd=run_dir, capture_output=True, text=True, timeout=timeout)
        results = json.loads(out.read_text()) if out.exists() else {}
        return PlayResult(proc.returncode, proc.stdout, proc.stderr, results)

    def inventory(self, source: Path, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [ansible_binary("ansible-inventory"), "-i", str(source), *args]
        env = {**self.env, "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}
        return subprocess.run(cmd, env=env, cwd=self.workdir, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def ansible_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ansible-home")
    (home / "tmp").mkdir()
    return home


@pytest.fixture(scope="session")
def emulator_env(emulator: EmulatorServer, ansible_home: Path) -> dict[str, str]:
    return {**base_env(ansible_home), **client_env(emulator.url, emulator.settings)}


@pytest.fixture
def ansible(emulator_env: dict[str, str], tmp_path: Path) -> Iterator[Ansible]:
    yield Ansible(emulator_env, tmp_path)

"""The emulator's security model (docs/emulator.md): who logs in to emulated hosts, what the control API needs.

CI runs these as root, the case that matters: there the emulator must log hosts in as an unprivileged account,
never as root, whatever key the API was given.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gpucloud.emulator import EmulatorServer, EmulatorSettings
from gpucloud.emulator.client import CONTROL_TOKEN_ENV, client_env, write_env_file
from gpucloud.emulator.sshd import EMULATOR_ACCOUNT
from tests.emulator.helpers import run_ssh, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _running_vm(emu: EmulatorServer, public_key: str) -> dict[str, object]:
    bearer = {"Authorization": f"Bearer {emu.credentials['voltagepark']['token']}"}
    with httpx.Client(base_url=emu.base_url("voltagepark"), headers=bearer, timeout=10) as vp:
        config_id = vp.get("/instant-deploy-presets/").json()[0]["id"]
        body = {"config_id": config_id, "name": "mine", "ssh_keys": [public_key]}
        vm_id = vp.post("/virtual-machines/instant", json=body).json()["vm_id"]
        vm: dict[str, object] = wait_for(lambda: _vm_if_running(vp, vm_id))
        return vm


def _vm_if_running(vp: httpx.Client, vm_id: str) -> dict[str, object] | None:
    vm: dict[str, object] = vp.get(f"/virtual-machines/{vm_id}").json()
    return vm if vm["status"] == "Running" else None


def test_no_privileged_login_with_the_key_an_instance_was_given(emu: EmulatorServer, keypair: tuple[Path, str]) -> None:
    """Anyone who can reach the API may put their key on a host: that must never be a root login."""
    private, public = keypair
    vm = _running_vm(emu, public)
    forwards = vm["port_forwards"]
    assert isinstance(forwards, list)
    ip, port = str(vm["public_ip"]), int(forwards[0]["external_port"])
    user = emu.world.ssh_user
    assert user != "root"
    if os.geteuid() == 0:
        assert user == EMULATOR_ACCOUNT

    probe = "id -u; id -G; if cat /etc/shadow >/dev/null 2>&1; then echo shadow-readable; else echo shadow-denied; fi"
    ids = run_ssh(private, user, ip, port, probe)
    assert ids.returncode == 0, ids.stderr
    uid, groups, shadow = ids.stdout.split()[0], ids.stdout.splitlines()[1].split(), ids.stdout.split()[-1]
    assert int(uid) != 0 and "0" not in groups and shadow == "shadow-denied"

    as_root = run_ssh(private, "root", ip, port, "id -u")
    assert as_root.returncode != 0 and as_root.stdout == ""
    # Nor any other account than the one the emulator reports (sshd's AllowUsers).
    assert run_ssh(private, "nobody", ip, port, "id -u").returncode != 0


def test_control_api_needs_its_own_token(emu: EmulatorServer) -> None:
    emu.world.set_faults(latency_ms=0)
    control = emu.url + "/_emulator"
    provider_token = {"Authorization": f"Bearer {emu.credentials['voltagepark']['token']}"}
    for method, path in (("GET", "/state"), ("POST", "/reset"), ("POST", "/faults"), ("GET", "/requests")):
        for headers in ({}, {"X-Emulator-Token": "wrong"}, provider_token):
            refused = httpx.request(method, control + path, headers=headers, json={}, timeout=10)
            assert refused.status_code == 401, (method, path, headers)
    assert httpx.get(control + "/health", timeout=10).status_code == 200  # liveness stays open
    state = httpx.get(control + "/state", headers=emu.control_headers, timeout=10)
    assert state.status_code == 200 and "providers" in state.json()


def test_credentials_are_random_per_run_and_only_in_the_env_file(tmp_path: Path) -> None:
    first, second = EmulatorSettings(), EmulatorSettings()
    assert first.credentials != second.credentials and first.control_token != second.control_token
    assert first.control_token not in repr(first) and first.credentials["dcdncloud"]["token"] not in repr(first)

    env_file = tmp_path / "env"
    env_file.write_text("stale\n")
    env_file.chmod(0o644)  # an existing file is narrowed, not written with its old mode
    write_env_file(env_file, client_env("http://127.0.0.1:1", first))
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    text = env_file.read_text()
    assert first.credentials["voltagepark"]["token"] in text and f"{CONTROL_TOKEN_ENV}=" in text

    source = "\n".join(p.read_text() for p in (ROOT / "shared/gpucloud/emulator").glob("*.py"))
    assert first.credentials["voltagepark"]["token"] not in source


def test_cli_banner_prints_no_credentials(tmp_path: Path) -> None:
    """The `gpucloud emulator` banner and log show where the credentials are, never the credentials."""
    env_file = tmp_path / "emu.env"
    env = {**os.environ, "HOME": str(tmp_path)}
    argv = [sys.executable, "-m", "gpucloud.cli", "emulator", "--port", "0", "--env-file", str(env_file)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while not lines or not lines[-1].lstrip().startswith("ssh "):  # the banner's last line
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    secrets = [line.split("=", 1)[1].strip().strip("'") for line in env_file.read_text().splitlines()]
    secrets = [s for s in secrets if len(s) >= 16 and not s.startswith("http")]
    assert secrets and "credentials" in "".join(lines)
    assert not [s for s in secrets if s in "".join(lines)]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.com"])
def test_non_loopback_bind_is_refused_without_the_flag(host: str) -> None:
    with pytest.raises(ValueError, match="allow-remote"):
        EmulatorServer(host=host, ssh=False)
    cli = subprocess.run(
        [sys.executable, "-m", "gpucloud.cli", "emulator", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 2 and "refusing to bind" in cli.stdout + cli.stderr


def test_non_loopback_bind_with_the_flag_serves() -> None:
    with EmulatorServer(host="0.0.0.0", allow_remote=True, ssh=False) as server:
        assert httpx.get(server.url + "/_emulator/health", timeout=10).status_code == 200

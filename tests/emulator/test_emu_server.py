"""Server lifecycle: no sshd outlives stop(), a SIGTERM'd or a SIGKILL'd `serve`; /docs lists every provider route."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from gpucloud.emulator import EmulatorServer
from tests.emulator.helpers import sshd_pids, wait_for


def _running_vm(base_url: str, token: str) -> str:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as vp:
        config_id = vp.get("/instant-deploy-presets/").json()[0]["id"]
        vm_id = vp.post("/virtual-machines/instant", json={"config_id": config_id, "name": "vm"}).json()["vm_id"]
        wait_for(lambda: vp.get(f"/virtual-machines/{vm_id}").json()["status"] == "Running")
        return str(vm_id)


def _running_dc_instance(server: EmulatorServer) -> None:
    creds = server.credentials["datacrunch"]
    with httpx.Client(base_url=server.base_url("datacrunch"), timeout=10) as dc:
        token = dc.post("/oauth2/token", json={"grant_type": "client_credentials", **creds}).json()["access_token"]
        dc.headers["Authorization"] = f"Bearer {token}"
        body = {"instance_type": "CPU.4V.16G", "image": "ubuntu-24.04", "hostname": "h", "location_code": "FIN-01"}
        inst_id = dc.post("/instances", json=body).text
        wait_for(lambda: dc.get(f"/instances/{inst_id}").json()["status"] == "running")


def test_stop_kills_every_sshd_and_removes_temp_state() -> None:
    server = EmulatorServer(provision_seconds=0.2).start()
    try:
        state_dir = server.world.state_dir
        assert state_dir is not None and state_dir.is_dir()
        _running_dc_instance(server)
        _running_vm(server.base_url("voltagepark"), server.credentials["voltagepark"]["token"])
        # Listening daemons only (sshd titles them "[listener]"); a connection being served is a short-lived child.
        assert len(sshd_pids(f"sshd -D -e -f {state_dir}.*\\[listener\\]")) == 2
    finally:
        server.stop()
    assert sshd_pids(f"sshd -D -e -f {state_dir}") == []
    assert not state_dir.exists()


def test_given_state_dir_is_kept(tmp_path: Path) -> None:
    with EmulatorServer(provision_seconds=0.2, state_dir=str(tmp_path)) as server:
        _running_vm(server.base_url("voltagepark"), server.credentials["voltagepark"]["token"])
        (config,) = (tmp_path / "sshd").glob("*/sshd_config")
        assert "AuthorizedKeysFile" in config.read_text()
    assert sshd_pids(f"sshd -D -e -f {tmp_path}") == []
    assert tmp_path.is_dir()


def test_without_ssh_instances_still_run() -> None:
    with EmulatorServer(provision_seconds=0.1, ssh=False) as server:
        assert server.world.sshd is None
        _running_vm(server.base_url("voltagepark"), server.credentials["voltagepark"]["token"])
        assert server.world.instances("voltagepark")[0]["public_ip"].startswith("127.")


def test_openapi_docs_list_both_providers(emu: EmulatorServer) -> None:
    assert httpx.get(emu.url + "/docs").status_code == 200
    paths = httpx.get(emu.url + "/openapi.json").json()["paths"]
    for path in ("/datacrunch/v1/oauth2/token", "/datacrunch/v1/instances", "/datacrunch/v1/sshkeys",
                 "/voltagepark/api/v1/virtual-machines/instant", "/voltagepark/api/v1/storage/",
                 "/_emulator/faults"):  # fmt: skip
        assert path in paths, path
    assert emu.base_url("datacrunch") == emu.url + "/datacrunch/v1"


def _serve_in_subprocess(state_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import os; from gpucloud.emulator import serve, EmulatorSettings; "
        "from gpucloud.emulator.world import random_credentials; "
        "creds = {**random_credentials(), 'voltagepark': {'token': os.environ['EMU_VP_TOKEN']}}; "
        "serve(EmulatorSettings(port=int(os.environ['EMU_PORT']), provision_seconds=0.2, "
        "state_dir=os.environ['EMU_STATE'], credentials=creds))"
    )
    token = secrets.token_urlsafe(16)
    env = {**os.environ, "EMU_PORT": str(port), "EMU_STATE": str(state_dir), "EMU_VP_TOKEN": token}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), timeout=20)
        _running_vm(url + "/voltagepark/api/v1", token)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, url


def test_serve_shuts_down_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, url = _serve_in_subprocess(tmp_path)
    try:
        # Listening daemons only: the SSH probe's session may still be winding down as a per-connection child.
        assert len(sshd_pids(f"sshd -D -e -f {tmp_path}.*\\[listener\\]")) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None and url in proc.stdout.read().decode()
    assert sshd_pids(f"sshd -D -e -f {tmp_path}") == []


def test_no_sshd_outlives_a_killed_emulator(tmp_path: Path) -> None:
    """SIGKILL gives the emulator no chance to clean up; the kernel's parent-death signal stops sshd."""
    proc, _ = _serve_in_subprocess(tmp_path)
    try:
        assert len(sshd_pids(f"sshd -D -e -f {tmp_path}.*\\[listener\\]")) == 1
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: sshd_pids(f"sshd -D -e -f {tmp_path}") == [], timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/_emulator/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False

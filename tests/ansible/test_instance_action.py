"""gpucloud.cloud.instance_action end to end: real ansible-playbook against the emulator, checked on the emulated
machines themselves (SSH with the added key, a copy booted from the snapshot)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud import sshexec
from gpucloud.emulator import EmulatorServer

from ..contract.specs import INSTANCE
from .conftest import Ansible
from .test_modules import lookup, task, writes


def _action(register: str, provider: str, name: str, action: str, **args: Any) -> dict[str, Any]:
    return task("instance_action", register, provider=provider, name=name, action=action, **args)


def _create(ansible: Ansible, provider: str, name: str, **extra: Any) -> dict[str, Any]:
    made = ansible.play([task("instance", "inst", provider=provider, name=name, **INSTANCE[provider], **extra)])
    assert made.rc == 0, made.output
    return dict(made["inst"]["instance"])


def _delete(ansible: Ansible, provider: str, *names: str) -> None:
    gone = ansible.play(
        [task("instance", f"rm{i}", provider=provider, name=n, state="absent") for i, n in enumerate(names)]
    )
    assert gone.rc == 0, gone.output


def test_add_ssh_key_lets_the_key_in(ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str]) -> None:
    private, public = keypair
    name = "act-key"
    _create(ansible, "dcdncloud", name, wait_for_ssh=True)  # created without keys
    try:
        running = lookup(emulator, "dcdncloud", "instance", name)
        before = writes(emulator, "dcdncloud")
        check = ansible.play([_action("add", "dcdncloud", name, "add_ssh_key", public_key=public)], check=True)
        assert check.rc == 0, check.output
        assert check["add"]["changed"] is True and check["add"]["instance"]["id"] == running.id
        assert writes(emulator, "dcdncloud") == before  # check mode only read
        with pytest.raises(gpucloud.ProviderError, match="exited 255"):
            sshexec.run(running, "true", identity_file=private)

        added = ansible.play([_action("add", "dcdncloud", name, "add_ssh_key", public_key=public)])
        assert added.rc == 0, added.output
        assert added["add"]["changed"] is True and added["add"]["action"] == "add_ssh_key"
        assert sshexec.run(running, "echo in", identity_file=private).strip() == "in"
    finally:
        _delete(ansible, "dcdncloud", name)


def test_reset_root_password_is_masked_and_kept_in_the_secrets_file(
    ansible: Ansible, emulator: EmulatorServer, tmp_path: Path
) -> None:
    name = "act-pass"
    secrets = tmp_path / "secrets.json"
    _create(ansible, "dcdncloud", name)
    try:
        before = writes(emulator, "dcdncloud")
        check = ansible.play(
            [_action("pw", "dcdncloud", name, "reset_root_password", secrets_file=str(secrets))], check=True
        )
        assert check.rc == 0 and check["pw"]["changed"] is True, check.output
        assert "instance_secrets" not in check["pw"] and not secrets.exists()
        assert writes(emulator, "dcdncloud") == before

        reset = ansible.play([_action("pw", "dcdncloud", name, "reset_root_password", secrets_file=str(secrets))])
        assert reset.rc == 0, reset.output
        assert reset["pw"]["instance_secrets"] == {"root_password": "********"}
        assert reset["pw"]["secrets_file"] == str(secrets) and stat.S_IMODE(secrets.stat().st_mode) == 0o600
        password = json.loads(secrets.read_text())[name]["root_password"]
        assert len(password) >= 16 and password not in reset.output and password not in json.dumps(reset.results)
        posts = [r for r in emulator.world.requests if r.provider == "dcdncloud" and r.path.endswith("/reset-password")]
        assert len(posts) == 1 and posts[0].method == "POST"
    finally:
        _delete(ansible, "dcdncloud", name)


def test_snapshot_id_boots_a_copy(ansible: Ansible, emulator: EmulatorServer) -> None:
    name, copy = "act-snap", "act-snap-copy"
    made = _create(ansible, "cloudnexus", name)
    try:
        check = ansible.play([_action("snap", "cloudnexus", name, "snapshot")], check=True)
        assert check.rc == 0, check.output
        assert check["snap"]["changed"] is True and check["snap"]["snapshot_id"] is None
        snapped = ansible.play(
            [
                _action("snap", "cloudnexus", name, "snapshot"),
                task(
                    "instance",
                    "copy",
                    provider="cloudnexus",
                    name=copy,
                    **{**INSTANCE["cloudnexus"], "image": "{{ snap.snapshot_id }}"},
                ),
            ]
        )
        assert snapped.rc == 0, snapped.output
        snapshot_id = snapped["snap"]["snapshot_id"]
        assert snapshot_id.startswith("snap_") and snapped["snap"]["instance"]["id"] == made["id"]
        assert snapshot_id in emulator.world.collection("cloudnexus", "snapshots")
        assert snapped["copy"]["changed"] is True and snapped["copy"]["instance"]["image"] == snapshot_id
    finally:
        _delete(ansible, "cloudnexus", name, copy)


def test_refusals_come_before_any_request(
    ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    public = keypair[1]
    before = emulator.world.request_count()
    refused = ansible.play(
        [
            _action("unsupported", "dcdncloud", "anything", "snapshot", ignore_errors=True),
            _action("nokey", "dcdncloud", "anything", "add_ssh_key", ignore_errors=True),
            _action("badkey", "dcdncloud", "anything", "add_ssh_key", public_key="ssh-rsa nope", ignore_errors=True),
            _action("stray", "cloudnexus", "anything", "snapshot", public_key=public, ignore_errors=True),
            _action("pwfile", "cloudnexus", "anything", "snapshot", secrets_file="/tmp/x.json", ignore_errors=True),
        ]
    )
    assert refused["unsupported"]["error_class"] == "Unsupported"
    assert "instance snapshots" in refused["unsupported"]["msg"] and "console" in refused["unsupported"]["msg"]
    for register, option in (
        ("nokey", "public_key"),
        ("badkey", "public_key"),
        ("stray", "public_key"),
        ("pwfile", "secrets_file"),
    ):
        assert refused[register]["failed"] and refused[register]["option"] == option, refused[register]
    assert emulator.world.request_count() == before


def test_a_missing_instance_is_not_found(ansible: Ansible) -> None:
    missing = ansible.play([_action("gone", "dcdncloud", "act-never-made", "reset_root_password", ignore_errors=True)])
    assert missing["gone"]["error_class"] == "NotFound" and "act-never-made" in missing["gone"]["msg"]

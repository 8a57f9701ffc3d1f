"""ansible-playbook --check predicts a play whose later tasks name what its earlier tasks create."""

from __future__ import annotations

from pathlib import Path

import pytest

import gpucloud
from gpucloud import Status
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.providers import provider_class

from ..contract.specs import INSTANCE, REPLACING, VOLUME
from .conftest import Ansible
from .test_modules import IMPLEMENTED, caps, task, writes

ATTACHING = [p for p in IMPLEMENTED if {Capability.VOLUME_ATTACH, Capability.VOLUME_CREATE} <= caps(p)]


@pytest.mark.parametrize("provider", ATTACHING)
def test_check_mode_predicts_a_volume_attached_to_an_instance_made_in_the_same_play(
    provider: str, ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    name = f"ans-chk-{provider}"
    keys = [keypair[1]]
    tasks = []
    if Capability.SSH_KEYS in caps(provider):
        tasks.append(task("ssh_key", "key", provider=provider, name=name, public_key=keypair[1]))
        keys = [name]
    # Where the API attaches only to stopped instances, the real play would fail at the volume (the new instance
    # runs once created): check mode predicts that refusal instead of a create.
    refused = Status.RUNNING not in (provider_class(provider).volume_attach_statuses or {Status.RUNNING})
    volume = dict(name=f"{name}-data", size=10, attach_to=name, **VOLUME[provider])
    tasks += [
        task("instance", "inst", provider=provider, name=name, ssh_keys=keys, **INSTANCE[provider]),
        task("volume", "vol", provider=provider, **volume, **({"ignore_errors": True} if refused else {})),
    ]
    sent = writes(emulator, provider)
    run = ansible.play(tasks, check=True, diff=True)
    assert run.rc == 0, run.output
    assert run["inst"]["changed"] and run["inst"]["action"] == "create"
    # The predicted type is spelled as the provider will report it (Voltage Park names presets with resources).
    with gpucloud.connect(provider, **client_overrides(emulator.url, emulator.settings)[provider]) as cloud:
        reported = cloud.canonical_instance_type(INSTANCE[provider]["instance_type"])
    assert run["inst"]["instance"]["instance_type"] == run["inst"]["diff"]["after"]["instance_type"] == reported
    if refused:
        assert run["vol"]["failed"] and "will be running; stop it first (state: stopped)" in run["vol"]["msg"]
    else:
        assert run["vol"]["changed"] and run["vol"]["action"] == "create"
    assert writes(emulator, provider) == sent, "check mode wrote nothing"


def test_existing_instance_needs_no_type_tags_unmanaged_and_replace_labelled(
    ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    provider, name = "voltagepark", "ans-chk-tags"
    base = {"provider": provider, "name": name, "ssh_keys": [keypair[1]], "wait_timeout": 60}
    made = ansible.play([task("instance", "inst", **base, **INSTANCE[provider], tags={"team": "ml"})])
    assert made.rc == 0, made.output
    try:
        # No instance_type, no tags: the existing instance is found, nothing to change, tags left alone.
        merge = task("instance", "merge", **base, tags={"x": "1"}, purge_tags=False)
        same = ansible.play([task("instance", "same", **base), merge])
        assert same.rc == 0, same.output
        assert same["same"]["changed"] is False and same["same"]["instance"]["tags"] == {"team": "ml"}
        assert same["merge"]["changed"] and same["merge"]["instance"]["tags"] == {"team": "ml", "x": "1"}

        changed = {**INSTANCE[provider], **REPLACING[provider]}
        replacing = task("instance", "repl", **base, **changed, force_replace=True)
        check = ansible.play([replacing], check=True, diff=True)
        assert check.rc == 0, check.output
        assert check["repl"]["action"] == "replace"
        assert "(new: replace, instance_type cannot change in place)" in check.stdout
        assert "(deleted: replaced)" in check.stdout
    finally:
        gone = ansible.play([task("instance", "gone", provider=provider, name=name, state="absent")])
        assert gone.rc == 0, gone.output

    missing = ansible.play([task("instance", "nope", provider=provider, name="ans-chk-none", ignore_errors=True)])
    assert "instance_type: is required to create instance 'ans-chk-none'" in missing["nope"]["msg"]

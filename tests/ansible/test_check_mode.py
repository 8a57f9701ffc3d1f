"""ansible-playbook --check predicts a play whose later tasks name what its earlier tasks create."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer

from ..contract.specs import INSTANCE, VOLUME
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
    tasks += [
        task("instance", "inst", provider=provider, name=name, ssh_keys=keys, **INSTANCE[provider]),
        task("volume", "vol", provider=provider, name=f"{name}-data", size=10, attach_to=name, **VOLUME[provider]),
    ]
    sent = writes(emulator, provider)
    run = ansible.play(tasks, check=True, diff=True)
    assert run.rc == 0, run.output
    assert run["inst"]["changed"] and run["inst"]["action"] == "create"
    assert run["vol"]["changed"] and run["vol"]["action"] == "create"
    assert writes(emulator, provider) == sent, "check mode wrote nothing"

"""Bad module options through the real ansible-playbook: a hypothesis-drawn sample of bad inputs, run as the
tasks of one playbook (each ``ignore_errors`` and registered), so the whole sample costs one playbook run.

Each task must fail with a message naming the option, and the whole play must send 0 requests that could
change anything (catalogue reads are allowed; see tests/fuzz/test_core_inputs.py for the definition).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from gpucloud.emulator import EmulatorServer

from .. import figures
from ..ansible.conftest import Ansible, ansible, ansible_home, emulator_env  # noqa: F401 - fixtures
from ..contract.specs import INSTANCE
from .strategies import DISPLAY_NAME, FUZZ, NAME_RULES, bad_names, bad_public_keys, unknown_names, unusable_names

pytestmark = pytest.mark.fuzz
SAMPLE = 24
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@st.composite
def bad_task(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(module, args, option the error must name)."""
    choices = ["key_text", "key_name", "instance_name", "display_name", "unusable_name", "size", "timeout", "catalogue"]
    choice = draw(st.sampled_from(choices))
    if choice == "key_text":
        key = draw(bad_public_keys().filter(lambda k: bool(k.strip())))
        return "ssh_key", {"provider": "datacrunch", "name": "fz-key", "public_key": key}, "public_key"
    if choice == "key_name":
        name = draw(bad_names(NAME_RULES[("voltagepark", "ssh_key")]).filter(lambda v: bool(v.strip())))
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDfJgp3IZxyJ0Ub0jZ0S2l0yFzVeSnvz9ovXXtkgZ3Vw fz@host"
        return "ssh_key", {"provider": "voltagepark", "name": name, "public_key": key}, "name"
    if choice == "instance_name":
        name = draw(bad_names(NAME_RULES[("dcdncloud", "instance")]).filter(lambda v: bool(v.strip())))
        return "instance", {"provider": "dcdncloud", **INSTANCE["dcdncloud"], "name": name, "wait": False}, "name"
    if choice in ("display_name", "unusable_name"):
        provider = draw(
            st.sampled_from(["voltagepark", "computestacks", "cloudnexus"][: 2 if choice == "display_name" else 3])
        )
        name = draw(bad_names(DISPLAY_NAME) if choice == "display_name" else unusable_names())
        return "instance", {"provider": provider, **INSTANCE[provider], "name": name, "wait": False}, "name"
    if choice == "size":
        size = draw(st.one_of(st.integers(max_value=0), st.just(True)))
        return "volume", {"provider": "datacrunch", "name": "fz-vol", "size": size, "location": "FIN-01"}, "size"
    if choice == "timeout":
        timeout = draw(st.one_of(st.integers(max_value=0), st.booleans()))  # true is not 1 second
        args = {"provider": "datacrunch", **INSTANCE["datacrunch"], "name": "fz-t", "wait_timeout": timeout}
        return "instance", args, "wait_timeout"
    field = draw(st.sampled_from(["instance_type", "image", "location"]))
    value = draw(unknown_names({"1V100.6V", "FIN-01", "FIN-02", "FIN-03", "ICE-01"}).map(lambda v: "zz-" + v))
    args = {"provider": "datacrunch", **INSTANCE["datacrunch"], "name": "fz-cat", field: value, "wait": False}
    return "instance", args, field


def _writes(emulator: EmulatorServer) -> int:
    return sum(1 for r in emulator.world.requests if r.method in WRITES and "token" not in r.path)


@settings(FUZZ, max_examples=1, phases=[Phase.generate])
@given(sample=st.lists(bad_task(), min_size=SAMPLE, max_size=SAMPLE))
def test_bad_options_fail_naming_the_option_and_change_nothing(
    ansible: Ansible,  # noqa: F811 - the fixture imported above
    emulator: EmulatorServer,
    sample: list[tuple[str, dict[str, Any], str]],
) -> None:
    tasks = []
    for index, (module, args, _) in enumerate(sample):
        task = {"name": f"bad {index}", f"gpucloud.cloud.{module}": args, "register": f"r{index}"}
        task["ignore_errors"] = True
        tasks.append(task)
    before = _writes(emulator)
    play = ansible.play(tasks)
    sent = _writes(emulator) - before
    figures.record("bad inputs tried", len(sample))
    figures.record("bad inputs that reached the API", sent)
    assert sent == 0, play.output
    for index, (module, args, option) in enumerate(sample):
        result = play[f"r{index}"]
        assert result.get("failed"), (module, args, result)
        assert option in result["msg"], (module, args, option, result["msg"])
        if args.get("public_key") and len(args["public_key"]) > 20 and module == "ssh_key":
            assert result.get("option", option) == option

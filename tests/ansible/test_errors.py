"""Failures through ansible-playbook: bad options before any request, provider errors shaped for fail_json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.config import PROVIDERS
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.models import SshKeySpec
from gpucloud.providers import implemented, provider_class

from ..contract.specs import INSTANCE, VOLUME
from .conftest import Ansible
from .test_modules import task

IMPLEMENTED = implemented()


def failing(module: str, register: str, **args: Any) -> dict[str, Any]:
    return task(module, register, ignore_errors=True, **args)


def test_bad_option_values_fail_before_any_request(ansible: Ansible, emulator: EmulatorServer) -> None:
    dc = {"provider": "datacrunch", **INSTANCE["datacrunch"]}
    cases = {  # register name -> (task, option the message must name)
        "bad_state": (failing("instance", "bad_state", **dc, name="x-1", state="exploded"), "state"),
        "bad_timeout": (failing("instance", "bad_timeout", **dc, name="x-1", wait_timeout=0), "wait_timeout"),
        "bad_tags": (failing("instance", "bad_tags", **dc, name="x-1", tags={"n": 3}), "tags"),
        "bad_provider": (
            failing("instance", "bad_provider", provider="nocloud", name="x-1", instance_type="a"),
            "provider",
        ),
        "bad_size": (failing("volume", "bad_size", provider="datacrunch", name="v-1", size=0), "size"),
        "no_size": (failing("volume", "no_size", provider="datacrunch", name="v-1"), "size"),
        "bad_key": (
            failing("ssh_key", "bad_key", provider="datacrunch", name="key-1", public_key="ssh-rsa nope"),
            "public_key",
        ),
        "bad_price": (failing("offer_info", "bad_price", max_price=-1), "max_price"),
        "bad_providers": (failing("offer_info", "bad_providers", providers=["nocloud"]), "providers"),
        "bad_type": (failing("instance", "bad_type", **dc, name="x-1", wait="maybe"), "wait"),
    }
    before = emulator.world.request_count()
    result = ansible.play([case for case, _ in cases.values()])
    assert result.rc == 0, result.output  # every failure was ignored, so the play itself completes
    for register, (_, option) in cases.items():
        got = result[register]
        assert got["failed"] is True, (register, got)
        assert option in got["msg"], (register, got["msg"])
        assert "Traceback" not in got["msg"]
    assert emulator.world.request_count() == before, [r.path for r in emulator.world.requests[-5:]]


def test_instance_type_is_needed_only_to_create(ansible: Ansible, emulator: EmulatorServer) -> None:
    """Without instance_type the module must look the name up first (an existing instance keeps its type); for a
    name that does not exist it fails naming instance_type, having only read."""
    before = len(emulator.world.requests)
    result = ansible.play([failing("instance", "no_type", provider="datacrunch", name="no-such-instance-x1")])
    assert result.rc == 0, result.output
    got = result["no_type"]
    assert got["failed"] is True and "instance_type" in got["msg"] and "Traceback" not in got["msg"], got
    sent = [f"{r.method} {r.path}" for r in emulator.world.requests[before:]]
    assert sent and all(r.startswith("GET ") or "token" in r for r in sent), sent


# One option per capability: a provider lacking the capability must refuse it with a clean Unsupported failure.
OPTION_NEEDS = {
    Capability.INSTANCE_TAGS: {"tags": {"a": "b"}},
    Capability.INSTANCE_LOCATION_CHOICE: {"location": "somewhere"},
    Capability.INSTANCE_STARTUP_SCRIPT: {"startup_script": "echo hi"},
    Capability.INSTANCE_PASSWORD: {"password": "long-enough-password-1"},
    Capability.INSTANCE_VOLUMES_AT_CREATE: {"volumes": ["data"]},
}


def test_missing_capabilities_are_clean_unsupported_failures(
    ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    _, public = keypair
    tasks, expected = [], {}
    for provider in IMPLEMENTED:
        capabilities = provider_class(provider).capabilities
        for capability, option in OPTION_NEEDS.items():
            if capability not in capabilities:
                register = f"{provider}_{capability.name.lower()}"
                spec = {**INSTANCE[provider], **option}
                tasks.append(failing("instance", register, provider=provider, name=f"uns-{provider}", **spec))
                expected[register] = provider
        if Capability.VOLUME_CREATE not in capabilities:
            register = f"{provider}_volumes"
            tasks.append(failing("volume", register, provider=provider, name="uns-vol", size=10, **VOLUME[provider]))
            expected[register] = provider
        if Capability.SSH_KEYS not in capabilities:
            register = f"{provider}_ssh_keys"
            tasks.append(failing("ssh_key", register, provider=provider, name="uns-key", public_key=public))
            expected[register] = provider
    for name in PROVIDERS:
        if name not in IMPLEMENTED:  # known to the configuration, no adapter in this release
            tasks.append(failing("instance_info", f"{name}_adapter", provider=name))
            expected[f"{name}_adapter"] = name
    assert tasks, "every implemented provider has every capability: nothing to refuse"
    before = emulator.world.request_count()
    result = ansible.play(tasks)
    assert result.rc == 0, result.output
    for register, provider in expected.items():
        got = result[register]
        assert got["failed"] and got["error_class"] == "Unsupported", (register, got)
        assert got["error_code"] == "unsupported" and got["provider"] == provider and provider in got["msg"]
        assert "Traceback" not in got["msg"]
    assert emulator.world.request_count() == before


def test_provider_errors_are_clean_failures(
    ansible: Ansible, emulator: EmulatorServer, keypair: tuple[Path, str]
) -> None:
    _, public = keypair
    world = emulator.world
    dc = {"provider": "datacrunch", **INSTANCE["datacrunch"]}
    with gpucloud.connect("datacrunch", **client_overrides(emulator.url, emulator.settings)["datacrunch"]) as cloud:
        # Two keys with one name, made behind the adapter's back (as another tool could).
        twins = [cloud._create_ssh_key(SshKeySpec(name="ans-twin", public_key=public)) for _ in range(2)]
        try:
            world.set_capacity("datacrunch", INSTANCE["datacrunch"]["instance_type"], None, False)
            first = ansible.play(
                [
                    failing("instance", "no_capacity", **dc, name="err-capacity"),
                    failing("ssh_key", "twins", provider="datacrunch", name="ans-twin", public_key=public),
                    failing("instance_info", "bad_token", provider="voltagepark", api_token="wrong-token"),
                    failing("instance", "bad_secret", **dc, name="err-auth", client_secret="wrong-secret"),
                ]
            )
            world.set_capacity("datacrunch", INSTANCE["datacrunch"]["instance_type"], None, True)
            world.set_balance("datacrunch", 0)
            second = ansible.play([failing("instance", "no_funds", **dc, name="err-funds")])
        finally:
            world.set_capacity("datacrunch", INSTANCE["datacrunch"]["instance_type"], None, True)
            world.set_balance("datacrunch", emulator.settings.balances["datacrunch"])
            for twin in twins:
                cloud.delete_ssh_key(twin.id)
        assert cloud.find_instance("err-capacity") is None and cloud.find_instance("err-funds") is None

    expectations = {
        "no_capacity": (first, "NoCapacity"),
        "twins": (first, "Conflict"),
        "bad_token": (first, "AuthError"),
        "bad_secret": (first, "AuthError"),
        "no_funds": (second, "InsufficientFunds"),
    }
    for register, (play, error_class) in expectations.items():
        got = play[register]
        assert got["failed"] and got["error_class"] == error_class, (register, got)
        assert got["provider"] in ("datacrunch", "voltagepark") and "Traceback" not in got["msg"]
        assert "wrong-token" not in play.output and "wrong-secret" not in play.output
    # DataCrunch's stock check answers before any order: no HTTP error, the code and message say why.
    no_capacity = first["no_capacity"]
    assert no_capacity["error_code"] == "no_capacity" and no_capacity["http_status"] is None
    assert "nothing was ordered" in no_capacity["msg"] and no_capacity["details"]["alternatives"] == []
    assert first["bad_token"]["http_status"] == 401
    assert second["no_funds"]["http_status"] == 402 and second["no_funds"]["error_code"]
    assert all(t.id in first["twins"]["msg"] or t.id in str(first["twins"]["details"]) for t in twins)


def test_module_without_gpucloud_says_how_to_install_it(ansible: Ansible, emulator: EmulatorServer) -> None:
    """/usr/bin/python3 runs modules fine but has no gpucloud: the failure says what to pip install."""
    before = emulator.world.request_count()
    result = ansible.play(
        [failing("instance_info", "info", provider="datacrunch")],
        extra_env={"ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"},
    )
    got = result["info"]
    assert got["failed"] and "pip install gpucloud" in got["msg"], got
    assert emulator.world.request_count() == before


def test_ids_that_are_paths_fail_naming_id_before_any_request(ansible: Ansible, emulator: EmulatorServer) -> None:
    """An id is never a path: ``../storage/<volume>`` must not delete a volume, nor ``../../_emulator/state``
    carry the provider token to the emulator's control API."""
    overrides = client_overrides(emulator.url, emulator.settings)["voltagepark"]
    with gpucloud.connect("voltagepark", **overrides) as cloud:
        volume = cloud.create_volume(gpucloud.VolumeSpec(name="not-an-instance", size_gb=10, **VOLUME["voltagepark"]))
    cases = {
        "traverse": failing(
            "instance", "traverse", provider="voltagepark", name="vm", id=f"../storage/{volume.id}", state="absent"
        ),
        "control": failing("instance_info", "control", provider="voltagepark", id="../../../../_emulator/state"),
        "query": failing("instance_info", "query", provider="datacrunch", id="x?status=running"),
        "dots": failing("volume", "dots", provider="voltagepark", id="..", state="absent"),
        "key": failing("ssh_key", "key", provider="computestacks", id="1/../../orders", state="absent"),
    }
    before = emulator.world.request_count()
    try:
        result = ansible.play(list(cases.values()))
        requests = emulator.world.requests[before:]
        with gpucloud.connect("voltagepark", **overrides) as cloud:
            still_there = cloud.get_volume(volume.id)
    finally:
        with gpucloud.connect("voltagepark", **overrides) as cloud:
            cloud.delete_volume(volume.id)
    assert result.rc == 0, result.output
    for register in cases:
        got = result[register]
        assert got["failed"] is True and not got.get("changed"), (register, got)
        assert "id" in got["msg"] and "is not a" in got["msg"] and "Traceback" not in got["msg"], got["msg"]
    assert [r.full_path for r in requests] == [], "no request may leave before the id is checked"
    assert still_there.id == volume.id

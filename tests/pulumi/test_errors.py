"""Error paths: Check rejects bad inputs before any request, API errors are clean failures, lost creates adopt."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer

from ..conftest import IMPLEMENTED, connect, providers_with, providers_without
from ..contract.specs import INSTANCE, VOLUME
from .conftest import PROJECT, PROVIDERS, TYPES, unique, up
from .harness import CheckFailed, DynamicProviderHarness, ProviderFailed, program_inputs

Overrides = dict[str, dict[str, object]]

OPTION_NEEDS: dict[Capability, dict[str, Any]] = {
    Capability.INSTANCE_TAGS: {"tags": {"a": "b"}},
    Capability.INSTANCE_LOCATION_CHOICE: {"location": "somewhere"},
    Capability.INSTANCE_STARTUP_SCRIPT: {"startup_script": "echo hi"},
    Capability.INSTANCE_PASSWORD: {"password": "long-enough-password"},
    Capability.INSTANCE_VOLUMES_AT_CREATE: {"volumes": ["data"]},
}
UNSUPPORTED = [(p, c) for c in OPTION_NEEDS for p in providers_without(c)]


def _check(h: DynamicProviderHarness, kind: str, props: dict[str, Any], olds: dict[str, Any] | None = None) -> Any:
    news = program_inputs(PROVIDERS[kind], props)
    return h.check(TYPES[kind], "r", olds or {}, news)


def _instance(provider: str, **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "name": unique("chk"), **INSTANCE[provider], **extra}


BAD_INSTANCE_INPUTS: list[tuple[dict[str, Any], str, str]] = [
    ({"instance_type": None}, "instance_type", "instance_type is required"),
    ({"name": 42}, "name", "name must be a string"),
    ({"name": "   "}, "name", "name must not be empty"),
    ({"ssh_keys": "not-a-list"}, "ssh_keys", "ssh_keys must be a list"),
    ({"ssh_keys": ["ssh-ed25519 AAAAnot-base64!"]}, "ssh_keys", "ssh_keys[0]"),
    ({"wait_timeout": -5}, "wait_timeout", "positive number"),
    ({"wait_for_ssh": "yes"}, "wait_for_ssh", "must be a boolean"),
    ({"colour": "blue"}, "colour", "unknown property 'colour'"),
    ({"provider": "nosuchcloud"}, "provider", "'nosuchcloud' is not available"),
]


@pytest.mark.parametrize("provider", IMPLEMENTED)
@pytest.mark.parametrize(("change", "prop", "reason"), BAD_INSTANCE_INPUTS)
def test_check_rejects_bad_instance_inputs_without_requests(
    harness: DynamicProviderHarness,
    emulator: EmulatorServer,
    provider: str,
    change: dict[str, Any],
    prop: str,
    reason: str,
) -> None:
    before = emulator.world.request_count()
    props = {k: v for k, v in {**_instance(provider), **change}.items() if v is not None}
    _, failures = _check(harness, "instance", props)
    assert emulator.world.request_count() == before, "Check must not call the provider API"
    assert [f for f in failures if f[0] == prop and reason in f[1]], failures
    with pytest.raises(CheckFailed):
        up(harness, "instance", props["name"] if isinstance(props["name"], str) else "x", props)
    assert emulator.world.request_count() == before


@pytest.mark.parametrize(("provider", "capability"), UNSUPPORTED)
def test_check_rejects_unsupported_options_naming_the_provider(
    harness: DynamicProviderHarness, emulator: EmulatorServer, provider: str, capability: Capability
) -> None:
    before = emulator.world.request_count()
    option = OPTION_NEEDS[capability]
    _, failures = _check(harness, "instance", _instance(provider, **option))
    assert emulator.world.request_count() == before
    (prop,) = option
    assert len(failures) == 1 and failures[0][0] == prop, failures
    assert provider in failures[0][1] and capability.value in failures[0][1]


@pytest.mark.parametrize("provider", providers_without(Capability.SSH_KEYS))
def test_ssh_key_resource_unsupported(
    harness: DynamicProviderHarness, provider: str, keypair: tuple[Path, str]
) -> None:
    _, failures = _check(harness, "ssh_key", {"provider": provider, "name": "k", "public_key": keypair[1]})
    assert failures and provider in failures[0][1]


@pytest.mark.parametrize("provider", providers_with(Capability.SSH_KEYS))
def test_check_rejects_a_bad_public_key(
    harness: DynamicProviderHarness, emulator: EmulatorServer, provider: str
) -> None:
    before = emulator.world.request_count()
    _, failures = _check(harness, "ssh_key", {"provider": provider, "name": "key-x", "public_key": "-----BEGIN"})
    assert emulator.world.request_count() == before
    assert failures and failures[0][0] == "public_key" and "not an OpenSSH public key" in failures[0][1]


@pytest.mark.parametrize("provider", providers_with(Capability.VOLUME_CREATE))
def test_check_rejects_shrinking_and_bad_sizes(
    harness: DynamicProviderHarness, emulator: EmulatorServer, provider: str
) -> None:
    before = emulator.world.request_count()
    props = {"provider": provider, "name": "vol-x", "size_gb": 40, **VOLUME[provider]}
    _, failures = _check(harness, "volume", props, olds={**props, "size_gb": 100.0})
    assert failures and failures[0][0] == "size_gb" and "cannot shrink" in failures[0][1]
    _, failures = _check(harness, "volume", {**props, "size_gb": 1.5})
    assert failures and failures[0][0] == "size_gb" and "whole number" in failures[0][1]
    _, failures = _check(harness, "volume", {**props, "size_gb": 0})
    assert failures and failures[0][0] == "size_gb"
    checked, failures = _check(harness, "volume", props)
    assert failures == [] and checked["size_gb"] == 40.0
    assert emulator.world.request_count() == before


def _last_line(error: ProviderFailed) -> str:
    return error.details.strip().splitlines()[-1]


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES))
def test_api_errors_are_clean_failures(
    harness: DynamicProviderHarness, emulator: EmulatorServer, overrides: Overrides, provider: str
) -> None:
    props = _instance(provider)
    with connect(overrides, provider) as cloud:
        # The emulator keys capacity by the API's own type id (a Voltage Park preset id): switch them all off.
        module = importlib.import_module(f"gpucloud.emulator.{provider}")
        keys = {cloud.canonical_instance_type(props["instance_type"]), *getattr(module, "PRESETS", {})}
        for key in keys:
            emulator.world.set_capacity(provider, key, None, False)
        try:
            with pytest.raises(ProviderFailed) as info:
                up(harness, "instance", props["name"], props)
        finally:
            for key in keys:
                emulator.world.set_capacity(provider, key, None, True)
        assert cloud.find_instance(props["name"]) is None
    line = _last_line(info.value)
    assert line.startswith("pulumi_gpucloud._provider.GpuCloudResourceError: create instance"), line
    assert provider in line and props["name"] in line
    for creds in emulator.credentials.values():
        for secret in creds.values():
            assert secret not in info.value.details


def test_missing_credentials_fail_cleanly(project_dir: Path, emulator_env: dict[str, str]) -> None:
    env = {k: ("" if k.endswith(("_TOKEN", "_CLIENT_SECRET", "_CLIENT_ID")) else v) for k, v in emulator_env.items()}
    provider = providers_with(Capability.INSTANCES)[0]
    with DynamicProviderHarness(project_dir, project=PROJECT, env=env) as h, pytest.raises(ProviderFailed) as info:
        up(h, "instance", "nocreds", _instance(provider))
    line = _last_line(info.value)
    assert "GpuCloudResourceError" in line and provider in line
    assert f"GPUCLOUD_{provider.upper()}_" in line


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES))
def test_interrupted_create_leaves_no_duplicate(
    harness: DynamicProviderHarness, emulator: EmulatorServer, overrides: Overrides, provider: str
) -> None:
    props = _instance(provider)
    emulator.world.set_faults(drop_create_rate=1.0)
    try:
        first = up(harness, "instance", props["name"], props).state
        # The engine lost the outcome too (e.g. the run was killed): the next `pulumi up` creates again.
        again = harness.create(TYPES["instance"], props["name"], first.inputs)
    finally:
        emulator.world.set_faults(drop_create_rate=0.0)
    with connect(overrides, provider) as cloud:
        named = [i for i in cloud.list_instances() if i.name == props["name"]]
        assert [i.id for i in named] == [first.id] and again.id == first.id
        assert named[0].status is gpucloud.Status.RUNNING
        harness.destroy(again)
        assert cloud.find_instance(props["name"]) is None

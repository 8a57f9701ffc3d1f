"""Preview with unknowns, refresh after out-of-band changes, adoption and get(), credentials from stack config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.models import SshKeySpec, VolumeSpec
from pulumi_gpucloud._provider import GET_MARKER

from ..conftest import connect, providers_with
from ..contract.specs import INSTANCE, VOLUME
from .conftest import PROJECT, PROVIDERS, TYPES, unique, up
from .harness import COMPUTED, DynamicProviderHarness, Secret, reveal

Overrides = dict[str, dict[str, object]]


@pytest.fixture(scope="module")
def instances(harness: DynamicProviderHarness, overrides: Overrides) -> Any:
    """One running instance per provider, shared by this module's read-only flows."""
    states = {}
    for provider in providers_with(Capability.INSTANCES):
        props = {"provider": provider, "name": unique(f"flow-{provider}"), **INSTANCE[provider], "wait_timeout": 60}
        states[provider] = (props, up(harness, "instance", props["name"], props).state)
    yield states
    for _, state in states.values():
        harness.destroy(state)


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES))
def test_preview_tolerates_unknowns(
    harness: DynamicProviderHarness, emulator: EmulatorServer, instances: Any, provider: str
) -> None:
    props, state = instances[provider]
    before = emulator.world.request_count()
    # A new resource whose name and keys come from resources not created yet: Check passes, nothing is sent.
    fresh = {**props, "name": COMPUTED, "ssh_keys": [COMPUTED]}
    checked, failures, diff = harness.preview("new", PROVIDERS["instance"], fresh, TYPES["instance"])
    assert failures == [] and diff is None and checked["name"] is COMPUTED
    assert emulator.world.request_count() == before
    # An existing one: an unknown instance type may force a replacement (an update where the API resizes),
    # unknown tags an update where the API updates them (else a replacement); the known inputs are still planned
    # (which may read the API, as every Diff does).
    caps = gpucloud.providers.provider_class(provider).capabilities
    _, failures, diff = harness.preview(
        props["name"], PROVIDERS["instance"], {**props, "instance_type": COMPUTED}, TYPES["instance"], state
    )
    if Capability.INSTANCE_RESIZE in caps:
        assert failures == [] and diff is not None and diff.kind == "update" and diff.replaces == []
    else:
        assert failures == [] and diff is not None and diff.kind == "replace" and diff.replaces == ["instance_type"]
    if Capability.INSTANCE_TAGS in caps:
        _, failures, diff = harness.preview(
            props["name"], PROVIDERS["instance"], {**props, "tags": COMPUTED}, TYPES["instance"], state
        )
        in_place = Capability.INSTANCE_TAG_UPDATE in caps
        assert failures == [] and diff is not None and diff.kind == ("update" if in_place else "replace")
    if Capability.INSTANCE_LOCATION_CHOICE in gpucloud.providers.provider_class(provider).capabilities and props.get(
        "location"
    ):
        moved = {**props, "location": "elsewhere-1", "name": COMPUTED}
        _, failures, diff = harness.preview(props["name"], PROVIDERS["instance"], moved, TYPES["instance"], state)
        assert failures == [] and diff is not None and "location" in diff.replaces
    # Check still reports what it can know.
    _, failures, _ = harness.preview("bad", PROVIDERS["instance"], {**fresh, "wait_timeout": "soon"}, TYPES["instance"])
    assert [f[0] for f in failures] == ["wait_timeout"]


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES))
def test_refresh_sees_out_of_band_changes(
    harness: DynamicProviderHarness, overrides: Overrides, instances: Any, provider: str
) -> None:
    props, state = instances[provider]
    caps = gpucloud.providers.provider_class(provider).capabilities
    if Capability.INSTANCE_TAGS not in caps and Capability.INSTANCE_START_STOP not in caps:
        pytest.fail(f"{provider}: no out-of-band change to make")  # pragma: no cover
    with connect(overrides, provider) as cloud:
        if Capability.INSTANCE_START_STOP in caps:
            cloud.stop_instance(state.id)
            cloud.wait_for_instance(state.id, [gpucloud.Status.STOPPED], timeout=60, interval=0.2)
            refreshed = harness.refresh(state)
            assert refreshed is not None and reveal(refreshed.outputs)["status"] == "stopped"
            cloud.start_instance(state.id)
            cloud.wait_for_instance(state.id, [gpucloud.Status.RUNNING], timeout=60, interval=0.2)
        else:
            cloud.update_instance(state.id, tags={"edited": "by-hand"})
            refreshed = harness.refresh(state)
            assert refreshed is not None and reveal(refreshed.outputs)["tags"] == {"edited": "by-hand"}
            # The next `up` puts the program's tags back, in place.
            again = up(harness, "instance", props["name"], props, refreshed)
            assert again.operation == "update" and cloud.get_instance(state.id).tags == {}
        back = harness.refresh(state)
        assert back is not None and reveal(back.outputs)["status"] == "running"


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES))
def test_create_adopts_an_existing_instance_by_name(
    harness: DynamicProviderHarness, emulator: EmulatorServer, instances: Any, provider: str
) -> None:
    """``import_`` cannot work (test_engine_programs.py); a create of the same name takes the instance over."""
    props, state = instances[provider]
    before = len(emulator.world.instances(provider))
    adopted = up(harness, "instance", "another-stack", props)  # no state: the engine calls Create
    assert adopted.operation == "create" and adopted.state.id == state.id
    assert reveal(adopted.state.outputs)["status"] == "running"
    assert len(emulator.world.instances(provider)) == before  # adopted, nothing created


@pytest.mark.parametrize("provider", providers_with(Capability.VOLUME_CREATE))
def test_get_and_refresh_a_volume(harness: DynamicProviderHarness, overrides: Overrides, provider: str) -> None:
    name = unique(f"getv-{provider}")
    props = {"provider": provider, "name": name, "size_gb": 20, **VOLUME[provider]}
    with connect(overrides, provider) as cloud:
        volume = cloud.create_volume(VolumeSpec(**{k: v for k, v in props.items() if k != "provider"}))
        seen = harness.get(
            "data", PROVIDERS["volume"], {"provider": provider, GET_MARKER: True}, TYPES["volume"], volume.id
        )
        assert seen.external and reveal(seen.outputs)["size_gb"] == 20 and reveal(seen.outputs)["name"] == name
        cloud.delete_volume(volume.id)
        assert harness.refresh(seen) is None


@pytest.mark.parametrize("provider", providers_with(Capability.SSH_KEYS))
def test_credentials_from_stack_config(
    project_dir: Path, emulator_env: dict[str, str], overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    """No credential in the environment: `pulumi config set --secret gpucloud:<provider>_<setting>` supplies it."""
    # This run's credentials (random per emulator run), i.e. the connection options that are credentials.
    fields = ("token", "client_id", "client_secret", "username", "password")
    creds = {k: v for k, v in overrides[provider].items() if k in fields}
    prefix = f"GPUCLOUD_{provider.upper()}_"
    env = {
        k: ("" if k.startswith(prefix) and k.removeprefix(prefix).lower() in creds else v)
        for k, v in emulator_env.items()
    }
    config = {f"gpucloud:{provider}_{field}": Secret(value) for field, value in creds.items()}
    name = unique(f"cfg-{provider}")
    with DynamicProviderHarness(project_dir, project=PROJECT, env=env, config=config) as h:
        state = up(h, "ssh_key", name, {"provider": provider, "name": name, "public_key": keypair[1]}).state
        with connect(overrides, provider) as cloud:
            assert cloud.find_ssh_key(name) is not None
            h.destroy(state)
            assert cloud.find_ssh_key(name) is None
    for value in creds.values():
        assert value not in str(reveal(state.outputs)) and value not in str(reveal(state.inputs))


@pytest.mark.parametrize("provider", providers_with(Capability.SSH_KEYS))
def test_create_adopts_a_key_left_by_an_earlier_run(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    name = unique(f"adopt-{provider}")
    with connect(overrides, provider) as cloud:
        existing = cloud.create_ssh_key(SshKeySpec(name=name, public_key=keypair[1]))
        state = up(harness, "ssh_key", name, {"provider": provider, "name": name, "public_key": keypair[1]}).state
        assert len([k for k in cloud.list_ssh_keys() if k.name == name]) == 1
        if existing.public_key:  # an API that never returns key texts cannot show it is the same key: replaced
            assert state.id == existing.id
        harness.destroy(state)

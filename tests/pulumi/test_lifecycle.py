"""Check -> Create -> Read -> Diff (none / update / replace) -> Update -> Delete over the real provider protocol.

Each step goes through the SDK's own dynamic-provider server (``python -m pulumi.dynamic``) with properties
marshalled as the engine does, and is checked against the emulator's state.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer

from ..conftest import IMPLEMENTED, connect, providers_with
from ..contract.specs import INSTANCE, REPLACING, VOLUME
from .conftest import PROVIDERS, TYPES, unique, up
from .harness import (
    PROVIDER_KEY,
    DynamicProviderHarness,
    ResourceState,
    Secret,
    decode_provider,
    reveal,
)

Overrides = dict[str, dict[str, object]]


def _credentials(overrides: Overrides) -> list[str]:
    """This run's emulator credentials (random per run), as the connect options carry them."""
    fields = ("token", "client_id", "client_secret", "username", "password")
    return [str(value) for options in overrides.values() for key, value in options.items() if key in fields]


def assert_no_credentials(state: ResourceState, overrides: Overrides) -> None:
    """Neither the pickled provider nor anything else in the state holds a credential."""
    pickle = decode_provider(state.outputs[PROVIDER_KEY])
    assert len(pickle) < 200, "the provider must be pickled by reference, not by value"
    assert b"pulumi_gpucloud._provider" in pickle and b"GpuCloudProvider" in pickle
    whole = json.dumps(reveal({"inputs": state.inputs, "outputs": state.outputs}))
    for secret in _credentials(overrides):
        assert secret.encode() not in pickle
        assert secret not in whole
        assert base64.b64encode(secret.encode()).decode() not in whole


def _other_type(cloud: gpucloud.Provider, current: str, location: str | None) -> str:
    for offer in cloud.list_offers():
        places = [loc for loc in offer.locations if loc.available and (location is None or loc.location == location)]
        if offer.instance_type != current and places:
            return offer.instance_type
    raise AssertionError(f"no second instance type on {cloud.name}")


def _writes(emulator: EmulatorServer, provider: str) -> int:
    """Requests that change something at the provider (token requests excluded)."""
    return sum(
        1
        for r in emulator.world.requests
        if r.provider == provider and r.method in ("POST", "PUT", "PATCH", "DELETE") and "oauth" not in r.path
    )


def _emulated(emulator: EmulatorServer, provider: str, instance_id: str) -> dict[str, Any] | None:
    return next((i for i in emulator.world.instances(provider) if str(i.get("id")) == instance_id), None)


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES))
def test_instance_lifecycle(
    harness: DynamicProviderHarness,
    emulator: EmulatorServer,
    overrides: Overrides,
    keypair: tuple[Path, str],
    provider: str,
) -> None:
    caps = gpucloud.providers.provider_class(provider).capabilities
    _, public = keypair
    key_state = None
    props: dict[str, Any] = {"provider": provider, "name": unique(f"pl-{provider}"), **INSTANCE[provider]}
    if Capability.SSH_KEYS in caps:
        key_name = unique(f"pl-key-{provider}")
        key_state = up(
            harness, "ssh_key", key_name, {"provider": provider, "name": key_name, "public_key": public}
        ).state
        props["ssh_keys"] = [key_name]
    else:
        props["ssh_keys"] = [public]
    if Capability.INSTANCE_TAGS in caps:
        props["tags"] = {"team": "ml"}
    if Capability.INSTANCE_PASSWORD in caps:
        props["password"] = Secret("correct-horse-battery")
    props.update(wait_for_ssh=True, wait_timeout=60)

    with connect(overrides, provider) as cloud:
        # Check + Create: running, answering SSH, exactly one instance under the name.
        created = up(harness, "instance", props["name"], props)
        state = created.state
        assert created.steps == ["check", "create"]
        live = cloud.find_instance(props["name"])
        assert live is not None and live.id == state.id and live.status is gpucloud.Status.RUNNING
        out = reveal(state.outputs)
        assert out["status"] == "running" and out["ssh_host"] == live.public_ip == out["public_ip"]
        assert out["ssh_port"] == live.ssh_port and out["ssh_user"] == live.ssh_user
        # Outputs the API leaves empty are absent from the state (the SDK drops None properties).
        assert out.get("gpu_model") == live.gpu_model and out.get("price_per_hour") == live.price_per_hour
        assert gpucloud.waiters.ssh_banner(out["ssh_host"], int(out["ssh_port"]), timeout=5)
        assert isinstance(state.outputs["wait_timeout"], float)  # numbers travel as doubles
        if "password" in props:
            assert isinstance(state.outputs["password"], Secret)
            assert state.outputs["password"].value == "correct-horse-battery"
        assert not isinstance(state.outputs["status"], Secret)
        assert_no_credentials(state, overrides)

        # Read (refresh): the same resource, nothing changed.
        refreshed = harness.refresh(state)
        assert refreshed is not None and refreshed.id == state.id
        assert reveal(refreshed.outputs)["status"] == "running"
        if "password" in props:
            assert isinstance(refreshed.outputs["password"], Secret)

        # Diff with the same inputs: no change, no API write.
        writes_before = _writes(emulator, provider)
        same = up(harness, "instance", props["name"], props, state)
        assert same.operation == "same" and same.diff is not None and same.diff.kind == "none"
        assert _writes(emulator, provider) == writes_before

        # Diff + Update of a provider-only setting: an update in state, nothing sent to the API.
        writes_before = _writes(emulator, provider)
        changed = {**props, "wait_timeout": 90}
        updated = up(harness, "instance", props["name"], changed, state)
        assert updated.operation == "update" and updated.diff is not None and updated.diff.replaces == []
        assert updated.state.id == state.id and updated.state.outputs["wait_timeout"] == 90.0
        assert _writes(emulator, provider) == writes_before
        state = updated.state

        if Capability.OFFERS in caps:
            # Diff -> replace on an instance type change: deleted first (the name must stay unique), then created.
            new_type = _other_type(cloud, live.instance_type or "", live.location if props.get("location") else None)
            wanted = {**changed, "instance_type": new_type}
            forcing = ["instance_type"]
            if Capability.INSTANCE_RESIZE in caps:
                # Diff -> update: resized in place (same id); an image change then exercises the replace.
                resized = up(harness, "instance", props["name"], wanted, state)
                assert resized.diff is not None and resized.diff.replaces == [] and resized.state.id == state.id
                assert resized.steps == ["check", "diff", "update"]
                assert cloud.get_instance(state.id).instance_type == cloud.canonical_instance_type(new_type)
                state = resized.state
                # (back on the spec's own type, which the replacing image is known to fit)
                wanted = {**wanted, **REPLACING[provider], "instance_type": props["instance_type"]}
                forcing = list(REPLACING[provider])
            replaced = up(harness, "instance", props["name"], wanted, state)
            assert replaced.diff is not None and replaced.diff.replaces == forcing
            assert replaced.diff.delete_before_replace is True
            # The engine checks the inputs again, without the old ones, before replacing.
            assert replaced.steps == ["check", "diff", "check", "delete", "create"]
        else:
            # No catalogue to pick another type from; without a rename API a new name replaces it, and the new
            # name cannot clash, so the replacement is created before the old one is deleted.
            assert Capability.INSTANCE_RENAME not in caps
            wanted = {**changed, "name": props["name"] + "-b"}
            replaced = up(harness, "instance", props["name"], wanted, state)
            assert replaced.diff is not None and replaced.diff.replaces == ["name"]
            assert replaced.diff.delete_before_replace is False
            assert replaced.steps == ["check", "diff", "check", "create", "delete"]
        assert replaced.state.id != state.id
        gone = _emulated(emulator, provider, state.id)
        assert gone is None or cloud.get_instance(state.id).status is gpucloud.Status.DELETED
        now = cloud.find_instance(wanted["name"])
        assert now is not None and now.id == replaced.state.id
        assert now.instance_type == cloud.canonical_instance_type(wanted["instance_type"])
        state = replaced.state

        # Delete waits until gone; deleting again (already gone) succeeds.
        harness.destroy(state)
        assert cloud.find_instance(wanted["name"]) is None and cloud.find_instance(props["name"]) is None
        harness.destroy(state)
        assert harness.refresh(state) is None
        if key_state is not None:
            harness.destroy(key_state)
            assert cloud.find_ssh_key(key_state.inputs["name"]) is None


@pytest.mark.parametrize("provider", providers_with(Capability.VOLUME_CREATE))
def test_volume_lifecycle(
    harness: DynamicProviderHarness, emulator: EmulatorServer, overrides: Overrides, provider: str
) -> None:
    caps = gpucloud.providers.provider_class(provider).capabilities
    props: dict[str, Any] = {"provider": provider, "name": unique(f"plv-{provider}"), "size_gb": 50, **VOLUME[provider]}
    with connect(overrides, provider) as cloud:
        state = up(harness, "volume", props["name"], props).state
        live = cloud.find_volume(props["name"])
        assert live is not None and live.id == state.id and live.size_gb == 50
        assert state.outputs["size_gb"] == 50.0 and reveal(state.outputs)["status"] == live.status
        assert_no_credentials(state, overrides)

        assert up(harness, "volume", props["name"], props, state).operation == "same"

        grown = up(harness, "volume", props["name"], {**props, "size_gb": 80}, state)
        expected = "update" if Capability.VOLUME_RESIZE in caps else "replace"
        assert grown.operation == expected
        assert cloud.get_volume(grown.state.id).size_gb == 80
        state = grown.state

        if Capability.VOLUME_RENAME in caps:
            renamed_props = {**props, "size_gb": 80, "name": props["name"] + "-b"}
            renamed = up(harness, "volume", props["name"], renamed_props, state)
            assert renamed.operation == "update" and renamed.state.id == state.id
            assert cloud.get_volume(state.id).name == renamed_props["name"]
            state = renamed.state

        harness.destroy(state)
        assert cloud.find_volume(reveal(state.outputs)["name"]) is None
        harness.destroy(state)  # already gone
        assert harness.refresh(state) is None  # gone (or kept as "deleted" by the API): dropped from state


@pytest.mark.parametrize("provider", providers_with(Capability.SSH_KEYS))
def test_ssh_key_lifecycle(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str, tmp_path: Path
) -> None:
    import subprocess

    _, public = keypair
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k2")], check=True)
    other = (tmp_path / "k2.pub").read_text().strip()
    name = unique(f"plk-{provider}")
    props = {"provider": provider, "name": name, "public_key": public}
    with connect(overrides, provider) as cloud:
        state = up(harness, "ssh_key", name, props).state
        live = cloud.find_ssh_key(name)
        assert live is not None and live.id == state.id
        assert_no_credentials(state, overrides)
        # The same key with another comment is the same key.
        commented = {**props, "public_key": " ".join(public.split()[:2]) + " another-comment"}
        assert up(harness, "ssh_key", name, commented, state).operation == "same"

        replaced = up(harness, "ssh_key", name, {**props, "public_key": other}, state)
        assert replaced.diff is not None and replaced.diff.replaces == ["public_key"]
        assert replaced.steps == ["check", "diff", "check", "delete", "create"]
        now = cloud.find_ssh_key(name)
        assert now is not None and now.id == replaced.state.id != state.id
        assert now.public_key == "" or now.public_key.split()[:2] == other.split()[:2]  # some APIs never return it

        harness.destroy(replaced.state)
        assert cloud.find_ssh_key(name) is None
        assert harness.refresh(replaced.state) is None


def test_every_implemented_provider_is_covered() -> None:
    """New providers are picked up by the parametrisation above as they land."""
    assert set(providers_with(Capability.INSTANCES)) <= set(IMPLEMENTED)
    assert set(PROVIDERS) == set(TYPES)


def _in_place_params() -> list[str]:
    """Providers whose API changes tags or names in place."""
    return [
        provider
        for provider in providers_with(Capability.INSTANCES)
        if gpucloud.providers.provider_class(provider).capabilities
        & {Capability.INSTANCE_TAG_UPDATE, Capability.INSTANCE_RENAME}
    ]


@pytest.mark.parametrize("provider", _in_place_params())
def test_in_place_updates(harness: DynamicProviderHarness, overrides: Overrides, provider: str) -> None:
    """Tags and names change in place where the API allows: Diff says update (no replaces), Update applies it."""
    caps = gpucloud.providers.provider_class(provider).capabilities
    props: dict[str, Any] = {"provider": provider, "name": unique(f"upd-{provider}"), **INSTANCE[provider]}
    if Capability.INSTANCE_TAG_UPDATE in caps:
        props["tags"] = {"team": "ml"}
    state = up(harness, "instance", props["name"], props).state
    try:
        wanted = dict(props)
        if Capability.INSTANCE_TAG_UPDATE in caps:
            wanted["tags"] = {"team": "research"}
        if Capability.INSTANCE_RENAME in caps:
            wanted["name"] = props["name"] + "-renamed"
        updated = up(harness, "instance", props["name"], wanted, state)
        assert updated.operation == "update" and updated.diff is not None and updated.diff.replaces == []
        assert updated.state.id == state.id
        state = updated.state
        with connect(overrides, provider) as cloud:
            live = cloud.get_instance(state.id)
        assert live.name == wanted["name"] and reveal(state.outputs)["name"] == wanted["name"]
        if "tags" in wanted:
            assert live.tags == wanted["tags"] and reveal(state.outputs)["tags"] == wanted["tags"]
        assert up(harness, "instance", props["name"], wanted, state).operation == "same"
    finally:
        harness.destroy(state)


TAGS_AT_CREATE_ONLY = [
    p
    for p in providers_with(Capability.INSTANCE_TAGS)
    if Capability.INSTANCE_TAG_UPDATE not in gpucloud.providers.provider_class(p).capabilities
]


@pytest.mark.parametrize("provider", TAGS_AT_CREATE_ONLY)
def test_new_tags_replace_where_the_api_sets_them_only_at_create(
    harness: DynamicProviderHarness, provider: str
) -> None:
    props: dict[str, Any] = {"provider": provider, "name": unique(f"tagc-{provider}"), **INSTANCE[provider]}
    props["tags"] = {"team": "ml"}
    state = up(harness, "instance", props["name"], props).state
    try:
        retagged = {**props, "tags": {"team": "research"}}
        _, failures, diff = harness.preview(props["name"], PROVIDERS["instance"], retagged, TYPES["instance"], state)
        assert not failures and diff is not None
        assert diff.replaces == ["tags"] and diff.delete_before_replace
    finally:
        harness.destroy(state)

"""The Ansible inventory helper (same host variables and groups as the inventory plugin) and the lookups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

import gpucloud
from gpucloud.capabilities import Capability
from pulumi_gpucloud import ansible, get_images, get_instance, get_locations, get_offers

from ..conftest import connect, providers_with
from ..contract.specs import INSTANCE
from .conftest import unique, up
from .harness import DynamicProviderHarness, ResourceState, reveal

Overrides = dict[str, dict[str, object]]
INSTANCE_PROVIDERS = providers_with(Capability.INSTANCES)


@pytest.fixture(scope="module")
def created(harness: DynamicProviderHarness) -> Iterator[dict[str, ResourceState]]:
    states: dict[str, ResourceState] = {}
    try:
        for provider in INSTANCE_PROVIDERS:
            props = {"provider": provider, "name": unique(f"inv-{provider}"), **INSTANCE[provider], "wait_timeout": 60}
            states[provider] = up(harness, "instance", props["name"], props).state
        yield states
    finally:
        for state in states.values():
            harness.destroy(state)


def _plugin_vars(instance: gpucloud.Instance) -> dict[str, Any]:
    """What the gpucloud.cloud.gpucloud inventory plugin sets for an instance (connect_with=ssh_endpoint)."""
    fields = instance.model_dump(mode="json", exclude={"raw"})
    expected = {"gpucloud_" + k: v for k, v in fields.items()}
    expected["gpucloud_ssh_host"] = instance.public_ip
    if instance.public_ip:
        expected["ansible_host"] = instance.public_ip
        if instance.ssh_port:
            expected["ansible_port"] = instance.ssh_port
    if instance.ssh_user:
        expected["ansible_user"] = instance.ssh_user
    return expected


@pytest.mark.parametrize("provider", INSTANCE_PROVIDERS)
def test_host_vars_match_the_inventory_plugin(
    created: dict[str, ResourceState], overrides: Overrides, provider: str
) -> None:
    state = created[provider]
    outputs = {"id": state.id, **reveal(state.outputs)}
    with connect(overrides, provider) as cloud:
        live = cloud.get_instance(state.id)
    assert ansible.host_vars(outputs) == _plugin_vars(live)
    assert ansible.host_vars(live) == _plugin_vars(live)


def test_inventory_is_read_by_ansible(created: dict[str, ResourceState], tmp_path: Path) -> None:
    outputs = [{"id": s.id, **reveal(s.outputs)} for s in created.values()]
    (tmp_path / "inventory.json").write_text(ansible.to_json(outputs))
    (tmp_path / "inventory.yml").write_text(ansible.to_yaml(outputs))
    binary = Path(sys.executable).with_name("ansible-inventory")
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ansible"), "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}
    lists = []
    for name in ("inventory.json", "inventory.yml"):
        done = subprocess.run(
            [str(binary), "-i", str(tmp_path / name), "--list"], env=env, capture_output=True, text=True, check=True
        )
        lists.append(_unsafe(json.loads(done.stdout)))
    assert _normal(lists[0]) == _normal(lists[1])
    listed = lists[0]
    for provider, state in created.items():
        host = f"{provider}-{reveal(state.outputs)['name']}"
        assert host in listed["_meta"]["hostvars"] and host in listed[f"gpucloud_{provider}"]["hosts"]
        hostvars = listed["_meta"]["hostvars"][host]
        assert hostvars["ansible_host"] == reveal(state.outputs)["public_ip"] and hostvars["gpucloud_id"] == state.id
        assert host in listed["gpucloud_status_running"]["hosts"]


def _normal(listed: dict[str, Any]) -> dict[str, Any]:
    return {k: {**v, "hosts": sorted(v["hosts"])} if "hosts" in v else v for k, v in listed.items()}


def _unsafe(value: Any) -> Any:
    """ansible-inventory --list (2.19) wraps strings as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    return value


def test_inventory_names_duplicates_apart() -> None:
    base = {"provider": "voltagepark", "name": "same", "status": "running", "public_ip": "10.0.0.1"}
    inv = ansible.inventory([{**base, "id": "a"}, {**base, "id": "b"}])
    assert sorted(inv["all"]["hosts"]) == ["voltagepark-same", "voltagepark-same-b"]
    assert inv["all"]["hosts"]["voltagepark-same"]["ansible_host"] == "10.0.0.1"
    assert "ansible_port" not in inv["all"]["hosts"]["voltagepark-same"]
    assert (
        ansible.inventory([{**base, "id": "a", "ssh_port": 2222.0}])["all"]["hosts"]["voltagepark-same"]["ansible_port"]
        == 2222
    )


@pytest.fixture
def in_process_env(emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in emulator_env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("provider", providers_with(Capability.OFFERS))
def test_get_offers(in_process_env: None, provider: str) -> None:
    offers = get_offers(provider, min_gpus=0)  # some catalogues are CPU-only
    assert offers and all(o.provider == provider and o.available for o in offers)
    prices = [o.price_per_hour for o in offers if o.price_per_hour is not None]
    assert prices == sorted(prices)
    cheap = get_offers(provider, min_gpus=0, max_price_per_hour=prices[0])
    assert cheap and all((o.price_per_hour or 0) <= prices[0] for o in cheap)
    assert get_offers(provider, min_gpus=10_000) == []


@pytest.mark.parametrize("provider", providers_with(Capability.IMAGES, Capability.LOCATIONS))
def test_get_images_and_locations(in_process_env: None, provider: str) -> None:
    """What a program passes as an instance's image / location, found without leaving the program."""
    images, locations = get_images(provider), get_locations(provider)
    assert images and all(i.provider == provider for i in images)
    assert [i.id for i in images] == sorted(i.id for i in images)
    assert locations and [loc.id for loc in locations] == sorted(loc.id for loc in locations)
    first = images[0]
    assert first in get_images(provider, name=first.name.upper())  # the filter ignores case
    assert get_locations(provider, name="no-such-place-anywhere") == []


@pytest.mark.parametrize("provider", INSTANCE_PROVIDERS)
def test_get_instance(in_process_env: None, created: dict[str, ResourceState], provider: str) -> None:
    state = created[provider]
    by_id = get_instance(provider, instance_id=state.id)
    by_name = get_instance(provider, name=reveal(state.outputs)["name"])
    assert by_id == by_name and by_id.id == state.id
    with pytest.raises(gpucloud.NotFound):
        get_instance(provider, name=unique("missing"))


def test_lookups_use_stack_config_for_the_provider(in_process_env: None) -> None:
    provider = providers_with(Capability.OFFERS)[0]
    pulumi.runtime.set_all_config({"gpucloud:provider": provider})
    try:
        assert get_offers(min_gpus=0)[0].provider == provider
    finally:
        pulumi.runtime.set_all_config({})
    with pytest.raises(ValueError, match=r"gpucloud:provider"):
        get_offers()

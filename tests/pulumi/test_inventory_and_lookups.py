"""The Ansible inventory helper (same host variables and groups as the inventory plugin) and the lookups."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_env
from gpucloud.providers import provider_class
from pulumi_gpucloud import ansible, get_images, get_instance, get_locations, get_offers

from ..ansible.conftest import base_env
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


def _plugin_listing(emulator: EmulatorServer, tmp_path: Path, names: list[str]) -> dict[str, Any]:
    """What the real gpucloud.cloud.gpucloud inventory plugin lists for the instances named ``names``."""
    source = tmp_path / "plugin.gpucloud.yml"
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    source.write_text(yaml.safe_dump({"plugin": "gpucloud.cloud.gpucloud", "filters": {"name": pattern}}))
    env = {**base_env(tmp_path), **client_env(emulator.url, emulator.settings)}
    binary = Path(sys.executable).with_name("ansible-inventory")
    done = subprocess.run(
        [str(binary), "-i", str(source), "--list"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    listed: dict[str, Any] = _unsafe(json.loads(done.stdout))
    return listed


def test_host_vars_and_groups_match_the_inventory_plugin(
    created: dict[str, ResourceState], overrides: Overrides, emulator: EmulatorServer, tmp_path: Path
) -> None:
    outputs = [{"id": s.id, **reveal(s.outputs)} for s in created.values()]
    plugin = _plugin_listing(emulator, tmp_path, [o["name"] for o in outputs])
    location_names = {}
    for provider in created:
        with connect(overrides, provider) as cloud:
            location_names[provider] = cloud.location_names()
    exported = ansible.inventory(outputs, location_names=location_names)["all"]
    assert exported["hosts"] == plugin["_meta"]["hostvars"]
    for group, members in exported["children"].items():
        assert sorted(members["hosts"]) == sorted(plugin[group]["hosts"]), group
    for output in outputs:
        host = exported["hosts"][f"{output['provider']}-{output['name']}"]
        assert ansible.host_vars(output, location_names[output["provider"]]) == host
        assert host["gpucloud_location_name"] not in (None, "")
    # Without location names the export still has every fact, with the location id as its name.
    bare = ansible.host_vars(outputs[0])
    assert bare["gpucloud_location_name"] == outputs[0]["location"]


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
    # As the plugin names them: every host sharing a name gets its id, so neither looks like "the" one.
    assert sorted(inv["all"]["hosts"]) == ["voltagepark-same-a", "voltagepark-same-b"]
    assert inv["all"]["hosts"]["voltagepark-same-a"]["ansible_host"] == "10.0.0.1"
    assert "ansible_port" not in inv["all"]["hosts"]["voltagepark-same-a"]
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
    spot = [o.spot_price_per_hour for o in offers if o.spot_price_per_hour is not None]
    # Spot prices next to the on-demand ones where the provider sells spot instances, and only there.
    assert bool(spot) == (Capability.INSTANCE_SPOT in provider_class(provider).capabilities)
    assert all(o.spot_price_per_hour < (o.price_per_hour or 0) for o in offers if o.spot_price_per_hour is not None)


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


def test_get_location_names_asks_the_provider(in_process_env: None, overrides: Overrides) -> None:
    with connect(overrides, "voltagepark") as cloud:
        cities = {loc.id: loc.name for loc in cloud.list_locations()}
    names = ansible.get_location_names("voltagepark")
    assert names == cities and all(name and name != location for location, name in names.items())

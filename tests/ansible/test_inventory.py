"""The inventory plugin through the real ansible-inventory, and a play over SSH to every emulated host."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_env, client_overrides
from gpucloud.models import InstanceSpec, SshKeySpec, Status, VolumeSpec
from gpucloud.providers import implemented

from ..contract.specs import INSTANCE
from .conftest import Ansible, base_env, writable_by_emulated_hosts

IMPLEMENTED = implemented()
SEEDED_PER_PROVIDER = 230  # three pages of 100 where the API pages


def _unsafe(value: Any) -> Any:
    """ansible-inventory --list (2.19) wraps strings as {"__ansible_unsafe": ...}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    return value


@pytest.fixture(scope="module")
def hosts(emulator: EmulatorServer, keypair: tuple[Path, str]) -> Iterator[dict[str, gpucloud.Instance]]:
    """One running instance per implemented provider, reachable with the session keypair."""
    _, public = keypair
    overrides = client_overrides(emulator.url, emulator.settings)
    made: dict[str, tuple[gpucloud.Instance, str | None]] = {}

    def make(provider: str) -> gpucloud.Instance:
        with gpucloud.connect(provider, **overrides[provider]) as cloud:
            key = None
            if cloud.supports(Capability.SSH_KEYS):
                key = cloud.create_ssh_key(SshKeySpec(name=f"inv-key-{provider}", public_key=public))
            spec = InstanceSpec(name=f"inv-{provider}", ssh_keys=(key.name if key else public,), **INSTANCE[provider])
            created = cloud.create_instance(spec).instance
            made[provider] = (created, key.id if key else None)
            running = cloud.wait_for_instance(created.id, [Status.RUNNING], timeout=120, interval=0.2)
            cloud.wait_for_ssh(running, timeout=60)
            return running

    with ThreadPoolExecutor(len(IMPLEMENTED)) as pool:
        running = dict(zip(IMPLEMENTED, pool.map(make, IMPLEMENTED), strict=True))
    yield running

    def remove(provider: str) -> None:
        instance, key_id = made[provider]
        with gpucloud.connect(provider, **overrides[provider]) as cloud:
            cloud.delete_instance(instance.id)
            cloud.wait_for_instance_gone(instance.id, timeout=120, interval=0.2)
            if key_id:
                cloud.delete_ssh_key(key_id)

    with ThreadPoolExecutor(len(IMPLEMENTED)) as pool:
        list(pool.map(remove, made))


def write_inventory(path: Path, **options: Any) -> Path:
    config = {
        "plugin": "gpucloud.cloud.gpucloud",
        "filters": {"name": "^inv-"},
        "compose": {"ansible_python_interpreter": "'/usr/bin/python3'"},
        **options,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def listing(ansible: Ansible, source: Path, *extra: str) -> dict[str, Any]:
    proc = ansible.inventory(source, "--list", *extra)
    assert proc.returncode == 0, proc.stderr
    return _unsafe(json.loads(proc.stdout))


def test_inventory_lists_hosts_with_vars_and_groups(
    ansible: Ansible, hosts: dict[str, gpucloud.Instance], tmp_path: Path
) -> None:
    source = write_inventory(
        tmp_path / "inv.gpucloud.yml",
        keyed_groups=[{"key": "gpucloud_provider", "prefix": "kg"}],
        groups={"with_gpus": "gpucloud_gpu_count > 0"},
    )
    data = listing(ansible, source)
    hostvars = data["_meta"]["hostvars"]
    assert sorted(hostvars) == sorted(f"{p}-inv-{p}" for p in IMPLEMENTED)
    for provider, instance in hosts.items():
        hostname = f"{provider}-inv-{provider}"
        got = hostvars[hostname]
        assert got["ansible_host"] == instance.public_ip
        assert got["ansible_port"] == instance.ssh_port
        assert got["ansible_user"] == instance.ssh_user
        assert got["ansible_python_interpreter"] == "/usr/bin/python3"
        assert got["gpucloud_id"] == instance.id and got["gpucloud_provider"] == provider
        assert got["gpucloud_status"] == "running" and got["gpucloud_ssh_host"] == instance.public_ip
        assert "gpucloud_raw" not in got
        assert hostname in data[f"gpucloud_{provider}"]["hosts"]
        assert hostname in data["gpucloud_status_running"]["hosts"]
        assert hostname in data[f"kg_{provider}"]["hosts"]
        group = "gpucloud_location_" + "".join(c if c.isalnum() else "_" for c in got["gpucloud_location_name"])
        assert hostname in data[group.lower()]["hosts"]
        if instance.gpu_count:
            assert hostname in data["with_gpus"]["hosts"]

    stopped = listing(ansible, write_inventory(tmp_path / "stopped.gpucloud.yml", filters={"status": ["stopped"]}))
    assert not stopped["_meta"]["hostvars"]
    one = listing(
        ansible,
        write_inventory(
            tmp_path / "one.gpucloud.yml",
            providers=[IMPLEMENTED[0]],
            hostname="{name}.{provider}",
            connect_with="public_ip",
            prefix="gc_",
        ),
    )
    only = one["_meta"]["hostvars"]
    assert list(only) == [f"inv-{IMPLEMENTED[0]}.{IMPLEMENTED[0]}"]
    (vars_,) = only.values()
    assert "ansible_port" not in vars_ and vars_["gc_id"] == hosts[IMPLEMENTED[0]].id


def test_inventory_cache_serves_without_requests(
    ansible: Ansible, emulator: EmulatorServer, hosts: dict[str, gpucloud.Instance], tmp_path: Path
) -> None:
    source = write_inventory(
        tmp_path / "cached.gpucloud.yml",
        cache=True,
        cache_plugin="ansible.builtin.jsonfile",
        cache_connection=str(tmp_path / "cache"),
        cache_timeout=3600,
    )
    first = listing(ansible, source)
    assert sorted(first["_meta"]["hostvars"]) == sorted(f"{p}-inv-{p}" for p in IMPLEMENTED)
    assert any((tmp_path / "cache").iterdir())
    before = emulator.world.request_count()
    second = listing(ansible, source)
    assert emulator.world.request_count() == before
    assert second == first
    listing(ansible, source, "--flush-cache")
    assert emulator.world.request_count() > before


def test_play_over_ssh_through_the_inventory(
    ansible: Ansible, hosts: dict[str, gpucloud.Instance], keypair: tuple[Path, str], tmp_path: Path
) -> None:
    private, _ = keypair
    source = write_inventory(tmp_path / "ssh.gpucloud.yml")
    out = writable_by_emulated_hosts()  # the play writes here as the hosts' login user
    tasks = [
        {
            "name": "Write a file on the host",
            "ansible.builtin.copy": {
                "dest": f"{out}/{{{{ inventory_hostname }}}}",
                "content": "{{ gpucloud_provider }} {{ ansible_facts.user_id }}"
                " {{ ansible_facts.env.SSH_CONNECTION }}\n",
                "mode": "0644",
            },
        }
    ]
    try:
        result = ansible.play(
            tasks,
            hosts="all",
            inventory=str(source),
            gather_facts=True,
            extra_env={"ANSIBLE_PRIVATE_KEY_FILE": str(private), "ANSIBLE_FORKS": "10"},
        )
        written = {path.name: path.read_text() for path in out.iterdir()}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert result.rc == 0, result.output
    for provider, instance in hosts.items():
        hostname = f"{provider}-inv-{provider}"
        written_provider, user, _client_ip, _client_port, server_ip, server_port = written[hostname].split()
        assert written_provider == provider and user == instance.ssh_user
        # Facts were gathered through this host's own sshd (its address and port), not a local connection.
        assert (server_ip, int(server_port)) == (instance.public_ip, instance.ssh_port)
        assert f"{hostname}" in result.stdout
    assert "unreachable=1" not in result.stdout and "failed=1" not in result.stdout


@pytest.fixture(scope="module")
def seeded(ansible_home: Path) -> Iterator[tuple[EmulatorServer, dict[str, str]]]:
    """An emulator of its own holding SEEDED_PER_PROVIDER running hosts per provider, at its published rate limits."""
    with EmulatorServer(ssh=False, seed_hosts=SEEDED_PER_PROVIDER * len(IMPLEMENTED)) as server:
        yield server, {**base_env(ansible_home), **client_env(server.url, server.settings)}


def test_every_seeded_host_is_listed_once_over_several_pages(
    seeded: tuple[EmulatorServer, dict[str, str]], tmp_path: Path
) -> None:
    server, env = seeded
    ansible = Ansible(env, tmp_path)
    overrides = client_overrides(server.url, server.settings)
    expected: dict[str, str] = {}
    for provider in IMPLEMENTED:
        with gpucloud.connect(provider, **overrides[provider]) as cloud:
            expected.update({f"{provider}-{i.name}": i.id for i in cloud.list_instances()})
    assert len(expected) == SEEDED_PER_PROVIDER * len(IMPLEMENTED)
    server.world.clear_requests()
    for provider in ("dcdncloud", "cloudnexus"):  # a fresh minute for each run's rate limit
        server.world.set_rate_limit(provider, server.settings.rate_limits[provider])

    data = listing(ansible, write_inventory(tmp_path / "seeded.gpucloud.yml", filters={}, compose={}))

    hostvars = data["_meta"]["hostvars"]
    assert {name: v["gpucloud_id"] for name, v in hostvars.items()} == expected
    for provider in IMPLEMENTED:
        assert len(data[f"gpucloud_{provider}"]["hosts"]) == SEEDED_PER_PROVIDER
    # Paged lists use the largest page the API allows (three pages of 100 on Voltage Park and CloudNexus;
    # ComputeStacks sets no maximum, so one page of up to 1000) and nothing hit a rate limit.
    pages = {
        "voltagepark": ("/virtual-machines", 3),
        "cloudnexus": ("/compute/instances", 3),
        "computestacks": ("/api/container_services", 1),
    }
    for provider, (path, count) in pages.items():
        assert server.world.request_count(provider, "GET", path) == count, provider
    assert not [r for r in server.world.requests if r.status == 429]


def test_a_fresh_cache_answers_every_seeded_host_without_requests(
    seeded: tuple[EmulatorServer, dict[str, str]], tmp_path: Path
) -> None:
    server, env = seeded
    ansible = Ansible(env, tmp_path)
    source = write_inventory(
        tmp_path / "seeded-cache.gpucloud.yml",
        filters={},
        compose={},
        cache=True,
        cache_plugin="ansible.builtin.jsonfile",
        cache_connection=str(tmp_path / "cache"),
        cache_timeout=3600,
    )
    for provider in ("dcdncloud", "cloudnexus"):
        server.world.set_rate_limit(provider, server.settings.rate_limits[provider])
    server.world.clear_requests()
    first = listing(ansible, source)
    assert server.world.request_count() > 0
    server.world.clear_requests()
    second = listing(ansible, source)
    assert server.world.request_count() == 0
    assert second == first
    assert len(second["_meta"]["hostvars"]) == SEEDED_PER_PROVIDER * len(IMPLEMENTED)


# Readable location names as the emulated catalogues spell them (for each provider's INSTANCE spec), and the
# GPU models in the one vendor-neutral spelling: what a user sees, written out rather than recomputed.
LOCATION_NAMES = {
    "datacrunch": "Finland 1",  # FIN-01
    "dcdncloud": "eu-central",  # regions have no other name
    "cloudnexus": "us-east-1",  # no location catalogue: the region code
    "computestacks": "Emulator East",  # location 1 (the service's "region" is the location)
}
GPUS = {"datacrunch": ("v100-16gb", 1), "voltagepark": ("h100-sxm5-80gb", 1)}


def test_hosts_carry_the_same_facts_on_every_provider(
    ansible: Ansible, hosts: dict[str, gpucloud.Instance], overrides: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    data = listing(ansible, write_inventory(tmp_path / "facts.gpucloud.yml"))
    hostvars = data["_meta"]["hostvars"]
    with gpucloud.connect("voltagepark", **overrides["voltagepark"]) as cloud:
        cities = {loc.id: loc.name for loc in cloud.list_locations()}
    for provider, instance in hosts.items():
        got = hostvars[f"{provider}-inv-{provider}"]
        model, count = GPUS.get(provider, (None, 0))
        assert (got["gpucloud_gpu_model"], got["gpucloud_gpu_count"]) == (model, count), provider
        assert got["gpucloud_location"] == instance.location
        expected = LOCATION_NAMES.get(provider) or cities[str(instance.location)]
        assert got["gpucloud_location_name"] == expected, provider
        if model:
            assert f"{provider}-inv-{provider}" in data["gpucloud_gpu_" + model.replace("-", "_")]["hosts"]
    # A Voltage Park UUID and a ComputeStacks numeric id become groups named after the place.
    vp = hosts["voltagepark"].location
    assert vp and cities[vp] not in (None, vp)
    assert "voltagepark-inv-voltagepark" in data["gpucloud_location_" + cities[vp].lower().replace(" ", "_")]["hosts"]
    assert "computestacks-inv-computestacks" in data["gpucloud_location_emulator_east"]["hosts"]
    assert all(group == group.lower() for group in data if group.startswith("gpucloud_"))
    # Filters take either spelling of a GPU model and a location's id or name.
    picked = listing(
        ansible,
        write_inventory(tmp_path / "h100.gpucloud.yml", filters={"name": "^inv-", "gpu_model": ["H100 SXM5"]}),
    )
    assert list(picked["_meta"]["hostvars"]) == ["voltagepark-inv-voltagepark"]
    named = write_inventory(tmp_path / "fin.gpucloud.yml", filters={"name": "^inv-", "location": ["finland 1"]})
    assert list(listing(ansible, named)["_meta"]["hostvars"]) == ["datacrunch-inv-datacrunch"]


def test_hostnames_preference_list(
    ansible: Ansible, emulator: EmulatorServer, hosts: dict[str, gpucloud.Instance], tmp_path: Path
) -> None:
    # Hosts without a GPU have no gpu_model, so the first entry does not fit them and they get the second.
    source = write_inventory(tmp_path / "names.gpucloud.yml", hostnames=["{name}-{gpu_model}", "id"])
    names = set(listing(ansible, source)["_meta"]["hostvars"])
    expected = {f"inv-{p}-{GPUS[p][0]}" if p in GPUS else instance.id for p, instance in hosts.items()}
    assert names == expected

    before = emulator.world.request_count()
    bad = ansible.inventory(write_inventory(tmp_path / "bad.gpucloud.yml", hostnames=["ip_address"]), "--list")
    assert bad.returncode != 0
    assert "ip_address" in bad.stderr and "public_ip" in bad.stderr  # names the entry and the valid fields
    assert emulator.world.request_count() == before  # refused before asking any provider


def test_one_provider_failing_fails_the_inventory_naming_it_unless_told_to_warn(
    ansible: Ansible, hosts: dict[str, gpucloud.Instance], tmp_path: Path
) -> None:
    broken = Ansible({**ansible.env, "GPUCLOUD_VOLTAGEPARK_TOKEN": "wrong-token-value"}, tmp_path)
    failed = broken.inventory(write_inventory(tmp_path / "strict.gpucloud.yml"), "--list")
    assert failed.returncode != 0
    assert "provider voltagepark failed" in failed.stderr and "AuthError" in failed.stderr
    assert "wrong-token-value" not in failed.stderr + failed.stdout

    cache = tmp_path / "cache"
    tolerant = write_inventory(
        tmp_path / "warn.gpucloud.yml",
        on_provider_error="warn",
        cache=True,
        cache_plugin="ansible.builtin.jsonfile",
        cache_connection=str(cache),
        cache_timeout=3600,
    )
    proc = broken.inventory(tolerant, "--list")
    assert proc.returncode == 0, proc.stderr
    listed = _unsafe(json.loads(proc.stdout))["_meta"]["hostvars"]
    assert sorted(listed) == sorted(f"{p}-inv-{p}" for p in IMPLEMENTED if p != "voltagepark")
    warning = " ".join(proc.stderr.split())  # Ansible wraps warnings
    assert "provider voltagepark: AuthError" in warning and "its hosts are left out" in warning
    assert "wrong-token-value" not in proc.stderr + proc.stdout
    assert not cache.exists() or not any(cache.iterdir())  # a partial list is never served from the cache


def test_voltagepark_hosts_list_their_volumes(
    ansible: Ansible, hosts: dict[str, gpucloud.Instance], overrides: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    # A Voltage Park VM does not name its volumes; each volume names its VMs, which the list path reads.
    instance = hosts["voltagepark"]
    with gpucloud.connect("voltagepark", **overrides["voltagepark"]) as cloud:
        volume = cloud.create_volume(VolumeSpec(name="inv-vp-data", size_gb=5, attach_to=instance.id))
        try:
            data = listing(ansible, write_inventory(tmp_path / "volumes.gpucloud.yml"))
            assert data["_meta"]["hostvars"]["voltagepark-inv-voltagepark"]["gpucloud_volume_ids"] == [volume.id]
        finally:
            cloud.delete_volume(volume.id)  # detaches first


def test_lean_hostvars_keep_only_the_facts_asked_for_and_drop_nulls(
    ansible: Ansible, emulator: EmulatorServer, hosts: dict[str, gpucloud.Instance], tmp_path: Path
) -> None:
    full = listing(ansible, write_inventory(tmp_path / "full.gpucloud.yml"))
    assert any(v is None for got in full["_meta"]["hostvars"].values() for v in got.values()), "some fact is null"

    fields = ["status", "gpu_model", "ssh_host"]
    lean = listing(
        ansible,
        write_inventory(
            tmp_path / "lean.gpucloud.yml", hostvar_fields=fields, keyed_groups=[{"key": "gpucloud_status"}]
        ),
    )
    assert set(lean["_meta"]["hostvars"]) == set(full["_meta"]["hostvars"])
    for hostname, got in lean["_meta"]["hostvars"].items():
        before = full["_meta"]["hostvars"][hostname]
        kept = {
            k: v for k, v in before.items() if k in {f"gpucloud_{f}" for f in fields} or not k.startswith("gpucloud_")
        }
        assert got == kept  # ansible_host/port/user and compose results stay; other facts are gone
        assert "gpucloud_id" not in got and got["ansible_host"] == before["ansible_host"]
    # Built-in groups still come from every fact; keyed groups from the variables that are set.
    assert {g: v.get("hosts") for g, v in lean.items() if g.startswith("gpucloud_location")} == {
        g: v.get("hosts") for g, v in full.items() if g.startswith("gpucloud_location")
    }
    assert sorted(lean["_running"]["hosts"]) == sorted(lean["_meta"]["hostvars"])

    no_nulls = listing(ansible, write_inventory(tmp_path / "nonull.gpucloud.yml", omit_null_hostvars=True))
    for hostname, got in no_nulls["_meta"]["hostvars"].items():
        before = full["_meta"]["hostvars"][hostname]
        assert got == {k: v for k, v in before.items() if v is not None}

    before_requests = emulator.world.request_count()
    bad = ansible.inventory(write_inventory(tmp_path / "badf.gpucloud.yml", hostvar_fields=["ip"]), "--list")
    assert bad.returncode != 0
    assert "hostvar_fields" in bad.stderr and "'ip'" in bad.stderr and "public_ip" in bad.stderr
    assert emulator.world.request_count() == before_requests  # refused before asking any provider

"""Malformed success answers: a hostile proxy in front of the emulator swaps 2xx bodies for eleven malformed shapes
(HTML, empty, truncated, null, a number, a string, ``{}``, list/object swapped, every leaf retyped, the collection
or ids removed, every leaf null) on every provider and operation kind.

Reads and token grants must fail with a :class:`MalformedResponse` naming the provider and what was malformed,
never a raw ``KeyError``/``JSONDecodeError``; a create whose answer is malformed was applied (the status said so),
so it is adopted by name, never sent twice; and ensure never creates on a list it could not read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, VolumeSpec, ensure, errors
from gpucloud.capabilities import Capability
from gpucloud.config import env_var
from gpucloud.emulator import EmulatorServer
from gpucloud.providers import implemented, provider_class
from gpucloud.wire import MALFORMED, MalformedResponse
from tests import figures
from tests.ansible.conftest import Ansible
from tests.ansible.test_modules import task
from tests.contract.specs import INSTANCE, VOLUME

from .conftest import fconnect
from .malformed_proxy import MUTATIONS, HostileProxy
from .test_lost_creates import public_key

Overrides = dict[str, dict[str, Any]]
PROVIDERS = implemented()
# The paths (searched in the request path) of each provider's instance list and create.
LIST_INSTANCES = {
    "datacrunch": r"/instances$",
    "voltagepark": r"/virtual-machines/$",
    "dcdncloud": r"/instances$",
    "cloudnexus": r"/compute/instances$",
    "computestacks": r"/api/container_services$",
}
CREATE = {
    "instance": {**LIST_INSTANCES, "voltagepark": r"/virtual-machines/instant$", "computestacks": r"/api/orders$"},
    "volume": {"datacrunch": r"/volumes$", "voltagepark": r"/storage/$"},
    "ssh_key": {
        "datacrunch": r"/sshkeys$",
        "voltagepark": r"/organization/ssh-keys$",
        "cloudnexus": r"/ssh-keys$",
        "computestacks": r"/api/users/ssh_keys$",
    },
}
TOKEN = {"datacrunch": r"/oauth2/token$", "computestacks": r"/api/oauth/token$"}


def _has(provider: str, capability: Capability) -> bool:
    return capability in provider_class(provider).capabilities


@pytest.fixture(scope="module")
def proxy(fault_emulator: EmulatorServer) -> Iterator[HostileProxy]:
    with HostileProxy(fault_emulator.url) as running:
        yield running


def hconnect(proxy: HostileProxy, overrides: Overrides, provider: str, **extra: Any) -> gpucloud.Provider:
    """A fresh adapter (so its token grant happens inside the test) talking through the proxy."""
    base_url = proxy.rebase(overrides[provider]["base_url"])
    return fconnect(overrides, provider, base_url=base_url, max_retries=1, **extra)


@pytest.fixture(scope="module")
def seeded(proxy: HostileProxy, fault_overrides: Overrides) -> dict[str, dict[str, str]]:
    """Per provider, the id of one instance, and of one volume and key where the provider has them."""
    made: dict[str, dict[str, str]] = {}
    for provider in PROVIDERS:
        with hconnect(proxy, fault_overrides, provider) as cloud:
            spec = InstanceSpec(name=f"mal-seed-{provider}", **INSTANCE[provider])
            instance = ensure.ensure_instance(cloud, spec, wait_timeout=120).after
            assert instance is not None
            ids = {"instance": instance.id}
            if _has(provider, Capability.SSH_KEYS):
                key = cloud.create_ssh_key(SshKeySpec(name=f"mal-seed-{provider}", public_key=public_key("seed")))
                ids["ssh_key"] = key.id
            if _has(provider, Capability.VOLUME_CREATE):
                ids["volume"] = cloud.create_volume(
                    VolumeSpec(name=f"mal-seed-{provider}", size_gb=10, **VOLUME[provider])
                ).id
            elif _has(provider, Capability.VOLUMES):
                volumes = cloud.list_volumes()
                if volumes:
                    ids["volume"] = volumes[0].id
            made[provider] = ids
    return made


def reads(cloud: gpucloud.Provider, ids: dict[str, str]) -> dict[str, Callable[[], object]]:
    """Every read operation kind the provider has: lists, gets and the catalogue."""
    ops: dict[str, Callable[[], object]] = {
        "list instances": cloud.list_instances,
        "get instance": lambda: cloud.get_instance(ids["instance"]),
    }
    if cloud.supports(Capability.VOLUMES):
        ops["list volumes"] = cloud.list_volumes
        if "volume" in ids:
            ops["get volume"] = lambda: cloud.get_volume(ids["volume"])
    if cloud.supports(Capability.SSH_KEYS):
        ops["list ssh keys"] = cloud.list_ssh_keys
        ops["get ssh key"] = lambda: cloud.get_ssh_key(ids["ssh_key"])
    # Catalogues made of documentation examples (CloudNexus) send no request: nothing to malform.
    for capability, op in (
        (Capability.OFFERS, cloud.list_offers),
        (Capability.IMAGES, cloud.list_images),
        (Capability.LOCATIONS, cloud.list_locations),
    ):
        if cloud.supports(capability) and capability not in cloud.example_catalogues:
            ops[capability.value] = op
    return ops


def expect_malformed(op: Callable[[], object], provider: str, what: str) -> MalformedResponse:
    """``op`` raises MalformedResponse naming the provider; any other outcome is counted and fails the test."""
    figures.record("malformed answers served")
    try:
        op()
    except MalformedResponse as failure:
        assert failure.provider == provider and failure.code == MALFORMED, what
        assert failure.message.startswith(f"{provider}: malformed answer"), failure.message
        return failure
    except errors.GpuCloudError as other:
        figures.record("raw errors on malformed answers")
        raise AssertionError(f"{what}: {type(other).__name__} instead of MalformedResponse: {other}") from other
    except Exception as raw:
        figures.record("raw errors on malformed answers")
        raise AssertionError(f"{what}: raw {type(raw).__name__}: {raw}") from raw
    raise AssertionError(f"{what}: the malformed answer was accepted")


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_reads_fail_cleanly(
    proxy: HostileProxy, fault_overrides: Overrides, seeded: dict[str, dict[str, str]], provider: str, mutation: str
) -> None:
    with hconnect(proxy, fault_overrides, provider) as cloud:
        cloud.list_instances()  # the token grant (where there is one) before GETs are corrupted
        for what, op in reads(cloud, seeded[provider]).items():
            with proxy.corrupting("GET", "", mutation):
                failure = expect_malformed(op, provider, f"{provider} {what} / {mutation}")
            # The message says which request and, for a wrong shape, where in the body.
            assert " to GET /" in failure.message, failure.message


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("provider", sorted(TOKEN))
def test_malformed_token_answers_fail_cleanly(
    proxy: HostileProxy, fault_overrides: Overrides, provider: str, mutation: str
) -> None:
    with hconnect(proxy, fault_overrides, provider) as cloud, proxy.corrupting("POST", TOKEN[provider], mutation):
        failure = expect_malformed(cloud.list_instances, provider, f"{provider} token / {mutation}")
    assert "token" in failure.message, failure.message


CREATES = [(p, kind) for kind, paths in CREATE.items() for p in paths if p in PROVIDERS]


def _create(cloud: gpucloud.Provider, provider: str, kind: str, name: str) -> tuple[str, Callable[[], list[str]]]:
    """Create ``name`` of ``kind``; returns the id reported and a lister of the ids under that name."""
    if kind == "instance":
        made = cloud.create_instance(InstanceSpec(name=name, **INSTANCE[provider])).instance
        return made.id, lambda: [i.id for i in cloud.list_instances() if i.name == name]
    if kind == "volume":
        volume = cloud.create_volume(VolumeSpec(name=name, size_gb=10, **VOLUME[provider]))
        return volume.id, lambda: [v.id for v in cloud.list_volumes() if v.name == name]
    key = cloud.create_ssh_key(SshKeySpec(name=name, public_key=public_key(name)))
    return key.id, lambda: [k.id for k in cloud.list_ssh_keys() if k.name == name]


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize(("provider", "kind"), CREATES)
def test_malformed_create_answer_is_adopted_not_resent(
    proxy: HostileProxy, fault_overrides: Overrides, provider: str, kind: str, mutation: str
) -> None:
    """The create was applied (2xx): the adapter finds it by name; one resource, the id it reports."""
    name = f"mal-{kind.replace('_', '-')}-{mutation.replace('_', '-')}"
    with hconnect(proxy, fault_overrides, provider) as cloud:
        cloud.list_instances()  # token first
        figures.record("malformed answers served")
        with proxy.corrupting("POST", CREATE[kind][provider], mutation, times=1) as rule:
            try:
                reported, same_name = _create(cloud, provider, kind, name)
            except Exception as raw:
                figures.record("raw errors on malformed answers")
                raise AssertionError(f"{provider} create {kind} / {mutation}: {type(raw).__name__}: {raw}") from raw
        assert rule.times == 0, "the create's answer was not corrupted"
        assert same_name() == [reported]


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("provider", [p for p in PROVIDERS if _has(p, Capability.INSTANCE_START_STOP)])
def test_malformed_action_answers_never_raise_raw_errors(
    proxy: HostileProxy, fault_overrides: Overrides, seeded: dict[str, dict[str, str]], provider: str, mutation: str
) -> None:
    """Actions whose answer the adapter reads (CloudNexus' job) fail cleanly; the others do not read it."""
    with hconnect(proxy, fault_overrides, provider) as cloud:
        instance_id = seeded[provider]["instance"]
        cloud.wait_for_instance(instance_id, [gpucloud.Status.RUNNING], timeout=60)
        figures.record("malformed answers served")
        with proxy.corrupting("POST", "", mutation), proxy.corrupting("PUT", "", mutation):
            try:
                cloud.stop_instance(instance_id)
            except errors.GpuCloudError as clean:
                assert isinstance(clean, MalformedResponse), f"{type(clean).__name__}: {clean}"
            except Exception as raw:
                figures.record("raw errors on malformed answers")
                raise AssertionError(f"{provider} stop / {mutation}: raw {type(raw).__name__}: {raw}") from raw
        cloud.wait_for_instance(instance_id, [gpucloud.Status.STOPPED], timeout=60)
        cloud.start_instance(instance_id)
        cloud.wait_for_instance(instance_id, [gpucloud.Status.RUNNING], timeout=60)


@pytest.mark.parametrize("mutation", ["missing_keys", "empty_object", "html", "swapped"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_ensure_never_creates_on_a_malformed_list(
    proxy: HostileProxy,
    fault_emulator: EmulatorServer,
    fault_overrides: Overrides,
    seeded: dict[str, dict[str, str]],
    provider: str,
    mutation: str,
) -> None:
    """The issue's worst case: a dcdncloud list without ``instances`` read as "none", so ensure created again."""
    world = fault_emulator.world
    with hconnect(proxy, fault_overrides, provider) as cloud:
        spec = InstanceSpec(name=f"mal-seed-{provider}", **INSTANCE[provider])  # exists (seeded)
        cloud.list_instances()
        start = len(world.requests)
        with proxy.corrupting("GET", LIST_INSTANCES[provider], mutation):
            expect_malformed(lambda: ensure.ensure_instance(cloud, spec, wait_timeout=30), provider, mutation)
        posts = [r for r in world.requests[start:] if r.provider == provider and r.method == "POST"]
        assert posts == [], f"ensure sent {[(r.method, r.path) for r in posts]} on a list it could not read"
        assert [i.id for i in cloud.list_instances() if i.name == spec.name] == [seeded[provider]["instance"]]


def test_ansible_reports_malformed_answers_as_clean_module_failures(
    proxy: HostileProxy,
    fault_emulator: EmulatorServer,
    fault_ansible: Ansible,
    seeded: dict[str, dict[str, str]],
) -> None:
    """The issue's "Module failed: Expecting value" and the create on a list without ``instances``, in Ansible."""
    variable = env_var("dcdncloud", "base_url")
    env = {variable: proxy.rebase(fault_ansible.env[variable])}
    existing = "mal-seed-dcdncloud"
    tasks = [
        task("instance_info", "html", ignore_errors=True, provider="dcdncloud"),
        task("instance", "ensure", ignore_errors=True, provider="dcdncloud", name=existing, **INSTANCE["dcdncloud"]),
    ]
    world = fault_emulator.world
    start = len(world.requests)
    html = proxy.corrupting("GET", r"/instances$", "html", times=1)
    without_collection = proxy.corrupting("GET", r"/instances$", "missing_keys")
    with html, without_collection:
        play = fault_ansible.play(tasks, extra_env=env)
    for name, problem in (("html", "expected JSON, got"), ("ensure", "instances: Field required")):
        result = play[name]
        assert result["failed"], play.output
        assert result["msg"].startswith("dcdncloud: malformed answer to GET /"), result["msg"]
        assert problem in result["msg"], result["msg"]
        assert result["error_class"] == "MalformedResponse" and result["error_code"] == MALFORMED
    # Ansible words every module failure "Module failed: <msg>"; the raw JSON error and a traceback must not show.
    for raw in ("Expecting value", "JSONDecodeError", "KeyError", "Traceback"):
        assert raw not in play.output, play.output
    posts = [r for r in world.requests[start:] if r.provider == "dcdncloud" and r.method == "POST"]
    assert posts == [], "ensure created again on a list without its collection"

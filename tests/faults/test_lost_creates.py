"""Lost create responses: the server commits, the client never hears back. Nothing may be created twice, nothing
left behind unreported, and one re-run must converge to the desired state.

200 creates through ``gpucloud.ensure`` (what both front-ends call), then a smaller sample through
``ansible-playbook`` and through the Pulumi dynamic provider's gRPC server.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, Status, VolumeSpec, ensure
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.providers import implemented, provider_class
from tests.ansible.test_modules import task
from tests.contract.specs import INSTANCE, VOLUME
from tests.pulumi.conftest import PROVIDERS, TYPES
from tests.pulumi.harness import DynamicProviderHarness

from .conftest import Tally, audit, faults_since, fconnect, named

Overrides = dict[str, dict[str, Any]]
DROP_RATE = 0.1


def public_key(comment: str) -> str:
    key = Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{text} {comment}"


def _providers(*capabilities: Capability) -> list[str]:
    return [p for p in implemented() if all(c in provider_class(p).capabilities for c in capabilities)]


def plan_200(prefix: str) -> list[tuple[str, str, Any]]:
    """(provider, kind, spec) for 200 creates: instances on every provider, volumes and keys where they exist."""
    wanted: list[tuple[str, str, Any]] = []
    instance_providers = _providers(Capability.INSTANCES)
    volume_providers = _providers(Capability.VOLUME_CREATE)
    key_providers = _providers(Capability.SSH_KEYS)
    for i in range(80):
        provider = instance_providers[i % len(instance_providers)]
        spec = InstanceSpec(name=f"{prefix}-i{i}", **INSTANCE[provider])
        wanted.append((provider, "instance", spec))
    for i in range(60):
        provider = volume_providers[i % len(volume_providers)]
        wanted.append((provider, "volume", VolumeSpec(name=f"{prefix}-v{i}", size_gb=10, **VOLUME[provider])))
    for i in range(60):
        provider = key_providers[i % len(key_providers)]
        wanted.append((provider, "ssh_key", SshKeySpec(name=f"{prefix}-k{i}", public_key=public_key(f"k{i}"))))
    return wanted


def _ensure(cloud: gpucloud.Provider, kind: str, spec: Any, *, wait: bool) -> ensure.Outcome[Any]:
    if kind == "instance":
        return ensure.ensure_instance(cloud, spec, wait=wait, wait_timeout=60)
    if kind == "volume":
        return ensure.ensure_volume(cloud, spec)
    return ensure.ensure_ssh_key(cloud, spec)


def _audit_all(clouds: dict[str, gpucloud.Provider], prefix: str, known: dict[tuple[str, str, str], str]) -> Tally:
    tally = Tally()
    for provider, cloud in clouds.items():
        for kind in ("instance", "volume", "ssh_key"):
            if kind == "volume" and not cloud.supports(Capability.VOLUMES):
                continue
            if kind == "ssh_key" and not cloud.supports(Capability.SSH_KEYS):
                continue
            mine = {name: rid for (p, k, name), rid in known.items() if p == provider and k == kind}
            duplicates, orphans, which = audit(named(cloud, kind, prefix), mine)
            tally.duplicates += duplicates
            tally.orphans += orphans
            tally.notes += which
    return tally


def test_200_creates_with_lost_responses_adopt_and_converge(
    fault_emulator: EmulatorServer, fault_overrides: Overrides
) -> None:
    world = fault_emulator.world
    prefix = "lost200"
    wanted = plan_200(prefix)
    clouds = {p: fconnect(fault_overrides, p) for p in {p for p, _, _ in wanted}}
    start = len(world.requests)
    known: dict[tuple[str, str, str], str] = {}
    try:
        world.set_faults(drop_create_rate=DROP_RATE, seed=2024)
        for provider, kind, spec in wanted:
            outcome = _ensure(clouds[provider], kind, spec, wait=False)
            assert outcome.changed and outcome.after is not None and outcome.after.name == spec.name
            known[(provider, kind, spec.name)] = outcome.after.id
        drops = [r for r in world.requests[start:] if r.fault == "drop"]
        first = _audit_all(clouds, prefix, known)

        # The re-run (faults still on): nothing to create, instances waited for until they run.
        rerun_start = len(world.requests)
        for provider, kind, spec in wanted:
            outcome = _ensure(clouds[provider], kind, spec, wait=True)
            assert not outcome.changed, (provider, kind, spec.name, outcome.action)
            assert outcome.after is not None and outcome.after.id == known[(provider, kind, spec.name)]
            if kind == "instance":
                assert outcome.after.status is Status.RUNNING
        rerun_creates = [r for r in world.requests[rerun_start:] if r.method == "POST" and r.fault == "drop"]
        world.set_faults(drop_create_rate=0.0)
        final = _audit_all(clouds, prefix, known)
        present = {
            (p, kind, name)
            for p, cloud in clouds.items()
            for kind in ("instance", "volume", "ssh_key")
            if (kind != "volume" or cloud.supports(Capability.VOLUMES))
            and (kind != "ssh_key" or cloud.supports(Capability.SSH_KEYS))
            for name, _ in named(cloud, kind, prefix)
        }
    finally:
        world.set_faults(drop_create_rate=0.0)
        for (provider, kind, _), rid in known.items():
            cloud = clouds[provider]
            {"instance": cloud.delete_instance, "volume": cloud.delete_volume, "ssh_key": cloud.delete_ssh_key}[kind](
                rid
            )
        for cloud in clouds.values():
            cloud.close()

    tally = Tally(
        operations=2 * len(wanted),
        faults=faults_since(fault_emulator, start),
        duplicates=first.duplicates + final.duplicates,
        orphans=first.orphans + final.orphans,
    ).publish()
    assert len(wanted) == 200
    assert len(drops) >= 10, f"the fault must really fire: {len(drops)} creates dropped"
    assert {r.provider for r in drops} >= {"datacrunch", "voltagepark"}
    assert rerun_creates == [], "the re-run created nothing, so nothing could be dropped"
    assert tally.duplicates == 0 and tally.orphans == 0, first.notes + final.notes
    assert present == {(p, k, spec.name) for p, k, spec in wanted}, "final state equals desired state"


def test_lost_creates_through_ansible_playbook(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, fault_ansible: Any
) -> None:
    world = fault_emulator.world
    prefix = "lostans"
    tasks: list[dict[str, Any]] = []
    expected: dict[str, tuple[str, str, str]] = {}  # register -> (provider, kind, name)
    # A sample (each task is an ansible-playbook module process): three instance APIs, two volume and key APIs.
    for i, provider in enumerate(_providers(Capability.INSTANCES)[:3]):
        name = f"{prefix}-i{i}"
        tasks.append(task("instance", f"i{i}", provider=provider, name=name, wait_timeout=60, **INSTANCE[provider]))
        expected[f"i{i}"] = (provider, "instance", name)
    for i, provider in enumerate(_providers(Capability.VOLUME_CREATE)[:2]):
        name = f"{prefix}-v{i}"
        tasks.append(task("volume", f"v{i}", provider=provider, name=name, size=10, **VOLUME[provider]))
        expected[f"v{i}"] = (provider, "volume", name)
    for i, provider in enumerate(_providers(Capability.SSH_KEYS)[:2]):
        name = f"{prefix}-k{i}"
        tasks.append(task("ssh_key", f"k{i}", provider=provider, name=name, public_key=public_key(name)))
        expected[f"k{i}"] = (provider, "ssh_key", name)
    start = len(world.requests)
    world.set_faults(drop_create_rate=0.5, seed=11)
    try:
        first = fault_ansible.play(tasks)
        again = fault_ansible.play(tasks)
    finally:
        world.set_faults(drop_create_rate=0.0)
    known: dict[tuple[str, str, str], str] = {}
    for register, (provider, kind, name) in expected.items():
        got = first[register]
        assert not got.get("failed"), got
        known[(provider, kind, name)] = got[kind]["id"]
        assert again[register]["changed"] is False and again[register][kind]["id"] == got[kind]["id"]
    clouds = {p: fconnect(fault_overrides, p) for p, _, _ in expected.values()}
    try:
        tally = _audit_all(clouds, prefix, known)
        drops = sum(1 for r in world.requests[start:] if r.fault == "drop")
        tally.operations = 2 * len(tasks)
        tally.faults = faults_since(fault_emulator, start)
        tally.publish()
        for (provider, kind, _), rid in known.items():
            cloud = clouds[provider]
            {"instance": cloud.delete_instance, "volume": cloud.delete_volume, "ssh_key": cloud.delete_ssh_key}[kind](
                rid
            )
    finally:
        for cloud in clouds.values():
            cloud.close()
    assert first.rc == 0 and again.rc == 0, first.output[-3000:]
    assert drops >= 3, f"only {drops} creates were dropped"
    assert tally.duplicates == 0 and tally.orphans == 0, tally.notes


def test_lost_creates_through_the_pulumi_provider(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, fault_harness: DynamicProviderHarness
) -> None:
    world = fault_emulator.world
    prefix = "lostpu"
    resources: list[tuple[str, str, dict[str, Any]]] = []
    for i, provider in enumerate(_providers(Capability.INSTANCES)):
        props = {"provider": provider, "name": f"{prefix}-i{i}", "wait_timeout": 60, **INSTANCE[provider]}
        resources.append(("instance", provider, props))
    for i, provider in enumerate(_providers(Capability.VOLUME_CREATE)):
        resources.append(("volume", provider, {"provider": provider, "name": f"{prefix}-v{i}", "size_gb": 10}))
    for i, provider in enumerate(_providers(Capability.SSH_KEYS)):
        props = {"provider": provider, "name": f"{prefix}-k{i}", "public_key": public_key(f"pk{i}")}
        resources.append(("ssh_key", provider, props))
    for kind, provider, props in resources:
        props.update(VOLUME[provider] if kind == "volume" else {})
    start = len(world.requests)
    world.set_faults(drop_create_rate=0.5, seed=7)
    states = []
    try:
        for kind, _, props in resources:
            states.append(fault_harness.up(props["name"], PROVIDERS[kind], props, TYPES[kind]).state)
        # `pulumi up` again with the state it wrote: every resource is the same, nothing is created.
        again = [
            fault_harness.up(props["name"], PROVIDERS[kind], props, TYPES[kind], state).operation
            for (kind, _, props), state in zip(resources, states, strict=True)
        ]
    finally:
        world.set_faults(drop_create_rate=0.0)
    known = {
        (provider, kind, props["name"]): state.id
        for (kind, provider, props), state in zip(resources, states, strict=True)
    }
    clouds = {provider: fconnect(fault_overrides, provider) for _, provider, _ in resources}
    try:
        tally = _audit_all(clouds, prefix, known)
        tally.operations = 2 * len(resources)
        tally.faults = faults_since(fault_emulator, start)
        tally.publish()
        drops = sum(1 for r in world.requests[start:] if r.fault == "drop")
    finally:
        for state in reversed(states):
            fault_harness.destroy(state)
        for cloud in clouds.values():
            cloud.close()
    assert set(again) == {"same"}, again
    assert drops >= 3, f"only {drops} creates were dropped"
    assert tally.duplicates == 0 and tally.orphans == 0, tally.notes

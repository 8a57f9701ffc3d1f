"""Programs of several resources, run as the engine runs them (harness.py says which engine code each part follows).

Dependency order and parallel steps on ``up``, dependents deleted first on ``destroy``, replacements in both
orders, preview against up when an instance is replaced, ``--refresh``, and existing resources: ``get()`` and
``adopt`` work, ``import_`` fails exactly where the engine makes it fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.models import Instance, InstanceSpec, SshKeySpec
from gpucloud.providers import provider_class
from pulumi_gpucloud._provider import GET_MARKER

from ..conftest import connect, providers_with
from ..contract.specs import INSTANCE, OTHER_TYPE, VOLUME
from .conftest import PROJECT, PROVIDERS, TYPES, attached_by_name, attempt, declare, unique
from .harness import Declared, Deployment, DynamicProviderHarness, ProviderFailed, Ref, Stack, reveal

Overrides = dict[str, dict[str, object]]
README = Path(__file__).resolve().parents[2] / "README.md"
# Volumes attach to a running instance here (DataCrunch attaches only to stopped ones, at create).
ATTACHABLE = [
    p
    for p in providers_with(Capability.VOLUME_ATTACH, Capability.OFFERS, Capability.SSH_KEYS)
    if Capability.INSTANCE_VOLUMES_AT_CREATE not in provider_class(p).capabilities
]
KEYS = providers_with(Capability.SSH_KEYS)
# Providers that attach volumes only to instances in some states (DataCrunch: stopped ones).
RESTRICTED = [
    p for p in providers_with(Capability.VOLUME_ATTACH) if provider_class(p).volume_attach_statuses is not None
]


@contextmanager
def destroyed_after(harness: DynamicProviderHarness, stacks: list[Stack]) -> Iterator[None]:
    """Whatever the test leaves in the last stack (or a failed deployment got to) is destroyed afterwards."""
    try:
        yield
    except BaseException as exc:
        partial = getattr(exc, "deployment", None)
        if isinstance(partial, Deployment):
            stacks.append(partial.stack)
        raise
    finally:
        if stacks and stacks[-1]:
            harness.destroy_stack(stacks[-1])


def _rendezvous(names: Sequence[str], step: str) -> Callable[[str, str], None]:
    """A before_step hook that lets ``step`` of ``names`` start only once all of them are running at once.

    Run one after another, the first would wait for the others until the barrier breaks and its step fails.
    """
    barrier = threading.Barrier(len(names), timeout=120)

    def before_step(resource: str, current: str) -> None:
        if current == step and resource in names:
            barrier.wait()

    return before_step


def _program(provider: str, public_key: str, names: dict[str, str], instance_type: str) -> list[Declared]:
    """A key, two instances using it and a volume attached to the first, as ``box.name`` references make it."""
    key, first, second, volume = names["key"], names["first"], names["second"], names["volume"]
    instance = {**INSTANCE[provider], "provider": provider, "instance_type": instance_type, "wait_timeout": 60}
    return [
        declare("ssh_key", key, {"provider": provider, "name": key, "public_key": public_key}),
        declare("instance", first, {**instance, "name": first, "ssh_keys": [Ref(key, "name")]}),
        declare("instance", second, {**instance, "name": second, "ssh_keys": [Ref(key, "name")]}),
        declare(
            "volume",
            volume,
            {
                "provider": provider,
                "name": volume,
                "size_gb": 10,
                **VOLUME[provider],
                "attach_to": attached_by_name(first),
            },
        ),
    ]


def _names(provider: str) -> dict[str, str]:
    return {role: unique(f"prog-{role}-{provider}") for role in ("key", "first", "second", "volume")}


def _live(cloud: gpucloud.Provider, name: str) -> Instance:
    found = cloud.find_instance(name)
    assert found is not None, name
    return found


@pytest.fixture
def own_harness(project_dir: Path, emulator_env: dict[str, str]) -> Iterator[DynamicProviderHarness]:
    """A provider process of its own: what parallel steps leave in it (e.g. cached adapters) ends with the test."""
    with DynamicProviderHarness(project_dir, project=PROJECT, env=emulator_env) as running:
        yield running


@pytest.mark.parametrize("provider", ATTACHABLE)
def test_up_and_destroy_follow_dependencies_with_parallel_steps(
    own_harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    harness = own_harness
    names = _names(provider)
    key, first, second, volume = names["key"], names["first"], names["second"], names["volume"]
    program = _program(provider, keypair[1], names, INSTANCE[provider]["instance_type"])
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        # The two instances are independent: their creates run at the same time, against the one provider.
        up = harness.deploy(program, before_step=_rendezvous([first, second], "create"))
        stacks.append(up.stack)
        assert up.operations() == {key: "create", first: "create", second: "create", volume: "create"}
        # Each resource starts only once what it uses exists.
        for instance in (first, second):
            assert up.at(key, "create", "end") < up.at(instance, "check")
        assert up.at(first, "create", "end") < up.at(volume, "check")
        live_volume = cloud.get_volume(up.stack[volume].id)
        assert live_volume.attached_to == (_live(cloud, first).id,)

        # Destroy: the attached volume first, then both instances at once, the key they use last.
        down = harness.destroy_stack(up.stack, before_step=_rendezvous([first, second], "delete"))
        stacks.append(down.stack)
        assert down.stack == {} and set(down.operations().values()) == {"delete"}
        assert down.at(volume, "delete", "end") < min(down.at(first, "delete"), down.at(second, "delete"))
        assert max(down.at(first, "delete", "end"), down.at(second, "delete", "end")) < down.at(key, "delete")
        assert cloud.find_volume(volume) is None and cloud.find_ssh_key(key) is None
        assert cloud.find_instance(first) is None and cloud.find_instance(second) is None


def _diffs(deployment: Deployment) -> dict[str, tuple[str, Any]]:
    return {
        name: (p.operation, None if p.diff is None else (p.diff.kind, p.diff.replaces, p.diff.delete_before_replace))
        for name, p in deployment.planned.items()
    }


@pytest.mark.parametrize("provider", ATTACHABLE)
def test_preview_matches_up_when_the_instance_is_replaced(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    names = _names(provider)
    box, volume = names["first"], names["volume"]
    before = [
        d
        for d in _program(provider, keypair[1], names, INSTANCE[provider]["instance_type"])
        if d.name != names["second"]
    ]
    after = [d for d in _program(provider, keypair[1], names, OTHER_TYPE[provider]) if d.name != names["second"]]
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        stacks.append(harness.deploy(before).stack)
        old_box = stacks[-1][box].id

        preview = harness.deploy(after, stacks[-1], preview=True)
        assert preview.stack == stacks[-1]  # a preview changes nothing
        assert _live(cloud, box).id == old_box
        up = harness.deploy(after, stacks[-1])
        stacks.append(up.stack)

        assert _diffs(preview) == _diffs(up)
        assert _diffs(up)[box] == ("replace", ("replace", ["instance_type"], True))
        assert _diffs(up)[volume] == ("update", ("update", [], False))
        # Before deleting the instance the engine asked whether the volume must go too (it need not), and the
        # volume, kept, now hangs on the new instance.
        assert up.at(volume, "diff") < up.at(box, "delete") < up.at(box, "create") < up.at(volume, "update")
        assert up.stack[volume].id == stacks[0][volume].id
        new_box = _live(cloud, box)
        assert new_box.id != old_box and cloud.get_volume(up.stack[volume].id).attached_to == (new_box.id,)

        # The same program attaching by a plain reference to the name, which a preview knows although the
        # instance is being replaced: the volume previews as unchanged, which is why Volume ties it to the id.
        untied = [
            declare("volume", volume, {**d.props, "attach_to": Ref(box, "name")}) if d.name == volume else d
            for d in _program(provider, keypair[1], names, INSTANCE[provider]["instance_type"])
            if d.name != names["second"]
        ]
        misleading = harness.deploy(untied, up.stack, preview=True)
        assert misleading.operations()[box] == "replace" and misleading.operations()[volume] == "same"


def _example_shape(provider: str, public_key: str, instance_type: str, names: dict[str, str]) -> list[Declared]:
    """examples/pulumi's program on one provider: a key, a volume (at create or attached later), an instance."""
    caps = provider_class(provider).capabilities
    key, box, data = names["key"], names["first"], names["volume"]
    program: list[Declared] = []
    instance: dict[str, Any] = {**INSTANCE[provider], "provider": provider, "name": box, "wait_timeout": 60}
    instance["instance_type"] = instance_type
    if Capability.SSH_KEYS in caps:
        program.append(declare("ssh_key", key, {"provider": provider, "name": key, "public_key": public_key}))
        instance["ssh_keys"] = [Ref(key, "name")]
    else:
        instance["ssh_keys"] = [public_key]
    volume = {"provider": provider, "name": data, "size_gb": 10, **VOLUME[provider]}
    at_create = {Capability.VOLUME_CREATE, Capability.INSTANCE_VOLUMES_AT_CREATE} <= caps
    if at_create:
        program.append(declare("volume", data, volume))
        instance["volumes"] = [Ref(data, "name")]
    program.append(declare("instance", box, instance))
    if Capability.VOLUME_ATTACH in caps and not at_create:
        program.append(declare("volume", data, {**volume, "attach_to": attached_by_name(box)}))
    return program


@pytest.mark.parametrize(
    "provider",
    [
        p
        for p in providers_with(Capability.INSTANCES)
        if Capability.INSTANCE_RESIZE not in provider_class(p).capabilities
    ],
)
def test_preview_matches_up_for_every_resource_when_the_instance_is_replaced(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    names = _names(provider)
    before = _example_shape(provider, keypair[1], INSTANCE[provider]["instance_type"], names)
    after = _example_shape(provider, keypair[1], OTHER_TYPE[provider], names)
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        stacks.append(harness.deploy(before).stack)
        preview = harness.deploy(after, stacks[-1], preview=True)
        up = harness.deploy(after, stacks[-1])
        stacks.append(up.stack)
        assert _diffs(preview) == _diffs(up)
        assert up.operations()[names["first"]] == "replace"
        assert _live(cloud, names["first"]).instance_type == cloud.canonical_instance_type(OTHER_TYPE[provider])


def _restricted_program(
    provider: str, public_key: str, names: dict[str, str], power_state: str, volumes: dict[str, bool]
) -> list[Declared]:
    """A key, an instance in ``power_state`` and volumes (name -> attached to the instance by ``box.name``)."""
    key, box = names["key"], names["first"]
    instance = {**INSTANCE[provider], "provider": provider, "name": box, "wait_timeout": 60}
    program = [
        declare("ssh_key", key, {"provider": provider, "name": key, "public_key": public_key}),
        declare("instance", box, {**instance, "ssh_keys": [Ref(key, "name")], "power_state": power_state}),
    ]
    for name, attached in volumes.items():
        props = {"provider": provider, "name": name, "size_gb": 10, **VOLUME[provider]}
        program.append(declare("volume", name, {**props, "attach_to": attached_by_name(box)} if attached else props))
    return program


@pytest.mark.parametrize("provider", RESTRICTED)
def test_preview_refuses_an_attach_to_a_running_instance_as_up_does(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    """DataCrunch attaches only to stopped instances. To a running one that exists, the preview refuses exactly as
    ``up`` then does, naming ``attach_to`` and the fix: at Check for a new volume, at Diff for an existing one.
    Once the instance is stopped, preview and up both attach (a new volume and the existing one)."""
    names = _names(provider)
    box, data, extra = names["first"], names["volume"], names["second"]

    def program(power_state: str, volumes: dict[str, bool]) -> list[Declared]:
        return _restricted_program(provider, keypair[1], names, power_state, volumes)

    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        stacks.append(harness.deploy(program("running", {})).stack)
        running = _live(cloud, box)

        # A new volume attaching to the running instance: refused at Check, by the preview and by the up.
        preview = attempt(harness, program("running", {data: True}), stacks[-1], preview=True)
        up = attempt(harness, program("running", {data: True}), stacks[-1], preview=False)
        assert preview[1] == up[1] and up[1] is not None and up[1].startswith("check: [('attach_to', ")
        assert f"instance {running.id} is running" in up[1] and "stop it first (power_state: stopped" in up[1]
        assert preview[0].operations() == up[0].operations()
        assert cloud.find_volume(data) is None

        # The volume made unattached, then attached to the running instance: refused at Diff by both.
        stacks.append(harness.deploy(program("running", {data: False}), stacks[-1]).stack)
        preview = attempt(harness, program("running", {data: True}), stacks[-1], preview=True)
        up = attempt(harness, program("running", {data: True}), stacks[-1], preview=False)
        assert preview[1] == up[1] and up[1] is not None and up[1].startswith("diff: ")
        assert "attach_to: " in up[1] and "stop it first (power_state: stopped" in up[1]
        assert cloud.get_volume(stacks[-1][data].id).attached_to == ()

        # Stopped (one up), then both volumes attach: the existing one by an update, a new one by a create.
        stacks.append(harness.deploy(program("stopped", {data: False}), stacks[-1]).stack)
        attaching = program("stopped", {data: True, extra: True})
        preview = attempt(harness, attaching, stacks[-1], preview=True)
        up = attempt(harness, attaching, stacks[-1], preview=False)
        stacks.append(up[0].stack)
        assert preview[1] is None and up[1] is None
        assert _diffs(preview[0]) == _diffs(up[0])
        assert up[0].operations()[data] == "update" and up[0].operations()[extra] == "create"
        stopped = _live(cloud, box)
        assert stopped.id == running.id
        for volume in (data, extra):
            assert cloud.get_volume(up[0].stack[volume].id).attached_to == (stopped.id,)


@pytest.mark.parametrize("provider", KEYS[:1])
def test_replacements_create_first_unless_delete_before_replace(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    name = unique(f"repl-{provider}")
    props = {"provider": provider, "name": name, "public_key": keypair[1]}
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        stacks.append(harness.deploy([declare("ssh_key", "key", props)]).stack)
        # A new name replaces a key; the provider lets the new one be made first (the names differ).
        renamed = {**props, "name": name + "-b"}
        up = harness.deploy([declare("ssh_key", "key", renamed)], stacks[-1])
        stacks.append(up.stack)
        assert up.planned["key"].steps == ["check", "diff", "check", "create", "delete"]
        assert up.planned["key"].diff is not None and up.planned["key"].diff.delete_before_replace is False
        assert cloud.find_ssh_key(name) is None and cloud.find_ssh_key(name + "-b") is not None
        # ResourceOptions(delete_before_replace=True) overrides the provider: the old one goes first.
        up = harness.deploy([declare("ssh_key", "key", props, delete_before_replace=True)], stacks[-1])
        stacks.append(up.stack)
        assert up.planned["key"].steps == ["check", "diff", "check", "delete", "create"]
        assert cloud.find_ssh_key(name + "-b") is None and cloud.find_ssh_key(name) is not None


@pytest.mark.parametrize("provider", KEYS[:1])
def test_refresh_before_up_sees_what_was_deleted_out_of_band(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    name = unique(f"refr-{provider}")
    program = [declare("ssh_key", "key", {"provider": provider, "name": name, "public_key": keypair[1]})]
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        stacks.append(harness.deploy(program).stack)
        cloud.delete_ssh_key(stacks[-1]["key"].id)
        # Without --refresh the engine diffs against its state, where the key still exists.
        assert harness.deploy(program, stacks[-1], preview=True).operations() == {"key": "same"}
        up = harness.deploy(program, stacks[-1], refresh=True)
        stacks.append(up.stack)
        assert up.planned["key"].steps == ["refresh", "check", "create"]
        assert cloud.find_ssh_key(name) is not None and up.stack["key"].id != stacks[0]["key"].id


@pytest.mark.parametrize("provider", KEYS[:1])
def test_import_fails_where_the_engine_makes_it_fail(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    """ImportStep's Read carries the ID only; the SDK's server finds no ``__provider`` and fails."""
    name = unique(f"imp-{provider}")
    props = {"provider": provider, "name": name, "public_key": keypair[1]}
    with connect(overrides, provider) as cloud:
        existing = cloud.create_ssh_key(SshKeySpec(name=name, public_key=keypair[1]))
        try:
            with pytest.raises(ProviderFailed) as failed:
                harness.import_("key", PROVIDERS["ssh_key"], props, TYPES["ssh_key"], existing.id)
            assert failed.value.rpc_name == "Read" and "KeyError: '__provider'" in failed.value.details
            assert [k.id for k in cloud.list_ssh_keys() if k.name == name] == [existing.id]
        finally:
            cloud.delete_ssh_key(existing.id)
    # And the README says so where a user would look for it, naming what works instead.
    readme = README.read_text()
    assert "`ResourceOptions(import_=...)` and `pulumi import` do not work" in readme
    assert "adopt" in readme and ".get(" in readme


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES)[:1])
def test_get_reads_an_instance_without_managing_it(
    harness: DynamicProviderHarness, overrides: Overrides, provider: str
) -> None:
    name = unique(f"get-{provider}")
    with connect(overrides, provider) as cloud:
        spec = InstanceSpec(name=name, **INSTANCE[provider])
        made = cloud.create_instance(spec).instance
        try:
            cloud.wait_for_instance(made.id, [gpucloud.Status.RUNNING], timeout=60, interval=0.2)
            inputs = {"provider": provider, GET_MARKER: True}
            program = [declare("instance", "seen", inputs, read_id=made.id)]
            for preview in (True, False):  # ReadStep runs in previews too
                read = harness.deploy(program, preview=preview)
                assert read.operations() == {"seen": "read"} and read.planned["seen"].steps == ["read"]
            state = read.stack["seen"]
            outputs = reveal(state.outputs)
            assert state.external and state.id == made.id
            assert outputs["name"] == name and outputs["status"] == "running" and outputs["provider"] == provider
            assert outputs["ssh_host"] == cloud.get_instance(made.id).public_ip
            # destroy forgets it and leaves it running
            assert harness.destroy_stack(read.stack).stack == {}
            assert cloud.get_instance(made.id).status is gpucloud.Status.RUNNING
            missing = [declare("instance", "ghost", inputs, read_id="00000000-0000-0000-0000-000000000000")]
            with pytest.raises(ProviderFailed, match="no such instance"):
                harness.deploy(missing)
        finally:
            gpucloud.ensure.ensure_instance_absent(cloud, instance_id=made.id, wait_timeout=60)


@pytest.mark.parametrize("provider", KEYS)
def test_adopt_false_refuses_a_name_that_exists(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], provider: str
) -> None:
    name = unique(f"noadopt-{provider}")
    props = {"provider": provider, "name": name, "public_key": keypair[1], "adopt": False}
    with connect(overrides, provider) as cloud:
        existing = cloud.create_ssh_key(SshKeySpec(name=name, public_key=keypair[1]))
        try:
            with pytest.raises(ProviderFailed) as failed:
                harness.deploy([declare("ssh_key", "key", props)])
            line = failed.value.details.strip().splitlines()[-1]
            assert f"create ssh_key {name!r} on {provider}" in line and existing.id in line
            assert "adopt=True" in line and ".get()" in line
            assert [k.id for k in cloud.list_ssh_keys() if k.name == name] == [existing.id]
        finally:
            cloud.delete_ssh_key(existing.id)


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES)[-1:])
def test_lowering_a_fleet_count_deletes_the_highest_numbered(
    harness: DynamicProviderHarness, overrides: Overrides, provider: str
) -> None:
    """docs/fleets.md: instance_fleet("w-{index}", n) declares w-1..w-n; a member left out is deleted."""
    stem = unique(f"fleet-{provider}")

    def fleet(count: int) -> list[Declared]:
        props = {**INSTANCE[provider], "provider": provider, "wait_timeout": 60}
        return [declare("instance", f"{stem}-{i}", {**props, "name": f"{stem}-{i}"}) for i in range(1, count + 1)]

    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        stacks.append(harness.deploy(fleet(3)).stack)
        down = harness.deploy(fleet(2), stacks[-1])
        stacks.append(down.stack)
        assert down.operations() == {f"{stem}-1": "same", f"{stem}-2": "same", f"{stem}-3": "delete"}
        live = sorted(i.name for i in cloud.list_instances() if i.name.startswith(stem + "-"))
        assert live == [f"{stem}-1", f"{stem}-2"] and sorted(down.stack) == live


@pytest.mark.parametrize("provider", providers_with(Capability.VOLUME_CREATE, Capability.INSTANCE_VOLUMES_AT_CREATE))
def test_destroy_deletes_an_instance_before_the_volume_it_was_created_with(
    harness: DynamicProviderHarness, overrides: Overrides, provider: str
) -> None:
    """The example program's shape where volumes attach at create: the instance depends on the volume."""
    data, box = unique(f"vac-data-{provider}"), unique(f"vac-box-{provider}")
    program = [
        declare("volume", data, {"provider": provider, "name": data, "size_gb": 10, **VOLUME[provider]}),
        declare(
            "instance",
            box,
            {
                **INSTANCE[provider],
                "provider": provider,
                "name": box,
                "volumes": [Ref(data, "name")],
                "wait_timeout": 60,
            },
        ),
    ]
    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        up = harness.deploy(program)
        stacks.append(up.stack)
        assert up.at(data, "create", "end") < up.at(box, "check")
        assert up.stack[data].id in _live(cloud, box).volume_ids
        down = harness.destroy_stack(up.stack)
        stacks.append(down.stack)
        assert down.at(box, "delete", "end") < down.at(data, "delete")
        assert cloud.find_instance(box) is None and cloud.find_volume(data) is None


@pytest.mark.parametrize("provider", providers_with(Capability.SSH_KEYS, Capability.INSTANCES)[:1])
def test_a_key_replaced_delete_first_takes_the_instances_using_it_along(
    harness: DynamicProviderHarness, overrides: Overrides, keypair: tuple[Path, str], tmp_path: Path, provider: str
) -> None:
    """calculateDependentReplacements: the instance's ssh_keys would change with the key, which replaces it."""
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k2")], check=True)
    key, box = unique(f"dbr-key-{provider}"), unique(f"dbr-box-{provider}")

    def program(public_key: str) -> list[Declared]:
        instance = {**INSTANCE[provider], "provider": provider, "name": box, "wait_timeout": 60}
        return [
            declare("ssh_key", key, {"provider": provider, "name": key, "public_key": public_key}),
            declare("instance", box, {**instance, "ssh_keys": [Ref(key, "name")]}),
        ]

    stacks: list[Stack] = []
    with destroyed_after(harness, stacks), connect(overrides, provider) as cloud:
        stacks.append(harness.deploy(program(keypair[1])).stack)
        new_key = program((tmp_path / "k2.pub").read_text().strip())
        preview = harness.deploy(new_key, stacks[-1], preview=True)
        up = harness.deploy(new_key, stacks[-1])
        stacks.append(up.stack)
        assert preview.operations() == up.operations() == {key: "replace", box: "replace"}
        assert up.planned[box].steps == ["delete", "check", "create"]  # deleted early, created again (no Diff)
        assert up.at(box, "delete", "end") < up.at(key, "delete") < up.at(key, "create") < up.at(box, "create")
        assert _live(cloud, box).id != stacks[0][box].id

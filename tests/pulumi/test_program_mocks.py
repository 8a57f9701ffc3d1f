"""Pulumi programs under ``pulumi.runtime.set_mocks``: wiring, outputs, secrets, and the example program.

Two kinds of mocks:
- plain mocks answer for the engine without calling the provider (wiring and the resource classes);
- "executing" mocks unpickle ``__provider`` from the registered inputs and run its real ``check`` and
  ``create`` against the emulator, so the example program is exercised end to end in one process.
"""

from __future__ import annotations

import base64
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import pulumi
import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc

import gpucloud
from gpucloud.providers import implemented
from pulumi_gpucloud._provider import GET_MARKER

from ..conftest import connect
from .conftest import unique

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pulumi"
Overrides = dict[str, dict[str, object]]


class PlainMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.created: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.created.append(args)
        outs = {k: v for k, v in args.inputs.items() if k != "__provider"}
        if args.typ.endswith(":Instance"):
            outs.update(
                status="running", public_ip="203.0.113.7", ssh_host="203.0.113.7", ssh_port=22.0, ssh_user="ubuntu"
            )
        return f"{args.name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class ExecutingMocks(pulumi.runtime.Mocks):
    """Runs the pickled provider's own check + create, as the provider process would."""

    def __init__(self) -> None:
        self.created: dict[str, tuple[str, str, dict[str, Any]]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        serialized = rpc.unwrap_rpc_secret(args.inputs["__provider"])
        provider = dill.loads(base64.b64decode(serialized))
        checked = provider.check({}, dict(args.inputs))
        if checked.failures:
            raise ValueError("; ".join(f"{f.property}: {f.reason}" for f in checked.failures))
        result = provider.create(checked.inputs)
        outs = dict(result.outs or {})
        self.created[args.name] = (args.typ, result.id, outs)
        return result.id, outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture
def plain_mocks() -> Iterator[PlainMocks]:
    mocks = PlainMocks()
    pulumi.runtime.set_mocks(mocks, project="unit", stack="dev", preview=False)
    pulumi.runtime.set_all_config({"gpucloud:provider": "voltagepark"})
    yield mocks
    pulumi.runtime.set_all_config({})


@pulumi.runtime.test
def test_resources_wire_outputs_and_secrets(plain_mocks: PlainMocks) -> Any:
    import pulumi_gpucloud as gpu

    key = gpu.SshKey("key", public_key="ssh-ed25519 AAAA test")  # provider from gpucloud:provider config
    box = gpu.Instance(
        "box",
        gpu.InstanceArgs(instance_type="1x-h100-sxm5-80gb", ssh_keys=[key.name], password="hunter2-hunter2"),
    )
    vol = gpu.Volume("vol", gpu.VolumeArgs(size_gb=100, attach_to=box.name, provider="datacrunch"))

    def check(values: list[Any]) -> None:
        key_name, box_name, provider, ssh_keys, host, port, attach_to, password_secret, types = values
        assert key_name == "key" and box_name == "box"  # name defaults to the resource name
        assert provider == "voltagepark" and ssh_keys == ["key"] and attach_to == "box"
        # The engine sends numbers as doubles; the typed output annotations bring back ints.
        assert host == "203.0.113.7" and port == 22 and isinstance(port, int)
        assert password_secret is True
        assert types == [
            "pulumi-python:dynamic/gpucloud:SshKey",
            "pulumi-python:dynamic/gpucloud:Instance",
            "pulumi-python:dynamic/gpucloud:Volume",
        ]
        registered = {a.name: a for a in plain_mocks.created}
        assert rpc.is_rpc_secret(registered["box"].inputs["__provider"])  # the pickled provider is a secret
        assert registered["vol"].inputs["size_gb"] == 100
        assert "__provider" not in {k for k in vars(box) if not k.startswith("_")}

    secret = pulumi.Output.from_input(box.password.is_secret())
    types = pulumi.Output.all(key.urn, box.urn, vol.urn).apply(
        lambda urns: [u.split("::")[2].split("$")[-1] for u in urns]
    )
    return pulumi.Output.all(
        key.name, box.name, box.provider, box.ssh_keys, box.ssh_host, box.ssh_port, vol.attach_to, secret, types
    ).apply(check)


def test_arguments_are_validated_in_the_program(plain_mocks: PlainMocks) -> None:
    import pulumi_gpucloud as gpu

    with pytest.raises(TypeError, match="either"):
        gpu.Instance("x", gpu.InstanceArgs(instance_type="t"), instance_type="t")
    with pytest.raises(TypeError, match="unexpected"):
        gpu.Instance("x", instance_typ="t")
    pulumi.runtime.set_all_config({})
    with pytest.raises(ValueError, match=r"gpucloud:provider"):
        gpu.SshKey("x", public_key="k")


@pytest.fixture
def emulator_in_process(emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in emulator_env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def example(
    emulator_in_process: None, keypair: tuple[Path, str], overrides: Overrides
) -> Iterator[tuple[ExecutingMocks, str]]:
    stack = unique("ex")
    mocks = ExecutingMocks()
    pulumi.runtime.set_mocks(mocks, project="gpucloud-example", stack=stack, preview=False)
    pulumi.runtime.set_all_config({"gpucloud-example:publicKey": keypair[1]})
    yield mocks, stack
    pulumi.runtime.set_all_config({})
    for provider in implemented():
        with connect(overrides, provider) as cloud:
            for instance in cloud.list_instances():
                if instance.name.startswith(stack):
                    cloud.delete_instance(instance.id)
                    cloud.wait_for_instance_gone(instance.id, timeout=60, interval=0.2)
            if cloud.supports(gpucloud.Capability.VOLUMES):
                for volume in cloud.list_volumes():
                    if volume.name.startswith(stack):
                        cloud.delete_volume(volume.id)
            if cloud.supports(gpucloud.Capability.SSH_KEYS):
                for key in cloud.list_ssh_keys():
                    if key.name.startswith(stack):
                        cloud.delete_ssh_key(key.id)


@pulumi.runtime.test
def test_example_program_creates_everything_and_exports_an_inventory(
    example: tuple[ExecutingMocks, str], overrides: Overrides
) -> Any:
    mocks, stack = example
    sys.modules.pop("__main__example", None)
    spec = importlib.util.spec_from_file_location("__main__example", EXAMPLE / "__main__.py")
    assert spec is not None and spec.loader is not None
    program = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(program)
    instances: list[Any] = program.instances
    inventory = pulumi.Output.from_input(pulumi_inventory(instances))

    def check(inv: dict[str, Any]) -> None:
        hosts = inv["all"]["hosts"]
        providers = [p for p in implemented() if p in program.SHAPES]
        assert sorted(hosts) == sorted(f"{p}-{stack}-{p}-gpu" for p in providers)
        for provider in providers:
            with connect(overrides, provider) as cloud:
                live = cloud.find_instance(f"{stack}-{provider}-gpu")
                assert live is not None and live.status is gpucloud.Status.RUNNING
                host = hosts[f"{provider}-{live.name}"]
                assert host["ansible_host"] == live.public_ip and host["ansible_port"] == live.ssh_port
                assert host["ansible_user"] == live.ssh_user and host["gpucloud_id"] == live.id
                assert host["gpucloud_provider"] == provider
                assert f"{provider}-{live.name}" in inv["all"]["children"][f"gpucloud_{provider}"]["hosts"]
                if cloud.supports(gpucloud.Capability.SSH_KEYS):
                    key = cloud.find_ssh_key(f"{stack}-{provider}-key")
                    assert key is not None
                    assert not live.ssh_key_ids or key.id in live.ssh_key_ids  # not every API reports them
                if cloud.supports(gpucloud.Capability.VOLUME_CREATE):
                    volume = cloud.find_volume(f"{stack}-{provider}-data")
                    assert volume is not None and volume.size_gb == 100
                    if cloud.supports(gpucloud.Capability.VOLUME_ATTACH):
                        assert live.id in volume.attached_to
        kinds = sorted({typ.rsplit(":", 1)[1] for typ, _, _ in mocks.created.values()})
        assert "Instance" in kinds

    return inventory.apply(check)


def pulumi_inventory(instances: list[Any]) -> pulumi.Output[Any]:
    import pulumi_gpucloud as gpu

    return gpu.ansible.inventory_output(instances, fmt="dict")


@pytest.fixture
def readme_home(
    emulator_in_process: None, keypair: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ExecutingMocks]:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519.pub").write_text(keypair[1] + "\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    mocks = ExecutingMocks()
    pulumi.runtime.set_mocks(mocks, project="readme", stack="dev", preview=False)
    yield mocks
    for typ, resource_id, outs in mocks.created.values():
        provider = rpc.unwrap_rpc_secret(outs.get("provider"))
        kind = typ.rsplit(":", 1)[1]
        with gpucloud.connect(provider) as cloud:
            if kind == "Instance":
                cloud.delete_instance(resource_id)
                cloud.wait_for_instance_gone(resource_id, timeout=60, interval=0.2)
            elif kind == "SshKey":
                cloud.delete_ssh_key(resource_id)


@pulumi.runtime.test
def test_readme_snippet_runs_as_pasted(readme_home: ExecutingMocks, overrides: Overrides) -> Any:
    import re

    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    block = re.search(r"## Pulumi\n.*?```python\n(.*?)```", readme, re.S)
    assert block, "README lost its Pulumi example"
    scope: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    box = scope["box"]

    def check(values: list[Any]) -> None:
        box_id, host, port, user = values
        created = {name: typ.rsplit(":", 1)[1] for name, (typ, _, _) in readme_home.created.items()}
        assert created == {"laptop": "SshKey", "trainer": "Instance"}
        with connect(overrides, "voltagepark") as cloud:
            live = cloud.get_instance(box_id)
            assert live.status is gpucloud.Status.RUNNING and live.tags == {"team": "ml"}
            assert (host, port, user) == (live.public_ip, live.ssh_port, live.ssh_user)

    return pulumi.Output.all(box.id, box.ssh_host, box.ssh_port, box.ssh_user).apply(check)


class PreviewMocks(PlainMocks):
    """A preview in which ``box`` is being created or replaced when ``box_id`` is empty: no id comes back for it."""

    def __init__(self, box_id: str) -> None:
        super().__init__()
        self.box_id = box_id

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        resource_id, outs = super().new_resource(args)
        return (self.box_id if args.name == "box" else resource_id), outs


@pytest.mark.parametrize(("box_id", "known"), [("", False), ("box-id", True)])
def test_attach_to_is_unknown_while_its_instance_is_replaced(box_id: str, known: bool) -> None:
    """``attach_to=box.name`` reaches the engine unknown in a preview where box has no id yet (see resources.py)."""
    mocks = PreviewMocks(box_id)
    pulumi.runtime.set_mocks(mocks, project="unit", stack="dev", preview=True)
    import pulumi_gpucloud as gpu

    @pulumi.runtime.test
    def program() -> Any:
        box = gpu.Instance("box", provider="voltagepark", instance_type="1x-h100-sxm5-80gb")
        vol = gpu.Volume("vol", provider="voltagepark", size_gb=10, attach_to=box.name)

        def check(_: Any) -> None:
            attach_to = {a.name: a for a in mocks.created}["vol"].inputs.get("attach_to")
            assert attach_to == "box" if known else isinstance(attach_to, Unknown), attach_to

        return pulumi.Output.all(vol.urn, box.urn).apply(check)

    program()


@pulumi.runtime.test
def test_get_reads_by_id_without_a_name(plain_mocks: PlainMocks) -> Any:
    import pulumi_gpucloud as gpu

    seen = gpu.Volume.get("seen", "vol-123", provider="datacrunch")

    def check(_: Any) -> None:
        (read,) = [a for a in plain_mocks.created if a.name == "seen"]
        assert read.resource_id == "vol-123" and read.typ == "pulumi-python:dynamic/gpucloud:Volume"
        assert read.inputs["provider"] == "datacrunch" and read.inputs[GET_MARKER] is True
        assert read.inputs.get("name") is None  # the name comes from the API, not from the resource name

    return seen.urn.apply(check)

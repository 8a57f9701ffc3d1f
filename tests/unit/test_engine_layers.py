"""The adapter contract holds: each adapter's declared capabilities and implemented wire operations agree, spec
validation works by provider name with no connection, the core's modules import each other without circles, and
the engine adopts or resends a create whose outcome is unknown by one rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gpucloud
from gpucloud import engine, errors
from gpucloud.capabilities import Capability
from gpucloud.models import Instance, InstanceSpec, SshKeySpec, VolumeSpec
from gpucloud.providers import implemented, provider_class, validate_instance_spec, validate_volume_spec
from gpucloud.providers.base import WIRE_OPERATIONS, Provider, capability_mismatches
from gpucloud.transport import ResponseLost

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "gpucloud"


@pytest.mark.parametrize("name", implemented())
def test_declared_capabilities_and_implemented_wire_operations_agree(name: str) -> None:
    assert capability_mismatches(provider_class(name)) == []


def _adapter(base: type[Provider], declared: set[Capability], implemented: dict[str, object]) -> type[Provider]:
    namespace = {"name": "fake", "capabilities": frozenset(declared), **implemented}
    return type("Fake", (base,), namespace)


def test_a_capability_declared_without_its_wire_operation_is_named() -> None:
    base = provider_class("cloudnexus")  # declares INSTANCE_RESIZE and implements _resize_instance
    fake = _adapter(base, {*base.capabilities, Capability.VOLUME_RESIZE}, {})
    assert capability_mismatches(fake) == [
        "fake declares 'volume resize' but does not implement _resize_volume",
    ]


def test_a_wire_operation_implemented_without_its_capability_is_named() -> None:
    base = provider_class("cloudnexus")
    fake = _adapter(base, set(base.capabilities) - {Capability.INSTANCE_RESIZE}, {})
    assert capability_mismatches(fake) == [
        "fake implements _resize_instance but declares none of 'instance resize'",
    ]


def test_an_operation_serving_either_of_two_capabilities_needs_one_of_them() -> None:
    def update(self: Provider, instance_id: str, *, name: str | None, tags: dict[str, str] | None) -> Instance:
        raise AssertionError("not called")

    base = provider_class("cloudnexus")
    fake = _adapter(base, {*base.capabilities, Capability.INSTANCE_TAG_UPDATE}, {"_update_instance": update})
    assert capability_mismatches(fake) == []
    assert WIRE_OPERATIONS["_update_instance"] == (Capability.INSTANCE_RENAME, Capability.INSTANCE_TAG_UPDATE)


def test_a_missing_wire_operation_raises_unsupported_before_any_request() -> None:
    # Nothing listens on the discard port: a request that got through would fail otherwise, not as Unsupported.
    unreachable = {"base_url": "http://127.0.0.1:9", "max_retries": 0}
    dcdncloud = gpucloud.connect("dcdncloud", token="t", **unreachable)  # no volumes at all
    with dcdncloud, pytest.raises(errors.Unsupported) as caught:
        dcdncloud.resize_volume("vol-1", 20)
    assert caught.value.capability == Capability.VOLUME_RESIZE.value
    datacrunch = gpucloud.connect("datacrunch", client_id="c", client_secret="s", **unreachable)
    with datacrunch, pytest.raises(errors.Unsupported, match="use state=stopped then state=started"):
        datacrunch.reboot_instance("0b7a4c1e-0000-4000-8000-000000000000")


def test_specs_are_validated_by_provider_name_without_a_connection() -> None:
    spec = InstanceSpec(name="bad name!", instance_type="1V100.6V", image="ubuntu", location="FIN-01")
    with pytest.raises(errors.ValidationError) as caught:
        validate_instance_spec("datacrunch", spec)
    assert caught.value.field == "name"
    with pytest.raises(errors.ValidationError, match="keep_os_volume"):
        validate_instance_spec("cloudnexus", spec.model_copy(update={"name": "ok"}), keep_os_volume=True)
    with pytest.raises(errors.Unsupported):
        validate_volume_spec("dcdncloud", VolumeSpec(name="data", size_gb=10))
    with pytest.raises(errors.ValidationError) as key_error:
        provider_class("voltagepark").validate_ssh_key_spec(SshKeySpec(name="k", public_key="ssh-ed25519 AAAA"))
    assert key_error.value.field == "public_key"


def _imports(path: Path) -> set[str]:
    """The gpucloud modules ``path`` imports anywhere in it (type-checking blocks and functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("gpucloud.")}


def _module_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return {name: _imports(path) & set(modules) for name, path in modules.items()}


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, if there is one."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for target in graph.get(module, ()):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_no_module_of_the_core_imports_itself_back() -> None:
    """No import circle anywhere in gpucloud (type-checking-only and function-level imports count too)."""
    graph = _module_graph()
    assert {"gpucloud.validation", "gpucloud.engine", "gpucloud.providers.base"} <= set(graph)
    assert [cycle for module in sorted(graph) if (cycle := _cycle_through(graph, module))] == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_through(graph, "a") == ["a", "b", "c", "a"]
    assert _cycle_through(graph, "d") is None


# --- engine.create_adopting: the one place a create with an unknown outcome is adopted or sent again ------------
class _Create:
    """A create that fails with ``failures`` in turn, and a lookup by name that finds ``made`` after ``lands_on``
    sends."""

    def __init__(self, failures: list[errors.GpuCloudError], lands_on: int | None) -> None:
        self.failures, self.lands_on, self.sends, self.lookups = failures, lands_on, 0, 0

    def send(self) -> str:
        self.sends += 1
        if self.failures:
            raise self.failures.pop(0)
        return "sent"

    def find(self) -> str | None:
        self.lookups += 1
        return "made" if self.lands_on is not None and self.sends >= self.lands_on else None


def _lost() -> errors.GpuCloudError:
    return ResponseLost("answer lost", provider="p")


def test_a_lost_create_is_looked_up_and_sent_again_only_while_nothing_is_found() -> None:
    create = _Create([_lost(), _lost()], lands_on=2)
    assert engine.create_adopting("p", create.send, create.find, attempts=3) == "made"
    assert (create.sends, create.lookups) == (2, engine.ADOPT_ATTEMPTS + 1)


def test_a_5xx_create_that_never_lands_ends_after_the_attempts_saying_it_is_safe_to_run_again() -> None:
    server_error = errors.ProviderError("boom", provider="p", status_code=500)
    create = _Create([server_error] * 3, lands_on=None)
    with pytest.raises(errors.ProviderError, match="safe to run again") as caught:
        engine.create_adopting("p", create.send, create.find, attempts=3)
    assert caught.value.__cause__ is server_error and create.sends == 3


def test_a_malformed_create_answer_is_adopted_but_never_sent_again() -> None:
    create = _Create([errors.MalformedResponse("not JSON", provider="p")], lands_on=None)
    with pytest.raises(errors.ProviderError, match="nothing was found under that name"):
        engine.create_adopting("p", create.send, create.find, attempts=3)
    assert create.sends == 1


def test_a_refused_create_is_neither_looked_up_nor_sent_again() -> None:
    create = _Create([errors.Conflict("exists", provider="p")], lands_on=1)
    with pytest.raises(errors.Conflict):
        engine.create_adopting("p", create.send, create.find, attempts=3)
    assert (create.sends, create.lookups) == (1, 0)

"""The adapter contract holds: spec validation works by provider name with no connection, and the core's
modules import each other without circles.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gpucloud import errors
from gpucloud.models import InstanceSpec, SshKeySpec, VolumeSpec
from gpucloud.providers import provider_class, validate_instance_spec, validate_volume_spec

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "gpucloud"


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
    assert {"gpucloud.validation", "gpucloud.providers.base"} <= set(graph)
    assert [cycle for module in sorted(graph) if (cycle := _cycle_through(graph, module))] == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_through(graph, "a") == ["a", "b", "c", "a"]
    assert _cycle_through(graph, "d") is None

"""The emulator's layout rules: it stands apart from the adapters it tests, and its files stay small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gpucloud.emulator.voltagepark import models as vp_emulator
from gpucloud.providers import voltagepark as vp_adapter

EMULATOR = Path(vp_emulator.__file__).resolve().parents[1]
MAX_LINES = 800


def _emulator_files() -> list[Path]:
    files = sorted(EMULATOR.rglob("*.py"))
    assert len(files) > 10  # the walk found the package, not an empty folder
    return files


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", _emulator_files(), ids=lambda p: str(p.relative_to(EMULATOR)))
def test_no_emulator_file_imports_an_adapter(path: Path) -> None:
    adapters = sorted(
        m for m in _imported_modules(path) if m == "gpucloud.providers" or m.startswith("gpucloud.providers.")
    )
    assert not adapters, f"{path.name} imports {adapters}: the emulator must not depend on the adapters"


@pytest.mark.parametrize("path", _emulator_files(), ids=lambda p: str(p.relative_to(EMULATOR)))
def test_no_emulator_file_is_over_the_limit(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it as the packaged providers are split"


def test_voltage_park_shapes_are_named_as_the_adapter_names_them() -> None:
    # Stock controls are keyed by the emulator's copy of the rule; users and tests name the adapter's type.
    shapes = [preset["resources"] for preset in vp_emulator.PRESETS.values()]
    shapes.append({"gpus": {}, "vcpu_count": 4, "ram_gb": 16})  # no GPU at all
    for resources in shapes:
        assert vp_emulator.shape_name(resources) == vp_adapter.shape_name(resources)

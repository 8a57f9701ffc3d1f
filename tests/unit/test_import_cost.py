"""What a module run and ``import gpucloud`` load: structural checks on ``sys.modules`` in a fresh interpreter.

Every Ansible task runs in a new Python process, so whatever gpucloud imports is paid on every task. These
tests pin down what must stay out (speed itself is measured in benchmarks/module_noop.py, never here): the
emulator and its web stack, the CLI's typer/rich (which httpx would otherwise pull in through its own CLI),
the adapters of providers the task does not use, and the Pulumi SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud import ensure
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_env
from gpucloud.models import InstanceSpec
from tests.conftest import connect
from tests.contract.specs import INSTANCE

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "ansible_collections" / "gpucloud" / "cloud" / "plugins" / "modules" / "instance.py"

# Never needed by a module task or a plain `import gpucloud`.
HEAVY = ("fastapi", "uvicorn", "starlette", "typer", "rich", "click", "pygments", "pulumi", "grpc")
GPUCLOUD_HEAVY = ("gpucloud.emulator", "gpucloud.cli", "gpucloud.demo")
# Not needed by a no-op module run (placement and fleets are other tasks; tomllib only when a profile file exists).
NOOP_UNUSED = ("gpucloud.placement", "gpucloud.fleet", "gpucloud.sshexec", "tomllib")
# The modules whose pydantic models a module task imports (placement: its own tasks).
MODEL_MODULES = ("gpucloud.config", "gpucloud.models", "gpucloud.wire", "gpucloud.placement")

# Runs a module file as AnsiballZ does (argv[1] = the args file), then writes the names of every loaded module.
PROBE = """
import json, runpy, sys
report, module, args = sys.argv[1:4]
sys.argv = [module, args]
try:
    runpy.run_path(module, run_name="__main__")
except SystemExit:
    pass
with open(report, "w") as handle:
    json.dump(sorted(name for name, mod in sys.modules.items() if mod is not None), handle)
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUCLOUD_", "ANSIBLE_", "PYTHON"))}
    return {**env, **extra}


def _json_after(statement: str, expression: str) -> Any:
    """``expression`` (JSON-serialisable) as a fresh interpreter sees it after running ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps({expression}))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_clean_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    return set(_json_after(statement, "sorted(n for n, m in sys.modules.items() if m)"))


# The pydantic models of MODEL_MODULES whose validator is built, as (module, class) pairs.
BUILT_MODELS = (
    "sorted((m, n) for m in MODEL_MODULES for n, v in vars(sys.modules[m]).items()"
    " if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == m and v.__pydantic_complete__)"
)


def _heavy(loaded: set[str], *also: str) -> list[str]:
    prefixes = (*HEAVY, *GPUCLOUD_HEAVY, *also)
    return sorted(name for name in loaded if any(name == p or name.startswith(p + ".") for p in prefixes))


def test_import_gpucloud_alone_loads_neither_pydantic_nor_httpx() -> None:
    loaded = _loaded_after("import gpucloud\nfrom gpucloud import errors\nerrors.NotFound")
    assert "gpucloud.errors" in loaded
    assert not {"pydantic", "httpx", "gpucloud.models", "gpucloud.providers"} & loaded
    assert _heavy(loaded) == []


def test_every_public_name_resolves_to_its_defining_module() -> None:
    exported = [name for name in gpucloud.__all__ if name not in ("__version__", "connect")]
    assert exported, "gpucloud.__all__ lists the public names"
    for name in exported:
        value = getattr(gpucloud, name)
        origin = getattr(value, "__module__", None)
        assert origin is None or origin.startswith("gpucloud."), (name, origin)
        assert name in dir(gpucloud)
    assert gpucloud.InstanceSpec is InstanceSpec
    with pytest.raises(AttributeError):
        gpucloud.no_such_name  # noqa: B018


def test_submodules_stay_reachable_as_attributes_after_a_bare_import() -> None:
    statement = "import gpucloud\nassert gpucloud.providers.provider_class('voltagepark').name == 'voltagepark'"
    loaded = _loaded_after(statement + "\nassert callable(gpucloud.waiters.ssh_banner)")
    assert {"gpucloud.providers", "gpucloud.providers.voltagepark", "gpucloud.waiters"} <= loaded


def test_importing_the_models_builds_no_validator_until_one_is_used() -> None:
    """defer_build on every model: importing costs the class only; the validator is built on first use."""
    imports = f"from pydantic import BaseModel\nMODEL_MODULES = {MODEL_MODULES!r}\nimport " + ", ".join(MODEL_MODULES)
    assert _json_after(imports, BUILT_MODELS) == []
    used = "\n".join(
        (
            imports,
            "gpucloud.config.ProviderConfig(provider='dcdncloud', token='t')",
            "gpucloud.placement.Requirement(gpu='h100')",
        )
    )
    built = [["gpucloud.config", "ProviderConfig"], ["gpucloud.placement", "Requirement"]]
    assert _json_after(used, BUILT_MODELS) == built


def test_httpx_is_imported_without_its_command_line_client() -> None:
    loaded = _loaded_after("import gpucloud\nimport httpx\nhttpx.Client")
    assert "httpx" in loaded and "httpx._main" not in loaded
    assert _heavy(loaded) == []


def test_module_utils_import_pulls_in_no_emulator_cli_or_other_stacks() -> None:
    loaded = _loaded_after("import ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud")
    assert "gpucloud.ensure" in loaded
    assert _heavy(loaded) == []
    # No adapter is imported before the task names its provider.
    assert not [name for name in loaded if name.startswith("gpucloud.providers.") and name != "gpucloud.providers.base"]


def _run_module(tmp_path: Path, emulator: EmulatorServer, args: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    probe, report, args_file = tmp_path / "probe.py", tmp_path / "modules.json", tmp_path / "args.json"
    probe.write_text(PROBE)
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = _clean_env(
        PYTHONPATH=str(ROOT),
        GPUCLOUD_CONFIG=str(tmp_path / "no-config.toml"),
        **client_env(emulator.url, emulator.settings),
    )
    proc = subprocess.run(
        [sys.executable, str(probe), str(report), str(MODULE), str(args_file)],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result, set(json.loads(report.read_text()))


def test_noop_module_run_loads_one_adapter_and_makes_one_get(
    tmp_path: Path, emulator: EmulatorServer, overrides: dict[str, dict[str, object]]
) -> None:
    provider, name = "dcdncloud", "import-cost-noop"
    with connect(overrides, provider) as cloud:
        ensure.ensure_instance(cloud, InstanceSpec(name=name, **INSTANCE[provider]), wait=True, wait_timeout=60)
    before = len(emulator.world.requests)
    result, loaded = _run_module(
        tmp_path, emulator, {"provider": provider, "name": name, "state": "present", **INSTANCE[provider]}
    )
    assert result.get("failed") is not True, result
    assert result["changed"] is False and result["action"] == "none"
    calls = [(r.method, r.path) for r in emulator.world.requests[before:] if r.provider == provider]
    assert calls == [("GET", "/instances")], "a no-op is one list call"
    others = {f"gpucloud.providers.{p}" for p in gpucloud.PROVIDERS if p != provider}
    assert f"gpucloud.providers.{provider}" in loaded
    assert not others & loaded, "only the task's own adapter is imported"
    assert _heavy(loaded, *NOOP_UNUSED) == []

"""Every option of every gpucloud.cloud module, given a value of the wrong type (or outside its choices), run
in-process through the module's own ``main()`` many times: the module fails naming the option and sends 0
requests. The real ansible-playbook run of a sample is in test_ansible_inputs.py; this covers the option space.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args
from hypothesis import given, settings
from hypothesis import strategies as st

from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_env

from .. import figures
from .strategies import FUZZ
from .test_ansible_inputs import bad_task
from .test_core_inputs import WRITES

pytestmark = pytest.mark.fuzz
PACKAGE = "ansible_collections.gpucloud.cloud.plugins"
# Every module of the collection, so a new one is fuzzed without anyone remembering to list it.
MODULES = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[2] / "ansible_collections/gpucloud/cloud/plugins/modules").glob("*.py")
)
# Options that need a value to get past "required" (so the type error is the first thing the module reports).
REQUIRED = {"provider": "datacrunch", "name": "fz", "action": "snapshot"}


def writes(emulator: EmulatorServer) -> int:
    return sum(1 for r in emulator.world.requests if r.method in WRITES and "token" not in r.path)


class _Captured(Exception):
    pass


def argument_spec(module: ModuleType) -> dict[str, dict[str, Any]]:
    """The module's full argument spec, as it hands it to AnsibleModule (connection options included)."""
    captured: dict[str, dict[str, Any]] = {}

    def capture(argument_spec: dict[str, dict[str, Any]], **_: Any) -> None:
        captured.update(argument_spec)
        raise _Captured

    utils = importlib.import_module(f"{PACKAGE}.module_utils.gpucloud")
    with mock.patch.object(utils, "AnsibleModule", capture), patch_module_args({}), pytest.raises(_Captured):
        module.main()
    return captured


def _wrong(spec: dict[str, Any]) -> st.SearchStrategy[Any] | None:
    """A value Ansible's type check (or choices) refuses for this option, or None when every value converts."""
    if spec.get("choices"):
        return st.text(min_size=1, max_size=12).filter(lambda v: v not in spec["choices"])
    kind = spec.get("type", "str")
    if kind == "int":
        return st.one_of(
            st.text(alphabet="abcxyz!?", min_size=1, max_size=8),
            st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
        )
    if kind == "float":
        return st.text(alphabet="abcxyz!?", min_size=1, max_size=8)
    if kind == "bool":
        return st.text(alphabet="abcxyz!?", min_size=2, max_size=8).filter(
            lambda v: v.lower() not in {"yes", "no", "on", "off", "true", "false", "y", "n", "t", "f"}
        )
    if kind == "dict":
        return st.text(alphabet="abcxyz!? ", min_size=1, max_size=8)  # no "k=v" pairs: not convertible
    return None  # str and list options accept (convert) anything


CASES = [
    (name, option, spec)
    for name in MODULES
    for option, spec in argument_spec(importlib.import_module(f"{PACKAGE}.modules.{name}")).items()
    if _wrong(spec) is not None
]


@pytest.fixture(scope="module")
def module_env(emulator: EmulatorServer) -> Any:
    with mock.patch.dict(os.environ, client_env(emulator.url, emulator.settings)):
        yield


@pytest.mark.parametrize(("module_name", "option", "spec"), CASES, ids=[f"{m}.{o}" for m, o, _ in CASES])
@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_wrongly_typed_options_fail_naming_the_option_without_requests(
    module_env: None,
    emulator: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    module_name: str,
    option: str,
    spec: dict[str, Any],
    data: st.DataObject,
) -> None:
    strategy = _wrong(spec)
    assert strategy is not None
    value = data.draw(strategy)
    module = importlib.import_module(f"{PACKAGE}.modules.{module_name}")
    args = {k: v for k, v in REQUIRED.items() if k in argument_spec(module)} | {option: value}
    before = emulator.world.request_count()
    capsys.readouterr()
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    result = json.loads(capsys.readouterr().out)
    sent = emulator.world.request_count() - before
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", int(sent > 0))
    assert sent == 0
    assert result.get("failed") is True, (args, result)
    # Ansible's own wording for a type or choices error, naming exactly this option.
    named = (f"argument '{option}' is of type", f"value of {option} must be one of")
    assert any(text in result["msg"] for text in named), (args, result["msg"])


def _run(module_name: str, args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    module = importlib.import_module(f"{PACKAGE}.modules.{module_name}")
    capsys.readouterr()
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@settings(FUZZ, max_examples=100)
@given(case=bad_task())
def test_bad_values_fail_naming_the_option_and_change_nothing(
    module_env: None,
    emulator: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, dict[str, Any], str],
) -> None:
    """The same bad values as the playbook sample, many more of them, through each module's main()."""
    module_name, args, option = case
    before = writes(emulator)
    result = _run(module_name, args, capsys)
    sent = writes(emulator) - before
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", sent)
    assert sent == 0, (args, result)
    assert result.get("failed") is True and option in result["msg"], (args, result)


# type=int keeps a boolean as it is (bool is an int); type=float turns it into 1.0/0.0 before the module runs
# (max_price: true was $1/h): both are refused.
NUMBER_OPTIONS = [(m, o, s) for m, o, s in CASES if s.get("type") in ("int", "float") and not s.get("choices")]


@pytest.mark.parametrize(
    ("module_name", "option", "spec"), NUMBER_OPTIONS, ids=[f"{m}.{o}" for m, o, _ in NUMBER_OPTIONS]
)
@pytest.mark.parametrize("value", [True, False])
def test_booleans_for_number_options_fail_naming_the_option_without_requests(
    module_env: None,
    emulator: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    module_name: str,
    option: str,
    spec: dict[str, Any],
    value: bool,
) -> None:
    """Ansible's type=int lets ``true`` through and Python reads it as 1 (``wait_timeout: true`` waited 1 s);
    type=float makes it 1.0."""
    module = importlib.import_module(f"{PACKAGE}.modules.{module_name}")
    args = {k: v for k, v in REQUIRED.items() if k in argument_spec(module)} | {option: value}
    before = emulator.world.request_count()
    result = _run(module_name, args, capsys)
    sent = emulator.world.request_count() - before
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", int(sent > 0))
    assert sent == 0
    assert result.get("failed") is True and result["msg"].startswith(f"{option}: "), (args, result)
    assert "not a boolean" in result["msg"] and result.get("option") == option


# The placement keys are judged by gpucloud.placement, not by Ansible's types: a boolean is refused there too.
PLACEMENT_NUMBERS = ["gpu_count", "min_vcpus", "min_memory_gb", "min_disk_gb", "max_price_per_hour"]


@pytest.mark.parametrize("key", PLACEMENT_NUMBERS)
def test_booleans_for_placement_numbers_fail_naming_the_key_without_requests(
    module_env: None, emulator: EmulatorServer, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    args = {"provider": "auto", "name": "fz", "placement": {"gpu": "h100", key: True}}
    before = emulator.world.request_count()
    result = _run("instance", args, capsys)
    assert emulator.world.request_count() == before
    assert result.get("failed") is True and result["msg"].startswith(f"placement.{key}: "), result
    assert "not a boolean" in result["msg"]

"""The `gpucloud` console script, run as a user would, against the emulator."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_env
from gpucloud.providers import capability_markdown

GPUCLOUD = [sys.executable, "-m", "gpucloud.cli"]


@pytest.fixture
def env(emulator: EmulatorServer, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    return {**clean, "GPUCLOUD_CONFIG": str(tmp_path / "none.toml"), **client_env(emulator.url, emulator.settings)}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GPUCLOUD, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_offers_json_is_sorted_by_price_and_filtered(env: dict[str, str]) -> None:
    result = run(env, "offers", "--json", "--gpu", "h100")
    assert result.returncode == 0, result.stderr
    offers = json.loads(result.stdout)
    assert {o["provider"] for o in offers} == {"datacrunch", "voltagepark"}
    assert all("h100" in o["gpu_model"].lower() for o in offers)
    prices = [o["price_per_hour"] for o in offers]
    assert prices == sorted(prices)


def test_offers_table_and_provider_filter(env: dict[str, str]) -> None:
    result = run(env, "offers", "--provider", "voltagepark")
    assert result.returncode == 0, result.stderr
    assert "voltagepark" in result.stdout and "datacrunch" not in result.stdout


def test_instances_list_json(env: dict[str, str]) -> None:
    result = run(env, "instances", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_no_configured_provider_is_exit_code_1_with_a_hint(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    result = run({**clean, "GPUCLOUD_CONFIG": str(tmp_path / "none.toml")}, "instances", "list")
    assert result.returncode == 1
    assert "no provider is configured" in result.stderr


def test_providers_prints_the_generated_tables(env: dict[str, str]) -> None:
    table = run(env, "providers")
    assert table.returncode == 0
    assert "provider capabilities" in table.stdout and "instance options" in table.stdout
    markdown = run(env, "providers", "--markdown")
    assert markdown.returncode == 0 and markdown.stdout == capability_markdown()

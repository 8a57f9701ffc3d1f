"""The demo (`make demo` runs it against its own emulator) on a private emulator with an ephemeral port: every
provider's round trip, then one placement that fails over because the cheapest offer is out of stock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from gpucloud.demo import run_demo
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_env


def test_demo_places_an_h100_after_failing_over() -> None:
    console = Console(record=True, width=200)
    assert run_demo(console)
    text = console.export_text()
    assert "place an H100 under $3/h" in text
    assert "placed on datacrunch" in text and "after 1 failed attempt" in text and "voltagepark NoCapacity" in text
    assert "delete placed instance" in text and "the placement failed over" in text


def test_demo_against_a_running_emulator_drives_its_stock_over_the_control_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What `make demo` does: the emulator runs apart, credentials and control token come from its env file."""
    with EmulatorServer(provision_seconds=0.3) as server:
        for key in [k for k in os.environ if k.startswith("GPUCLOUD_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("GPUCLOUD_CONFIG", str(tmp_path / "none.toml"))
        for key, value in client_env(server.url, server.settings).items():
            monkeypatch.setenv(key, value)
        console = Console(record=True, width=200)
        assert run_demo(console, emulator_url=server.url)
        assert "voltagepark NoCapacity" in console.export_text()
        assert server.world.stock() == {}, "the demo puts the stock back"

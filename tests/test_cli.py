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


def test_no_configured_provider_is_exit_code_4_with_a_hint(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    result = run({**clean, "GPUCLOUD_CONFIG": str(tmp_path / "none.toml")}, "instances", "list")
    assert result.returncode == 4
    assert "no provider is configured" in result.stderr


def test_providers_prints_the_generated_tables(env: dict[str, str]) -> None:
    table = run(env, "providers")
    assert table.returncode == 0
    assert "provider capabilities" in table.stdout and "instance options" in table.stdout
    markdown = run(env, "providers", "--markdown")
    assert markdown.returncode == 0 and markdown.stdout == capability_markdown()


def test_instances_show_and_ssh_on_a_created_instance(
    env: dict[str, str], overrides: dict, keypair: tuple[Path, str]
) -> None:
    import gpucloud
    from gpucloud import InstanceSpec, Status

    with gpucloud.connect("voltagepark", **overrides["voltagepark"]) as cloud:
        made = cloud.create_instance(
            InstanceSpec(name="cli-box", instance_type="1x-h100-sxm5-80gb", ssh_keys=(keypair[1],))
        ).instance
        cloud.wait_for_ssh(cloud.wait_for_instance(made.id, [Status.RUNNING], timeout=60, interval=0.2), timeout=30)
        try:
            shown = run(env, "instances", "show", "cli-box", "--json")
            assert shown.returncode == 0, shown.stderr
            assert json.loads(shown.stdout)["id"] == made.id
            remote = run(env, "instances", "ssh", "cli-box", "-i", str(keypair[0]), "--", "echo", "over-ssh")
            assert remote.returncode == 0, remote.stderr
            assert remote.stdout.strip() == "over-ssh"
            listed = run(env, "instances", "list", "--status", "running", "--json")
            assert made.id in {i["id"] for i in json.loads(listed.stdout)}
        finally:
            cloud.delete_instance(made.id)
            cloud.wait_for_instance_gone(made.id, timeout=60, interval=0.2)


def test_unknown_instance_is_exit_code_3(env: dict[str, str]) -> None:
    result = run(env, "instances", "show", "no-such-box")
    assert result.returncode == 3
    assert "no instance named" in result.stderr


def test_volumes_and_keys_list_json(env: dict[str, str], overrides: dict, keypair: tuple[Path, str]) -> None:
    import gpucloud

    with gpucloud.connect("voltagepark", **overrides["voltagepark"]) as cloud:
        volume = cloud.create_volume(gpucloud.VolumeSpec(name="cli-vol", size_gb=5))
        key = cloud.create_ssh_key(gpucloud.SshKeySpec(name="cli key", public_key=keypair[1]))
        try:
            volumes = run(env, "volumes", "list", "--json")
            keys = run(env, "keys", "list", "--json")
            assert volumes.returncode == 0 and keys.returncode == 0, volumes.stderr + keys.stderr
            assert volume.id in {v["id"] for v in json.loads(volumes.stdout)}
            assert key.id in {k["id"] for k in json.loads(keys.stdout)}
        finally:
            cloud.delete_volume(volume.id)
            cloud.delete_ssh_key(key.id)


def test_offers_location_filter(env: dict[str, str]) -> None:
    everywhere = json.loads(run(env, "offers", "--json", "--provider", "datacrunch").stdout)
    iceland = json.loads(run(env, "offers", "--json", "--provider", "datacrunch", "--location", "ICE-01").stdout)
    assert iceland and len(iceland) <= len(everywhere)
    assert all(any(loc["location"] == "ICE-01" and loc["available"] for loc in o["locations"]) for o in iceland)


def test_config_check_reports_without_secrets(env: dict[str, str]) -> None:
    ok = run(env, "config", "check", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = {r["provider"]: r for r in json.loads(ok.stdout)}
    assert report["datacrunch"]["reachable"] and report["voltagepark"]["reachable"]
    bad = {**env, "GPUCLOUD_VOLTAGEPARK_TOKEN": "wrong-token-value"}
    broken = run(bad, "config", "check")
    assert broken.returncode == 1
    assert "AuthError" in broken.stdout
    for secret in ("wrong-token-value", env["GPUCLOUD_DATACRUNCH_CLIENT_SECRET"]):
        assert secret not in broken.stdout + broken.stderr + ok.stdout


def test_config_check_with_nothing_configured_is_exit_code_4(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    result = run({**clean, "GPUCLOUD_CONFIG": str(tmp_path / "none.toml")}, "config", "check")
    assert result.returncode == 4

"""The `gpucloud` console script, run as a user would, against the emulator."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def test_offers_show_the_instance_kind(env: dict[str, str]) -> None:
    offers = json.loads(run(env, "offers", "--json", "--provider", "voltagepark", "--min-gpus", "8").stdout)
    kinds = {o["instance_type"]: o["kind"] for o in offers}
    assert kinds["baremetal-8x-h100-sxm5-80gb-infiniband"] == "bare_metal" and "vm" in kinds.values()
    table = run(env, "offers", "--provider", "voltagepark", "--min-gpus", "8")
    assert table.returncode == 0 and "bare metal" in table.stdout, table.stdout + table.stderr


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


def test_version_is_the_package_version(tmp_path: Path) -> None:
    import gpucloud

    result = run(dict(os.environ), "--version")
    assert result.returncode == 0 and result.stdout == f"gpucloud {gpucloud.__version__}\n"


def test_bad_usage_is_exit_code_2(env: dict[str, str]) -> None:
    unknown = run(env, "instances", "list", "--provider", "nosuchcloud")
    assert unknown.returncode == 2
    assert "nosuchcloud" in unknown.stderr and "voltagepark" in unknown.stderr  # names the valid ones
    assert run(env, "offers", "--min-gpus", "-1").returncode == 2
    assert run(env, "instances", "list", "--no-such-option").returncode == 2


def test_asked_for_provider_without_credentials_is_exit_code_4(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if not k.startswith("GPUCLOUD_VOLTAGEPARK_TOKEN")}
    result = run(bare, "keys", "list", "--provider", "voltagepark")
    assert result.returncode == 4
    assert "voltagepark has no credentials" in result.stderr


def test_provider_error_is_exit_code_1_without_the_secret(env: dict[str, str]) -> None:
    bad = {**env, "GPUCLOUD_VOLTAGEPARK_TOKEN": "wrong-token-value"}
    result = run(bad, "instances", "list", "--provider", "voltagepark", "--json")
    assert result.returncode == 1
    assert result.stdout == ""  # a script parsing stdout sees nothing rather than a partial list
    # One line per failure, naming the provider once: ``error: voltagepark: AuthError: ... (http=401)``.
    (line,) = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert line.startswith("error: voltagepark: AuthError: ") and "http=401" in line, line
    assert line.count("voltagepark") == 1, line
    assert "wrong-token-value" not in result.stderr


def _leaf_commands() -> dict[str, object]:
    import typer

    from gpucloud.cli import app

    found: dict[str, object] = {}

    def walk(command: Any, path: str) -> None:
        if hasattr(command, "commands"):  # a group (typer vendors its own click, so no isinstance check)
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            found[path] = command

    walk(typer.main.get_command(app), "")
    return found


# Commands that list or report something; `instances ssh`, `emulator`, `demo` and `place` run things instead.
LIST_COMMANDS = (
    "offers",
    "providers",
    "instances list",
    "instances show",
    "volumes list",
    "keys list",
    "config check",
    "images",
    "locations",
)


# Of those, the ones that list what every provider has: one failing provider leaves the others listed.
GATHERING_COMMANDS = ("offers", "instances list", "volumes list", "keys list", "images", "locations")


def test_every_list_command_has_json() -> None:
    commands = _leaf_commands()
    assert set(LIST_COMMANDS) | {"instances ssh", "emulator", "demo", "place"} == set(commands), "classify new commands"
    for path in LIST_COMMANDS:
        options = {opt for param in commands[path].params for opt in param.opts}  # type: ignore[attr-defined]
        assert "--json" in options, f"`gpucloud {path}` has no --json"
        assert ("--with-errors" in options) == (path in GATHERING_COMMANDS), f"`gpucloud {path}` --with-errors"


@pytest.mark.parametrize("path", [p for p in LIST_COMMANDS if p != "instances show"])
def test_list_commands_print_json_lists(env: dict[str, str], path: str) -> None:
    result = run(env, *path.split(), "--json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_providers_json_is_the_capability_table(env: dict[str, str]) -> None:
    from gpucloud.providers import capability_table, implemented

    rows = json.loads(run(env, "providers", "--json").stdout)
    assert [r["provider"] for r in rows] == list(implemented())
    headers, table = capability_table()
    for row, cells in zip(rows, table, strict=True):
        assert [row["title"], *row["capabilities"].values()] == cells
        assert list(row["capabilities"]) == headers[1:]


def test_waits_show_a_spinner_on_stderr_and_json_stays_clean(env: dict[str, str]) -> None:
    # Rich draws spinners only on a terminal; these variables make it treat the pipe as one.
    tty = {**env, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    listed = run(tty, "instances", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "asking " in listed.stderr and "\x1b[" in listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    checked = run(tty, "config", "check", "--json")
    assert "checking providers" in checked.stderr
    assert {r["provider"] for r in json.loads(checked.stdout)} >= {"datacrunch", "voltagepark"}


def test_images_and_locations_list_valid_values_per_provider(env: dict[str, str]) -> None:
    images = run(env, "images", "--json", "--name", "ubuntu-24.04")
    assert images.returncode == 0, images.stderr
    found = json.loads(images.stdout)
    assert {"datacrunch", "dcdncloud"} <= {i["provider"] for i in found}
    assert all("ubuntu-24.04" in (i["id"] + i["name"]).lower() for i in found)
    places = run(env, "locations", "--json", "-p", "voltagepark", "-p", "cloudnexus")
    assert places.returncode == 0, places.stderr
    rows = json.loads(places.stdout)
    assert {r["provider"] for r in rows} == {"voltagepark", "cloudnexus"}
    # Voltage Park ids are UUIDs: the readable name comes with each; CloudNexus has no listing, only doc examples.
    assert all(r["name"] and r["name"] != r["id"] for r in rows if r["provider"] == "voltagepark")
    assert {r["complete"] for r in rows if r["provider"] == "cloudnexus"} == {False}
    assert {r["complete"] for r in rows if r["provider"] == "voltagepark"} == {True}
    table = run(env, "locations", "-p", "cloudnexus")
    assert table.returncode == 0 and "us-east-1" in table.stdout
    assert "examples from its documentation" in table.stderr


def _broken(env: dict[str, str]) -> dict[str, str]:
    return {**env, "GPUCLOUD_VOLTAGEPARK_TOKEN": "wrong-token-value"}


def test_one_failing_provider_leaves_the_others_listed_with_exit_code_1(env: dict[str, str]) -> None:
    listed = run(_broken(env), "offers", "--json", "--min-gpus", "0")
    assert listed.returncode == 1
    offers = json.loads(listed.stdout)  # still one JSON list
    assert {o["provider"] for o in offers} == {"datacrunch", "dcdncloud", "computestacks"}
    assert "error: voltagepark: AuthError" in listed.stderr
    table = run(_broken(env), "offers")
    assert table.returncode == 1
    assert "datacrunch" in table.stdout and "voltagepark" not in table.stdout
    assert "error: voltagepark: AuthError" in table.stderr
    for result in (listed, table):
        assert "wrong-token-value" not in result.stdout + result.stderr


# Voltage Park lists its presets (and so its images) without a token, as its docs show: break another provider.
BROKEN_FOR = {"images": "dcdncloud"}


@pytest.mark.parametrize("path", GATHERING_COMMANDS)
def test_with_errors_puts_failures_in_the_json_document(env: dict[str, str], path: str) -> None:
    broken = BROKEN_FOR.get(path, "voltagepark")
    bad_env = {**env, f"GPUCLOUD_{broken.upper()}_TOKEN": "wrong-token-value"}
    result = run(bad_env, *path.split(), "--json", "--with-errors", "--provider", broken)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["items"] == []
    (error,) = document["errors"]
    assert set(error) == {"provider", "error_class", "message"}
    assert error["provider"] == broken and error["error_class"] == "AuthError"
    assert broken in error["message"] and "wrong-token-value" not in result.stdout
    if broken == "voltagepark":
        assert "Invalid API token" in error["message"]
    fine = run(env, *path.split(), "--json", "--with-errors", "--provider", "datacrunch")
    assert fine.returncode == 0, fine.stderr
    assert json.loads(fine.stdout)["errors"] == []
    alone = run(env, *path.split(), "--with-errors")
    assert alone.returncode == 2 and "--json" in alone.stderr


def test_with_errors_keeps_what_answered(env: dict[str, str]) -> None:
    result = run(_broken(env), "offers", "--json", "--with-errors", "--min-gpus", "0")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert [e["provider"] for e in document["errors"]] == ["voltagepark"]
    assert {o["provider"] for o in document["items"]} == {"datacrunch", "dcdncloud", "computestacks"}


def test_show_does_not_guess_when_a_provider_failed(env: dict[str, str]) -> None:
    result = run(_broken(env), "instances", "show", "anything")
    assert result.returncode == 1  # not "not found": the instance could be on the provider that failed
    assert "voltagepark: AuthError" in result.stderr


def _narrow(env: dict[str, str], *args: str) -> list[str]:
    result = run({**env, "COLUMNS": "80"}, *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)
    return lines


def test_offers_table_fits_80_columns_with_every_number_whole(env: dict[str, str]) -> None:
    lines = _narrow(env, "offers", "--min-gpus", "0")
    offers = json.loads(run(env, "offers", "--json", "--min-gpus", "0").stdout)
    assert len(offers) > 10
    for offer in offers:
        # The row starts with the whole instance type, and its numbers are whole words of that same line.
        (row,) = [line.split() for line in lines if line.split()[:1] == [offer["instance_type"]]]
        assert f"{offer['price_per_hour']:.2f}" in row and str(offer["vcpus"] or "?") in row, row
        assert (f"{offer['memory_gb']:g}" if offer["memory_gb"] else "?") in row, row
        spot = offer["spot_price_per_hour"]
        assert (f"{spot:.2f}" if spot is not None else "-") in row, row
    spot_rows = [o for o in offers if o["spot_price_per_hour"] is not None]
    assert spot_rows and {o["provider"] for o in spot_rows} == {"datacrunch"}, "spot prices are DataCrunch's"


def test_providers_tables_fit_80_columns_without_breaking_a_cell(env: dict[str, str]) -> None:
    from gpucloud.capabilities import EVIDENCE_LEGEND
    from gpucloud.providers import capability_table

    lines = _narrow(env, "providers")
    words = [word for line in lines for word in line.split()]
    # Each cell word once per cell, and once more in the legend under the tables.
    expected: dict[str, int] = dict.fromkeys(EVIDENCE_LEGEND, 1)
    for options in (False, True):
        _, rows = capability_table(options=options)
        for row in rows:
            for cell in row[1:]:
                if cell in EVIDENCE_LEGEND:
                    expected[cell] += 1
    assert {cell: words.count(cell) for cell in expected} == expected
    assert "ComputeStacks" in words and "CloudNexus" in words


def test_config_check_says_not_configured(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if not k.startswith("GPUCLOUD_CLOUDNEXUS_")}
    result = run({**bare, "COLUMNS": "120"}, "config", "check")
    (row,) = [line for line in result.stdout.splitlines() if "cloudnexus" in line]
    assert "not configured" in row and "None" not in result.stdout

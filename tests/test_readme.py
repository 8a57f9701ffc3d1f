"""The README is the newcomer's contract: its tables and commands must match the code and CI."""

import re
from pathlib import Path
from typing import Any

from gpucloud.emulator import EmulatorServer
from gpucloud.providers import TABLE_COLUMNS, capability_markdown, capability_table, implemented, provider_class

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_capability_tables_are_the_generated_ones() -> None:
    section = re.search(r"<!-- capability-table:[^\n]*-->\n(.*?)<!-- end capability-table -->", README, re.S)
    assert section, "README lost its generated capability tables"
    assert section.group(1) == capability_markdown(), "regenerate with `gpucloud providers --markdown`"


def test_every_provider_and_capability_state_is_in_the_table() -> None:
    headers, rows = capability_table()
    assert [row[0] for row in rows] == [provider_class(name).title for name in implemented()]
    for row in rows:
        assert set(row[1 : 1 + len(TABLE_COLUMNS)]) <= {"yes", "no", "inferred"}
    assert len(headers) == 1 + len(TABLE_COLUMNS) + 2


def test_ci_runs_the_readme_commands_in_order() -> None:
    block = re.search(r"## Two commands\n\n```bash\n(.*?)```", README, re.S)
    assert block, "README lost its two-commands block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip().startswith("make")]
    assert commands == ci == ["make demo", "make test"]


def test_python_snippet_runs_as_pasted(
    emulator: EmulatorServer, overrides: dict[str, dict[str, Any]], keypair: tuple[Path, str], tmp_path: Path
) -> None:
    """The README's Python example, run unchanged in a fresh interpreter against the emulator."""
    import os
    import subprocess
    import sys

    import gpucloud
    from gpucloud.emulator.client import client_env

    snippet = re.search(r"## Use it from Python\n\n```python\n(.*?)```", README, re.S)
    assert snippet, "README lost its Python example"
    with gpucloud.connect("datacrunch", **overrides["datacrunch"]) as cloud:
        key = cloud.create_ssh_key(gpucloud.SshKeySpec(name="my-laptop", public_key=keypair[1]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    env.update(client_env(emulator.url, emulator.settings), GPUCLOUD_CONFIG=str(tmp_path / "none.toml"))
    try:
        result = subprocess.run(
            [sys.executable, "-c", snippet.group(1)], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        user, ip, port = result.stdout.split()
        assert (user, int(port)) == (overrides["datacrunch"]["ssh_user"], emulator.settings.ssh_port)
        assert ip.startswith("127.")
    finally:
        with gpucloud.connect("datacrunch", **overrides["datacrunch"]) as cloud:
            found = cloud.find_instance("trainer-1")
            if found:
                cloud.delete_instance(found.id)
                cloud.wait_for_instance_gone(found.id, timeout=60, interval=0.2)
            cloud.delete_ssh_key(key.id)


def test_inferred_marks_only_undocumented_columns() -> None:
    """CloudNexus documents listing instances but not get/delete/jobs: only the latter read "inferred"."""
    headers, rows = capability_table()
    cloudnexus = dict(zip(headers, next(r for r in rows if r[0] == provider_class("cloudnexus").title), strict=True))
    assert cloudnexus["list"] == "yes"
    assert cloudnexus["instance create"] == cloudnexus["delete"] == "inferred"
    assert cloudnexus["volume create"] == "no"

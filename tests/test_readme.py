"""The README is the newcomer's contract: its tables and commands must match the code and CI."""

import re
from pathlib import Path

from gpucloud.capabilities import Capability
from gpucloud.providers import implemented, provider_class

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_capability_table_matches_the_code() -> None:
    header = next(line for line in README.splitlines() if line.startswith("| capability |"))
    titles = [cell.strip() for cell in header.strip("|").split("|")[1:]]
    classes = [provider_class(name) for name in implemented()]
    assert titles == [cls.title for cls in classes]
    rows = {
        cells[0]: cells[1:]
        for line in README.splitlines()
        if line.startswith("| ") and not line.startswith(("| capability", "| setting"))
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for capability in Capability:
        expected = ["yes" if capability in cls.capabilities else "-" for cls in classes]
        assert rows.get(capability.value) == expected, capability.value


def test_ci_runs_the_readme_commands_in_order() -> None:
    block = re.search(r"## Two commands\n\n```bash\n(.*?)```", README, re.S)
    assert block, "README lost its two-commands block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip().startswith("make")]
    assert commands == ci == ["make demo", "make test"]

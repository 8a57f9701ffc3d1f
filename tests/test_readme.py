"""The README is the newcomer's contract: its tables and commands must match the code and CI."""

import re
from pathlib import Path

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

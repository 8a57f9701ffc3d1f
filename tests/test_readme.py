"""The README is the newcomer's contract: its tables and commands must match the code and CI."""

import re
from pathlib import Path
from typing import Any

from gpucloud.capabilities import EVIDENCE_LEGEND, Evidence
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
        assert set(row[1 : 1 + len(TABLE_COLUMNS)]) <= {"no", *(tier.value for tier in Evidence)}
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


def _row(provider: str, options: bool = False) -> dict[str, str]:
    headers, rows = capability_table(options=options)
    return dict(zip(headers, next(r for r in rows if r[0] == provider_class(provider).title), strict=True))


def test_inferred_marks_only_undocumented_columns() -> None:
    """CloudNexus documents listing and creating instances (POST answers a job id) but not get/delete/jobs: only
    delete reads "inferred" (create's job polling is said on its page)."""
    cloudnexus = _row("cloudnexus")
    assert cloudnexus["list"] == cloudnexus["instance create"] == "yes"
    assert cloudnexus["delete"] == cloudnexus["ssh key create/delete"] == "inferred"
    assert cloudnexus["volume create"] == "no"


def test_cells_name_the_evidence_they_rest_on() -> None:
    """Voltage Park's attach rests on order_ids, whose meaning its docs do not give; ComputeStacks' endpoints come
    from its controller's source, as its captured docs cover auth only."""
    voltagepark = _row("voltagepark")
    assert voltagepark["volume attach"] == "inferred" and voltagepark["volume create"] == "yes"
    computestacks = {**_row("computestacks"), **_row("computestacks", options=True)}
    assert computestacks["instance create"] == computestacks["resize"] == computestacks["rename"] == "source"
    assert computestacks["volumes at create"] == "inferred" and computestacks["volume create"] == "no"
    pages = {name: (ROOT / "docs/providers" / f"{name}.md").read_text() for name in ("voltagepark", "computestacks")}
    assert "order_ids" in pages["voltagepark"] and "*inferred*" in pages["voltagepark"]
    assert "computestacks-resources.md" in pages["computestacks"]


def test_provider_pages_explain_every_cell_not_resting_on_the_docs() -> None:
    """A provider page says *inferred* exactly where its table row has an inferred cell, and names `source` exactly
    where a cell rests on the provider's code, so a cell and its page cannot drift apart."""
    for name in implemented():
        cells = {*_row(name).values(), *_row(name, options=True).values()}
        page = (ROOT / "docs/providers" / f"{name}.md").read_text()
        assert ("*inferred*" in page) == (Evidence.INFERRED.value in cells), name
        assert ("`source`" in page) == (Evidence.SOURCE.value in cells), name


def test_the_legend_explains_every_word_the_tables_use() -> None:
    words = {cell for options in (False, True) for row in capability_table(options)[1] for cell in row[1:]}
    words &= {"no", *(tier.value for tier in Evidence)}
    assert words == set(EVIDENCE_LEGEND)
    for word, meaning in EVIDENCE_LEGEND.items():
        assert f"- `{word}`: {meaning}\n" in README


def _table(text: str, marker: str) -> list[list[str]]:
    """The Markdown table right after ``<!-- marker...-->``, as rows of cells (header and rule dropped)."""
    section = re.search(rf"<!-- {marker}[^\n]*-->\n((?:\|[^\n]*\n)+)", text)
    assert section, f"lost the table marked {marker}"
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in section.group(1).splitlines()]
    return rows[2:]


def _global_variables() -> tuple[str, ...]:
    """Variables of gpucloud itself that belong to no provider: the config file, its profile, the lock directory."""
    from gpucloud import namelock

    return ("GPUCLOUD_CONFIG", "GPUCLOUD_PROFILE", namelock.ENV)


def _ansible_variables() -> tuple[str, ...]:
    """Variables the collection's action plugins read in ansible-playbook (the in-process opt-out). Read from the
    source, not imported: importing Ansible's controller code would turn this test process into a controller."""
    source = (ROOT / "ansible_collections/gpucloud/cloud/plugins/plugin_utils/in_process.py").read_text()
    return tuple(re.findall(r'^OPT_OUT_ENV = "(GPUCLOUD_[A-Z_]+)"$', source, re.M))


GLOBAL_VARIABLES = _global_variables() + _ansible_variables()


def _configuration_rows(text: str) -> dict[str, tuple[str, str]]:
    """Environment variable -> (config key, default) of a configuration table."""
    rows = {}
    header = re.search(r"\| config key \| environment variable \| default \|[^\n]*\n\|[-|]+\n((?:\|[^\n]*\n)+)", text)
    assert header, "lost the configuration table (config key | environment variable | default | meaning)"
    for line in header.group(1).splitlines():
        key, variable, default, _meaning = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows[variable.strip("`")] = (key.strip("`"), default)
    return rows


def test_configuration_tables_list_every_setting_of_config_py() -> None:
    """README and docs/configuration.md: one row per ProviderConfig key, with its variable and default."""
    from gpucloud.config import ProviderConfig, env_var

    fields = {name: info for name, info in ProviderConfig.model_fields.items() if name != "provider"}
    expected = {env_var("<PROVIDER>", name): name for name in fields}
    expected |= dict.fromkeys(GLOBAL_VARIABLES, "-")
    for document in (README, (ROOT / "docs" / "configuration.md").read_text()):
        rows = _configuration_rows(document)
        assert {variable: key for variable, (key, _) in rows.items()} == expected
        for variable, (key, default) in rows.items():
            if key in fields and fields[key].default is not None:
                # A number (or switch) in the table must be the model's default, so the docs cannot drift.
                if isinstance(fields[key].default, bool):
                    assert default == str(fields[key].default).lower(), f"{variable} default"
                else:
                    assert float(default.split()[0]) == float(fields[key].default), f"{variable} default"


def test_every_variable_mentioned_in_the_docs_exists() -> None:
    """A GPUCLOUD_* name anywhere in README, docs/ or the collection docs is one gpucloud reads."""
    from gpucloud.config import PROVIDERS, ProviderConfig, env_var
    from gpucloud.emulator.client import CONTROL_TOKEN_ENV

    # The emulator's env file also carries its control token, which its clients (tests, scripts) read.
    known = {*GLOBAL_VARIABLES, CONTROL_TOKEN_ENV}
    for provider in (*PROVIDERS, "<PROVIDER>"):
        # The prefix alone is shorthand for all of a provider's variables (`GPUCLOUD_VOLTAGEPARK_*`).
        known |= {f"GPUCLOUD_{provider.upper()}"}
        known |= {env_var(provider, name) for name in ProviderConfig.model_fields if name != "provider"}
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    collection = ROOT / "ansible_collections" / "gpucloud" / "cloud"
    documents += [collection / "README.md", *sorted((collection / "docs").rglob("*.rst"))]
    for document in documents:
        for name in re.findall(r"\bGPUCLOUD_(?:<PROVIDER>|[A-Z]+)(?:_[A-Z]+)*\b", document.read_text()):
            assert name in known, f"{document.relative_to(ROOT)} mentions {name}, which gpucloud does not read"


def test_troubleshooting_covers_every_error_class() -> None:
    import inspect

    from gpucloud import errors

    classes = {
        name
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.GpuCloudError)
        and cls is not errors.GpuCloudError
        and cls.__module__ == errors.__name__
    }
    assert classes >= {"AuthError", "NotFound", "Timeout"}
    readme_rows = {row[0].strip("`") for row in _table(README, "troubleshooting")}
    assert readme_rows == classes, "README's troubleshooting table needs one row per error class"
    docs_rows = {m for m in re.findall(r"^\| `(\w+)` \|", (ROOT / "docs" / "errors.md").read_text(), re.M)}
    assert docs_rows == classes, "docs/errors.md needs one row per error class"


def test_exit_codes_table_is_the_cli_s() -> None:
    from gpucloud.cli import EXIT_CODES

    rows = _table(README, "exit-codes")
    assert {int(code.strip("`")): meaning for code, meaning in rows} == EXIT_CODES


def _nav_pages(nav: list[Any]) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_docs_have_a_page_per_provider_with_auth_mapping_and_gaps() -> None:
    import yaml

    from gpucloud.config import PROVIDERS

    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    on_disk = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == on_disk, "every page in docs/ is in the mkdocs nav, and the nav has no missing page"
    for provider in PROVIDERS:
        page = ROOT / "docs" / "providers" / f"{provider}.md"
        headings = re.findall(r"^## (.+)$", page.read_text(), re.M)
        for wanted in ("Authentication", "What maps to what", "Not supported"):
            assert wanted in headings, f"{page.name} has no '## {wanted}' section"
        auth = page.read_text().split("## Authentication", 1)[1].split("\n## ", 1)[0]
        assert f"GPUCLOUD_{provider.upper()}_" in auth, f"{page.name}: the auth section names no variable"


def test_mkdocs_builds_in_strict_mode(tmp_path: Path) -> None:
    import subprocess
    import sys

    mkdocs = Path(sys.executable).parent / "mkdocs"
    built = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    for provider in ("datacrunch", "voltagepark", "dcdncloud", "computestacks", "cloudnexus"):
        assert (tmp_path / "site" / "providers" / provider / "index.html").is_file()


def test_readme_relative_links_resolve() -> None:
    for readme in (ROOT / "README.md", ROOT / "ansible_collections" / "gpucloud" / "cloud" / "README.md"):
        links = re.findall(r"\]\(([^)#]+)\)", readme.read_text())
        local = [link for link in links if "://" not in link]
        assert local, f"{readme} links nothing locally"
        for link in local:
            assert (readme.parent / link).exists(), f"{readme.relative_to(ROOT)} links to missing {link}"


def test_emulator_page_lists_every_emulator_option() -> None:
    import typer

    from gpucloud.cli import app

    command = typer.main.get_command(app).commands["emulator"]  # type: ignore[attr-defined]
    page = (ROOT / "docs" / "emulator.md").read_text()
    for param in command.params:
        for option in param.opts:
            if option.startswith("--") and option != "--help":
                assert f"`{option}" in page, f"docs/emulator.md does not describe {option}"

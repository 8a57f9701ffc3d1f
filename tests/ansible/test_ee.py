"""The collection in an execution environment and as an AWX inventory source, as its AWX guide describes.

No container engine runs here, so the image itself is not built: ``ansible-builder create`` must produce a build
context from the guide's definition, ``ansible-builder introspect`` (the step the image build runs) must find the
collection's Python and system requirements, and each documented credential type's injected environment must be
enough for the inventory plugin to authenticate against the emulator (and a wrong secret must not be).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from ansible.parsing.yaml.loader import AnsibleLoader
from bindep.depends import Depends
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import gpucloud
from gpucloud.config import PROVIDERS, ProviderConfig, env_var, secret_fields
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides

from .conftest import COLLECTION, ansible_binary, base_env

GUIDE = COLLECTION / "docs" / "docsite" / "rst" / "awx.rst"


def guide_yaml_blocks() -> list[str]:
    text = GUIDE.read_text()
    blocks = re.findall(r"\.\. code-block:: yaml\n\n((?:(?: {4}.*)?\n)+)", text)
    assert len(blocks) == 3, "the AWX guide lost its EE definition, credential types or inventory file"
    return [textwrap.dedent(block) for block in blocks]


def credential_types() -> dict[str, dict[str, Any]]:
    """Provider -> the ``awx.awx.credential_type`` arguments the guide documents for it."""
    (play,) = yaml.load(guide_yaml_blocks()[1], Loader=AnsibleLoader)  # Ansible's loader knows !unsafe
    found: dict[str, dict[str, Any]] = {}
    for task in play["tasks"]:
        args = task["awx.awx.credential_type"]
        providers = {name.split("_")[1].lower() for name in args["injectors"]["env"]}
        assert len(providers) == 1, f"{args['name']} injects variables of several providers: {providers}"
        found[providers.pop()] = args
    return found


def built_collection(tmp_path: Path, env: dict[str, str]) -> Path:
    """The collection built and installed the way ansible-builder's galaxy stage does it; returns the path."""
    built = subprocess.run(
        [ansible_binary("ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (tarball,) = tmp_path.glob("gpucloud-cloud-*.tar.gz")
    target = tmp_path / "collections"
    cmd = [ansible_binary("ansible-galaxy"), "collection", "install", "--offline", "--force", "-p", str(target)]
    installed = subprocess.run([*cmd, str(tarball)], env=env, capture_output=True, text=True, timeout=120)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return target


def test_introspect_finds_the_collection_requirements(ansible_home: Path, tmp_path: Path) -> None:
    target = built_collection(tmp_path, base_env(ansible_home))
    result = subprocess.run(
        [ansible_binary("ansible-builder"), "introspect", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = yaml.safe_load(result.stdout)
    python = [line.split("#")[0].strip() for line in found["python"]]
    assert all(line.endswith("# from collection gpucloud.cloud") for line in found["python"] + found["system"])
    (requirement,) = [Requirement(line) for line in python if Requirement(line).name == "gpucloud"]
    assert requirement.specifier.contains(gpucloud.__version__), "the EE would not accept this gpucloud release"
    system = "\n".join(line.split("#")[0].strip() for line in found["system"]) + "\n"
    # bindep resolves per platform: the SSH client package has different names on RPM and dpkg systems.
    for platform, package in (("platform:rpm", "openssh-clients"), ("platform:dpkg", "openssh-client")):
        rules = Depends(system).active_rules([platform])
        assert [rule[0] for rule in rules] == [package]


def test_ee_definition_from_the_guide_creates_a_build_context(tmp_path: Path) -> None:
    (tmp_path / "execution-environment.yml").write_text(guide_yaml_blocks()[0])
    context = tmp_path / "context"
    builder = ansible_binary("ansible-builder")
    containerfile_name = ["--output-filename", "Containerfile"]  # its default depends on which engine is installed
    result = subprocess.run(
        [builder, "create", "--file", "execution-environment.yml", "--context", str(context), *containerfile_name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (context / "Containerfile").read_text()
    refs = re.search(r'ARG ANSIBLE_INSTALL_REFS="(.*)"', containerfile)
    assert refs, containerfile
    (core,) = [Requirement(ref) for ref in refs.group(1).split() if Requirement(ref).name == "ansible-core"]
    # The image's ansible-core starts where meta/runtime.yml's requires_ansible does.
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    (lowest,) = [Version(spec.version) for spec in SpecifierSet(runtime["requires_ansible"]) if spec.operator == ">="]
    assert core.specifier.contains(str(lowest))
    assert not core.specifier.contains(f"{lowest.major}.{lowest.minor - 1}.99")
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile  # gpucloud needs Python 3.11+
    (wanted,) = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    galaxy = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
    assert wanted["name"] == f"{galaxy['namespace']}.{galaxy['name']}"
    assert SpecifierSet(wanted["version"]).contains(galaxy["version"])
    assert (context / "_build" / "scripts" / "introspect.py").is_file()


def test_every_provider_has_a_credential_type_matching_the_configuration() -> None:
    types = credential_types()
    assert sorted(types) == sorted(PROVIDERS)
    for provider, args in types.items():
        fields = {field["id"]: field for field in args["inputs"]["fields"]}
        assert set(fields) <= set(ProviderConfig.model_fields) - {"provider"}, f"{provider}: unknown config keys"
        assert set(args["inputs"]["required"]) <= set(fields)
        for key, field in fields.items():
            assert field.get("secret", False) == (key in secret_fields()), f"{provider}.{key}: secret flag"
        expected = {env_var(provider, key): "{{ %s }}" % key for key in fields}  # noqa: UP031 - literal braces
        assert {name: str(value) for name, value in args["injectors"]["env"].items()} == expected
        assert args["kind"] == "cloud"


def _inventory(env: dict[str, str], path: Path) -> subprocess.CompletedProcess[str]:
    env = {**env, "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}
    cmd = [ansible_binary("ansible-inventory"), "-i", str(path), "--list", "--export"]  # what AWX runs
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _render(injectors: dict[str, Any], inputs: dict[str, Any]) -> dict[str, str]:
    # AWX renders injectors with Jinja2; an input left empty renders as an empty string.
    return {name: jinja2.Template(str(value)).render(**inputs) for name, value in injectors.items()}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_credential_type_authenticates_the_inventory_source(
    provider: str, emulator: EmulatorServer, ansible_home: Path, tmp_path: Path
) -> None:
    args = credential_types()[provider]
    known = client_overrides(emulator.url, emulator.settings)[provider]
    inputs = {f["id"]: known[f["id"]] for f in args["inputs"]["fields"] if f["id"] in known}
    assert set(args["inputs"]["required"]) <= set(inputs)
    source = yaml.safe_load(guide_yaml_blocks()[2])
    source["providers"] = [provider]
    path = tmp_path / f"{provider}.gpucloud.yml"
    path.write_text(yaml.safe_dump(source))

    # Only what the credential injects: base_env drops every GPUCLOUD_* variable of this shell.
    injected = _render(args["injectors"]["env"], inputs)
    ok = _inventory({**base_env(ansible_home), **injected}, path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all" in json.loads(ok.stdout)

    secrets = [f["id"] for f in args["inputs"]["fields"] if f.get("secret") and f["id"] in inputs]
    assert secrets, f"{provider}: the test needs a secret input to break"
    wrong = _render(args["injectors"]["env"], {**inputs, **{key: "wrong-secret-value" for key in secrets}})
    if provider == "cloudnexus":
        wrong = {**wrong, env_var(provider, "token"): "cn_test_wrong-secret-value"}  # keep the accepted prefix
    broken = _inventory({**base_env(ansible_home), **wrong}, path)
    assert broken.returncode != 0, f"{provider}: a wrong secret still produced an inventory"
    assert "wrong-secret-value" not in broken.stdout + broken.stderr

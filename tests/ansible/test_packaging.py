"""The collection as users get it (built with ansible-galaxy, installed into a fresh path, run from there) and its
release metadata: galaxy.yml, meta/runtime.yml, changelog fragments, docs that ansible-doc renders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import yaml
from ansible.release import __version__ as ansible_core_version
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import gpucloud

from .conftest import COLLECTION, ROOT, ansible_binary, base_env

GALAXY = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MODULES = sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
INVENTORIES = sorted(p.stem for p in (COLLECTION / "plugins" / "inventory").glob("*.py") if p.stem != "__init__")


def test_galaxy_build_install_and_run(emulator_env: dict[str, str], tmp_path: Path) -> None:
    built = subprocess.run(
        [ansible_binary("ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path", str(tmp_path)],
        env=emulator_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (tarball,) = tmp_path.glob("gpucloud-cloud-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "plugins/modules/instance.py" in names and "meta/runtime.yml" in names
    assert "plugins/inventory/gpucloud.py" in names and "requirements.txt" in names
    assert not [n for n in names if n.startswith("tests/output")]

    target = tmp_path / "installed"
    installed = subprocess.run(
        [
            ansible_binary("ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--force",
            "-p",
            str(target),
            str(tarball),
        ],
        env=emulator_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (target / "ansible_collections" / "gpucloud" / "cloud" / "plugins" / "modules" / "instance.py").exists()

    env = {**emulator_env, "ANSIBLE_COLLECTIONS_PATH": str(target), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.oneline"
    listed = subprocess.run(
        [ansible_binary("ansible-doc"), "--list", "gpucloud.cloud", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    modules = json.loads(listed.stdout)
    assert {
        f"gpucloud.cloud.{m}" for m in ("instance", "volume", "ssh_key", "offer_info", "image_info", "location_info")
    } <= set(modules)

    ran = subprocess.run(
        [ansible_binary("ansible"), "localhost", "-m", "gpucloud.cloud.offer_info", "-a", "gpu_model=h100"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout and '"offers": [{' in ran.stdout and "h100" in ran.stdout.lower()


def test_galaxy_metadata_is_complete_and_matches_the_python_package() -> None:
    for key in ("namespace", "name", "version", "readme", "authors", "description", "license", "repository"):
        assert GALAXY.get(key), f"galaxy.yml lacks {key}"
    assert "dependencies" in GALAXY and "build_ignore" in GALAXY
    # One version: the Python package's (read by hatch from __about__.py) is the collection's too.
    assert GALAXY["version"] == gpucloud.__version__
    assert GALAXY["license"] == [PYPROJECT["project"]["license"]]
    urls = PYPROJECT["project"]["urls"]
    assert (GALAXY["repository"], GALAXY["documentation"], GALAXY["issues"]) == (
        urls["Repository"],
        urls["Documentation"],
        urls["Issues"],
    )
    # The collection's own Python requirement admits the package release it ships with.
    requirements = [
        Requirement(line)
        for line in (COLLECTION / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    (package,) = [r for r in requirements if r.name == "gpucloud"]
    assert package.specifier.contains(gpucloud.__version__)


def test_every_collection_used_in_examples_is_a_dependency() -> None:
    """A module of another collection in EXAMPLES means users need that collection: galaxy.yml must say so."""
    used: set[str] = set()
    for plugin in (COLLECTION / "plugins").glob("*/*.py"):
        examples = re.search(r'^EXAMPLES = r"""\n(.*?)"""', plugin.read_text(), re.S | re.M)
        if not examples or plugin.parent.name != "modules":
            continue
        for task in yaml.safe_load(examples.group(1)):
            used |= {".".join(key.split(".")[:2]) for key in task if key.count(".") == 2}
    assert used, "no fully qualified module found in any EXAMPLES"
    needed = used - {"ansible.builtin", f"{GALAXY['namespace']}.{GALAXY['name']}"}
    assert needed <= set(GALAXY["dependencies"]), f"add to galaxy.yml dependencies: {needed}"


def test_runtime_requires_this_ansible_and_groups_every_module() -> None:
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    requires = SpecifierSet(runtime["requires_ansible"])
    assert requires.contains(ansible_core_version), f"ansible-core {ansible_core_version} is outside {requires}"
    (extra,) = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["ansible"]]
    assert str(extra.specifier).removeprefix(">=") in str(requires), "the ansible extra and requires_ansible differ"
    assert sorted(runtime["action_groups"]["all"]) == MODULES


def test_ansible_doc_renders_every_module_and_plugin(ansible_home: Path) -> None:
    env = base_env(ansible_home)
    listed = subprocess.run(
        [ansible_binary("ansible-doc"), "--list", "--json", "-t", "module", "gpucloud.cloud"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    # ansible-doc --list leaves out a plugin whose DOCUMENTATION does not parse: every file must be listed.
    assert sorted(json.loads(listed.stdout)) == [f"gpucloud.cloud.{m}" for m in MODULES]
    for kind, names, needs in (("module", MODULES, ("doc", "examples", "return")), ("inventory", INVENTORIES, ())):
        fqcns = [f"gpucloud.cloud.{name}" for name in names]
        dumped = subprocess.run(
            [ansible_binary("ansible-doc"), "--json", "-t", kind, *fqcns],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dumped.returncode == 0 and "WARNING" not in dumped.stderr, dumped.stderr
        docs = json.loads(dumped.stdout)
        assert sorted(docs) == fqcns
        for fqcn, doc in docs.items():
            assert doc["doc"]["short_description"] and doc["doc"]["description"] and doc["examples"], fqcn
            assert Version(doc["doc"]["version_added"]) <= Version(GALAXY["version"]), f"{fqcn}: version_added"
            for part in needs:
                assert doc[part], f"{fqcn} has no {part.upper()}"
            # The examples are YAML that parses (inventory examples are one inventory file).
            assert yaml.safe_load(doc["examples"]), fqcn
        # The text rendering users read (a markup error fails here, not in --json).
        text = subprocess.run(
            [ansible_binary("ansible-doc"), "-t", kind, *fqcns], env=env, capture_output=True, text=True, timeout=120
        )
        assert text.returncode == 0 and "ERROR" not in text.stderr, text.stderr
        assert all(fqcn in text.stdout for fqcn in fqcns)


def test_changelog_fragments_lint_and_release(ansible_home: Path, tmp_path: Path) -> None:
    """antsibull-changelog accepts the fragments, and a release of this version turns them into CHANGELOG.rst."""
    changelog = ansible_binary("antsibull-changelog")
    config = yaml.safe_load((COLLECTION / "changelogs" / "config.yaml").read_text())
    assert config["title"] == f"{GALAXY['namespace']}.{GALAXY['name']}"
    fragments = sorted((COLLECTION / "changelogs" / "fragments").glob("*.yml"))
    assert fragments, "changes need a fragment in changelogs/fragments"
    env = base_env(ansible_home)
    lint = subprocess.run([changelog, "lint"], cwd=COLLECTION, env=env, capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr

    # Release in a copy: the repository keeps unreleased fragments until the maintainers cut a release.
    copy = tmp_path / "ansible_collections" / "gpucloud" / "cloud"
    shutil.copytree(COLLECTION, copy, ignore=shutil.ignore_patterns("output", "__pycache__", ".plugin-cache.yaml"))
    release = subprocess.run(
        [changelog, "release", "--version", GALAXY["version"], "--date", "2026-01-01"],
        cwd=copy,
        env={**env, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert release.returncode == 0, release.stdout + release.stderr
    rendered = (copy / "CHANGELOG.rst").read_text()
    assert f"v{GALAXY['version']}" in rendered
    released = yaml.safe_load((copy / "changelogs" / "changelog.yaml").read_text())["releases"][GALAXY["version"]]
    assert sorted(released["fragments"]) == [f.name for f in fragments]
    # The release lists every module and the inventory plugin as new in this version.
    assert {m["name"] for m in released["modules"]} == set(MODULES)
    assert {p["name"] for p in released["plugins"]["inventory"]} == set(INVENTORIES)


def test_collection_metadata_passes_ansible_lint_schemas(ansible_home: Path) -> None:
    """galaxy.yml, meta/*.yml and the changelog files against ansible-lint's schemas (production profile)."""
    files = ["galaxy.yml", "meta/runtime.yml", "meta/execution-environment.yml", "changelogs/changelog.yaml"]
    files += [str(p.relative_to(COLLECTION)) for p in sorted((COLLECTION / "changelogs" / "fragments").glob("*"))]
    linted = subprocess.run(
        [ansible_binary("ansible-lint"), "--offline", "--nocolor", "--profile", "production", *files],
        cwd=COLLECTION,
        env=base_env(ansible_home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert f"in {len(files)} files processed" in linted.stderr, linted.stderr

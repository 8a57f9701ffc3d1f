"""The Python package as users get it: ``python -m build`` makes an sdist and a wheel (the wheel built from the
sdist, so a file missing from the sdist breaks it), and the wheel installs and runs in a fresh virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import gpucloud

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = gpucloud.__version__


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: hatchling comes from the dev extra, so the build needs no index.
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def test_sdist_has_the_sources_and_nothing_else(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    assert sdist.name == f"gpucloud-{VERSION}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO", "shared/gpucloud/__about__.py"} <= names
    assert "pulumi_gpucloud/__init__.py" in names and "shared/gpucloud/emulator/app.py" in names
    top = {name.split("/")[0] for name in names}
    assert top <= {"shared", "pulumi_gpucloud", "README.md", "LICENSE", "pyproject.toml", "PKG-INFO", ".gitignore"}, top


def test_wheel_metadata_version_and_entry_point(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == f"gpucloud-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"gpucloud-{VERSION}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {name.split("/")[0] for name in names} == {"gpucloud", "pulumi_gpucloud", info}
    assert "gpucloud/providers/voltagepark.py" in names and "gpucloud/emulator/sshd.py" in names
    # PEP 561: type checkers use our annotations; the license travels with the wheel.
    assert {"gpucloud/py.typed", "pulumi_gpucloud/py.typed", f"{info}/licenses/LICENSE"} <= set(names)
    # The version has one source (__about__.py, read by hatch); the metadata carries it.
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == PYPROJECT["project"]["requires-python"]
    requires = metadata.get_all("Requires-Dist") or []
    assert set(PYPROJECT["project"]["dependencies"]) <= set(requires)
    assert "gpucloud = gpucloud.cli:app" in entry_points


def test_wheel_installs_imports_and_runs_in_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    """gpucloud, pulumi_gpucloud and the console script come from the wheel alone.

    Third-party dependencies are borrowed read-only from the test interpreter's site-packages through a path
    entry (installing them from an index would make this slow and network-bound). A .pth file's path lines are
    not site directories, so the editable install of the source tree living there is not activated.
    """
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    Path(site, "zz_borrowed_dependencies.pth").write_text(deps + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPUCLOUD_", "PYTHON"))}
    env["GPUCLOUD_CONFIG"] = str(tmp_path / "none.toml")
    probe = (
        "import gpucloud, pulumi_gpucloud, gpucloud.emulator, gpucloud.cli, sys; "
        "print(gpucloud.__version__, gpucloud.__file__, pulumi_gpucloud.__file__, gpucloud.emulator.__file__); "
        f"assert not {{{str(ROOT)!r}, {str(ROOT / 'shared')!r}}} & set(sys.path), sys.path"
    )
    imported = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert imported.returncode == 0, imported.stderr
    version, *files = imported.stdout.split()
    assert version == VERSION
    assert all(f.startswith(site) for f in files), files

    script = venv / "bin" / "gpucloud"
    assert script.exists(), "the wheel did not install the gpucloud console script"
    shown = subprocess.run(
        [str(script), "--version"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0 and shown.stdout == f"gpucloud {VERSION}\n", shown.stderr
    listed = subprocess.run(
        [str(script), "providers", "--markdown"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and "| provider |" in listed.stdout, listed.stderr

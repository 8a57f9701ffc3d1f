"""The per-name lock is one lock per API and user, however the URL is spelled and whatever the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpucloud import namelock


@pytest.mark.parametrize(
    "spelling",
    [
        "HTTP://127.0.0.1:8765/voltagepark/api/v1",
        "http://127.0.0.1:8765/voltagepark/api/v1/",
        "http://localhost:8765/voltagepark/api/v1",
        "http://LocalHost:8765//voltagepark/api/v1//",
        "http://[::1]:8765/voltagepark/api/v1",
        "http://127.0.0.1:8765/voltagepark/./api/v1",
    ],
)
def test_spellings_of_one_api_share_a_scope(spelling: str) -> None:
    canonical = namelock.canonical_scope("voltagepark", "http://127.0.0.1:8765/voltagepark/api/v1")
    assert namelock.canonical_scope("voltagepark", spelling) == canonical


def test_default_ports_and_host_case_do_not_matter_but_real_differences_do() -> None:
    scope = namelock.canonical_scope
    assert scope("dc", "https://API.example.com:443/v1/") == scope("dc", "https://api.example.com/v1")
    assert scope("dc", "http://api.example.com:80") == scope("dc", "http://api.example.com/")
    distinct = {
        scope("dc", "https://api.example.com/v1"),
        scope("dc", "http://api.example.com/v1"),
        scope("dc", "https://api.example.com:8443/v1"),
        scope("dc", "https://api.example.com/v2"),
        scope("dc", "https://other.example.com/v1"),
        scope("vp", "https://api.example.com/v1"),
    }
    assert len(distinct) == 6


def test_lock_dir_ignores_home_xdg_and_tmpdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(namelock.ENV, raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    plain = namelock.lock_dir()
    for variable in ("XDG_RUNTIME_DIR", "HOME", "TMPDIR"):
        monkeypatch.setenv(variable, str(tmp_path))
        assert namelock.lock_dir() == plain, variable
    monkeypatch.setenv(namelock.ENV, str(tmp_path / "explicit"))
    assert namelock.lock_dir() == tmp_path / "explicit"  # the one override that counts


def test_a_lock_dir_planted_in_tmp_by_someone_else_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    monkeypatch.delenv(namelock.ENV, raising=False)
    monkeypatch.setattr(namelock, "_home_from_passwd", lambda: None)
    monkeypatch.setattr(namelock, "_shared_tmp_dir", lambda: planted)
    assert namelock.lock_dir() == planted
    with (
        pytest.raises(namelock.errors.ValidationError, match=namelock.ENV),
        namelock.name_lock("vp:http://x", "instance", "n", timeout=1),
    ):
        pass
    assert os.listdir(planted) == []

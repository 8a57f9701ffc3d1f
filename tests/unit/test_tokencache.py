"""The opt-in OAuth token cache (gpucloud.tokencache): a later process reuses a fresh token instead of asking the
token endpoint again, and the file it writes holds nothing but that token, readable by its owner only."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gpucloud import config
from gpucloud.auth import OAuth2ClientCredentials
from gpucloud.emulator import EmulatorServer
from gpucloud.tokencache import TokenCache, token_cache_for
from tests.conftest import connect
from tests.unit.test_transport import FakeTokenServer, transport

TOKEN_URL = "http://api.test/v1/oauth2/token"


class Wall:
    """A settable wall clock (the cache keeps expiry in wall time: processes share no monotonic clock)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def process(
    server: FakeTokenServer, directory: Path, wall: Wall, secret: str = "csecret", client_id: str = "cid"
) -> OAuth2ClientCredentials:
    """What one short-lived process builds: a fresh flow (nothing in memory) over the shared cache directory."""
    cache = TokenCache.for_identity(
        "test", TOKEN_URL, (client_id, None), (secret, None), directory=directory, wall=wall
    )
    return OAuth2ClientCredentials(TOKEN_URL, client_id, secret, provider="test", cache=cache)


def call(server: FakeTokenServer, auth: OAuth2ClientCredentials) -> object:
    return transport(server, auth=auth).get_json("balance")


def test_a_later_process_reuses_the_token_without_a_grant(tmp_path: Path) -> None:
    server, wall = FakeTokenServer(), Wall()
    call(server, process(server, tmp_path, wall))
    wall.now += 600  # ten minutes later, the next task
    second = process(server, tmp_path, wall)
    assert call(server, second) == {"ok": True}
    assert server.grants == ["client_credentials"], "the second process asked for no token"
    assert second.token_requests == 0


def test_the_file_is_private_and_holds_no_credential_or_refresh_token(tmp_path: Path) -> None:
    server, wall = FakeTokenServer(), Wall()
    directory = tmp_path / "tokens"
    auth = process(server, directory, wall, secret="client-secret-value")
    call(server, auth)
    files = list(directory.iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    text = files[0].read_text()
    assert json.loads(text)["access_token"] == "tok-1"
    assert "client-secret-value" not in text and "r-1" not in text and "cid" not in files[0].name


def test_an_expired_token_is_not_used(tmp_path: Path) -> None:
    server, wall = FakeTokenServer(), Wall()
    call(server, process(server, tmp_path, wall))
    wall.now += 3600 - 30  # inside the early-refresh minute: a new grant, as within one process
    call(server, process(server, tmp_path, wall))
    assert server.grants == ["client_credentials", "client_credentials"]


def test_a_changed_secret_does_not_reuse_the_old_token(tmp_path: Path) -> None:
    server, wall = FakeTokenServer(), Wall()
    call(server, process(server, tmp_path, wall, secret="old-secret"))
    call(server, process(server, tmp_path, wall, secret="new-secret"))
    assert server.grants == ["client_credentials", "client_credentials"]


def test_another_client_id_has_its_own_entry(tmp_path: Path) -> None:
    server, wall = FakeTokenServer(), Wall()
    call(server, process(server, tmp_path, wall, client_id="one"))
    call(server, process(server, tmp_path, wall, client_id="two"))
    assert server.grants == ["client_credentials", "client_credentials"]
    assert len(list(tmp_path.iterdir())) == 2


def test_a_refused_cached_token_is_replaced_once_and_rewritten(tmp_path: Path) -> None:
    server, wall = FakeTokenServer(), Wall()
    call(server, process(server, tmp_path, wall))
    server.valid = set()  # revoked server-side (a new API key generated)
    assert call(server, process(server, tmp_path, wall)) == {"ok": True}
    assert server.grants == ["client_credentials", "client_credentials"]
    call(server, process(server, tmp_path, wall))  # the third process uses the new token from the file
    assert server.grants == ["client_credentials", "client_credentials"]


@pytest.mark.parametrize("spoil", ["readable by others", "symlink", "garbage"])
def test_a_file_that_is_not_our_private_json_is_ignored(tmp_path: Path, spoil: str) -> None:
    server, wall = FakeTokenServer(), Wall()
    call(server, process(server, tmp_path, wall))
    (path,) = list(tmp_path.iterdir())
    if spoil == "readable by others":
        path.chmod(0o644)
    elif spoil == "symlink":
        target = tmp_path.parent / f"{tmp_path.name}-elsewhere.json"
        path.rename(target)
        path.symlink_to(target)
    else:
        path.write_text("{not json")
    assert call(server, process(server, tmp_path, wall)) == {"ok": True}
    assert server.grants == ["client_credentials", "client_credentials"]


def test_off_unless_the_config_turns_it_on() -> None:
    values = {"client_id": "cid", "client_secret": "s" * 8}
    off = config.ProviderConfig(provider="datacrunch", **values)
    assert token_cache_for(off, TOKEN_URL) is None
    environ = {"GPUCLOUD_DATACRUNCH_TOKEN_CACHE": "true"}
    on = config.load_config("datacrunch", values, environ=environ, config_path=Path("/nonexistent"))
    assert token_cache_for(on, TOKEN_URL) is not None


@pytest.mark.parametrize("provider", ["datacrunch", "computestacks"])
def test_a_second_connection_lists_without_a_token_request(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    emulator: EmulatorServer,
    overrides: dict[str, dict[str, object]],
    provider: str,
) -> None:
    """End to end against the emulator: two connections (two processes' worth) with the cache on; the second
    one's listing is its only request. Without the cache each pays a token request."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for cached in (False, True):
        seen: list[list[str]] = []
        for _ in range(2):
            before = len(emulator.world.requests)
            with connect(overrides, provider, token_cache=cached) as cloud:
                cloud.list_instances()
            seen.append([r.path for r in emulator.world.requests[before:] if r.provider == provider])
        token_requests = [sum("oauth" in path for path in paths) for paths in seen]
        assert token_requests == ([1, 0] if cached else [1, 1]), seen
    assert [p.name for p in (tmp_path / "gpucloud" / "tokens").iterdir() if p.name.startswith(provider)]

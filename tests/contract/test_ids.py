"""Ids are data, never paths: every adapter checks a given id against its provider's id shape before any
request, and escapes every path segment it builds (gpucloud.httputil.url_path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

import gpucloud
from gpucloud.capabilities import Capability
from gpucloud.config import load_config
from gpucloud.emulator import EmulatorServer
from gpucloud.httputil import path_segment, url_path
from gpucloud.providers import implemented, provider_class

from ..conftest import connect
from .specs import INSTANCE

HOSTILE = [
    "../storage/00000000-0000-4000-8000-000000000000",
    "../../../../_emulator/state",
    "x?status=running",
    "x#frag",
    "..",
    ".",
    "",
    "a%2Fb",
    "1 2",
    "line\nbreak",
]
# (capability, call) for every public operation that takes an id.
CALLS: list[tuple[Capability, str, Callable[[gpucloud.Provider, str], Any]]] = [
    (Capability.INSTANCES, "get_instance", lambda c, i: c.get_instance(i)),
    (Capability.INSTANCES, "delete_instance", lambda c, i: c.delete_instance(i)),
    (Capability.INSTANCE_START_STOP, "stop_instance", lambda c, i: c.stop_instance(i)),
    (Capability.VOLUMES, "get_volume", lambda c, i: c.get_volume(i)),
    (Capability.VOLUME_DELETE, "delete_volume", lambda c, i: c.delete_volume(i)),
    (Capability.SSH_KEYS, "get_ssh_key", lambda c, i: c.get_ssh_key(i)),
    (Capability.SSH_KEYS, "delete_ssh_key", lambda c, i: c.delete_ssh_key(i)),
]


def test_path_segment_keeps_an_id_one_segment() -> None:
    assert path_segment("../storage/x") == "..%2Fstorage%2Fx"
    assert path_segment("..") == "%2E%2E" and path_segment(".") == "%2E"
    assert path_segment("a?b#c%d e") == "a%3Fb%23c%25d%20e"
    assert path_segment("inst_9x7k-2") == "inst_9x7k-2"  # ordinary ids are untouched
    assert url_path("projects/{p}/services/{s}", p=7, s="a/b") == "projects/7/services/a%2Fb"


@pytest.mark.parametrize("provider", implemented())
def test_hostile_ids_fail_naming_the_field_before_any_request(
    provider: str, overrides: dict[str, dict[str, object]], emulator: EmulatorServer
) -> None:
    world = emulator.world
    with connect(overrides, provider) as cloud:
        calls = [(name, call) for capability, name, call in CALLS if cloud.supports(capability)]
        assert calls
        before = world.request_count()
        for name, call in calls:
            for hostile in HOSTILE:
                with pytest.raises(gpucloud.ValidationError) as info:
                    call(cloud, hostile)
                assert info.value.field == "id", (name, hostile)
                assert f"id {hostile!r} is not a {provider}" in str(info.value), (name, hostile, str(info.value))
        assert world.request_count() == before, [r.full_path for r in world.requests[before:]]


@pytest.mark.parametrize("provider", implemented())
def test_every_declared_shape_accepts_the_ids_the_provider_hands_out(
    provider: str, overrides: dict[str, dict[str, object]]
) -> None:
    """Shapes too strict would break every lookup: what the provider reports must pass its own shape."""
    with connect(overrides, provider) as cloud:
        made = cloud.create_instance(gpucloud.InstanceSpec(name=f"id-shape-{provider}", **_instance(provider)))
        try:
            assert cloud.get_instance(made.instance.id).id == made.instance.id
        finally:
            cloud.delete_instance(made.instance.id)


def _instance(provider: str) -> dict[str, Any]:
    return dict(INSTANCE[provider])


@pytest.mark.parametrize("provider", implemented())
def test_every_adapter_escapes_the_ids_it_puts_in_paths(provider: str) -> None:
    """Below the shape check, the wire operations still escape: an id reaches the server as one segment."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):  # OAuth providers log in first
            token = {"access_token": "t", "refresh_token": "r", "token_type": "Bearer", "expires_in": 3600}
            return httpx.Response(200, json={**token, "scope": "public", "created_at": 0})
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, json={})

    cls = provider_class(provider)
    credentials = {"token": "cn_test_x", "client_id": "id", "client_secret": "secret", "username": "u", "password": "p"}
    wanted = {k: v for k, v in credentials.items() if k in ("token",) or provider in ("datacrunch", "computestacks")}
    config = load_config(provider, {"base_url": "http://127.0.0.1:9/api", "max_retries": 0, **wanted}, environ={})
    cloud = cls(config, http_transport=httpx.MockTransport(answer))
    with pytest.raises(gpucloud.GpuCloudError):
        cloud._get_instance("../a?b")  # the wire operation itself, past the id check
    assert seen, "no request was sent"
    assert all("../a" not in path and "?b" not in path for path in seen), seen
    assert any("..%2Fa%3Fb" in path for path in seen), seen

"""The provider process keeps one adapter per provider and settings across RPCs; other settings get their own.

Observable at the API: an OAuth provider (DataCrunch) fetches its access token once per provider process instead of
once per RPC. Other settings (credentials) never share an adapter built for different ones.
"""

from __future__ import annotations

from gpucloud.emulator import EmulatorServer
from pulumi_gpucloud._provider import _adapter

from ..contract.specs import INSTANCE
from .conftest import PROVIDERS, unique, up
from .harness import DynamicProviderHarness, program_inputs

PROVIDER = "datacrunch"
TYPE = "pulumi-python:dynamic/gpucloud:Instance"


def _calls_since(emulator: EmulatorServer, mark: int) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emulator.world.requests[mark:] if r.provider == PROVIDER]


def test_rpcs_share_one_adapter_and_its_token(harness: DynamicProviderHarness, emulator: EmulatorServer) -> None:
    props = {"provider": PROVIDER, "name": unique("reuse"), **INSTANCE[PROVIDER]}
    state = up(harness, "instance", props["name"], props).state  # authenticates once, on its first call
    news, failures = harness.check(TYPE, props["name"], state.inputs, program_inputs(PROVIDERS["instance"], props))
    assert failures == []

    mark = len(emulator.world.requests)
    assert harness.read(state) is not None
    assert harness.diff(state, news).kind == "none"
    assert harness.read(state) is not None
    calls = _calls_since(emulator, mark)
    assert calls == [("GET", f"/instances/{state.id}")] * 2, "no token request: the token from Create is reused"

    harness.destroy(state)


def test_adapters_are_keyed_by_provider_and_settings(overrides: dict[str, dict[str, object]]) -> None:
    """Other settings (e.g. another stack's credentials in the same process) never get a cached adapter."""
    settings = {k: str(v) for k, v in overrides[PROVIDER].items()}
    first = _adapter(PROVIDER, settings)
    assert _adapter(PROVIDER, dict(reversed(list(settings.items())))) is first
    other = _adapter(PROVIDER, {**settings, "client_secret": "another-secret"})
    assert other is not first
    assert other.config.secret("client_secret") == "another-secret"
    assert first.config.secret("client_secret") == settings["client_secret"]
    assert _adapter("dcdncloud", {k: str(v) for k, v in overrides["dcdncloud"].items()}).name == "dcdncloud"

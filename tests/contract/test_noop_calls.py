"""What an idempotent run costs in API calls: a fresh client (as each Ansible task builds one) asking for an
instance that already exists makes the fewest requests each API allows, and still sees drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpucloud import Conflict, InstanceSpec
from gpucloud.emulator import EmulatorServer
from gpucloud.ensure import ensure_instance, ensure_instance_absent
from gpucloud.providers.voltagepark import shape_name
from gpucloud.reconcile import Action
from tests.conftest import connect

from .specs import INSTANCE

BARE_METAL = "baremetal-8x-h100-sxm5-80gb-infiniband"

# (method, path) of every request a no-op makes, sorted: requests sent at once arrive in any order.
NOOP_CALLS: dict[str, list[tuple[str, str]]] = {
    "dcdncloud": [("GET", "/instances")],
    "cloudnexus": [("GET", "/compute/instances")],
    "datacrunch": [("GET", "/instances"), ("POST", "/oauth2/token")],
    # The VM list and the hostnode -> location map, at once; the type is matched on the VM's own resources.
    "voltagepark": [("GET", "/locations/"), ("GET", "/virtual-machines/")],
    # The service list, then the bastion of the found service's project only (not every project's).
    "computestacks": [
        ("GET", "/api/container_services"),
        ("GET", "/api/projects/{id}/bastions"),
        ("POST", "/api/oauth/token"),
    ],
}


def _calls(emulator: EmulatorServer, provider: str, since: int) -> list[tuple[str, str]]:
    records = [r for r in emulator.world.requests[since:] if r.provider == provider]
    # Per-project paths carry an id; the shape of the call is what is pinned.
    bastions = "/api/projects/{id}/bastions"
    return sorted((r.method, bastions if r.path.endswith("/bastions") else r.path) for r in records)


def _existing(overrides: dict[str, dict[str, object]], provider: str, name: str) -> InstanceSpec:
    spec = InstanceSpec(name=name, **INSTANCE[provider])
    with connect(overrides, provider) as cloud:
        ensure_instance(cloud, spec, wait=True, wait_timeout=60)
    return spec


@pytest.mark.parametrize("provider", sorted(NOOP_CALLS))
def test_noop_run_makes_the_fewest_calls_the_api_allows(
    provider: str, emulator: EmulatorServer, overrides: dict[str, dict[str, object]]
) -> None:
    spec = _existing(overrides, provider, f"noop-calls-{provider}")
    since = len(emulator.world.requests)
    with connect(overrides, provider) as cloud:  # a fresh client: a new token where the API needs one
        outcome = ensure_instance(cloud, spec, wait=True, wait_timeout=60)
    assert not outcome.changed and outcome.action is Action.NONE
    assert _calls(emulator, provider, since) == NOOP_CALLS[provider]


@pytest.mark.parametrize("provider", ["datacrunch", "computestacks"])
def test_noop_run_with_the_token_cache_skips_the_token_request(
    provider: str,
    emulator: EmulatorServer,
    overrides: dict[str, dict[str, object]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the opt-in token cache (gpucloud.tokencache) a fresh client reuses the token an earlier one obtained:
    its no-op makes the same calls but the token request."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = _existing(overrides, provider, f"noop-calls-cached-{provider}")
    with connect(overrides, provider, token_cache=True) as cloud:  # fills the cache
        ensure_instance(cloud, spec, wait=True, wait_timeout=60)
    since = len(emulator.world.requests)
    with connect(overrides, provider, token_cache=True) as cloud:  # the next task's fresh client
        outcome = ensure_instance(cloud, spec, wait=True, wait_timeout=60)
    assert not outcome.changed and outcome.action is Action.NONE
    assert _calls(emulator, provider, since) == [c for c in NOOP_CALLS[provider] if c[0] != "POST"]


def test_voltagepark_type_named_otherwise_is_looked_up_and_drift_is_seen(
    emulator: EmulatorServer, overrides: dict[str, dict[str, object]]
) -> None:
    """Only the VM's own short shape skips the preset list: a preset id goes through the catalogue (and still
    matches), and another shape is drift."""
    spec = _existing(overrides, "voltagepark", "noop-calls-vp-spelling")
    with connect(overrides, "voltagepark") as cloud:
        current = cloud.find_instance(spec.name)
        assert current is not None
        preset = next(p for p in cloud._presets() if shape_name(p["resources"]) == current.instance_type)
        since = len(emulator.world.requests)
        by_id = ensure_instance(cloud, spec.model_copy(update={"instance_type": preset["id"]}), check_mode=True)
        assert not by_id.changed
        assert ("GET", "/instant-deploy-presets/") in _calls(emulator, "voltagepark", since)
        bigger = spec.model_copy(update={"instance_type": "8x-h100-sxm5-80gb"})
        with pytest.raises(Conflict, match="instance_type") as refused:  # a replacement, refused without force
            ensure_instance(cloud, bigger, check_mode=True)
        assert refused.value.details == {"fields": ["instance_type"]}


def test_voltagepark_reads_the_other_kinds_list_only_when_the_name_is_not_in_its_own(
    emulator: EmulatorServer, overrides: dict[str, dict[str, object]]
) -> None:
    """VMs and bare-metal rentals are two lists: a no-op reads its own kind's, while a name missing there is
    still looked up among the other kind (a VM spec never creates a second instance of a rental's name)."""
    rental = InstanceSpec(name="noop-calls-vp-rental", kind="bare_metal", instance_type=BARE_METAL)
    with connect(overrides, "voltagepark") as cloud:
        try:
            made = ensure_instance(cloud, rental, wait=True, wait_timeout=60)
            assert made.action is Action.CREATE
            since = len(emulator.world.requests)
            assert ensure_instance(cloud, rental, wait=True, wait_timeout=60).action is Action.NONE
            assert _calls(emulator, "voltagepark", since) == [("GET", "/bare-metal/")]  # no VM list, no locations
            since = len(emulator.world.requests)
            vm_of_that_name = InstanceSpec(name=rental.name, **INSTANCE["voltagepark"])
            with pytest.raises(Conflict, match="kind"):  # found among the rentals: a replacement, not a 2nd create
                ensure_instance(cloud, vm_of_that_name, check_mode=True)
            assert ("GET", "/bare-metal/") in _calls(emulator, "voltagepark", since)
        finally:
            gone = ensure_instance_absent(cloud, name=rental.name, wait_timeout=60)  # no kind given: found anyway
        assert gone.changed and cloud.find_instance(rental.name) is None

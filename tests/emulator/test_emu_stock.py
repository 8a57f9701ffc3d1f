"""Stock controls of the control API (``/_emulator/stock``), over HTTP: exhaust after N creates, flap, a stale
catalogue, and each provider's create path honouring them."""

from __future__ import annotations

import httpx
import pytest

import gpucloud
from gpucloud import InstanceSpec
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides

from ..contract.specs import INSTANCE

# Each provider's type as its offers name it (Voltage Park: the machine shape, not a per-OS preset).
OFFERED_TYPE = {
    "datacrunch": INSTANCE["datacrunch"]["instance_type"],
    "voltagepark": "1x-h100-sxm5-80gb-26vcpu-120gb",
    "dcdncloud": INSTANCE["dcdncloud"]["instance_type"],
    "cloudnexus": INSTANCE["cloudnexus"]["instance_type"],
    "computestacks": INSTANCE["computestacks"]["instance_type"],
}


def _stock(emu: EmulatorServer, **body: object) -> httpx.Response:
    return httpx.post(f"{emu.url}/_emulator/stock", json=body, headers=emu.control_headers, timeout=10)


def _outcomes(emu: EmulatorServer, provider: str, creates: int) -> list[str]:
    options = client_overrides(emu.url, emu.settings)[provider]
    results = []
    with gpucloud.connect(provider, **options, max_retries=0) as cloud:
        for index in range(creates):
            spec = InstanceSpec(name=f"stock-{index}", **INSTANCE[provider])
            try:
                cloud.create_instance(spec)
                results.append("created")
            except gpucloud.GpuCloudError as exc:
                results.append(type(exc).__name__)
    return results


@pytest.mark.parametrize("provider", sorted(OFFERED_TYPE))
def test_stock_is_exhausted_after_n_creates_on_every_provider(emu: EmulatorServer, provider: str) -> None:
    assert _stock(emu, provider=provider, instance_type=OFFERED_TYPE[provider], left=2).status_code == 200
    outcomes = _outcomes(emu, provider, 3)
    assert outcomes[:2] == ["created", "created"] and outcomes[2] != "created"
    state = httpx.get(f"{emu.url}/_emulator/stock", headers=emu.control_headers, timeout=10).json()
    control = state[provider][OFFERED_TYPE[provider]]
    assert (control["left"], control["taken"], control["flap"], control["stale_catalogue"]) == (0, 2, False, False)


def test_flapping_stock_refuses_every_other_create_starting_with_the_first(emu: EmulatorServer) -> None:
    _stock(emu, provider="dcdncloud", instance_type="s-small", flap=True)
    assert _outcomes(emu, "dcdncloud", 4) == ["NoCapacity", "created", "NoCapacity", "created"]


def test_the_catalogue_hides_exhausted_stock_unless_it_is_stale(emu: EmulatorServer) -> None:
    options = client_overrides(emu.url, emu.settings)["datacrunch"]
    itype = OFFERED_TYPE["datacrunch"]
    with gpucloud.connect("datacrunch", **options) as cloud:

        def shown() -> bool:
            return next(o for o in cloud.list_offers() if o.instance_type == itype).available

        assert shown()
        _stock(emu, provider="datacrunch", instance_type=itype, left=0)
        assert not shown()
        _stock(emu, provider="datacrunch", instance_type=itype, left=0, stale_catalogue=True)
        assert shown()
        httpx.delete(f"{emu.url}/_emulator/stock", headers=emu.control_headers, timeout=10)
        assert shown() and _outcomes(emu, "datacrunch", 1) == ["created"]


def test_stock_control_refuses_an_unknown_provider_and_a_missing_token(emu: EmulatorServer) -> None:
    assert _stock(emu, provider="nosuchcloud", instance_type="x", left=1).status_code == 404
    assert _stock(emu, provider="datacrunch", instance_type="x", left=-1).status_code == 422
    bare = httpx.post(f"{emu.url}/_emulator/stock", json={"provider": "datacrunch", "instance_type": "x"}, timeout=10)
    assert bare.status_code == 401

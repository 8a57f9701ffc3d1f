"""The fault controls this suite added to the emulator, over its control API and the provider wire."""

from __future__ import annotations

import httpx

from gpucloud.emulator import EmulatorServer, EmulatorSettings, Faults, World


def test_error_on_create_false_spares_creates_only() -> None:
    world = World(EmulatorSettings(faults=Faults(error_rate=1.0, error_on_create=False), rate_limits={}))
    assert world.decide_fault("voltagepark", is_auth=False, is_create=True).reject is None
    assert world.decide_fault("voltagepark", is_auth=False, is_create=False).reject == "error"


def test_create_error_burst_fails_the_next_creates_only() -> None:
    world = World(EmulatorSettings(faults=Faults(create_error_burst=2), rate_limits={}))
    verdicts = [
        world.decide_fault("datacrunch", is_auth=False, is_create=create).reject
        for create in (False, True, False, True, True)
    ]
    assert verdicts == [None, "error", None, "error", None]


def test_reject_auth_and_revoked_tokens_over_the_wire(fault_emulator: EmulatorServer) -> None:
    control = httpx.Client(
        base_url=fault_emulator.url + "/_emulator", headers=fault_emulator.control_headers, timeout=10
    )
    api = httpx.Client(base_url=fault_emulator.base_url("datacrunch"), timeout=10)
    grant = {"grant_type": "client_credentials", **fault_emulator.credentials["datacrunch"]}
    try:
        token = api.post("/oauth2/token", json=grant).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert api.get("/balance", headers=headers).status_code == 200
        assert control.post("/revoke-access-tokens", json={"provider": "datacrunch"}).json() == {
            "revoked": "datacrunch"
        }
        revoked = api.get("/balance", headers=headers)
        assert revoked.status_code == 401 and revoked.json()["message"] == "Access token is invalid"
        assert control.post("/faults", json={"reject_auth": True}).json()["reject_auth"] is True
        refused = api.post("/oauth2/token", json=grant)
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized_request"
        assert fault_emulator.world.requests[-1].fault == "auth"
        assert token in fault_emulator.world.issued_tokens()
    finally:
        control.post("/faults", json={"reject_auth": False})
        control.close()
        api.close()

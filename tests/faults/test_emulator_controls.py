"""The fault controls this suite added to the emulator, over its control API and the provider wire."""

from __future__ import annotations

import httpx
import pytest

from gpucloud.emulator import EmulatorServer, EmulatorSettings, FaultRule, Faults, World


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


def _verdicts(world: World, requests: list[tuple[str, str]], *, auth: bool = False) -> list[str | None]:
    return [
        world.decide_fault("datacrunch", is_auth=auth, is_create=False, method=method, path=path).reject
        for method, path in requests
    ]


def test_fault_rules_fail_requests_by_their_count_among_the_matching_ones() -> None:
    put_2nd = FaultRule("error", methods=("PUT",), nth=(2,))
    every_3rd_get = FaultRule("rate_limit_burst", methods=("GET",), path="/instances", every=3)
    world = World(EmulatorSettings(faults=Faults(rules=(put_2nd, every_3rd_get)), rate_limits={}))
    requests = [("GET", "/instances"), ("PUT", "/instances"), ("GET", "/balance"), ("GET", "/instances/x")]
    requests += [("PUT", "/instances"), ("GET", "/instances"), ("PUT", "/instances"), ("GET", "/instances")]
    # GETs under /instances: 1st, 2nd (/instances/x), 3rd -> 429, 4th; PUTs: 1st, 2nd -> 500, 3rd; /balance: none.
    assert _verdicts(world, requests) == [None, None, None, None, "error", "rate_limit_burst", None, None]
    limited = world.decide_fault("datacrunch", is_auth=False, is_create=False, method="GET", path="/instances")
    assert limited.reject is None  # the 5th matching GET
    world.set_faults(rules=[put_2nd])  # new rules: counting starts again
    assert _verdicts(world, [("PUT", "/instances")] * 3) == [None, "error", None]


def test_fault_rules_spare_auth_and_other_providers_and_leave_the_dice_alone() -> None:
    every_put = FaultRule("error", methods=("PUT", "POST"), every=1, provider="datacrunch")
    world = World(EmulatorSettings(faults=Faults(rules=(every_put,)), rate_limits={}))
    assert _verdicts(world, [("POST", "/oauth2/token")], auth=True) == [None]
    assert world.decide_fault("voltagepark", is_auth=False, is_create=False, method="PUT", path="/x").reject is None
    # The same seed gives the same dice for the GETs whether or not ruled PUTs are interleaved between them.
    plain = World(EmulatorSettings(faults=Faults(error_rate=0.5, seed=5), rate_limits={}))
    ruled = World(EmulatorSettings(faults=Faults(error_rate=0.5, seed=5, rules=(every_put,)), rate_limits={}))
    gets = _verdicts(plain, [("GET", "/instances")] * 12)
    mixed = _verdicts(ruled, [("GET", "/instances"), ("PUT", "/instances")] * 12)
    assert mixed[1::2] == ["error"] * 12 and mixed[::2] == gets and "error" in gets and None in gets


def test_fault_rule_needs_a_count() -> None:
    with pytest.raises(ValueError, match="nth"):
        FaultRule("error", methods=("GET",))
    with pytest.raises(ValueError, match="from 1"):
        FaultRule("error", nth=(0,))


def test_fault_rules_over_the_control_api_and_the_wire(fault_emulator: EmulatorServer) -> None:
    control = httpx.Client(
        base_url=fault_emulator.url + "/_emulator", headers=fault_emulator.control_headers, timeout=10
    )
    api = httpx.Client(base_url=fault_emulator.base_url("voltagepark"), timeout=10)
    headers = {"Authorization": f"Bearer {fault_emulator.credentials['voltagepark']['token']}"}
    try:
        assert control.post("/faults", json={"rules": [{"fault": "error"}]}).status_code == 422
        rules = [
            {"fault": "error", "methods": ["get"], "nth": [2]},
            {"fault": "rate_limit_burst", "methods": ["GET"], "nth": [3]},
        ]
        assert control.post("/faults", json={"rules": rules}).json()["rules"][0]["methods"] == ["GET"]
        statuses = [api.get("/locations/", headers=headers) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 500, 429, 200]
        assert statuses[2].headers["retry-after"] == "1"
        assert [r.fault for r in fault_emulator.world.requests[-4:]] == [None, "error", "rate_limit_burst", None]
        assert control.get("/faults").json()["rules"][1]["nth"] == [3]
    finally:
        control.post("/faults", json={"rules": []})
        control.close()
        api.close()

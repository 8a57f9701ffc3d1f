"""Each documented error answer surfaces as its class in our hierarchy, with the provider's code and status."""

from typing import Any

import pytest

import gpucloud
from gpucloud import InstanceSpec

from ..conftest import connect
from .specs import INSTANCE

DC_SPEC = InstanceSpec(name="errors-dc", **INSTANCE["datacrunch"])


def test_wrong_credentials_are_one_clear_auth_error(overrides: dict, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    before = world.request_count(provider="datacrunch")
    with (
        connect(overrides, "datacrunch", client_secret="wrong-secret") as cloud,
        pytest.raises(gpucloud.AuthError) as info,
    ):
        cloud.list_instances()
    assert info.value.status_code in (400, 401) and "wrong-secret" not in str(info.value)
    assert world.request_count(provider="datacrunch") - before == 1  # no retry storm
    with connect(overrides, "voltagepark", token="wrong-token") as cloud, pytest.raises(gpucloud.AuthError) as info:
        cloud.list_instances()
    assert info.value.status_code == 401 and "wrong-token" not in str(info.value)


def test_missing_credentials_name_the_variable(overrides: dict) -> None:
    with pytest.raises(gpucloud.AuthError, match="GPUCLOUD_VOLTAGEPARK_TOKEN"):
        gpucloud.connect("voltagepark", base_url=overrides["voltagepark"]["base_url"], token="")


def test_datacrunch_insufficient_funds(overrides: dict, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    world.set_balance("datacrunch", 0.0)
    try:
        with connect(overrides, "datacrunch") as cloud, pytest.raises(gpucloud.InsufficientFunds) as info:
            cloud.create_instance(DC_SPEC)
        assert (info.value.status_code, info.value.code) == (402, "insufficient_funds")
    finally:
        world.set_balance("datacrunch", 1000.0)


def _dc_orders(world: Any) -> int:
    return int(world.request_count(provider="datacrunch", method="POST", path_prefix="/datacrunch/v1/instances"))


def test_datacrunch_out_of_stock_is_refused_before_the_order(overrides: dict, emulator: object) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    world.set_capacity("datacrunch", DC_SPEC.instance_type, DC_SPEC.location, False)
    try:
        with connect(overrides, "datacrunch") as cloud:
            before = _dc_orders(world)
            with pytest.raises(gpucloud.NoCapacity) as info:
                cloud.create_instance(DC_SPEC)
            after = _dc_orders(world)
            offers = {o.instance_type: o for o in cloud.list_offers()}
        # The stock check answers: no order is sent, and the error says where the type is in stock instead.
        assert (info.value.status_code, info.value.code) == (None, "no_capacity")
        assert after == before
        alternatives = info.value.details["alternatives"]
        assert alternatives and DC_SPEC.location not in alternatives
        assert all(loc in str(info.value) for loc in alternatives)
        assert not any(loc.available for loc in offers[DC_SPEC.instance_type].locations if loc.location == "FIN-01")
    finally:
        world.set_capacity("datacrunch", DC_SPEC.instance_type, DC_SPEC.location, True)


def test_datacrunch_order_no_capacity_is_final(overrides: dict, emulator: object) -> None:
    """Stock that runs out between the stock check and the order: the order's 503 is final, not retried."""
    world = emulator.world  # type: ignore[attr-defined]
    try:
        with connect(overrides, "datacrunch") as cloud:
            checked = cloud._check_availability  # type: ignore[attr-defined]

            def sold_out_after_the_check(spec: InstanceSpec) -> None:
                checked(spec)  # the real GET, answered "in stock"
                world.set_capacity("datacrunch", spec.instance_type, spec.location, False)

            cloud._check_availability = sold_out_after_the_check  # type: ignore[attr-defined]
            before = _dc_orders(world)
            with pytest.raises(gpucloud.NoCapacity) as info:
                cloud.create_instance(DC_SPEC)
            after = _dc_orders(world)
            assert cloud.find_instance(DC_SPEC.name) is None  # the refused order left nothing behind
        assert (info.value.status_code, info.value.code) == (503, "service_unavailable")
        assert after - before == 1  # not retried
    finally:
        world.set_capacity("datacrunch", DC_SPEC.instance_type, DC_SPEC.location, True)


def test_datacrunch_invalid_request_maps_to_validation_error(overrides: dict) -> None:
    with connect(overrides, "datacrunch") as cloud, pytest.raises(gpucloud.ValidationError) as info:
        cloud.create_instance(DC_SPEC.model_copy(update={"location": "NOWHERE-9"}))
    assert (info.value.status_code, info.value.code) == (400, "invalid_request")


def test_voltagepark_validation_detail_is_readable(overrides: dict) -> None:
    with connect(overrides, "voltagepark") as cloud, pytest.raises(gpucloud.ValidationError) as info:
        cloud.transport.request("POST", "storage/", json={"name": "x", "size_in_gb": 0})
    assert info.value.status_code == 422 and "size_in_gb" in str(info.value)


def test_voltagepark_key_name_rules_are_checked_locally(overrides: dict, emulator: object, keypair: tuple) -> None:
    world = emulator.world  # type: ignore[attr-defined]
    before = world.request_count()
    with (
        connect(overrides, "voltagepark") as cloud,
        pytest.raises(gpucloud.ValidationError, match="hyphens and spaces"),
    ):
        cloud.create_ssh_key(gpucloud.SshKeySpec(name="bad_name!", public_key=keypair[1]))
    assert world.request_count() == before


def test_emulator_credentials_are_not_in_error_text(overrides: dict) -> None:
    with connect(overrides, "datacrunch") as cloud, pytest.raises(gpucloud.NotFound) as info:
        cloud.get_instance("00000000-0000-4000-8000-000000000000")
    text = str(info.value) + repr(info.value.to_dict())
    assert str(overrides["datacrunch"]["client_secret"]) not in text

"""ComputeStacks through the adapter: documented errors, API versions, both auth kinds, order-based creates
(with volumes, and adopted when the order's answer is lost) and SSH into the service through its bastion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import gpucloud
from gpucloud import InstanceSpec, SshKeySpec, Status, VolumeSpec, sshexec
from gpucloud.emulator import EmulatorServer
from gpucloud.providers.computestacks import decode_key_name, encode_key_name
from gpucloud.waiters import ssh_banner

from ..conftest import connect
from .specs import INSTANCE

SPEC = INSTANCE["computestacks"]
FAST = {"timeout": 30, "interval": 0.1}


@pytest.fixture
def cs(overrides: dict[str, Any]) -> Iterator[gpucloud.Provider]:
    with connect(overrides, "computestacks", retry_backoff=0.02) as cloud:
        yield cloud


@pytest.fixture
def key(cs: gpucloud.Provider, keypair: tuple[Path, str]) -> Iterator[gpucloud.SshKey]:
    made = cs.create_ssh_key(SshKeySpec(name="cs laptop 100%", public_key=keypair[1]))
    yield made
    cs.delete_ssh_key(made.id)


def _posts(emulator: EmulatorServer, path: str) -> int:
    return emulator.world.request_count(provider="computestacks", method="POST", path_prefix=path)


def _cleanup(cs: gpucloud.Provider, instance_id: str) -> None:
    cs.delete_instance(instance_id)
    cs.wait_for_instance_gone(instance_id, **FAST)


# ------------------------------------------------------------------------------------------ configuration, auth
def test_url_and_credentials_are_required_by_name(overrides: dict[str, Any]) -> None:
    with pytest.raises(gpucloud.ValidationError, match="GPUCLOUD_COMPUTESTACKS_URL") as info:
        gpucloud.connect("computestacks", base_url="", username="u", password="p")
    assert info.value.field == "base_url"
    with pytest.raises(gpucloud.AuthError, match="GPUCLOUD_COMPUTESTACKS_USERNAME"):
        gpucloud.connect("computestacks", base_url=overrides["computestacks"]["base_url"])


def test_basic_and_oauth_password_grant_both_work(overrides: dict[str, Any], emulator: EmulatorServer) -> None:
    with connect(overrides, "computestacks", client_id="", client_secret="") as basic:
        assert basic.grant == "basic"  # type: ignore[attr-defined]
        assert basic.list_locations()
    with connect(overrides, "computestacks") as oauth:
        assert oauth.grant == "password"  # type: ignore[attr-defined]
        oauth.list_instances()
        grants = oauth.auth.token_requests  # type: ignore[attr-defined]
        emulator.world.expire_tokens("computestacks")
        oauth.list_instances()  # no refresh token is ever issued: a new grant, transparently
        assert oauth.auth.token_requests == grants + 1  # type: ignore[attr-defined]


def test_refused_oauth_token_is_renewed_then_reported(overrides: dict[str, Any], emulator: EmulatorServer) -> None:
    """computestacks.txt: an invalid OAuth token gets 403 ``{errors: [...]}`` (not 401)."""
    with connect(overrides, "computestacks", max_retries=0) as oauth:
        assert oauth.grant == "password"  # type: ignore[attr-defined]
        oauth.list_instances()
        grants = oauth.auth.token_requests  # type: ignore[attr-defined]
        emulator.world.revoke_access_tokens("computestacks")
        oauth.list_instances()  # the 403 triggers one new grant, transparently
        assert oauth.auth.token_requests == grants + 1  # type: ignore[attr-defined]
        url = overrides["computestacks"]["base_url"].rstrip("/") + "/api/container_services"
        refused = httpx.get(url, headers={"Authorization": "Bearer not-a-token"}, timeout=10)
        assert refused.status_code == 403 and refused.json() == {"errors": ["The access token is invalid"]}
        error = oauth._map_error(refused)  # type: ignore[attr-defined]
    assert isinstance(error, gpucloud.AuthError) and error.status_code == 403
    assert "token was refused" in str(error) and "GPUCLOUD_COMPUTESTACKS_CLIENT_SECRET" in str(error)


def test_client_credentials_token_reads_public_data_only(overrides: dict[str, Any]) -> None:
    with connect(overrides, "computestacks", username="", password="") as app:
        assert app.grant == "client_credentials"  # type: ignore[attr-defined]
        assert {i.id for i in app.list_images()} >= {"Nginx"}  # public scope
        with pytest.raises(gpucloud.AuthError, match="carries no user") as info:
            app.list_instances()
    assert (info.value.status_code, info.value.code) == (403, "insufficient_scope")


# ------------------------------------------------------------------------------------------ errors
def test_documented_errors_map_to_the_hierarchy(overrides: dict[str, Any], emulator: EmulatorServer) -> None:
    with connect(overrides, "computestacks", client_id="", password="wrong") as bad:
        with pytest.raises(gpucloud.AuthError) as unauthorized:
            bad.list_instances()
        assert unauthorized.value.status_code == 401 and "Not Authorized" in str(unauthorized.value)
    with connect(overrides, "computestacks", max_retries=0) as cs:
        with pytest.raises(gpucloud.NotFound) as missing:
            cs.get_instance("424242")
        assert missing.value.status_code == 404  # an empty body, like `head :not_found`
        with pytest.raises(gpucloud.ValidationError) as invalid:
            order = {"project_name": "x", "containers": [{"image_variant_id": 201, "resources": {"product_id": 1}}]}
            cs.transport.request("POST", "api/orders", json={"order": order})
        assert invalid.value.status_code == 422 and "Package micro not suitable" in str(invalid.value)
        with pytest.raises(gpucloud.ProviderError) as crashed:
            cs.transport.request("POST", "api/orders", json={})
        assert crashed.value.status_code == 500 and "param is missing" in str(crashed.value)
        with pytest.raises(gpucloud.NotFound, match="Unknown API Call"):
            cs.transport.request("GET", "api/nothing")
        emulator.world.set_faults(rate_limit_burst=1)
        with pytest.raises(gpucloud.RateLimited) as limited:
            cs.list_locations()
        assert limited.value.retry_after == 1


def test_unsupported_api_version_names_the_setting(overrides: dict[str, Any], emulator: EmulatorServer) -> None:
    with connect(overrides, "computestacks", api_version="99") as cs, pytest.raises(gpucloud.ValidationError) as info:
        cs.list_locations()
    assert (info.value.field, info.value.status_code) == ("api_version", 422)
    assert "GPUCLOUD_COMPUTESTACKS_API_VERSION" in str(info.value) and "(99)" in str(info.value)
    before = emulator.world.request_count()
    with pytest.raises(gpucloud.ValidationError, match="51 or later") as local:
        connect(overrides, "computestacks", api_version="50")
    assert local.value.field == "api_version" and emulator.world.request_count() == before
    with connect(overrides, "computestacks", api_version="65") as deprecated:  # still served
        assert deprecated.list_locations()


# ------------------------------------------------------------------------------------------ volumes, keys
def test_standalone_volumes_are_unsupported_without_a_request(cs: gpucloud.Provider, emulator: EmulatorServer) -> None:
    before = emulator.world.request_count()
    with pytest.raises(gpucloud.Unsupported) as info:
        cs.create_volume(VolumeSpec(name="data", size_gb=10))
    assert info.value.capability == "volume create"
    with pytest.raises(gpucloud.Unsupported, match="delete the instance"):
        cs.delete_volume("1")
    with pytest.raises(gpucloud.Unsupported):
        cs.attach_volume("1", "2")
    assert emulator.world.request_count() == before


def test_tags_are_refused_saying_they_cannot_be_read_back(cs: gpucloud.Provider, emulator: EmulatorServer) -> None:
    before = emulator.world.request_count()
    with pytest.raises(gpucloud.Unsupported, match="never shows them back; remove 'tags'"):
        cs.create_instance(InstanceSpec(name="tagged", **SPEC, tags={"team": "ml"}))
    assert emulator.world.request_count() == before


def test_key_names_survive_the_comment_field(cs: gpucloud.Provider, key: gpucloud.SshKey) -> None:
    assert encode_key_name("cs laptop 100%") == "cs%20laptop%20100%25"
    assert decode_key_name(encode_key_name("a\tb c")) == "a\tb c"
    assert key.name == "cs laptop 100%" and cs.find_ssh_key("cs laptop 100%") == key
    assert key.public_key == ""  # the API never returns the key text
    assert cs.get_ssh_key(key.id) == key


def test_public_key_texts_cannot_select_keys(cs: gpucloud.Provider, emulator: EmulatorServer, keypair: Any) -> None:
    before = _posts(emulator, "/computestacks/api/orders")
    with pytest.raises(gpucloud.ValidationError, match="never returns key texts") as info:
        cs.create_instance(InstanceSpec(name="by-text", ssh_keys=(keypair[1],), **SPEC))
    assert info.value.field == "ssh_keys[0]" and _posts(emulator, "/computestacks/api/orders") == before


# ------------------------------------------------------------------------------------------ instances
def test_order_create_with_volumes(cs: gpucloud.Provider, emulator: EmulatorServer) -> None:
    before = _posts(emulator, "/computestacks/api/orders")
    with pytest.raises(gpucloud.ValidationError, match="it has: html, Config Files") as info:
        cs.create_instance(InstanceSpec(name="vols", volumes=("logs",), **SPEC))
    assert info.value.field == "volumes" and _posts(emulator, "/computestacks/api/orders") == before

    created = cs.create_instance(InstanceSpec(name="vols", volumes=("html",), **SPEC)).instance
    try:
        assert _posts(emulator, "/computestacks/api/orders") == before + 1
        mine = [v for v in cs.list_volumes() if created.id in v.attached_to]
        assert [(v.name, v.location, v.status) for v in mine] == [("html", "1", "active")]
        assert cs.get_volume(mine[0].id) == mine[0]
    finally:
        _cleanup(cs, created.id)
    assert all(created.id not in v.attached_to for v in cs.list_volumes())  # trashed with the service

    every = cs.create_instance(InstanceSpec(name="all-vols", **SPEC)).instance  # no list: the image's defaults
    try:
        assert sorted(v.name for v in cs.list_volumes() if every.id in v.attached_to) == ["Config Files", "html"]
    finally:
        _cleanup(cs, every.id)


def test_ssh_into_the_service_through_its_bastion(
    cs: gpucloud.Provider, overrides: dict[str, Any], key: gpucloud.SshKey, keypair: tuple[Path, str]
) -> None:
    created = cs.create_instance(InstanceSpec(name="shell", ssh_keys=(key.name,), **SPEC)).instance
    try:
        assert (created.name, created.instance_type, created.image) == ("shell", "small", "Nginx")
        assert created.location == "1"
        assert created.ssh_key_ids == () and created.gpu_count == 0
        running = cs.wait_for_instance(created.id, [Status.RUNNING], **FAST)
        bastion = cs.transport.get_json(f"api/projects/{running.raw['project']['id']}/bastions")["bastions"][0]
        assert (running.public_ip, running.ssh_port) == (bastion["ip_addr"], bastion["port"])
        with connect(overrides, "computestacks", ssh_user="") as reported:
            assert reported.get_instance(created.id).ssh_user == "sftpuser"  # what the API says
        assert cs.wait_for_ssh(running, timeout=10).startswith("SSH-2.0-")
        assert sshexec.run(running, "echo via-bastion", identity_file=keypair[0]).strip() == "via-bastion"
        assert cs.find_instance("shell") == cs.get_instance(created.id)

        cs.stop_instance(created.id)
        cs.wait_for_instance(created.id, [Status.STOPPED], **FAST)
        assert ssh_banner(running.public_ip, running.ssh_port, timeout=1) is None  # type: ignore[arg-type]
        cs.start_instance(created.id)
        again = cs.wait_for_instance(created.id, [Status.RUNNING], **FAST)
        assert sshexec.run(again, "echo back", identity_file=keypair[0]).strip() == "back"

        cs.reboot_instance(created.id)
        assert cs.get_instance(created.id).status is Status.PENDING  # "working" while it restarts
        cs.wait_for_instance(created.id, [Status.RUNNING], **FAST)
        cs.resize_instance(created.id, "3")  # by product id; read back by name
        resized = cs.wait_for_instance(created.id, [Status.RUNNING], **FAST)
        assert resized.instance_type == "medium" == cs.canonical_instance_type("3")
        assert cs.update_instance(created.id, name="shell-2").name == "shell-2"
    finally:
        _cleanup(cs, created.id)
    assert cs.find_instance("shell-2") is None


def test_lost_order_response_is_adopted_not_ordered_twice(cs: gpucloud.Provider, emulator: EmulatorServer) -> None:
    emulator.world.set_faults(drop_create_rate=1.0)
    try:
        created = cs.create_instance(InstanceSpec(name="adopted", **SPEC)).instance
    finally:
        emulator.world.set_faults(drop_create_rate=0.0)
    try:
        assert created.name == "adopted"
        assert [i.id for i in cs.list_instances() if i.name == "adopted"] == [created.id]
        orders = [r for r in emulator.world.requests if r.method == "POST" and r.path == "/api/orders"]
        assert orders and orders[-1].was_fault
    finally:
        _cleanup(cs, created.id)


def test_failed_order_is_an_error_naming_the_order(cs: gpucloud.Provider, emulator: EmulatorServer) -> None:
    emulator.world.set_capacity("computestacks", "small", "1", False)
    try:
        with pytest.raises(gpucloud.ProviderError, match="ended failed") as info:
            cs.create_instance(InstanceSpec(name="no-room", **SPEC))
        assert info.value.details["project"]  # type: ignore[index]
    finally:
        emulator.world.set_capacity("computestacks", "small", "1", True)
    assert cs.find_instance("no-room") is None


def test_catalogue_names_are_checked_before_ordering(cs: gpucloud.Provider, emulator: EmulatorServer) -> None:
    before = _posts(emulator, "/computestacks/api/orders")
    cases = [
        ({"image": "Windows"}, "image"),
        ({"location": "Emulator East"}, "location"),  # ids only: the instance reports the id
        ({"instance_type": "xlarge"}, "instance_type"),  # not sold in location 1
    ]
    for change, field in cases:
        with pytest.raises(gpucloud.ValidationError) as info:
            cs.create_instance(InstanceSpec(name="never", **{**SPEC, **change}))
        assert info.value.field == field, change
    with pytest.raises(gpucloud.ValidationError, match="image is required"):
        cs.create_instance(InstanceSpec(name="never", instance_type="small"))
    assert _posts(emulator, "/computestacks/api/orders") == before
    offers = {o.instance_type: o for o in cs.list_offers()}
    assert offers["medium"].price_per_hour == round(15.0 / 730, 6)  # a monthly price, per hour
    assert [loc.location for loc in offers["xlarge"].locations] == ["2"]

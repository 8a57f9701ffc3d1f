"""ComputeStacks through raw HTTP: both auth kinds, the version header, pagination headers, error shapes,
asynchronous orders, and real SSH through the per-project bastion."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.computestacks import volume_param_csrn
from gpucloud.waiters import ssh_banner
from tests.emulator.helpers import run_ssh, wait_for

UNKNOWN_ROUTE = {"errors": ["Unknown API Call. Please check the documentation."]}
NGINX_LATEST, MARIADB, WORDPRESS = 101, 201, 301  # image variant ids of the emulated catalogue
SMALL, MICRO = 2, 1  # product ids


@pytest.fixture
def cs(emu: EmulatorServer) -> Iterator[httpx.Client]:
    """Raw HTTP with Basic auth (API credentials) and the current API version."""
    headers = {"Accept": "application/json; api_version=80"}
    creds = emu.credentials["computestacks"]
    basic = (creds["username"], creds["password"])
    with httpx.Client(base_url=emu.base_url("computestacks"), auth=basic, headers=headers, timeout=10) as client:
        yield client


def _order(cs: httpx.Client, name: str, **container: Any) -> str:
    item = {"image_variant_id": NGINX_LATEST, "name": name, "resources": {"product_id": SMALL}, **container}
    created = cs.post("/api/orders", json={"order": {"project_name": name, "location_id": 1, "containers": [item]}})
    assert created.status_code == 201, created.text
    assert set(created.json()["order"]) == {"id", "redirect_url", "load_balancer_ip"}
    return str(created.json()["order"]["id"])


def _completed(cs: httpx.Client, order_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        order: dict[str, Any] = cs.get(f"/api/orders/{order_id}").json()["order"]
        return order if order["status"] == "completed" else None

    return wait_for(done, timeout=10)


def _service_in(cs: httpx.Client, service_id: int, state: str) -> dict[str, Any] | None:
    service: dict[str, Any] = cs.get(f"/api/container_services/{service_id}").json()["container_service"]
    return service if service["current_state"] == state else None


def _token(client: httpx.Client, **form: str) -> httpx.Response:
    return client.post("/api/oauth/token", data=form)


# ------------------------------------------------------------------------------------------ auth
def test_basic_auth_with_api_credentials(emu: EmulatorServer, cs: httpx.Client) -> None:
    assert cs.get("/api/users").json()["user"]["email"]
    creds = emu.credentials["computestacks"]
    wrong = httpx.get(emu.base_url("computestacks") + "/api/users", auth=(creds["username"], "nope"))
    assert (wrong.status_code, wrong.json()) == (401, {"errors": ["Not Authorized"]})
    anonymous = httpx.get(emu.base_url("computestacks") + "/api/users")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_token"  # Doorkeeper's shape


def test_oauth_password_and_client_credentials_grants(emu: EmulatorServer) -> None:
    creds = emu.credentials["computestacks"]
    client = {"client_id": creds["client_id"], "client_secret": creds["client_secret"]}
    with httpx.Client(base_url=emu.base_url("computestacks"), timeout=10) as http:
        user = _token(http, grant_type="password", username=creds["username"], password=creds["password"], **client)
        assert user.status_code == 200 and user.json()["token_type"] == "Bearer"
        assert "refresh_token" not in user.json()  # only the authorization-code grant gets one
        bearer = {"Authorization": f"Bearer {user.json()['access_token']}"}
        assert http.get("/api/container_services", headers=bearer).status_code == 200

        # JSON body, client in the Basic header, as the cPanel plugin does: a token without a user
        app = http.post("/api/oauth/token", json={"grant_type": "client_credentials"}, auth=tuple(client.values()))
        assert app.status_code == 200 and app.json()["scope"] == "public"
        public = {"Authorization": f"Bearer {app.json()['access_token']}"}
        assert http.get("/api/version", headers=public).status_code == 200
        assert http.get("/api/container_images", headers=public).status_code == 200
        denied = http.get("/api/container_services", headers=public)
        assert (denied.status_code, denied.json()["error"]) == (403, "insufficient_scope")

        assert _token(http, grant_type="client_credentials", client_id="x", client_secret="y").status_code == 401
        bad_user = _token(http, grant_type="password", username=creds["username"], password="no", **client)
        assert (bad_user.status_code, bad_user.json()["error"]) == (400, "invalid_grant")
        scoped = _token(http, grant_type="client_credentials", scope="project_read", **client)
        assert (scoped.status_code, scoped.json()["error"]) == (403, "unauthorized_client")
        refresh = _token(http, grant_type="refresh_token", refresh_token="anything", **client)
        assert refresh.status_code == 400

        emu.world.expire_tokens("computestacks")
        expired = http.get("/api/container_services", headers=bearer)
        assert (expired.status_code, expired.json()) == (403, {"errors": ["The access token expired"]})
        unknown = http.get("/api/container_services", headers={"Authorization": "Bearer not-a-token"})
        assert (unknown.status_code, unknown.json()) == (403, {"errors": ["The access token is invalid"]})


# ------------------------------------------------------------------------------------------ versioning
def test_api_version_header(emu: EmulatorServer, cs: httpx.Client) -> None:
    version = cs.get("/api/version")
    assert version.json()["version"] == "9.3.1" and 80 in version.json()["api_available_versions"]
    assert "API-Deprecated" not in version.headers
    plain = cs.get("/api/locations", headers={"Accept": "application/json"})  # no version: the current one
    assert plain.status_code == 200
    old = cs.get("/api/locations", headers={"Accept": "application/json; api_version=65"})
    assert old.status_code == 200 and old.headers["API-Deprecated"] == "true"
    for unsupported in ("99", "50"):  # unknown, obsolete
        answer = cs.get("/api/locations", headers={"Accept": f"application/json; api_version={unsupported}"})
        assert answer.status_code == 422 and answer.headers["API-Version-Supported"] == "false"
        assert answer.json() == {"errors": [f"You requested an unsupported version ({unsupported})"]}
    # VersionCake's filter runs before authentication
    anonymous = httpx.get(
        emu.base_url("computestacks") + "/api/locations", headers={"Accept": "application/json; api_version=99"}
    )
    assert anonymous.status_code == 422


# ------------------------------------------------------------------------------------------ pagination, errors
def test_pagination_headers(cs: httpx.Client) -> None:
    first = cs.get("/api/locations", params={"per_page": 1})
    assert (first.headers["Total"], first.headers["Per-Page"]) == ("2", "1")
    assert 'rel="next"' in first.headers["Link"] and 'rel="last"' in first.headers["Link"]
    second = cs.get("/api/locations", params={"per_page": 1, "page": 2})
    assert [loc["id"] for loc in first.json()["locations"] + second.json()["locations"]] == [1, 2]
    assert 'rel="prev"' in second.headers["Link"] and 'rel="next"' not in second.headers["Link"]
    assert cs.get("/api/locations", params={"page": 3, "per_page": 1}).json() == {"locations": []}
    images = cs.get("/api/container_images")
    assert images.headers["Per-Page"] == "30" and images.headers["Total"] == str(len(images.json()["container_images"]))
    assert cs.get("/api/locations", params={"page": 0}).status_code == 404
    keys = cs.get("/api/users/ssh_keys")  # not paginated in the controller
    assert keys.status_code == 200 and "Total" not in keys.headers


def test_error_shapes(cs: httpx.Client) -> None:
    unknown = cs.get("/api/nothing/here")
    assert (unknown.status_code, unknown.json()) == (404, UNKNOWN_ROUTE)
    missing = cs.get("/api/container_services/999")
    assert (missing.status_code, missing.content) == (404, b"")  # head :not_found
    no_action = cs.post("/api/volumes", json={})
    assert (no_action.status_code, no_action.json()) == (404, {"status": 404, "error": "Not Found"})
    malformed = cs.post("/api/users/ssh_keys", content=b"{nope", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    bad_key = cs.post("/api/users/ssh_keys", json={"user_ssh_key": {"pubkey": "ssh-ed25519 nope"}})
    assert (bad_key.status_code, bad_key.json()) == (422, {"errors": ["Pubkey is not a valid openssh public key"]})
    no_root = cs.post("/api/orders", json={"containers": []})
    assert no_root.status_code == 500 and no_root.json()["errors"] == ["param is missing or the value is empty: order"]


def test_order_validation_messages(cs: httpx.Client) -> None:
    def rejected(order: dict[str, Any]) -> list[Any]:
        answer = cs.post("/api/orders", json={"order": order})
        assert answer.status_code == 422, answer.text
        errors: list[Any] = answer.json()["errors"]
        return errors

    assert rejected({"containers": []}) == ["Missing project name", "Missing containers"]
    assert rejected({"project_name": "p", "project_id": 999, "containers": [{}]}) == ["Unknown project"]
    item = {"image_variant_id": NGINX_LATEST, "name": "x"}
    assert rejected({"project_name": "p", "containers": [item]}) == ["Missing package selection for Nginx"]
    too_small = {"image_variant_id": MARIADB, "resources": {"product_id": MICRO}}
    assert rejected({"project_name": "p", "containers": [too_small]})[0].startswith("Package micro not suitable")
    lonely = {"image_variant_id": WORDPRESS, "resources": {"product_id": SMALL}}
    assert rejected({"project_name": "p", "containers": [lonely]}) == [
        "Missing required dependent services. Have [], Need [2]",
        WORDPRESS,  # BuildOrderService appends the variant id itself
    ]
    with_db = [lonely, {"image_variant_id": MARIADB, "resources": {"product_id": SMALL}}]
    assert cs.post("/api/orders", json={"order": {"project_name": "p", "containers": with_db}}).status_code == 201
    nowhere = cs.post("/api/orders", json={"order": {"project_name": "p", "location_id": 9, "containers": [lonely]}})
    assert nowhere.status_code == 500  # the controller dereferences the nil region


# ------------------------------------------------------------------------------------------ orders
def test_order_moves_from_pending_to_completed_and_builds_the_project(emu: EmulatorServer, cs: httpx.Client) -> None:
    params = cs.get("/api/container_images/1/volume_params").json()["volume_params"]
    config = next(p for p in params if p["label"] == "Config Files")
    assert "csrn" not in config  # the view omits it; clients compute it
    skip = [{"csrn": volume_param_csrn(config), "action": "skip"}]
    assert skip[0]["csrn"] == "csrn:caas:template:vol:config_file:1002"
    order_id = _order(cs, "flow", volumes=skip)
    seen: list[str] = []

    def completed() -> dict[str, Any] | None:
        order: dict[str, Any] = cs.get(f"/api/orders/{order_id}").json()["order"]
        if not seen or seen[-1] != order["status"]:
            seen.append(order["status"])
        return order if order["status"] == "completed" else None

    order = wait_for(completed, timeout=10, interval=0.005)
    assert seen[-1] == "completed" and seen[0] in ("pending", "processing")  # asynchronous, in order
    assert seen == sorted(seen, key=["pending", "processing", "completed"].index)
    assert order["project"]["name"] == "flow" and order["order_data"]["project"]["name"] == "flow"
    listed = cs.get("/api/orders").json()["orders"]
    assert [o["id"] for o in listed] == [order_id] and "order_data" not in listed[0]

    services = cs.get(f"/api/projects/{order['project']['id']}/services").json()["container_services"]
    assert [(s["label"], s["package"]["label"], s["image"]["variant"]["id"]) for s in services] == [
        ("flow", "small", NGINX_LATEST)
    ]
    service = wait_for(lambda: _service_in(cs, services[0]["id"], "online"), timeout=10)
    assert service["region"] == {"id": 1, "name": "Emulator East"}
    volumes = cs.get(f"/api/container_services/{service['id']}/volumes").json()["volumes"]
    assert [v["label"] for v in volumes] == ["html"] and "size" not in volumes[0]
    assert cs.get("/api/volumes").json()["volumes"] == volumes


def test_order_without_capacity_fails_after_creating_the_project(emu: EmulatorServer, cs: httpx.Client) -> None:
    emu.world.set_capacity("computestacks", "small", "1", False)
    order_id = _order(cs, "no-room")

    def failed() -> dict[str, Any] | None:
        order: dict[str, Any] = cs.get(f"/api/orders/{order_id}").json()["order"]
        return order if order["status"] == "failed" else None

    order = wait_for(failed, timeout=10)
    assert cs.get(f"/api/projects/{order['project']['id']}/services").json() == {"container_services": []}


def test_dropped_order_response_still_commits_the_order(emu: EmulatorServer, cs: httpx.Client) -> None:
    emu.world.set_faults(drop_create_rate=1.0)
    with pytest.raises(httpx.TransportError):
        _order(cs, "dropped")
    emu.world.set_faults(drop_create_rate=0.0)
    assert [o["status"] for o in cs.get("/api/orders").json()["orders"]] in (["pending"], ["processing"])


# ------------------------------------------------------------------------------------------ bastion
def _ssh(key: Path, bastion: dict[str, Any], user: str) -> subprocess.CompletedProcess[str]:
    return run_ssh(key, user, bastion["ip_addr"], bastion["port"], "echo through-the-bastion")


def test_bastion_ssh_follows_the_projects_services(
    emu: EmulatorServer, cs: httpx.Client, keypair: tuple[Path, str], tmp_path: Path
) -> None:
    private, public = keypair
    key_text = " ".join(public.split()[:2])
    key = cs.post("/api/users/ssh_keys", json={"user_ssh_key": {"pubkey": f"{key_text} my-laptop"}})
    assert key.status_code == 201 and key.json()["ssh_key"]["label"] == "my-laptop"
    assert "pubkey" not in key.json()["ssh_key"]
    order = _completed(cs, _order(cs, "shell"))
    project_id = order["project"]["id"]
    service = cs.get(f"/api/projects/{project_id}/services").json()["container_services"][0]
    wait_for(lambda: _service_in(cs, service["id"], "online"), timeout=10)

    bastion = cs.get(f"/api/projects/{project_id}/bastions").json()["bastions"][0]
    assert (bastion["username"], bastion["status"]) == ("sftpuser", "running") and bastion["ip_addr"] != "127.0.0.1"
    assert service["bastions"] == [bastion["id"]]
    assert _ssh(private, bastion, emu.world.ssh_user).stdout.strip() == "through-the-bastion"

    # a key added later reaches the running bastion too
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k2")], check=True)
    added = cs.post("/api/users/ssh_keys", json={"user_ssh_key": {"pubkey": (tmp_path / "k2.pub").read_text()}})
    assert added.status_code == 201
    assert _ssh(tmp_path / "k2", bastion, emu.world.ssh_user).returncode == 0

    assert cs.put(f"/api/container_services/{service['id']}/power/stop").status_code == 202
    assert cs.put(f"/api/container_services/{service['id']}/power/dance").json()["errors"][0] == "Unknown action."
    assert cs.post(f"/api/container_services/{service['id']}/power/start").status_code == 404  # the docs' POST
    wait_for(lambda: _service_in(cs, service["id"], "inactive"), timeout=10)
    assert ssh_banner(bastion["ip_addr"], bastion["port"], timeout=1) is None  # no running service: no bastion
    assert cs.get(f"/api/projects/{project_id}/bastions").json()["bastions"][0]["status"] == "stopped"

    assert cs.patch(f"/api/container_services/{service['id']}/power/start").status_code == 202
    wait_for(lambda: _service_in(cs, service["id"], "online"), timeout=10)
    assert _ssh(private, bastion, emu.world.ssh_user).returncode == 0

    assert cs.delete(f"/api/container_services/{service['id']}").status_code == 202
    wait_for(lambda: cs.get(f"/api/container_services/{service['id']}").status_code == 404, timeout=10)
    assert ssh_banner(bastion["ip_addr"], bastion["port"], timeout=1) is None


def test_each_project_has_its_own_bastion_and_skip_ssh_has_none(cs: httpx.Client) -> None:
    first, second = (_completed(cs, _order(cs, name))["project"]["id"] for name in ("one", "two"))
    endpoints = {
        (b["ip_addr"], b["port"])
        for pid in (first, second)
        for b in cs.get(f"/api/projects/{pid}/bastions").json()["bastions"]
    }
    assert len(endpoints) == 2
    item = {"image_variant_id": NGINX_LATEST, "resources": {"product_id": SMALL}}
    created = cs.post("/api/orders", json={"order": {"project_name": "quiet", "skip_ssh": True, "containers": [item]}})
    quiet = _completed(cs, str(created.json()["order"]["id"]))["project"]["id"]
    assert cs.get(f"/api/projects/{quiet}/bastions").json() == {"bastions": []}


def test_ssh_key_delete_removes_the_key_then_fails_rendering(cs: httpx.Client, keypair: tuple[Path, str]) -> None:
    key = cs.post("/api/users/ssh_keys", json={"user_ssh_key": {"pubkey": keypair[1]}}).json()["ssh_key"]
    deleted = cs.delete(f"/api/users/ssh_keys/{key['id']}")
    assert (deleted.status_code, deleted.json()) == (500, {"status": 500, "error": "Internal Server Error"})
    assert cs.get(f"/api/users/ssh_keys/{key['id']}").status_code == 404
    assert cs.get("/api/users/ssh_keys").json() == {"ssh_keys": []}


def test_resize_and_rename(cs: httpx.Client) -> None:
    order = _completed(cs, _order(cs, "grow"))
    service = cs.get(f"/api/projects/{order['project']['id']}/services").json()["container_services"][0]
    bad = cs.post(f"/api/container_services/{service['id']}/resize", json={"container_service": {"product_id": 99}})
    assert (bad.status_code, bad.json()) == (422, {"errors": ["Missing package id: 99"]})
    assert (
        cs.post(
            f"/api/container_services/{service['id']}/resize", json={"container_service": {"product_id": 3}}
        ).status_code
        == 202
    )
    resized = wait_for(lambda: _service_in(cs, service["id"], "online"), timeout=10)
    assert (resized["product_id"], resized["package"]["label"]) == (3, "medium")
    renamed = cs.patch(f"/api/container_services/{service['id']}", json={"container_service": {"label": "bigger"}})
    assert renamed.status_code == 202 and renamed.json()["container_service"]["label"] == "bigger"


def test_tag_list_is_accepted_but_never_shown(emu: EmulatorServer, cs: httpx.Client) -> None:
    """The controller permits ``tag_list`` on edit (acts_as_taggable, a comma-separated string) but renders no
    tags in any view: the edit is kept, and neither its answer nor a later read carries them."""
    order = _completed(cs, _order(cs, "tagged"))
    service = cs.get(f"/api/projects/{order['project']['id']}/services").json()["container_services"][0]
    path = f"/api/container_services/{service['id']}"
    edited = cs.patch(path, json={"container_service": {"tag_list": "team=ml, gpu ,team=ml"}})
    assert edited.status_code == 202, edited.text
    assert emu.world.private("computestacks", f"service-{service['id']}")["tag_list"] == ["team=ml", "gpu"]
    # An array is not a permitted scalar: strong parameters drop it and the tags stay as they were.
    assert cs.patch(path, json={"container_service": {"tag_list": ["other"]}}).status_code == 202
    assert emu.world.private("computestacks", f"service-{service['id']}")["tag_list"] == ["team=ml", "gpu"]
    for answer in (edited.json(), cs.get(path).json(), cs.get("/api/container_services").json()):
        assert "team=ml" not in str(answer) and "tag_list" not in str(answer)

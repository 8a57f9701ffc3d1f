"""Hostile or broken servers: one byte a second, a Retry-After of years, endless bodies, credentials echoed back.

Each case runs the real adapter against a scripted server on 127.0.0.1 (tests/faults/hostile.py) and checks the
outcome: the right error class, no credential in it, and an end within a bound minutes below the server's
"forever" (the bounds are generous on purpose; what they catch is a client busy for hours, not milliseconds).
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import gpucloud
from gpucloud import InstanceSpec, ensure, errors, pagination
from gpucloud.transport import DeadlineReached
from tests import figures

from .hostile import HostileServer, Replier, Request, finishes_within, head

TOKEN = "hostile-test-token-3f9a"
# Far above every bound below: a client that is not bounded is caught by finishes_within, not by the server.
FOREVER = b"x" * 3600
# An id of the dcdncloud shape (a UUID) that no instance has: ids of other shapes are refused before any request.
WELL_FORMED_ID = "00000000-0000-4000-8000-000000000000"
SLOW_ID = "00000000-0000-4000-8000-0000000005e0"


def keep_id(n: int) -> str:
    return f"00000000-0000-4000-8000-00000000000{n}"


BOUND = 60.0


def dcdn(server: HostileServer, **options: Any) -> gpucloud.Provider:
    return gpucloud.connect("dcdncloud", base_url=server.url, token=TOKEN, **options)


def record(outcome_ok: bool) -> None:
    figures.record("hostile answers tried")
    figures.record("hostile answers not contained", int(not outcome_ok))


def instance(instance_id: str, status: str, name: str = "box") -> dict[str, Any]:
    return {"id": instance_id, "name": name, "status": status, "plan": "p", "region": "r", "image": "i"}


# --- time -------------------------------------------------------------------------------------------
def trickle_headers(request: Request, reply: Replier) -> None:
    reply.trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + FOREVER)


def trickle_body(request: Request, reply: Replier) -> None:
    reply.raw(head(200, {"Content-Type": "application/json", "Content-Length": str(len(FOREVER) + 2)}))
    reply.trickle(b'"' + FOREVER)


def oauth(server: HostileServer, **options: Any) -> gpucloud.Provider:
    """DataCrunch: the first request is the OAuth token request, made inside httpx's auth flow."""
    return gpucloud.connect("datacrunch", base_url=server.url, client_id="cid", client_secret=TOKEN, **options)


@pytest.mark.parametrize("adapter", [dcdn, oauth], ids=["bearer", "oauth-token-request"])
@pytest.mark.parametrize("script", [trickle_headers, trickle_body], ids=["headers", "body"])
def test_a_server_sending_a_byte_a_second_cannot_stretch_a_request(script: Any, adapter: Any) -> None:
    """timeout=3 bounds each attempt's wall-clock time, not each socket read: two attempts, about 6 s, not hours."""
    with HostileServer(script) as server, adapter(server, timeout=3, max_retries=1, retry_backoff=0.05) as cloud:
        result = finishes_within(BOUND, cloud.list_instances)
        attempts = len(server.requests)
    record(isinstance(result, errors.ProviderError))
    assert isinstance(result, errors.ProviderError), result
    assert "no complete answer within the request timeout" in str(result)
    assert attempts == 2, "one retry, as max_retries=1 allows"


@pytest.mark.parametrize("script", [trickle_headers, trickle_body], ids=["headers", "body"])
def test_an_operation_against_a_trickling_server_ends_within_its_wait_timeout(script: Any) -> None:
    spec = InstanceSpec(name="slow", instance_type="p", image="i", location="r")
    with HostileServer(script) as server, dcdn(server) as cloud:
        result = finishes_within(BOUND, lambda: ensure.ensure_instance(cloud, spec, wait_timeout=5))
    record(isinstance(result, errors.Timeout))
    assert isinstance(result, DeadlineReached), result
    assert "time limit" in str(result)


def test_a_retry_after_of_years_is_not_waited_out() -> None:
    def busy(request: Request, reply: Replier) -> None:
        reply.json(429, {"error": {"code": "rate_limited", "message": "slow down"}}, {"Retry-After": "99999999"})

    with HostileServer(busy) as server, dcdn(server) as cloud:
        result = finishes_within(BOUND, cloud.list_instances)
        inside = finishes_within(
            BOUND,
            lambda: ensure.ensure_instance_absent(cloud, instance_id=WELL_FORMED_ID, wait_timeout=600),
        )
        sent = len(server.requests)
    record(isinstance(result, errors.RateLimited) and isinstance(inside, errors.RateLimited))
    assert isinstance(result, errors.RateLimited) and result.retry_after == 99999999, result
    assert isinstance(inside, errors.RateLimited), inside
    assert sent == 2, "a pause longer than retry_max_seconds is not taken: no second attempt"


def test_a_retry_after_longer_than_retry_max_seconds_ends_the_retrying() -> None:
    def busy(request: Request, reply: Replier) -> None:
        reply.json(429, {}, {"Retry-After": "3"})

    with HostileServer(busy) as server, dcdn(server, retry_max_seconds=2) as cloud:
        result = finishes_within(BOUND, cloud.list_instances)
        sent = len(server.requests)
    record(isinstance(result, errors.RateLimited))
    assert isinstance(result, errors.RateLimited), result
    assert sent == 1


# --- size -------------------------------------------------------------------------------------------
def test_an_endless_body_is_refused_not_buffered() -> None:
    streamed: list[int] = []

    def endless(request: Request, reply: Replier) -> None:
        reply.raw(head(200, {"Content-Type": "application/json"}))  # no length: read until the server stops
        streamed.append(reply.endless(b"[" + b"1," * 32768))

    with HostileServer(endless) as server, dcdn(server) as cloud:
        result = finishes_within(BOUND, cloud.list_instances)
        sent = len(server.requests)
    record(isinstance(result, errors.ProviderError))
    assert isinstance(result, errors.ProviderError), result
    assert "larger than 67108864 bytes" in str(result)
    assert sent == 1, "a too-large answer is not fetched again"


def test_a_gzip_bomb_from_the_oauth_token_endpoint_is_refused_not_unpacked() -> None:
    """About 70 KB on the wire that unpack to 70 MiB of valid JSON: httpx reads the token answer itself, inside
    the auth flow, so only a count after decompression there refuses it (the socket count sees 70 KB)."""
    bomb = gzip.compress(b'{"access_token": "bomb-token-1234"}' + b" " * (70 * 1024 * 1024))

    def token_bomb(request: Request, reply: Replier) -> None:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "Content-Length": str(len(bomb))}
        reply.raw(head(200, headers) + bomb)

    with HostileServer(token_bomb) as server, oauth(server) as cloud:
        result = finishes_within(BOUND, cloud.list_instances)
        sent = [r.path for r in server.requests]
    record(isinstance(result, errors.ProviderError) and "larger than" in str(result))
    assert isinstance(result, errors.ProviderError), result
    assert "the answer of " in str(result) and "/oauth2/token is larger than 67108864 bytes" in str(result), result
    assert len(sent) == 1 and sent[0].endswith("/oauth2/token"), f"no API request is sent with no token: {sent}"


@pytest.mark.parametrize("script", [trickle_headers, trickle_body], ids=["headers", "body"])
def test_a_proxy_from_the_environment_is_used_and_bounded_like_the_api(
    script: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx ignores HTTP_PROXY for a client given its own transport; gpucloud mounts a bounded transport per
    proxy. The hostile server is the proxy here: it gets the absolute URL (so the proxy was used: nothing
    listens at the API address) and trickles, and timeout=3 still ends each attempt."""
    for variable in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with HostileServer(script) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        api = "http://127.0.0.2:9"  # loopback (plain http allowed), the discard port: no API answers there
        with gpucloud.connect("dcdncloud", base_url=api, token=TOKEN, timeout=3, max_retries=1) as cloud:
            result = finishes_within(BOUND, cloud.list_instances)
        seen = [r.path for r in proxy.requests]
    record(isinstance(result, errors.ProviderError) and "within the request timeout" in str(result))
    assert seen and all(path.startswith(api + "/") for path in seen), seen
    assert isinstance(result, errors.ProviderError), result
    assert "no complete answer within the request timeout" in str(result)
    assert len(seen) == 2, "one retry, as max_retries=1 allows"


def test_a_proxy_variable_gpucloud_cannot_use_is_named_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "http_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("https_proxy", "ftp://someone:proxy-pass-5521@proxy.invalid:21")
    with pytest.raises(errors.ValidationError) as caught:
        gpucloud.connect("dcdncloud", base_url="http://127.0.0.2:9", token=TOKEN)
    assert caught.value.field == "HTTPS_PROXY"
    assert "HTTPS_PROXY names a proxy gpucloud cannot use" in str(caught.value)
    assert "proxy-pass-5521" not in str(caught.value) and "proxy-pass-5521" not in str(caught.value.to_dict())


# --- endless lists ----------------------------------------------------------------------------------------
def nexus(server: HostileServer, **options: Any) -> gpucloud.Provider:
    """CloudNexus lists are numbered pages (``page``/``per_page``) with a ``pagination`` block."""
    return gpucloud.connect("cloudnexus", base_url=server.url, token="cn_test_" + TOKEN, **options)


def key(n: int) -> dict[str, Any]:
    return {"id": f"key-{n}", "name": f"k{n}", "public_key": "ssh-ed25519 AAAA", "fingerprint": "f"}


def page_number(request: Request) -> int:
    return int(parse_qs(urlsplit(request.path).query)["page"][0])


def same_page_again(request: Request, reply: Replier) -> None:
    """Ignores ``page``: every page is the first one, and there is always one more."""
    reply.json(200, {"data": [key(1), key(2)], "pagination": {"total_pages": 10**9}})


def always_one_more(request: Request, reply: Replier) -> None:
    """New items on every page, and the page after always exists."""
    n = page_number(request)
    reply.json(200, {"data": [key(n * 100 + i) for i in range(100)], "pagination": {"total_pages": n + 1}})


def billions(request: Request, reply: Replier) -> None:
    reply.json(200, {"data": [key(1)], "pagination": {"total": 10**12, "total_pages": 10**10}})


@pytest.mark.parametrize(
    ("script", "seen"),
    [
        (same_page_again, "page 2 repeats page 1"),
        (always_one_more, "page 10 still says another page follows"),
        (billions, "claims a total of 1000000000000 items"),
    ],
    ids=["repeated-page", "never-last-page", "total-of-billions"],
)
def test_a_list_that_never_ends_is_refused_not_walked_forever(
    script: Any, seen: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap is 100,000 items; lowered to 1,000 here so the never-last-page server is cut off at page 10
    (10 pages of 100) instead of after 1,000 requests. The other two are caught by what they say, not the cap."""
    monkeypatch.setattr(pagination, "MAX_LIST_ITEMS", 1000)
    with HostileServer(script) as server, nexus(server, requests_per_minute=100_000) as cloud:
        result = finishes_within(BOUND, cloud.list_ssh_keys)
        sent = len(server.requests)
    record(isinstance(result, errors.MalformedResponse) and seen in str(result))
    assert isinstance(result, errors.MalformedResponse), result
    assert str(result).startswith("cloudnexus: the list never ends: ") and seen in str(result), result
    assert sent <= 10, "no page past the cap is asked for"


# --- secrets ------------------------------------------------------------------------------------------
def test_a_token_echoed_by_the_server_is_redacted_from_errors_and_results() -> None:
    def echo(request: Request, reply: Replier) -> None:
        token = request.headers["authorization"].removeprefix("Bearer ")
        if request.path.endswith(f"/instances/{WELL_FORMED_ID}"):
            reply.json(400, {"error": {"code": f"bad-{token}", "message": f"token {token} is not allowed here"}})
        else:
            reply.json(200, {"instances": [instance("i-1", "running", name=f"echo {token}")]})

    with HostileServer(echo) as server, dcdn(server) as cloud:
        failed = finishes_within(BOUND, lambda: cloud.get_instance(WELL_FORMED_ID))
        listed = cloud.list_instances()
    text = f"{failed} {failed.to_dict()} {listed} {[i.model_dump() for i in listed]}"
    figures.record("leaked secrets", text.count(TOKEN))
    record(TOKEN not in text)
    assert isinstance(failed, errors.ValidationError), failed
    assert TOKEN not in text
    assert "token [REDACTED] is not allowed here" in str(failed)
    assert listed[0].name == "echo [REDACTED]"


def test_an_oauth_client_secret_echoed_by_the_token_endpoint_is_redacted() -> None:
    secret = "hostile-client-secret-77c1"

    def token_endpoint(request: Request, reply: Replier) -> None:
        reply.json(401, {"code": "unauthorized_request", "message": f"client secret {secret} is revoked"})

    with HostileServer(token_endpoint) as server:
        cloud = gpucloud.connect("datacrunch", base_url=server.url, client_id="cid", client_secret=secret)
        with cloud:
            failed = finishes_within(BOUND, cloud.list_instances)
    record(isinstance(failed, errors.AuthError) and secret not in str(failed))
    figures.record("leaked secrets", str(failed.to_dict()).count(secret))
    assert isinstance(failed, errors.AuthError), failed
    assert secret not in str(failed) and secret not in str(failed.to_dict())
    assert "client secret [REDACTED] is revoked" in str(failed)


def test_a_token_from_the_environment_echoed_by_the_server_stays_out_of_ansible_output(tmp_path: Path) -> None:
    """Ansible masks only values of no_log options; a token set in the environment was printed as the server
    echoed it. Now the module's result and every line of -vvv output read [REDACTED]."""
    from tests.ansible.conftest import Ansible, base_env
    from tests.ansible.test_modules import task

    def echo(request: Request, reply: Replier) -> None:
        token = request.headers["authorization"].removeprefix("Bearer ")
        reply.json(403, {"error": {"code": "forbidden", "message": f"token {token} may not list instances"}})

    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    with HostileServer(echo) as server:
        env = {**base_env(home), "GPUCLOUD_DCDNCLOUD_URL": server.url, "GPUCLOUD_DCDNCLOUD_TOKEN": TOKEN}
        play = Ansible(env, tmp_path).play(
            [task("instance_info", "info", provider="dcdncloud", ignore_errors=True)],
            extra_env={"ANSIBLE_VERBOSITY": "3"},
        )
    text = play.output + json.dumps(play.results)
    figures.record("leaked secrets", text.count(TOKEN))
    record(TOKEN not in text and play["info"].get("failed") is True)
    assert play["info"]["failed"] is True and play["info"]["error_class"] == "AuthError", play["info"]
    assert "token [REDACTED] may not list instances" in play["info"]["msg"]
    assert TOKEN not in text


URL_PASSWORD = "url-pass-in-userinfo-9931"


def userinfo_echo(request: Request, reply: Replier) -> None:
    """A server (or a proxy in front of it) that quotes the URL it was configured with, credentials and all."""
    quoted = f"http://someone:{URL_PASSWORD}@api.internal/v1"
    reply.json(403, {"error": {"code": "forbidden", "message": f"no access via {quoted}"}})


def with_userinfo(url: str) -> str:
    return url.replace("http://", f"http://someone:{URL_PASSWORD}@", 1)


def test_a_password_in_the_api_url_stays_out_of_errors_repr_and_config_check() -> None:
    import subprocess
    import sys

    with HostileServer(userinfo_echo) as server:
        with dcdn(server) as plain:  # the server's own URL, then the same with a password in it
            pass
        cloud = gpucloud.connect("dcdncloud", base_url=with_userinfo(server.url), token=TOKEN)
        with cloud:
            failed = finishes_within(BOUND, cloud.list_instances)
            shown = f"{cloud.config!r} {cloud.config}"
        refused = finishes_within(
            BOUND,
            lambda: gpucloud.connect("dcdncloud", base_url=f"http://someone:{URL_PASSWORD}@api.example.com/v1"),
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")},
            "GPUCLOUD_CONFIG": "/nonexistent/gpucloud.toml",
            "GPUCLOUD_DCDNCLOUD_URL": with_userinfo(server.url),
            "GPUCLOUD_DCDNCLOUD_TOKEN": TOKEN,
        }
        command = [sys.executable, "-m", "gpucloud.cli", "config", "check", "--json"]
        check = subprocess.run(command, env=env, capture_output=True, text=True, timeout=BOUND, check=False)
    text = f"{failed} {failed.to_dict()} {shown} {refused} {check.stdout} {check.stderr}"
    figures.record("leaked secrets", text.count(URL_PASSWORD))
    record(URL_PASSWORD not in text)
    assert plain.config.base_url == server.url
    assert isinstance(failed, errors.AuthError), failed
    assert "no access via http://[REDACTED]@api.internal/v1" in str(failed)
    assert f"base_url='http://[REDACTED]@{server.url[len('http://') :]}'" in shown, shown
    assert isinstance(refused, errors.ValidationError) and refused.field == "base_url", refused
    assert "http://[REDACTED]@api.example.com/v1" in str(refused)
    rows = {row["provider"]: row for row in json.loads(check.stdout)}
    assert rows["dcdncloud"]["url"] == with_userinfo(server.url).replace(f"someone:{URL_PASSWORD}", "[REDACTED]"), (
        check.stdout
    )
    assert URL_PASSWORD not in text


def test_a_password_in_the_api_url_stays_out_of_ansible_output(tmp_path: Path) -> None:
    """api_url is not a no_log option: its password would show in the task's invocation and in -vvv output."""
    from tests.ansible.conftest import Ansible, base_env
    from tests.ansible.test_modules import task

    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    with HostileServer(userinfo_echo) as server:
        env = {**base_env(home), "GPUCLOUD_DCDNCLOUD_TOKEN": TOKEN}
        url = with_userinfo(server.url)
        play = Ansible(env, tmp_path).play(
            [
                task("instance_info", "by_option", provider="dcdncloud", api_url=url, ignore_errors=True),
                task("instance_info", "by_env", provider="dcdncloud", ignore_errors=True),
            ],
            extra_env={"ANSIBLE_VERBOSITY": "3", "GPUCLOUD_DCDNCLOUD_URL": url},
        )
    text = play.output + json.dumps(play.results)
    figures.record("leaked secrets", text.count(URL_PASSWORD))
    record(URL_PASSWORD not in text and play["by_option"].get("failed") is True)
    for name in ("by_option", "by_env"):
        assert play[name]["failed"] is True and play[name]["error_class"] == "AuthError", play[name]
    assert URL_PASSWORD not in text


def test_a_password_in_the_api_url_stays_out_of_pulumi_errors(pulumi_project: Path, keypair: tuple[Path, str]) -> None:
    """Through the real dynamic-provider gRPC server, with the URL as stack config: the failed create's error
    details and the provider process's stderr."""
    from tests.contract.specs import INSTANCE
    from tests.pulumi.conftest import PROJECT, PROVIDERS, TYPES
    from tests.pulumi.harness import DynamicProviderHarness, ProviderFailed, Secret

    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    with HostileServer(userinfo_echo) as server:
        config = {
            "gpucloud:dcdncloud_url": with_userinfo(server.url),
            "gpucloud:dcdncloud_token": Secret(TOKEN),
        }
        h = DynamicProviderHarness(pulumi_project, project=PROJECT, env=env, config=config).start()
        props = {"provider": "dcdncloud", "name": "url-pass", "wait_timeout": 30, **INSTANCE["dcdncloud"]}
        try:
            failed = finishes_within(BOUND, lambda: h.up("url-pass", PROVIDERS["instance"], props, TYPES["instance"]))
        finally:
            assert h.process is not None and h.process.stderr is not None
            h.process.terminate()
            stderr = h.process.stderr.read().decode(errors="replace")
            h.stop()
    text = f"{failed} {stderr}"
    figures.record("leaked secrets", text.count(URL_PASSWORD))
    record(isinstance(failed, ProviderFailed) and URL_PASSWORD not in text)
    assert isinstance(failed, ProviderFailed), failed
    assert "no access via http://[REDACTED]@api.internal/v1" in failed.details, failed.details
    assert URL_PASSWORD not in text


# --- overlapping operations on one adapter ----------------------------------------------------------------
class DeletingServer:
    """``SLOW_ID`` never answers in time; ``keep_id(n)`` are running until deleted, then deleting until released."""

    def __init__(self) -> None:
        self.deleted: set[str] = set()
        self.release = threading.Event()
        self.slow_asked = threading.Event()
        self.gets_after_release = 0

    def __call__(self, request: Request, reply: Replier) -> None:
        instance_id = request.path.rsplit("/", 1)[-1]
        if instance_id == SLOW_ID:
            self.slow_asked.set()
            reply.stopping.wait(30)  # far past the short operation's 1 s; the client gives up first
            return
        if request.method == "DELETE":
            self.deleted.add(instance_id)
            reply.json(200, {})
        elif instance_id not in self.deleted:
            reply.json(200, instance(instance_id, "running"))
        elif not self.release.is_set():
            reply.json(200, instance(instance_id, "destroying"))
        else:
            reply.json(404, {"error": {"code": "not_found", "message": "gone"}})


def pulumi_cached(server: HostileServer, **options: Any) -> gpucloud.Provider:
    """The adapter the Pulumi provider process shares between all RPCs (its per-process cache)."""
    from pulumi_gpucloud._provider import _adapter

    return _adapter("dcdncloud", {"base_url": server.url, "token": TOKEN, **{k: str(v) for k, v in options.items()}})


@pytest.mark.parametrize("adapter", [dcdn, pulumi_cached], ids=["connect", "pulumi-cache"])
def test_overlapping_operations_on_one_adapter_keep_their_own_deadlines(adapter: Any) -> None:
    """As parallel Pulumi steps share one cached adapter and fleet members one transport: a 1 s operation and
    two 60 s ones at once, on three threads. The short one ends with DeadlineReached; the long ones, still
    polling well after the short deadline passed, finish; and no deadline is left behind on the adapter."""
    from concurrent.futures import ThreadPoolExecutor

    script = DeletingServer()
    with HostileServer(script) as server, adapter(server, poll_interval=0.05) as cloud, ThreadPoolExecutor(3) as pool:
        short = pool.submit(ensure.ensure_instance_absent, cloud, instance_id=SLOW_ID, wait_timeout=1)
        assert script.slow_asked.wait(BOUND), "the short operation reached the server"
        long = [
            pool.submit(ensure.ensure_instance_absent, cloud, instance_id=keep_id(n), wait_timeout=60) for n in (1, 2)
        ]
        short_error = short.exception(BOUND)
        # The long operations keep polling past the short one's deadline; then their instances go away.
        polled = len(server.requests)

        def polled_on() -> bool:
            return len(server.requests) >= polled + 4 or all(f.done() for f in long)

        finishes_within(BOUND, lambda: _until(polled_on))
        script.release.set()
        outcomes = [f.exception(BOUND) or f.result() for f in long]
        after = finishes_within(BOUND, lambda: cloud.get_instance(keep_id(3)))
    contained = isinstance(short_error, DeadlineReached) and all(isinstance(o, ensure.Outcome) for o in outcomes)
    record(contained)
    for outcome in outcomes:
        assert isinstance(outcome, ensure.Outcome), f"a long operation met the short one's deadline: {outcome!r}"
        assert outcome.changed and outcome.action == "delete"
    assert isinstance(after, gpucloud.Instance), f"a later operation on the adapter failed: {after!r}"
    assert isinstance(short_error, DeadlineReached), short_error


def _until(condition: Any) -> None:
    import time

    while not condition():
        time.sleep(0.02)

"""Edge cases of retry, pacing and auth, against scripted HTTP answers (the emulator covers the happy paths)."""

import json
from collections.abc import Callable

import httpx
import pytest

from gpucloud import errors
from gpucloud.auth import OAuth2ClientCredentials
from gpucloud.ratelimit import TokenBucket
from gpucloud.transport import DeadlineReached, ResponseLost, Transport

Handler = Callable[[httpx.Request], httpx.Response]


def map_error(response: httpx.Response) -> errors.GpuCloudError:
    body = response.json() if response.content else {}
    if response.status_code == 429:
        return errors.RateLimited("slow down", retry_after=float(response.headers.get("retry-after", 0)))
    if body.get("code") == "service_unavailable":
        return errors.NoCapacity("no capacity", status_code=503)
    if response.status_code == 404:
        return errors.NotFound("missing", status_code=404)
    return errors.ProviderError(f"http {response.status_code}", status_code=response.status_code)


def scripted(*answers: httpx.Response | type[Exception]) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, type):
            raise answer("scripted failure")
        return answer

    return handler, seen


def transport(handler: Handler, **options: object) -> Transport:
    return Transport(
        provider="test", base_url="http://api.test/v1", map_error=map_error, backoff_base=0.001,
        http_transport=httpx.MockTransport(handler), **options,  # type: ignore[arg-type]
    )  # fmt: skip


def test_get_retries_5xx_and_429_then_succeeds() -> None:
    handler, seen = scripted(
        httpx.Response(500, json={}),
        httpx.Response(429, json={}, headers={"Retry-After": "0"}),
        httpx.Response(200, json=[1]),
    )
    assert transport(handler).get_json("things") == [1]
    assert len(seen) == 3
    assert str(seen[0].url) == "http://api.test/v1/things"


def test_post_is_not_retried_after_a_500() -> None:
    handler, seen = scripted(httpx.Response(500, json={}), httpx.Response(200, text="id"))
    with pytest.raises(errors.ProviderError, match="http 500"):
        transport(handler).request("POST", "things", json={})
    assert len(seen) == 1


def test_post_whose_response_is_lost_raises_response_lost() -> None:
    handler, seen = scripted(httpx.RemoteProtocolError, httpx.Response(200, text="id"))
    with pytest.raises(ResponseLost):
        transport(handler).request("POST", "things", json={})
    assert len(seen) == 1


def test_post_is_retried_when_the_connection_never_opened() -> None:
    handler, seen = scripted(httpx.ConnectError, httpx.Response(200, text="id-1"))
    assert transport(handler).request("POST", "things", json={}).text == "id-1"
    assert len(seen) == 2


def test_no_capacity_is_final_even_though_it_is_a_503() -> None:
    handler, seen = scripted(httpx.Response(503, json={"code": "service_unavailable"}), httpx.Response(200, json=[]))
    with pytest.raises(errors.NoCapacity):
        transport(handler).get_json("things")
    assert len(seen) == 1


def test_retries_stop_after_max_retries() -> None:
    handler, seen = scripted(*[httpx.Response(502, json={})] * 4)
    with pytest.raises(errors.ProviderError, match="http 502"):
        transport(handler, max_retries=2).get_json("things")
    assert len(seen) == 3


def test_client_errors_are_not_retried() -> None:
    handler, seen = scripted(httpx.Response(404, json={}))
    with pytest.raises(errors.NotFound):
        transport(handler).get_json("things/1")
    assert len(seen) == 1


def test_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", waits.append)
    handler, _ = scripted(httpx.Response(429, json={}, headers={"Retry-After": "7"}), httpx.Response(200, json={}))
    transport(handler).get_json("x")
    assert len(waits) == 1 and 7.0 <= waits[0] < 7.1


def test_token_bucket_paces_after_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(60, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        bucket.acquire()
    # two free, then one per second
    assert slept == pytest.approx([1.0, 1.0, 1.0])


def test_token_bucket_never_lets_more_than_the_limit_through_in_any_sliding_minute() -> None:
    """60/min with a burst of 10: the burst, then one a second, until the 61st request, which waits for the
    minute after the first (a provider counting a sliding minute would answer it 429)."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(60, burst=10, clock=lambda: now[0], sleep=sleep)
    sent = []
    for _ in range(130):
        bucket.acquire()
        sent.append(now[0])
    assert sent[:10] == [0.0] * 10 and sent[10] == pytest.approx(1.0)
    assert min(later - first for first, later in zip(sent, sent[60:], strict=False)) >= 60.0
    assert sent[60] == pytest.approx(60.5)  # not 51 s, where the bucket alone would put it


def test_token_bucket_gives_back_a_refused_reservation() -> None:
    now = [0.0]
    bucket = TokenBucket(2, burst=1, clock=lambda: now[0], sleep=lambda _: None)
    assert bucket.acquire() == 0.0
    assert bucket.acquire(within=1.0) is None  # the next is 30 s away: not taken
    assert bucket.acquire() == pytest.approx(30.0)


class FakeTokenServer:
    def __init__(self) -> None:
        self.grants: list[str] = []
        self.valid = {"tok-1"}
        self.refresh_ok = True
        self.credentials_ok = True
        self.issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token"):
            body = json.loads(request.content)
            self.grants.append(body["grant_type"])
            ok = self.refresh_ok if body["grant_type"] == "refresh_token" else self.credentials_ok
            if not ok:
                return httpx.Response(401, json={"code": "unauthorized_request", "message": "bad grant"})
            self.issued += 1
            token = f"tok-{self.issued}"
            self.valid = {token}
            return httpx.Response(
                200,
                json={
                    "access_token": token,
                    "refresh_token": f"r-{self.issued}",
                    "expires_in": 3600,
                    "token_type": "Bearer",
                    "scope": "x",
                },
            )
        if request.headers.get("authorization", "").removeprefix("Bearer ") in self.valid:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(401, json={"code": "unauthorized_request", "message": "expired"})


def oauth_transport(server: FakeTokenServer, clock: Callable[[], float]) -> tuple[Transport, OAuth2ClientCredentials]:
    auth = OAuth2ClientCredentials("http://api.test/v1/oauth2/token", "cid", "csecret", provider="test", clock=clock)
    return transport(server, auth=auth), auth


def test_oauth_refreshes_early_before_expiry() -> None:
    server, now = FakeTokenServer(), [0.0]
    api, _ = oauth_transport(server, lambda: now[0])
    api.get_json("balance")
    now[0] = 3600 - 30  # inside the early-refresh window
    api.get_json("balance")
    assert server.grants == ["client_credentials", "refresh_token"]


def test_oauth_recovers_from_a_revoked_token_with_one_refresh() -> None:
    server, now = FakeTokenServer(), [0.0]
    api, _ = oauth_transport(server, lambda: now[0])
    api.get_json("balance")
    server.valid = set()  # revoked server-side
    assert api.get_json("balance") == {"ok": True}
    assert server.grants == ["client_credentials", "refresh_token"]


def test_oauth_falls_back_to_client_credentials_then_fails_cleanly() -> None:
    server, now = FakeTokenServer(), [0.0]
    api, _ = oauth_transport(server, lambda: now[0])
    api.get_json("balance")
    server.valid, server.refresh_ok = set(), False
    assert api.get_json("balance") == {"ok": True}
    assert server.grants == ["client_credentials", "refresh_token", "client_credentials"]
    server.valid, server.refresh_ok, server.credentials_ok = set(), False, False
    with pytest.raises(errors.AuthError, match="could not obtain an access token: bad grant") as info:
        api.get_json("balance")
    assert "csecret" not in str(info.value)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("ready_at", [5.0, 30.0, 120.0, 600.0])
def test_poll_sees_a_state_soon_after_it_happens_with_few_calls(ready_at: float) -> None:
    from gpucloud.waiters import poll

    fake = FakeTime()
    calls: list[float] = []

    def fetch() -> bool:
        calls.append(fake.now)
        return fake.now >= ready_at

    poll(fetch, done=bool, describe=str, timeout=3600, what="x", clock=lambda: fake.now, sleep=fake.sleep)
    lag = calls[-1] - ready_at
    assert lag <= max(2.5, 0.1 * ready_at) + 1e-9
    if ready_at == 30.0:
        assert len(calls) <= 15
    assert len(calls) <= 60


def test_poll_timeout_names_the_last_state() -> None:
    from gpucloud.waiters import poll

    fake = FakeTime()
    with pytest.raises(errors.Timeout, match="last state: booting") as info:
        poll(
            lambda: "booting", done=lambda s: False, describe=str, timeout=20, what="box",
            clock=lambda: fake.now, sleep=fake.sleep,
        )  # fmt: skip
    assert info.value.last_status == "booting" and fake.now == pytest.approx(20)


def test_a_body_larger_than_the_cap_is_refused_after_decoding() -> None:
    """Counted after decompression: a small gzip body that unpacks to more than the cap is refused too."""
    import gzip

    packed = gzip.compress(b"[" + b"0," * 50_000 + b"0]")
    handler, seen = scripted(httpx.Response(200, content=packed, headers={"Content-Encoding": "gzip"}))
    with pytest.raises(errors.ProviderError, match="larger than 10000 bytes"):
        transport(handler, max_response_bytes=10_000).get_json("things")
    assert len(packed) < 10_000 and len(seen) == 1


def test_configured_secrets_are_redacted_from_bodies_and_errors() -> None:
    handler, _ = scripted(
        httpx.Response(200, json={"name": "has s3cr3t-token inside"}),
        httpx.Response(404, json={}),
    )

    def echoing(response: httpx.Response) -> errors.GpuCloudError:
        return errors.NotFound("no such thing for s3cr3t-token", details={"seen": "s3cr3t-token"}, status_code=404)

    api = Transport(
        provider="test", base_url="http://api.test/v1", map_error=echoing,
        http_transport=httpx.MockTransport(handler), secrets=["s3cr3t-token", None, "ab"],
    )  # fmt: skip
    assert api.get_json("x") == {"name": "has [REDACTED] inside"}
    with pytest.raises(errors.NotFound) as info:
        api.get_json("y")
    assert "s3cr3t-token" not in str(info.value) and "s3cr3t-token" not in str(info.value.to_dict())
    assert info.value.details == {"seen": "[REDACTED]"}


def test_an_operation_deadline_is_per_thread_and_workers_inherit_it() -> None:
    """deadline() sets the limit for this thread's operation only; pagination workers (a copy of the caller's
    context) see it, an unrelated thread does not."""
    import threading

    from gpucloud.pagination import fetch_each

    api = transport(lambda request: httpx.Response(200, json={}))
    seen_elsewhere: list[float | None] = []
    with api.deadline(50):
        in_workers = fetch_each(lambda key: api.time_left(), ["a", "b", "c"])
        other = threading.Thread(target=lambda: seen_elsewhere.append(api.time_left()))
        other.start()
        other.join()
    assert all(left is not None and 0 < left <= 50 for left in in_workers.values()), in_workers
    assert seen_elsewhere == [None]
    assert api.time_left() is None, "nothing is left behind after the block"


def test_a_retry_after_longer_than_retry_max_seconds_is_not_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    handler, seen = scripted(httpx.Response(429, json={}, headers={"Retry-After": "99999999"}))
    api = transport(handler, retry_max_seconds=120)
    api.sleep = waits.append
    with pytest.raises(errors.RateLimited):
        api.get_json("x")
    assert waits == [] and len(seen) == 1


def test_pacing_never_waits_past_the_operations_time_limit() -> None:
    """Under a 1 s pace with 0.5 s left, the second request is not sent and nothing sleeps past the limit."""
    fake = FakeTime()
    handler, seen = scripted(httpx.Response(200, json={}), httpx.Response(200, json={}))
    api = transport(handler)
    api.clock = lambda: fake.now
    api.limiter = TokenBucket(60, burst=1, clock=lambda: fake.now, sleep=fake.sleep)
    with api.deadline(0.5):
        api.get_json("first")
        with pytest.raises(DeadlineReached, match="pacing"):
            api.get_json("second")
    assert len(seen) == 1 and fake.now == 0.0
    assert api.limiter.acquire() == 1.0, "the refused request gave its token back (else the wait would be 2 s)"


def test_fleet_workers_inherit_the_fleet_limit_and_keep_their_own() -> None:
    """run_concurrently (fleet members): each worker sees the caller's limit; a member's own shorter limit,
    set inside its worker, is its own: the siblings and the caller never see it."""
    import threading

    from gpucloud.fleet import run_concurrently

    api = transport(lambda request: httpx.Response(200, json={}))
    together = threading.Barrier(3)

    def member(seconds: float) -> tuple[float | None, float | None]:
        inherited = api.time_left()
        with api.deadline(seconds):
            together.wait(timeout=30)  # all three members inside their own limits at once
            own = api.time_left()
        return inherited, own

    with api.deadline(100):
        results = run_concurrently(member, [5.0, 20.0, 60.0], workers=3)
        after = api.time_left()
    for seconds, result in zip([5.0, 20.0, 60.0], results, strict=True):
        assert isinstance(result, tuple), result
        inherited, own = result
        assert inherited is not None and 60 < inherited <= 100
        assert own is not None and seconds - 5 < own <= seconds, (seconds, own)
    assert after is not None and after > 60, "the caller's limit is untouched by its members'"

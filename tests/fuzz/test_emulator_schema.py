"""schemathesis over the emulator's own OpenAPI document: no provider route may answer 5xx to any request,
and every 4xx must be an error body the provider's client can read (a classified error with a message).

Each provider's operations are called in-process with generated valid and invalid parameters and bodies
(authenticated, so requests get past the auth check). Faults are off. A 5xx is a failure unless it is one the
real API documents for exactly that input (listed in DOCUMENTED_5XX with its message); an unhandled emulator
exception always fails (its body says "Internal server error").
"""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

import gpucloud
from gpucloud import errors
from gpucloud.emulator.app import PROVIDERS, build_app
from gpucloud.emulator.world import EmulatorSettings, World
from gpucloud.providers import provider_class

pytestmark = pytest.mark.fuzz
EXAMPLES = int(os.environ.get("GPUCLOUD_SCHEMA_EXAMPLES", "20"))  # raise locally for a deeper run

# (provider, method, path) -> the message of a 5xx the provider's API documents for a malformed request.
# ComputeStacks (Rails) renders exceptions raised inside an action as 500 {"errors": [message]}
# (computestacks-resources.md, "Errors"): a missing required root parameter, or an unknown location_id.
DOCUMENTED_5XX: dict[tuple[str, str, str], set[str]] = {
    ("computestacks", "POST", "/api/orders"): {
        "param is missing or the value is empty: order",
        "undefined method `allow_user?' for nil:NilClass",
    },
    ("computestacks", "POST", "/api/container_services/{service_id}/resize"): {
        "param is missing or the value is empty: container_service"
    },
}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    world = World(EmulatorSettings(ssh=False, rate_limits={}, provision_seconds=0.05))
    world.start()
    yield world
    world.shutdown()


@pytest.fixture(scope="module")
def schema(world: World) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", build_app(world))


def _auth(provider: str, world: World) -> dict[str, str]:
    if provider == "datacrunch":
        return {"Authorization": "Bearer " + world.issue_tokens("datacrunch").access_token}
    creds = world.settings.credentials[provider]
    if provider == "computestacks":
        basic = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
        return {"Authorization": "Basic " + basic}
    return {"Authorization": "Bearer " + creds["token"]}


def _message(body: object) -> str:
    if isinstance(body, dict):
        for key in ("errors", "message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, list) and value:
                return str(value[0])
            if isinstance(value, str):
                return value
    return str(body)


def _misread(adapter: gpucloud.Provider, case: schemathesis.Case, response: schemathesis.Response) -> str | None:
    """Why the client would misread this 4xx (as an unclassified provider failure, or without a message)."""
    headers = [(k, v) for k, values in response.headers.items() for v in values]
    wire = httpx.Response(
        response.status_code,
        headers=headers,
        content=response.content,
        request=httpx.Request(case.method, "http://emulator" + case.formatted_path),
    )
    error = adapter._map_error(wire)
    if isinstance(error, errors.ProviderError) or not error.message:
        return f"{case.method} {case.formatted_path} -> {response.status_code}: the client reads {error!r}"
    return None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("provider", [p.name for p in PROVIDERS])
def test_provider_routes_answer_malformed_requests_cleanly(
    schema: schemathesis.BaseSchema, world: World, provider: str, mode: GenerationMode
) -> None:
    spec = next(p for p in PROVIDERS if p.name == provider)
    headers = _auth(provider, world)
    operations = [r.ok() for r in schema.get_all_operations() if r.ok().path.startswith(spec.prefix + "/")]
    assert operations, f"the OpenAPI document lists no {provider} operation"
    statuses: Counter[int] = Counter()
    adapter = provider_class(provider).__new__(provider_class(provider))  # its error mapping needs no connection
    failures: list[str] = []
    for operation in operations:
        relative = operation.path[len(spec.prefix) :]
        allowed = DOCUMENTED_5XX.get((provider, operation.method.upper(), relative), set())

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            if 400 <= response.status_code < 500:
                problem = _misread(adapter, case, response)
                if problem:
                    failures.append(problem)
                return
            if response.status_code < 500:
                return
            try:
                message = _message(response.json())
            except ValueError:
                message = response.text
            if message not in allowed:  # noqa: B023
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} {message!r}")

        try:
            call()
        except Exception as exc:
            if type(exc).__name__ not in {"Unsatisfiable", "InvalidArgument"}:
                raise
    assert sum(statuses.values()) > 0
    assert not failures, "\n".join(sorted(set(failures))[:20])

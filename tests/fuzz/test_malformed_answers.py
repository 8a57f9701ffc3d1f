"""Arbitrary success answers, drawn by hypothesis, for every read each adapter makes: the adapter returns models
or raises a GpuCloudError, never a raw Python error (KeyError, TypeError, AttributeError, a pydantic error...).

Bodies are built from the keys the adapters read (every ``Wire`` shape's fields and the envelopes around them)
with values of any JSON type, so they get past the first check often and reach the deep ones. In process
(``httpx.MockTransport``), as fast as the shapes themselves; the hostile-server runs are in
tests/faults/test_malformed.py.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpucloud
from gpucloud import errors
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorSettings
from gpucloud.providers import implemented, provider_class
from gpucloud.wire import Wire

from .. import figures
from .strategies import FUZZ

pytestmark = pytest.mark.fuzz
ENVELOPES = (
    "instances", "instance", "results", "data", "pagination", "container_services", "container_service", "projects",
    "bastions", "orders", "order", "locations", "products", "container_images", "volume_params", "volumes", "volume",
    "ssh_keys", "ssh_key", "plans", "regions", "images", "templates", "gpus",
)  # fmt: skip
# A page answer repeated forever would be walked forever; after this many answers to one path, 404.
ANSWERS_PER_PATH = 3


def _shape_keys() -> list[str]:
    for provider in implemented():
        importlib.import_module(provider_class(provider).__module__)
    seen: set[str] = set(ENVELOPES)
    pending = list(Wire.__subclasses__())
    while pending:
        shape = pending.pop()
        pending.extend(shape.__subclasses__())
        seen |= set(shape.model_fields)
    return sorted(seen)


KEYS = _shape_keys()
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["running", "completed", "22", "2024-05-01T10:00:00Z", "not a date", "h100", "1x-h100"]),
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=24,
)
# Resources with an id (so they pass the first check) and any other keys the adapters read.
IDS = st.one_of(st.text(min_size=1, max_size=6), st.integers(0, 99))
FIELDS = st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6)
ITEM = st.tuples(IDS, FIELDS).map(lambda pair: {**pair[1], "id": pair[0]})
NEAR = st.recursive(
    ITEM,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=6,
)
BODY = st.one_of(JSON, NEAR)


def answering(bodies: list[Any], served: Counter[str]) -> httpx.MockTransport:
    """Token grants succeed; every other request gets the next drawn body (cycling), 404 after a few per path."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith(("/oauth2/token", "/oauth/token")):
            return httpx.Response(200, json={"access_token": "fuzz", "expires_in": 3600})
        served[path] += 1
        if served[path] > ANSWERS_PER_PATH:
            return httpx.Response(404, json={})
        body = bodies[sum(served.values()) % len(bodies)]
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})

    return httpx.MockTransport(handle)


def reads(cloud: gpucloud.Provider) -> dict[str, Callable[[], object]]:
    ops: dict[str, Callable[[], object]] = {
        "list instances": cloud.list_instances,
        "get instance": lambda: cloud.get_instance("i-1"),
    }
    if cloud.supports(Capability.VOLUMES):
        ops |= {"list volumes": cloud.list_volumes, "get volume": lambda: cloud.get_volume("v-1")}
    if cloud.supports(Capability.SSH_KEYS):
        ops |= {"list ssh keys": cloud.list_ssh_keys, "get ssh key": lambda: cloud.get_ssh_key("k-1")}
    if cloud.supports(Capability.OFFERS):
        ops["offers"] = cloud.list_offers
    # Catalogues made of documentation examples (CloudNexus) send no request: nothing to malform.
    if cloud.supports(Capability.IMAGES) and Capability.IMAGES not in cloud.example_catalogues:
        ops["images"] = cloud.list_images
    if cloud.supports(Capability.LOCATIONS) and Capability.LOCATIONS not in cloud.example_catalogues:
        ops["locations"] = cloud.list_locations
    return ops


CREDENTIALS = EmulatorSettings().credentials


def adapter(provider: str, transport: httpx.BaseTransport | None = None) -> gpucloud.Provider:
    # Never sent anywhere: a MockTransport answers. https, since plain http is refused for remote hosts.
    options = {**CREDENTIALS[provider], "base_url": "https://fuzz.invalid/api", "max_retries": 0}
    config = gpucloud.load_config(provider, {**options, "requests_per_minute": 10**6}, environ={})
    return provider_class(provider)(config, http_transport=transport)


OPS = [(p, op) for p in implemented() for op in reads(adapter(p))]


@pytest.mark.parametrize(("provider", "operation"), OPS, ids=[f"{p}-{o}" for p, o in OPS])
@settings(FUZZ, max_examples=20)
@given(bodies=st.lists(BODY, min_size=1, max_size=4))
def test_any_success_answer_gives_models_or_a_gpucloud_error(provider: str, operation: str, bodies: list[Any]) -> None:
    served: Counter[str] = Counter()
    cloud = adapter(provider, answering(bodies, served))
    figures.record("malformed answers served")
    try:
        reads(cloud)[operation]()
    except errors.GpuCloudError:
        pass  # a clean failure; the hostile-server tests check each is a MalformedResponse naming the request
    except Exception as raw:
        figures.record("raw errors on malformed answers")
        raise AssertionError(f"{provider} {operation}: raw {type(raw).__name__}: {raw}") from raw
    finally:
        cloud.close()

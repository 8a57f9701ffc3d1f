"""ComputeStacks lists ask for large pages (api-pagination sets no maximum) and follow a server that caps them."""

from __future__ import annotations

import httpx

from gpucloud import InstanceSpec
from gpucloud.config import load_config
from gpucloud.emulator import EmulatorServer
from gpucloud.ensure import ensure_instance
from gpucloud.providers.computestacks import PER_PAGE, ComputeStacks
from tests.conftest import connect

from .specs import INSTANCE

CAP = 2


class _CappedServer(httpx.BaseTransport):
    """The emulator behind a server configured with ``max_per_page``: a larger per_page is served as CAP."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.per_page_asked: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        asked = request.url.params.get("per_page")
        if asked is not None and request.url.path.endswith("/container_services"):
            self.per_page_asked.append(asked)
            request.url = request.url.copy_set_param("per_page", str(min(int(asked), CAP)))
        return self._inner.handle_request(request)


def test_services_come_in_one_large_page_or_in_the_pages_a_capped_server_allows(
    emulator: EmulatorServer, overrides: dict[str, dict[str, object]]
) -> None:
    with connect(overrides, "computestacks") as cloud:
        for index in range(CAP + 1):  # more than one capped page
            spec = InstanceSpec(name=f"pages-{index}", **INSTANCE["computestacks"])
            ensure_instance(cloud, spec, wait=True, wait_timeout=60)
        since = len(emulator.world.requests)
        expected = sorted(i.id for i in cloud.list_instances())
    listed = [r for r in emulator.world.requests[since:] if r.path == "/api/container_services"]
    assert len(listed) == 1 and len(expected) < PER_PAGE, "one page holds every service"

    capped = _CappedServer()
    config = load_config("computestacks", overrides["computestacks"], environ={})
    with ComputeStacks(config, http_transport=capped) as cloud:
        assert sorted(i.id for i in cloud.list_instances()) == expected
    # The first request asked for the large page; the rest asked for the size the server said it used.
    assert capped.per_page_asked[0] == str(PER_PAGE)
    assert len(capped.per_page_asked) == -(-len(expected) // CAP)
    assert set(capped.per_page_asked[1:]) == {str(CAP)}

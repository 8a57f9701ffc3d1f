"""Built-in emulator of GPU cloud provider APIs: a real HTTP server (FastAPI + uvicorn), real sshd per
running instance, injectable faults. Needs the ``emulator`` extra (fastapi, uvicorn).

    with EmulatorServer(provision_seconds=0.3) as emu:
        client = verda.VerdaClient(**emu.credentials["datacrunch"], base_url=emu.base_url("datacrunch"))

Credentials are random per run (``emu.credentials``); the control API needs ``emu.control_headers``.

Layout (moto's split of state and wire):

- :mod:`.world`: what every provider shares and nothing about any one of them: stores of wire-shaped dicts per
  provider and kind, the lock, the lifecycle clock (:class:`~.world.Step` chains that also start and stop sshd),
  tokens, capacity and stock, balances, rate limits, faults, the request log.
- one part per provider, named as in :mod:`gpucloud.registry`. A large one is a package: ``models.py`` (its
  catalogue and state machine: checks, creates, lifecycle steps, seeding, the ledger; no routes) and
  ``responses.py`` (routes, request and response shapes, error bodies, ``SPEC``), plus ``catalogue.py`` /
  ``auth.py`` where that keeps every file under 800 lines (ComputeStacks). A small one (CloudNexus, dcdncloud)
  is one module with the same sections. No part imports another provider's part, nor the adapters in
  :mod:`gpucloud.providers` (the emulator is the outside truth they are tested against).
- :mod:`.base` (``ProviderSpec``, ``ProviderError``, ledger lines, key parsing) and :mod:`.common` (find-or-404,
  error codes, validation text, pages, request predicates): helpers the parts share.
- :mod:`.app` mounts every ``SPEC`` under its registered prefix with the control API; :mod:`.middleware`
  applies faults and logs requests; :mod:`.server` runs it; :mod:`.client` tells clients how to reach it.

Adding an endpoint to a provider: put the state change in the part's models (a function taking the world,
called with ``world.lock`` held; schedule later changes with ``world.run_steps``) and the route in its
responses, on the part's router, answering in the provider's shape; look records up with
:func:`.common.find` and raise the part's own errors (``ProviderError`` renders with its ``error_body``). If
the endpoint creates something, add its path to the ``posts_to(...)`` of ``SPEC`` (faults treat creates
apart) and what it bills or keeps to the part's ``ledger``. Test it over HTTP in tests/emulator and, once an
adapter uses it, in tests/contract.

Adding a provider: one :class:`~gpucloud.registry.Registration` line (name, default URL, emulator prefix,
credential fields, published rate limit, starting balance), its adapter in ``gpucloud.providers.<name>`` and
its part ``gpucloud.emulator.<name>`` exposing ``SPEC = ProviderSpec(name=..., router=..., error_body=...)``;
the app, the client settings and the random credentials follow the registry (tests/unit/test_registry.py
checks they agree). Controls only this provider has go on ``SPEC.control`` (served under
``/_emulator/<name>``).
"""

from gpucloud.emulator.server import EmulatorServer, serve
from gpucloud.emulator.world import EmulatorSettings, FaultRule, Faults, World

__all__ = ["EmulatorServer", "EmulatorSettings", "FaultRule", "Faults", "World", "serve"]

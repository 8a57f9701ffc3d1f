"""Voltage Park On-Demand API, emulated under ``/voltagepark/api/v1``.

Parts: :mod:`.models` (catalogue and state: VMs, storage, keys, bare-metal rentals and their lifecycle) and
:mod:`.responses` (routes, response shapes, ``SPEC``).

Follows /work/shared/api-docs/voltagepark.txt. The real service is a FastAPI app, so request validation
errors are FastAPI's own 422 ``{"detail": [...]}`` and other errors are ``{"detail": "message"}``.
Auth, per endpoint as the doc's examples show it: ``x-api-token: <token>`` on the organization SSH-key
and storage endpoints (``/organization/ssh-keys*``, ``/storage*``), ``Authorization: Bearer <token>`` on
all others; the other header alone is refused (401 naming the header to send), so a client that sends the
wrong one is caught. The endpoints documented without auth (instant-deploy presets, bare-metal locations,
cloud-init validation) stay open. Lists use ``limit``/``offset`` with the documented
per-endpoint default and maximum (above the maximum -> 422) and answer
``{"results", "total_result_count", "has_previous", "has_next"}``. Ids are UUIDs (a malformed id -> 422).

Choices where the docs are silent:
- VM statuses. Steady states come from a third-party typed client of this API (``Running``, ``Stopped``,
  ``StoppedDisassociated``); the transitional ones are the emulator's own. With P = ``provision_seconds``:
  create -> ``Provisioning`` -> ``Running`` (P); power ``stopped`` -> ``Stopping`` -> ``Stopped`` (P/2);
  ``stopped_disassociated`` -> ``Stopping`` -> ``StoppedDisassociated`` (P/2, releases the GPUs: starting
  again needs free capacity, else 400); ``started`` -> ``Starting`` -> ``Running`` (P);
  ``DELETE`` -> 202, ``Terminating`` (sshd stops at once), gone after P/2 (then 404; the list only shows
  unterminated VMs). ``Running`` implies sshd already answers.
- Power enum: ``started`` | ``stopped`` | ``stopped_disassociated`` (the third from the same typed client,
  matching the docs' "disassociating resources"). Asking for the state a VM is already in (or heading to)
  is a 200 no-op; power changes on a ``Terminating`` VM, or ``started`` while ``Stopping``, are 400.
- ``public_ip`` is ``""`` and ``port_forwards`` ``[]`` until the VM first reaches ``Running``; then the VM
  keeps a distinct 127.x.y.z and ``[{"internal_port": 22, "external_port": <unique port>}]``, and sshd
  listens on ``public_ip:external_port``.
- Capacity: a preset is available at a location while ``World.set_capacity("voltagepark", <preset id>,
  <location id or None>, ...)`` allows it and one of the location's hostnodes has enough free GPUs.
  Deploying a preset with no availability -> 400; an unknown ``config_id`` -> 400.
- SSH keys for a VM (``ssh_keys`` texts plus the selected organization keys) are fixed at creation, as the
  docs say for organization keys. Key names must be unique (duplicate -> 400).
- Storage: ``order_ids`` link a volume to VMs (attach); size can only grow (400); deleting a volume still
  linked to a live VM -> 400; terminating a VM unlinks it. Storage costs 0.017408 $/GB/hour, the
  ``hourly_rate_per_gb`` of the doc's ``/storage/hourly-rate`` example, so that endpoint prints it exactly
  at six places. A volume's ``rate_hourly`` is size x that rate at six places; the doc's storage-list
  example (100 GB at "0.017408") contradicts the per-GB example and is not reproduced.
- Billing: ``Stopped`` VMs are billed as running ones and ``StoppedDisassociated`` ones for storage only, as the
  power-status doc says. Billing transactions and monthly reports are empty.
- Bare metal: whole 8-GPU nodes (``specs_per_node``), a pool of its own per location and network type;
  ``/bare-metal/locations`` lists the free GPUs (whole nodes) per network type, 0 where
  ``World.set_capacity("voltagepark", "bare-metal-<network>", <location id or None>, False)`` switched it off.
  ``POST /bare-metal/``: ``gpu_count`` must be a multiple of 8 (400), an unknown location or storage id is a
  400, too few free nodes a 400 "No availability ...". A rental is ``Pending`` (``power_status`` too), then
  ``Running``/``Running`` after P with sshd on its first node's ``public_ip`` at the emulator's SSH port (bare
  metal has no port forward; one sshd per rental, not per node); user ``ubuntu``. Power ``stopped`` ->
  ``power_status`` ``Stopping`` -> ``Stopped`` (P/2), ``started`` -> ``Starting`` -> ``Running`` (P); asking
  for the current power state is a no-op; power or reboot while pending, terminating or changing -> 400.
  Reboot (``public_ips`` of its nodes, else 400) makes the rental ``Pending`` for P/2 (sshd restarts).
  ``DELETE`` -> 202, ``Terminating`` (sshd stops at once), gone after P/2. A rental is billed ``rate_hourly``
  (GPUs x the location's per-GPU price) until terminated, stopped or not. The doc lists no
  ``GET /bare-metal/{id}``, so there is none: the list is the only read. ``limit`` is a number (the doc's
  alternative string enum names no values).
"""

from gpucloud.emulator.voltagepark.models import PRESETS  # capacity is switched per preset id (tests read them)
from gpucloud.emulator.voltagepark.responses import SPEC

__all__ = ["PRESETS", "SPEC"]

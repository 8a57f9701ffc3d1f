"""DataCrunch / Verda public API v1, emulated under ``/datacrunch/v1``.

Parts: :mod:`.models` (catalogue and state: instances, volumes, keys, scripts and their lifecycle) and
:mod:`.responses` (routes, response shapes, ``SPEC``).

Follows /work/shared/api-docs/datacrunch.txt and the wire facts of the official ``verda`` SDK
(datacrunch-sdk-notes.md, section 9): JSON OAuth2 token endpoint, bearer auth everywhere else, every
error as ``{"code", "message"}`` (request validation errors are 400 ``invalid_request``, not 422),
bare-text ids from create endpoints, ``GET /sshkeys/{id}`` and ``GET /scripts/{id}`` as one-element lists.

Choices where the docs are silent:
- Create status codes: instances and volumes 202 (asynchronous work), ssh keys and scripts 201; the body is
  always the bare id as ``text/plain``. ``PUT /instances`` answers 202 with ``[{action, instanceId, status}]``
  (accepted by both official SDKs); ``PUT /volumes`` answers 202 with an empty body, except ``clone``
  (a JSON array of new ids). Deletes answer 204.
- Instance lifecycle (P = ``provision_seconds``): ``ordered`` -> ``provisioning`` (0.1 P) -> ``running``
  (P). At ``running`` sshd already accepts connections, and ``ip``, ``os_volume_id`` and ``volume_ids``
  are set. ``shutdown``: stays ``running`` until ``offline`` (P/2). ``start``/``boot``: ``provisioning``
  -> ``running`` (P). ``force_shutdown``: ``offline`` at once. ``hibernate``: ``starting_hibernation`` ->
  ``hibernating`` (P/2); ``restore``: ``restoring`` -> ``running`` (P).
- ``delete``: status ``deleting`` at once (sshd stops), then after P/2 the instance is gone:
  absent from ``GET /instances`` and ``GET /instances/{id}`` answers 404 ``not_found``. Volumes named
  in ``volume_ids`` are deleted with it (to trash, or for good with ``delete_permanently``); its other
  volumes, including the OS volume, are detached and kept.
- Actions invalid for the current status -> 400 ``invalid_request`` (nothing is applied if any id fails);
  unknown ids -> 404. ``start``/``boot`` need ``offline``; ``shutdown`` needs ``running``;
  ``hibernate`` needs ``running``/``offline``; ``restore`` needs ``hibernating``.
- Volumes: a deleted volume keeps answering ``GET /volumes/{id}`` with ``status: "deleted"``; if it went
  to trash it is listed by ``GET /volumes/trash`` until deleted permanently. Attach, detach and delete of
  an attached volume need its instance ``offline``. Resize only grows.
- Instance creation checks, in order: request shape, ``instance_type``, ``location_code`` (required),
  image (an image type the instance type supports, or a detached OS volume id), ``ssh_key_ids``,
  ``startup_script_id``, ``existing_volumes`` -> 400; balance < price per hour -> 402
  ``insufficient_funds``; no capacity (``World.set_capacity``) -> 503 ``service_unavailable``.
- ``GET /instance-types/price-history``: the doc lists only the path; the query (``num_of_months`` 1-12,
  default 1; ``currency``) and body (``{instance_type: [{date, fixed_price_per_hour,
  dynamic_price_per_hour, currency}]}``, one record per day, newest first) follow the Go SDK [ext].
  Prices here never change, so every record repeats today's price. It is declared before
  ``/instance-types/{instance_type}`` so that route does not shadow it.
- Spot: ``is_spot`` instances bill the type's ``spot_price``. The control API call
  ``POST /_emulator/datacrunch/discontinue {"instance_id"}`` does what the real cloud does when it takes a spot
  instance back: status ``discontinued`` (sshd stops, billing stops), each volume created with it handled per its
  ``on_spot_discontinue`` (``keep_detached``, the default here, detaches and keeps it; ``move_to_trash`` and
  ``delete_permanently`` delete it), existing volumes detached. The record stays listed until a ``delete``.
- Availability: ``GET /instance-availability[/{type}]`` answers from the world's capacity switches
  (``POST /_emulator/capacity``); ``isSpot`` is accepted, and spot and on-demand stock are the same switches.
- SSH keys of an instance are resolved when it is created (later key deletions do not lock anyone out,
  as with cloud-init on the real service); its sshd listens on ``<ip>:<settings.ssh_port>``.
"""

from gpucloud.emulator.datacrunch.responses import SPEC

__all__ = ["SPEC"]

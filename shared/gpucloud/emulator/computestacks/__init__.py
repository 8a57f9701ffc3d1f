"""ComputeStacks end-user API (controller 9.3.1), emulated under ``/computestacks``.

Parts: :mod:`.catalogue` (fixed locations, products, images), :mod:`.models` (state: orders, projects, services,
volumes, bastions and their lifecycle), :mod:`.auth` (versioning, Basic and Doorkeeper auth), :mod:`.responses`
(routes and response shapes, ``SPEC``).

Follows /work/shared/api-docs/computestacks.txt (auth, pagination, versioning, errors) and
computestacks-resources.md (routes, RABL views and services read from the open-source controller). Where the
published docs and the controller disagree, the controller wins:

- Versioning: ``Accept: application/json; api_version=NN`` (the first ``api_version=<digits>``). No version ->
  80. Supported 80; deprecated but served 51-71 (answered with ``API-Deprecated: true``); anything else ->
  422 ``{"errors": ["You requested an unsupported version (NN)"]}`` with ``API-Version-Supported: false``.
  The check runs before authentication (VersionCake's prepended filter) on every ``/api`` route except the
  OAuth token endpoint (a Doorkeeper controller). ``GET /api/version`` (the docs' ``/version`` is stale).
- Auth: HTTP Basic with API credentials (bad -> 401 ``{"errors": ["Not Authorized"]}``), or a Doorkeeper
  bearer token from ``POST /api/oauth/token`` (form or JSON body; client via Basic header or
  ``client_id``/``client_secret``). Grants: ``password`` (API credentials; the token acts as the user) and
  ``client_credentials`` (no user: scopes ``public``/``register`` only, so it reads the API version and
  public images and gets 403 ``insufficient_scope`` elsewhere). Refresh tokens are only issued for the
  authorization-code grant, which is not emulated, so none are issued. Doorkeeper's own errors keep its
  OAuth shape ``{"error", "error_description"}``: bad client 401 ``invalid_client``, bad user 400
  ``invalid_grant``; a request with no credentials at all 401 ``invalid_token``. An unknown or expired
  bearer token -> 403 ``{"errors": [...]}``, as computestacks.txt documents ("403 Forbidden: OAuth will
  return this for invalid tokens"; the controller notes say nothing about invalid tokens, so nothing
  contradicts it). The emulator enforces token expiry (the notes leave open whether 9.3.1 does for user
  tokens).
- Errors are ``{"errors": [...]}`` (422 validation, 404 with a message, 500 exceptions) except where the
  controller renders none: record-not-found is a 404 with an empty body (``head :not_found``), and Rails'
  own exceptions (malformed JSON 400, a routed path whose action does not exist 404, a missing template 500)
  answer ``{"status": N, "error": "<reason>"}``. Unknown ``/api`` paths -> 404
  ``{"errors": ["Unknown API Call. Please check the documentation."]}``.
- Pagination (api-pagination + will_paginate) on the lists the controller paginates: ``page``/``per_page``
  (default 30, no maximum), headers ``Total``, ``Per-Page`` and ``Link``; page or per_page below 1 -> 404.
  SSH keys, products, a service's containers and an image's volume params are not paginated.
- Orders are the only way to create projects, services and volumes. ``POST /api/orders`` validates like
  ``BuildOrderService`` (422 with its messages, an unknown ``location_id`` -> the 500 its nil region causes)
  and answers 201; with P = ``provision_seconds`` the order goes ``pending`` -> ``processing`` (0.1 P:
  project, bastion, services, containers and volumes exist, services ``working``) -> ``completed`` (0.5 P)
  and the services turn ``online`` at P. No capacity for the product at the location
  (``World.set_capacity("computestacks", <product name>, <location id>, False)``) -> the order ``failed``
  after creating the (empty) project, as ``ProcessOrderService`` does.
- Image variants: the user view renders ``image_variants`` through the variant partial with the image as
  object, which in 9.3.1 most likely yields the image's own fields; the emulator renders the list the
  controller documents (the admin view's shape), since orders need a variant id and nothing else in the user
  API lists them. Volume params have no ``csrn`` in their view; order volumes are matched by the exact csrn
  ``csrn:caas:template:vol:<resource name>:<id>``, computed as the model does.
- Services: power ``start``/``restart``/``rebuild`` -> ``working`` -> ``online`` (P), ``stop`` -> ``working``
  -> ``inactive`` (P/2) via PUT/PATCH (the docs' POST has no action: 404); unknown action -> 422. DELETE ->
  202, ``working``, gone after P/2 with its volumes. Resize -> ``working``, new package at P/2.
- Bastion (``Deployment::Sftp``): one per project unless ``skip_ssh``, on its own 127.x address and port, user
  ``sftpuser`` (the emulator's sshd logs in the user running it; see ``emulator.client``). It accepts the
  account's SSH keys (updated when keys change), runs while any service of the project is online (or
  restarting) and stops before the last one reports ``inactive`` or disappears.
- ``DELETE /api/users/ssh_keys/{id}`` deletes the key and then fails with 500: the controller renders a
  ``destroy`` template that does not exist. Volume ``size``/``location_id`` are listed in the view but are
  not model attributes, so RABL leaves them out. 429s injected by faults use the ``{"errors"}`` body (the real
  Rack::Attack answer is the text ``Throttled``). Account lockout after failed logins is not emulated.
"""

from gpucloud.emulator.computestacks.catalogue import volume_param_csrn
from gpucloud.emulator.computestacks.responses import SPEC

__all__ = ["SPEC", "volume_param_csrn"]

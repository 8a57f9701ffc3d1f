"""ComputeStacks end-user API (controller 9.x): container services ordered into projects, reached over SSH
through the project's bastion.

ComputeStacks is self-hosted by each operator, so there is no default URL: set ``GPUCLOUD_COMPUTESTACKS_URL``
to the operator's control panel (API paths are ``/api/...`` below it).

Mapping (the API has no VMs; these are the nearest honest equivalents):
- instance = a *container service* (one container), created by an order (``POST /api/orders``) that builds a
  new project named after the instance. ``create_instance`` therefore waits for the order to complete (the
  order is the only thing that says which project it built) and returns the service it made, still booting.
  Deleting an instance deletes the project it lived in when it was the project's only service (every create
  makes a project of its own, which would otherwise stay behind empty), else just the service.
- name = the service ``label`` (also the project name); renamed with ``PATCH /api/container_services/{id}``.
- instance_type = a product (package) by ``name`` (a product id is accepted and read back as the name);
  resize switches the product (``POST .../resize``).
- image = a container image by ``label``; orders use its default variant (variant choice is not offered).
- location = a Location id (``GET /api/locations``); the instance reports its service's ``region.id``.
- volumes at create = labels of the image's volume params: those are created by the order and the image's
  other volumes are skipped (without ``volumes`` every image volume is created). The order names volume
  params by csrn, which their view omits; it is computed as the controller's model does
  (``csrn:caas:template:vol:<resource name>:<id>``), hence "inferred".
- volumes: list/get only. They have no fixed size (the API reports usage only), so ``size_gb`` is 0; ``name``
  is the label, ``attached_to`` the services mapping them. They are created by orders and trashed with their
  service; standalone create, attach, resize and delete do not exist in the user API.
- SSH: containers are not reachable directly. ``public_ip``/``ssh_port``/``ssh_user`` are the project
  bastion's ``ip_addr``/``port``/``username`` (``sftpuser``; ``ssh_user`` in the config overrides it). The
  bastion accepts every SSH key of the account, so keys are not chosen per instance: ``ssh_keys`` in a spec
  are checked to exist and nothing more, and instances report no key ids.
- SSH keys: account keys (``/api/users/ssh_keys``). The API returns only ``id`` and ``label`` (the key's
  comment), never the key text: ``public_key`` reads as ``""``. The name is stored as the comment; since a
  comment cannot hold whitespace, whitespace and ``%`` in names are percent-encoded there.
- GPUs: the API has no GPU fields anywhere, so offers and instances report ``gpu_count`` 0.
- Offers: one per product; ``price_per_hour`` is the cheapest zone price converted from its term
  (hour, month = 730 h, year = 8760 h); a product is available in every location whose zones list it.
- Statuses (service ``current_state``): ``working`` pending (also while stopping or deleting), ``online``,
  ``resource_usage``, ``active_alert`` and ``unhealthy`` running, ``inactive`` stopped, ``alert`` (last job
  failed) error; ``offline_containers`` unknown.
- Auth: HTTP Basic with API credentials (``username``/``password``), or OAuth2 when ``client_id``/
  ``client_secret`` are set: the password grant with the API credentials, or without them the client-credentials
  grant, whose tokens carry no user and can only read public data (403 elsewhere). Tokens are renewed by a new
  grant (ComputeStacks issues refresh tokens only for the interactive authorization-code grant).
- Versioning: ``Accept: application/json; api_version=NN`` from ``api_version`` (default 80, what controller
  9.3.1 supports; the captured docs' 60 is stale). Versions below 51 use other wire shapes and are refused
  locally; a version the server does not serve is its 422, reported as a ValidationError on ``api_version``.
- Errors: ``{"errors": [...]}`` joined with "; "; Doorkeeper's ``{"error", "error_description"}`` for tokens;
  empty 404 bodies (record not found). 400/422 ValidationError, 401/403 AuthError, 404 NotFound, 405 Conflict
  (a volume operation is running), 408/5xx ProviderError (retried when safe), 429 RateLimited.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, unquote

import httpx

from gpucloud import errors, waiters, wire
from gpucloud.auth import OAuth2ClientCredentials
from gpucloud.capabilities import Capability as C
from gpucloud.capabilities import Evidence
from gpucloud.config import ProviderConfig, env_var
from gpucloud.engine import unique_by_name
from gpucloud.httputil import request_id_of, url_path
from gpucloud.models import (
    CreatedInstance,
    Image,
    Instance,
    InstanceKind,
    InstanceSpec,
    Location,
    LocationAvailability,
    Offer,
    SshKey,
    SshKeySpec,
    Status,
    Volume,
)
from gpucloud.pagination import Page, fetch_each, fetch_numbered_pages, in_parallel
from gpucloud.providers.base import (
    INTEGER_SHAPE,
    IdKind,
    IdShape,
    Provider,
    as_float,
    build_error,
    json_body,
)
from gpucloud.tokencache import TokenCache, token_cache_for
from gpucloud.transport import Transport, is_transient
from gpucloud.validation import (
    DISPLAY_NAME_PATTERN,
    DISPLAY_NAME_RULE,
    choose_from,
    looks_like_public_key,
    validate_name,
    validate_public_key,
)
from gpucloud.wire import Count, Id, Text, When, Wire

DEFAULT_API_VERSION = "80"
MIN_API_VERSION = 51  # older versions take other request shapes (service update, products)
# api-pagination sets no per_page maximum (docs: Pagination), so lists ask for large pages: 2,000 services are
# two requests instead of twenty. A server configured with a maximum says so in Per-Page and _all follows it.
PER_PAGE = 1000
ORDER_TIMEOUT = 900.0
_HOURS_PER_TERM = {"hour": 1.0, "month": 730.0, "year": 8760.0}

_STATUS = {
    "working": Status.PENDING,
    "online": Status.RUNNING,
    "resource_usage": Status.RUNNING,
    "active_alert": Status.RUNNING,
    "unhealthy": Status.RUNNING,
    "inactive": Status.STOPPED,
    "alert": Status.ERROR,
}
_ORDER_LIVE = frozenset({"open", "pending", "awaiting_payment", "processing"})
_ORDER_FINAL = frozenset({"completed", "failed", "cancelled"})


# --- answer shapes (what this adapter reads; see gpucloud.wire) ---------------------------------
class _Project(Wire):
    id: Id


class _Ref(Wire):
    """A nested record the adapter reads the id or label of (region, project, package, image...)."""

    id: Id | None = None
    label: Text = None


class _Service(Wire):
    id: Id
    label: Text = None
    current_state: Text = None
    region: _Ref | None = None
    package: _Ref | None = None
    image: _Ref | None = None
    project: _Project | None = None
    created_at: When = None


class _Bastion(Wire):
    ip_addr: Text = None
    port: Count = None
    username: Text = None
    status: Text = None


class _OrderProject(Wire):
    name: Text = None


class _OrderData(Wire):
    project: _OrderProject | None = None


class _Order(Wire):
    id: Id
    status: Text = None
    project: _Ref | None = None
    order_data: _OrderData | None = None


class _Location(Wire):
    id: int
    name: Text = None
    regions: list[_Project] | None = None  # availability zones: {id, ...}


class _Product(Wire):
    id: Id
    name: Text = None
    region: Id | None = None
    term: Text = None


class _Variant(Wire):
    id: Id
    is_default: bool | None = None


class _Image(Wire):
    id: Id
    label: Text = None
    image_variants: list[_Variant] | dict[str, Any] | None = None


class _VolumeParam(Wire):
    id: Id
    label: Text = None
    source_volume_id: Id | None = None


class _VolumeMap(Wire):
    container_service: _Ref | None = None


class _Volume(Wire):
    id: Id
    label: Text = None
    region_id: Id | None = None
    volume_maps: list[_VolumeMap] | None = None
    created_at: When = None


class _Key(Wire):
    id: Id
    label: Text = None


def encode_key_name(name: str) -> str:
    """A key name as a public-key comment: the label is the comment's first word, so no whitespace."""
    return re.sub(r"[%\s]", lambda m: quote(m.group(0), safe=""), name)


def decode_key_name(label: str) -> str:
    return unquote(label)


def volume_param_csrn(param: Mapping[str, Any]) -> str:
    """``ContainerImage::VolumeParam#csrn``: the order matches volume params by this exact string."""
    label = str(param.get("label") or "")
    name = (
        re.sub(r"[^a-z0-9 \t\r\n\f\v]", "", label.strip().lower()).replace(" ", "_")[:11] if label.strip() else "null"
    )
    return f"csrn:caas:template:vol:{name}:{param['id']}"


def _hourly(entry: Mapping[str, Any]) -> float | None:
    price, hours = as_float(entry.get("price")), _HOURS_PER_TERM.get(str(entry.get("term") or ""))
    return None if price is None or hours is None else round(price / hours, 6)


def _vcpus(cpu: Any) -> int | None:
    """Packages may grant fractional cores; an Offer counts whole vCPUs only."""
    value = as_float(cpu)
    return int(value) if value is not None and value.is_integer() else None


def _fits(product: dict[str, Any], image: dict[str, Any]) -> bool:
    """Whether a package meets an image's ``min_cpu`` (cores) and ``min_memory`` (MB); unknown values fit."""
    pairs = ((product.get("cpu"), image.get("min_cpu")), (product.get("memory"), image.get("min_memory")))
    for has, needs in ((as_float(h), as_float(n)) for h, n in pairs):
        if has is not None and needs is not None and has < needs:
            return False
    return True


def _error_text(body: Any) -> tuple[str | None, str | None]:
    """(message, code) from the three bodies the server sends: ours, Doorkeeper's and Rails' own."""
    if not isinstance(body, dict):
        return None, None
    listed = body.get("errors")
    if isinstance(listed, list) and listed:
        return "; ".join(str(e) for e in listed), None
    if isinstance(body.get("error_description"), str):
        return body["error_description"], str(body.get("error") or "") or None
    error = body.get("error")
    return (error, None) if isinstance(error, str) else (None, None)


def _token_refused(response: httpx.Response) -> bool:
    """computestacks.txt: an invalid (or expired) OAuth token gets 403 ``{errors: [...]}``; a 403 in Doorkeeper's
    ``{error: insufficient_scope}`` shape is a valid token without the scope, which a new token will not fix."""
    if response.status_code == 401:
        return True
    if response.status_code != 403:  # asked of every answer: a page of 1,000 services is not decoded twice
        return False
    body = json_body(response)
    return isinstance(body, dict) and "errors" in body


class _PasswordGrant(OAuth2ClientCredentials):
    """Doorkeeper's password grant: the client plus the API credentials, so the token acts as the user."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        username: str,
        password: str,
        cache: TokenCache | None = None,
    ) -> None:
        super().__init__(
            token_url,
            client_id,
            client_secret,
            provider="computestacks",
            body_format="form",
            token_refused=_token_refused,
            cache=cache,
        )
        self._username = username
        self._password = password

    def _client_grant(self) -> dict[str, str]:
        return {
            **super()._client_grant(),
            "grant_type": "password",
            "username": self._username,
            "password": self._password,
        }


class ComputeStacks(Provider):
    name = "computestacks"
    title = "ComputeStacks"
    auth_kinds = "basic, oauth2 (password / client credentials)"
    ssh_endpoint = "project bastion (sftpuser)"
    default_ssh_user = "sftpuser"
    reports_public_keys = False  # keys come back as id + label only
    sells_gpus = False  # container services: the controller has no GPU fields
    unsupported_hints: ClassVar[dict[C, str]] = {
        C.VOLUME_DELETE: "a volume is trashed with its service: delete the instance",
        # The controller takes tag_list on PATCH /api/container_services/{id}, but no view renders a service's
        # tags: gpucloud could never tell whether they are set, so check mode and diffs would guess.
        C.INSTANCE_TAGS: "ComputeStacks accepts tags on a service but never shows them back; remove 'tags'",
        C.INSTANCE_KEY_ADD: "the project's bastion accepts every account SSH key: register it with ssh_key instead",
    }
    default_requests_per_minute = 500.0  # Rack::Attack: 2500 requests per 5 minutes per IP
    # Rails primary keys: container services, volumes and SSH keys are whole numbers (orders are UUIDs).
    id_shapes: ClassVar[Mapping[IdKind, IdShape]] = {
        "instance": INTEGER_SHAPE,
        "volume": INTEGER_SHAPE,
        "ssh_key": INTEGER_SHAPE,
    }
    capabilities = frozenset(
        {
            C.INSTANCES,
            C.INSTANCE_START_STOP,
            C.INSTANCE_REBOOT,
            C.INSTANCE_RESIZE,
            C.INSTANCE_RENAME,
            C.INSTANCE_LOCATION_CHOICE,
            C.INSTANCE_VOLUMES_AT_CREATE,
            C.VOLUMES,
            C.SSH_KEYS,
            C.OFFERS,
            C.IMAGES,
            C.LOCATIONS,
        }
    )
    # The captured docs cover auth, pagination, versioning and errors only: every endpoint below was read from
    # the open-source controller (computestacks-resources.md), and volumes at create also need a csrn it never
    # shows.
    evidence = Evidence.SOURCE
    inferred = frozenset({C.INSTANCE_VOLUMES_AT_CREATE})

    def __init__(self, config: ProviderConfig, *, http_transport: httpx.BaseTransport | None = None) -> None:
        if not config.base_url:
            raise errors.ValidationError(
                f"computestacks is hosted by each provider: set {env_var(self.name, 'base_url')} to your provider's "
                "control panel URL (e.g. https://portal.example.com); there is no default",
                field="base_url",
            )
        self.api_version = self._checked_version(config.api_version)
        self.grant = "basic"
        self._lock = threading.Lock()
        self._locations_cache: list[dict[str, Any]] | None = None
        super().__init__(config, http_transport=http_transport)

    def _checked_version(self, value: str | None) -> str:
        version = (value or DEFAULT_API_VERSION).strip()
        if not version.isdigit() or int(version) < MIN_API_VERSION:
            raise errors.ValidationError(
                f"api_version {version!r} is invalid: gpucloud speaks ComputeStacks API version {MIN_API_VERSION} "
                f"or later (controller 9.3 serves {DEFAULT_API_VERSION}); set {env_var(self.name, 'api_version')}",
                field="api_version",
            )
        return version

    # --- transport -----------------------------------------------------------------------------------
    def _make_transport(self, config: ProviderConfig, http_transport: httpx.BaseTransport | None) -> Transport:
        base_url = str(config.base_url).rstrip("/")
        self.auth = self._auth(config, f"{base_url}/api/oauth/token")
        return self._transport(
            config,
            http_transport,
            self.auth,
            base_url=base_url,
            headers={"Accept": f"application/json; api_version={self.api_version}"},
        )

    def _auth(self, config: ProviderConfig, token_url: str) -> httpx.Auth:
        username, password = config.username, config.secret("password")
        client_id, client_secret = config.client_id, config.secret("client_secret")
        if client_id and client_secret:
            cache = token_cache_for(config, token_url)
            if username and password:
                self.grant = "password"
                return _PasswordGrant(
                    token_url, client_id, client_secret, username=username, password=password, cache=cache
                )
            self.grant = "client_credentials"
            return OAuth2ClientCredentials(
                token_url,
                client_id,
                client_secret,
                provider=self.name,
                body_format="form",
                token_refused=_token_refused,
                cache=cache,
            )
        if username and password:
            return httpx.BasicAuth(username, password)
        raise errors.AuthError(
            f"computestacks needs API credentials (generated in the control panel, not your login): set "
            f"{env_var(self.name, 'username')} and {env_var(self.name, 'password')}; for OAuth2 also set "
            f"{env_var(self.name, 'client_id')} and {env_var(self.name, 'client_secret')}",
            provider=self.name,
        )

    def _map_error(self, response: httpx.Response) -> errors.GpuCloudError:
        body = json_body(response)
        message, code = _error_text(body)
        status = response.status_code
        if status == 422 and (
            response.headers.get("API-Version-Supported") == "false" or "unsupported version" in (message or "")
        ):
            return errors.ValidationError(
                f"{self.name}: the server does not serve API version {self.api_version} ({message}); set "
                f"api_version ({env_var(self.name, 'api_version')}) to a version it serves, e.g. {DEFAULT_API_VERSION}",
                field="api_version",
                provider=self.name,
                status_code=status,
                request_id=request_id_of(response),
            )
        if status == 403 and code == "insufficient_scope" and self.grant == "client_credentials":
            message = (
                f"{message or 'Forbidden'}; a client-credentials token carries no user, so it can only read public "
                f"data: also set {env_var(self.name, 'username')}/{env_var(self.name, 'password')} (API credentials)"
            )
        elif status == 403 and code is None and self.grant != "basic":
            message = (
                f"{message or 'Forbidden'}: the OAuth access token was refused even after a new grant (a newly "
                f"generated API key invalidates earlier tokens); check {env_var(self.name, 'client_id')}, "
                f"{env_var(self.name, 'client_secret')} and the API credentials"
            )
        if status == 405:
            return errors.Conflict(
                f"{self.name}: {message or 'another operation is running on this resource'}",
                provider=self.name,
                status_code=status,
                request_id=request_id_of(response),
            )
        return build_error(self.name, response, code=code, message=message, details=body)

    def _wrapped(self, response: httpx.Response, root: str, shape: Any) -> Any:
        """``body[root]`` of an answer that must be ``{root: <shape>}``."""
        return self._read(response, wire.envelope(root, shape))[root]

    def _get_wrapped(self, path: str, root: str, shape: Any) -> Any:
        return self._wrapped(self.transport.request("GET", path), root, shape)

    def _all(self, path: str, root: str, item: Any) -> list[dict[str, Any]]:
        """Every item of a paginated list; the page size is what the server says it used (``Per-Page``)."""
        first = self.transport.request("GET", path, params={"page": 1, "per_page": PER_PAGE})
        per_page = first.headers.get("Per-Page") or ""
        size = int(per_page) if per_page.isdigit() and int(per_page) > 0 else PER_PAGE

        def page(response: httpx.Response) -> Page[dict[str, Any]]:
            items: list[dict[str, Any]] = self._wrapped(response, root, list[item])
            total = response.headers.get("Total")
            return Page(items, int(total) if total and total.isdigit() else None, len(items) >= size)

        def fetch(number: int, per_page: int) -> Page[dict[str, Any]]:
            if number == 1:
                return page(first)
            return page(self.transport.request("GET", path, params={"page": number, "per_page": per_page}))

        return fetch_numbered_pages(fetch, size, workers=self.config.page_workers, provider=self.name)

    # --- instances ----------------------------------------------------------------------------------
    def _bastion(self, project_id: Any) -> dict[str, Any] | None:
        """The project's SSH endpoint: a running bastion if there is one."""
        try:
            bastions = self._all(
                url_path("api/projects/{project_id}/bastions", project_id=project_id), "bastions", _Bastion
            )
        except errors.NotFound:  # the project is being deleted
            return None
        reachable = [b for b in bastions if b.get("ip_addr") and b.get("port")]
        return next((b for b in reachable if b.get("status") == "running"), reachable[0] if reachable else None)

    def _to_instance(self, service: dict[str, Any], bastion: dict[str, Any] | None) -> Instance:
        raw_status = str(service.get("current_state") or "unknown")
        region = service.get("region") or {}
        bastion = bastion or {}
        port = bastion.get("port")
        return Instance(
            id=str(service["id"]),
            provider=self.name,
            name=str(service.get("label") or ""),
            status=_STATUS.get(raw_status, Status.UNKNOWN),
            raw_status=raw_status,
            instance_type=(service.get("package") or {}).get("label"),
            location=str(region["id"]) if region.get("id") is not None else None,
            image=(service.get("image") or {}).get("label"),
            public_ip=bastion.get("ip_addr") or None,
            ssh_port=int(port) if port else None,
            ssh_user=self.config.ssh_user or bastion.get("username") or self.default_ssh_user,
            created_at=service.get("created_at"),
            raw=service,
        )

    def _list_instances(self) -> list[Instance]:
        # SSH endpoints are per project (bastions). The project list comes in alongside the service pages and
        # every project's bastion is asked for as soon as that list is in, all at once: three round trips
        # (token, lists, bastions) however many pages the services span, instead of one per project.
        workers = self.config.page_workers

        def bastions_by_project() -> dict[Any, dict[str, Any] | None]:
            projects = self._all("api/projects", "projects", _Project)
            return fetch_each(self._bastion, [p["id"] for p in projects], workers=workers)

        services, bastions = in_parallel(
            lambda: self._all("api/container_services", "container_services", _Service), bastions_by_project
        )
        used = {s["project"]["id"] for s in services if s.get("project")}
        # A project ordered between the two lists has services but no bastion lookup yet.
        bastions.update(fetch_each(self._bastion, sorted(used - set(bastions), key=str), workers=workers))
        return [self._to_instance(s, bastions.get((s.get("project") or {}).get("id"))) for s in services]

    def find_instance(self, name: str, *, kind: InstanceKind | None = None) -> Instance | None:
        # By name only the found service's project needs its bastion: one lookup however many projects the
        # account has (the full listing asks every project's), so a no-op run is token, services, bastion.
        self.require(C.INSTANCES)
        services = self._all("api/container_services", "container_services", _Service)
        found = unique_by_name([_Labelled(s) for s in services], name, "instance", self.name)
        return self._with_bastion(found.data) if found is not None else self._instance_in_flight(name)

    def _get_instance(self, instance_id: str) -> Instance:
        service = self._get_wrapped(
            url_path("api/container_services/{instance_id}", instance_id=instance_id), "container_service", _Service
        )
        return self._with_bastion(service)

    def _with_bastion(self, service: dict[str, Any]) -> Instance:
        project = service.get("project") or {}
        return self._to_instance(service, self._bastion(project["id"]) if project.get("id") else None)

    @classmethod
    def _validate_instance_spec(cls, spec: InstanceSpec) -> None:
        if not spec.image:
            raise errors.ValidationError(
                "image is required for computestacks: the label of a container image (`gpucloud images --provider "
                "computestacks` or the gpucloud.cloud.image_info module lists them)",
                field="image",
            )
        # The name is the service label and the project name.
        validate_name(spec.name, "name", pattern=DISPLAY_NAME_PATTERN, rule=DISPLAY_NAME_RULE, min_len=1, max_len=255)
        cls._refuse_key_texts(spec.ssh_keys)

    def resolve_ssh_keys(self, refs: Sequence[str]) -> tuple[list[str], list[str]]:
        self._refuse_key_texts(refs)
        return super().resolve_ssh_keys(refs)

    @classmethod
    def _refuse_key_texts(cls, refs: Sequence[str]) -> None:
        for index, ref in enumerate(refs):
            if looks_like_public_key(ref):
                raise errors.ValidationError(
                    f"ssh_keys[{index}] is a public key text, but computestacks never returns key texts, so keys can "
                    "only be referred to by name or id: register it with an ssh_key resource first",
                    field=f"ssh_keys[{index}]",
                    provider=cls.name,
                )

    def _create_instance(self, spec: InstanceSpec) -> CreatedInstance:
        self.resolve_ssh_keys(spec.ssh_keys)  # only checks they exist: every account key reaches the bastion
        payload = {"order": self._order(spec)}
        order_id = str(self._wrapped(self.transport.request("POST", "api/orders", json=payload), "order", _Order)["id"])
        return CreatedInstance(instance=self._service_of(self._await_order(order_id, spec.name), spec.name))

    def _order(self, spec: InstanceSpec) -> dict[str, Any]:
        location = self._location_id(spec.location) if spec.location else None
        product = self._product(spec.instance_type, location)
        image = self._image(str(spec.image))
        self._check_fit(product, image)
        container: dict[str, Any] = {
            "image_variant_id": self._default_variant(image)["id"],
            "name": spec.name,
            "resources": {"product_id": product["id"]},
        }
        if spec.volumes:
            container["volumes"] = self._order_volumes(image, spec.volumes)
        order: dict[str, Any] = {"project_name": spec.name, "skip_ssh": False, "containers": [container]}
        if location is not None:
            order["location_id"] = location
        return order

    def _final_order(self, order_id: str, name: str) -> dict[str, Any]:
        """The order once it stopped changing (completed, failed or cancelled)."""
        order: dict[str, Any] = waiters.poll(
            lambda: self._get_wrapped(url_path("api/orders/{order_id}", order_id=order_id), "order", _Order),
            done=lambda o: o.get("status") in _ORDER_FINAL,
            describe=lambda o: str(o.get("status")),
            timeout=ORDER_TIMEOUT,
            interval=self.config.poll_interval,
            what=f"{self.name} order {order_id} for {name!r}",
        )
        return order

    def _await_order(self, order_id: str, name: str) -> dict[str, Any]:
        order = self._final_order(order_id, name)
        if order["status"] != "completed":
            project = (order.get("project") or {}).get("id")
            error = errors.ProviderError(
                f"{self.name}: order {order_id} for {name!r} ended {order['status']}"
                + (
                    f"; the event log of project {project} (GET /api/projects/{project}/events) says why"
                    if project
                    else ""
                ),
                provider=self.name,
                code="order_failed",
                details={"order": order_id, "project": project},
            )
            if project:  # deleted now, or (settling deferred) by the caller beside its next step
                raise errors.settle_or_defer(error, lambda: self._drop_empty_project(str(project)))
            raise error
        return order

    def _drop_empty_project(self, project: str) -> None:
        """A failed order leaves the project it made first; with no service in it, nothing else will delete it.
        The delete is asynchronous (202): wait until the project is gone, so the failed create leaves the account
        as it was when it returns (a placement moving on to the next offer, a test reading the account)."""
        services = self._all(
            url_path("api/projects/{project}/services", project=project), "container_services", _Service
        )
        if services:
            return
        path = url_path("api/projects/{project}", project=project)
        self.transport.request("DELETE", path)
        waiters.poll(
            lambda: self._exists(path),
            done=lambda exists: not exists,
            describe=lambda exists: "deleting" if exists else "gone",
            timeout=ORDER_TIMEOUT,
            interval=self.config.poll_interval,
            what=f"{self.name} project {project} of a failed order to be deleted",
            transient=is_transient,
        )

    def _exists(self, path: str) -> bool:
        try:
            self.transport.request("GET", path)
        except errors.NotFound:
            return False
        return True

    def _service_of(self, order: dict[str, Any], name: str) -> Instance:
        project = (order.get("project") or {}).get("id")
        services = (
            self._all(url_path("api/projects/{project}/services", project=project), "container_services", _Service)
            if project
            else []
        )
        found = unique_by_name([_Labelled(s) for s in services], name, "instance", self.name)
        if found is None:
            raise errors.ProviderError(
                f"{self.name}: order {order.get('id')} completed but project {project} has no service {name!r}",
                provider=self.name,
            )
        return self._with_bastion(found.data)

    def _instance_in_flight(self, name: str) -> Instance | None:
        """The service of a live order for ``name``, once the order completes; None if there is none.

        An order builds its project and service only some time after it was accepted, so a run killed (or
        whose answer was lost) right after ordering leaves nothing in the service list yet. Counting the order
        as the instance keeps the next run from ordering the name a second time. An order that then fails or
        is cancelled made nothing, so it counts as nothing.
        """
        for row in self._all("api/orders", "orders", _Order):
            if row.get("status") not in _ORDER_LIVE:
                continue
            order = self._get_wrapped(url_path("api/orders/{id}", id=row["id"]), "order", _Order)
            if ((order.get("order_data") or {}).get("project") or {}).get("name") != name:
                continue
            final = self._final_order(str(order["id"]), name)
            return self._service_of(final, name) if final.get("status") == "completed" else None
        return None

    def _power(self, instance_id: str, action: str) -> None:
        # PUT: the docs' POST reaches no controller action
        self.transport.request(
            "PUT",
            url_path("api/container_services/{instance_id}/power/{action}", instance_id=instance_id, action=action),
        )

    def _start_instance(self, instance_id: str) -> None:
        self._power(instance_id, "start")

    def _stop_instance(self, instance_id: str) -> None:
        self._power(instance_id, "stop")

    def _reboot_instance(self, instance_id: str) -> None:
        self._power(instance_id, "restart")

    def _delete_instance(self, instance_id: str) -> None:
        service_path = url_path("api/container_services/{instance_id}", instance_id=instance_id)
        service = self._get_wrapped(service_path, "container_service", _Service)
        project = (service.get("project") or {}).get("id")
        services = url_path("api/projects/{project}/services", project=project) if project else None
        others = [
            s
            for s in (self._all(services, "container_services", _Service) if services else [])
            if str(s.get("id")) != instance_id
        ]
        if project and not others:  # trashing the project trashes the service with it
            self.transport.request("DELETE", url_path("api/projects/{project}", project=project))
        else:
            self.transport.request("DELETE", service_path)

    def _resize_instance(self, instance_id: str, instance_type: str) -> None:
        product = self._product(instance_type, None)
        body = {"container_service": {"product_id": product["id"]}}
        self.transport.request(
            "POST", url_path("api/container_services/{instance_id}/resize", instance_id=instance_id), json=body
        )

    def _update_instance(self, instance_id: str, *, name: str | None, tags: dict[str, str] | None) -> Instance:
        if name is None:
            return self._get_instance(instance_id)
        body = {"container_service": {"label": name}}
        answer = self.transport.request(
            "PATCH", url_path("api/container_services/{instance_id}", instance_id=instance_id), json=body
        )
        return self._with_bastion(self._wrapped(answer, "container_service", _Service))

    def canonical_instance_type(self, value: str) -> str:
        return str(self._product(value, None)["name"])

    # --- catalogue lookups --------------------------------------------------------------------------
    def _locations(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._locations_cache is None:
                self._locations_cache = self._all("api/locations", "locations", _Location)
            return self._locations_cache

    def _zone_locations(self) -> dict[Any, dict[str, Any]]:
        """Availability-zone id (``region`` in products, ``region_id`` in volumes) -> its Location."""
        return {zone["id"]: loc for loc in self._locations() for zone in loc.get("regions") or []}

    def _location_id(self, ref: str) -> int:
        locations = self._locations()
        match = next((loc for loc in locations if str(loc["id"]) == ref), None)
        if match is None:
            known = (f"{loc['id']} ({loc.get('name')})" for loc in locations)
            raise errors.ValidationError(
                f"location {ref!r} is not a computestacks location id; {choose_from(self.name, 'location', known)}",
                field="location",
                provider=self.name,
            )
        return int(match["id"])

    def _products(self) -> list[dict[str, Any]]:
        products: list[dict[str, Any]] = self._get_wrapped("api/products", "products", list[_Product])
        return products

    def _product(self, instance_type: str, location: int | None) -> dict[str, Any]:
        """The product ``instance_type`` names (by name or id), sold in ``location`` when one is given."""
        entries = self._products()
        matches = [e for e in entries if instance_type in (str(e.get("id")), e.get("name"))]
        if len({e.get("id") for e in matches}) > 1:
            ids = sorted({str(e.get("id")) for e in matches})
            raise errors.ValidationError(
                f"instance_type {instance_type!r} names several computestacks products ({', '.join(ids)}); use an id",
                field="instance_type",
                provider=self.name,
            )
        if not matches:
            known = (str(e.get("name")) for e in entries)
            raise errors.ValidationError(
                f"instance_type {instance_type!r} is not a computestacks product; "
                f"{choose_from(self.name, 'instance_type', known)}",
                field="instance_type",
                provider=self.name,
            )
        if location is not None:
            zones = self._zone_locations()
            matches = [e for e in matches if (zones.get(e.get("region")) or {}).get("id") == location]
            if not matches:
                raise errors.ValidationError(
                    f"instance_type {instance_type!r} is not sold in location {location}; `gpucloud offers` lists "
                    "where each product is",
                    field="instance_type",
                    provider=self.name,
                )
        return matches[0]

    def _image(self, label: str) -> dict[str, Any]:
        images = self._all("api/container_images", "container_images", _Image)
        matches = [i for i in images if i.get("label") == label]
        if len(matches) > 1:
            ids = ", ".join(str(i["id"]) for i in matches)
            raise errors.ValidationError(
                f"image {label!r} names {len(matches)} computestacks images ({ids})",
                field="image",
                provider=self.name,
            )
        if not matches:
            known = (str(i.get("label")) for i in images)
            raise errors.ValidationError(
                f"image {label!r} is not a computestacks container image; {choose_from(self.name, 'image', known)}",
                field="image",
                provider=self.name,
            )
        return matches[0]

    def _check_fit(self, product: dict[str, Any], image: dict[str, Any]) -> None:
        """The controller refuses a package with less CPU or memory than the image's minimum (422 on the order):
        refused here, before anything is ordered, naming the packages that fit."""
        if _fits(product, image):
            return
        fitting = sorted({str(p.get("name")) for p in self._products() if _fits(p, image)})
        raise errors.ValidationError(
            f"instance_type {product.get('name')!r} is too small for image {image.get('label')!r}, which needs at "
            f"least {image.get('min_cpu')} CPU and {image.get('min_memory')} MB of memory; products that fit: "
            f"{', '.join(fitting) or 'none'}",
            field="instance_type",
            provider=self.name,
        )

    def _default_variant(self, image: dict[str, Any]) -> dict[str, Any]:
        variants = image.get("image_variants")
        if not isinstance(variants, list) or not variants:
            # Controller 9.3.1's user view renders the image itself where its variants belong.
            raise errors.ValidationError(
                f"image {image.get('label')!r}: this ComputeStacks server lists no image variants in its user API, "
                "and an order needs one; ask your provider to fix the container image view",
                field="image",
                provider=self.name,
            )
        default: dict[str, Any] = next((v for v in variants if v.get("is_default")), variants[0])
        return default

    def _order_volumes(self, image: dict[str, Any], wanted: Sequence[str]) -> list[dict[str, str]]:
        """Create the named volume params of the image and skip the others."""
        params = self._get_wrapped(
            url_path("api/container_images/{id}/volume_params", id=image["id"]), "volume_params", list[_VolumeParam]
        )
        labels = [str(p.get("label")) for p in params]
        unknown = [w for w in wanted if w not in labels]
        if unknown:
            raise errors.ValidationError(
                f"volumes {unknown} are not volumes of image {image.get('label')!r}; "
                f"it has: {', '.join(labels) or 'none'}",
                field="volumes",
                provider=self.name,
            )
        # A param referring to another image's volume carries that volume's csrn, which this view does not show;
        # leaving it out of the list keeps the image's default for it.
        own = [p for p in params if not p.get("source_volume_id")]
        return [{"csrn": volume_param_csrn(p), "action": "create" if p["label"] in wanted else "skip"} for p in own]

    # --- volumes ------------------------------------------------------------------------------------
    def _to_volume(self, data: dict[str, Any], zones: Mapping[Any, dict[str, Any]]) -> Volume:
        location = zones.get(data.get("region_id"))
        services = [m.get("container_service") or {} for m in data.get("volume_maps") or []]
        return Volume(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("label") or ""),
            size_gb=0,
            status="trashing" if data.get("to_trash") else "active",
            location=str(location["id"]) if location else None,
            attached_to=tuple(str(s["id"]) for s in services if s.get("id") is not None),
            created_at=data.get("created_at"),
            raw=data,
        )

    def _list_volumes(self) -> list[Volume]:
        volumes = self._all("api/volumes", "volumes", _Volume)
        zones = self._zone_locations() if volumes else {}
        return [self._to_volume(v, zones) for v in volumes]

    def _get_volume(self, volume_id: str) -> Volume:
        volume = self._get_wrapped(url_path("api/volumes/{volume_id}", volume_id=volume_id), "volume", _Volume)
        return self._to_volume(volume, self._zone_locations())

    # --- ssh keys -----------------------------------------------------------------------------------
    def _to_key(self, data: dict[str, Any]) -> SshKey:
        return SshKey(
            id=str(data["id"]),
            provider=self.name,
            name=decode_key_name(str(data.get("label") or "")),
            public_key="",  # the API never returns it
            raw=data,
        )

    def _list_ssh_keys(self) -> list[SshKey]:
        return [self._to_key(d) for d in self._get_wrapped("api/users/ssh_keys", "ssh_keys", list[_Key])]

    def _get_ssh_key(self, key_id: str) -> SshKey:
        return self._to_key(self._get_wrapped(url_path("api/users/ssh_keys/{key_id}", key_id=key_id), "ssh_key", _Key))

    def _create_ssh_key(self, spec: SshKeySpec) -> SshKey:
        key_type, blob = validate_public_key(spec.public_key).split()[:2]
        body = {"user_ssh_key": {"pubkey": f"{key_type} {blob} {encode_key_name(spec.name)}"}}
        return self._to_key(
            self._wrapped(self.transport.request("POST", "api/users/ssh_keys", json=body), "ssh_key", _Key)
        )

    def _delete_ssh_key(self, key_id: str) -> None:
        try:
            # Not resent on failure: 9.3.1 deletes the key and then answers 500 (it has no template to render).
            self.transport.request("DELETE", url_path("api/users/ssh_keys/{key_id}", key_id=key_id), idempotent=False)
        except errors.ProviderError as failed:
            if failed.status_code != 500:
                raise
            try:
                self._get_ssh_key(key_id)
            except errors.NotFound:
                return
            raise

    # --- catalogue ----------------------------------------------------------------------------------
    def _list_offers(self) -> list[Offer]:
        zones = self._zone_locations()
        by_product: dict[Any, list[dict[str, Any]]] = {}
        for entry in self._products():
            by_product.setdefault(entry.get("id"), []).append(entry)
        return [self._offer(entries, zones) for entries in by_product.values()]

    def _offer(self, entries: list[dict[str, Any]], zones: Mapping[Any, dict[str, Any]]) -> Offer:
        first = entries[0]
        prices = [p for p in (_hourly(e) for e in entries) if p is not None]
        locations = {loc["id"]: loc for e in entries if (loc := zones.get(e.get("region")))}
        memory = as_float(first.get("memory"))
        return Offer(
            provider=self.name,
            instance_type=str(first.get("name")),
            gpu_model=None,
            gpu_count=0,
            vcpus=_vcpus(first.get("cpu")),
            memory_gb=None if memory is None else round(memory / 1024, 3),
            disk_gb=as_float(first.get("storage")),  # the package's storage, GB
            price_per_hour=min(prices) if prices else None,
            locations=tuple(
                LocationAvailability(location=str(lid), available=True, name=loc.get("name"))
                for lid, loc in sorted(locations.items())
            ),
        )

    def _list_images(self) -> list[Image]:
        return [
            Image(
                id=str(d.get("label")),
                provider=self.name,
                name=str(d.get("label")),
                min_vcpus=as_float(d.get("min_cpu")),
                min_memory_gb=None if (mb := as_float(d.get("min_memory"))) is None else round(mb / 1024, 3),
                raw=d,
            )
            for d in self._all("api/container_images", "container_images", _Image)
        ]

    def _list_locations(self) -> list[Location]:
        return [
            Location(id=str(d["id"]), provider=self.name, name=str(d.get("name") or d["id"]), raw=d)
            for d in self._locations()
        ]


class _Labelled:
    """A raw service viewed by its label, for :func:`unique_by_name`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def name(self) -> str:
        return str(self.data.get("label") or "")


PROVIDER = ComputeStacks

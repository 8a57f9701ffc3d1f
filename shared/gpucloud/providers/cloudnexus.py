"""CloudNexus Compute API: ``cn_live_``/``cn_test_`` bearer keys, numbered pages, creates tracked by jobs.

The captured docs show the instance list, create (answering a ``job_id``) and actions. Everything else we
need rests on endpoints built from those conventions: every such path is in :data:`INFERRED_PATHS`, the
one place to correct them (a value may also be an absolute URL, for an endpoint under another base), and
the capabilities that depend on them are in :attr:`CloudNexus.inferred`.

Decisions where the docs are silent:
- Error body: ``{"error": {"code", "message"}}`` (also read: ``{"error": "<code>", "message"}`` and
  ``{"message"}``). Mapping: 400 ValidationError (code ``invalid_state``: Conflict), 401 and 403
  AuthError, 404 NotFound, 429 RateLimited (``Retry-After`` honoured by the transport), 500 ProviderError.
- Jobs (``GET jobs/{id}``): ``status`` is ``queued|running|completed|failed``; ``resource_id`` names what
  the job works on; ``error`` is ``{code, message}`` when it failed. Create polls its job (every
  :attr:`~CloudNexus.job_interval` s, for at most :attr:`~CloudNexus.job_timeout` s) and returns the
  instance; a failed job is a ProviderError carrying the job's code and message. Actions and deletes are
  not awaited (wait with ``wait_for_instance``/``wait_for_instance_gone``), so resize, start, stop and
  reboot use documented endpoints only.
- Statuses: ``provisioning``/``running``/``stopped`` are documented; ``starting``, ``rebooting``,
  ``resizing``, ``stopping``, ``deleting``, ``error`` are read as their obvious states.
- Tags: set at create (documented). No endpoint to change them is documented, so the adapter lacks
  ``INSTANCE_TAG_UPDATE``: ``update_instance(tags=)`` raises Unsupported and reconcile plans a replacement.
- SSH: the API reports ``ipv4`` only; the port is ``ssh_port`` from configuration (default 22), the user
  ``root``. Keys are referenced by id at create (``key_...``), so raw public keys must be registered first.
- No catalogue endpoints (types, regions, images, prices) are documented: offers are Unsupported; volumes too.
  Images and locations list the values the docs show (:data:`DOCUMENTED_IMAGES`, :data:`DOCUMENTED_REGIONS`)
  as a starting point, marked inferred; the API accepts more ("50+ global regions"), so nothing is refused for
  not being on these lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import StrictStr

from gpucloud import errors, waiters, wire
from gpucloud.auth import BearerAuth
from gpucloud.capabilities import Capability as C
from gpucloud.capabilities import Evidence
from gpucloud.config import ProviderConfig, env_var
from gpucloud.httputil import url_path
from gpucloud.models import CreatedInstance, Image, Instance, InstanceSpec, Location, SshKey, SshKeySpec, Status
from gpucloud.pagination import Page, fetch_numbered_pages
from gpucloud.providers.base import IdKind, IdShape, Provider, build_error, json_body
from gpucloud.transport import Transport
from gpucloud.wire import Count, Id, Text, When, Wire

# Endpoints NOT in the captured docs, reconstructed from its conventions. Correct them here.
INFERRED_PATHS: dict[str, str] = {
    "job": "jobs/{job_id}",
    "instance": "compute/instances/{instance_id}",  # GET and DELETE
    "ssh_keys": "ssh-keys",  # GET (paginated like instances) and POST {name, public_key}
    "ssh_key": "ssh-keys/{key_id}",  # GET and DELETE
}
# Documented endpoints.
INSTANCES_PATH = "compute/instances"
ACTIONS_PATH = "compute/instances/{instance_id}/actions"

KEY_PREFIXES = ("cn_live_", "cn_test_")
MAX_PER_PAGE = 100
# The region and image slugs the captured docs use (list filter, create example); the API has no listing.
DOCUMENTED_REGIONS = ("us-east-1", "eu-west-2")
DOCUMENTED_IMAGES = ("ubuntu-22.04-lts",)
_EXAMPLE = {"source": "documentation example; the API has no catalogue listing and accepts more"}

_STATUS = {
    "provisioning": Status.PENDING,
    "starting": Status.PENDING,
    "rebooting": Status.PENDING,
    "resizing": Status.PENDING,
    "running": Status.RUNNING,
    "stopping": Status.STOPPING,
    "stopped": Status.STOPPED,
    "deleting": Status.DELETING,
    "deleted": Status.DELETED,
    "error": Status.ERROR,
    "failed": Status.ERROR,
}

_ERROR_CODES: dict[str, type[errors.GpuCloudError]] = {
    "invalid_state": errors.Conflict,
    "rate_limit_exceeded": errors.RateLimited,
}


W = TypeVar("W", bound=Wire)


# --- answer shapes (what this adapter reads; see gpucloud.wire) ---------------------------------
class _Instance(Wire):
    id: Id
    name: Text = None
    status: Text = None
    ipv4: Text = None
    type: Text = None
    region: Text = None
    image: Text = None
    ssh_keys: list[Id] | None = None
    tags: dict[str, StrictStr | int | float | bool | None] | None = None
    created_at: When = None


class _Key(Wire):
    id: Id
    name: Text = None
    public_key: Text = None
    fingerprint: Text = None


class _JobError(Wire):
    code: Text = None
    message: Text = None


class _Job(Wire):
    status: StrictStr  # without it the poll would wait for a status that never comes
    resource_id: Id | None = None
    error: _JobError | None = None


class _Accepted(Wire):
    job_id: Id | None = None


class _Pagination(Wire):
    total: Count = None
    total_pages: Count = None


class _Page(Wire, Generic[W]):
    """A page of a numbered list: without ``data`` it is malformed, never empty."""

    data: list[W]
    pagination: _Pagination | None = None


def _unwrap(response: httpx.Response, shape: type[Wire]) -> dict[str, Any]:
    """A single resource, whether it comes bare or as ``{"data": {...}}``, checked against ``shape``."""
    body = wire.decode(response, "cloudnexus")
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    checked: dict[str, Any] = wire.check(body, shape, "cloudnexus", response)
    return dict(checked)


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("code"), error.get("message")
    message = body.get("message")
    return (str(error) if error else None), (str(message) if message else None)


class CloudNexus(Provider):
    name = "cloudnexus"
    title = "CloudNexus"
    sells_gpus = False  # the documented instance types (standard/compute/memory) carry no GPUs
    auth_kinds = "bearer (cn_live_/cn_test_ key)"
    ssh_endpoint = "ipv4 (port from config, default 22)"
    default_ssh_user = "root"
    default_requests_per_minute = 120.0
    # Instance ids as documented (inst_9x7k...); key ids are not shown in the docs, so only the generic check
    # plus "a prefix, an underscore, letters and digits" like every id the docs show.
    id_shapes: ClassVar[Mapping[IdKind, IdShape]] = {
        "instance": IdShape(r"inst_[A-Za-z0-9]+", "inst_ followed by letters and digits, such as inst_9x7k2m4p"),
        "ssh_key": IdShape(r"[a-z]+_[A-Za-z0-9]+", "a prefix, _ and letters and digits, such as key_1a2b3c"),
    }
    capabilities = frozenset(
        {
            C.INSTANCES,
            C.INSTANCE_START_STOP,
            C.INSTANCE_REBOOT,
            C.INSTANCE_RESIZE,
            C.INSTANCE_TAGS,
            C.INSTANCE_LOCATION_CHOICE,
            C.INSTANCE_SNAPSHOT,
            C.SSH_KEYS,
            C.IMAGES,
            C.LOCATIONS,
        }
    )
    # get-by-id, delete and the Jobs API are inferred (a snapshot's id comes from its job); so is every SSH key
    # endpoint. Images and locations are the documentation's examples, not an API listing.
    inferred = frozenset({C.INSTANCES, C.INSTANCE_SNAPSHOT, C.SSH_KEYS, C.IMAGES, C.LOCATIONS})
    example_catalogues = frozenset({C.IMAGES, C.LOCATIONS})
    # Listing and creating instances are documented (GET and POST /compute/instances); of create, only
    # polling its job and reading the new instance by id are inferred (said on the provider page).
    column_evidence: ClassVar[Mapping[str, Evidence]] = {
        "list": Evidence.DOCUMENTED,
        "instance create": Evidence.DOCUMENTED,
    }
    page_size = MAX_PER_PAGE
    job_timeout = 600.0
    job_interval = 0.25

    def __init__(self, config: ProviderConfig, *, http_transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(config, http_transport=http_transport)
        self.paths = dict(INFERRED_PATHS)  # per adapter, so one can be pointed elsewhere without a release

    def _make_transport(self, config: ProviderConfig, http_transport: httpx.BaseTransport | None) -> Transport:
        token, variable = config.secret("token"), env_var(self.name, "token")
        if not token:
            raise errors.AuthError(f"cloudnexus needs an API key: set {variable}", provider=self.name)
        if not token.startswith(KEY_PREFIXES):
            # Checked here so a pasted key of another service never leaves the machine.
            raise errors.AuthError(
                f"{variable} is not a CloudNexus API key: keys start with cn_live_ (production) or "
                "cn_test_ (development)",
                provider=self.name,
                code="invalid_key_format",
            )
        return self._transport(config, http_transport, BearerAuth(token))

    def _map_error(self, response: httpx.Response) -> errors.GpuCloudError:
        code, message = _error_fields(json_body(response))
        return build_error(self.name, response, code=code, message=message, by_code=_ERROR_CODES)

    def _path(self, key: str, **ids: str) -> str:
        return url_path(self.paths[key], **ids)

    def _all(self, path: str, item: Any) -> list[dict[str, Any]]:
        def fetch(page: int, per_page: int) -> Page[dict[str, Any]]:
            body = self._get(path, _Page[item], params={"page": page, "per_page": per_page})
            info = body.get("pagination") or {}
            total_pages = int(info.get("total_pages") or 0)
            return Page(list(body["data"]), info.get("total"), has_next=page < total_pages)

        return fetch_numbered_pages(
            fetch, min(self.page_size, MAX_PER_PAGE), workers=self.config.page_workers, provider=self.name
        )

    def _field(self, body: dict[str, Any], key: str) -> str:
        """A field the flow cannot go on without; its absence means the answer is not what we expect."""
        value = body.get(key)
        if not value:
            raise wire.malformed(self.name, None, f"{key!r} is missing")
        return str(value)

    # --- jobs ---------------------------------------------------------------------------------------
    def wait_for_job(self, job_id: str, what: str) -> dict[str, Any]:
        """Poll a job until it completes; a failed job raises ProviderError, a slow one Timeout."""
        path = self._path("job", job_id=job_id)
        seen: list[dict[str, Any]] = []

        def fetch() -> dict[str, Any]:
            seen.append(_unwrap(self.transport.request("GET", path), _Job))
            return seen[-1]

        try:
            job = waiters.poll(
                fetch,
                done=lambda j: j.get("status") in ("completed", "failed"),
                describe=lambda j: str(j.get("status")),
                timeout=self.job_timeout,
                interval=self.job_interval,
                what=f"cloudnexus job {job_id} ({what})",
            )
        except errors.Timeout as exc:
            resource = seen[-1].get("resource_id") if seen else None
            raise errors.Timeout(
                f"{exc.message}; resource {resource or 'unknown'} may still appear",
                last_status=exc.last_status,
                provider=self.name,
                details={"job_id": job_id, "resource_id": resource},
            ) from None
        if job.get("status") == "failed":
            error = job.get("error") or {}
            raise errors.ProviderError(
                f"cloudnexus: {what} failed: {error.get('message') or 'job failed without a message'}",
                provider=self.name,
                code=error.get("code"),
                details=job,
            )
        return job

    # --- instances ----------------------------------------------------------------------------------
    def _to_instance(self, data: dict[str, Any]) -> Instance:
        raw_status = str(data.get("status") or "unknown")
        ip = data.get("ipv4") or None
        return Instance(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            status=_STATUS.get(raw_status.lower(), Status.UNKNOWN),
            raw_status=raw_status,
            instance_type=data.get("type"),
            location=data.get("region"),
            image=data.get("image"),
            public_ip=ip,
            ssh_port=(self.config.ssh_port or 22) if ip else None,
            ssh_user=self.ssh_user,
            ssh_key_ids=tuple(str(k) for k in data.get("ssh_keys") or ()),
            tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
            created_at=data.get("created_at"),
            raw=data,
        )

    def _list_instances(self) -> list[Instance]:
        return [self._to_instance(d) for d in self._all(INSTANCES_PATH, _Instance)]

    def _get_instance(self, instance_id: str) -> Instance:
        path = self._path("instance", instance_id=instance_id)
        return self._to_instance(_unwrap(self.transport.request("GET", path), _Instance))

    @classmethod
    def _validate_instance_spec(cls, spec: InstanceSpec) -> None:
        if not spec.location:
            raise errors.ValidationError(
                "location is required for cloudnexus: a region slug such as us-east-1", field="location"
            )
        if not spec.image:
            raise errors.ValidationError(
                "image is required for cloudnexus: an image slug such as ubuntu-22.04-lts or a snapshot id",
                field="image",
            )

    def _create_instance(self, spec: InstanceSpec) -> CreatedInstance:
        key_ids, _ = self.resolve_ssh_keys(spec.ssh_keys)
        payload: dict[str, Any] = {
            "name": spec.name,
            "type": spec.instance_type,
            "region": spec.location,
            "image": spec.image,
            "ssh_keys": key_ids,
        }
        if spec.tags:
            payload["tags"] = dict(spec.tags)
        accepted = _unwrap(self.transport.request("POST", INSTANCES_PATH, json=payload), _Accepted)
        job = self.wait_for_job(self._field(accepted, "job_id"), f"create instance {spec.name}")
        return CreatedInstance(instance=self._get_instance(self._field(job, "resource_id")))

    def _delete_instance(self, instance_id: str) -> None:
        self.transport.request("DELETE", self._path("instance", instance_id=instance_id))

    def _action(self, instance_id: str, action: str, **fields: str) -> dict[str, Any]:
        body = {"action": action, **fields}
        return _unwrap(
            self.transport.request("POST", url_path(ACTIONS_PATH, instance_id=instance_id), json=body), _Accepted
        )

    def _start_instance(self, instance_id: str) -> None:
        self._action(instance_id, "start")

    def _stop_instance(self, instance_id: str) -> None:
        self._action(instance_id, "stop")

    def _reboot_instance(self, instance_id: str) -> None:
        self._action(instance_id, "reboot")

    def _resize_instance(self, instance_id: str, instance_type: str) -> None:
        if not instance_type:
            raise errors.ValidationError("instance_type is required to resize", field="instance_type")
        self._action(instance_id, "resize", type=instance_type)

    def _snapshot_instance(self, instance_id: str) -> str:
        # The action is documented; its job and the snapshot id the job names (resource_id) are inferred.
        accepted = self._action(instance_id, "snapshot")
        return self._field(
            self.wait_for_job(self._field(accepted, "job_id"), f"snapshot of {instance_id}"), "resource_id"
        )

    # --- ssh keys -----------------------------------------------------------------------------------
    def _to_key(self, data: dict[str, Any]) -> SshKey:
        return SshKey(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            public_key=str(data.get("public_key") or ""),
            fingerprint=data.get("fingerprint"),
            raw=data,
        )

    def _list_ssh_keys(self) -> list[SshKey]:
        return [self._to_key(d) for d in self._all(self._path("ssh_keys"), _Key)]

    def _get_ssh_key(self, key_id: str) -> SshKey:
        return self._to_key(_unwrap(self.transport.request("GET", self._path("ssh_key", key_id=key_id)), _Key))

    def _create_ssh_key(self, spec: SshKeySpec) -> SshKey:
        body = {"name": spec.name, "public_key": spec.public_key.strip()}
        return self._to_key(_unwrap(self.transport.request("POST", self._path("ssh_keys"), json=body), _Key))

    def _delete_ssh_key(self, key_id: str) -> None:
        self.transport.request("DELETE", self._path("ssh_key", key_id=key_id))

    # --- catalogue (documentation examples) ---------------------------------------------------------
    def _list_images(self) -> list[Image]:
        return [Image(id=slug, provider=self.name, name=slug, raw=_EXAMPLE) for slug in DOCUMENTED_IMAGES]

    def _list_locations(self) -> list[Location]:
        return [Location(id=slug, provider=self.name, name=slug, raw=_EXAMPLE) for slug in DOCUMENTED_REGIONS]


PROVIDER = CloudNexus

"""dcdncloud compute API: bearer token, VPS plans, an SSH endpoint per instance, a one-time root password.

Decisions where the captured docs are silent:
- Error body: undocumented. We expect ``{"error": "<code>", "message": "<text>"}`` (what the emulator sends)
  and also read ``{"error": {"code", "message"}}``, ``{"detail": ...}`` and ``{"message": ...}``; anything
  else falls back to the HTTP status. Mapping: 400 ValidationError (code ``invalid_state``: Conflict, the
  action does not fit the instance's status), 401 AuthError, 402 InsufficientFunds, 404 NotFound,
  409 Conflict (name in use), 429 RateLimited, 503 with code ``no_capacity``: NoCapacity.
- Statuses: the docs show ``creating``; we read ``running``/``stopped`` as the steady states and
  ``starting``/``restarting``/``stopping`` as transitions (any status we do not know reads as unknown).
- Prices: ``price_usd`` of a plan and ``monthly_cost_usd`` of an instance are monthly; per hour is
  monthly / 730.
- GPUs: plans document none, so offers and instances have ``gpu_count`` 0 unless a plan or instance carries
  ``gpu_count``/``gpu_model`` (not documented; read if present, never invented).
- Offers: every plan is offered in every region that has nodes (the API tells nothing finer).
- ``root_password`` is shown once, at create: it is returned in ``CreatedInstance.secrets`` only and
  stripped from ``Instance.raw``; it is never logged. A create whose answer was lost is adopted by name
  without it: use ``reset_root_password`` for a new one.
- SSH: ``ip_address`` + ``ssh_port`` from the API; the user is ``root``. Keys are passed by content at
  create; ``add_instance_ssh_key`` adds one to an existing instance. The API cannot list an instance's
  keys, so nothing can check which are there: reconcile does not compare them.
- Instance names become the hostname (``<name>.compute...``), so they are checked as DNS labels.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from gpucloud import errors, wire
from gpucloud.auth import BearerAuth
from gpucloud.capabilities import Capability as C
from gpucloud.config import ProviderConfig, env_var
from gpucloud.httputil import url_path
from gpucloud.models import (
    CreatedInstance,
    Image,
    Instance,
    InstanceSpec,
    Location,
    LocationAvailability,
    Offer,
    Status,
)
from gpucloud.providers.base import UUID_SHAPE, IdKind, IdShape, Provider, as_float, build_error, json_body
from gpucloud.transport import Transport
from gpucloud.validation import choose_from, validate_name
from gpucloud.wire import Count, Id, Text, When, Wire

HOURS_PER_MONTH = 730

_STATUS = {
    "creating": Status.PENDING,
    "starting": Status.PENDING,
    "restarting": Status.PENDING,
    "running": Status.RUNNING,
    "stopping": Status.STOPPING,
    "stopped": Status.STOPPED,
    "destroying": Status.DELETING,
    "destroyed": Status.DELETED,
    "error": Status.ERROR,
    "failed": Status.ERROR,
}

_ERROR_CODES: dict[str, type[errors.GpuCloudError]] = {
    "invalid_state": errors.Conflict,
    "no_capacity": errors.NoCapacity,
}

# Fields the API shows once and that must never be kept or printed.
_SECRET_FIELDS = ("root_password",)


# --- answer shapes (what this adapter reads; see gpucloud.wire) ---------------------------------
class _Instance(Wire):
    id: Id
    name: Text = None
    status: Text = None
    ip_address: Text = None
    ssh_port: Count = None
    plan: Text = None
    region: Text = None
    image: Text = None
    gpu_model: Text = None
    gpu_count: Count = None
    created_at: When = None
    root_password: Text = None


class _Plan(Wire):
    id: Id
    cpu_type: Text = None
    vcpus: Count = None
    gpu_model: Text = None
    gpu_count: Count = None


class _Region(Wire):
    id: Id
    nodes: Count = None


class _Image(Wire):
    id: Id
    name: Text = None


class _Password(Wire):
    root_password: Id


def _hourly(monthly: Any) -> float | None:
    value = as_float(monthly)
    return None if value is None else value / HOURS_PER_MONTH


def _gpu(data: dict[str, Any]) -> tuple[str | None, int]:
    count = int(data.get("gpu_count") or 0)
    return (data.get("gpu_model") or None, count) if count else (None, 0)


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from any of the error shapes we accept; (None, None) when there is nothing to read."""
    if isinstance(body, str):
        return None, body or None
    if not isinstance(body, dict):
        return None, None
    error, message = body.get("error"), body.get("message") or body.get("detail")
    if isinstance(error, dict):
        return error.get("code"), error.get("message") or (str(message) if message else None)
    return (str(error) if error else None), (str(message) if message else None)


class DcdnCloud(Provider):
    name = "dcdncloud"
    title = "dcdncloud"
    sells_gpus = False  # VPS plans: the API lists no GPUs
    auth_kinds = "bearer"
    ssh_endpoint = "ip_address + ssh_port"
    default_ssh_user = "root"
    default_requests_per_minute = 60.0
    # The docs' example instance id is a UUID.
    id_shapes: ClassVar[Mapping[IdKind, IdShape]] = {"instance": UUID_SHAPE}
    capabilities = frozenset(
        {
            C.INSTANCES,
            C.INSTANCE_START_STOP,
            C.INSTANCE_REBOOT,
            C.INSTANCE_LOCATION_CHOICE,
            C.SSH_KEYS_BY_CONTENT,
            C.INSTANCE_PASSWORD_RESET,
            C.INSTANCE_KEY_ADD,
            C.OFFERS,
            C.IMAGES,
            C.LOCATIONS,
        }
    )

    def __init__(self, config: ProviderConfig, *, http_transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(config, http_transport=http_transport)
        self._plans: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _make_transport(self, config: ProviderConfig, http_transport: httpx.BaseTransport | None) -> Transport:
        token = config.secret("token")
        if not token:
            raise errors.AuthError(
                f"dcdncloud needs an API token: set {env_var(self.name, 'token')}", provider=self.name
            )
        return self._transport(config, http_transport, BearerAuth(token))

    def _map_error(self, response: httpx.Response) -> errors.GpuCloudError:
        body = json_body(response)
        if body is None and response.text:
            body = response.text.strip()[:200]
        code, message = error_fields(body)
        return build_error(self.name, response, code=code, message=message, by_code=_ERROR_CODES)

    # --- instances ----------------------------------------------------------------------------------
    def _to_instance(self, data: dict[str, Any]) -> Instance:
        raw = {k: v for k, v in data.items() if k not in _SECRET_FIELDS}
        raw_status = str(data.get("status") or "unknown")
        ip = data.get("ip_address") or None
        port = data.get("ssh_port") or self.config.ssh_port or 22
        gpu_model, gpu_count = _gpu(data)
        return Instance(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            status=_STATUS.get(raw_status.lower(), Status.UNKNOWN),
            raw_status=raw_status,
            instance_type=data.get("plan"),
            gpu_model=gpu_model,
            gpu_count=gpu_count,
            location=data.get("region"),
            image=data.get("image"),
            public_ip=ip,
            ssh_port=int(port) if ip else None,
            ssh_user=self.ssh_user,
            price_per_hour=_hourly(data.get("monthly_cost_usd")),
            created_at=data.get("created_at"),
            raw=raw,
        )

    def _collection(self, path: str, key: str, item: Any) -> list[dict[str, Any]]:
        """A list the API answers as ``{key: [...]}`` (or bare); without ``key`` it is malformed, never empty."""
        response = self.transport.request("GET", path)
        items: list[dict[str, Any]] = wire.unwrap(
            wire.decode(response, self.name), key, list[item], self.name, response
        )
        return items

    def _list_instances(self) -> list[Instance]:
        return [self._to_instance(d) for d in self._collection("instances", "instances", _Instance)]

    def _one_instance(self, response: httpx.Response) -> Instance:
        """An instance answered bare or as ``{"instance": {...}}``."""
        body = wire.decode(response, self.name)
        if isinstance(body, dict) and "instance" in body:
            return self._to_instance(wire.unwrap(body, "instance", _Instance, self.name, response))
        return self._to_instance(wire.check(body, _Instance, self.name, response))

    def _get_instance(self, instance_id: str) -> Instance:
        return self._one_instance(
            self.transport.request("GET", url_path("instances/{instance_id}", instance_id=instance_id))
        )

    @classmethod
    def _validate_instance_spec(cls, spec: InstanceSpec) -> None:
        validate_name(
            spec.name,
            "name",
            pattern=r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?",
            rule="letters, digits and '-', not starting or ending with '-' (it becomes the hostname)",
            min_len=1,
            max_len=63,
        )
        if not spec.location:
            raise errors.ValidationError(
                "location is required for dcdncloud: a region such as eu-central (`gpucloud locations --provider "
                "dcdncloud` or the gpucloud.cloud.location_info module lists them)",
                field="location",
                provider=cls.name,
            )
        if not spec.image:
            raise errors.ValidationError(
                "image is required for dcdncloud: an image id such as ubuntu-22.04 (`gpucloud images --provider "
                "dcdncloud` or the gpucloud.cloud.image_info module lists them)",
                field="image",
                provider=cls.name,
            )

    def _plan(self, plan_id: str) -> dict[str, Any]:
        for plan in self._plan_list():
            if plan.get("id") == plan_id:
                return plan
        known = (str(p.get("id")) for p in self._plan_list())
        raise errors.ValidationError(
            f"instance_type {plan_id!r} is not a dcdncloud plan; {choose_from(self.name, 'instance_type', known)}",
            field="instance_type",
            provider=self.name,
        )

    def _create_instance(self, spec: InstanceSpec) -> CreatedInstance:
        plan = self._plan(spec.instance_type)
        _, key_texts = self.resolve_ssh_keys(spec.ssh_keys)
        payload: dict[str, Any] = {
            "name": spec.name,
            "plan": spec.instance_type,
            "image": spec.image,
            "region": spec.location,
            "ssh_keys": key_texts,
        }
        if plan.get("cpu_type"):
            payload["cpu_type"] = plan["cpu_type"]  # the API defaults to shared, even for a dedicated plan
        response = self.transport.request("POST", "instances", json=payload)
        created = wire.check(wire.decode(response, self.name), _Instance, self.name, response)
        password = created.get("root_password")
        secrets = {"root_password": str(password)} if password else {}
        return CreatedInstance(instance=self._to_instance(created), secrets=secrets)

    def _delete_instance(self, instance_id: str) -> None:
        self.transport.request("DELETE", url_path("instances/{instance_id}", instance_id=instance_id))

    def _start_instance(self, instance_id: str) -> None:
        self.transport.request("POST", url_path("instances/{instance_id}/start", instance_id=instance_id))

    def _stop_instance(self, instance_id: str) -> None:
        self.transport.request("POST", url_path("instances/{instance_id}/stop", instance_id=instance_id))

    def _reboot_instance(self, instance_id: str) -> None:
        self.transport.request("POST", url_path("instances/{instance_id}/restart", instance_id=instance_id))

    # --- dcdncloud-only operations ------------------------------------------------------------------
    def _add_instance_ssh_key(self, instance_id: str, public_key: str) -> None:
        # Resending after a lost answer only adds the same key again, so a retry is harmless.
        self.transport.request(
            "POST",
            url_path("instances/{instance_id}/ssh-key", instance_id=instance_id),
            json={"public_key": public_key},
            idempotent=True,
        )

    def _reset_root_password(self, instance_id: str) -> str:
        body = self._read(
            self.transport.request("POST", url_path("instances/{instance_id}/reset-password", instance_id=instance_id)),
            _Password,
        )
        return str(body["root_password"])

    def list_templates(self) -> list[dict[str, Any]]:
        """Deploy templates as the API returns them (no provider-neutral model exists for these)."""
        return self._collection("templates", "templates", Wire)

    # --- catalogue ----------------------------------------------------------------------------------
    def _plan_list(self) -> list[dict[str, Any]]:
        # Cached per adapter: the catalogue rarely changes and every request counts against 60 a minute.
        with self._lock:
            if self._plans is None:
                self._plans = self._collection("plans", "plans", _Plan)
            return self._plans

    def _regions(self) -> list[dict[str, Any]]:
        return self._collection("regions", "regions", _Region)

    def _list_offers(self) -> list[Offer]:
        locations = tuple(
            LocationAvailability(location=str(r["id"]), available=int(r.get("nodes") or 0) > 0) for r in self._regions()
        )
        offers = []
        for plan in self._plan_list():
            gpu_model, gpu_count = _gpu(plan)
            ram_mb = as_float(plan.get("ram_mb"))
            offers.append(
                Offer(
                    provider=self.name,
                    instance_type=str(plan["id"]),
                    gpu_model=gpu_model,
                    gpu_count=gpu_count,
                    vcpus=plan.get("vcpus"),
                    memory_gb=None if ram_mb is None else ram_mb / 1024,
                    disk_gb=as_float(plan.get("disk_gb")),
                    price_per_hour=_hourly(plan.get("price_usd")),
                    locations=locations,
                )
            )
        return offers

    def _list_images(self) -> list[Image]:
        items = self._collection("images", "images", _Image)
        return [Image(id=str(d["id"]), provider=self.name, name=str(d.get("name") or d["id"]), raw=d) for d in items]

    def _list_locations(self) -> list[Location]:
        return [Location(id=str(d["id"]), provider=self.name, name=str(d["id"]), raw=d) for d in self._regions()]


PROVIDER = DcdnCloud

"""DataCrunch (now Verda) public API v1: OAuth2 client credentials, bare-array lists, plain-text ids.

Wire facts follow the official Python SDK ``verda``: create endpoints answer with the bare id as text,
``GET /sshkeys/{id}`` answers a one-element list, actions are ``PUT /instances`` / ``PUT /volumes`` bodies.
The API reports no SSH port, so the port comes from configuration (default 22) and the user from
``ssh_user`` (default ``root``, which DataCrunch images use).

Spot instances: ``is_spot`` at create, and the OS volume's ``on_spot_discontinue`` (``keep_detached``,
``move_to_trash`` or ``delete_permanently``); a discontinued one keeps answering with status ``discontinued``
until deleted. Before a create, ``GET /instance-availability/{type}`` says whether the type is in stock at the
location (a bare boolean); when it is not, the create fails fast naming the locations that have it.
Hibernate/restore are not offered: the captured API doc lists no action names, and the official SDK marks
``hibernate`` deprecated.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, TypeVar

import httpx
from pydantic import Field, StrictStr

from gpucloud import errors, wire
from gpucloud.auth import OAuth2ClientCredentials
from gpucloud.capabilities import Capability as C
from gpucloud.config import ProviderConfig
from gpucloud.httputil import url_path
from gpucloud.models import (
    CreatedInstance,
    Image,
    Instance,
    InstanceSpec,
    Location,
    LocationAvailability,
    Offer,
    SshKey,
    SshKeySpec,
    Status,
    Volume,
    VolumeSpec,
)
from gpucloud.providers.base import UUID_SHAPE, IdKind, IdShape, Provider, as_float, build_error, json_body
from gpucloud.tokencache import token_cache_for
from gpucloud.transport import Transport
from gpucloud.validation import validate_name
from gpucloud.wire import Count, Id, Text, When, Wire

_STATUS = {
    "new": Status.PENDING,
    "ordered": Status.PENDING,
    "validating": Status.PENDING,
    "pending": Status.PENDING,
    "provisioning": Status.PENDING,
    "restoring": Status.PENDING,
    "running": Status.RUNNING,
    "starting_hibernation": Status.STOPPING,
    "offline": Status.STOPPED,
    "hibernating": Status.STOPPED,
    "deleting": Status.DELETING,
    "discontinued": Status.DISCONTINUED,
    "deleted": Status.DELETED,
    "notfound": Status.DELETED,
    "error": Status.ERROR,
    "no_capacity": Status.ERROR,
}

_ERROR_CODES: dict[str, type[errors.GpuCloudError]] = {
    "invalid_request": errors.ValidationError,
    "unauthorized_request": errors.AuthError,
    "insufficient_funds": errors.InsufficientFunds,
    # "Can't perform the current action": an action invalid for the resource's state, not a permission issue.
    "forbidden_action": errors.Conflict,
    "not_found": errors.NotFound,
    "server_error": errors.ProviderError,
    "service_unavailable": errors.NoCapacity,
}

DEFAULT_VOLUME_TYPE = "NVMe"
# What the OS volume of a spot instance does when DataCrunch discontinues the instance (SDK constants).
ON_SPOT_DISCONTINUE = ("keep_detached", "move_to_trash", "delete_permanently")
R = TypeVar("R")


# --- answer shapes (what this adapter reads; see gpucloud.wire) ---------------------------------
class _Gpu(Wire):
    description: Text = None
    number_of_gpus: Count = None


class _Instance(Wire):
    id: Id
    hostname: Text = None
    status: Text = None
    ip: Text = None
    instance_type: Text = None
    location: Text = None
    image: Text = None
    os_volume_id: Text = None
    is_spot: bool | None = None
    volume_ids: list[StrictStr] | None = None
    ssh_key_ids: list[StrictStr] | None = None
    gpu: _Gpu | None = None
    created_at: When = None


class _Volume(Wire):
    id: Id
    name: Text = None
    size: Count = None
    status: Text = None
    type: Text = None
    location: Text = None
    instance_id: Id | None = None
    created_at: When = None


class _Key(Wire):
    id: Id
    name: Text = None
    key: Text = None
    fingerprint: Text = None


class _Script(Wire):
    id: Id
    name: Text = None
    script: Text = None


class _Cpu(Wire):
    number_of_cores: Count = None


class _Memory(Wire):
    size_in_gigabytes: float | None = None


class _Type(Wire):
    instance_type: Annotated[str, Field(min_length=1)]
    gpu: _Gpu | None = None
    cpu: _Cpu | None = None
    memory: _Memory | None = None


class _Availability(Wire):
    location_code: Annotated[str, Field(min_length=1)]
    availabilities: list[StrictStr] = Field(default_factory=list)


class _Image(Wire):
    image_type: Id
    name: Text = None


class _Location(Wire):
    code: Id
    name: Text = None
    country_code: Text = None


def _gpu_model(description: str | None) -> str | None:
    """'1x H100 SXM5 80GB' -> 'H100 SXM5 80GB'."""
    if not description:
        return None
    return re.sub(r"^\s*\d+\s*x\s*", "", description).strip() or None


class DataCrunch(Provider):
    name = "datacrunch"
    title = "DataCrunch / Verda"
    auth_kinds = "OAuth2 client credentials"
    ssh_endpoint = "ip (port from config, default 22)"
    default_ssh_user = "root"
    separate_os_volume = True
    # "The instance must be offline" to attach, detach, or delete an attached volume (also at volume create).
    volume_attach_statuses = frozenset({Status.STOPPED})
    # Instances, volumes and SSH keys are all addressed by UUID.
    id_shapes: ClassVar[Mapping[IdKind, IdShape]] = {
        "instance": UUID_SHAPE,
        "volume": UUID_SHAPE,
        "ssh_key": UUID_SHAPE,
    }
    capabilities = frozenset(
        {
            C.INSTANCES,
            C.INSTANCE_START_STOP,
            C.INSTANCE_LOCATION_CHOICE,
            C.INSTANCE_STARTUP_SCRIPT,
            C.INSTANCE_VOLUMES_AT_CREATE,
            C.INSTANCE_SPOT,
            C.INSTANCE_OS_DISK_SIZE,
            C.INSTANCE_AVAILABILITY_CHECK,
            C.VOLUMES,
            C.VOLUME_CREATE,
            C.VOLUME_DELETE,
            C.VOLUME_ATTACH,
            C.VOLUME_RESIZE,
            C.VOLUME_RENAME,
            C.VOLUME_TYPES,
            C.VOLUME_LOCATION,
            C.SSH_KEYS,
            C.OFFERS,
            C.IMAGES,
            C.LOCATIONS,
        }
    )

    def _make_transport(self, config: ProviderConfig, http_transport: httpx.BaseTransport | None) -> Transport:
        client_id, secret = config.client_id, config.secret("client_secret")
        if not client_id or not secret:
            raise errors.AuthError(
                "datacrunch needs OAuth2 client credentials: set GPUCLOUD_DATACRUNCH_CLIENT_ID and "
                "GPUCLOUD_DATACRUNCH_CLIENT_SECRET (Keys page of the dashboard)",
                provider=self.name,
            )
        base_url = str(config.base_url).rstrip("/")
        token_url = f"{base_url}/oauth2/token"
        cache = token_cache_for(config, token_url)
        self.auth = OAuth2ClientCredentials(token_url, client_id, secret, provider=self.name, cache=cache)
        return self._transport(config, http_transport, self.auth, base_url=base_url)

    def _map_error(self, response: httpx.Response) -> errors.GpuCloudError:
        body = json_body(response)
        body = body if isinstance(body, dict) else {}
        return build_error(
            self.name, response, code=body.get("code"), message=body.get("message"), by_code=_ERROR_CODES
        )

    # --- instances ----------------------------------------------------------------------------------
    def _to_instance(self, data: dict[str, Any]) -> Instance:
        raw_status = str(data.get("status") or "unknown")
        ip = data.get("ip") or None
        volume_ids = list(data.get("volume_ids") or [])
        if data.get("os_volume_id") and data["os_volume_id"] not in volume_ids:
            volume_ids.insert(0, data["os_volume_id"])
        gpu = data.get("gpu") or {}
        return Instance(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("hostname") or ""),
            status=_STATUS.get(raw_status, Status.UNKNOWN),
            raw_status=raw_status,
            instance_type=data.get("instance_type"),
            gpu_model=_gpu_model(gpu.get("description")),
            gpu_count=int(gpu.get("number_of_gpus") or 0),
            location=data.get("location"),
            image=data.get("image"),
            public_ip=ip,
            ssh_port=(self.config.ssh_port or 22) if ip else None,
            ssh_user=self.ssh_user,
            ssh_key_ids=tuple(data.get("ssh_key_ids") or ()),
            volume_ids=tuple(volume_ids),
            price_per_hour=as_float(data.get("price_per_hour")),
            spot=bool(data.get("is_spot")),
            created_at=data.get("created_at"),
            raw=data,
        )

    def _list_instances(self) -> list[Instance]:
        return [self._to_instance(d) for d in self._get("instances", list[_Instance])]

    def _get_instance(self, instance_id: str) -> Instance:
        return self._to_instance(self._get(url_path("instances/{instance_id}", instance_id=instance_id), _Instance))

    @classmethod
    def _validate_instance_spec(cls, spec: InstanceSpec) -> None:
        validate_name(
            spec.name,
            "name",
            pattern=r"[A-Za-z0-9][A-Za-z0-9.-]*",
            rule="letters, digits, '-' and '.', starting with a letter or digit",
            min_len=1,
            max_len=63,
        )
        if not spec.location:
            raise errors.ValidationError(
                "location is required for datacrunch (e.g. FIN-01); `gpucloud offers --provider datacrunch` "
                "lists where each type is available",
                field="location",
            )
        if not spec.image:
            raise errors.ValidationError(
                "image is required for datacrunch (an image type such as ubuntu-24.04-cuda-12.8-open-docker; "
                "`gpucloud images --provider datacrunch` or the gpucloud.cloud.image_info module lists them)",
                field="image",
            )
        if spec.on_spot_discontinue is not None and spec.on_spot_discontinue not in ON_SPOT_DISCONTINUE:
            raise errors.ValidationError(
                f"on_spot_discontinue {spec.on_spot_discontinue!r} is not a datacrunch choice; use one of "
                f"{', '.join(ON_SPOT_DISCONTINUE)}",
                field="on_spot_discontinue",
                provider=cls.name,
            )
        if spec.on_spot_discontinue is not None and spec.os_disk_size_gb is None:
            raise errors.ValidationError(
                "on_spot_discontinue needs os_disk_size_gb: datacrunch takes both in one os_volume description",
                field="os_disk_size_gb",
                provider=cls.name,
            )

    def _create_instance(self, spec: InstanceSpec) -> CreatedInstance:
        self._check_availability(spec)
        key_ids, _ = self.resolve_ssh_keys(spec.ssh_keys)
        payload = {
            "instance_type": spec.instance_type,
            "image": spec.image,
            "ssh_key_ids": key_ids,
            "startup_script_id": self._startup_script_id(spec) if spec.startup_script else None,
            "hostname": spec.name,
            "description": spec.name,
            "location_code": spec.location,
            "os_volume": _os_volume(spec),
            "volumes": [],
            "existing_volumes": [self._volume_id(ref) for ref in spec.volumes],
            "is_spot": bool(spec.spot),
            "coupon": None,
        }
        response = self.transport.request("POST", "instances", json=payload)
        return CreatedInstance(instance=self._created(response, self._get_instance))

    def _check_availability(self, spec: InstanceSpec) -> None:
        """Fail fast, before the order, where the type is out of stock at the location (spot stock is its own)."""
        location = str(spec.location)
        spot = "true" if spec.spot else "false"
        path = url_path("instance-availability/{instance_type}", instance_type=spec.instance_type)
        try:
            if self._get(path, bool, params={"isSpot": spot, "location_code": location}):
                return
        except errors.NotFound:  # the API knows no such type
            raise errors.ValidationError(
                f"instance_type {spec.instance_type!r} is not a datacrunch instance type; "
                "`gpucloud offers --provider datacrunch` lists them",
                field="instance_type",
                provider=self.name,
            ) from None
        stock = self._get("instance-availability", list[_Availability], params={"isSpot": spot})
        elsewhere = sorted(
            str(loc["location_code"])
            for loc in stock
            if spec.instance_type in loc.get("availabilities", []) and loc["location_code"] != location
        )
        kind = "spot " if spec.spot else ""
        where = f"in stock at {', '.join(elsewhere)}" if elsewhere else "in stock nowhere right now; try again later"
        raise errors.NoCapacity(
            f"datacrunch: no {kind}{spec.instance_type} in stock at {location} (nothing was ordered); it is {where}",
            provider=self.name,
            code="no_capacity",
            details={"instance_type": spec.instance_type, "location": location, "alternatives": elsewhere},
        )

    def os_disk_size_gb(self, instance: Instance) -> int | None:
        os_volume_id = instance.raw.get("os_volume_id") or self._get_instance(instance.id).raw.get("os_volume_id")
        if not os_volume_id:  # not booted yet: the OS volume is only listed under its instance
            owned = [v for v in self._list_volumes() if v.raw.get("is_os_volume") and instance.id in v.attached_to]
            return owned[0].size_gb if owned else None
        try:
            return self._get_volume(str(os_volume_id)).size_gb
        except errors.NotFound:  # deleted with its discontinued spot instance: no disk left to compare
            return None

    def _created(self, response: httpx.Response, fetch: Callable[[str], R]) -> R:
        """The resource a create answered the id of. An id that names nothing was no real answer: malformed,
        so the caller looks the new resource up by name instead."""
        new_id = wire.text_id(response, self.name)
        try:
            return fetch(new_id)
        except errors.NotFound:
            raise wire.malformed(self.name, response, f"the id it answered ({new_id}) names no resource") from None

    def _startup_script_id(self, spec: InstanceSpec) -> str:
        """DataCrunch takes a script by id: reuse our script for this instance name if its text is unchanged."""
        name = f"gpucloud-{spec.name}"
        for script in self._get("scripts", list[_Script]):
            if script.get("name") == name and script.get("script") == spec.startup_script:
                return str(script["id"])
        body = {"name": name, "script": spec.startup_script}
        return wire.text_id(self.transport.request("POST", "scripts", json=body), self.name)

    def _volume_id(self, ref: str) -> str:
        for volume in self.list_volumes():
            if ref in (volume.id, volume.name):
                return volume.id
        raise errors.ValidationError(
            f"volumes: no datacrunch volume with id or name {ref!r}", field="volumes", provider=self.name
        )

    def _action(self, instance_id: str, action: str, **extra: Any) -> None:
        body = {"id": [instance_id], "action": action, "volume_ids": None, **extra}
        self.transport.request("PUT", "instances", json=body)

    def _delete_instance(self, instance_id: str) -> None:
        self._delete_instance_and_owned(instance_id, keep_os_volume=False)

    def _delete_instance_and_owned(self, instance_id: str, *, keep_os_volume: bool) -> None:
        """The OS volume outlives its instance (billed, detached) unless named in ``volume_ids``; our
        ``gpucloud-<name>`` startup script stays in the account unless deleted too."""
        instance = self._get_instance(instance_id)  # a clean NotFound for ids that are already gone
        # Listed, not only read from os_volume_id: that stays null until the instance has booted. A discontinued
        # spot instance's OS volume is detached (kept_detached) but still named by its os_volume_id.
        os_volume_id = instance.raw.get("os_volume_id")
        os_volumes = [
            str(v["id"])
            for v in self._get("volumes", list[_Volume])
            if v.get("is_os_volume") and (str(v.get("instance_id")) == instance_id or v["id"] == os_volume_id)
        ]
        if keep_os_volume or not os_volumes:
            self._action(instance_id, "delete")
        else:  # permanently: the instance is being deleted on purpose, keep_os_volume is the way to keep it
            self._action(instance_id, "delete", volume_ids=os_volumes, delete_permanently=True)
        self._delete_startup_scripts(instance.name)

    def _delete_startup_scripts(self, instance_name: str) -> None:
        name = f"gpucloud-{instance_name}"
        for script in self._get("scripts", list[_Script]):
            if script.get("name") == name:
                with contextlib.suppress(errors.NotFound):  # another run removed it meanwhile
                    self.transport.request("DELETE", url_path("scripts/{script_id}", script_id=script["id"]))

    def _start_instance(self, instance_id: str) -> None:
        self._action(instance_id, "start")

    def _stop_instance(self, instance_id: str) -> None:
        self._action(instance_id, "shutdown")

    # --- volumes ------------------------------------------------------------------------------------
    def _to_volume(self, data: dict[str, Any]) -> Volume:
        attached = [str(data["instance_id"])] if data.get("instance_id") else []
        return Volume(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            size_gb=int(data.get("size") or 0),
            status=str(data.get("status") or "unknown"),
            volume_type=data.get("type"),
            location=data.get("location"),
            attached_to=tuple(attached),
            price_per_hour=as_float(data.get("base_hourly_cost")),
            created_at=data.get("created_at"),
            raw=data,
        )

    def _list_volumes(self) -> list[Volume]:
        return [self._to_volume(d) for d in self._get("volumes", list[_Volume])]

    def _get_volume(self, volume_id: str) -> Volume:
        data = self._get(url_path("volumes/{volume_id}", volume_id=volume_id), _Volume)
        if data.get("status") == "deleted":
            # DataCrunch keeps answering for permanently deleted volumes; to callers they are gone.
            raise errors.NotFound(f"datacrunch: volume {volume_id} is deleted", provider=self.name, status_code=200)
        return self._to_volume(data)

    @classmethod
    def _validate_volume_spec(cls, spec: VolumeSpec) -> None:
        if not spec.location:
            raise errors.ValidationError("location is required for datacrunch volumes (e.g. FIN-01)", field="location")

    def _create_volume(self, spec: VolumeSpec) -> Volume:
        payload = {
            "type": spec.volume_type or DEFAULT_VOLUME_TYPE,
            "name": spec.name,
            "size": spec.size_gb,
            "instance_id": self._instance_id(spec.attach_to) if spec.attach_to else None,
            "location_code": spec.location,
        }
        return self._created(self.transport.request("POST", "volumes", json=payload), self._get_volume)

    def _instance_id(self, ref: str) -> str:
        for instance in self.list_instances():
            if ref in (instance.id, instance.name):
                return instance.id
        raise errors.ValidationError(
            f"attach_to: no datacrunch instance with id or name {ref!r}",
            field="attach_to",
            provider=self.name,
        )

    def _volume_action(self, volume_id: str, action: str, **fields: Any) -> None:
        self.transport.request("PUT", "volumes", json={"id": volume_id, "action": action, **fields})

    def _delete_volume(self, volume_id: str) -> None:
        # Not permanent: DataCrunch keeps deleted volumes in its trash for recovery, as its console does.
        self.transport.request(
            "DELETE", url_path("volumes/{volume_id}", volume_id=volume_id), json={"is_permanent": False}
        )

    def _attach_volume(self, volume_id: str, instance_id: str) -> None:
        self._volume_action(volume_id, "attach", instance_id=instance_id)

    def _detach_volume(self, volume_id: str, instance_id: str | None) -> None:
        self._volume_action(volume_id, "detach")

    def _resize_volume(self, volume_id: str, size_gb: int) -> None:
        self._volume_action(volume_id, "resize", size=size_gb)

    def _rename_volume(self, volume_id: str, name: str) -> None:
        self._volume_action(volume_id, "rename", name=name)

    # --- ssh keys -----------------------------------------------------------------------------------
    def _to_key(self, data: dict[str, Any]) -> SshKey:
        return SshKey(
            id=str(data["id"]),
            provider=self.name,
            name=str(data.get("name") or ""),
            public_key=str(data.get("key") or ""),
            fingerprint=data.get("fingerprint"),
            raw=data,
        )

    def _list_ssh_keys(self) -> list[SshKey]:
        return [self._to_key(d) for d in self._get("sshkeys", list[_Key])]

    def _get_ssh_key(self, key_id: str) -> SshKey:
        # A one-element list (what the SDK reads), or the bare object.
        body = self._get(
            url_path("sshkeys/{key_id}", key_id=key_id), Annotated[list[_Key], Field(min_length=1, max_length=1)] | _Key
        )
        return self._to_key(body[0] if isinstance(body, list) else body)

    def _create_ssh_key(self, spec: SshKeySpec) -> SshKey:
        body = {"name": spec.name, "key": spec.public_key.strip()}
        return self._created(self.transport.request("POST", "sshkeys", json=body), self._get_ssh_key)

    def _delete_ssh_key(self, key_id: str) -> None:
        self.transport.request("DELETE", url_path("sshkeys/{key_id}", key_id=key_id))

    # --- catalogue ----------------------------------------------------------------------------------
    def _list_offers(self) -> list[Offer]:
        types = self._get("instance-types", list[_Type], params={"currency": "usd"})
        availability = self._get("instance-availability", list[_Availability], params={"isSpot": "false"})
        offers = []
        for item in types:
            name = item["instance_type"]
            locations = tuple(
                LocationAvailability(location=loc["location_code"], available=name in loc.get("availabilities", []))
                for loc in availability
            )
            gpu = item.get("gpu") or {}
            offers.append(
                Offer(
                    provider=self.name,
                    instance_type=name,
                    gpu_model=_gpu_model(gpu.get("description")) if gpu.get("number_of_gpus") else None,
                    gpu_count=int(gpu.get("number_of_gpus") or 0),
                    vcpus=(item.get("cpu") or {}).get("number_of_cores"),
                    memory_gb=(item.get("memory") or {}).get("size_in_gigabytes"),
                    disk_gb=as_float((item.get("storage") or {}).get("size_in_gigabytes")),  # often only a description
                    price_per_hour=as_float(item.get("price_per_hour")),
                    spot_price_per_hour=as_float(item.get("spot_price")),
                    locations=locations,
                )
            )
        return offers

    def _list_images(self) -> list[Image]:
        return [
            Image(id=str(d["image_type"]), provider=self.name, name=str(d.get("name") or d["image_type"]), raw=d)
            for d in self._get("images", list[_Image])
        ]

    def _list_locations(self) -> list[Location]:
        return [
            Location(
                id=str(d["code"]),
                provider=self.name,
                name=str(d.get("name") or d["code"]),
                country=d.get("country_code"),
                raw=d,
            )
            for d in self._get("locations", list[_Location])
        ]


def _os_volume(spec: InstanceSpec) -> dict[str, Any] | None:
    """The create body's ``os_volume``: null leaves the OS disk to DataCrunch's defaults."""
    if spec.os_disk_size_gb is None:
        return None
    volume: dict[str, Any] = {"name": f"OS-{spec.name}", "size": spec.os_disk_size_gb}
    if spec.on_spot_discontinue is not None:
        volume["on_spot_discontinue"] = spec.on_spot_discontinue
    return volume


PROVIDER = DataCrunch

"""Stack outputs -> Ansible inventory, with the variables and groups of the ``gpucloud.cloud.gpucloud`` plugin.

Export instances from a program, e.g. ``pulumi.export("inventory", inventory_output([a, b]))``, then
``pulumi stack output inventory > inventory.json`` gives a file ``ansible-inventory -i`` reads. Hosts are named
``{provider}-{name}`` and carry ``ansible_host``/``ansible_port``/``ansible_user`` plus one ``gpucloud_<field>``
variable per Instance model field (and ``gpucloud_ssh_host``), as the inventory plugin sets them; groups are
``gpucloud_<provider>``, ``gpucloud_location_<location>``, ``gpucloud_gpu_<gpu model>`` and
``gpucloud_status_<status>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pulumi
from pydantic import BaseModel

from gpucloud.models import Instance as InstanceModel

PREFIX = "gpucloud_"
HOSTNAME = "{provider}-{name}"
# The Instance model's fields (without the raw payload): the plugin's host variables, and Instance outputs.
HOST_FIELDS: tuple[str, ...] = tuple(f for f in InstanceModel.model_fields if f != "raw")
_INTEGERS = ("gpu_count", "ssh_port")
_GROUPS = (("location", "location"), ("gpu", "gpu_model"), ("status", "status"))


def _sanitize(group: str) -> str:
    """As Ansible's default group-name sanitising: anything but letters, digits and '_' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9_]", "_", group)


def _fields(instance: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(instance, BaseModel):
        return instance.model_dump(mode="json", exclude={"raw"})
    values = {k: instance.get(k) for k in HOST_FIELDS}
    for key in _INTEGERS:  # numbers come back from Pulumi state as floats
        number = values.get(key)
        if isinstance(number, float):
            values[key] = int(number)
    return values


def host_vars(instance: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """Connection and ``gpucloud_*`` variables for one instance (Instance outputs or a gpucloud model)."""
    fields = _fields(instance)
    result: dict[str, Any] = {PREFIX + key: value for key, value in fields.items()}
    result[PREFIX + "ssh_host"] = fields.get("public_ip")
    if fields.get("public_ip"):
        result["ansible_host"] = fields["public_ip"]
        if fields.get("ssh_port"):
            result["ansible_port"] = fields["ssh_port"]
    if fields.get("ssh_user"):
        result["ansible_user"] = fields["ssh_user"]
    return result


def inventory(instances: Iterable[Mapping[str, Any] | BaseModel], *, hostname: str = HOSTNAME) -> dict[str, Any]:
    """An Ansible YAML/JSON inventory: every host under ``all``, in the plugin's built-in groups."""
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for instance in instances:
        fields = _fields(instance)
        name = hostname.format(**fields)
        if name in hosts:
            name = f"{name}-{fields['id']}"  # as the plugin does: no host silently hides another
        hosts[name] = host_vars(instance)
        labels = [str(fields["provider"])]
        labels += [f"{kind}_{fields[field]}" for kind, field in _GROUPS if fields.get(field)]
        for label in labels:
            groups.setdefault(_sanitize(PREFIX + label), {"hosts": {}})["hosts"][name] = None
    return {"all": {"hosts": hosts, "children": dict(sorted(groups.items()))}}


def to_json(instances: Iterable[Mapping[str, Any] | BaseModel], **options: str) -> str:
    return json.dumps(inventory(instances, **options), indent=2, sort_keys=True)


def to_yaml(instances: Iterable[Mapping[str, Any] | BaseModel], **options: str) -> str:
    """YAML without a YAML dependency: JSON scalars and flow collections are valid YAML."""
    lines: list[str] = []

    def emit(mapping: Mapping[str, Any], indent: int) -> None:
        pad = "  " * indent
        for key, value in mapping.items():
            if isinstance(value, dict) and value:
                lines.append(f"{pad}{json.dumps(str(key))}:")
                emit(value, indent + 1)
            elif value is None:
                lines.append(f"{pad}{json.dumps(str(key))}:")
            else:
                lines.append(f"{pad}{json.dumps(str(key))}: {json.dumps(value)}")

    emit(inventory(instances, **options), 0)
    return "\n".join(lines) + "\n"


def instance_output(resource: Any) -> pulumi.Output[dict[str, Any]]:
    """An Instance resource's outputs as one plain dict (no secrets among them)."""
    names = [n for n in HOST_FIELDS if n != "id"]

    def as_dict(values: list[Any]) -> dict[str, Any]:
        return {"id": values[0], **dict(zip(names, values[1:], strict=True))}

    return pulumi.Output.all(resource.id, *(getattr(resource, n) for n in names)).apply(as_dict)


def inventory_output(resources: Sequence[Any], *, fmt: str = "json", hostname: str = HOSTNAME) -> pulumi.Output[Any]:
    """The inventory of Instance resources, for ``pulumi.export``: ``fmt`` is ``dict``, ``json`` or ``yaml``."""
    formats: dict[str, Callable[..., Any]] = {"dict": inventory, "json": to_json, "yaml": to_yaml}
    if fmt not in formats:
        raise ValueError(f"fmt must be one of {sorted(formats)}")
    render = formats[fmt]
    return pulumi.Output.all(*(instance_output(r) for r in resources)).apply(
        lambda items: render(items, hostname=hostname)
    )


__all__ = [
    "HOSTNAME",
    "HOST_FIELDS",
    "PREFIX",
    "host_vars",
    "instance_output",
    "inventory",
    "inventory_output",
    "to_json",
    "to_yaml",
]

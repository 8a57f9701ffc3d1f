"""Stack outputs -> Ansible inventory, with the variables and groups of the ``gpucloud.cloud.gpucloud`` plugin.

Export instances from a program, e.g. ``pulumi.export("inventory", inventory_output([a, b]))``, then
``pulumi stack output inventory > inventory.json`` gives a file ``ansible-inventory -i`` reads. Hosts and groups
are made by the same functions as the plugin's (:mod:`gpucloud.presentation`): hosts named ``{provider}-{name}``
(or a ``hostnames``-style preference list) carry ``ansible_host``/``ansible_port``/``ansible_user`` plus one
``gpucloud_<fact>`` variable per Instance field, ``gpucloud_location_name`` and ``gpucloud_ssh_host``, with the
vendor-neutral GPU model; groups are ``gpucloud_<provider>``, ``gpucloud_location_<location name>``,
``gpucloud_gpu_<gpu model>``, ``gpucloud_status_<status>``, ``gpucloud_kind_<kind>`` and, for an instance placed
by requirement, ``gpucloud_placement_<requirement>`` (its requirement is ``gpucloud_placement``), lower case.
Location names come from ``location_names=`` (e.g. ``{p: get_location_names(p)}``); without them the name is the
location id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pulumi
from pydantic import BaseModel

import gpucloud
from gpucloud import presentation

PREFIX = presentation.PREFIX
HOSTNAME = presentation.DEFAULT_HOSTNAMES[0]
# The Instance model's fields (without the raw payload): Instance outputs, and with ``location_name`` the facts.
HOST_FIELDS: tuple[str, ...] = presentation.instance_fields()
# The outputs of an instance placed by requirement: where it went and the record of the choice.
PLACED_FIELDS: tuple[str, ...] = presentation.PLACED_OUTPUTS
Hostnames = str | Sequence[str]


def host_vars(
    instance: Mapping[str, Any] | BaseModel, location_names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Connection and ``gpucloud_*`` variables for one instance (Instance outputs or a gpucloud model)."""
    facts = presentation.instance_facts(instance, location_names)
    return presentation.host_vars(facts, presentation.hostname_for(facts, [HOSTNAME]))


def inventory(
    instances: Iterable[Mapping[str, Any] | BaseModel],
    *,
    hostname: Hostnames = HOSTNAME,
    location_names: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """An Ansible YAML/JSON inventory: every host under ``all``, in the plugin's built-in groups.

    ``hostname`` is a format string or a preference list as the plugin's ``hostnames``; ``location_names``
    maps provider -> location id -> readable name (e.g. from ``gpucloud.connect(p).location_names()``), without
    which ``gpucloud_location_name`` is the id.
    """
    preferences = [hostname] if isinstance(hostname, str) else list(hostname)
    presentation.check_hostnames(preferences, [*HOST_FIELDS, "location_name"])
    names_by_provider = location_names or {}
    facts = [presentation.instance_facts(i, names_by_provider.get(str(_provider(i)))) for i in instances]
    names, _ = presentation.hostnames(facts, preferences)
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for name, fact in zip(names, facts, strict=True):
        hosts[name] = presentation.host_vars(fact, name)
        for label in presentation.group_labels(fact):
            groups.setdefault(presentation.group_name(label), {"hosts": {}})["hosts"][name] = None
    return {"all": {"hosts": hosts, "children": dict(sorted(groups.items()))}}


def _provider(instance: Mapping[str, Any] | BaseModel) -> object:
    return instance.get("provider") if isinstance(instance, Mapping) else getattr(instance, "provider", None)


def get_location_names(provider: str) -> dict[str, str]:
    """Location id -> readable name on ``provider``, asked of its API now (credentials as the lookups')."""
    from pulumi_gpucloud.lookups import _settings

    with gpucloud.connect(provider, **_settings(provider)) as cloud:
        return cloud.location_names()


def to_json(instances: Iterable[Mapping[str, Any] | BaseModel], **options: Any) -> str:
    return json.dumps(inventory(instances, **options), indent=2, sort_keys=True)


def to_yaml(instances: Iterable[Mapping[str, Any] | BaseModel], **options: Any) -> str:
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
    """An Instance resource's outputs as one plain dict (no secrets among them). An instance placed by
    requirement (``provider="auto"``) is listed under the provider it went to, with its ``placement`` record
    (whose requirement becomes ``gpucloud_placement``, as the plugin reads it off the instance's tag)."""
    names = [n for n in HOST_FIELDS if n != "id"]
    names += [n for n in PLACED_FIELDS if getattr(resource, n, None) is not None]  # set on placed instances only

    def as_dict(values: list[Any]) -> dict[str, Any]:
        return {"id": values[0], **dict(zip(names, values[1:], strict=True))}

    return pulumi.Output.all(resource.id, *(getattr(resource, n) for n in names)).apply(as_dict)


def inventory_output(
    resources: Sequence[Any],
    *,
    fmt: str = "json",
    hostname: Hostnames = HOSTNAME,
    location_names: Mapping[str, Mapping[str, str]] | None = None,
) -> pulumi.Output[Any]:
    """The inventory of Instance resources, for ``pulumi.export``: ``fmt`` is ``dict``, ``json`` or ``yaml``."""
    formats: dict[str, Callable[..., Any]] = {"dict": inventory, "json": to_json, "yaml": to_yaml}
    if fmt not in formats:
        raise ValueError(f"fmt must be one of {sorted(formats)}")
    render = formats[fmt]
    return pulumi.Output.all(*(instance_output(r) for r in resources)).apply(
        lambda items: render(items, hostname=hostname, location_names=location_names)
    )


__all__ = [
    "HOSTNAME",
    "HOST_FIELDS",
    "PREFIX",
    "get_location_names",
    "host_vars",
    "instance_output",
    "inventory",
    "inventory_output",
    "to_json",
    "to_yaml",
]

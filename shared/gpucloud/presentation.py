"""How resources look to users, the same for every provider and every front-end.

``public`` is the dict of a resource that the CLI's ``--json``, the modules' results, ensure's outcomes and
Pulumi's outputs are made of; ``ssh_host`` is where to SSH to. The inventory plugin (``gpucloud.cloud.gpucloud``)
and the Pulumi -> Ansible export (``pulumi_gpucloud.ansible``) both build hosts with these functions, so one
instance gets the same host variables and groups from either. Imports stay light (no pydantic, no httpx): a
cached inventory run uses this module without loading the provider clients.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from gpucloud import errors
from gpucloud.gpus import normalise_gpu_model

PREFIX = "gpucloud_"
DEFAULT_HOSTNAMES: tuple[str, ...] = ("{provider}-{name}",)
CONNECT_WITH = ("ssh_endpoint", "public_ip", "hostname")
# The tag a placed instance carries (where its provider keeps tags): the requirement it was placed for, as
# compact JSON, so a rerun or an inventory reads it off the instance itself (gpucloud.placement writes it).
PLACEMENT_TAG = "gpucloud-placement"
# The Pulumi outputs of an instance placed by requirement (its ``provider`` output says "auto"): where it went and
# the record of the choice, whose ``requirement`` stands in for the tag there.
PLACED_OUTPUTS: tuple[str, ...] = ("placed_provider", "placement")
# Instance fields that are whole numbers (Pulumi state gives them back as floats).
_INTEGERS = ("gpu_count", "ssh_port")
T = TypeVar("T")

if TYPE_CHECKING:  # only for the annotations: importing pydantic here would slow a cached inventory run
    from pydantic import BaseModel

    from gpucloud.models import Instance


def public(resource: BaseModel) -> dict[str, Any]:
    """A gpucloud model (instance, volume, key, offer, image...) as JSON, without ``raw`` (the provider's own
    payload, kept for debugging; it can be large and its shape is the provider's, not ours)."""
    data: dict[str, Any] = resource.model_dump(mode="json", exclude={"raw"})
    return data


def ssh_host(fields: Mapping[str, Any]) -> Any:
    """Where to SSH to, given an instance's public fields or facts: its public IP (ssh_port says the port)."""
    return fields.get("public_ip")


def public_instance(instance: Instance) -> dict[str, Any]:
    """An instance's public fields and ``ssh_host``: what a module returns and a Pulumi Instance outputs."""
    data = public(instance)
    data["ssh_host"] = ssh_host(data)
    return data


@cache  # asked once per host on the list path
def instance_fields() -> tuple[str, ...]:
    """The Instance model's fields without the raw payload (imported here, not at module import)."""
    from gpucloud.models import Instance

    return tuple(f for f in Instance.model_fields if f != "raw")


@cache
def _fact_keys() -> tuple[str, ...]:
    """The instance fields with ``location_name`` right after ``location`` and ``placement`` after ``tags``:
    the order hosts show facts in (the two are derived, not fields of the model)."""
    keys: list[str] = []
    for field in instance_fields():
        keys.append(field)
        if field == "location":
            keys.append("location_name")
        elif field == "tags":
            keys.append("placement")
    return tuple(keys)


def instance_facts(instance: Any, location_names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The facts of one instance (a gpucloud Instance or a mapping of its fields, e.g. Pulumi outputs, where
    a placed instance's ``placed_provider`` is its provider).

    Every Instance field but ``raw``, with ``gpu_model`` in its vendor-neutral spelling, ``gpu_count`` a
    number, ``location_name`` (a readable name from ``location_names``, else the id) next to ``location``, and
    ``placement``: the requirement the instance was placed for (see :func:`placement_facts`), else None.
    """
    if hasattr(instance, "model_dump"):
        facts = _model_facts(instance)
    else:
        facts = {key: instance.get(key) for key in _fact_keys()}
        facts["provider"] = instance.get("placed_provider") or facts["provider"]
        for key in _INTEGERS:
            if isinstance(facts[key], float):
                facts[key] = int(facts[key])
    location = facts["location"]
    facts["location_name"] = (location_names or {}).get(location, location) if location else None
    facts["gpu_model"] = normalise_gpu_model(facts["gpu_model"])
    facts["gpu_count"] = int(facts["gpu_count"] or 0)
    facts["ssh_key_ids"] = list(facts["ssh_key_ids"] or ())
    facts["volume_ids"] = list(facts["volume_ids"] or ())
    facts["tags"] = dict(facts["tags"] or {})
    facts["placement"] = placement_facts(facts["tags"], facts.get("placement"))
    # Pulumi state written before instances had a kind holds only VMs.
    facts["kind"] = facts.get("kind") or "vm"
    facts["compute_released"] = bool(facts.get("compute_released"))
    return facts


def _model_facts(instance: Any) -> dict[str, Any]:
    """An Instance's fields as ``model_dump(mode="json")`` spells them, read straight off the model: the
    inventory does this for every host, and pydantic's serializer walking each model cost about as much as
    building it. Only two fields are not JSON already: ``status`` (an enum) and ``created_at`` (a datetime);
    tuples and the tags dict become lists and a copy in instance_facts."""
    values = instance.__dict__  # a pydantic model keeps its field values there
    facts = {key: values.get(key) for key in _fact_keys()}
    status = facts["status"]
    if isinstance(status, Enum):
        facts["status"] = status.value
    created = facts["created_at"]
    if isinstance(created, datetime):
        facts["created_at"] = _json_datetime()(created)
    return facts


@cache
def _json_datetime() -> Callable[[datetime], Any]:
    """pydantic's own datetime spelling (``Z`` for UTC), so hosts listed live, from the cache and from Pulumi
    state agree. Imported on first use: a cached inventory run never loads pydantic."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python


def placement_tag_value(requirement: Mapping[str, Any]) -> str:
    """The :data:`PLACEMENT_TAG` value for a requirement given as plain data (``Requirement.as_facts``)."""
    return json.dumps(dict(requirement), sort_keys=True, separators=(",", ":"))


def placement_facts(tags: Mapping[str, str], record: Any = None) -> dict[str, Any] | None:
    """The requirement an instance was placed for: read off its :data:`PLACEMENT_TAG` (providers that keep
    tags), else from a placement ``record`` (a Pulumi placed instance's ``placement`` output, whose
    ``requirement`` it holds); None for an instance not placed by requirement or on a provider keeping no tags.
    A tag that is not a JSON object (set by hand) counts as none."""
    raw = tags.get(PLACEMENT_TAG)
    if raw is not None:
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    requirement = record.get("requirement") if isinstance(record, Mapping) else None
    return dict(requirement) if isinstance(requirement, Mapping) else None


def placement_label(requirement: Mapping[str, Any]) -> str:
    """The group label of a requirement set, every key and value in key order: ``{gpu: h100,
    max_price_per_hour: 3.0}`` -> ``placement_gpu_h100_max_price_per_hour_3.0`` (``placement_any``: none)."""
    parts: list[str] = []
    for key in sorted(requirement):
        value = requirement[key]
        values = value if isinstance(value, list | tuple) else [value]
        parts.append("_".join([key, *(str(v) for v in values)]))
    return "placement_" + ("_".join(parts) or "any")


def host_var_names(fact_names: Iterable[str] | None = None) -> tuple[str, ...]:
    """The names (before the prefix) of the fact variables a host can carry: every fact and ``ssh_host``.
    ``fact_names`` (e.g. the keys of cached facts) spares loading the model to learn them."""
    return (*(_fact_keys() if fact_names is None else fact_names), "ssh_host")


def check_host_var_names(names: Iterable[str], fact_names: Iterable[str] | None = None) -> None:
    """Every entry names a fact variable; anything else is a ValueError listing the valid ones."""
    known = host_var_names(fact_names)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"hostvar_fields: {', '.join(map(repr, unknown))} is not an instance fact; choose from {', '.join(known)}"
        )


def host_vars(
    facts: Mapping[str, Any],
    hostname: str,
    *,
    prefix: str = PREFIX,
    connect_with: str = "ssh_endpoint",
    only: Collection[str] | None = None,
    omit_null: bool = False,
) -> dict[str, Any]:
    """``<prefix><fact>`` for every fact, ``<prefix>ssh_host``, and how Ansible connects (``connect_with``).

    Lean host variables, for inventories of thousands of hosts (Ansible's own work per host grows with every
    variable): ``only`` keeps just these facts (names without the prefix), ``omit_null`` leaves out facts
    whose value is null. How Ansible connects (``ansible_*``) is set either way.
    """
    everything = {**facts, "ssh_host": ssh_host(facts)}
    variables = {
        prefix + key: value
        for key, value in everything.items()
        if (only is None or key in only) and not (omit_null and value is None)
    }
    if connect_with == "hostname":
        variables["ansible_host"] = hostname
    elif facts.get("public_ip"):
        variables["ansible_host"] = facts["public_ip"]
        if connect_with == "ssh_endpoint" and facts.get("ssh_port"):
            variables["ansible_port"] = facts["ssh_port"]
    if facts.get("ssh_user"):
        variables["ansible_user"] = facts["ssh_user"]
    return variables


def group_labels(facts: Mapping[str, Any]) -> list[str]:
    """The built-in groups of a host, before the prefix: provider, readable location, GPU model, status,
    instance kind (``kind_vm``, ``kind_bare_metal``) and, for a placed host, its requirement set
    (:func:`placement_label`)."""
    labels = [str(facts["provider"])]
    location = facts.get("location_name") or facts.get("location")
    for group, value in (
        ("location", location),
        ("gpu", facts.get("gpu_model")),
        ("status", facts.get("status")),
        ("kind", facts.get("kind")),
    ):
        if value:
            labels.append(f"{group}_{value}")
    if facts.get("placement") is not None:
        labels.append(placement_label(facts["placement"]))
    return labels


def group_name(label: str, prefix: str = PREFIX) -> str:
    """One case for every group: lower case, anything but letters, digits and ``_`` made ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", prefix + label.lower())


# --- hostnames ------------------------------------------------------------------------------------------
def check_hostnames(preferences: Sequence[str], fields: Iterable[str]) -> None:
    """Every entry is a fact name or a format string over fact names; anything else is a ValueError."""
    known = set(fields)
    if not preferences:
        raise ValueError("hostnames: give at least one entry, e.g. [name, public_ip, id]")
    for entry in preferences:
        unknown = [name for name in _referenced(entry) if name not in known]
        if unknown:
            raise ValueError(
                f"hostnames: {entry!r} names {', '.join(unknown)}, which no host has; "
                f"use fact names ({', '.join(sorted(known))}) or a format string over them"
            )


@cache  # asked for every host: parse each entry once
def _referenced(entry: str) -> tuple[str, ...]:
    """The fact names an entry uses: ``name`` -> (name,); ``{provider}-{id}`` -> (provider, id)."""
    if "{" not in entry:
        return (entry,)
    try:
        parsed = list(string.Formatter().parse(entry))
    except ValueError as exc:
        raise ValueError(f"hostnames: {entry!r} is not a valid format string: {exc}") from exc
    return tuple(re.split(r"[.\[]", field)[0] for _, field, _, _ in parsed if field is not None)


def hostname_for(facts: Mapping[str, Any], preferences: Sequence[str]) -> str:
    """The first entry whose facts are all set; ``<provider>-<id>`` when none is (no host is dropped)."""
    for entry in preferences:
        if all(facts.get(name) not in (None, "") for name in _referenced(entry)):
            return entry.format(**facts) if "{" in entry else str(facts[entry])
    return "{}-{}".format(facts["provider"], facts["id"])


def hostnames(facts: Sequence[Mapping[str, Any]], preferences: Sequence[str]) -> tuple[list[str], list[str]]:
    """Hostnames for ``facts`` and warnings: hosts that would share one get ``-<id>`` appended, so no host
    silently hides another (providers may allow two instances with one name)."""
    names = [hostname_for(f, preferences) for f in facts]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    clashes = [name for name in names if counts[name] > 1]
    warnings = [f"{counts[name]} instances map to hostname {name!r}; appending their ids" for name in clashes]
    unique = [f"{name}-{f['id']}" if counts[name] > 1 else name for name, f in zip(names, facts, strict=True)]
    return unique, warnings


# --- several providers at once ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ProviderFailure:
    """One provider that did not answer: what a user needs to see which one and why (never a secret).

    ``message`` is the error's whole text, for a record read on its own (``--with-errors`` JSON); the line
    (``str``) starts with the provider, so its text leaves the provider out of the parentheses."""

    provider: str
    error_class: str
    message: str
    line_text: str

    @classmethod
    def of(cls, provider: str, exc: errors.GpuCloudError) -> ProviderFailure:
        line_text = exc.describe(name_provider=False)
        return cls(provider=provider, error_class=type(exc).__name__, message=str(exc), line_text=line_text)

    def as_dict(self) -> dict[str, str]:
        return {"provider": self.provider, "error_class": self.error_class, "message": self.message}

    def __str__(self) -> str:
        return f"{self.provider}: {self.error_class}: {self.line_text}"


def gather(
    providers: Sequence[str], fetch: Callable[[str], list[T]], *, workers: int = 8
) -> tuple[list[T], list[ProviderFailure]]:
    """``fetch`` for every provider at once; what the answering ones returned (in provider order) and the
    failures of the others. Only gpucloud errors count as a provider failing; anything else is a bug and
    propagates."""

    def one(name: str) -> list[T] | ProviderFailure:
        try:
            return fetch(name)
        except errors.GpuCloudError as exc:
            return ProviderFailure.of(name, exc)

    items: list[T] = []
    failures: list[ProviderFailure] = []
    with ThreadPoolExecutor(max(1, min(workers, len(providers)))) as pool:
        for result in pool.map(one, providers):
            if isinstance(result, ProviderFailure):
                failures.append(result)
            else:
                items.extend(result)
    return items, failures

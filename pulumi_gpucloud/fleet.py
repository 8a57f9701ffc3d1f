"""``instance_fleet``: N :class:`~pulumi_gpucloud.Instance` resources named from one pattern (``trainer-{index}``).

    trainers = gpu.instance_fleet("trainer-{index}", 4, provider="datacrunch", instance_type="1V100.6V", ...)
    pulumi.export("ips", [t.public_ip for t in trainers])

The same naming rules as the Ansible module's ``count`` / ``exact_count`` (:mod:`gpucloud.fleet`): ``{index}``
counts from 1 and is required when ``count`` is more than 1. Pulumi itself gives the fleet semantics: members
are ordinary resources, so the engine creates them concurrently, an unchanged program is a no-op, and lowering
``count`` stops declaring the highest-numbered members, which the engine then deletes.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pulumi

from gpucloud import errors
from gpucloud.fleet import member_names, validate_pattern
from pulumi_gpucloud.resources import Instance, InstanceArgs


def instance_fleet(
    name_pattern: str,
    count: int,
    args: InstanceArgs | None = None,
    opts: pulumi.ResourceOptions | None = None,
    *,
    resource_name_pattern: str | None = None,
    **kwargs: Any,
) -> list[Instance]:
    """``count`` instances named ``name_pattern`` with ``{index}`` = 1 .. ``count``, in member order.

    ``args`` (or the :class:`InstanceArgs` fields as keyword arguments) apply to every member; ``name`` is taken
    from the pattern. Logical resource names follow ``resource_name_pattern`` (default: the instance names), so
    each member keeps its identity in the state when ``count`` changes.
    """
    try:
        validate_pattern(name_pattern, count, option="name_pattern")
        validate_pattern(resource_name_pattern or name_pattern, count, option="resource_name_pattern")
    except errors.ValidationError as exc:
        raise ValueError(f"instance_fleet: {exc.message}") from None
    if args is not None and kwargs:
        raise TypeError("instance_fleet: pass either an InstanceArgs or keyword arguments, not both")
    if args is None:
        unknown = set(kwargs) - {f.name for f in fields(InstanceArgs)}
        if unknown:
            raise TypeError(f"instance_fleet: unexpected arguments: {sorted(unknown)}")
        if "instance_type" not in kwargs:
            raise TypeError("instance_fleet: instance_type is required")
        args = InstanceArgs(**kwargs)
    if args.name is not None:
        raise TypeError("instance_fleet: members are named by name_pattern; do not pass name")
    names = member_names(name_pattern, count)
    logical = member_names(resource_name_pattern or name_pattern, count)
    return [Instance(resource, replace(args, name=name), opts) for resource, name in zip(logical, names, strict=True)]

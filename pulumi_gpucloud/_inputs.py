"""Inputs of the dynamic resources as Pulumi sends them: declared fields, unknown values (a preview), numbers as
doubles, secrets wrapped; and the first pass of Check that every kind and the placed instance share."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pulumi.dynamic import CheckFailure
from pulumi.output import Unknown
from pulumi.runtime import rpc

PROVIDER_KEY: Final = "__provider"


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    required: bool = False
    secret: bool = False
    item: type | None = None  # element type of a list / value type of a dict
    default: Any = None


_STR, _INT, _BOOL, _NUM = str, int, bool, (int, float)


def is_unknown(value: Any) -> bool:
    """An input Pulumi cannot know during preview (an output of a resource not created yet)."""
    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_unknown(v) for v in value)
    return False


def clean(props: Mapping[str, Any]) -> dict[str, Any]:
    """The properties without the serialised provider, secrets unwrapped."""
    return {k: rpc.unwrap_rpc_secret(v) for k, v in props.items() if k != PROVIDER_KEY}


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", list: "a list", dict: "a map"}
    if isinstance(kind, tuple):
        return "a number"
    return names.get(kind, kind.__name__)


def _coerce(name: str, spec: Field, value: Any) -> tuple[Any, str | None]:
    """The value as the core expects it (numbers arrive as floats over gRPC), or a reason it is wrong."""
    if spec.kind is int and isinstance(value, float) and not isinstance(value, bool):
        if not value.is_integer():
            return value, f"{name} must be a whole number, got {value}"
        value = int(value)
    if isinstance(spec.kind, tuple) and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value <= 0:
            return value, f"{name} must be a positive number of seconds, got {value}"
        return float(value), None
    if spec.kind is not bool and isinstance(value, bool):
        return value, f"{name} must be {_type_name(spec.kind)}, got a boolean"
    if not isinstance(value, spec.kind):
        return value, f"{name} must be {_type_name(spec.kind)}, got {type(value).__name__}"
    if isinstance(value, list):
        item = spec.item or object
        bad = [i for i, v in enumerate(value) if not is_unknown(v) and not isinstance(v, item)]
        if bad:
            return value, f"{name}[{bad[0]}] must be {_type_name(item)}"
    if isinstance(value, dict):
        item = spec.item or object
        bad_keys = [k for k, v in value.items() if not is_unknown(v) and not isinstance(v, item)]
        if bad_keys:
            return value, f"{name}[{bad_keys[0]!r}] must be {_type_name(item)}"
    if isinstance(value, str) and spec.required and not value.strip():
        return value, f"{name} must not be empty"
    return value, None


def schema_inputs(
    schema: Mapping[str, Field],
    props: Mapping[str, Any],
    not_an_input: Callable[[str], str],
    *,
    coerce: bool = True,
) -> tuple[dict[str, Any], list[CheckFailure]]:
    """Check's first pass: properties outside ``schema`` refused (``not_an_input`` says why), required ones
    present, defaults filled in and (with ``coerce``) values brought to their declared types. Unknown values (a
    preview) pass as they are: what depends on them is judged at ``up``."""
    failures = [CheckFailure(n, not_an_input(n)) for n in props if n not in schema and props[n] is not None]
    inputs: dict[str, Any] = {}
    for name, spec in schema.items():
        value = props.get(name)
        if value is None:
            if spec.required:
                failures.append(CheckFailure(name, f"{name} is required"))
            elif spec.default is not None:
                inputs[name] = spec.default
            continue
        if coerce and not is_unknown(value):
            value, problem = _coerce(name, spec, value)
            if problem:
                failures.append(CheckFailure(name, problem))
        inputs[name] = value
    return inputs, failures

"""Bad ``*Args`` values through the real dynamic-provider gRPC server's Check (what the engine calls first).

Check is offline by design, so every refusal here must cost 0 requests of any kind; the failure must name the
property. Catalogue names pass Check (it cannot read the catalogue) and are refused at Create with catalogue
reads only: 0 writes (tests/fuzz/test_core_inputs.py defines "reached the API").
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpucloud.emulator import EmulatorServer
from pulumi_gpucloud._provider import INPUTS

from .. import figures
from ..contract.specs import INSTANCE
from ..pulumi.conftest import PROVIDERS, TYPES, emulator_env, harness, project_dir, unique  # noqa: F401 - fixtures
from ..pulumi.harness import DynamicProviderHarness, ProviderFailed, program_inputs
from .strategies import FUZZ, NAME_RULES, bad_names, bad_public_keys, unusable_names, valid_public_key
from .test_core_inputs import writes

pytestmark = pytest.mark.fuzz
BASE: dict[str, dict[str, Any]] = {
    "instance": {"provider": "datacrunch", "name": "fz", **INSTANCE["datacrunch"]},
    "volume": {"provider": "datacrunch", "name": "fz", "size_gb": 10, "location": "FIN-01"},
    "ssh_key": {"provider": "voltagepark", "name": "fz-key", "public_key": valid_public_key()},
}


def _wrong_type(kind: type | tuple[type, ...]) -> st.SearchStrategy[Any]:
    """A value of another type than ``kind`` (numbers travel as doubles; a whole double is an int)."""
    if kind is str:
        return st.one_of(st.integers(-5, 5), st.booleans(), st.lists(st.text(max_size=3), min_size=1, max_size=2))
    if kind is int:
        return st.one_of(st.text(max_size=5), st.booleans(), st.floats(0.01, 1e6).filter(lambda f: not f.is_integer()))
    if kind is bool:
        return st.one_of(st.text(max_size=5), st.integers(0, 3))
    if kind is list:
        return st.one_of(st.text(min_size=1, max_size=5), st.integers(), st.lists(st.integers(), min_size=1))
    if kind is dict:
        return st.one_of(st.text(min_size=1, max_size=5), st.lists(st.text(max_size=3), min_size=1, max_size=2))
    # Infinity cannot travel in a protobuf Struct, so the engine never sends it.
    return st.one_of(st.text(max_size=5), st.booleans(), st.floats(max_value=0, allow_infinity=False))


@st.composite
def bad_props(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(kind, props, property the failure must name): a value each provider's rules or the schema refuse."""
    choice = draw(
        st.sampled_from(["unknown", "size", "instance_name", "display_name", "unusable_name", "key_name", "key"])
    )
    kind = {"size": "volume", "instance_name": "instance", "display_name": "instance"}.get(choice, "ssh_key")
    if choice == "unusable_name":
        kind = draw(st.sampled_from(sorted(BASE)))
    if choice == "unknown":
        kind = draw(st.sampled_from(sorted(INPUTS)))
    props = dict(BASE[kind])
    if choice == "unknown":
        names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
        prop = draw(names.filter(lambda p: p not in INPUTS[kind]))
        props[prop] = draw(st.text(min_size=1, max_size=5))
        return kind, props, prop
    if choice == "size":
        props["size_gb"] = draw(st.integers(max_value=0))
        return kind, props, "size_gb"
    if choice == "display_name":  # Voltage Park and ComputeStacks: printable ASCII only
        provider = draw(st.sampled_from(["voltagepark", "computestacks"]))
        props = {"provider": provider, "name": "fz", **INSTANCE[provider]}
        props["name"] = draw(bad_names(NAME_RULES[(provider, "instance")]))
        return kind, props, "name"
    if choice == "unusable_name":  # blank or with control characters: refused for every provider
        props["provider"] = draw(st.sampled_from(["voltagepark", "cloudnexus", "computestacks"]))
        props.update(INSTANCE[props["provider"]] if kind == "instance" else {})
        props["name"] = draw(unusable_names())
        return kind, props, "name"
    if choice in ("instance_name", "key_name"):
        props["name"] = draw(bad_names(NAME_RULES[(props["provider"], kind)]).filter(lambda v: bool(v.strip())))
        return kind, props, "name"
    props["public_key"] = draw(bad_public_keys().filter(lambda v: bool(v.strip())))
    return kind, props, "public_key"


FIELDS = [(kind, prop) for kind in sorted(INPUTS) for prop in sorted(INPUTS[kind])]


@pytest.mark.parametrize(("kind", "prop"), FIELDS, ids=[f"{k}.{p}" for k, p in FIELDS])
@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_check_refuses_every_field_given_the_wrong_type(
    harness: DynamicProviderHarness,  # noqa: F811 - the fixture imported above
    emulator: EmulatorServer,
    kind: str,
    prop: str,
    data: st.DataObject,
) -> None:
    props = {**BASE[kind], prop: data.draw(_wrong_type(INPUTS[kind][prop].kind))}
    before = emulator.world.request_count()
    _, failures = harness.check(TYPES[kind], "fz", {}, program_inputs(PROVIDERS[kind], props))
    sent = emulator.world.request_count() - before
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", int(sent > 0))
    assert sent == 0
    assert any(p == prop and prop in reason for p, reason in failures), (props, failures)


@FUZZ
@given(case=bad_props())
def test_check_refuses_bad_args_naming_the_property_without_requests(
    harness: DynamicProviderHarness,  # noqa: F811 - the fixture imported above
    emulator: EmulatorServer,
    case: tuple[str, dict[str, Any], str],
) -> None:
    kind, props, prop = case
    before = emulator.world.request_count()
    news = program_inputs(PROVIDERS[kind], props)
    _, failures = harness.check(TYPES[kind], "fz", {}, news)
    sent = emulator.world.request_count() - before
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", int(sent > 0))
    assert sent == 0
    assert any(p == prop and prop in reason for p, reason in failures), (props, failures)


@pytest.mark.parametrize("field", ["instance_type", "image", "location"])
@FUZZ
@given(value=st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=30))
def test_unknown_catalogue_names_fail_create_without_writes(
    harness: DynamicProviderHarness,  # noqa: F811
    emulator: EmulatorServer,
    field: str,
    value: str,
) -> None:
    props = {**BASE["instance"], "name": unique("fz-cat"), field: "zz-" + value}
    news = program_inputs(PROVIDERS["instance"], props)
    checked, failures = harness.check(TYPES["instance"], props["name"], {}, news)
    assert not failures  # Check cannot know the catalogue
    before = writes(emulator, "datacrunch")
    with pytest.raises(ProviderFailed) as info:
        harness.create(TYPES["instance"], props["name"], checked)
    sent = writes(emulator, "datacrunch") - before
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", int(sent > 0))
    assert sent == 0
    assert field in info.value.details and repr(props[field]) in info.value.details

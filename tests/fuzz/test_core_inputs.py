"""Bad input to the gpucloud core (validation.py, the spec models, each adapter's rules, ensure_*): refused
with an error naming the field, before anything changes at the provider.

"Reached the API" means a request that could change something (POST/PUT/PATCH/DELETE other than a token
request). Names, keys, sizes and types are checked offline: for those no request at all may be made. Catalogue
names (instance type, image, location) can only be checked by reading the provider's catalogue, so those may
cost catalogue GETs, and still no write. CloudNexus documents no catalogue endpoint: its unknown names can only
be refused by its API (tested on their own below, and not counted as bad inputs that stayed local).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpucloud
from gpucloud import ensure, errors, validation
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.models import InstanceSpec, SshKeySpec, VolumeSpec
from gpucloud.providers import provider_class

from .. import figures
from ..conftest import IMPLEMENTED, connect, providers_with
from ..contract.specs import INSTANCE, VOLUME
from .strategies import (
    FUZZ,
    NAME_RULES,
    bad_names,
    bad_public_keys,
    non_positive_sizes,
    not_an_integer,
    unknown_names,
    unusable_names,
    valid_public_key,
)

pytestmark = pytest.mark.fuzz
Overrides = dict[str, dict[str, object]]
WRITES = ("POST", "PUT", "PATCH", "DELETE")
LIVE_EXAMPLES = 50  # each one talks to the emulator


def writes(emulator: EmulatorServer, provider: str) -> int:
    return sum(
        1
        for r in emulator.world.requests
        if r.provider == provider and r.method in WRITES and "token" not in r.path and "oauth" not in r.path
    )


def requests(emulator: EmulatorServer, provider: str) -> int:
    return emulator.world.request_count(provider=provider)


def offline(provider: str) -> gpucloud.Provider:
    """The adapter's offline rules without a connection (as the Pulumi provider's Check uses them)."""
    cls = provider_class(provider)
    return cls.__new__(cls)


def refused(call: Callable[[], Any]) -> tuple[str | None, str]:
    """(field, message) of the refusal; fails the test when ``call`` accepts the input."""
    try:
        call()
    except errors.ValidationError as exc:
        return exc.field, str(exc)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        return str(first["loc"][0]), str(exc)
    raise AssertionError("the bad input was accepted")


# --- offline: validation.py and the adapters' own rules, many examples -----------------------------------
@FUZZ
@given(text=bad_public_keys(), field=st.sampled_from(["public_key", "ssh_keys[0]", "ssh_keys[3]"]))
def test_malformed_public_keys_are_refused_naming_the_field(text: str, field: str) -> None:
    got, message = refused(lambda: validation.validate_public_key(text, field=field))
    assert got == field and field in message
    figures.record("bad inputs tried")


@pytest.mark.parametrize(("provider", "kind"), sorted(NAME_RULES))
@FUZZ
@given(data=st.data())
def test_names_breaking_the_provider_rule_are_refused_offline(provider: str, kind: str, data: st.DataObject) -> None:
    name = data.draw(bad_names(NAME_RULES[(provider, kind)]))
    # The spec model refuses some names itself (blank, control characters), the adapter the rest.
    got, message = refused(lambda: _validate_offline(provider, kind, name))
    assert got == "name" and "name" in message
    figures.record("bad inputs tried")


@pytest.mark.parametrize(("provider", "kind"), sorted(NAME_RULES))
@FUZZ
@given(data=st.data())
def test_names_within_the_provider_rule_pass_offline(provider: str, kind: str, data: st.DataObject) -> None:
    """The other half of the rule: the adapters must not refuse what the provider accepts."""
    rule = NAME_RULES[(provider, kind)]
    name = data.draw(st.from_regex(rule.pattern, fullmatch=True).filter(rule.allows))
    _validate_offline(provider, kind, name)


def _validate_offline(provider: str, kind: str, name: str) -> None:
    adapter = offline(provider)
    if kind == "instance":
        adapter.validate_instance_spec(InstanceSpec(name=name, **INSTANCE[provider]))
    elif kind == "volume":
        adapter.validate_volume_spec(VolumeSpec(name=name, size_gb=10, **VOLUME[provider]))
    else:
        adapter.validate_ssh_key_spec(SshKeySpec(name=name, public_key=valid_public_key()))


@pytest.mark.parametrize("kind", ["instance", "volume", "ssh_key"])
@pytest.mark.parametrize("provider", IMPLEMENTED)
@FUZZ
@given(name=unusable_names())
def test_blank_and_control_character_names_are_refused_for_every_provider(provider: str, kind: str, name: str) -> None:
    """Whatever a provider's own rule: a blank name or one with a line break, NUL or invisible character never
    reaches an API (nor an inventory host name)."""
    got, message = refused(lambda: _validate_offline(provider, kind, name))
    assert got == "name" and "name" in message
    figures.record("bad inputs tried")


@FUZZ
@given(
    size=st.one_of(non_positive_sizes(), not_an_integer(), st.booleans()),
    name=st.one_of(st.just(""), st.text(min_size=1, max_size=20)),
)
def test_volume_sizes_that_are_not_positive_whole_numbers_are_refused(size: Any, name: str) -> None:
    got, message = refused(lambda: VolumeSpec(name=name, size_gb=size))
    assert got in {"size_gb", "name"} and got in message
    try:
        VolumeSpec(name=name, size_gb=1)
    except pydantic.ValidationError:
        return  # a bad name (empty, blank, control characters) may be reported first
    assert got == "size_gb"
    figures.record("bad inputs tried")


@FUZZ
@given(
    field=st.sampled_from(["name", "instance_type", "image", "location", "ssh_keys", "tags", "password"]),
    value=st.one_of(st.integers(), st.lists(st.integers(), min_size=1, max_size=2), st.floats(allow_nan=False)),
)
def test_instance_fields_of_the_wrong_type_are_refused(field: str, value: Any) -> None:
    values: dict[str, Any] = {"name": "ok", "instance_type": "t", field: value}
    if field == "tags":
        values[field] = {"k": value}
    got, message = refused(lambda: InstanceSpec(**values))
    assert got == field and field in message
    figures.record("bad inputs tried")


@pytest.mark.parametrize("provider", ["voltagepark"])
@FUZZ
@given(password=st.text(max_size=7))
def test_short_passwords_are_refused_without_echoing_them(provider: str, password: str) -> None:
    spec = InstanceSpec(name="pw", password=password or "x", **INSTANCE[provider])
    got, message = refused(lambda: offline(provider).validate_instance_spec(spec))
    assert got == "password"
    assert repr(spec.password) not in message  # a secret, even a bad one, is never echoed
    figures.record("bad inputs tried")


# --- live: ensure_* through a connected adapter, request log checked --------------------------------------
@st.composite
def bad_offline_case(draw: st.DrawFn, provider: str) -> tuple[str, dict[str, Any], str]:
    """(kind, arguments, field) of an input refused without any request on ``provider``."""
    caps = provider_class(provider).capabilities
    options = ["instance_key"]
    if (provider, "instance") in NAME_RULES:
        options.append("instance_name")
    if Capability.SSH_KEYS in caps:
        options.append("key_text")
    if (provider, "ssh_key") in NAME_RULES:
        options.append("key_name")
    if Capability.INSTANCE_PASSWORD in caps and provider == "voltagepark":
        options.append("password")
    choice = draw(st.sampled_from(options))
    base = {"name": "fuzz-ok", **INSTANCE[provider]}
    if choice == "instance_name":
        return "instance", {**base, "name": draw(bad_names(NAME_RULES[(provider, "instance")]))}, "name"
    if choice == "instance_key":
        # A text that claims to be a key (known type) but is malformed; other references are names.
        key = draw(bad_public_keys().filter(lambda k: k.split(" ")[0] in validation._KEY_TYPES))
        return "instance", {**base, "ssh_keys": ("known-name-irrelevant", key)}, "ssh_keys[1]"
    if choice == "password":
        return "instance", {**base, "password": draw(st.text(min_size=1, max_size=7))}, "password"
    if choice == "key_name":
        name = draw(bad_names(NAME_RULES[(provider, "ssh_key")]))
        return "ssh_key", {"name": name, "public_key": valid_public_key()}, "name"
    return "ssh_key", {"name": "fuzz-key", "public_key": draw(bad_public_keys())}, "public_key"


def _run(cloud: gpucloud.Provider, kind: str, args: dict[str, Any]) -> Any:
    if kind == "instance":
        return ensure.ensure_instance(cloud, InstanceSpec(**args), wait=False)
    if kind == "volume":
        return ensure.ensure_volume(cloud, VolumeSpec(**args))
    return ensure.ensure_ssh_key(cloud, SshKeySpec(**args))


@pytest.mark.parametrize("provider", IMPLEMENTED)
@settings(FUZZ, max_examples=LIVE_EXAMPLES)
@given(data=st.data())
def test_bad_inputs_make_no_request_at_all(
    emulator: EmulatorServer, overrides: Overrides, provider: str, data: st.DataObject
) -> None:
    kind, args, field = data.draw(bad_offline_case(provider))
    with connect(overrides, provider) as cloud:
        before = requests(emulator, provider)
        got, message = refused(lambda: _run(cloud, kind, args))
        sent = requests(emulator, provider) - before
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", int(sent > 0))
    assert sent == 0, f"{kind} {args!r} sent {sent} request(s)"
    if provider == "computestacks" and field.startswith("ssh_keys"):
        assert got is not None and got.startswith("ssh_keys")  # it refuses every key text, by position
    else:
        assert got == field and field.split("[")[0] in message


CATALOGUE_PROVIDERS = [p for p in providers_with(Capability.OFFERS)]


def _catalogue(cloud: gpucloud.Provider) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {"instance_type": set(), "image": set(), "location": set()}
    for offer in cloud.list_offers():
        known["instance_type"].add(offer.instance_type)
    if cloud.supports(Capability.IMAGES):
        known["image"] |= {i.id for i in cloud.list_images()} | {i.name for i in cloud.list_images()}
    if cloud.supports(Capability.LOCATIONS):
        known["location"] |= {loc.id for loc in cloud.list_locations()} | {loc.name for loc in cloud.list_locations()}
    return known


@pytest.mark.parametrize("provider", CATALOGUE_PROVIDERS)
@settings(FUZZ, max_examples=LIVE_EXAMPLES)
@given(data=st.data())
def test_unknown_catalogue_names_are_refused_with_reads_only(
    emulator: EmulatorServer, overrides: Overrides, provider: str, data: st.DataObject
) -> None:
    caps = provider_class(provider).capabilities
    fields = ["instance_type"]
    if Capability.IMAGES in caps:
        fields.append("image")
    if Capability.INSTANCE_LOCATION_CHOICE in caps and Capability.LOCATIONS in caps:
        fields.append("location")
    if Capability.VOLUME_CREATE in caps and Capability.VOLUME_LOCATION in caps and Capability.LOCATIONS in caps:
        fields.append("volume.location")
    field = data.draw(st.sampled_from(fields))
    with connect(overrides, provider) as cloud:
        known = _catalogue(cloud)
        value = data.draw(unknown_names(known[field.removeprefix("volume.")]))
        if field == "volume.location":
            kind, args = "volume", {"name": "fuzz-vol", "size_gb": 10, **VOLUME[provider], "location": value}
        else:
            kind, args = "instance", {"name": "fuzz-cat", **INSTANCE[provider], field: value}
        before = writes(emulator, provider)
        got, message = refused(lambda: _run(cloud, kind, args))
        sent = writes(emulator, provider) - before
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", int(sent > 0))
    assert sent == 0, f"{kind} {args!r} sent {sent} write(s)"
    assert got == field.removeprefix("volume.") and repr(value) in message


@pytest.mark.parametrize("field", ["instance_type", "image", "location"])
def test_cloudnexus_unknown_names_are_refused_by_its_api_and_nothing_is_created(
    emulator: EmulatorServer, overrides: Overrides, field: str
) -> None:
    """CloudNexus has no documented catalogue endpoint, so only its API can refuse an unknown name: one create
    request, answered 400 with a message naming the field, and no instance left behind."""
    args = {"name": f"fuzz-cn-{field}", **INSTANCE["cloudnexus"], field: "no-such-thing"}
    with connect(overrides, "cloudnexus") as cloud:
        with pytest.raises(errors.ValidationError) as info:
            _run(cloud, "instance", args)
        assert cloud.find_instance(args["name"]) is None
    assert info.value.status_code == 400
    assert {"instance_type": "instance type", "image": "image", "location": "region"}[field] in str(info.value)

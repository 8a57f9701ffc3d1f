"""Every list of providers agrees with gpucloud.registry: the derived ones by construction, the static copies the
Ansible collection needs (its docs are plain YAML) by these checks, and each registered name has both parts."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from gpucloud import DEFAULT_URLS, config, providers, registry
from gpucloud.emulator import app, client, world

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "ansible_collections" / "gpucloud" / "cloud" / "plugins"


def test_every_registered_provider_has_an_adapter_named_like_it() -> None:
    for entry in registry.REGISTRY:
        assert providers.provider_class(entry.name).name == entry.name


def test_every_registered_provider_has_an_emulator_part_at_its_prefix() -> None:
    specs = {spec.name: spec for spec in app.PROVIDERS}
    assert list(specs) == list(registry.NAMES)
    for entry in registry.REGISTRY:
        assert specs[entry.name].prefix == entry.emulator_prefix
        assert importlib.import_module(entry.emulator_module).SPEC is specs[entry.name]


def test_derived_lists_follow_the_registry() -> None:
    assert config.PROVIDERS == registry.NAMES
    assert providers.implemented() == registry.NAMES
    assert set(client.PATH_PREFIXES) == set(registry.NAMES)
    assert set(world.random_credentials()) == set(registry.NAMES)
    assert set(DEFAULT_URLS) == {e.name for e in registry.REGISTRY if e.default_url}
    assert set(world.PUBLISHED_RATE_LIMITS) <= set(registry.NAMES)


def test_emulated_credentials_fill_what_each_adapter_needs() -> None:
    # A fresh set per run, one value per declared field, and what config calls "configured".
    first, second = world.random_credentials(), world.random_credentials()
    for entry in registry.REGISTRY:
        assert set(first[entry.name]) == set(entry.credential_fields)
        assert first[entry.name] != second[entry.name]
        assert config.ProviderConfig(provider=entry.name, **first[entry.name]).is_configured()


def test_ansible_static_copies_match_the_registry() -> None:
    from ansible_collections.gpucloud.cloud.plugins.doc_fragments import gpucloud as fragment
    from ansible_collections.gpucloud.cloud.plugins.module_utils import gpucloud as utils

    assert tuple(utils.PROVIDERS) == registry.NAMES
    docs = yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)
    assert tuple(docs["options"]["provider"]["choices"]) == registry.NAMES


def test_every_provider_has_a_documentation_page() -> None:
    pages = {path.stem for path in (ROOT / "docs" / "providers").glob("*.md")}
    assert pages == set(registry.NAMES)


def test_unknown_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"nimbus.*datacrunch"):
        registry.registration("nimbus")

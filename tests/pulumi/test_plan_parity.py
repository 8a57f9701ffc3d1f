"""One plan from both front-ends: the same desired/current pairs planned by the Ansible side and by the Pulumi side.

Ansible side: ``gpucloud.ensure`` in check mode, what the modules run (with ``force_replace``, as a user who lets a
replacement happen, so that the plan is shown instead of refused). Pulumi side: the provider's Check and Diff in a
preview, through the engine-faithful harness (the SDK's own dynamic-provider gRPC server). Per provider, a table of
cases over the resources it has: an instance's type (resized where the API resizes, else replaced), its tags
(updated on Voltage Park; replaced on CloudNexus, whose tags are fixed at create) and image, a volume growing (in
place where the API resizes) or shrinking (refused by both, naming size_gb), a key's new content; and the same
changes with the input unknown in the preview, which the provider classifies by reconcile's own in-place rules.
Both must show the same action and the same fields forcing a replacement.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud import ensure, errors
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.models import InstanceSpec, SshKeySpec, VolumeSpec
from gpucloud.providers import implemented, provider_class

from ..contract.specs import INSTANCE, OTHER_TYPE, REPLACING, VOLUME
from .conftest import attempt, declare, unique
from .harness import COMPUTED, DynamicProviderHarness, Stack

# (action, fields forcing a replace) or ("refused", the property named).
Seen = tuple[str, list[str] | str | None]
NEW_KEY = "<another public key>"  # stands for a second key's text, made by the test


def _cases(provider: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(resource, case, inputs changed from the current ones) for what this provider has."""
    caps = provider_class(provider).capabilities
    cases: list[tuple[str, str, dict[str, Any]]] = [("box", "unchanged", {})]
    cases.append(("box", "instance type", {"instance_type": OTHER_TYPE[provider]}))
    if Capability.INSTANCE_TAGS in caps:
        cases.append(("box", "tags", {"tags": {"team": "b", "env": "x"}}))
    if "image" in REPLACING[provider]:
        cases.append(("box", "image", {"image": REPLACING[provider]["image"]}))
    if Capability.VOLUME_CREATE in caps:
        cases += [("data", "unchanged", {}), ("data", "grows", {"size_gb": 20}), ("data", "shrinks", {"size_gb": 5})]
    if Capability.SSH_KEYS in caps:
        cases += [("key", "unchanged", {}), ("key", "new content", {"public_key": NEW_KEY})]
    return cases


# What both must say where the rule is the point (the rest must only agree).
EXPECTED: dict[tuple[str, str], Seen] = {
    ("cloudnexus", "tags"): ("replace", ["tags"]),
    ("voltagepark", "tags"): ("update", []),
    ("cloudnexus", "instance type"): ("update", []),
    ("datacrunch", "instance type"): ("replace", ["instance_type"]),
    ("datacrunch", "grows"): ("update", []),
    ("voltagepark", "shrinks"): ("refused", "size_gb"),
    ("datacrunch", "shrinks"): ("refused", "size_gb"),
}


def _known_difference(provider: str, case: str) -> tuple[Seen, Seen] | None:
    """(Ansible's plan, Pulumi's plan) where the two front-ends see differently, pinned so that a change of either
    side shows. One: an API that never returns key material (ComputeStacks) cannot show Ansible that a key's text
    changed (reconcile compares only what the API reports), while Pulumi's state remembers the text it was given."""
    if case == "new content" and not provider_class(provider).reports_public_keys:
        return ("none", []), ("replace", ["public_key"])
    return None


def _current(provider: str, names: dict[str, str], public_key: str) -> dict[str, dict[str, Any]]:
    caps = provider_class(provider).capabilities
    keys = [names["key"]] if Capability.SSH_KEYS in caps else [public_key]
    box = {"provider": provider, "name": names["box"], **INSTANCE[provider], "ssh_keys": keys}
    if Capability.INSTANCE_TAGS in caps:
        box["tags"] = {"team": "a"}
    props = {"box": box}
    if Capability.VOLUME_CREATE in caps:
        props["data"] = {"provider": provider, "name": names["data"], "size_gb": 10, **VOLUME[provider]}
    if Capability.SSH_KEYS in caps:
        props["key"] = {"provider": provider, "name": names["key"], "public_key": public_key}
    return props


KINDS = {"box": "instance", "data": "volume", "key": "ssh_key"}


def _ansible(cloud: gpucloud.Provider, resource: str, props: dict[str, Any]) -> Seen:
    """The plan the Ansible module shows in check mode (``plan.action``, ``plan.replacements``)."""
    plans: dict[str, Callable[[], ensure.Outcome[Any]]] = {
        "box": lambda: ensure.ensure_instance(cloud, _spec(InstanceSpec, props), check_mode=True, force_replace=True),
        "data": lambda: ensure.ensure_volume(cloud, _spec(VolumeSpec, props), check_mode=True, force_replace=True),
        "key": lambda: ensure.ensure_ssh_key(cloud, _spec(SshKeySpec, props), check_mode=True),
    }
    try:
        outcome = plans[resource]()
    except errors.ValidationError as exc:
        return ("refused", exc.field)
    return (str(outcome.action), sorted(outcome.plan.replace_fields))


def _spec(model: type[Any], props: dict[str, Any]) -> Any:
    return model(**{k: v for k, v in props.items() if k in model.model_fields})


def _pulumi(harness: DynamicProviderHarness, program: dict[str, dict[str, Any]], resource: str, stack: Stack) -> Seen:
    """The preview's plan for ``resource`` (its Check failure if Check refused it)."""
    declared = [declare(KINDS[name], name, props) for name, props in program.items()]
    deployment, refusal = attempt(harness, declared, stack, preview=True)
    planned = deployment.planned[resource]
    if refusal is not None:
        return ("refused", planned.failures[0][0] if planned.failures else refusal)
    operation = {"same": "none"}.get(planned.operation, planned.operation)
    return (operation, sorted(planned.diff.replaces) if planned.diff is not None else [])


@pytest.mark.parametrize("provider", implemented())
def test_ansible_check_mode_and_pulumi_preview_plan_alike(
    provider: str,
    fast_harness: DynamicProviderHarness,
    instant: EmulatorServer,
    keypair: tuple[Any, str],
    tmp_path: Path,
) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k2")], check=True)
    new_key = (tmp_path / "k2.pub").read_text().strip()
    names = {role: unique(f"par-{role}-{provider[:4]}") for role in KINDS}
    current = _current(provider, names, keypair[1])
    options = {**client_overrides(instant.url, instant.settings)[provider], "poll_interval": 0.01}
    stack: Stack = {}
    compared: list[str] = []
    mismatches: list[str] = []
    with gpucloud.connect(provider, **options) as cloud:
        try:
            if "key" in current:  # first, so that the instance can name it
                stack = fast_harness.deploy([declare("ssh_key", "key", current["key"])]).stack
            stack = fast_harness.deploy([declare(KINDS[n], n, p) for n, p in current.items()], stack).stack
            for resource, case, change in _cases(provider):
                desired = {**current[resource], **{k: new_key if v == NEW_KEY else v for k, v in change.items()}}
                said = _ansible(cloud, resource, desired)
                for unknown in (False, True) if change and said[0] != "refused" else (False,):
                    shown = {**desired, **{k: COMPUTED for k in change}} if unknown else desired
                    seen = _pulumi(fast_harness, {**current, resource: shown}, resource, stack)
                    label = f"{provider} {resource} {case}{' (unknown in the preview)' if unknown else ''}"
                    known = _known_difference(provider, case)
                    if known is not None and (said, seen) != known:
                        mismatches.append(f"{label}: planned {said} and {seen}, expected the known {known}")
                    elif known is None and seen != said:
                        mismatches.append(f"{label}: Ansible check mode planned {said}, Pulumi's preview {seen}")
                    compared.append(label)
                expected = EXPECTED.get((provider, case))
                if expected is not None and said != expected:
                    mismatches.append(f"{provider} {resource} {case}: planned {said}, expected {expected}")
        finally:
            if stack:
                fast_harness.destroy_stack(stack)
    assert mismatches == []
    assert len(compared) >= len(_cases(provider))

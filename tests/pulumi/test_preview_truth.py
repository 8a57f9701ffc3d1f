"""``pulumi preview`` tells the truth: random versions of a program, each previewed and then brought up through the
engine-faithful harness (harness.py), must get the same Diff per resource from both.

Per provider, a seeded run of program versions (an instance with one of two types, tags omitted or given, present
or removed; a volume, attached to the instance by ``box.name`` or not, growing or not, present or removed) ends
with a destroy. For every resource of every version, the preview's planned operation and Diff (kind, the
properties forcing a replace, delete-before-replace) must equal the ``up``'s. ``GPUCLOUD_PLAN_SEED`` picks the
seed (else a random one, printed with any failure).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud import SshKeySpec
from gpucloud.capabilities import Capability
from gpucloud.config import env_var
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import PATH_PREFIXES, client_env, client_overrides
from gpucloud.ensure import ensure_ssh_key, ensure_ssh_key_absent
from gpucloud.providers import implemented, provider_class
from tests import figures

from ..contract.specs import INSTANCE, OTHER_TYPE, VOLUME
from .conftest import PROJECT, attached_by_name, declare
from .harness import Declared, Deployment, DynamicProviderHarness, Planned, Stack

SEED = int(os.environ.get("GPUCLOUD_PLAN_SEED") or random.randrange(2**32))
# Program versions brought up per provider (then the destroy); GPUCLOUD_PLAN_TRANSITIONS multiplies them.
VERSIONS = int(12 * float(os.environ.get("GPUCLOUD_PLAN_TRANSITIONS") or 1))
TAGS: list[dict[str, str] | None] = [None, {}, {"team": "a"}, {"team": "b", "env": "a"}]


@pytest.fixture(scope="module")
def instant() -> Iterator[EmulatorServer]:
    """Lifecycle steps at once and no sshd, so a version costs only its round trips."""
    with EmulatorServer(provision_seconds=0.0, rate_limits={}, ssh=False) as server:
        yield server


@pytest.fixture(scope="module")
def fast_harness(
    instant: EmulatorServer, project_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DynamicProviderHarness]:
    """The SDK's provider server (as conftest's ``harness``) on the instant emulator, with no user config file."""
    missing = tmp_path_factory.mktemp("noconfig") / "config.toml"
    env = {**client_env(instant.url, instant.settings), "GPUCLOUD_CONFIG": str(missing)}
    env.update({env_var(p, "poll_interval"): "0.01" for p in PATH_PREFIXES})
    with DynamicProviderHarness(project_dir, project=PROJECT, env=env) as running:
        yield running


class Versions:
    """Random program versions for one provider; the volume only grows (shrinking is refused, and tested elsewhere)."""

    def __init__(self, provider: str, rng: random.Random, keys: list[str]) -> None:
        self.provider, self.rng, self.keys = provider, rng, keys
        self.caps = provider_class(provider).capabilities
        self.size = 10
        prefix = f"pv{rng.randrange(10**6)}-{provider[:4]}"
        self.box, self.data = f"{prefix}-box", f"{prefix}-data"

    def next(self) -> list[Declared]:
        rng, program = self.rng, []
        has_box = rng.random() < 0.85
        if has_box:
            props: dict[str, Any] = {"provider": self.provider, "name": self.box, **INSTANCE[self.provider]}
            props["ssh_keys"] = self.keys
            if rng.random() < 0.35:
                props["instance_type"] = OTHER_TYPE[self.provider]
            tags = rng.choice(TAGS) if Capability.INSTANCE_TAGS in self.caps else None
            if tags is not None:
                props["tags"] = tags
            program.append(declare("instance", "box", props))
        if Capability.VOLUME_CREATE in self.caps and rng.random() < 0.7:
            self.size += rng.choice([0, 0, 10])
            props = {"provider": self.provider, "name": self.data, "size_gb": self.size, **VOLUME[self.provider]}
            # DataCrunch attaches only to stopped instances, and a Pulumi instance runs: no attach_to there.
            if has_box and provider_class(self.provider).volume_attach_statuses is None and rng.random() < 0.6:
                props["attach_to"] = attached_by_name("box")
            program.append(declare("volume", "data", props))
        return program


def _seen(planned: Planned | None) -> tuple[Any, ...] | None:
    """What a preview shows of one resource: the operation and its Diff."""
    if planned is None:
        return None
    diff = planned.diff
    shown = (diff.kind, sorted(diff.replaces), diff.delete_before_replace) if diff is not None else None
    return (planned.operation, shown)


def _compare(preview: Deployment, up: Deployment, version: int) -> int:
    names = sorted(set(preview.planned) | set(up.planned))
    for name in names:
        said, did = _seen(preview.planned.get(name)), _seen(up.planned.get(name))
        if said != did:
            figures.record("plan mismatches")
        assert said == did, (
            f"version {version}, {name}: preview showed {said}, up did {did} (GPUCLOUD_PLAN_SEED={SEED})"
        )
    return len(names)


@pytest.mark.parametrize("provider", implemented())
def test_preview_diff_equals_the_up_diff(
    provider: str, fast_harness: DynamicProviderHarness, instant: EmulatorServer, keypair: tuple[Any, str]
) -> None:
    options = {**client_overrides(instant.url, instant.settings)[provider], "poll_interval": 0.01}
    with gpucloud.connect(provider, **options) as cloud:
        key = None
        keys = [keypair[1]]
        if cloud.supports(Capability.SSH_KEYS):
            key = ensure_ssh_key(cloud, SshKeySpec(name=f"preview truth {provider}", public_key=keypair[1])).after
            assert key is not None
            keys = [key.name]
        versions = Versions(provider, random.Random(f"{SEED}-{provider}"), keys)
        stack: Stack = {}
        tried = ups = 0
        try:
            for version in range(VERSIONS + 1):
                program = versions.next() if version < VERSIONS else []  # the last one: destroy
                preview = fast_harness.deploy(program, stack, preview=True)
                up = fast_harness.deploy(program, stack)
                tried += _compare(preview, up, version)
                stack, ups = up.stack, ups + 1
        except BaseException as exc:
            partial = getattr(exc, "deployment", None)
            if isinstance(partial, Deployment):
                stack = partial.stack  # what a failed up got to, for the clean-up below
            exc.add_note(f"reproduce with GPUCLOUD_PLAN_SEED={SEED}")
            raise
        finally:
            figures.record("transitions tried", tried)
            if stack:
                fast_harness.destroy_stack(stack)
            if key is not None:
                ensure_ssh_key_absent(cloud, key_id=key.id)
        assert ups == VERSIONS + 1 and stack == {}
        assert [i for i in cloud.list_instances() if i.name == versions.box] == []

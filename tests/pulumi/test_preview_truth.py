"""``pulumi preview`` tells the truth: random versions of a program, each previewed and then brought up through the
engine-faithful harness (harness.py), must get the same Diff per resource from both.

Per provider, a seeded run of program versions (an instance with one of two types, tags omitted or given, present
or removed; a volume, attached to the instance by ``box.name`` or not, growing or not, present or removed) ends
with a destroy. For every resource of every version, the preview's planned operation and Diff (kind, the
properties forcing a replace, delete-before-replace) must equal the ``up``'s, and a preview that refuses (a Check
failure or a failed Diff) must be an ``up`` that refuses the same way. ``GPUCLOUD_PLAN_SEED`` picks the seed (else a
random one, printed with any failure).

Where the provider attaches volumes only to instances in some states (DataCrunch: stopped), the instance is also
running or stopped (``power_state``), and ``attach_to`` is given only where a preview can know the instance's
state: when it exists already and this version leaves it as it is (running: preview and up both refuse; stopped:
both attach). An instance created or power-cycled in the same program is what a preview cannot know (the Pulumi
docs page says so). While the volume is attached there, the instance stays stopped: DataCrunch deletes or detaches
an attached volume only from a stopped instance, and a preview makes no Delete call that could say so.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

import gpucloud
from gpucloud import SshKeySpec
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.ensure import ensure_ssh_key, ensure_ssh_key_absent
from gpucloud.providers import implemented, provider_class
from tests import figures

from ..contract.specs import INSTANCE, OTHER_TYPE, VOLUME
from .conftest import Attempt, attached_by_name, attempt, declare
from .harness import Declared, Deployment, DynamicProviderHarness, Planned, Stack

SEED = int(os.environ.get("GPUCLOUD_PLAN_SEED") or random.randrange(2**32))
# Program versions brought up per provider (then the destroy); GPUCLOUD_PLAN_TRANSITIONS multiplies them.
VERSIONS = int(12 * float(os.environ.get("GPUCLOUD_PLAN_TRANSITIONS") or 1))
TAGS: list[dict[str, str] | None] = [None, {}, {"team": "a"}, {"team": "b", "env": "a"}]


class Versions:
    """Random program versions for one provider; the volume only grows (shrinking is refused, and tested elsewhere)."""

    def __init__(self, provider: str, rng: random.Random, keys: list[str]) -> None:
        self.provider, self.rng, self.keys = provider, rng, keys
        self.caps = provider_class(provider).capabilities
        self.size = 10
        self.last_box: dict[str, Any] | None = None
        prefix = f"pv{rng.randrange(10**6)}-{provider[:4]}"
        self.box, self.data = f"{prefix}-box", f"{prefix}-data"

    def next(self, stack: Stack) -> list[Declared]:
        """The next version, given the stack the last one left (what a preview of this one starts from)."""
        rng, program = self.rng, []
        box = self._box(rng, _attached(stack)) if rng.random() < 0.85 else None
        if box is not None:
            program.append(declare("instance", "box", box))
        unchanged_box, self.last_box = box is not None and box == self.last_box, box
        if Capability.VOLUME_CREATE in self.caps and rng.random() < 0.7:
            self.size += rng.choice([0, 0, 10])
            props = {"provider": self.provider, "name": self.data, "size_gb": self.size, **VOLUME[self.provider]}
            if box is not None and self._attach(rng, unchanged_box, _attached(stack)):
                props["attach_to"] = attached_by_name("box")
            program.append(declare("volume", "data", props))
        return program

    def _box(self, rng: random.Random, attached: bool) -> dict[str, Any]:
        last = self.last_box
        reusable = last is not None and (last.get("power_state") == "stopped" or not attached)
        if self.restricted and reusable and rng.random() < 0.5:
            assert last is not None
            return last  # left as it is: its state is one a preview of an attach knows
        box = {"provider": self.provider, "name": self.box, **INSTANCE[self.provider], "ssh_keys": self.keys}
        if rng.random() < 0.35:
            box["instance_type"] = OTHER_TYPE[self.provider]
        tags = rng.choice(TAGS) if Capability.INSTANCE_TAGS in self.caps else None
        if tags is not None:
            box["tags"] = tags
        if self.restricted:  # stopped while the volume hangs on it (see the module docstring)
            box["power_state"] = "stopped" if attached else rng.choice(["running", "stopped"])
        return box

    def _attach(self, rng: random.Random, unchanged_box: bool, attached: bool) -> bool:
        """Whether the volume names the instance this version. Restricted attaching (see the module docstring):
        while attached, always (so the volume is deleted before the instance it hangs on, which stays stopped);
        else only to an instance this version leaves as it is, whose state the preview knows."""
        if not self.restricted:
            return rng.random() < 0.6
        return attached or (unchanged_box and rng.random() < 0.6)

    @property
    def restricted(self) -> bool:
        return provider_class(self.provider).volume_attach_statuses is not None


def _attached(stack: Stack) -> bool:
    """Whether the volume was attached after the last up (its outputs may lag behind an instance deleted since)."""
    data = stack.get("data")
    return data is not None and bool(data.outputs.get("attached_to"))


def _seen(planned: Planned | None) -> tuple[Any, ...] | None:
    """What a preview shows of one resource: the operation and its Diff."""
    if planned is None:
        return None
    diff = planned.diff
    shown = (diff.kind, sorted(diff.replaces), diff.delete_before_replace) if diff is not None else None
    return (planned.operation, shown)


def _compare(preview: Attempt, up: Attempt, version: int) -> int:
    if preview[1] != up[1]:
        figures.record("plan mismatches")
    assert preview[1] == up[1], (
        f"version {version}: the preview refused with {preview[1]!r}, the up with {up[1]!r} (GPUCLOUD_PLAN_SEED={SEED})"
    )
    names = sorted(set(preview[0].planned) | set(up[0].planned))
    for name in names:
        said, did = _seen(preview[0].planned.get(name)), _seen(up[0].planned.get(name))
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
                program = versions.next(stack) if version < VERSIONS else []  # the last one: destroy
                preview = attempt(fast_harness, program, stack, preview=True)
                assert preview[0].stack == stack  # a preview, refused or not, changes nothing
                up = attempt(fast_harness, program, stack, preview=False)
                tried += _compare(preview, up, version)
                stack, ups = up[0].stack, ups + 1
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

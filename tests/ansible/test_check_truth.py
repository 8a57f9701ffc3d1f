"""``ansible-playbook --check --diff`` tells the truth: the front-end itself, not only the core it calls.

Per provider, a few seeded random versions of one playbook (an instance with one of two types, tags omitted,
merged or purged, or stopped; a volume attached to the instance the same play creates, or not; at the end all
absent) are each run with ``--check --diff`` and then for real. Every task's ``changed``, ``action``, ``plan``
and diff ``before`` must be equal, and every value the check-mode diff ``after`` predicts must be what the real
run's ``after`` shows (check mode cannot know ids, addresses or timestamps: those it leaves out). The same
seed variable as the core's property test (``GPUCLOUD_PLAN_SEED``) picks the versions.

Every provider's version ``n`` runs in the same playbook (its tasks registered under the provider's name): the
providers' resources are apart, so one ansible-playbook start-up per step serves all five.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import gpucloud
from gpucloud import SshKeySpec
from gpucloud.capabilities import Capability
from gpucloud.config import env_var
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import PATH_PREFIXES, client_env, client_overrides
from gpucloud.ensure import ensure_instance_absent, ensure_ssh_key, ensure_ssh_key_absent, ensure_volume_absent
from gpucloud.providers import provider_class
from tests import figures

from ..contract.specs import INSTANCE, OTHER_TYPE, VOLUME
from .conftest import Ansible, base_env
from .test_modules import IMPLEMENTED, caps, task

SEED = int(os.environ.get("GPUCLOUD_PLAN_SEED") or random.randrange(2**32))
VERSIONS = 1  # random versions of the playbook per provider, then the one that removes everything
PLACEHOLDER = re.compile(r"\(to be created: ([^)]+)\)")
TAGS: list[dict[str, str] | None] = [None, {}, {"team": "a"}, {"team": "b", "env": "a"}]


@pytest.fixture(scope="module")
def instant() -> Iterator[EmulatorServer]:
    """Lifecycle steps at once and no sshd (nothing logs in): a playbook costs only its round trips."""
    with EmulatorServer(provision_seconds=0.0, rate_limits={}, ssh=False) as server:
        yield server


@pytest.fixture(scope="module")
def instant_ansible(instant: EmulatorServer, ansible_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Ansible:
    env = {**base_env(ansible_home), **client_env(instant.url, instant.settings)}
    env.update({env_var(p, "poll_interval"): "0.01" for p in PATH_PREFIXES})
    return Ansible(env, tmp_path_factory.mktemp("check-truth"))


def _task(owner: str, module: str, role: str, /, **args: Any) -> dict[str, Any]:
    """A task registered as ``<owner>_<role>`` (the provider's name): the providers share the plays."""
    return task(module, f"{owner}_{role}", **args)


def _playbook(
    provider: str, rng: random.Random, names: dict[str, str], keys: list[str], *, fresh: bool
) -> list[dict[str, Any]]:
    """One random version: the instance (present or stopped), then the volume where the provider has volumes.

    Check mode plans every task against the account as it was before the play, so a task whose resource an
    earlier task of the same play changes could legitimately be planned differently; the one such case check
    mode predicts (a target created earlier in the play) is the only one generated: the volume is attached only
    in the first version (``fresh``: the instance does not exist yet), never to an instance that may be replaced.
    """
    base = {"provider": provider, "name": names["box"], "ssh_keys": keys, "wait_timeout": 60}
    made = rng.random() >= 0.25
    if not made:
        # Fails alike in check mode and for real if the instance is missing.
        tasks = [_task(provider, "instance", "box", **base, state="stopped", ignore_errors=True)]
    else:
        props = dict(INSTANCE[provider])
        if rng.random() < 0.35:
            props["instance_type"] = OTHER_TYPE[provider]
        tags = rng.choice(TAGS) if Capability.INSTANCE_TAGS in caps(provider) else None
        if tags is not None:
            props.update(tags=tags, purge_tags=rng.random() < 0.5)
        tasks = [_task(provider, "instance", "box", **base, **props, force_replace=True)]
    if {Capability.VOLUME_CREATE, Capability.VOLUME_ATTACH} <= caps(provider):
        # DataCrunch attaches only to stopped instances: there the volume stays unattached.
        attachable = provider_class(provider).volume_attach_statuses is None
        attach = names["box"] if fresh and made and attachable and rng.random() < 0.6 else ""
        volume = {"provider": provider, "name": names["data"], "size": 10, **VOLUME[provider]}
        tasks.append(_task(provider, "volume", "data", **volume, attach_to=attach))
    return tasks


def _teardown(provider: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """The volume first (it detaches itself), then the instance: deleting the instance first would detach the
    volume under the next task's plan (see :func:`_playbook`)."""
    tasks = [_task(provider, "instance", "box", provider=provider, name=names["box"], state="absent")]
    if Capability.VOLUME_DELETE in caps(provider):
        tasks.insert(0, _task(provider, "volume", "data", provider=provider, name=names["data"], state="absent"))
    return tasks


def _ids(real: dict[str, Any]) -> dict[str, str]:
    """Names of what the real run made, with their ids (check mode names them as to be created)."""
    found = {}
    for result in real.values():
        for shown in (result.get("instance"), result.get("volume")):
            if shown and shown.get("id"):
                found[shown["name"]] = shown["id"]
    return found


def _resolved(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: ids.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_resolved(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _resolved(v, ids) for k, v in value.items()}
    return value


def _told(result: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    if result.get("failed"):
        return {"failed": True}
    keys = ("changed", "action", "plan")
    return {k: _resolved(result.get(k), ids) for k in keys} | {"before": result["diff"]["before"]}


def _compare(check: dict[str, Any], real: dict[str, Any], where: str) -> dict[str, int]:
    """Every task of ``check`` against the real run's; the tasks compared, per provider."""
    ids = _ids(real)
    compared = dict.fromkeys(IMPLEMENTED, 0)
    for name, said in check.items():
        did = real[name]
        told, done = _told(said, ids), _told(did, {})
        if told != done:
            figures.record("plan mismatches")
        assert told == done, f"{where} {name}: --check said {told}\nthe real run did {done}"
        if not did.get("failed"):
            predicted, after = said["diff"]["after"], did["diff"]["after"]
            wrong = {k: (v, after.get(k)) for k, v in predicted.items() if v is not None and after.get(k) != v}
            assert not wrong, f"{where} {name}: --check --diff predicted (predicted, real) {wrong}"
        compared[name.split("_", 1)[0]] += 1
    return compared


class _Provider:
    """One provider's share of the plays: its seeded versions, its names, its key and connection."""

    def __init__(self, provider: str, cloud: gpucloud.Provider, public_key: str) -> None:
        self.provider, self.cloud = provider, cloud
        rng = random.Random(f"{SEED}-{provider}")
        self.names = {
            "box": f"ct{rng.randrange(10**6)}-{provider[:4]}",
            "data": f"ct{rng.randrange(10**6)}-{provider[:4]}-v",
        }
        self.key = None
        keys = [public_key]
        if cloud.supports(Capability.SSH_KEYS):
            self.key = ensure_ssh_key(cloud, SshKeySpec(name=self.names["box"], public_key=public_key)).after
            assert self.key is not None
            keys = [self.key.name]
        self.versions = [_playbook(provider, rng, self.names, keys, fresh=n == 0) for n in range(VERSIONS)]
        self.versions.append(_teardown(provider, self.names))

    def clean_up(self, *, failed: bool) -> None:
        if failed:  # the last version removes everything; after a failure, remove it here
            ensure_instance_absent(self.cloud, name=self.names["box"], wait_timeout=60)
            if self.cloud.supports(Capability.VOLUME_DELETE):
                ensure_volume_absent(self.cloud, name=self.names["data"])
        if self.key is not None:
            ensure_ssh_key_absent(self.cloud, key_id=self.key.id)


def test_check_diff_equals_the_real_run(
    instant: EmulatorServer, instant_ansible: Ansible, keypair: tuple[Path, str]
) -> None:
    """Each version: all providers' tasks with ``--check --diff``, then for real; each task compared."""
    tried = dict.fromkeys(IMPLEMENTED, 0)
    with ExitStack() as stack:
        shares: list[_Provider] = []
        for provider in IMPLEMENTED:
            options = {**client_overrides(instant.url, instant.settings)[provider], "poll_interval": 0.01}
            cloud = stack.enter_context(gpucloud.connect(provider, **options))
            shares.append(_Provider(provider, cloud, keypair[1]))
        done = False
        try:
            for number in range(VERSIONS + 1):
                tasks = [step for share in shares for step in share.versions[number]]
                check = instant_ansible.play(tasks, check=True, diff=True)
                real = instant_ansible.play(tasks, diff=True)
                assert check.rc == 0 and real.rc == 0, check.output + real.output
                where = f"version {number} (GPUCLOUD_PLAN_SEED={SEED})"
                for provider, count in _compare(check.results, real.results, where).items():
                    tried[provider] += count
            done = True
        finally:
            figures.record("transitions tried", sum(tried.values()))
            for share in shares:
                share.clean_up(failed=not done)
        for share in shares:
            assert tried[share.provider] >= VERSIONS + 1, f"{share.provider}: {tried[share.provider]} tasks compared"
            assert share.cloud.find_instance(share.names["box"]) is None, f"{share.provider} kept its instance"

"""``ansible-playbook --check --diff`` tells the truth: the front-end itself, not only the core it calls.

Per provider, a few seeded random versions of one playbook (an instance with one of two types, tags omitted,
merged or purged, or stopped; a volume attached to the instance the same play creates, or not; at the end all
absent) are each run with ``--check --diff`` and then for real. Every task's ``changed``, ``action``, ``plan``
and diff ``before`` must be equal, and every value the check-mode diff ``after`` predicts must be what the real
run's ``after`` shows (check mode cannot know ids, addresses or timestamps: those it leaves out). The same
seed variable as the core's property test (``GPUCLOUD_PLAN_SEED``) picks the versions.
"""

from __future__ import annotations

import os
import random
import re
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
        tasks = [task("instance", "box", **base, state="stopped", ignore_errors=True)]  # fails alike if missing
    else:
        props = dict(INSTANCE[provider])
        if rng.random() < 0.35:
            props["instance_type"] = OTHER_TYPE[provider]
        tags = rng.choice(TAGS) if Capability.INSTANCE_TAGS in caps(provider) else None
        if tags is not None:
            props.update(tags=tags, purge_tags=rng.random() < 0.5)
        tasks = [task("instance", "box", **base, **props, force_replace=True)]
    if {Capability.VOLUME_CREATE, Capability.VOLUME_ATTACH} <= caps(provider):
        # DataCrunch attaches only to stopped instances: there the volume stays unattached.
        attachable = provider_class(provider).volume_attach_statuses is None
        attach = names["box"] if fresh and made and attachable and rng.random() < 0.6 else ""
        volume = {"provider": provider, "name": names["data"], "size": 10, **VOLUME[provider]}
        tasks.append(task("volume", "data", **volume, attach_to=attach))
    return tasks


def _teardown(provider: str, names: dict[str, str]) -> list[dict[str, Any]]:
    """The volume first (it detaches itself), then the instance: deleting the instance first would detach the
    volume under the next task's plan (see :func:`_playbook`)."""
    tasks = [task("instance", "box", provider=provider, name=names["box"], state="absent")]
    if Capability.VOLUME_DELETE in caps(provider):
        tasks.insert(0, task("volume", "data", provider=provider, name=names["data"], state="absent"))
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


def _compare(check: dict[str, Any], real: dict[str, Any], where: str) -> int:
    ids = _ids(real)
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
    return len(check)


@pytest.mark.parametrize("provider", IMPLEMENTED)
def test_check_diff_equals_the_real_run(
    provider: str, instant: EmulatorServer, instant_ansible: Ansible, keypair: tuple[Path, str]
) -> None:
    rng = random.Random(f"{SEED}-{provider}")
    names = {"box": f"ct{rng.randrange(10**6)}-{provider[:4]}", "data": f"ct{rng.randrange(10**6)}-{provider[:4]}-v"}
    options = {**client_overrides(instant.url, instant.settings)[provider], "poll_interval": 0.01}
    with gpucloud.connect(provider, **options) as cloud:
        key = None
        keys = [keypair[1]]
        if cloud.supports(Capability.SSH_KEYS):
            key = ensure_ssh_key(cloud, SshKeySpec(name=names["box"], public_key=keypair[1])).after
            assert key is not None
            keys = [key.name]
        tried, done = 0, False
        try:
            versions = [_playbook(provider, rng, names, keys, fresh=n == 0) for n in range(VERSIONS)]
            versions.append(_teardown(provider, names))
            for number, tasks in enumerate(versions):
                check = instant_ansible.play(tasks, check=True, diff=True)
                real = instant_ansible.play(tasks, diff=True)
                assert check.rc == 0 and real.rc == 0, check.output + real.output
                tried += _compare(check.results, real.results, f"version {number} (GPUCLOUD_PLAN_SEED={SEED})")
            done = True
        finally:
            figures.record("transitions tried", tried)
            if not done:  # the last version removes everything; after a failure, remove it here
                ensure_instance_absent(cloud, name=names["box"], wait_timeout=60)
                if cloud.supports(Capability.VOLUME_DELETE):
                    ensure_volume_absent(cloud, name=names["data"])
            if key is not None:
                ensure_ssh_key_absent(cloud, key_id=key.id)
        assert tried >= VERSIONS + 1
        assert cloud.find_instance(names["box"]) is None

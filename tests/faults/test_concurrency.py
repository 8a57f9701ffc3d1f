"""Two runs creating the same name at once: exactly one resource exists afterwards, and the run that did not
create it reports the existing one (adopted) instead of making a second.

Cloud APIs accept duplicate names, so this rests on gpucloud's per-name lock (:mod:`gpucloud.namelock`).
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import yaml

from gpucloud import SshKeySpec, ensure
from gpucloud.emulator import EmulatorServer
from tests.ansible.conftest import ansible_binary
from tests.ansible.test_modules import task
from tests.contract.specs import INSTANCE

from .conftest import Tally, fconnect
from .test_lost_creates import public_key

Overrides = dict[str, dict[str, Any]]


def _results(path: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(path.read_text()))


def test_two_playbooks_create_one_instance(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, fault_ansible: Any, tmp_path: Path
) -> None:
    provider = "voltagepark"
    args = {"provider": provider, "name": "twin-run", "wait_timeout": 60, **INSTANCE[provider]}
    env = {**fault_ansible.env, "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}
    runs = []
    for n in (1, 2):
        out = tmp_path / f"result{n}.json"
        save = {"ansible.builtin.copy": {"dest": str(out), "content": "{{ made | to_json }}", "mode": "0600"}}
        play = {"name": f"run {n}", "hosts": "localhost", "gather_facts": False}
        play["tasks"] = [task("instance", "made", **args), save]
        book = tmp_path / f"run{n}.yml"
        book.write_text(yaml.safe_dump([play], sort_keys=False))
        runs.append((book, out))
    start = len(fault_emulator.world.requests)
    procs = [
        subprocess.Popen(
            [ansible_binary("ansible-playbook"), str(book), "-i", "localhost,", "-c", "local"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for book, _ in runs
    ]
    outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    creates = [
        r
        for r in fault_emulator.world.requests[start:]
        if r.method == "POST" and r.path.startswith("/virtual-machines")
    ]
    with fconnect(fault_overrides, provider) as cloud:
        named = [i.id for i in cloud.list_instances() if i.name == args["name"]]
        for instance_id in named:
            ensure.ensure_instance_absent(cloud, instance_id=instance_id, wait_timeout=60)
    Tally(operations=2, duplicates=len(named) - 1).publish()
    assert [p.returncode for p in procs] == [0, 0], outputs
    results = [_results(out) for _, out in runs]
    assert sorted(r["changed"] for r in results) == [False, True], "one run created it, the other adopted it"
    assert {r["instance"]["id"] for r in results} == set(named) and len(named) == 1
    assert all(r["instance"]["status"] == "running" for r in results)
    assert len(creates) == 1


def test_parallel_ensures_of_one_name_create_one_key(
    fault_emulator: EmulatorServer, fault_overrides: Overrides
) -> None:
    """Eight callers at once (threads, each its own connection, as separate processes would have)."""
    provider = "datacrunch"
    spec = SshKeySpec(name="twin-key", public_key=public_key("twin"))
    outcomes: list[Any] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        with fconnect(fault_overrides, provider) as cloud:
            barrier.wait()
            outcomes.append(ensure.ensure_ssh_key(cloud, spec))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with fconnect(fault_overrides, provider) as cloud:
        named = [k.id for k in cloud.list_ssh_keys() if k.name == spec.name]
        for key_id in named:
            cloud.delete_ssh_key(key_id)
    Tally(operations=8, duplicates=len(named) - 1).publish()
    assert len(outcomes) == 8 and sum(o.changed for o in outcomes) == 1
    assert {o.after.id for o in outcomes} == set(named) and len(named) == 1

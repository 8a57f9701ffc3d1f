"""Two runs creating the same name at once: exactly one resource exists afterwards, and the run that did not
create it reports the existing one (adopted) instead of making a second.

Cloud APIs accept duplicate names, so this rests on gpucloud's per-name lock (:mod:`gpucloud.namelock`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import gpucloud
from gpucloud import SshKeySpec, ensure, fleet
from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from tests.ansible.conftest import ansible_binary
from tests.ansible.test_modules import task
from tests.conftest import providers_with
from tests.contract.specs import INSTANCE

from .. import figures
from .conftest import Tally, fconnect
from .test_interruption import instance_creates, slow_boot
from .test_lost_creates import public_key

Overrides = dict[str, dict[str, Any]]


def _results(path: Path) -> dict[str, Any]:
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


# --- lock gaps: one API spelled differently, runs in different environments ----------------------------
_RACER = """
import json, os, sys, time
from pathlib import Path
import gpucloud
from gpucloud import InstanceSpec, ensure

go, base_url, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
options = {**json.loads(os.environ["RACER_OPTIONS"]), "base_url": base_url}
with gpucloud.connect("voltagepark", **options) as cloud:
    while not go.exists():  # start the lookups together, so only the lock can keep them apart
        time.sleep(0.002)
    outcome = ensure.ensure_instance(cloud, InstanceSpec(**json.loads(os.environ["RACER_SPEC"])), wait=False)
    out.write_text(json.dumps({"changed": outcome.changed, "id": outcome.after.id}))
"""


def test_one_api_spelled_three_ways_from_three_environments_gets_one_lock(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, tmp_path: Path
) -> None:
    """Trailing slash, scheme and host case, localhost for 127.0.0.1, XDG_RUNTIME_DIR set or not: one lock."""
    provider = "voltagepark"
    spec = {"name": "spelled-thrice", **INSTANCE[provider]}
    port = fault_emulator.url.rsplit(":", 1)[1]
    prefix = fault_emulator.base_url(provider).split(port, 1)[1]
    spellings = [
        (f"http://127.0.0.1:{port}{prefix}", str(tmp_path)),
        (f"HTTP://LOCALHOST:{port}{prefix}/", None),
        (f"http://localhost:{port}{prefix}/", str(tmp_path / "xdg-other")),
    ]
    (tmp_path / "xdg-other").mkdir()
    base = {k: v for k, v in os.environ.items() if k not in ("GPUCLOUD_LOCK_DIR", "XDG_RUNTIME_DIR")}
    base |= {"RACER_OPTIONS": json.dumps(fault_overrides[provider]), "RACER_SPEC": json.dumps(spec)}
    go = tmp_path / "go"
    procs = []
    for n, (url, xdg) in enumerate(spellings):
        env = {**base, **({"XDG_RUNTIME_DIR": xdg} if xdg else {})}
        argv = [sys.executable, "-c", _RACER, str(go), url, str(tmp_path / f"out{n}")]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    fault_emulator.world.set_faults(latency_ms=400)  # every lookup takes long enough to overlap the others
    start = len(fault_emulator.world.requests)
    time.sleep(2.0)  # let the interpreters import and connect; the barrier file releases them together
    go.touch()
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    fault_emulator.world.set_faults(latency_ms=0)
    creates = [r for r in fault_emulator.world.requests[start:] if r.method == "POST" and r.provider == provider]
    with fconnect(fault_overrides, provider) as cloud:
        made = [i.id for i in cloud.list_instances() if i.name == spec["name"]]
        for instance_id in made:
            ensure.ensure_instance_absent(cloud, instance_id=instance_id, wait_timeout=60)
    Tally(operations=len(spellings), duplicates=len(made) - 1).publish()
    figures.record("lock-gap races tried")
    assert [p.returncode for p in procs] == [0] * len(procs), outputs
    results = [_results(tmp_path / f"out{n}") for n in range(len(spellings))]
    assert len(made) == 1 and len(creates) == 1, outputs
    assert sorted(r["changed"] for r in results) == [False, False, True]
    assert {r["id"] for r in results} == set(made)


# --- a run killed right after its create call, then run again ---------------------------------------------
_KILLED_AFTER_CREATE = """
import json, os, sys
import gpucloud
from gpucloud import InstanceSpec, ensure, fleet, transport
from gpucloud.emulator.app import PROVIDERS

provider = sys.argv[1]
spec = next(p for p in PROVIDERS if p.name == provider)
send = transport.Transport.request

def request(self, method, path, *args, **kwargs):
    response = send(self, method, path, *args, **kwargs)
    if spec.is_create_request(method.upper(), "/" + path.lstrip("/")):
        os._exit(137)  # dies like a SIGKILL: no cleanup, no answer to anyone, the lock released by the kernel
    return response

transport.Transport.request = request
with gpucloud.connect(provider, **json.loads(os.environ["KILLED_OPTIONS"])) as cloud:
    wanted = InstanceSpec(**json.loads(os.environ["KILLED_SPEC"]))
    if os.environ.get("KILLED_FLEET"):
        fleet.ensure_fleet(cloud, wanted, count=1, wait_timeout=60)
    else:
        ensure.ensure_instance(cloud, wanted, wait_timeout=60)
sys.exit("the create call returned and the process was not killed")
"""


@pytest.mark.parametrize("provider", providers_with(Capability.INSTANCES))
def test_rerun_after_a_kill_right_after_create_makes_no_duplicate(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, provider: str
) -> None:
    """The first run dies the moment its create call returned; the rerun must find what that call started (an
    instance still booting, or a ComputeStacks order not yet processed) instead of creating another."""
    spec = {"name": f"killed-{provider}", **INSTANCE[provider]}
    env = {**os.environ, "KILLED_OPTIONS": json.dumps(fault_overrides[provider]), "KILLED_SPEC": json.dumps(spec)}
    start = len(fault_emulator.world.requests)
    with slow_boot(fault_emulator, 10.0):  # the rerun comes while the first create is still in flight
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_AFTER_CREATE, provider], env=env, capture_output=True, text=True, timeout=120
        )
        with fconnect(fault_overrides, provider) as cloud:
            try:
                rerun = ensure.ensure_instance(cloud, gpucloud.InstanceSpec(**spec), wait=False, wait_timeout=60)
            finally:
                creates = instance_creates(fault_emulator, provider, start)
                made = [i.id for i in cloud.list_instances() if i.name == spec["name"]]
                for instance_id in made:
                    ensure.ensure_instance_absent(cloud, instance_id=instance_id, wait_timeout=60)
    Tally(operations=2, duplicates=max(len(made) - 1, 0)).publish()
    figures.record("kill-after-create reruns tried")
    assert killed.returncode == 137, killed.stdout + killed.stderr
    assert len(creates) == 1 and made == [rerun.after.id if rerun.after else None]
    assert not rerun.changed


def test_fleet_rerun_after_a_kill_right_after_an_order_makes_no_duplicate(
    fault_emulator: EmulatorServer, fault_overrides: Overrides
) -> None:
    """Fleets create members without a lookup by name: the order a killed run left must be adopted there too."""
    provider = "computestacks"
    spec = {"name": "kfleet-{index}", **INSTANCE[provider]}
    env = {**os.environ, "KILLED_OPTIONS": json.dumps(fault_overrides[provider]), "KILLED_SPEC": json.dumps(spec)}
    start = len(fault_emulator.world.requests)
    with slow_boot(fault_emulator, 10.0):
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_AFTER_CREATE, provider],
            env={**env, "KILLED_FLEET": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        with fconnect(fault_overrides, provider) as cloud:
            try:
                rerun = fleet.ensure_fleet(cloud, gpucloud.InstanceSpec(**spec), count=1, wait=False)
            finally:
                creates = instance_creates(fault_emulator, provider, start)
                made = [i.id for i in cloud.list_instances() if i.name == "kfleet-1"]
                for instance_id in made:
                    ensure.ensure_instance_absent(cloud, instance_id=instance_id, wait_timeout=60)
    Tally(operations=2, duplicates=max(len(made) - 1, 0)).publish()
    figures.record("kill-after-create reruns tried")
    assert killed.returncode == 137, killed.stdout + killed.stderr
    assert len(creates) == 1 and len(made) == 1 and [m.id for m in rerun.instances] == made

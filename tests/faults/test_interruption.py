"""Interruption: the controller killed during create-and-wait, the API going away while we wait.

A killed run must leave nothing the next run cannot find: the next run adopts the machine by name instead of
creating another. A waiter whose API restarts resumes; one whose API stays away fails cleanly, naming the last
state it saw.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

import gpucloud
from gpucloud import InstanceSpec, Status, ensure
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.app import PROVIDERS as SPECS
from gpucloud.emulator.world import RequestRecord
from tests.ansible.conftest import ansible_binary
from tests.ansible.test_modules import task
from tests.contract.specs import INSTANCE
from tests.pulumi.conftest import PROJECT, PROVIDERS, TYPES
from tests.pulumi.harness import DynamicProviderHarness, ProviderFailed

from .conftest import Tally, fconnect

Overrides = dict[str, dict[str, Any]]
DC = "datacrunch"
T = TypeVar("T")
# Creates that are not the instance's own (a key, a startup script, a volume made before it).
_NOT_INSTANCE = ("ssh", "script", "volume", "storage")


@contextmanager
def slow_boot(server: EmulatorServer, seconds: float) -> Iterator[None]:
    """Machines created in the block take ``seconds`` to boot: time for the test to interrupt the wait."""
    before = server.settings.provision_seconds
    server.settings.provision_seconds = seconds
    try:
        yield
    finally:
        server.settings.provision_seconds = before


def wait_for_poll(server: EmulatorServer, start: int, timeout: float = 60) -> str:
    """The id of the first DataCrunch instance polled after ``start``: the create is committed, the wait began."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in server.world.requests[start:]:
            if r.provider == DC and r.method == "GET" and r.path.startswith("/instances/"):
                return r.path.rsplit("/", 1)[-1]
        time.sleep(0.01)
    raise AssertionError("the run never started waiting")


def instance_creates(server: EmulatorServer, provider: str, start: int) -> list[RequestRecord]:
    """The instance create requests (a ComputeStacks order) ``provider`` received after request ``start``."""
    spec = next(p for p in SPECS if p.name == provider)
    return [
        r
        for r in server.world.requests[start:]
        if r.provider == provider
        and spec.is_create_request(r.method, r.path)
        and not any(word in r.path for word in _NOT_INSTANCE)
    ]


def wait_for_instance_create(server: EmulatorServer, provider: str, start: int, timeout: float = 60) -> None:
    """Returns once an instance create after ``start`` was handled: the provider has committed it."""
    deadline = time.monotonic() + timeout
    while not instance_creates(server, provider, start):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {provider} instance create arrived")
        time.sleep(0.01)


def killed_playbook(tasks: list[dict[str, Any]], env: dict[str, str], workdir: Path, until: Callable[[], T]) -> T:
    """Run a real ansible-playbook of ``tasks`` and SIGKILL it (its module processes too) once ``until()``
    returns; returns what ``until()`` returned. The playbook must have died of the signal."""
    book = workdir / "killed.yml"
    play = {"name": "killed", "hosts": "localhost", "gather_facts": False, "tasks": tasks}
    book.write_text(yaml.safe_dump([play], sort_keys=False))
    proc = subprocess.Popen(
        [ansible_binary("ansible-playbook"), str(book), "-i", "localhost,", "-c", "local"],
        env={**env, "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"},
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the module process too
    )
    try:
        seen = until()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    return seen


def interrupted_deploy(
    harness: DynamicProviderHarness, deploy: Callable[[], object], until: Callable[[], T], sig: signal.Signals
) -> tuple[list[BaseException], T]:
    """Run ``deploy`` (an engine operation through ``harness``) and send ``sig`` to the provider process once
    ``until()`` returns: (what the deployment raised, what ``until()`` returned)."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            deploy()
        except BaseException as exc:
            failures.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        seen = until()
        assert harness.process is not None
        harness.process.send_signal(sig)
    finally:
        runner.join(timeout=60)
    return failures, seen


def status_now(server: EmulatorServer, instance_id: str) -> str:
    return next(str(i["status"]) for i in server.world.instances(DC) if i["id"] == instance_id)


def restart_http(server: EmulatorServer, down: float) -> None:
    """Stop the emulator's HTTP server and bring it back on the same port after ``down`` seconds.

    The world (state, lifecycle clock) keeps running, as a provider's backend does while its API restarts.
    """
    assert server._server is not None and server._thread is not None and server._socket is not None
    port = int(server.url.rsplit(":", 1)[1])
    server._server.should_exit = True
    server._thread.join(timeout=10)
    server._socket.close()
    server._server, server._thread, server._socket = None, None, None
    time.sleep(down)
    server.settings.port = port
    try:
        server._serve_in_thread()
    finally:
        server.settings.port = 0


def test_killed_ansible_playbook_is_adopted_by_the_next_run(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, fault_ansible: Any, tmp_path: Path
) -> None:
    args = {"provider": DC, "name": "killed-ansible", "wait_timeout": 60, **INSTANCE[DC]}
    start = len(fault_emulator.world.requests)

    def booting() -> tuple[str, str]:
        instance_id = wait_for_poll(fault_emulator, start)
        return instance_id, status_now(fault_emulator, instance_id)

    with slow_boot(fault_emulator, 3.0):
        instance_id, state_at_kill = killed_playbook(
            [task("instance", "made", **args)], fault_ansible.env, tmp_path, booting
        )
    rerun = fault_ansible.play([task("instance", "made", **args)])
    with fconnect(fault_overrides, DC) as cloud:
        same_name = [i for i in cloud.list_instances() if i.name == args["name"]]
        for inst in same_name:
            ensure.ensure_instance_absent(cloud, instance_id=inst.id, wait_timeout=60)
    Tally(operations=2, faults=1, duplicates=len(same_name) - 1).publish()
    assert state_at_kill != "running", "killed while the machine was still booting"
    assert rerun.rc == 0, rerun.output[-2000:]
    made = rerun["made"]
    assert made["changed"] is False and made["instance"]["id"] == instance_id
    assert made["instance"]["status"] == "running"
    assert [i.id for i in same_name] == [instance_id]


def test_killed_pulumi_provider_is_adopted_by_the_next_up(
    fault_emulator: EmulatorServer, fault_overrides: Overrides, fault_env: dict[str, str], pulumi_project: Path
) -> None:
    props = {"provider": DC, "name": "killed-pulumi", "wait_timeout": 60, **INSTANCE[DC]}
    start = len(fault_emulator.world.requests)
    with slow_boot(fault_emulator, 3.0), DynamicProviderHarness(pulumi_project, project=PROJECT, env=fault_env) as h:

        def booting() -> tuple[str, str]:
            instance_id = wait_for_poll(fault_emulator, start)
            return instance_id, status_now(fault_emulator, instance_id)

        failures, (instance_id, state_at_kill) = interrupted_deploy(
            h,
            lambda: h.up(props["name"], PROVIDERS["instance"], props, TYPES["instance"]),
            booting,
            signal.SIGTERM,  # the engine is interrupted and takes its plugins down
        )
    # The engine never recorded the resource: the next `pulumi up` creates it again from nothing.
    with DynamicProviderHarness(pulumi_project, project=PROJECT, env=fault_env) as h:
        again = h.up(props["name"], PROVIDERS["instance"], props, TYPES["instance"]).state
        with fconnect(fault_overrides, DC) as cloud:
            same_name = [i.id for i in cloud.list_instances() if i.name == props["name"]]
        h.destroy(again)
    Tally(operations=2, faults=1, duplicates=len(same_name) - 1).publish()
    assert len(failures) == 1 and isinstance(failures[0], ProviderFailed), failures
    assert state_at_kill != "running"
    assert again.id == instance_id and same_name == [instance_id]
    assert again.outputs["status"] == "running"


def test_waiter_resumes_after_the_api_restarts(fault_emulator: EmulatorServer, fault_overrides: Overrides) -> None:
    outcome: list[Any] = []
    start = len(fault_emulator.world.requests)
    with fconnect(fault_overrides, DC) as cloud, slow_boot(fault_emulator, 2.0):
        spec = InstanceSpec(name="restart-resume", **INSTANCE[DC])
        runner = threading.Thread(target=lambda: outcome.append(ensure.ensure_instance(cloud, spec, wait_timeout=60)))
        runner.start()
        instance_id = wait_for_poll(fault_emulator, start)
        restart_http(fault_emulator, down=1.5)
        runner.join(timeout=90)
        named = [i.id for i in cloud.list_instances() if i.name == spec.name]
        ensure.ensure_instance_absent(cloud, instance_id=instance_id, wait_timeout=60)
    Tally(operations=1, faults=1, duplicates=len(named) - 1).publish()
    assert outcome and outcome[0].after.status is Status.RUNNING and outcome[0].after.id == instance_id
    assert named == [instance_id]


def test_waiter_fails_cleanly_with_the_last_state_when_the_api_stays_away(
    fault_emulator: EmulatorServer, fault_overrides: Overrides
) -> None:
    failures: list[BaseException] = []
    start = len(fault_emulator.world.requests)
    with fconnect(fault_overrides, DC) as cloud, slow_boot(fault_emulator, 30.0):
        spec = InstanceSpec(name="restart-timeout", **INSTANCE[DC])

        def run() -> None:
            try:
                ensure.ensure_instance(cloud, spec, wait_timeout=3)
            except BaseException as exc:
                failures.append(exc)

        runner = threading.Thread(target=run)
        runner.start()
        instance_id = wait_for_poll(fault_emulator, start)
        restart_http(fault_emulator, down=5.0)  # longer than the whole wait_timeout
        runner.join(timeout=60)
    with fconnect(fault_overrides, DC) as cloud:
        named = [i.id for i in cloud.list_instances() if i.name == spec.name]
        ensure.ensure_instance_absent(cloud, instance_id=instance_id, wait_timeout=60)
    Tally(operations=1, faults=1, duplicates=len(named) - 1).publish()
    assert len(failures) == 1 and isinstance(failures[0], gpucloud.Timeout), failures
    error = failures[0]
    assert error.last_status is not None and error.last_status.startswith("pending"), error
    assert "last known state: pending" in str(error) and "ConnectError" in str(error)
    assert named == [instance_id], "the machine is still there for the next run to adopt"

"""No secret escapes through the front-ends, even at full verbosity, with debug logging and failing requests.

Everything produced is scanned for every secret in play (the emulator's credentials, every token it issued,
wrong credentials tried, root passwords given and returned, the test key pair's private key):

- Ansible: ``-vvvv`` stdout/stderr, the Ansible log file, every registered result (a provider-returned root
  password is masked in ``instance_secrets`` without ``no_log`` on the task, and kept only in the 0600
  ``secrets_file`` the task names);
- the gpucloud DEBUG log of every module and provider process (a ``sitecustomize`` turns DEBUG logging on);
  not ``ANSIBLE_DEBUG``: Ansible documents that its developer debug output shows module arguments despite
  ``no_log`` (tried: it prints every credential option), so it is not for use with real credentials;
- Pulumi: every state field outside a secret envelope, the pickled dynamic provider, the provider's stderr and
  the error details of failed operations.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from gpucloud.emulator import EmulatorServer
from tests.ansible.test_modules import task
from tests.contract.specs import INSTANCE
from tests.pulumi.conftest import PROJECT, PROVIDERS, TYPES
from tests.pulumi.harness import (
    DynamicProviderHarness,
    ProviderFailed,
    ResourceState,
    Secret,
    decode_provider,
)

from .conftest import Tally, emulator_secrets, env_without, fconnect, leaks_in, private_key_lines

Overrides = dict[str, dict[str, Any]]
SITECUSTOMIZE = """\
import logging, os
_path = os.environ.get("GPUCLOUD_TEST_DEBUG_LOG")
if _path:
    logging.basicConfig(level=logging.DEBUG, filename=_path, format="%(process)d %(name)s %(levelname)s %(message)s")
"""
WRONG_TOKEN = "wrong-token-for-the-leak-scan-1c9e"
WRONG_SECRET = "wrong-secret-for-the-leak-scan-7f2a"
ROOT_PASSWORD = "Root-password-for-the-leak-scan-42"


def debug_env(base: dict[str, str], directory: Path) -> tuple[dict[str, str], Path]:
    site = directory / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = directory / "gpucloud-debug.log"
    env = {**base, "PYTHONPATH": str(site), "GPUCLOUD_TEST_DEBUG_LOG": str(log)}
    return env, log


def outside_envelopes(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, text) of every string leaf that is not inside a Secret (Pulumi) envelope."""
    if isinstance(value, Secret):
        return []
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in outside_envelopes(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in outside_envelopes(v, f"{path}[{i}]")]
    return [(path, str(value))] if value is not None else []


def test_ansible_at_full_verbosity_leaks_nothing(
    fault_emulator: EmulatorServer,
    fault_overrides: Overrides,
    fault_ansible: Any,
    keypair: tuple[Path, str],
    tmp_path: Path,
) -> None:
    private, public = keypair
    world = fault_emulator.world
    env, debug_log = debug_env(fault_ansible.env, tmp_path)
    ansible_log = tmp_path / "ansible.log"
    env.update(ANSIBLE_LOG_PATH=str(ansible_log), ANSIBLE_VERBOSITY="4")
    # Credentials as module options (no_log), not only from the environment.
    env = env_without(env, "_CLIENT_SECRET", "_TOKEN")
    creds = {
        "datacrunch": {"client_secret": fault_overrides["datacrunch"]["client_secret"]},
        "voltagepark": {"api_token": fault_overrides["voltagepark"]["token"]},
        "dcdncloud": {"api_token": fault_overrides["dcdncloud"]["token"]},
    }
    vp = {"provider": "voltagepark", **creds["voltagepark"], **INSTANCE["voltagepark"], "wait_timeout": 60}
    dcdn = {"provider": "dcdncloud", **creds["dcdncloud"], **INSTANCE["dcdncloud"], "wait_timeout": 60}
    control = f"{fault_emulator.url}/_emulator/faults"
    uri = {"url": control, "method": "POST", "body_format": "json", "headers": fault_emulator.control_headers}
    secrets_file = tmp_path / "secrets" / "root.json"
    secrets_file.parent.mkdir()
    # No no_log: a secret a provider returns once is masked by the module itself and kept in the 0600 file.
    root_task = task("instance", "dcdn", name="leak-dcdn", secrets_file=str(secrets_file), **dcdn)
    tasks = [
        task("ssh_key", "key", provider="datacrunch", name="leak-key", public_key=public, **creds["datacrunch"]),
        task("instance", "vp", name="leak-vp", password=ROOT_PASSWORD, **vp),
        root_task,
        task("instance_info", "wrong_token", ignore_errors=True, provider="voltagepark", api_token=WRONG_TOKEN),
        task("ssh_key_info", "wrong_secret", ignore_errors=True, provider="datacrunch", client_secret=WRONG_SECRET),
        # A private key pasted where the public key belongs: refused, and never echoed.
        task(
            "ssh_key",
            "pasted_private",
            ignore_errors=True,
            provider="datacrunch",
            name="leak-private",
            public_key=private.read_text(),
            **creds["datacrunch"],
        ),
        {"name": "fail everything", "ansible.builtin.uri": {**uri, "body": {"error_rate": 1.0}}},
        task(
            "instance_info",
            "failing",
            ignore_errors=True,
            provider="voltagepark",
            max_retries=1,
            **creds["voltagepark"],
        ),
        {"name": "stop failing", "ansible.builtin.uri": {**uri, "body": {"error_rate": 0.0}}},
        task("instance", "vp_gone", name="leak-vp", state="absent", **vp),
        task("instance", "dcdn_gone", name="leak-dcdn", state="absent", **dcdn),
        task("ssh_key", "key_gone", provider="datacrunch", name="leak-key", state="absent", **creds["datacrunch"]),
    ]
    fault_ansible.env = env
    play = fault_ansible.play(tasks)
    kept = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    returned = kept.get("leak-dcdn", {}).get("root_password")
    secrets = [*emulator_secrets(fault_emulator), WRONG_TOKEN, WRONG_SECRET, ROOT_PASSWORD, *private_key_lines(private)]
    if returned:
        secrets.append(returned)
    scanned = {
        "ansible output": play.output,
        "ansible log": ansible_log.read_text() if ansible_log.exists() else "",
        "registered results": repr(play.results),
        "gpucloud debug log": debug_log.read_text() if debug_log.exists() else "",
    }
    leaks = {where: leaks_in(text, secrets) for where, text in scanned.items()}
    count = sum(len(found) for found in leaks.values())
    Tally(operations=len(tasks) - 2, faults=3, leaks=count).publish()
    assert play.rc == 0, play.output[-3000:]
    assert returned, "dcdncloud returned a root password once, kept in secrets_file"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert play["dcdn"]["instance_secrets"] == {"root_password": "********"}
    assert play["dcdn"]["secrets_file"] == str(secrets_file)
    assert play["wrong_token"]["failed"] and play["wrong_secret"]["failed"] and play["failing"]["failed"]
    assert play["pasted_private"]["failed"] and "private key" in play["pasted_private"]["msg"]
    assert "gpucloud.transport" in scanned["gpucloud debug log"], "debug logging really was on in the modules"
    assert "<127.0.0.1> EXEC" in play.output or "ESTABLISH LOCAL CONNECTION" in play.output, "-vvvv was on"
    assert count == 0, leaks
    assert world is fault_emulator.world


def test_pulumi_state_pickle_and_logs_hold_no_secret(
    fault_emulator: EmulatorServer,
    fault_overrides: Overrides,
    fault_env: dict[str, str],
    keypair: tuple[Path, str],
    pulumi_project: Path,
    tmp_path: Path,
) -> None:
    private, public = keypair
    world = fault_emulator.world
    env, debug_log = debug_env(env_without(fault_env, "_CLIENT_SECRET", "_TOKEN"), tmp_path)
    # Credentials only as secret stack config (`pulumi config set --secret gpucloud:...`).
    config = {
        "gpucloud:datacrunch_client_secret": Secret(fault_overrides["datacrunch"]["client_secret"]),
        "gpucloud:voltagepark_token": Secret(fault_overrides["voltagepark"]["token"]),
        "gpucloud:dcdncloud_token": Secret(fault_overrides["dcdncloud"]["token"]),
    }
    states: list[ResourceState] = []
    failures: list[ProviderFailed] = []
    h = DynamicProviderHarness(pulumi_project, project=PROJECT, env=env, config=config).start()
    try:
        resources = [
            ("ssh_key", {"provider": "datacrunch", "name": "leak-pk", "public_key": public}),
            (
                "instance",
                {
                    "provider": "voltagepark",
                    "name": "leak-pvp",
                    "password": Secret(ROOT_PASSWORD),
                    "wait_timeout": 60,
                    **INSTANCE["voltagepark"],
                },
            ),
            ("instance", {"provider": "dcdncloud", "name": "leak-pdcdn", "wait_timeout": 60, **INSTANCE["dcdncloud"]}),
        ]
        for kind, props in resources:
            states.append(h.up(str(props["name"]), PROVIDERS[kind], props, TYPES[kind]).state)
        refreshed = [h.refresh(state) for state in states]
        world.set_faults(error_rate=1.0)
        try:
            h.up(
                "leak-fail",
                PROVIDERS["instance"],
                {"provider": "datacrunch", "name": "leak-fail", **INSTANCE["datacrunch"]},
                TYPES["instance"],
            )
        except ProviderFailed as exc:
            failures.append(exc)
        finally:
            world.set_faults(error_rate=0.0)
        # The SDK configures a provider once per process: a wrong token takes a provider process of its own.
        wrong = {**config, "gpucloud:voltagepark_token": Secret(WRONG_TOKEN)}
        with DynamicProviderHarness(pulumi_project, project=PROJECT, env=env, config=wrong) as other:
            try:
                other.refresh(states[1])
            except ProviderFailed as exc:
                failures.append(exc)
            assert other.process is not None and other.process.stderr is not None
            other.process.terminate()
            other_stderr = other.process.stderr.read().decode(errors="replace")
        for state in reversed(states):
            h.destroy(state)
    finally:
        assert h.process is not None and h.process.stderr is not None
        h.process.terminate()
        provider_stderr = h.process.stderr.read().decode(errors="replace")
        h.stop()
    root_password = states[2].outputs.get("root_password")
    secrets = [*emulator_secrets(fault_emulator), WRONG_TOKEN, ROOT_PASSWORD, *private_key_lines(private)]
    assert isinstance(root_password, Secret) and root_password.value, "dcdncloud's root password, as a secret"
    secrets.append(root_password.value)
    state_leaves = [
        leaf
        for state in [*states, *(r for r in refreshed if r is not None)]
        for part in (state.inputs, state.outputs)
        for leaf in outside_envelopes({k: v for k, v in part.items() if k != "__provider"})
    ]
    pickles = [decode_provider(state.inputs["__provider"]) for state in states]
    leaks = {
        "state fields": [f"{path}" for path, text in state_leaves if any(s and s in text for s in secrets)],
        "pickled provider": [s[:4] for p in pickles for s in secrets if s and s.encode() in p],
        "provider stderr": leaks_in(provider_stderr + other_stderr, secrets),
        "debug log": leaks_in(debug_log.read_text() if debug_log.exists() else "", secrets),
        "error details": [line for f in failures for line in leaks_in(f.details, secrets)],
    }
    count = sum(len(found) for found in leaks.values())
    Tally(operations=len(resources) * 3 + 2, faults=2, leaks=count).publish()
    assert len(failures) == 2, failures
    assert "AuthError" in failures[1].details or "401" in failures[1].details
    assert "gpucloud.transport" in (debug_log.read_text() if debug_log.exists() else ""), "debug logging was on"
    assert all(b"pulumi_gpucloud" in p for p in pickles)
    assert count == 0, leaks
    with fconnect(fault_overrides, "voltagepark") as cloud:
        assert cloud.find_instance("leak-pvp") is None

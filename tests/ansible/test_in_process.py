"""gpucloud modules run in the controller's worker (plugins/plugin_utils/in_process.py) when the module process
would be this very Python on this machine, and as a module process otherwise: real ansible-playbook runs.

Which path a task took is read from Ansible's own ``-vvv`` output: a module process is always started from an
``AnsiballZ_<module>.py`` file Ansible logs as it writes and runs it, so a play whose output never names one
started no module process; the action also logs the path it chose, with the reason when it is the module
process. The results of one scenario must be the same on every path.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Ansible, PlayResult

PROVIDER = "cloudnexus"  # a static API token: passed as a module argument below, so its masking is tested
IN_PROCESS = "running in the controller's worker"
VERBOSE = {"ANSIBLE_VERBOSITY": "3"}


def wrapper_python(directory: Path) -> str:
    """An interpreter that is not this Python's path (a script that execs it): Ansible must use a module process."""
    script = directory / "python-wrapper"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


# Path name -> (environment of ansible-playbook, keywords added to every gpucloud task, why it is a module process).
def paths(workdir: Path) -> dict[str, tuple[dict[str, str], dict[str, Any], str | None]]:
    return {
        "in_process": ({}, {}, None),
        "opt_out_env": ({"GPUCLOUD_ANSIBLE_IN_PROCESS": "false"}, {}, "GPUCLOUD_ANSIBLE_IN_PROCESS is false"),
        "opt_out_var": ({}, {"vars": {"gpucloud_in_process": False}}, "gpucloud_in_process is false"),
        "other_interpreter": (
            {},
            {"vars": {"ansible_python_interpreter": wrapper_python(workdir)}},
            "the interpreter is not the controller's Python",
        ),
        "become": ({}, {"become": True, "become_method": "su"}, "become is set"),
    }


def gpucloud_task(module: str, register: str, extra: dict[str, Any], **args: Any) -> dict[str, Any]:
    return {"name": f"{module} {register}", f"gpucloud.cloud.{module}": args, "register": register, **extra}


def scenario(name: str, public: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Check-mode create with diff, create, no-op, a token as a module argument, a failure, delete."""
    key = {"provider": PROVIDER, "name": name, "public_key": public}
    return [
        {**gpucloud_task("ssh_key", "check", extra, **key), "check_mode": True, "diff": True},
        {**gpucloud_task("ssh_key", "create", extra, **key), "diff": True},
        gpucloud_task("ssh_key", "again", extra, **key),
        gpucloud_task("ssh_key_info", "masked", extra, provider=PROVIDER, name=name, api_token=TOKEN_FROM_ENV),
        {**gpucloud_task("ssh_key", "bad", extra, **{**key, "public_key": "not a key"}), "ignore_errors": True},
        gpucloud_task("ssh_key", "gone", extra, provider=PROVIDER, name=name, state="absent"),
    ]


# The token as a module argument, templated from the environment: the playbook text (which Ansible quotes around
# an error) does not hold it, so it may appear nowhere in the output.
TOKEN_FROM_ENV = "{{ lookup('env', 'GPUCLOUD_CLOUDNEXUS_TOKEN') }}"
REGISTERED = ("check", "create", "again", "masked", "bad", "gone")


def normalised(result: PlayResult, name: str) -> dict[str, Any]:
    """The registered results with what differs by design between two runs (name, id) replaced."""
    key_id = result["create"]["ssh_key"]["id"]
    text = json.dumps({r: result[r] for r in REGISTERED}, sort_keys=True)
    return json.loads(text.replace(key_id, "<id>").replace(name, "<name>"))


def run_scenario(ansible: Ansible, path: str, public: str, token: str) -> tuple[PlayResult, dict[str, Any]]:
    env, extra, _ = paths(ansible.workdir)[path]
    name = f"ans-inproc-{path.replace('_', '-')}"
    result = ansible.play(scenario(name, public, extra), extra_env={**VERBOSE, **env})
    assert result.rc == 0, result.output
    return result, normalised(result, name)


def assert_in_process(result: PlayResult, tasks: int) -> None:
    assert result.output.count(IN_PROCESS) == tasks, result.output
    assert "AnsiballZ_" not in result.output, "a module process was started"


def assert_module_process(result: PlayResult, why: str) -> None:
    assert IN_PROCESS not in result.output
    assert f"module process ({why})" in result.output, result.output
    assert "AnsiballZ_ssh_key.py" in result.output and "AnsiballZ_ssh_key_info.py" in result.output


@pytest.fixture
def token(emulator_env: dict[str, str]) -> str:
    return emulator_env["GPUCLOUD_CLOUDNEXUS_TOKEN"]


def test_in_process_results(ansible: Ansible, keypair: tuple[Path, str], token: str) -> None:
    """The default path on localhost: no module process, and the results a module process gives."""
    result, got = run_scenario(ansible, "in_process", keypair[1], token)
    assert_in_process(result, len(REGISTERED))
    check, create, again = got["check"], got["create"], got["again"]
    assert check["changed"] and check["action"] == "create" and check["diff"]["before"] == {}
    assert check["ssh_key"]["id"] is None  # check mode created nothing
    assert create["changed"] and create["diff"]["after"]["id"] == "<id>" and create["ssh_key"]["name"] == "<name>"
    assert not again["changed"] and again["action"] == "none" and "diff" not in again
    assert got["masked"]["ssh_keys"][0]["id"] == "<id>"
    bad = got["bad"]
    assert bad["failed"] and bad["option"] == "public_key" and bad["msg"].startswith("public_key: ")
    assert got["gone"]["changed"] and got["gone"]["action"] == "delete"
    # no_log: the token given as api_token is masked in the invocation Ansible shows, and appears nowhere.
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in result.output
    assert token not in result.output and token not in json.dumps(result.results)


@pytest.mark.parametrize("path", ["opt_out_env", "opt_out_var", "other_interpreter", "become"])
def test_module_process_gives_the_same_results(
    ansible: Ansible, keypair: tuple[Path, str], token: str, path: str
) -> None:
    """Opted out, another interpreter or become: a module process as before, with the in-process results."""
    _, expected = run_scenario(ansible, "in_process", keypair[1], token)
    result, got = run_scenario(ansible, path, keypair[1], token)
    assert_module_process(result, paths(ansible.workdir)[path][2] or "")
    assert token not in result.output
    assert got == expected


def test_task_environment_reaches_the_module(ansible: Ansible, token: str) -> None:
    """Credentials in a task's ``environment:`` are the module's, for that task only; ansible-playbook's own
    environment is left as it was (the preload sets PYDANTIC_DISABLE_PLUGINS only while it imports)."""
    # Tests that import module_utils in the pytest process set the variable there (as a module process does):
    # ansible-playbook starts without it, so the last task sees only what ansible-playbook itself set.
    ansible = Ansible({k: v for k, v in ansible.env.items() if k != "PYDANTIC_DISABLE_PLUGINS"}, ansible.workdir)
    info = {"gpucloud.cloud.ssh_key_info": {"provider": PROVIDER}}
    tasks = [
        {"name": "with env", **info, "environment": {"GPUCLOUD_CLOUDNEXUS_TOKEN": token}, "register": "with_env"},
        {"name": "without", **info, "register": "without", "ignore_errors": True},
        {
            "name": "parent env",
            "ansible.builtin.debug": {"msg": "{{ lookup('env', 'PYDANTIC_DISABLE_PLUGINS') }}"},
            "register": "parent_env",
        },
    ]
    result = ansible.play(tasks, extra_env={**VERBOSE, "GPUCLOUD_CLOUDNEXUS_TOKEN": "not-the-token"})
    assert_in_process(result, 2)
    assert result["with_env"]["failed"] is False and isinstance(result["with_env"]["ssh_keys"], list)
    without = result["without"]
    assert without["failed"] and without["error_class"] == "AuthError", without
    assert result["parent_env"]["msg"] == ""


def test_loop_items_run_one_after_another_in_one_worker(ansible: Ansible, keypair: tuple[Path, str]) -> None:
    """Loop items run in the same worker, each with its own arguments and its own result. ComputeStacks never
    returns key material, so other text under an existing name is unchanged with a warning naming the key.
    (Ansible merges the items' warnings into the task's, dropping repeats, so whether one item's warnings leak
    into the next is checked in the collection's unit tests.)"""
    other_path = ansible.workdir / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_path)], check=True)
    other = Path(f"{other_path}.pub").read_text().strip()
    first_name, second_name = "ans-inproc-loop-a", "ans-inproc-loop-b"
    items = [[first_name, keypair[1]], [first_name, other], [second_name, keypair[1]]]
    key = {"provider": "computestacks", "name": "{{ item[0] }}"}
    tasks = [
        {
            "name": "keys",
            "gpucloud.cloud.ssh_key": {**key, "public_key": "{{ item[1] }}"},
            "loop": items,
            "register": "keys",
        },
        {
            "name": "gone",
            "gpucloud.cloud.ssh_key": {**key, "state": "absent"},
            "loop": [[first_name], [second_name]],
            "register": "gone",
        },
    ]
    result = ansible.play(tasks, extra_env=VERBOSE)
    assert result.rc == 0, result.output
    assert_in_process(result, 5)
    created, unchanged, second = result["keys"]["results"]
    assert [r["ssh_key"]["name"] for r in (created, unchanged, second)] == [first_name, first_name, second_name]
    assert created["changed"] and not unchanged["changed"] and second["changed"]
    assert created["ssh_key"]["id"] == unchanged["ssh_key"]["id"] != second["ssh_key"]["id"]
    warnings = result["keys"]["warnings"]
    assert len(warnings) == 1 and "never returns a key's text" in warnings[0] and first_name in warnings[0]
    assert all(r["changed"] for r in result["gone"]["results"])


def test_the_free_strategy_runs_modules_in_process_too(ansible: Ansible) -> None:
    """The free strategy takes the in-process path too (it loads action classes before forking, as linear does)."""
    tasks = [{"name": "info", "gpucloud.cloud.ssh_key_info": {"provider": PROVIDER}, "register": "info"}]
    result = ansible.play(tasks, extra_env={**VERBOSE, "ANSIBLE_STRATEGY": "free"})
    assert result.rc == 0, result.output
    assert_in_process(result, 1)
    assert isinstance(result["info"]["ssh_keys"], list)


def test_module_defaults_of_the_action_group_apply(ansible: Ansible) -> None:
    """``group/gpucloud.cloud.all`` defaults reach the module through its action plugin (provider is required)."""
    defaults = {"group/gpucloud.cloud.all": {"provider": PROVIDER}}
    info = {"name": "info", "gpucloud.cloud.ssh_key_info": {}, "module_defaults": defaults, "register": "info"}
    result = ansible.play([info], extra_env=VERBOSE)
    assert result.rc == 0, result.output
    assert_in_process(result, 1)
    assert result["info"]["failed"] is False and isinstance(result["info"]["ssh_keys"], list)

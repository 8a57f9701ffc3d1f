from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

from ansible.module_utils import _internal
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpucloud.cloud.plugins.plugin_utils.in_process import ModuleRun, opted_out, same_python


def echo_module():
    """A module that warns when its name says so and returns what it saw (its name, an env var, its token)."""

    def main():
        module = AnsibleModule(argument_spec=dict(name=dict(type="str"), token=dict(type="str", no_log=True)))
        if module.params["name"] == "warns":
            module.warn("this item warns")
        module.exit_json(
            name=module.params["name"], env=os.environ.get("GPUCLOUD_UNIT_ENV"), token=module.params["token"]
        )

    return SimpleNamespace(main=main)


def run(module, environment=None, **args):
    outcome = ModuleRun(module, args, environment or {}).execute()
    return outcome["rc"], json.loads(outcome["stdout"])


def test_each_run_reports_only_its_own_warnings():
    # Loop items run one after the other in the same worker: the second must not carry the first's warning.
    module = echo_module()
    rc, first = run(module, name="warns")
    assert rc == 0 and first["name"] == "warns" and len(first["warnings"]) == 1
    rc, second = run(module, name="quiet")
    assert rc == 0 and second["name"] == "quiet" and not second.get("warnings")


def test_the_task_environment_applies_during_the_run_only():
    assert "GPUCLOUD_UNIT_ENV" not in os.environ
    before = dict(os.environ)
    rc, result = run(echo_module(), {"GPUCLOUD_UNIT_ENV": "from-the-task"}, name="x")
    assert rc == 0 and result["env"] == "from-the-task"
    assert dict(os.environ) == before  # PYDANTIC_DISABLE_PLUGINS too: the module's default, not left behind


def test_no_log_values_are_masked_and_controller_state_restored():
    controller = _internal.is_controller
    rc, result = run(echo_module(), name="x", token="s3cret-unit-token")
    assert rc == 0 and result["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert _internal.is_controller == controller


def test_an_unhandled_exception_is_a_failed_result_as_in_a_module_process():
    def main():
        raise ValueError("boom from the module")

    rc, result = run(SimpleNamespace(main=main), name="x")
    assert rc == 1 and result["failed"] is True and "boom from the module" in json.dumps(result)


def test_a_module_that_does_not_exit_is_an_error():
    rc, result = run(SimpleNamespace(main=lambda: None), name="x")
    assert rc == 1 and result["failed"] is True and "did not handle its own exit" in json.dumps(result)


def test_same_python_means_the_same_path_not_only_the_same_binary(tmp_path):
    assert same_python(sys.executable)
    assert not same_python("python3")  # looked up on the target's PATH: not decided here
    assert not same_python(None)
    # A link to this interpreter from another directory starts the same binary but, for a virtualenv, without
    # its packages (the venv is found next to the path that was run).
    link = tmp_path / "python"
    link.symlink_to(sys.executable)
    assert not same_python(str(link))
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    assert not same_python(str(wrapper))


def test_opt_out_words():
    assert all(opted_out(word) for word in ("false", "False", "no", "0", "off", " false "))
    assert not any(opted_out(word) for word in ("true", "yes", "", "1", True))
    assert opted_out(False)

"""Connection options with bad values fail naming the option the user typed, before any request.

Run in-process through a module's ``main()`` (as the fuzz suite does); the API URL points at a port nothing
listens on, so a request, had one been sent, would show as a connection error instead of these messages.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

from tests import figures

MODULE = "ansible_collections.gpucloud.cloud.plugins.modules.instance_info"
BASE = {"provider": "voltagepark", "api_url": "http://127.0.0.1:9/v1", "api_token": "t" * 12}


def run(args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    module = importlib.import_module(MODULE)
    capsys.readouterr()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GPUCLOUD_")}
    with mock.patch.dict(os.environ, clean, clear=True), patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("request_timeout", 0),
        ("max_retries", -1),
        ("ssh_port", 70000),
        ("api_url", "ftp://api.example.com/v1"),
        ("api_url", "api.example.com"),
        ("api_url", "https://api.example.com:99999/v1"),
        ("api_url", "http://api.example.com/v1"),  # plain http to a remote host: refused, credentials stay home
    ],
)
def test_bad_connection_options_name_the_option(option: str, value: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = run({**BASE, option: value}, capsys)
    figures.record("bad inputs tried")
    figures.record("bad inputs that reached the API", int("Connect" in result.get("msg", "")))
    assert result.get("failed") is True, result
    assert result["option"] == option, result
    assert result["error_class"] == "ValidationError", result
    assert option in result["msg"], result
    assert "Traceback" not in result["msg"] and "InvalidURL" not in result["msg"], result

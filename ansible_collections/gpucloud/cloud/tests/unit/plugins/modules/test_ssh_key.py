from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpucloud.cloud.plugins.modules import ssh_key


def run(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit):
        ssh_key.main()
    return json.loads(capsys.readouterr().out)


def test_malformed_public_key_fails_naming_the_option(capsys):
    result = run(capsys, {"provider": "datacrunch", "name": "laptop-key", "public_key": "ssh-rsa not-base64!"})
    assert result["failed"] is True
    assert result["msg"].startswith("public_key:")


def test_present_needs_a_public_key(capsys):
    result = run(capsys, {"provider": "datacrunch", "name": "laptop-key"})
    assert result["failed"] is True and "public_key" in result["msg"]


def test_unknown_provider_is_refused_by_the_argument_spec(capsys):
    result = run(capsys, {"provider": "nocloud", "name": "laptop-key", "public_key": "x"})
    assert result["failed"] is True and "provider" in result["msg"]

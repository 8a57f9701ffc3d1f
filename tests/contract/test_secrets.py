"""Credentials never reach logs, reprs or errors, even with every logger at DEBUG."""

import logging

import pytest

import gpucloud
from gpucloud import SshKeySpec
from gpucloud.emulator import EMULATOR_CREDENTIALS

from ..conftest import connect

SECRETS = [
    EMULATOR_CREDENTIALS["datacrunch"]["client_secret"],
    EMULATOR_CREDENTIALS["voltagepark"]["token"],
]


def test_debug_logs_hold_no_credentials_or_tokens(
    overrides: dict, emulator: object, keypair: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued: list[str] = []
    for provider in ("datacrunch", "voltagepark"):
        with connect(overrides, provider) as cloud:
            key = cloud.create_ssh_key(SshKeySpec(name=f"log check {provider}", public_key=keypair[1]))
            cloud.delete_ssh_key(key.id)
            with pytest.raises(gpucloud.NotFound):
                cloud.get_instance("00000000-0000-4000-8000-000000000000")
            if provider == "datacrunch":
                issued.append(cloud.auth._access_token or "")  # type: ignore[attr-defined]
            assert not any(secret in repr(cloud.config) for secret in SECRETS)
    text = caplog.text
    assert "gpucloud.transport" in {r.name for r in caplog.records}, "the transport logs each request at DEBUG"
    for secret in [*SECRETS, *issued]:
        assert secret and secret not in text

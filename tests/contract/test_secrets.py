"""Credentials never reach logs, reprs or errors, even with every logger at DEBUG and requests failing."""

import logging
import traceback

import pytest

import gpucloud
from gpucloud import SshKeySpec
from gpucloud.capabilities import Capability
from tests import figures

from ..conftest import IMPLEMENTED, connect
from .specs import UNKNOWN_ID

SECRET_FIELDS = ("token", "client_secret", "password")
WRONG = {
    "datacrunch": {"client_secret": "wrong-secret-contract-dc"},
    "voltagepark": {"token": "wrong-token-contract-vp"},
    "dcdncloud": {"token": "wrong-token-contract-dcdn"},
    "cloudnexus": {"token": "cn_test_wrong_contract"},
    "computestacks": {"client_secret": "wrong-secret-contract-cs"},
}


def _exception_text(exc: BaseException) -> str:
    """Everything an exception can show: message, repr, the front-ends' dict, the whole chained traceback."""
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, gpucloud.GpuCloudError):
        parts.append(repr(exc.to_dict()))
    return "\n".join(parts)


def test_debug_logs_hold_no_credentials_or_tokens(
    overrides: dict, emulator: object, keypair: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = emulator.world  # type: ignore[attr-defined]
    raised: list[str] = []
    issued: list[str] = []
    for provider in IMPLEMENTED:
        with connect(overrides, provider, retry_backoff=0.01) as cloud:
            if cloud.supports(Capability.SSH_KEYS):
                world.set_faults(drop_create_rate=1.0)  # the create's answer is lost: adoption path, logged
                try:
                    key = cloud.create_ssh_key(SshKeySpec(name=f"log check {provider}", public_key=keypair[1]))
                finally:
                    world.set_faults(drop_create_rate=0.0)
                cloud.delete_ssh_key(key.id)
            with pytest.raises(gpucloud.NotFound) as missing:
                cloud.get_instance(UNKNOWN_ID[provider]["instance"])
            raised.append(_exception_text(missing.value))
            world.set_faults(error_rate=1.0)
            try:
                with pytest.raises(gpucloud.GpuCloudError) as failing:
                    cloud.list_instances()
            finally:
                world.set_faults(error_rate=0.0)
            raised.append(_exception_text(failing.value))
            auth = getattr(cloud, "auth", None)
            if auth is not None and getattr(auth, "_access_token", None):
                issued.append(auth._access_token)
            raised.append(repr(cloud.config) + str(cloud.config) + repr(cloud))
        with connect(overrides, provider, **WRONG[provider]) as wrong, pytest.raises(gpucloud.AuthError) as refused:
            wrong.list_instances()
        raised.append(_exception_text(refused.value))
    configured = [v for creds in world.settings.credentials.values() for k, v in creds.items() if k in SECRET_FIELDS]
    secrets = [*configured, *issued, *world.issued_tokens(), *(v for w in WRONG.values() for v in w.values())]
    places = {"log": caplog.text, "exceptions and reprs": "\n".join(raised)}
    leaks = [(where, s[:6]) for where, text in places.items() for s in secrets if s and s in text]
    figures.record("operations tried", 5 * len(IMPLEMENTED))
    figures.record("leaked secrets", len(leaks))
    assert "gpucloud.transport" in {r.name for r in caplog.records}, "the transport logs each request at DEBUG"
    assert issued, "OAuth providers hold a live access token that must not show up anywhere"
    assert leaks == []

"""The one line every front-end shows for a gpucloud error (GpuCloudError.describe)."""

from __future__ import annotations

import pytest

from gpucloud import errors


def test_the_line_is_the_message_then_its_context_without_empty_parts() -> None:
    refused = errors.AuthError("token refused", provider="voltagepark", status_code=401, request_id="req-7")
    assert str(refused) == "token refused (provider=voltagepark, http=401, request_id=req-7)"
    assert str(refused) == refused.describe()
    unsupported = errors.Unsupported("cloudnexus", "instance tags")
    # The message starts with the provider: the context does not name it again.
    assert str(unsupported) == "cloudnexus does not support instance tags (code=unsupported)"
    assert str(errors.GpuCloudError("no instance named 'x'")) == "no instance named 'x'"


def test_the_provider_is_named_once() -> None:
    # HTTP errors read "<provider>: <the API's message>"
    refused = errors.AuthError("voltagepark: Invalid API token", provider="voltagepark", status_code=401)
    assert str(refused) == "voltagepark: Invalid API token (http=401)"
    # a line that names the provider itself (the CLI's, Pulumi's) gets the text without it
    assert refused.describe(name_provider=False) == "Invalid API token (http=401)"
    assert errors.NotFound("gone", provider="datacrunch").describe(name_provider=False) == "gone"
    # a provider's name inside a message that does not start with it is no reason to leave it out
    other = errors.Conflict("voltageparks differ", provider="voltagepark")
    assert str(other) == "voltageparks differ (provider=voltagepark)"


def test_the_asked_provider_stands_in_only_when_the_error_names_none() -> None:
    assert errors.GpuCloudError("no API URL").describe(provider="dcdncloud") == "no API URL (provider=dcdncloud)"
    own = errors.ProviderError("bad gateway", provider="datacrunch", status_code=502)
    assert own.describe(provider="dcdncloud") == "bad gateway (provider=datacrunch, http=502)"


@pytest.mark.parametrize(
    ("message", "option", "line"),
    [
        # the core's own name for a setting: the line says which option the user typed
        ("timeout must be a positive number", "request_timeout", "request_timeout: timeout must be a positive number"),
        # the message leads with the option already: not twice
        ("size_gb must be a whole number", "size_gb", "size_gb must be a whole number"),
        ("ssh_keys[0]: not an OpenSSH public key", "ssh_keys", "ssh_keys[0]: not an OpenSSH public key"),
        # a longer word that merely starts like the option is not the option
        ("names may not repeat", "name", "name: names may not repeat"),
        ("name_prefix is too long", "name", "name: name_prefix is too long"),
    ],
)
def test_an_option_leads_the_line_once(message: str, option: str, line: str) -> None:
    error = errors.ValidationError(message, field="whatever", provider="datacrunch", status_code=None)
    assert error.describe(option) == f"{line} (provider=datacrunch)"
    assert error.describe(option, name_provider=False) == line

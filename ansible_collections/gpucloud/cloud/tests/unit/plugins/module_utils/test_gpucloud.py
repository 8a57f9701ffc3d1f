from __future__ import annotations

import pytest

from ansible_collections.gpucloud.cloud.plugins.module_utils import gpucloud as utils


def test_connection_spec_marks_secrets_no_log():
    spec = utils.connection_argument_spec()
    for option in ("api_token", "client_secret", "api_password"):
        assert spec[option]["no_log"] is True
    assert set(spec["provider"]["choices"]) == set(utils.PROVIDERS)


def test_every_connection_option_maps_to_a_gpucloud_setting():
    from gpucloud.config import ProviderConfig

    assert set(utils.CONNECTION_OPTIONS) <= set(utils.connection_argument_spec())
    assert set(utils.CONNECTION_OPTIONS.values()) <= set(ProviderConfig.model_fields)


def test_providers_match_the_gpucloud_configuration():
    from gpucloud.config import PROVIDERS

    assert list(PROVIDERS) == utils.PROVIDERS


@pytest.mark.parametrize(("value", "plain"), [((1, 2), [1, 2]), ({"a": (1,)}, {"a": [1]}), ("x", "x"), (None, None)])
def test_plain_turns_tuples_into_lists(value, plain):
    assert utils._plain(value) == plain

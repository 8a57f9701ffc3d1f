import functools
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest

from gpucloud import config, errors


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_precedence_args_over_env_over_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[voltagepark]\ntoken = "from-file"\nbase_url = "http://file"\nssh_user = "fileuser"\ntimeout = 7\n',
    )
    env = {"GPUCLOUD_VOLTAGEPARK_TOKEN": "from-env", "GPUCLOUD_VOLTAGEPARK_URL": "http://env"}
    cfg = config.load_config("voltagepark", {"base_url": "http://arg", "token": None}, environ=env, config_path=path)
    assert cfg.base_url == "http://arg"  # argument wins
    assert cfg.secret("token") == "from-env"  # None argument means "not given": env wins over file
    assert cfg.ssh_user == "fileuser"  # only in the file
    assert cfg.timeout == 7.0
    assert cfg.max_retries == 5  # default


def test_profiles_select_alternative_tables(tmp_path: Path) -> None:
    path = write(tmp_path, '[datacrunch]\nclient_id = "main"\n[profiles.staging.datacrunch]\nclient_id = "stage"\n')
    cfg = config.load_config("datacrunch", environ={"GPUCLOUD_PROFILE": "staging"}, config_path=path)
    assert cfg.client_id == "stage"
    with pytest.raises(errors.ValidationError, match="profile 'nope' not found"):
        config.load_config("datacrunch", environ={"GPUCLOUD_PROFILE": "nope"}, config_path=path)


def test_secrets_never_show_in_repr_or_dump(tmp_path: Path) -> None:
    env = {"GPUCLOUD_DATACRUNCH_CLIENT_SECRET": "s3cr3t-value", "GPUCLOUD_DATACRUNCH_CLIENT_ID": "id"}
    cfg = config.load_config("datacrunch", environ=env, config_path=tmp_path / "missing.toml")
    assert "s3cr3t-value" not in repr(cfg)
    assert "s3cr3t-value" not in str(cfg.model_dump())
    assert "s3cr3t-value" not in cfg.model_dump_json()
    assert cfg.secret("client_secret") == "s3cr3t-value"
    assert cfg.is_configured()


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(errors.ValidationError, match="ssh_port"):
        config.load_config(
            "voltagepark", environ={"GPUCLOUD_VOLTAGEPARK_SSH_PORT": "99999"}, config_path=tmp_path / "x"
        )
    with pytest.raises(errors.ValidationError, match="unknown provider 'aws'"):
        config.load_config("aws", environ={})


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[voltagepark\n")
    with pytest.raises(errors.ValidationError, match="cannot read config file"):
        config.load_config("voltagepark", environ={}, config_path=path)


def test_configured_providers_reads_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCLOUD_CONFIG", str(tmp_path / "none.toml"))
    env = {"GPUCLOUD_VOLTAGEPARK_TOKEN": "t", "GPUCLOUD_DATACRUNCH_CLIENT_ID": "only-id"}
    assert config.configured_providers(env) == ["voltagepark"]


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [("TIMEOUT", "0", "timeout"), ("MAX_RETRIES", "-1", "max_retries"), ("SSH_PORT", "70000", "ssh_port")],
)
def test_a_bad_setting_is_reported_under_its_own_name(tmp_path: Path, variable: str, value: str, field: str) -> None:
    environ = {f"GPUCLOUD_VOLTAGEPARK_{variable}": value}
    with pytest.raises(errors.ValidationError) as info:
        config.load_config("voltagepark", environ=environ, config_path=tmp_path / "x")
    assert info.value.field == field
    assert f"{field} (GPUCLOUD_VOLTAGEPARK_{variable})" in str(info.value)


# Every number setting of ProviderConfig: a boolean for any of them is refused, from any source.
NUMBER_SETTINGS = ("ssh_port", "timeout", "max_retries", "retry_max_seconds", "retry_backoff", "requests_per_minute")
NUMBER_SETTINGS += ("page_workers", "poll_interval")


def _refused_as_boolean(field: str, shown: str, load: Callable[[], object]) -> None:
    with pytest.raises(errors.ValidationError) as info:
        load()
    message = str(info.value)
    assert info.value.field == field, message
    assert f"{field} ({config.env_var('datacrunch', field)}): must be a number, not a boolean ({shown})" in message
    assert "give a number" in message and "or leave the setting out" in message  # the fix


def test_every_number_setting_is_listed_here() -> None:
    numbers = {
        name
        for name, info in config.ProviderConfig.model_fields.items()
        if {int, float} & {info.annotation, *get_args(info.annotation)}
    }
    assert numbers == set(NUMBER_SETTINGS)


@pytest.mark.parametrize("field", NUMBER_SETTINGS)
@pytest.mark.parametrize("value", ["true", "False", " yes ", "off"])
def test_a_boolean_in_the_environment_is_refused_for_a_number_setting(tmp_path: Path, field: str, value: str) -> None:
    environ = {config.env_var("datacrunch", field): value}
    load = functools.partial(config.load_config, "datacrunch", environ=environ, config_path=tmp_path / "x")
    _refused_as_boolean(field, value.strip().lower(), load)


@pytest.mark.parametrize("field", NUMBER_SETTINGS)
def test_a_boolean_in_the_profile_file_is_refused_for_a_number_setting(tmp_path: Path, field: str) -> None:
    path = write(tmp_path, f"[profiles.p.datacrunch]\n{field} = true\n[datacrunch]\n{field} = false\n")
    _refused_as_boolean(field, "false", lambda: config.load_config("datacrunch", environ={}, config_path=path))
    profile = {"GPUCLOUD_PROFILE": "p"}
    _refused_as_boolean(field, "true", lambda: config.load_config("datacrunch", environ=profile, config_path=path))


@pytest.mark.parametrize("field", NUMBER_SETTINGS)
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_keyword_is_refused_for_a_number_setting(tmp_path: Path, field: str, value: bool) -> None:
    load = functools.partial(config.load_config, "datacrunch", {field: value}, environ={}, config_path=tmp_path / "x")
    _refused_as_boolean(field, str(value).lower(), load)


def test_numbers_and_boolean_settings_still_load(tmp_path: Path) -> None:
    path = write(tmp_path, "[datacrunch]\ntimeout = 1\nallow_insecure_http = true\n")
    environ = {"GPUCLOUD_DATACRUNCH_MAX_RETRIES": "0", "GPUCLOUD_DATACRUNCH_TOKEN_CACHE": "true"}
    cfg = config.load_config("datacrunch", {"retry_backoff": 0.25}, environ=environ, config_path=path)
    assert (cfg.timeout, cfg.max_retries, cfg.retry_backoff) == (1.0, 0, 0.25)
    assert cfg.allow_insecure_http is True and cfg.token_cache is True


@pytest.mark.parametrize(
    "url",
    ["ftp://api.example.com", "api.example.com/v1", "http://", "https://api.example.com:99999/v1", "https://a b.com"],
)
def test_a_bad_api_url_is_refused_naming_base_url_before_any_request(url: str) -> None:
    import gpucloud

    with pytest.raises(errors.ValidationError) as info:
        gpucloud.connect("voltagepark", base_url=url, token="t" * 8)
    assert info.value.field == "base_url" and "base_url" in str(info.value)


@pytest.mark.parametrize("host", ["api.example.com", "10.0.0.5", "[fe80::1]"])
def test_plain_http_to_a_remote_host_is_refused_unless_allowed(host: str) -> None:
    import gpucloud

    with pytest.raises(errors.ValidationError, match="unencrypted") as info:
        gpucloud.connect("voltagepark", base_url=f"http://{host}/v1", token="t" * 8)
    assert info.value.field == "base_url"
    with gpucloud.connect("voltagepark", base_url=f"http://{host}/v1", token="t" * 8, allow_insecure_http=True):
        pass
    environ = {"GPUCLOUD_VOLTAGEPARK_ALLOW_INSECURE_HTTP": "true"}
    assert config.load_config("voltagepark", environ=environ, config_path=Path("/nonexistent")).allow_insecure_http


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "localhost", "[::1]", "emu.localhost", "0.0.0.0"])
def test_plain_http_to_loopback_needs_no_permission(host: str) -> None:
    import gpucloud

    with gpucloud.connect("voltagepark", base_url=f"http://{host}:8080/v1", token="t" * 8) as cloud:
        assert cloud.config.base_url == f"http://{host}:8080/v1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://api.example.com/v1", "https://api.example.com/v1"),
        ("https://user:pa%40ss@api.example.com/v1", "https://[REDACTED]@api.example.com/v1"),
        ("https://token-only@api.example.com", "https://[REDACTED]@api.example.com"),
        ("https://api.example.com/v1/users/a@b", "https://api.example.com/v1/users/a@b"),  # an @ in the path
        ("http://u:p@127.0.0.1:8765?x=a@b", "http://[REDACTED]@127.0.0.1:8765?x=a@b"),
    ],
)
def test_redact_url_hides_userinfo_and_nothing_else(url: str, shown: str) -> None:
    assert config.redact_url(url) == shown


def test_url_secrets_are_the_userinfo_and_password_as_written_and_decoded() -> None:
    assert set(config.url_secrets("https://user:pa%40ss@api.example.com")) == {
        "user:pa%40ss",
        "user:pa@ss",
        "pa%40ss",
        "pa@ss",
    }
    assert config.url_secrets("https://api.example.com/a@b") == []

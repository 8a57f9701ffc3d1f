# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every module (gpucloud.connect() arguments).
    DOCUMENTATION = r"""
options:
  provider:
    description:
      - The GPU cloud provider to talk to.
      - A provider this installed C(gpucloud) release has no adapter for fails with an C(Unsupported) error.
    type: str
    required: true
    choices: [datacrunch, voltagepark, dcdncloud, cloudnexus, computestacks]
  api_url:
    description:
      - Base URL of the provider's API.
      - Defaults to E(GPUCLOUD_<PROVIDER>_URL), the profile file, then the provider's public API.
    type: str
    aliases: [endpoint]
  api_token:
    description:
      - Bearer API token (for example Voltage Park).
      - Defaults to E(GPUCLOUD_<PROVIDER>_TOKEN), then the C(token) key of the provider's table in
        C(~/.config/gpucloud/config.toml) (or E(GPUCLOUD_CONFIG)).
    type: str
  client_id:
    description:
      - OAuth2 client id (for example DataCrunch). Defaults to E(GPUCLOUD_<PROVIDER>_CLIENT_ID), then the profile file.
    type: str
  client_secret:
    description:
      - OAuth2 client secret. Defaults to E(GPUCLOUD_<PROVIDER>_CLIENT_SECRET), then the profile file.
    type: str
  api_username:
    description:
      - API user name for providers that log in with a user and password.
      - Defaults to E(GPUCLOUD_<PROVIDER>_USERNAME), then the profile file.
    type: str
  api_password:
    description:
      - API password for providers that log in with a user and password.
      - Defaults to E(GPUCLOUD_<PROVIDER>_PASSWORD), then the profile file.
    type: str
  ssh_user:
    description:
      - The SSH user reported for instances, overriding the provider's default.
      - Defaults to E(GPUCLOUD_<PROVIDER>_SSH_USER).
    type: str
  ssh_port:
    description:
      - The SSH port for providers whose API reports none. Defaults to E(GPUCLOUD_<PROVIDER>_SSH_PORT), then 22.
    type: int
  request_timeout:
    description:
      - Seconds to wait for one API response. Defaults to E(GPUCLOUD_<PROVIDER>_TIMEOUT), then 30.
    type: float
  max_retries:
    description:
      - Retries of idempotent requests on connection errors, 429 and 5xx.
      - Defaults to E(GPUCLOUD_<PROVIDER>_MAX_RETRIES), then 5.
    type: int
requirements:
  - gpucloud (C(pip install gpucloud)) on the host that runs the module
notes:
  - Credentials come from, in order, these options, the environment (E(GPUCLOUD_<PROVIDER>_*)), the profile file
    (E(GPUCLOUD_CONFIG) or C(~/.config/gpucloud/config.toml), profile from E(GPUCLOUD_PROFILE)).
  - Set defaults for every module of the collection at once with C(module_defaults) and the
    C(group/gpucloud.cloud.all) action group.
"""

    # For modules that change things.
    ACTIONS = r"""
attributes:
  check_mode:
    support: full
    description: Only reads are sent to the provider; the result predicts the change.
  diff_mode:
    support: full
    description: Shows the resource before and after (predicted in check mode).
  action_group:
    description: Use C(group/gpucloud.cloud.all) in C(module_defaults) to set connection options once.
    support: full
    membership:
      - gpucloud.cloud.all
"""

    # For info modules.
    INFO = r"""
attributes:
  check_mode:
    support: full
    description: Read-only; runs in check mode too.
  diff_mode:
    support: N/A
    description: Changes nothing.
  action_group:
    description: Use C(group/gpucloud.cloud.all) in C(module_defaults) to set connection options once.
    support: full
    membership:
      - gpucloud.cloud.all
"""

#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: ssh_key_info
short_description: List account SSH keys on a GPU cloud
version_added: 0.1.0
description:
  - Account SSH keys on O(provider), all of them or the one with O(name) or O(id).
author: gpucloud contributors (@gpucloud)
extends_documentation_fragment:
  - gpucloud.cloud.gpucloud
  - gpucloud.cloud.gpucloud.info
options:
  name:
    description: Only the key with this name (an error if several share it).
    type: str
  id:
    description: Only the key with this id.
    type: str
"""

EXAMPLES = r"""
- name: Every SSH key on Voltage Park
  gpucloud.cloud.ssh_key_info:
    provider: voltagepark
  register: result
"""

RETURN = r"""
ssh_keys:
  description: Matching keys, with the fields of M(gpucloud.cloud.ssh_key)'s C(ssh_key) result.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud import (  # noqa: E402
    ResourceInfo,
)


class SshKeyInfo(ResourceInfo):
    represent = "ssh_keys"
    kind = "ssh_key"


def main():
    SshKeyInfo.run_module()


if __name__ == "__main__":
    main()

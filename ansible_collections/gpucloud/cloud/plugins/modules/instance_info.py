#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: instance_info
short_description: List GPU cloud instances
version_added: 0.1.0
description:
  - Instances on O(provider), all of them or the one with O(name) or O(id).
author: gpucloud contributors (@gpucloud)
extends_documentation_fragment:
  - gpucloud.cloud.gpucloud
  - gpucloud.cloud.gpucloud.info
options:
  name:
    description: Only the instance with this name (an error if several share it).
    type: str
  id:
    description: Only the instance with this id.
    type: str
"""

EXAMPLES = r"""
- name: Every instance on Voltage Park
  gpucloud.cloud.instance_info:
    provider: voltagepark
  register: result

- name: Print the SSH endpoints
  ansible.builtin.debug:
    msg: "{{ result.instances | map(attribute='ssh_host') }}"
"""

RETURN = r"""
instances:
  description: Matching instances, with the fields of M(gpucloud.cloud.instance)'s C(instance) result.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud import (  # noqa: E402
    ResourceInfo,
    instance_result,
)


class InstanceInfo(ResourceInfo):
    represent = "instances"
    kind = "instance"

    def shape(self, resource):
        return instance_result(resource)


def main():
    InstanceInfo.run_module()


if __name__ == "__main__":
    main()

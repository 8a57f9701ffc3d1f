#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: volume_info
short_description: List GPU cloud volumes
version_added: 0.1.0
description:
  - Volumes on O(provider), all of them or the one with O(name) or O(id).
author: gpucloud contributors (@gpucloud)
extends_documentation_fragment:
  - gpucloud.cloud.gpucloud
  - gpucloud.cloud.gpucloud.info
options:
  name:
    description: Only the volume with this name (an error if several share it).
    type: str
  id:
    description: Only the volume with this id.
    type: str
"""

EXAMPLES = r"""
- name: Every volume on DataCrunch
  gpucloud.cloud.volume_info:
    provider: datacrunch
  register: result
"""

RETURN = r"""
volumes:
  description: Matching volumes, with the fields of M(gpucloud.cloud.volume)'s C(volume) result.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud import (  # noqa: E402
    ResourceInfo,
)


class VolumeInfo(ResourceInfo):
    represent = "volumes"
    kind = "volume"


def main():
    VolumeInfo.run_module()


if __name__ == "__main__":
    main()

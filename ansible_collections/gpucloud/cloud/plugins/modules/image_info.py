#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: Images (operating systems) each provider can boot, to use as an instance's image
version_added: 0.1.0
description:
  - Lists the images of every configured provider with an image catalogue, or of the ones in O(providers),
    queried concurrently. Each item's RV(images[].id) is what M(gpucloud.cloud.instance) takes as its
    C(image).
  - With O(provider) (for example from C(module_defaults)) only that provider is asked, with the given credentials;
    otherwise credentials come from the environment and the profile file.
  - "Catalogues per provider: DataCrunch C(/images), Voltage Park the OS of its VM presets, dcdncloud C(/images),
    ComputeStacks its container images. CloudNexus documents no image listing: its items are the slugs its
    documentation shows (RV(images[].complete) is false) and its API accepts others."
author: gpucloud contributors (@gpucloud)
extends_documentation_fragment:
  - gpucloud.cloud.gpucloud
  - gpucloud.cloud.gpucloud.info
options:
  provider:
    description: Ask only this provider, with the connection options given.
    required: false
  providers:
    description:
      - Providers to ask. Default is every implemented provider with credentials configured and an image catalogue.
    type: list
    elements: str
  name:
    description: Only images whose id or name contains this text (case-insensitive), for example C(ubuntu-24.04).
    type: str
"""

EXAMPLES = r"""
- name: Ubuntu 24.04 images on DataCrunch
  gpucloud.cloud.image_info:
    provider: datacrunch
    name: ubuntu-24.04
  register: found

- name: Boot the first of them
  gpucloud.cloud.instance:
    provider: datacrunch
    name: trainer-1
    instance_type: 1V100.6V
    location: FIN-01
    image: "{{ found.images[0].id }}"
"""

RETURN = r"""
images:
  description: Matching images, by provider then id.
  returned: always
  type: list
  elements: dict
  contains:
    provider: {description: Provider name., type: str, returned: success}
    id: {description: What to pass as an instance's image., type: str, returned: success}
    name: {description: Human-readable name., type: str, returned: success}
    complete:
      description: False where the provider has no image listing and these are the examples its docs show.
      type: bool
      returned: success
providers:
  description: The providers that were asked.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud import (  # noqa: E402
    CatalogueInfo,
)


class ImageInfo(CatalogueInfo):
    represent = "images"
    capability = "images"

    def listing(self, cloud):
        return cloud.list_images()


def main():
    module = ImageInfo.catalogue_module(dict(name=dict(type="str")))
    ImageInfo(module).run()


if __name__ == "__main__":
    main()

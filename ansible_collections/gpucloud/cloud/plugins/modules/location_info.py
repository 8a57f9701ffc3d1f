#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: location_info
short_description: Locations (regions, data centres) each provider offers, to use as an instance's or volume's location
version_added: 0.1.0
description:
  - Lists the locations of every configured provider with a location catalogue, or of the ones in O(providers),
    queried concurrently. Each item's RV(locations[].id) is what M(gpucloud.cloud.instance) and
    M(gpucloud.cloud.volume) take as C(location); RV(locations[].name) is the readable name.
  - With O(provider) (for example from C(module_defaults)) only that provider is asked, with the given credentials;
    otherwise credentials come from the environment and the profile file.
  - "CloudNexus documents no region listing: its items are the region slugs its documentation shows
    (RV(locations[].complete) is false) and its API accepts others."
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
      - Providers to ask. Default is every implemented provider with credentials configured and a location
        catalogue.
    type: list
    elements: str
  name:
    description: Only locations whose id or name contains this text (case-insensitive), for example C(dallas).
    type: str
"""

EXAMPLES = r"""
- name: Where Voltage Park has machines
  gpucloud.cloud.location_info:
    provider: voltagepark
  register: places

- name: Print readable names with the ids to use
  ansible.builtin.debug:
    msg: "{{ places.locations | items2dict(key_name='name', value_name='id') }}"
"""

RETURN = r"""
locations:
  description: Matching locations, by provider then id.
  returned: always
  type: list
  elements: dict
  contains:
    provider: {description: Provider name., type: str, returned: success}
    id: {description: What to pass as C(location)., type: str, returned: success}
    name: {description: Human-readable name (a city or region)., type: str, returned: success}
    country: {description: "Country, where the provider says.", type: str, returned: success}
    complete:
      description: False where the provider has no location listing and these are the examples its docs show.
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


class LocationInfo(CatalogueInfo):
    represent = "locations"
    capability = "locations"

    def listing(self, cloud):
        return cloud.list_locations()


def main():
    module = LocationInfo.catalogue_module(dict(name=dict(type="str")))
    LocationInfo(module).run()


if __name__ == "__main__":
    main()

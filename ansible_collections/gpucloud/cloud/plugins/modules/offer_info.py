#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: offer_info
short_description: GPU machine shapes on offer across providers, cheapest first
version_added: 0.1.0
description:
  - Offers (instance types with GPU model and count, price per hour and where they are available now) from
    every configured provider, or the ones in O(providers), queried concurrently, sorted by price.
  - With O(provider) (for example from C(module_defaults)) only that provider is asked, with the given credentials;
    otherwise credentials come from the environment and the profile file.
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
      - Providers to ask. Default is every implemented provider with credentials configured and an offers API.
    type: list
    elements: str
  gpu_model:
    description: Only offers whose GPU model contains this text (case-insensitive), for example C(h100).
    type: str
  min_gpus:
    description: Only offers with at least this many GPUs.
    type: int
    default: 1
  max_price:
    description: Only offers costing at most this much per hour.
    type: float
  location:
    description: Only offers available at this location.
    type: str
  available_only:
    description: Only offers with capacity somewhere (or at O(location)) now.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Cheapest available H100 under 5/hour anywhere
  gpucloud.cloud.offer_info:
    gpu_model: h100
    max_price: 5
  register: result

- name: Create an instance from the cheapest offer
  gpucloud.cloud.instance:
    provider: "{{ result.offers[0].provider }}"
    name: trainer-1
    instance_type: "{{ result.offers[0].instance_type }}"
"""

RETURN = r"""
offers:
  description: Matching offers, cheapest first (unknown prices last).
  returned: always
  type: list
  elements: dict
  contains:
    provider: {description: Provider name., type: str, returned: success}
    instance_type: {description: Instance type to pass to M(gpucloud.cloud.instance)., type: str, returned: success}
    kind: {description: "The O(gpucloud.cloud.instance#module:kind) to create it with: V(vm) or V(bare_metal).",
           type: str, returned: success}
    gpu_model: {description: GPU model., type: str, returned: success}
    gpu_count: {description: Number of GPUs., type: int, returned: success}
    vcpus: {description: vCPUs., type: int, returned: success}
    memory_gb: {description: Memory in GB., type: float, returned: success}
    price_per_hour: {description: Price per hour (on demand)., type: float, returned: success}
    spot_price_per_hour:
      description: Price per hour as a spot instance (option C(spot) of M(gpucloud.cloud.instance)); null where the
        provider sells no spot instances.
      type: float
      returned: success
    available: {description: Whether it can be had somewhere now., type: bool, returned: success}
    available_locations: {description: Locations with capacity now., type: list, elements: str, returned: success}
    locations: {description: Every location with its availability., type: list, elements: dict, returned: success}
providers:
  description: The providers that were asked.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud import (  # noqa: E402
    CatalogueInfo,
    public,
)


class OfferInfo(CatalogueInfo):
    represent = "offers"
    capability = "offers"

    def validate(self):
        super().validate()
        p = self.params
        if p["min_gpus"] < 0:
            self.option_error("min_gpus", "must not be negative, got {}".format(p["min_gpus"]))
        if p["max_price"] is not None and p["max_price"] < 0:
            self.option_error("max_price", "must not be negative, got {}".format(p["max_price"]))

    def listing(self, cloud):
        return cloud.list_offers()

    def keep(self, item):
        p = self.params
        wanted = p["gpu_model"]
        if item.gpu_count < p["min_gpus"]:
            return False
        if wanted and wanted.lower() not in (item.gpu_model or "").lower():
            return False
        if p["max_price"] is not None and (item.price_per_hour is None or item.price_per_hour > p["max_price"]):
            return False
        places = [loc for loc in item.locations if not p["location"] or loc.location == p["location"]]
        if p["location"] and not places:
            return False
        return not (p["available_only"] and not any(loc.available for loc in places))

    def order(self, rows):
        return sorted(rows, key=lambda row: (row[1].price_per_hour is None, row[1].price_per_hour or 0.0))

    def shape(self, provider, item):
        data = public(item)
        data["available"] = item.available
        data["available_locations"] = [loc.location for loc in item.locations if loc.available]
        return data


def main():
    module = OfferInfo.catalogue_module(
        dict(
            gpu_model=dict(type="str"),
            min_gpus=dict(type="int", default=1),
            max_price=dict(type="float"),
            location=dict(type="str"),
            available_only=dict(type="bool", default=True),
        )
    )
    OfferInfo(module).run()


if __name__ == "__main__":
    main()

"""Per-provider inputs for the contract suite: the one place that knows each catalogue's names."""

from __future__ import annotations

from typing import Any

INSTANCE: dict[str, dict[str, Any]] = {
    "datacrunch": {"instance_type": "1V100.6V", "image": "ubuntu-24.04-cuda-12.8-open-docker", "location": "FIN-01"},
    "voltagepark": {"instance_type": "1x-h100-sxm5-80gb"},
    "dcdncloud": {"instance_type": "s-small", "image": "ubuntu-22.04", "location": "eu-central"},
    "cloudnexus": {"instance_type": "standard-2x4", "image": "ubuntu-22.04-lts", "location": "us-east-1"},
    "computestacks": {"instance_type": "small", "image": "Nginx", "location": "1"},
}
VOLUME: dict[str, dict[str, Any]] = {
    "datacrunch": {"location": "FIN-01"},
    "voltagepark": {},
    "dcdncloud": {},  # no volume API
    "cloudnexus": {},  # no volume API
    "computestacks": {},  # volumes only come with an order
}
# A second instance type per provider: a replacement where the API cannot resize, else a resize in place.
OTHER_TYPE: dict[str, str] = {
    "datacrunch": "1A100.22V",
    "voltagepark": "8x-h100-sxm5-80gb",
    "dcdncloud": "s-medium",
    "cloudnexus": "compute-8x16",
    "computestacks": "large",
}
# A change that always forces a replacement: the other type where the API cannot resize, else another image.
REPLACING: dict[str, dict[str, Any]] = {
    "datacrunch": {"instance_type": OTHER_TYPE["datacrunch"]},
    "voltagepark": {"instance_type": OTHER_TYPE["voltagepark"]},
    "dcdncloud": {"instance_type": OTHER_TYPE["dcdncloud"]},
    "cloudnexus": {"image": "debian-12"},
    "computestacks": {"image": "MariaDB"},
}

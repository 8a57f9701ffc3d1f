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
# Well-formed ids that no resource has, per provider and kind (a malformed id fails before any request).
_NO_UUID = "00000000-0000-4000-8000-000000000000"
UNKNOWN_ID: dict[str, dict[str, str]] = {
    "datacrunch": {"instance": _NO_UUID, "volume": _NO_UUID, "ssh_key": _NO_UUID},
    "voltagepark": {"instance": _NO_UUID, "volume": _NO_UUID, "ssh_key": _NO_UUID},
    "dcdncloud": {"instance": _NO_UUID},
    "cloudnexus": {"instance": "inst_0000000000000000", "ssh_key": "key_000000000000"},
    "computestacks": {"instance": "999999999", "volume": "999999999", "ssh_key": "999999999"},
}

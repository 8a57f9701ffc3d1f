"""Per-provider inputs for the contract suite: the one place that knows each catalogue's names."""

from __future__ import annotations

from typing import Any

INSTANCE: dict[str, dict[str, Any]] = {
    "datacrunch": {"instance_type": "1V100.6V", "image": "ubuntu-24.04-cuda-12.8-open-docker", "location": "FIN-01"},
    "voltagepark": {"instance_type": "1x-h100-sxm5-80gb"},
}
VOLUME: dict[str, dict[str, Any]] = {
    "datacrunch": {"location": "FIN-01"},
    "voltagepark": {},
}

"""An H100 under $3/h wherever there is one: placed on the cheapest matching offer with capacity.

gpucloud emulator --port 8765 --env-file /tmp/gpucloud.env &     # or real credentials (see the README)
set -a; . /tmp/gpucloud.env; set +a
pulumi stack init dev && pulumi preview --diff    # planned_offer: the offer a create tries first
pulumi up && pulumi stack output placement
"""

from __future__ import annotations

import pulumi

import pulumi_gpucloud as gpu

config = pulumi.Config()

trainer = gpu.Instance(
    "trainer-h100",
    provider="auto",
    gpu="h100",
    gpu_count=1,
    max_price=config.get_float("maxPrice") or 3.0,
    providers=["voltagepark", "datacrunch"],  # allowed, preferred in this order at the same price
    # min_disk_gb=500,  # an OS disk this large: stated by the offer, or chosen at create (DataCrunch)
    # spot="allowed",  # rank spot prices too (DataCrunch sells spot); the default is on-demand only
    images={"datacrunch": "ubuntu-24.04-cuda-12.8-open-docker"},
)

pulumi.export("placed_provider", trainer.placed_provider)
pulumi.export("placement", trainer.placement)
pulumi.export("ssh", pulumi.Output.concat(trainer.ssh_user, "@", trainer.ssh_host))

"""An SSH key, a volume and an instance on each provider, exported as an Ansible inventory.

gpucloud emulator --port 8765 --env-file /tmp/gpucloud.env &     # or real credentials (see the README)
set -a; . /tmp/gpucloud.env; set +a
pulumi stack init dev && pulumi up
pulumi stack output inventory > inventory.json && ansible-inventory -i inventory.json --graph
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

import pulumi_gpucloud as gpu
from gpucloud.capabilities import Capability
from gpucloud.providers import implemented, provider_class

# A small shape per provider (the names each catalogue uses; `gpucloud offers --provider X` lists them).
SHAPES: dict[str, dict[str, Any]] = {
    "datacrunch": {"instance_type": "1V100.6V", "image": "ubuntu-24.04-cuda-12.8-open-docker", "location": "FIN-01"},
    "voltagepark": {"instance_type": "1x-h100-sxm5-80gb"},
    "dcdncloud": {"instance_type": "s-small", "image": "ubuntu-22.04", "location": "eu-central"},
    "cloudnexus": {"instance_type": "standard-2x4", "image": "ubuntu-22.04-lts", "location": "us-east-1"},
    "computestacks": {"instance_type": "small", "image": "Nginx", "location": "1"},
}

config = pulumi.Config()
public_key = config.get("publicKey") or Path("~/.ssh/id_ed25519.pub").expanduser().read_text().strip()
providers: list[str] = config.get_object("providers") or [p for p in implemented() if p in SHAPES]

instances: list[gpu.Instance] = []
for provider in providers:
    caps = provider_class(provider).capabilities
    shape = SHAPES[provider]
    stem = f"{pulumi.get_stack()}-{provider}"
    if Capability.SSH_KEYS in caps:
        key = gpu.SshKey(f"{provider}-key", provider=provider, name=f"{stem}-key", public_key=public_key)
        ssh_keys: list[pulumi.Input[str]] = [key.name]  # by name: the instance waits for the key
    else:
        ssh_keys = [public_key]  # providers without an account key API take the key text
    volume_caps = {Capability.VOLUME_CREATE, Capability.INSTANCE_VOLUMES_AT_CREATE}
    volumes: list[pulumi.Input[str]] = []
    if volume_caps <= caps:  # attached at create (e.g. DataCrunch attaches only to stopped instances)
        location = shape.get("location") if Capability.VOLUME_LOCATION in caps else None
        data = gpu.Volume(f"{provider}-data", provider=provider, name=f"{stem}-data", size_gb=100, location=location)
        volumes = [data.name]
    instance = gpu.Instance(
        f"{provider}-gpu",
        gpu.InstanceArgs(
            provider=provider,
            name=f"{stem}-gpu",
            ssh_keys=ssh_keys,
            volumes=volumes or None,
            wait_for_ssh=True,
            **shape,
        ),
    )
    instances.append(instance)
    if Capability.VOLUME_CREATE in caps and not volumes:  # attached once the instance runs
        attach = instance.name if Capability.VOLUME_ATTACH in caps else None
        gpu.Volume(f"{provider}-data", provider=provider, name=f"{stem}-data", size_gb=100, attach_to=attach)
    ssh = pulumi.Output.format("{0}@{1} -p {2}", instance.ssh_user, instance.ssh_host, instance.ssh_port)
    pulumi.export(f"{provider}_ssh", ssh)

pulumi.export("inventory", gpu.ansible.inventory_output(instances))

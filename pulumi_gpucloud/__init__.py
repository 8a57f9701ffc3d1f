"""Pulumi dynamic resources for gpucloud: GPU instances, volumes and SSH keys on any supported provider.

    import pulumi
    import pulumi_gpucloud as gpu

    key = gpu.SshKey("laptop", provider="voltagepark", public_key=open("id_ed25519.pub").read())
    box = gpu.Instance("trainer", provider="voltagepark", instance_type="1x-h100-sxm5-80gb", ssh_keys=[key.name])
    pulumi.export("ssh", pulumi.Output.concat(box.ssh_user, "@", box.ssh_host, ":", box.ssh_port.apply(str)))

Several alike instances: ``gpu.instance_fleet("trainer-{index}", 4, provider=..., instance_type=...)`` declares
``trainer-1`` .. ``trainer-4``; lowering the count deletes the highest-numbered ones (see docs/fleets.md).

Existing resources: a create adopts one of the same name (``adopt=False`` refuses), and
``gpu.Instance.get("seen", "<id>", provider=...)`` reads one without managing it. ``import_=`` and ``pulumi import``
cannot work with a dynamic provider (the engine's import Read carries only the id).

Credentials are read by the provider process at run time: stack config ``gpucloud:<provider>_<setting>``
(e.g. ``pulumi config set --secret gpucloud:voltagepark_token ...``), else ``GPUCLOUD_*`` environment
variables, else the gpucloud config file. They are never stored in the Pulumi state.
"""

from pulumi_gpucloud import ansible
from pulumi_gpucloud._provider import GpuCloudProvider, GpuCloudResourceError
from pulumi_gpucloud.fleet import instance_fleet
from pulumi_gpucloud.lookups import get_images, get_instance, get_locations, get_offers
from pulumi_gpucloud.resources import Instance, InstanceArgs, SshKey, SshKeyArgs, Volume, VolumeArgs

__all__ = [
    "GpuCloudProvider",
    "GpuCloudResourceError",
    "Instance",
    "InstanceArgs",
    "SshKey",
    "SshKeyArgs",
    "Volume",
    "VolumeArgs",
    "ansible",
    "get_images",
    "get_instance",
    "get_locations",
    "get_offers",
    "instance_fleet",
]

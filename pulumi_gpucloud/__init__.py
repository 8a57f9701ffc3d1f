"""Pulumi dynamic resources for gpucloud (Instance, Volume, SshKey).

The resources are being built on the shared ``gpucloud`` core; this package currently exports nothing.
"""

__all__: list[str] = []

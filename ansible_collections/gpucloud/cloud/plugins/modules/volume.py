#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: Create, resize, rename, attach and delete GPU cloud volumes
version_added: 0.1.0
description:
  - Make a block volume named O(name) on O(provider) match the options, or delete it.
  - Volumes grow in place and never shrink (a smaller O(size) fails). Changing type or location needs
    O(force_replace=true), which deletes the volume and its data.
  - To rename a volume, find it by O(id) and give the new O(name).
author: gpucloud contributors (@gpucloud)
extends_documentation_fragment:
  - gpucloud.cloud.gpucloud
  - gpucloud.cloud.gpucloud.actions
options:
  name:
    description: Volume name, unique per provider. Required unless O(id) is given.
    type: str
  id:
    description: Act on the volume with this id (then O(name) renames it).
    type: str
  size:
    description: Size in GB. Required to create a volume.
    type: int
  type:
    description: Volume type (for example C(NVMe)), where the provider has types.
    type: str
  location:
    description: Location code, where the provider places volumes.
    type: str
  attach_to:
    description: Name or id of an instance to attach the volume to. An empty string detaches it.
    type: str
  state:
    description: Whether the volume exists.
    type: str
    default: present
    choices: [present, absent]
  force_replace:
    description: Allow deleting and recreating the volume for changes that cannot be made in place.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: A 100 GB volume attached to trainer-1
  gpucloud.cloud.volume:
    provider: datacrunch
    name: datasets
    size: 100
    location: FIN-01
    attach_to: trainer-1

- name: Grow it
  gpucloud.cloud.volume:
    provider: datacrunch
    name: datasets
    size: 200
    location: FIN-01
"""

RETURN = r"""
volume:
  description: The volume after the task (predicted in check mode; the deleted volume for O(state=absent)).
  returned: always
  type: dict
  contains:
    id: {description: Provider id., type: str, returned: success}
    provider: {description: Provider name., type: str, returned: success}
    name: {description: Volume name., type: str, returned: success}
    size_gb: {description: Size in GB., type: int, returned: success}
    status: {description: The provider's status word., type: str, returned: success}
    volume_type: {description: Volume type., type: str, returned: success}
    location: {description: Location code., type: str, returned: success}
    attached_to: {description: Instance ids it is attached to., type: list, elements: str, returned: success}
action:
  description:
    - What was done, V(create), V(update), V(replace), V(delete) or V(none).
    - V(detach+delete) deletes a volume that is attached, detaching it first (the plan lists the detach).
  returned: always
  type: str
plan:
  description: The reconcile plan.
  returned: always
  type: dict
"""

from ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud import (  # noqa: E402
    AccountResource,
    gpucloud,
    gpucloud_ensure,
)


class Volume(AccountResource):
    represent = "volume"

    def validate(self):
        p = self.params
        if not p["name"] and not p["id"]:
            self.option_error("name", "name or id is required")
        if isinstance(p["size"], bool):  # Ansible's int check lets a YAML boolean through as 1
            self.option_error("size", "must be a whole number of GB, got a boolean")
        if p["size"] is not None and p["size"] <= 0:
            self.option_error("size", "must be a positive number of GB, got {}".format(p["size"]))
        if p["state"] == "present" and p["size"] is None:
            self.option_error("size", "is required with state=present")

    def present(self):
        p = self.params
        current_name = p["name"]
        if current_name is None:
            current = self.cloud.get_volume(p["id"])
            current_name = current.name
        spec = self.spec(
            gpucloud.VolumeSpec,
            name=current_name,
            size_gb=p["size"],
            volume_type=p["type"],
            location=p["location"],
            attach_to=p["attach_to"],
        )
        predicted = self.to_be_created(
            name=spec.name,
            size_gb=spec.size_gb,
            volume_type=spec.volume_type,
            location=spec.location,
        )
        options = dict(force_replace=p["force_replace"], volume_id=p["id"])
        self.ensure_and_report(gpucloud_ensure.ensure_volume, spec, predicted=predicted, **options)

    def absent(self):
        p = self.params
        self.ensure_and_report(gpucloud_ensure.ensure_volume_absent, name=p["name"], volume_id=p["id"])


def main():
    Volume.run_module(
        size=dict(type="int"),
        type=dict(type="str"),
        location=dict(type="str"),
        attach_to=dict(type="str"),
        force_replace=dict(type="bool", default=False),
    )


if __name__ == "__main__":
    main()

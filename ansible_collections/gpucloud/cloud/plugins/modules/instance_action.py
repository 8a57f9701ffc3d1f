#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: instance_action
short_description: Snapshot an instance, reset its root password or add an SSH key to it
version_added: 0.1.0
description:
  - Run one operation on the existing instance named O(name) (or with O(id)), where the provider's API has it
    (see the capability table); on any other provider the task fails before any request.
  - O(action=snapshot) takes a snapshot and waits for it (CloudNexus); RV(snapshot_id) can be an instance's
    C(image).
  - O(action=reset_root_password) makes the provider generate a new root password, the old one stops working
    (dcdncloud). The password is masked in the result; set O(secrets_file) to keep it.
  - O(action=add_ssh_key) authorizes O(public_key) on the instance (dcdncloud).
  - Not idempotent, like M(ansible.builtin.command) - every run acts and reports a change. These APIs cannot list
    snapshots, say which keys an instance accepts or whether a password was reset, so there is nothing to compare.
    Guard the task (C(when), a handler) where running it twice matters; a snapshot is billed until deleted in the
    provider's console.
author: gpucloud contributors (@gpucloud)
extends_documentation_fragment:
  - gpucloud.cloud.gpucloud
attributes:
  check_mode:
    support: full
    description: Only reads are sent (the instance is looked up); the result reports the change the task would make.
  diff_mode:
    support: none
    description: A one-off operation has no before and after to show.
  action_group:
    description: Use C(group/gpucloud.cloud.all) in C(module_defaults) to set connection options once.
    support: full
    membership:
      - gpucloud.cloud.all
options:
  name:
    description: Name of the instance. Required unless O(id) is given.
    type: str
  id:
    description: Id of the instance.
    type: str
  action:
    description: What to do.
    type: str
    required: true
    choices: [snapshot, reset_root_password, add_ssh_key]
  public_key:
    description: One line of an OpenSSH C(.pub) file. Required with O(action=add_ssh_key), and only allowed there.
    type: str
  secrets_file:
    description:
      - With O(action=reset_root_password), the file the new password is written to (JSON, instance name ->
        C({root_password}), mode 0600, merged with what the file holds).
      - Without it the password cannot be read back after the task.
    type: path
"""

EXAMPLES = r"""
- name: Let a second key in
  gpucloud.cloud.instance_action:
    provider: dcdncloud
    name: web-1
    action: add_ssh_key
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/ci.pub') }}"

- name: New root password, kept in a 0600 file
  gpucloud.cloud.instance_action:
    provider: dcdncloud
    name: web-1
    action: reset_root_password
    secrets_file: "{{ playbook_dir }}/secrets.json"
  no_log: true

- name: Snapshot before an upgrade
  gpucloud.cloud.instance_action:
    provider: cloudnexus
    name: worker-1
    action: snapshot
  register: snap

- name: A copy booted from it
  gpucloud.cloud.instance:
    provider: cloudnexus
    name: worker-1-copy
    instance_type: standard-2x4
    location: us-east-1
    image: "{{ snap.snapshot_id }}"
"""

RETURN = r"""
instance:
  description: The instance acted on, with the fields of M(gpucloud.cloud.instance)'s C(instance) result.
  returned: success
  type: dict
action:
  description: The O(action) run (or, in check mode, that would run).
  returned: success
  type: str
snapshot_id:
  description: The new snapshot's id, usable as an instance's C(image). None in check mode.
  returned: O(action=snapshot)
  type: str
instance_secrets:
  description: C({root_password}) with the value masked (C(********)). Set O(secrets_file) to keep it.
  returned: O(action=reset_root_password), not in check mode
  type: dict
secrets_file:
  description: The O(secrets_file) the new password was written to.
  returned: O(action=reset_root_password) with O(secrets_file), not in check mode
  type: str
"""

from typing import ClassVar  # noqa: E402

from ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud import (  # noqa: E402
    GpuCloudModule,
    gpucloud,
    gpucloud_ensure,
    gpucloud_errors,
    instance_result,
)


class InstanceAction(GpuCloudModule):
    represent = "instance"
    STATES: ClassVar[dict[str, str]] = {"present": "act"}

    def validate(self):
        p = self.params
        if not p["name"] and not p["id"]:
            self.option_error("name", "name or id is required")
        if p["action"] == "add_ssh_key":
            if not p["public_key"]:
                self.option_error("public_key", "is required with action=add_ssh_key")
            try:
                gpucloud.validation.validate_public_key(p["public_key"])
            except gpucloud.ValidationError as exc:
                self.option_error("public_key", exc.message)
        elif p["public_key"]:
            self.option_error("public_key", "is only used with action=add_ssh_key; remove it")
        if p["secrets_file"] and p["action"] != "reset_root_password":
            self.option_error("secrets_file", "is only used with action=reset_root_password; remove it")

    def act(self):
        action = self.params["action"]
        # Unsupported before any request, check mode included.
        self.cloud.require_one_off(action)
        instance = gpucloud_ensure.find_instance(self.cloud, name=self.params["name"], instance_id=self.params["id"])
        if instance is None:
            what = f"no {self.cloud.name} instance {self.params['id'] or self.params['name']!r} to {action}"
            raise gpucloud_errors.NotFound(what, provider=self.cloud.name)
        self.result.update(changed=True, action=action, instance=instance_result(instance))
        if action == "snapshot":
            self.result["snapshot_id"] = None if self.check_mode else self.cloud.snapshot_instance(instance.id)
        elif self.check_mode:
            return
        elif action == "reset_root_password":
            secrets = {instance.name: {"root_password": self.cloud.reset_root_password(instance.id)}}
            self.result["instance_secrets"] = self.keep_secrets(secrets)[instance.name]
        else:
            self.cloud.add_instance_ssh_key(instance.id, self.params["public_key"].strip())


def main():
    module = InstanceAction.define_module(
        dict(
            name=dict(type="str"),
            id=dict(type="str"),
            action=dict(type="str", required=True, choices=["snapshot", "reset_root_password", "add_ssh_key"]),
            public_key=dict(type="str", no_log=False),
            secrets_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    InstanceAction(module).run()


if __name__ == "__main__":
    main()

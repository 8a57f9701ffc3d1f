#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: ssh_key
short_description: Manage account SSH keys on a GPU cloud
version_added: 0.1.0
description:
  - Make an account SSH key named O(name) with O(public_key) exist, or delete it.
  - Keys cannot be edited in place; a key with the same name and a different public key is replaced
    (deleted and created again). Keys that differ only in their comment are the same key.
  - "ComputeStacks never returns a key's text, only its id and name: a key that exists under O(name) is reported
    unchanged whatever its content, with a warning saying the content could not be checked. To change it, delete
    the key (O(state=absent)) and create it again."
author: gpucloud contributors (@gpucloud)
extends_documentation_fragment:
  - gpucloud.cloud.gpucloud
  - gpucloud.cloud.gpucloud.actions
options:
  name:
    description: Key name, unique per provider. Required unless O(id) is given with O(state=absent).
    type: str
  id:
    description: Delete the key with this id (O(state=absent) only).
    type: str
  public_key:
    description: One line of an OpenSSH C(.pub) file. Required with O(state=present).
    type: str
  state:
    description: Whether the key exists.
    type: str
    default: present
    choices: [present, absent]
"""

EXAMPLES = r"""
- name: Register my key
  gpucloud.cloud.ssh_key:
    provider: voltagepark
    name: my-laptop
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
"""

RETURN = r"""
ssh_key:
  description: The key after the task (predicted in check mode; the deleted key for O(state=absent)).
  returned: always
  type: dict
  contains:
    id: {description: Provider id., type: str, returned: success}
    provider: {description: Provider name., type: str, returned: success}
    name: {description: Key name., type: str, returned: success}
    public_key: {description: Public key text., type: str, returned: success}
    fingerprint: {description: Key fingerprint where the provider reports one., type: str, returned: success}
action:
  description: What was done, V(create), V(replace), V(delete) or V(none).
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


class SshKey(AccountResource):
    represent = "ssh_key"

    def validate(self):
        p = self.params
        if p["state"] == "present":
            if not p["name"]:
                self.option_error("name", "is required with state=present")
            if not p["public_key"]:
                self.option_error("public_key", "is required with state=present")
            try:
                gpucloud.validation.validate_public_key(p["public_key"])
            except gpucloud.ValidationError as exc:
                self.option_error("public_key", exc.message)
        elif not p["name"] and not p["id"]:
            self.option_error("name", "name or id is required")

    def present(self):
        spec = self.spec(gpucloud.SshKeySpec, name=self.params["name"], public_key=self.params["public_key"].strip())
        predicted = self.to_be_created(name=spec.name, public_key=spec.public_key)
        outcome = self.ensure_and_report(gpucloud_ensure.ensure_ssh_key, spec, predicted=predicted)
        self.warn_if_key_text_hidden(outcome)

    def warn_if_key_text_hidden(self, outcome):
        """A provider whose API never returns key material (ComputeStacks) cannot show that the key under this name
        has other content: "unchanged" is then only about the name. Say so rather than let it pass as checked."""
        if outcome.before is None or self.cloud.reports_public_keys:
            return
        self.module.warn(
            f"ssh_key {self.params['name']!r}: {self.cloud.name} never returns a key's text, so whether it matches "
            "public_key cannot be checked (a key exists under this name). To change its content, delete it "
            "(state=absent) and create it again."
        )

    def absent(self):
        p = self.params
        self.ensure_and_report(gpucloud_ensure.ensure_ssh_key_absent, name=p["name"], key_id=p["id"])


def main():
    SshKey.run_module(public_key=dict(type="str", no_log=False))


if __name__ == "__main__":
    main()

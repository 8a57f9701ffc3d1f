"""Test-only Ansible action: writes a play's registered results to a file on the controller.

The Ansible helper in conftest.py ends every play with it. ``ansible.builtin.copy`` did the same job through
two module processes (stat, then copy) on every play, which cost more CPU than the ansible-playbook start-up
itself; an action plugin runs inside the controller and starts nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dest", "content"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        content = self._task.args["content"]
        if not isinstance(content, str):  # templating may hand back the data rather than its JSON text
            content = json.dumps(content)
        # Only its owner may read it: results can hold what a module returned once (as the copy did, 0600).
        fd = os.open(self._task.args["dest"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content)
        result["changed"] = True
        return result

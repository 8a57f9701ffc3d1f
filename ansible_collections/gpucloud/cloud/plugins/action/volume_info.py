# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Action of gpucloud.cloud.volume_info: the module runs in the controller's worker when it would run on the
controller's own Python anyway, otherwise as a module process as usual (see plugin_utils/in_process.py)."""

from __future__ import annotations

from ansible_collections.gpucloud.cloud.plugins.plugin_utils.in_process import GpuCloudModuleAction


class ActionModule(GpuCloudModuleAction):
    module_name = "volume_info"

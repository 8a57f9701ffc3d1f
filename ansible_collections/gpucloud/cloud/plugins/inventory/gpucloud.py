# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
name: gpucloud
short_description: GPU cloud instances as an Ansible inventory
version_added: 0.1.0
description:
  - Instances of every configured GPU cloud provider (or those in O(providers)), queried concurrently.
  - The inventory file name must end with C(gpucloud.yml) or C(gpucloud.yaml).
  - Hosts get C(ansible_host), C(ansible_port) and C(ansible_user) from the SSH endpoint the provider reports,
    every normalised instance field as a host variable under O(prefix), and groups per provider, location,
    GPU model and status.
  - Credentials come from the environment (E(GPUCLOUD_<PROVIDER>_*)) or the profile file
    (E(GPUCLOUD_CONFIG) or C(~/.config/gpucloud/config.toml)), as for the modules.
  - With O(cache) on, a fresh cache answers without any API request and without loading the provider clients.
author: gpucloud contributors (@gpucloud)
requirements:
  - gpucloud (C(pip install gpucloud)) on the controller
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this as a gpucloud inventory source.
    required: true
    type: str
    choices: [gpucloud.cloud.gpucloud, gpucloud]
  providers:
    description: Providers to list. Default is every implemented provider with credentials configured.
    type: list
    elements: str
    default: []
  filters:
    description: Only instances matching all of these.
    type: dict
    default: {}
    suboptions:
      status:
        description: Normalised statuses to keep (for example V(running)).
        type: list
        elements: str
      location:
        description: Location codes to keep.
        type: list
        elements: str
      gpu_model:
        description: Keep instances whose GPU model contains one of these texts (case-insensitive).
        type: list
        elements: str
      tags:
        description: Keep instances carrying all of these tags with these values.
        type: dict
      name:
        description: Keep instances whose name matches this regular expression (Python C(re.search)).
        type: str
  hostname:
    description:
      - Inventory hostname, a Python format string over the instance fields (C(provider), C(name), C(id),
        C(location), C(gpu_model), C(public_ip), ...).
      - The default V({provider}-{name}) cannot clash across providers. Providers may allow two instances with
        the same name; when two instances would get one hostname, each of them gets C(-<id>) appended
        (and a warning), so no host silently hides another. Use V({provider}-{id}) for names that never change.
    type: str
    default: "{provider}-{name}"
  connect_with:
    description:
      - V(ssh_endpoint) sets C(ansible_host) and C(ansible_port) to the SSH host and port the provider reports
        (Voltage Park forwards port 22 to a per-instance port).
      - V(public_ip) sets only C(ansible_host) to the public IP (port from your SSH config, usually 22).
      - V(hostname) sets C(ansible_host) to the inventory hostname (for your own DNS or SSH config).
    type: str
    default: ssh_endpoint
    choices: [ssh_endpoint, public_ip, hostname]
  prefix:
    description: Prefix of the host variables holding the instance fields (C(gpucloud_status)...).
    type: str
    default: gpucloud_
  group_prefix:
    description: Prefix of the built-in groups (C(gpucloud_datacrunch), C(gpucloud_location_FIN_01)...).
    type: str
    default: gpucloud_
  default_groups:
    description: Add the built-in groups per provider, location, GPU model and status.
    type: bool
    default: true
  page_workers:
    description:
      - Requests in flight per provider once a list's total is known (the remaining pages, and per-project
        lookups such as ComputeStacks bastions). Each provider's request rate stays under its published limit
        (or C(requests_per_minute)) whatever this is.
    type: int
    default: 64
"""

EXAMPLES = r"""
# inventory.gpucloud.yml
plugin: gpucloud.cloud.gpucloud
providers: [datacrunch, voltagepark]
filters:
  status: [running]
keyed_groups:
  - key: gpucloud_tags
    prefix: tag
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
"""

import re  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402

# Only the package root here: it loads its parts on first use, so a run served from the cache never imports
# pydantic, httpx or the provider adapters.
try:
    import gpucloud

    HAS_GPUCLOUD = True
except ImportError:
    HAS_GPUCLOUD = False


def _matches(instance, filters):
    if filters.get("status") and instance["status"] not in filters["status"]:
        return False
    if filters.get("location") and instance.get("location") not in filters["location"]:
        return False
    if filters.get("gpu_model"):
        model = (instance.get("gpu_model") or "").lower()
        if not any(str(wanted).lower() in model for wanted in filters["gpu_model"]):
            return False
    for key, value in (filters.get("tags") or {}).items():
        if (instance.get("tags") or {}).get(key) != str(value):
            return False
    return not (filters.get("name") and not re.search(filters["name"], instance["name"]))


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "gpucloud.cloud.gpucloud"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("gpucloud.yml", "gpucloud.yaml"))

    def _providers(self):
        from gpucloud.config import configured_providers
        from gpucloud.providers import implemented

        chosen = self.get_option("providers") or [p for p in configured_providers() if p in implemented()]
        unknown = [p for p in chosen if p not in implemented()]
        if unknown:
            raise AnsibleError(
                "gpucloud inventory: providers {} are not implemented by this gpucloud; implemented: {}".format(
                    ", ".join(unknown), ", ".join(implemented())
                )
            )
        return chosen

    def _fetch(self, providers):
        """Every provider at once; each adapter fetches its remaining pages concurrently under its rate limit."""
        workers = self.get_option("page_workers")

        def one(name):
            with gpucloud.connect(name, page_workers=workers) as cloud:
                return [i.model_dump(mode="json", exclude={"raw"}) for i in cloud.list_instances()]

        try:
            with ThreadPoolExecutor(max_workers=max(1, len(providers))) as pool:
                return [item for items in pool.map(one, providers) for item in items]
        except gpucloud.GpuCloudError as exc:
            raise AnsibleError(f"gpucloud inventory: {exc}") from exc

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if not HAS_GPUCLOUD:
            raise AnsibleError("the gpucloud.cloud.gpucloud inventory needs the gpucloud package: pip install gpucloud")
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        instances = None
        started = time.monotonic()
        if use_cache:
            try:
                instances = self._cache[cache_key]
            except KeyError:
                update_cache = True
        source = "the cache"
        if instances is None:
            providers = self._providers()
            instances = self._fetch(providers)
            source = f"{len(providers)} provider(s)"
        if update_cache:
            self._cache[cache_key] = instances
        fetched = time.monotonic()
        count = self._populate(instances)
        # Timings for `ansible-inventory -v`: where a slow inventory spends its time (the benchmarks read it).
        added = time.monotonic() - fetched
        self.display.v(
            f"gpucloud inventory: {len(instances)} instances from {source} in {fetched - started:.3f} s, "
            f"{count} hosts added in {added:.3f} s"
        )

    def _hostnames(self, instances):
        template = self.get_option("hostname")
        names = []
        for instance in instances:
            try:
                names.append(template.format(**instance))
            except (KeyError, IndexError, ValueError) as exc:
                raise AnsibleError(f"gpucloud inventory: bad hostname template {template!r}: {exc}") from exc
        seen = {}
        for name in names:
            seen[name] = seen.get(name, 0) + 1
        result = []
        for name, instance in zip(names, instances, strict=False):
            if seen[name] > 1:
                self.display.warning(
                    f"gpucloud inventory: {seen[name]} instances map to hostname {name!r}; appending their ids"
                )
                name = "{}-{}".format(name, instance["id"])
            result.append(name)
        return result

    def _host_vars(self, hostname, instance, prefix, connect_with):
        variables = {prefix + key: value for key, value in instance.items()}
        variables[prefix + "ssh_host"] = instance.get("public_ip")
        if connect_with == "hostname":
            variables["ansible_host"] = hostname
        elif instance.get("public_ip"):
            variables["ansible_host"] = instance["public_ip"]
            if connect_with == "ssh_endpoint" and instance.get("ssh_port"):
                variables["ansible_port"] = instance["ssh_port"]
        if instance.get("ssh_user"):
            variables["ansible_user"] = instance["ssh_user"]
        return variables

    def _set_vars(self, hostname, variables, is_new, checked):
        """``set_variable`` for every name the first time it is seen (it validates the name); afterwards a
        new host's vars are updated in one go. That is what set_variable does for a new host, whose vars hold
        no dict to merge into, at a quarter of the cost when there are thousands of hosts."""
        if is_new and checked.issuperset(variables):
            self.inventory.get_host(hostname).vars.update(variables)
            return
        for key, value in variables.items():
            self.inventory.set_variable(hostname, key, value)
        checked.update(variables)

    def _populate(self, instances):
        filters = self.get_option("filters") or {}
        kept = [i for i in instances if _matches(i, filters)]
        prefix = self.get_option("prefix")
        group_prefix = self.get_option("group_prefix")
        strict = self.get_option("strict")
        connect_with = self.get_option("connect_with")
        default_groups = self.get_option("default_groups")
        compose, groups, keyed_groups = (self.get_option(o) for o in ("compose", "groups", "keyed_groups"))
        constructed = bool(compose or groups or keyed_groups)
        group_names = {}  # raw group -> sanitised and created
        checked = set()
        for hostname, instance in zip(self._hostnames(kept), kept, strict=False):
            is_new = hostname not in self.inventory.hosts
            host = self.inventory.add_host(hostname)
            self._set_vars(host, self._host_vars(hostname, instance, prefix, connect_with), is_new, checked)
            if default_groups:
                wanted = [instance["provider"]]
                for kind, field in (("location", "location"), ("gpu", "gpu_model"), ("status", "status")):
                    if instance.get(field):
                        wanted.append(f"{kind}_{instance[field]}")
                for group in wanted:
                    name = group_names.get(group)
                    if name is None:
                        name = group_names[group] = self._sanitize_group_name(group_prefix + group)
                        self.inventory.add_group(name)
                    self.inventory.add_child(name, host)
            if constructed:
                variables = self.inventory.get_host(host).get_vars()
                self._set_composite_vars(compose, variables, host, strict=strict)
                self._add_host_to_composed_groups(groups, variables, host, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, variables, host, strict=strict)
        return len(kept)

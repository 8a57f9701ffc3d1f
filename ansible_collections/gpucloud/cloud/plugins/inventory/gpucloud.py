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
    GPU model, status and instance kind.
  - Host variables look the same on every provider. C(gpucloud_gpu_model) is vendor-neutral
    (V(h100-sxm5-80gb) whether the API says C(H100 SXM5 80GB) or C(h100-sxm5-80gb)), C(gpucloud_gpu_count) is
    a number (0 without GPUs), and C(gpucloud_location_name) is a readable name next to the location id
    C(gpucloud_location) (Voltage Park's city for its location UUID, ComputeStacks' location name for its
    numeric id; the id itself where the API names no locations).
  - Built-in groups are lower case; the location group uses the readable name
    (C(gpucloud_location_finland_1), C(gpucloud_location_ashburn)), the GPU group the
    vendor-neutral model (C(gpucloud_gpu_h100_sxm5_80gb)), the kind group C(gpucloud_kind_vm) or
    C(gpucloud_kind_bare_metal) (Voltage Park bare-metal rentals; the host variable C(gpucloud_kind) says the same).
  - "A host placed by requirement (C(gpucloud.cloud.instance) with C(provider=auto)) on a provider that keeps tags
    (Voltage Park, CloudNexus) carries that requirement in C(gpucloud_placement) (for example
    C({gpu: h100, max_price_per_hour: 3.0})), read off the instance's C(gpucloud-placement) tag, and is in the group
    C(gpucloud_placement_<key>_<value>...) (C(gpucloud_placement_gpu_h100_max_price_per_hour_3_0)). Other hosts,
    and hosts on DataCrunch, dcdncloud or ComputeStacks (which keep no tags), have C(gpucloud_placement) null."
  - If a provider fails (wrong credentials, outage), the inventory fails naming it, so a playbook never acts
    on a subset of the hosts without being told. O(on_provider_error=warn) lists the other providers' hosts
    and warns naming the provider that failed.
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
        description: Locations to keep, by id or readable name (C(gpucloud_location_name), case-insensitive).
        type: list
        elements: str
      gpu_model:
        description:
          - Keep instances whose GPU model contains one of these, in any spelling (V(h100), V(H100 SXM5) and
            V(h100-sxm5) all match C(h100-sxm5-80gb)).
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
        C(location), C(location_name), C(gpu_model), C(public_ip), ...). Used when O(hostnames) is not set.
      - The default V({provider}-{name}) cannot clash across providers. Providers may allow two instances with
        the same name; when two instances would get one hostname, each of them gets C(-<id>) appended
        (and a warning), so no host silently hides another. Use V({provider}-{id}) for names that never change.
    type: str
    default: "{provider}-{name}"
  hostnames:
    description:
      - Preference list for the inventory hostname, as C(hostnames) of amazon.aws.aws_ec2. Each entry is an
        instance field (V(name), V(public_ip), V(id), ...) or a format string over fields
        (V({provider}-{name})); a host gets the first entry whose fields are all set.
      - A host none of them fits is named C(<provider>-<id>), never dropped. Clashes get C(-<id>) appended as
        with O(hostname). Set, it replaces O(hostname).
    type: list
    elements: str
    default: []
  on_provider_error:
    description:
      - V(fail) (the default) fails the whole inventory when any provider fails, naming it, so a playbook
        never silently acts on a subset.
      - V(warn) lists the hosts of the providers that answered and warns naming each provider that failed
        (its error class and message). Such a partial result is not written to the cache.
    type: str
    default: fail
    choices: [fail, warn]
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
    description: Prefix of the built-in groups (C(gpucloud_datacrunch), C(gpucloud_location_finland_1)...).
    type: str
    default: gpucloud_
  default_groups:
    description: Add the built-in groups per provider, location, GPU model, status and instance kind.
    type: bool
    default: true
  hostvar_fields:
    description:
      - Only these instance facts become host variables (names without O(prefix), for example
        V([status, public_ip, gpu_model])); the default (empty) sets every fact. C(ansible_host),
        C(ansible_port) and C(ansible_user) are set either way.
      - For inventories of thousands of hosts, where Ansible's own work per host (merging and rendering
        variables) grows with every variable. Filters, O(hostnames) and the built-in groups still see every
        fact; O(compose), O(groups) and O(keyed_groups) see the variables that are set.
      - An unknown name fails before any API request, listing the valid ones.
    type: list
    elements: str
    default: []
  omit_null_hostvars:
    description:
      - Leave out fact variables whose value is null (a stopped host's C(gpucloud_public_ip), an image the
        provider does not report...) instead of setting them to null. Playbooks then test
        C(gpucloud_public_ip is defined) or use C(default()).
    type: bool
    default: false
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
hostnames: [name, public_ip, id]
on_provider_error: warn
# 10,000 hosts list faster with fewer variables each: only these facts, and no nulls.
hostvar_fields: [status, gpu_model, gpu_count, location_name, tags, placement]
omit_null_hostvars: true
keyed_groups:
  - key: gpucloud_tags
    prefix: tag
  # Hosts placed by requirement, by the GPU they were placed for (gpucloud_placement is null for the others).
  - key: gpucloud_placement.gpu | default('unplaced')
    prefix: placed_for
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
"""

import gc  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402

# Only light parts here (no pydantic, httpx or provider adapters): a run served from the cache loads no more.
try:
    import gpucloud
    from gpucloud import presentation
    from gpucloud.gpus import gpu_model_matches

    HAS_GPUCLOUD = True
except ImportError:
    HAS_GPUCLOUD = False


def _matches(instance, filters):
    if filters.get("status") and instance["status"] not in filters["status"]:
        return False
    if filters.get("location"):
        wanted = {str(w).lower() for w in filters["location"]}
        places = {str(instance.get(f) or "").lower() for f in ("location", "location_name")}
        if not wanted & places:
            return False
    wanted_gpus = filters.get("gpu_model")
    if wanted_gpus and not any(gpu_model_matches(instance.get("gpu_model"), str(w)) for w in wanted_gpus):
        return False
    for key, value in (filters.get("tags") or {}).items():
        if (instance.get("tags") or {}).get(key) != str(value):
            return False
    return not (filters.get("name") and not re.search(filters["name"], instance["name"]))


@contextmanager
def _kept_until_exit():
    """No cyclic garbage collection while listing; then what is alive is moved out of the collector's sight.

    Reading 10,000 instances allocates millions of objects (decoded JSON, models, facts) that hold no reference
    cycles, and the inventory keeps the facts until the process ends. Each of them counted towards the
    collector's next pass, and passes over Ansible's whole heap took 0.3-0.4 s of the fetch's 0.8 s CPU,
    freeing nothing. Pausing alone would leave one pass over all of it for later (the first collection after
    the pause walks everything allocated meanwhile), so the survivors are frozen (``gc.freeze``): reference
    counting still frees them, the cyclic collector no longer walks them, also not while Ansible renders the
    hosts. The collector's own state is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


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
        """Facts of every provider's instances, all providers at once; each adapter fetches its remaining pages
        concurrently under its rate limit. Returns the facts and whether every provider answered."""
        workers = self.get_option("page_workers")

        def one(name):
            # Location names (one catalogue request) come in while the instance pages do.
            with gpucloud.connect(name, page_workers=workers) as cloud, ThreadPoolExecutor(max_workers=1) as pool:
                names = pool.submit(cloud.location_names)
                instances = cloud.list_instances_detailed()
                return [presentation.instance_facts(i, names.result()) for i in instances]

        with _kept_until_exit():
            facts, failures = presentation.gather(providers, one, workers=max(1, len(providers)))
        if failures and self.get_option("on_provider_error") != "warn":
            failed = ", ".join(f.provider for f in failures)
            raise AnsibleError(
                f"gpucloud inventory: provider {failed} failed, so no host is listed "
                f"(on_provider_error=warn lists the others): {'; '.join(str(f) for f in failures)}"
            )
        for failure in failures:
            self.display.warning(f"gpucloud inventory: provider {failure}; its hosts are left out")
        return facts, not failures

    def _preferences(self, fields):
        preferences = self.get_option("hostnames") or [self.get_option("hostname")]
        if fields is None:  # nothing cached to name
            return preferences
        try:
            presentation.check_hostnames(preferences, fields)
        except ValueError as exc:
            raise AnsibleError(f"gpucloud inventory: {exc}") from exc
        return preferences

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if not HAS_GPUCLOUD:
            raise AnsibleError("the gpucloud.cloud.gpucloud inventory needs the gpucloud package: pip install gpucloud")
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        instances = None
        started, started_cpu = time.monotonic(), time.process_time()
        if use_cache:
            try:
                instances = self._cache[cache_key]
            except KeyError:
                update_cache = True
        source = "the cache"
        if instances is None:
            # Bad input fails before any request (the fields come from the model, loaded now anyway).
            preferences = self._preferences([*presentation.instance_fields(), "location_name"])
            self._check_hostvar_fields(None)
            providers = self._providers()
            instances, complete = self._fetch(providers)
            update_cache = update_cache and complete  # a partial list must not be served as the whole
            source = f"{len(providers)} provider(s)"
        else:  # the cached facts name the fields, and the model (pydantic) stays unloaded
            preferences = self._preferences(instances[0] if instances else None)
            if instances:
                self._check_hostvar_fields(list(instances[0]))
        if update_cache:
            self._cache[cache_key] = instances
        fetched, fetch_cpu = time.monotonic(), time.process_time() - started_cpu
        count = self._populate(instances, preferences)
        # Timings for `ansible-inventory -v`: where a slow inventory spends its time (the benchmarks read it). The
        # CPU time is this process's (every fetch thread): what the fetch costs whatever else the machine runs.
        added = time.monotonic() - fetched
        self.display.v(
            f"gpucloud inventory: {len(instances)} instances from {source} in {fetched - started:.3f} s "
            f"(CPU {fetch_cpu:.3f} s), {count} hosts added in {added:.3f} s"
        )

    def _check_hostvar_fields(self, fact_names):
        try:
            presentation.check_host_var_names(self.get_option("hostvar_fields") or [], fact_names)
        except ValueError as exc:
            raise AnsibleError(f"gpucloud inventory: {exc}") from exc

    def _hostnames(self, instances, preferences=None):
        names, warnings = presentation.hostnames(instances, preferences or [self.get_option("hostname")])
        for warning in warnings:
            self.display.warning(f"gpucloud inventory: {warning}")
        return names

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

    def _populate(self, instances, preferences):
        filters = self.get_option("filters") or {}
        kept = [i for i in instances if _matches(i, filters)]
        prefix = self.get_option("prefix")
        group_prefix = self.get_option("group_prefix")
        strict = self.get_option("strict")
        connect_with = self.get_option("connect_with")
        default_groups = self.get_option("default_groups")
        only = set(self.get_option("hostvar_fields")) or None
        lean = dict(only=only, omit_null=self.get_option("omit_null_hostvars"))
        compose, groups, keyed_groups = (self.get_option(o) for o in ("compose", "groups", "keyed_groups"))
        constructed = bool(compose or groups or keyed_groups)
        group_names = {}  # label -> sanitised and created
        checked = set()
        for hostname, facts in zip(self._hostnames(kept, preferences), kept, strict=False):
            is_new = hostname not in self.inventory.hosts
            host = self.inventory.add_host(hostname)
            variables = presentation.host_vars(facts, hostname, prefix=prefix, connect_with=connect_with, **lean)
            self._set_vars(host, variables, is_new, checked)
            if default_groups:
                for label in presentation.group_labels(facts):
                    name = group_names.get(label)
                    if name is None:
                        name = group_names[label] = self._sanitize_group_name(
                            presentation.group_name(label, group_prefix)
                        )
                        self.inventory.add_group(name)
                    self.inventory.add_child(name, host)
            if constructed:
                variables = self.inventory.get_host(host).get_vars()
                self._set_composite_vars(compose, variables, host, strict=strict)
                self._add_host_to_composed_groups(groups, variables, host, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, variables, host, strict=strict)
        return len(kept)

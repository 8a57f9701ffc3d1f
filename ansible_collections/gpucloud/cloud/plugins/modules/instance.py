#!/usr/bin/python
# Copyright (c) gpucloud contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
module: instance
short_description: Create, update, power and delete GPU cloud instances
version_added: 0.1.0
description:
  - Make a GPU instance named O(name) on O(provider) match the options, start, stop or restart it, or delete it.
  - The instance name is the idempotence key. Two instances with the same name on the provider are an error
    naming both ids.
  - Fields the provider cannot change in place (type, image, location...) need O(force_replace=true), which
    deletes and recreates the instance.
  - With O(count) or O(exact_count) the module manages a fleet instead of one instance. O(name) is then a
    pattern in which C({index}) stands for the member number, starting at 1 (for example C(trainer-{index})
    gives C(trainer-1), C(trainer-2) ...). Every instance whose name fits the pattern is a member. Missing members
    get the lowest free numbers; with O(exact_count) surplus members are deleted from the highest number down.
    Creates and deletes run concurrently, paced under the provider's request limit, and the wait for all of them
    costs one list call per poll cycle. Members that exist are reconciled with the other options as for a single
    instance. The result is in RV(instances), RV(created) and RV(removed).
author: gpucloud contributors (@gpucloud)
extends_documentation_fragment:
  - gpucloud.cloud.gpucloud
  - gpucloud.cloud.gpucloud.actions
options:
  name:
    description:
      - Instance name, unique per provider.
      - With O(count) or O(exact_count), the name pattern of the fleet's members; C({index}) is replaced by the
        member number (1, 2, 3 ...). The placeholder is required when the count is more than 1.
    type: str
    required: true
  count:
    description:
      - Make sure at least this many members of the fleet O(name) exist (never deletes any).
      - Only with O(state=present). Mutually exclusive with O(exact_count) and O(id).
    type: int
  exact_count:
    description:
      - Make sure exactly this many members of the fleet O(name) exist; surplus members are deleted, highest
        number first. V(0) deletes the whole fleet.
      - Only with O(state=present). Mutually exclusive with O(count) and O(id).
    type: int
  id:
    description: Act on the instance with this provider id instead of finding it by O(name).
    type: str
  instance_type:
    description:
      - The provider's machine shape (see M(gpucloud.cloud.offer_info)). Required to create an instance.
    type: str
  kind:
    description:
      - What to create. V(vm) is a virtual machine. V(bare_metal) rents whole machines (Voltage Park bare metal,
        8-GPU nodes; C(instance_type) C(baremetal-8x-<gpu model>-infiniband) or C(-ethernet), see
        M(gpucloud.cloud.offer_info)); other providers refuse it before any request.
      - An existing instance of the other kind is only replaced with O(force_replace=true).
    type: str
    default: vm
    choices: [vm, bare_metal]
  image:
    description: OS image name or id.
    type: str
  location:
    description: Location / region code, for providers that let you choose.
    type: str
  ssh_keys:
    description:
      - Account SSH keys by name or id, or public key texts. Texts already registered resolve to their key;
        others are passed by content where the provider supports it.
    type: list
    elements: str
    default: []
  volumes:
    description: Volume names or ids to attach at create, where the provider supports it.
    type: list
    elements: str
    default: []
  tags:
    description:
      - String labels, where the provider supports them.
      - Not given, the instance's tags are left alone. Given, see O(purge_tags).
    type: dict
  purge_tags:
    description:
      - With V(true), the instance ends with exactly O(tags) (tags not listed are removed).
      - With V(false), O(tags) are added or changed and the others are kept.
      - Has no effect when O(tags) is not given.
    type: bool
    default: true
  startup_script:
    description: Script or cloud-init user data run at first boot.
    type: str
    aliases: [cloud_init, user_data]
  password:
    description: Root password to set at create, where the provider supports it.
    type: str
  spot:
    description:
      - Create a spot instance (cheaper, but the provider may discontinue it at any time), where the provider
        sells them (DataCrunch). M(gpucloud.cloud.offer_info) shows the spot price next to the on-demand one.
      - Chosen at create only; a different value replaces the instance (needs O(force_replace)). Not given, a create
        makes an on-demand instance and an existing instance is left as it is.
    type: bool
  on_spot_discontinue:
    description:
      - What happens to the OS volume when the provider discontinues the spot instance, in the provider's words
        (DataCrunch C(keep_detached), C(move_to_trash) or C(delete_permanently)). Needs O(spot=true) and
        O(os_disk_size_gb). Not given, the provider's default applies.
    type: str
  os_disk_size_gb:
    description:
      - Size of the OS disk in GB at create, where the provider lets you choose it (DataCrunch). Not given, the
        provider's default size.
      - Chosen at create only; a different size replaces the instance (needs O(force_replace)).
    type: int
  recreate_discontinued:
    description:
      - With O(state=present), a spot instance the provider discontinued (status C(discontinued)) is deleted with
        what was made for it and created again. By default it is reported as it is, with a warning.
    type: bool
    default: false
  state:
    description:
      - V(present) creates or updates; V(started), V(stopped) and V(restarted) change power of an existing
        instance (V(started) also creates it when O(instance_type) is given); V(absent) deletes.
      - V(stopped_disassociated) stops a Voltage Park VM and releases its compute, so only its storage is billed
        until it is started again (which needs free capacity). A plain V(stopped) VM is billed as a running
        one. Other providers and bare-metal rentals refuse it before changing anything.
      - V(hibernated) is refused on every provider (no provider's captured API documents hibernate/restore); use
        V(stopped).
    type: str
    default: present
    choices: [present, absent, started, stopped, restarted, stopped_disassociated, hibernated]
  wait:
    description: Wait until the instance is running (or stopped / gone).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 600
  secrets_file:
    description:
      - >-
        File to which the secrets a provider shows only once at create (dcdncloud's C(root_password)) are written,
        as JSON C({"<instance name>": {"root_password": "..."}}), readable by its owner only (mode 0600). Entries for
        other names already in the file are kept.
      - >-
        Without it these secrets cannot be read back after the task: RV(instance_secrets) only says which exist,
        with masked values, so they never appear in C(-v) output, registered variables or the fact cache.
    type: path
  wait_for_ssh:
    description: Also wait until the SSH port answers with an SSH banner.
    type: bool
    default: false
  force_replace:
    description: Allow deleting and recreating the instance to change fields that cannot change in place.
    type: bool
    default: false
  keep_os_volume:
    description:
      - When the instance is deleted (O(state=absent)) or replaced, keep its OS volume, detached, where the provider
        bills it as a volume of its own (DataCrunch). It stays billed until deleted with M(gpucloud.cloud.volume).
      - By default everything gpucloud made for the instance goes with it (OS volume, startup script, project).
      - Providers without a separate OS volume reject V(true). Fleets (O(count), O(exact_count)) do not use it.
    type: bool
    default: false
  # --- placement (provider=auto): keep this block together ---
  provider:
    description:
      - The GPU cloud provider to talk to, or V(auto) to place the instance by O(placement) on whichever allowed
        provider has the cheapest matching offer with capacity.
      - With V(auto) every provider with credentials in the environment or the profile file is used (connection
        options such as O(api_token) name one provider's and are refused).
    type: str
    required: true
    choices: [datacrunch, voltagepark, dcdncloud, computestacks, cloudnexus, auto]
  placement:
    description:
      - With O(provider=auto), what the instance must be instead of O(instance_type) and O(location). The offers
        that meet it are tried cheapest first (then in the order of its C(providers)); a provider without capacity,
        stock or quota is skipped for the next, and whatever a failed attempt left is deleted.
      - An instance already called O(name) on any configured provider is kept where it is (never moved to a
        cheaper offer); if it no longer meets the requirement it is replaced, with O(force_replace=true).
      - Check mode reports the offer that would be tried first; capacity is only known at create.
      - The choice is returned in RV(placement).
      - "Keys (each optional; a key left out allows anything): C(gpu) (GPU model, any spelling or part of one:
        C(h100), C(a100-80gb)), C(gpu_count) (exactly this many GPUs, default 1 with C(gpu)), C(min_vcpus),
        C(min_memory_gb), C(min_disk_gb) (an offer whose catalogue states a disk this large, or on DataCrunch, which
        takes the OS disk size at create, created this large; offers stating no disk are left out),
        C(locations) (allowed location ids or names), C(max_price_per_hour) (USD, the price the instance would
        be bought at), C(spot) (V(never), the default: on-demand only; V(allowed): spot prices ranked beside
        on-demand ones and the instance created as spot when a spot price wins; V(required): spot only;
        V(true)/V(false) mean required/never), C(kind) (V(vm), the default: virtual machines only;
        V(bare_metal): Voltage Park bare-metal nodes only, created without an image; V(any): both, by price;
        O(kind) is not used with O(provider=auto)), C(providers) (allowed providers in order of preference at equal
        price), C(images) (provider -> image, winning over O(image) for that provider). An unknown key or a bad
        value fails naming C(placement.<key>)."
    type: dict
"""

EXAMPLES = r"""
- name: A GPU instance with an SSH key, reachable over SSH
  gpucloud.cloud.instance:
    provider: datacrunch
    name: trainer-1
    instance_type: 1V100.6V
    image: ubuntu-24.04-cuda-12.8-open-docker
    location: FIN-01
    ssh_keys: [my-laptop]
    wait_for_ssh: true
  register: trainer

- name: Stop it
  gpucloud.cloud.instance:
    provider: datacrunch
    name: trainer-1
    state: stopped

- name: Delete it
  gpucloud.cloud.instance:
    provider: datacrunch
    name: trainer-1
    state: absent

- name: A Voltage Park bare-metal node (8 GPUs, InfiniBand)
  gpucloud.cloud.instance:
    provider: voltagepark
    name: big-trainer
    kind: bare_metal
    instance_type: baremetal-8x-h100-sxm5-80gb-infiniband
    ssh_keys: [my-laptop]
    wait_for_ssh: true

- name: Park a Voltage Park VM, paying for its storage only
  gpucloud.cloud.instance:
    provider: voltagepark
    name: notebook-1
    state: stopped_disassociated

- name: Four trainers, trainer-1 .. trainer-4, created concurrently
  gpucloud.cloud.instance:
    provider: datacrunch
    name: trainer-{index}
    exact_count: 4
    instance_type: 1V100.6V
    image: ubuntu-24.04-cuda-12.8-open-docker
    location: FIN-01
    ssh_keys: [my-laptop]
  register: trainers

- name: An H100 under $3/h wherever there is one (cheapest first, failing over when a provider has none)
  gpucloud.cloud.instance:
    provider: auto
    name: trainer-h100
    placement:
      gpu: h100
      max_price_per_hour: 3
      providers: [voltagepark, datacrunch]
      images: {datacrunch: ubuntu-24.04-cuda-12.8-open-docker}
    ssh_keys: [my-laptop]
  register: placed  # placed.placement.provider says where it went

- name: Scale down to two (deletes trainer-4 and trainer-3)
  gpucloud.cloud.instance:
    provider: datacrunch
    name: trainer-{index}
    exact_count: 2
    instance_type: 1V100.6V
    image: ubuntu-24.04-cuda-12.8-open-docker
    location: FIN-01

- name: A spot instance (cheaper, may be discontinued) with a 100 GB OS disk, recreated if it was discontinued
  gpucloud.cloud.instance:
    provider: datacrunch
    name: spot-trainer
    instance_type: 1V100.6V
    image: ubuntu-24.04-cuda-12.8-open-docker
    location: FIN-01
    spot: true
    os_disk_size_gb: 100
    on_spot_discontinue: keep_detached
    recreate_discontinued: true
"""

RETURN = r"""
instance:
  description:
    - The instance after the task (predicted in check mode; the deleted instance for O(state=absent)).
  returned: always
  type: dict
  contains:
    id: {description: Provider id., type: str, returned: success}
    provider: {description: Provider name., type: str, returned: success}
    name: {description: Instance name., type: str, returned: success}
    status: {description: "Normalised status: pending, running, stopping, stopped, deleting, deleted, discontinued (a
             spot instance the provider took back), error, unknown.", type: str, returned: success}
    raw_status: {description: The provider's own status word., type: str, returned: success}
    kind: {description: "V(vm) or V(bare_metal).", type: str, returned: success}
    compute_released: {description: "Stopped with its compute released, billed for storage only
                         (O(state=stopped_disassociated)).", type: bool, returned: success}
    instance_type: {description: Machine shape., type: str, returned: success}
    gpu_model: {description: GPU model., type: str, returned: success}
    gpu_count: {description: Number of GPUs., type: int, returned: success}
    location: {description: Location code., type: str, returned: success}
    image: {description: Image., type: str, returned: success}
    public_ip: {description: Public address., type: str, returned: success}
    ssh_host: {description: Where to SSH to (same as public_ip)., type: str, returned: success}
    ssh_port: {description: SSH port., type: int, returned: success}
    ssh_user: {description: SSH user., type: str, returned: success}
    ssh_key_ids: {description: Account SSH key ids on the instance., type: list, elements: str, returned: success}
    volume_ids: {description: Attached volume ids., type: list, elements: str, returned: success}
    tags: {description: Tags., type: dict, returned: success}
    price_per_hour: {description: Price per hour., type: float, returned: success}
    spot: {description: Whether it is a spot instance., type: bool, returned: success}
    created_at: {description: Creation time., type: str, returned: success}
instances:
  description:
    - With O(count) or O(exact_count), the fleet's members after the task, in member order, each with the keys of
      RV(instance). In check mode, members to be created appear with C(id=null) and the predicted status.
  returned: with count or exact_count
  type: list
  elements: dict
created:
  description: Names of the members created (to be created, in check mode).
  returned: with count or exact_count
  type: list
  elements: str
removed:
  description: Names of the members deleted (to be deleted, in check mode), highest number first.
  returned: with count or exact_count
  type: list
  elements: str
updated:
  description: Names of existing members changed in place or replaced to match the options.
  returned: with count or exact_count
  type: list
  elements: str
instances_secrets:
  description:
    - With O(count) or O(exact_count), member name -> the secrets the provider showed once at create, values masked
      (C(********)). Set O(secrets_file) to keep the values.
  returned: when the provider returned secrets for a created member
  type: dict
instance_secrets:
  description:
    - The secrets the provider shows only once, at create (for example C(root_password)), values masked
      (C(********)) so they reach no log or fact cache. Set O(secrets_file) to keep the values; they cannot be read
      again.
  returned: when the provider returned secrets at create
  type: dict
secrets_file:
  description: The O(secrets_file) the one-time secrets of this task were written to.
  returned: when O(secrets_file) is set and the provider returned secrets at create
  type: str
action:
  description: >-
    What was done, V(create), V(update), V(replace), V(delete), V(start), V(stop), V(restart),
    V(stop_disassociated) or V(none).
  returned: always
  type: str
plan:
  description: The reconcile plan (fields to update in place and to replace).
  returned: always
  type: dict
placement:
  description:
    - With O(provider=auto), the choice (with O(count) or O(exact_count), member name -> the choice), the same in
      check mode with the offer that would be tried first.
  returned: with provider=auto
  type: dict
  contains:
    provider: {description: Where the instance is (would be)., type: str, returned: success}
    instance_type: {description: The offer's machine shape., type: str, returned: success}
    location: {description: Its location., type: str, returned: success}
    offer: {description: "The offer chosen: provider, instance_type, location, price_per_hour, gpu_model, gpu_count,
            spot (bought as a spot instance).", type: dict, returned: success}
    price_per_hour: {description: The offer's price (null for an instance kept from an earlier run)., type: float,
                     returned: success}
    attempts: {description: "Failed attempts before it: provider, instance_type, location, error, error_class.",
               type: list, elements: dict, returned: success}
    requirement: {description: The requirement it was placed for (fields given only)., type: dict, returned: success}
    note: {description: "What was decided, in words.", type: str, returned: success}
"""

from typing import ClassVar  # noqa: E402

from ansible_collections.gpucloud.cloud.plugins.module_utils.gpucloud import (  # noqa: E402
    CONNECTION_OPTIONS,
    PROVIDERS,
    GpuCloudModule,
    gpucloud,
    gpucloud_ensure,
    gpucloud_errors,
    instance_result,
)


def gpucloud_placement():
    """gpucloud.placement, imported when a task places by requirement (provider=auto)."""
    from gpucloud import placement

    return placement


def gpucloud_fleet():
    """gpucloud.fleet, imported once gpucloud is known to be installed (define_module checks that)."""
    from gpucloud import fleet

    return fleet


class _AllClouds:
    """Every configured provider's adapter, closed together (provider=auto)."""

    def __init__(self, clouds):
        self.clouds = clouds

    def close(self):
        for cloud in self.clouds.values():
            cloud.close()


class Instance(GpuCloudModule):
    represent = "instance"
    STATES: ClassVar[dict[str, str]] = {
        "present": "present",
        "absent": "absent",
        "started": "power",
        "stopped": "power",
        "restarted": "power",
        "stopped_disassociated": "power",
        "hibernated": "power",
    }

    def validate(self):
        p = self.params
        if p["provider"] == "auto" or p["placement"] is not None:
            return self.validate_auto()
        fleet_option = self.fleet_option()
        if fleet_option:
            if p["state"] != "present":
                self.option_error(fleet_option, "is only valid with state=present (got state={})".format(p["state"]))
            try:
                gpucloud_fleet().validate_pattern(p["name"], p[fleet_option], count_option=fleet_option)
            except gpucloud_errors.ValidationError as exc:
                self.option_error(exc.field or fleet_option, exc.message)
        if p["state"] == "present" and not p["instance_type"] and fleet_option and p[fleet_option] != 0:
            self.option_error("instance_type", f"is required with {fleet_option} (it creates members)")
        self.validate_common()
        return None

    def validate_common(self):
        """Checks of options that mean the same with a provider or with provider=auto."""
        p = self.params
        if p["wait_timeout"] <= 0:
            self.option_error("wait_timeout", "must be a positive number of seconds, got {}".format(p["wait_timeout"]))
        for key, value in (p["tags"] or {}).items():
            if not isinstance(value, str):
                self.option_error("tags", f"value of {key!r} must be a string, got {type(value).__name__}")
        if p["startup_script"] is not None and not p["startup_script"].strip():
            self.option_error("startup_script", "must not be empty")
        if p["os_disk_size_gb"] is not None and p["os_disk_size_gb"] <= 0:
            self.option_error("os_disk_size_gb", "must be a positive number of GB, got {}".format(p["os_disk_size_gb"]))

    def build_spec(self):
        p = self.params
        return self.spec(
            gpucloud.InstanceSpec,
            name=p["name"],
            instance_type=p["instance_type"] or "-",  # "-": not given; present() fills in the existing type
            kind=p["kind"],
            image=p["image"],
            location=p["location"],
            ssh_keys=tuple(p["ssh_keys"] or ()),
            volumes=tuple(p["volumes"] or ()),
            tags=None if p["tags"] is None else dict(p["tags"]),
            purge_tags=p["purge_tags"],
            startup_script=p["startup_script"],
            password=p["password"],
            spot=p["spot"],
            on_spot_discontinue=p["on_spot_discontinue"],
            os_disk_size_gb=p["os_disk_size_gb"],
        )

    def _waits(self):
        return dict(wait=self.params["wait"], wait_timeout=self.params["wait_timeout"])

    def predicted(self, spec):
        """A created instance as check mode shows it: the type as the provider will report it (some spell it
        their own way, e.g. Voltage Park's preset with its resources), so the real run's diff matches."""
        data = dict(
            id=None,
            provider=self.cloud.name,
            name=spec.name,
            status="running" if self.params["wait"] else "pending",
            kind=spec.kind,
            # The provider's own spelling, as the real run reports it (asked only in check mode, where it shows).
            instance_type=(
                self.cloud.canonical_instance_type(spec.instance_type)
                if self.check_mode and spec.instance_type
                else spec.instance_type
            ),
            image=spec.image,
            location=spec.location,
            tags=dict(spec.tags or {}),
            spot=bool(spec.spot),
        )
        return data

    def fleet_option(self):
        """``count`` or ``exact_count`` when the task manages a fleet, else None."""
        return next((o for o in ("count", "exact_count") if self.params[o] is not None), None)

    def present(self):
        if self.fleet_option():
            return self.fleet()
        spec = self.build_spec()
        if not self.params["instance_type"]:
            # Only a create needs the type: an existing instance keeps (and is compared with) its own.
            p = self.params
            existing = gpucloud_ensure.find_instance(self.cloud, name=p["name"], instance_id=p["id"])
            if existing is None or not existing.instance_type:
                self.option_error("instance_type", "is required to create instance {!r}".format(p["name"]))
            spec = spec.model_copy(update={"instance_type": existing.instance_type})
        outcome = self.ensure_and_report(
            gpucloud_ensure.ensure_instance,
            spec,
            shape=instance_result,
            predicted=lambda _: self.predicted(spec),
            wait_for_ssh=self.params["wait_for_ssh"],
            force_replace=self.params["force_replace"],
            instance_id=self.params["id"],
            keep_os_volume=self.params["keep_os_volume"],
            recreate_discontinued=self.params["recreate_discontinued"],
            **self._waits(),
        )
        if outcome.after is not None and str(outcome.after.status) == "discontinued":
            self.module.warn(
                f"instance {spec.name!r} is a spot instance the provider discontinued; set "
                "recreate_discontinued: true to create it again, or state: absent to delete what is left of it"
            )
        if outcome.secrets:
            self.result["instance_secrets"] = self.keep_secrets({spec.name: outcome.secrets})[spec.name]

    def fleet(self):
        p = self.params
        option = self.fleet_option()
        # exact_count=0 deletes the fleet and needs no instance type; the spec still needs one to be built.
        spec = (
            self.build_spec()
            if p["instance_type"]
            else self.spec(gpucloud.InstanceSpec, name=p["name"], instance_type="-")
        )
        outcome = gpucloud_fleet().ensure_fleet(
            self.cloud,
            spec,
            check_mode=self.check_mode,
            wait_for_ssh=p["wait_for_ssh"],
            force_replace=p["force_replace"],
            **{option: p[option]},
            **self._waits(),
        )
        before = sorted(instance_result(m)["name"] for m in outcome.plan.members.values())
        instances = [instance_result(m) for m in outcome.instances]
        if self.check_mode:
            shown = self.predicted(spec) if outcome.created else {}
            instances += [dict(shown, name=name) for name in outcome.created]
            instances.sort(key=lambda m: gpucloud_fleet().index_of(spec.name, m["name"]) or 0)
        done = [
            a
            for a, names in (("create", outcome.created), ("delete", outcome.removed), ("update", outcome.updated))
            if names
        ]
        self.result.update(
            changed=outcome.changed,
            action=done[0] if len(done) == 1 else ("update" if done else "none"),
            instances=instances,
            created=list(outcome.created),
            removed=list(outcome.removed),
            updated=list(outcome.updated),
            plan={},
        )
        if outcome.secrets:
            self.result["instances_secrets"] = self.keep_secrets(outcome.secrets)
        if self.module._diff:
            self.result["diff"] = {
                "before": {"instances": before},
                "after": {"instances": sorted(m["name"] for m in instances)},
            }

    def power(self):
        state = self.params["state"]
        if state == "started" and self.params["instance_type"]:
            # Create it if missing (like hcloud's state=started), then make sure it runs.
            existing = gpucloud_ensure.find_instance(
                self.cloud, name=self.params["name"], instance_id=self.params["id"]
            )
            if existing is None:
                return self.present()
        self.ensure_and_report(
            gpucloud_ensure.ensure_instance_power,
            state,
            shape=instance_result,
            predicted=lambda outcome: self.powered(outcome.before, state),
            name=self.params["name"],
            instance_id=self.params["id"],
            wait_for_ssh=self.params["wait_for_ssh"],
            **self._waits(),
        )

    @staticmethod
    def powered(before, state):
        """What check mode shows for a power change: the instance as it was, in the state asked for."""
        if before is None:
            return None
        stops = state in ("stopped", "stopped_disassociated")
        predicted = dict(instance_result(before), status="stopped" if stops else "running")
        predicted["compute_released"] = state == "stopped_disassociated" or (
            stops and predicted.get("compute_released", False)
        )
        return predicted

    # --- placement (provider=auto): keep this block together -----------------------------------------
    AUTO_REFUSED = ("instance_type", "location", "id", "volumes", "password", "keep_os_volume")

    def validate_auto(self):
        p = self.params
        if p["provider"] != "auto":
            self.option_error("placement", "is only valid with provider=auto")
        if p["placement"] is None and p["state"] != "absent":
            self.option_error("placement", "is required with provider=auto (what the instance must be)")
        for option in self.AUTO_REFUSED:
            if p[option] not in (None, [], False):
                self.option_error(option, "is chosen by placement with provider=auto; remove it")
        for option in CONNECTION_OPTIONS:
            if p.get(option) is not None:
                self.option_error(
                    option,
                    "names one provider's connection; with provider=auto each provider's comes "
                    "from GPUCLOUD_<PROVIDER>_* or the profile file",
                )
        if p["state"] not in ("present", "absent"):
            self.option_error("state", "must be present or absent with provider=auto")
        self.validate_common()
        if self.fleet_option():
            try:
                gpucloud_fleet().validate_pattern(p["name"], p[self.fleet_option()], count_option=self.fleet_option())
            except gpucloud_errors.ValidationError as exc:
                self.option_error(exc.field or self.fleet_option(), exc.message)
        placement = gpucloud_placement()
        try:
            images = (p["placement"] or {}).get("images") or {}
            if not isinstance(images, dict) or not all(isinstance(v, str) for v in images.values()):
                self.option_error("placement.images", "must map provider names to image names")
            wanted = dict((k, v) for k, v in (p["placement"] or {}).items() if k != "images")
            self.requirement = placement.parse(placement.Requirement, wanted, prefix="placement.")
            first = gpucloud_fleet().member_name(p["name"], 1) if self.fleet_option() else p["name"]
            values = dict(
                name=first,
                image=p["image"],
                images=(p["placement"] or {}).get("images") or {},
                ssh_keys=tuple(p["ssh_keys"] or ()),
                tags=p["tags"],
                startup_script=p["startup_script"],
            )
            self.template = placement.parse(placement.Template, values)
        except gpucloud_errors.ValidationError as exc:
            self.option_error(exc.field or "placement", exc.message.split(": ", 1)[-1])
        return None

    def member_names(self):
        return gpucloud_fleet().member_names(self.params["name"], self.params[self.fleet_option()])

    def auto_connect(self):
        self.clouds = gpucloud_placement().connect_configured()
        if not self.clouds:
            self.option_error("provider", "auto needs at least one provider with credentials (GPUCLOUD_<PROVIDER>_*)")
        return _AllClouds(self.clouds)

    def auto_place(self, name):
        result = gpucloud_placement().place(
            self.clouds,
            self.requirement,
            self.template.model_copy(update={"name": name}),
            check_mode=self.check_mode,
            wait_for_ssh=self.params["wait_for_ssh"],
            force_replace=self.params["force_replace"],
            **self._waits(),
        )
        if result.outcome.secrets:
            self.result.setdefault("instances_secrets", {}).update(self.keep_secrets({name: result.outcome.secrets}))
        return result

    def auto_predicted(self, result, name):
        chosen = result.chosen
        return dict(
            id=None,
            provider=result.provider,
            name=name,
            status="running" if self.params["wait"] else "pending",
            instance_type=chosen.offer.instance_type if chosen else None,
            location=chosen.location if chosen else None,
            image=self.template.images.get(result.provider, self.template.image),
        )

    def auto_present(self):
        if not self.fleet_option():
            result = self.auto_place(self.params["name"])
            self.set_outcome(
                result.outcome, shape=instance_result, predicted=self.auto_predicted(result, self.params["name"])
            )
            self.result["placement"] = result.to_dict()
            secrets = self.result.pop("instances_secrets", None)
            if secrets:
                self.result["instance_secrets"] = secrets[self.params["name"]]
            return
        names = self.member_names()
        results = dict((name, self.auto_place(name)) for name in names)
        removed = self.auto_surplus(names) if self.fleet_option() == "exact_count" else []
        instances = [
            instance_result(r.outcome.after)
            if r.outcome.after and not (self.check_mode and r.outcome.changed)
            else self.auto_predicted(r, name)
            for name, r in results.items()
        ]
        created = [n for n, r in results.items() if str(r.outcome.action) == "create"]
        updated = [n for n, r in results.items() if str(r.outcome.action) == "replace"]
        self.result.update(
            changed=bool(created or updated or removed),
            action="create" if created else ("update" if updated else ("delete" if removed else "none")),
            instances=instances,
            created=created,
            removed=removed,
            updated=updated,
            plan={},
            placement=dict((n, r.to_dict()) for n, r in results.items()),
        )

    def auto_surplus(self, names):
        """exact_count: members numbered above the count, wherever they were placed, deleted highest first."""
        fleet = gpucloud_fleet()
        found = []
        for cloud in self.clouds.values():
            for inst in cloud.list_instances():
                index = fleet.index_of(self.params["name"], inst.name)
                if index is not None and inst.name not in names and str(inst.status) != "deleted":
                    found.append((index, cloud, inst))
        found.sort(key=lambda member: -member[0])
        for member in found:
            if not self.check_mode:
                gpucloud_ensure.ensure_instance_absent(member[1], instance_id=member[2].id, **self._waits())
        return [member[2].name for member in found]

    def auto_absent(self):
        names = self.member_names() if self.fleet_option() else [self.params["name"]]
        for name in names:
            current = gpucloud_placement().find_placed(self.clouds, name)
            if current is None:
                continue
            outcome = gpucloud_ensure.ensure_instance_absent(
                self.clouds[current.provider], instance_id=current.id, check_mode=self.check_mode, **self._waits()
            )
            self.set_outcome(outcome, shape=instance_result)
        self.result.setdefault("action", "none")

    def connect(self):
        if self.params["provider"] == "auto":
            self.cloud = self.auto_connect()
            return self.cloud
        return super().connect()

    # --- end of the placement block ----------------------------------------------------------------------

    def absent(self):
        self.ensure_and_report(
            gpucloud_ensure.ensure_instance_absent,
            shape=instance_result,
            name=self.params["name"],
            instance_id=self.params["id"],
            keep_os_volume=self.params["keep_os_volume"],
            **self._waits(),
        )


def main():
    module = Instance.define_module(
        dict(
            name=dict(type="str", required=True),
            count=dict(type="int"),
            exact_count=dict(type="int"),
            id=dict(type="str"),
            instance_type=dict(type="str"),
            kind=dict(type="str", default="vm", choices=["vm", "bare_metal"]),
            image=dict(type="str"),
            location=dict(type="str"),
            ssh_keys=dict(type="list", elements="str", default=[], no_log=False),
            volumes=dict(type="list", elements="str", default=[]),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
            startup_script=dict(type="str", aliases=["cloud_init", "user_data"]),
            password=dict(type="str", no_log=True),
            spot=dict(type="bool"),
            on_spot_discontinue=dict(type="str"),
            os_disk_size_gb=dict(type="int"),
            recreate_discontinued=dict(type="bool", default=False),
            state=dict(
                type="str",
                default="present",
                choices=["present", "absent", "started", "stopped", "restarted", "stopped_disassociated", "hibernated"],
            ),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=600),
            secrets_file=dict(type="path"),
            wait_for_ssh=dict(type="bool", default=False),
            force_replace=dict(type="bool", default=False),
            keep_os_volume=dict(type="bool", default=False),
            # --- placement (provider=auto): keep this block together
            provider=dict(type="str", required=True, choices=[*PROVIDERS, "auto"]),
            # A free-form dict checked by gpucloud.placement.Requirement: its errors name placement.<key> (Ansible's
            # own suboption check does not name the option when the value is not a dict at all).
            placement=dict(type="dict"),
        ),
        supports_check_mode=True,
        mutually_exclusive=[("count", "exact_count"), ("count", "id"), ("exact_count", "id")],
    )
    instance = Instance(module)
    if module.params["provider"] == "auto":
        instance.STATES = dict(present="auto_present", absent="auto_absent")
    instance.run()


if __name__ == "__main__":
    main()

"""The kinds behind Instance, Volume and SshKey: one object each, holding its inputs and how each provider RPC
maps onto the shared core, the code Ansible's modules run (gpucloud.ensure for find/plan/converge, gpucloud.reconcile
for what changes in place). Nothing here decides a rule of its own: unknown inputs are classified by reconcile's
``*_in_place``, a volume's growth by ``reconcile.require_volume_growth``, a volume's attachments by
``ensure.require_volume_attachable``.

The generic provider (_provider.py) does what every kind shares: the Check loop, unknown values, the Diff's
create-only and local inputs, outputs, secrets and error reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

from pulumi.dynamic import CheckFailure

import gpucloud
from gpucloud import ensure, errors, presentation, reconcile
from gpucloud.capabilities import Capability
from gpucloud.models import Instance, InstanceSpec, SshKey, SshKeySpec, Status, Volume, VolumeSpec
from gpucloud.providers import provider_class
from gpucloud.reconcile import Plan
from pulumi_gpucloud._inputs import _BOOL, _INT, _NUM, _STR, Field, is_unknown

# A lazily made adapter: kinds that need no API call for an RPC make no connection.
Cloud = Callable[[], gpucloud.Provider]
Props = Mapping[str, Any]


class Kind:
    """One resource kind: its inputs and the core calls behind each RPC."""

    name: ClassVar[str]
    inputs: ClassVar[Mapping[str, Field]]
    # Outputs that are always secrets, whatever the program marked.
    secret_outputs: ClassVar[tuple[str, ...]] = ()
    # Inputs no API reports back: only their previous value can show a change, and they take effect at create only.
    create_only: ClassVar[tuple[str, ...]] = ()
    # Inputs that steer this provider, not the cloud resource: a change is an update that calls no API.
    local_only: ClassVar[tuple[str, ...]] = ()
    # Outputs an API shows once (at create): later outputs keep the first value.
    shown_once: ClassVar[tuple[str, ...]] = ()
    # Stand-ins for unknown inputs (a preview) that validation needs a value for.
    placeholders: ClassVar[Mapping[str, Any]] = {"name": "placeholder"}

    # --- check ---
    def validate(self, adapter: type[gpucloud.Provider], known: Props, olds: Props, unknown: set[str]) -> None:
        """The adapter's own offline rules (raising as it does at create)."""
        raise NotImplementedError

    def check_more(self, provider: str, inputs: Props, olds: Props, cloud: Cloud, *, valid: bool) -> list[CheckFailure]:
        """Rules beyond the adapter's (``valid``: the adapter found nothing wrong)."""
        return []

    # --- diff ---
    def in_place(self, capabilities: frozenset[Capability]) -> frozenset[str]:
        raise NotImplementedError

    def plan(self, cloud: Cloud, id_: str, olds: Props, news: Props, unknown: set[str]) -> Plan:
        raise NotImplementedError

    def diff_more(self, olds: Props, news: Props) -> list[str]:
        """Inputs changed in place that the plan does not compare."""
        return []

    # --- create / update / read / delete ---
    def find(self, cloud: gpucloud.Provider, name: str) -> Any:
        raise NotImplementedError

    def create(self, cloud: gpucloud.Provider, inputs: Props) -> tuple[str, dict[str, Any]]:
        """The id and what the API reports (``shown_once`` outputs included)."""
        raise NotImplementedError

    def update(self, cloud: gpucloud.Provider, id_: str, inputs: Props) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, cloud: gpucloud.Provider, id_: str) -> dict[str, Any]:
        """What the API reports; empty when it is gone."""
        raise NotImplementedError

    def delete(self, cloud: gpucloud.Provider, id_: str, props: Props) -> None:
        raise NotImplementedError


def _outputs(fields: dict[str, Any]) -> dict[str, Any]:
    """A resource's public fields as outputs: the id and provider are Pulumi's own (the resource id, an input)."""
    return {key: value for key, value in fields.items() if key not in ("id", "provider")}


def _public(model: Any) -> dict[str, Any]:
    return _outputs(presentation.public(model))


def _deleted(outputs: dict[str, Any]) -> dict[str, Any]:
    """Some APIs keep answering for deleted resources: those count as gone."""
    return {} if outputs.get("status") == Status.DELETED.value else outputs


# --- instances ------------------------------------------------------------------------------------------
# power_state input -> the ensure power state; None (not given) leaves power alone.
POWER_STATES: Final[dict[str, ensure.PowerState]] = {
    "running": "started",
    "stopped": "stopped",
    "stopped_disassociated": "stopped_disassociated",
}


def instance_outputs(instance: Instance) -> dict[str, Any]:
    """What the API reports, under the names the Instance resource exposes (the model's JSON form)."""
    return _outputs(presentation.public_instance(instance))


class InstanceKind(Kind):
    name = "instance"
    inputs: ClassVar[Mapping[str, Field]] = {
        "provider": Field(_STR, required=True),
        "name": Field(_STR, required=True),
        "instance_type": Field(_STR, required=True),
        "kind": Field(_STR, default="vm"),
        "image": Field(_STR),
        "location": Field(_STR),
        "ssh_keys": Field(list, item=str),
        "volumes": Field(list, item=str),
        "tags": Field(dict, item=str),
        "startup_script": Field(_STR),
        "password": Field(_STR, secret=True),
        "wait_for_ssh": Field(_BOOL, default=False),
        "wait_timeout": Field(_NUM, default=ensure.DEFAULT_TIMEOUT),
        "adopt": Field(_BOOL),
        "keep_os_volume": Field(_BOOL, default=False),
        "power_state": Field(_STR),
        "spot": Field(_BOOL),
        "on_spot_discontinue": Field(_STR),
        "os_disk_size_gb": Field(_INT),
        "recreate_discontinued": Field(_BOOL, default=False),
    }
    secret_outputs = ("password", "root_password")
    # spot is also reported back (and compared by the plan); here so that removing spot=True replaces too.
    create_only = ("startup_script", "password", "volumes", "spot", "on_spot_discontinue", "os_disk_size_gb")
    local_only = ("wait_for_ssh", "wait_timeout", "keep_os_volume", "recreate_discontinued")
    shown_once = ("root_password",)
    placeholders: ClassVar[Mapping[str, Any]] = {"name": "placeholder", "instance_type": "placeholder"}

    @staticmethod
    def spec(props: Props) -> InstanceSpec:
        return InstanceSpec(
            name=props["name"],
            instance_type=props["instance_type"],
            kind=props.get("kind") or "vm",
            image=props.get("image"),
            location=props.get("location"),
            ssh_keys=tuple(props.get("ssh_keys") or ()),
            volumes=tuple(props.get("volumes") or ()),
            tags=None if props.get("tags") is None else dict(props["tags"]),  # omitted: tags are not managed
            startup_script=props.get("startup_script"),
            password=props.get("password"),
            spot=props.get("spot"),
            on_spot_discontinue=props.get("on_spot_discontinue"),
            os_disk_size_gb=props.get("os_disk_size_gb"),
        )

    @staticmethod
    def from_state(id_: str, provider: str, olds: Props) -> Instance:
        return Instance(
            id=id_,
            provider=provider,
            name=olds["name"],
            status=Status(olds.get("status") or "unknown"),
            raw_status=olds.get("raw_status") or "",
            kind=olds.get("kind") or "vm",
            compute_released=bool(olds.get("compute_released")),
            instance_type=olds.get("instance_type"),
            location=olds.get("location"),
            image=olds.get("image"),
            ssh_key_ids=tuple(olds.get("ssh_key_ids") or ()),
            tags=dict(olds.get("tags") or {}),
            spot=bool(olds.get("spot")),
        )

    def validate(self, adapter: type[gpucloud.Provider], known: Props, olds: Props, unknown: set[str]) -> None:
        adapter.validate_instance_spec(self.spec(known))
        adapter.validate_delete_options(keep_os_volume=bool(known.get("keep_os_volume")))

    def check_more(self, provider: str, inputs: Props, olds: Props, cloud: Cloud, *, valid: bool) -> list[CheckFailure]:
        failure = _power_state_failure(provider, inputs)
        return [failure] if failure else []

    def in_place(self, capabilities: frozenset[Capability]) -> frozenset[str]:
        # power_state: ensure_instance_power, in place on any provider that has it (Check refuses it elsewhere).
        return reconcile.instance_in_place(capabilities) | {"power_state"}

    def plan(self, cloud: Cloud, id_: str, olds: Props, news: Props, unknown: set[str]) -> Plan:
        # A diff plans; what it names may be created earlier in the same update (predicted, not refused).
        return ensure.plan_for_instance(
            cloud(),
            self.spec(news),
            self.from_state(id_, news["provider"], olds),
            predict=True,
            recreate_discontinued=bool(news.get("recreate_discontinued")),
        )

    def diff_more(self, olds: Props, news: Props) -> list[str]:
        wanted = news.get("power_state")
        return ["power_state"] if is_unknown(wanted) or not _power_matches(olds, wanted) else []

    def find(self, cloud: gpucloud.Provider, name: str) -> Any:
        return cloud.find_instance(name)

    def create(self, cloud: gpucloud.Provider, inputs: Props) -> tuple[str, dict[str, Any]]:
        outcome = ensure.ensure_instance(
            cloud,
            self.spec(inputs),
            wait=True,
            wait_for_ssh=bool(inputs.get("wait_for_ssh")),
            wait_timeout=_timeout(inputs),
            recreate_discontinued=bool(inputs.get("recreate_discontinued")),
        )
        assert outcome.after is not None
        live = instance_outputs(_apply_power(cloud, outcome.after, inputs))
        live["root_password"] = outcome.secrets.get("root_password") or outcome.secrets.get("password")
        return outcome.after.id, live

    def update(self, cloud: gpucloud.Provider, id_: str, inputs: Props) -> dict[str, Any]:
        outcome = ensure.ensure_instance(
            cloud,
            self.spec(inputs),
            instance_id=id_,
            wait=True,
            wait_for_ssh=bool(inputs.get("wait_for_ssh")),
            wait_timeout=_timeout(inputs),
        )
        assert outcome.after is not None
        return instance_outputs(_apply_power(cloud, outcome.after, inputs))

    def read(self, cloud: gpucloud.Provider, id_: str) -> dict[str, Any]:
        try:
            return _deleted(instance_outputs(cloud.get_instance(id_)))
        except errors.NotFound:
            return {}

    def delete(self, cloud: gpucloud.Provider, id_: str, props: Props) -> None:
        ensure.ensure_instance_absent(
            cloud,
            instance_id=id_,
            wait=True,
            wait_timeout=_timeout(props),
            keep_os_volume=bool(props.get("keep_os_volume")),
        )


def _timeout(props: Props) -> float:
    return float(props.get("wait_timeout") or ensure.DEFAULT_TIMEOUT)


def _apply_power(cloud: gpucloud.Provider, instance: Instance, inputs: Props) -> Instance:
    """Bring the instance to its ``power_state`` (if given) once it exists and matches the other inputs."""
    wanted = inputs.get("power_state")
    if wanted is None:
        return instance
    outcome = ensure.ensure_instance_power(
        cloud,
        POWER_STATES[wanted],
        instance_id=instance.id,
        wait=True,
        wait_for_ssh=bool(inputs.get("wait_for_ssh")) and wanted == "running",
        wait_timeout=_timeout(inputs),
    )
    return outcome.after or instance


def _power_state_failure(provider: str, props: Props) -> CheckFailure | None:
    """``power_state`` must be one of :data:`POWER_STATES` that this provider and this kind of instance have."""
    wanted = props.get("power_state")
    if wanted is None or is_unknown(wanted):
        return None
    if wanted not in POWER_STATES:
        return CheckFailure("power_state", f"power_state {wanted!r}: choose one of {', '.join(POWER_STATES)}")
    capabilities = provider_class(provider).capabilities
    stand_in = Instance(
        id="-", provider=provider, name="-", status=Status.RUNNING, raw_status="", kind=props.get("kind") or "vm"
    )
    if wanted != "running" and Capability.INSTANCE_START_STOP not in capabilities:
        return CheckFailure("power_state", f"power_state: {provider} instances cannot be stopped; remove it")
    if wanted == "stopped_disassociated" and Capability.INSTANCE_STOP_RELEASED not in capabilities:
        refusal = errors.Unsupported(provider, Capability.INSTANCE_STOP_RELEASED.value, "use stopped")
        return CheckFailure("power_state", f"power_state: {refusal}")
    if wanted == "stopped_disassociated" and not provider_class(provider).can_release(stand_in):
        return CheckFailure(
            "power_state",
            f"power_state: {provider} {stand_in.kind} instances cannot be stopped with their compute released; "
            "use stopped",
        )
    return None


def _power_matches(state: Props, wanted: str | None) -> bool:
    """Whether the instance's last known outputs already show the ``power_state`` asked for."""
    if wanted is None:
        return True
    status, released = state.get("status"), bool(state.get("compute_released"))
    if wanted == "running":
        return status in (Status.RUNNING.value, Status.PENDING.value)
    return status == Status.STOPPED.value and (released or wanted == "stopped")


# --- volumes --------------------------------------------------------------------------------------------
# How a Pulumi program stops the instance a volume attaches to (the Ansible wording is ``state: stopped``).
_ATTACH_FIX: Final = "power_state: stopped on that Instance"


class VolumeKind(Kind):
    name = "volume"
    inputs: ClassVar[Mapping[str, Field]] = {
        "provider": Field(_STR, required=True),
        "name": Field(_STR, required=True),
        "size_gb": Field(_INT, required=True),
        "volume_type": Field(_STR),
        "location": Field(_STR),
        "attach_to": Field(_STR),
        "adopt": Field(_BOOL),
    }
    placeholders: ClassVar[Mapping[str, Any]] = {"name": "placeholder", "size_gb": 1}

    @staticmethod
    def spec(props: Props) -> VolumeSpec:
        return VolumeSpec(
            name=props["name"],
            size_gb=int(props["size_gb"]),
            volume_type=props.get("volume_type"),
            location=props.get("location"),
            attach_to=props.get("attach_to"),
        )

    @staticmethod
    def from_state(id_: str, provider: str, olds: Props) -> Volume:
        return Volume(
            id=id_,
            provider=provider,
            name=olds["name"],
            size_gb=int(olds["size_gb"]),
            status=olds.get("status") or "unknown",
            volume_type=olds.get("volume_type"),
            location=olds.get("location"),
            attached_to=tuple(olds.get("attached_to") or ()),
        )

    def validate(self, adapter: type[gpucloud.Provider], known: Props, olds: Props, unknown: set[str]) -> None:
        adapter.validate_volume_spec(self.spec(known))
        old_size = olds.get("size_gb")
        if "size_gb" not in unknown and isinstance(old_size, int | float):
            reconcile.require_volume_growth(int(old_size), int(known["size_gb"]))

    def check_more(self, provider: str, inputs: Props, olds: Props, cloud: Cloud, *, valid: bool) -> list[CheckFailure]:
        """A create (or adoption) attaching to an instance in a state the API refuses: refused now, as ``up``
        refuses it. Only where the provider restricts attaching (DataCrunch: stopped instances) and every input is
        known: an instance created in the same program is unknown here, and that refusal waits for ``up``. An
        update is judged by Diff."""
        if not valid or olds or provider_class(provider).volume_attach_statuses is None:
            return []
        if not inputs.get("attach_to") or any(is_unknown(v) for v in inputs.values()):
            return []
        adapter, spec = cloud(), self.spec(inputs)
        refusal = _attach_refusal(adapter, spec, adapter.find_volume(spec.name))  # what a create finds (adopts)
        return [CheckFailure("attach_to", refusal)] if refusal else []

    def in_place(self, capabilities: frozenset[Capability]) -> frozenset[str]:
        return reconcile.volume_in_place(capabilities)

    def plan(self, cloud: Cloud, id_: str, olds: Props, news: Props, unknown: set[str]) -> Plan:
        adapter, spec = cloud(), self.spec(news)
        if "attach_to" not in unknown and adapter.volume_attach_statuses is not None:
            # The state's attached_to may be stale (an instance deleted since): the rule judges the live volume.
            refusal = _attach_refusal(adapter, spec, ensure.find_volume(adapter, volume_id=id_))
            if refusal:
                raise errors.Conflict(refusal, provider=adapter.name, code="instance_state")
        return ensure.plan_for_volume(adapter, spec, self.from_state(id_, news["provider"], olds), predict=True)[0]

    def find(self, cloud: gpucloud.Provider, name: str) -> Any:
        return cloud.find_volume(name)

    def create(self, cloud: gpucloud.Provider, inputs: Props) -> tuple[str, dict[str, Any]]:
        volume = ensure.ensure_volume(cloud, self.spec(inputs)).after
        assert volume is not None
        return volume.id, _public(volume)

    def update(self, cloud: gpucloud.Provider, id_: str, inputs: Props) -> dict[str, Any]:
        volume = ensure.ensure_volume(cloud, self.spec(inputs), volume_id=id_).after
        assert volume is not None
        return _public(volume)

    def read(self, cloud: gpucloud.Provider, id_: str) -> dict[str, Any]:
        volume = ensure.find_volume(cloud, volume_id=id_)  # None: gone
        return {} if volume is None else _deleted(_public(volume))

    def delete(self, cloud: gpucloud.Provider, id_: str, props: Props) -> None:
        if self.read(cloud, id_):  # gone already, e.g. deleted along with its instance
            ensure.ensure_volume_absent(cloud, volume_id=id_)


def _attach_refusal(cloud: gpucloud.Provider, spec: VolumeSpec, current: Volume | None) -> str | None:
    """Why the provider would refuse the attaches and detaches that ``up`` makes for ``spec`` (ensure's own plan
    and rule, against ``current``: the volume as the API reports it now), naming the property and the fix; None
    when it would not."""
    plan, attach_id = ensure.plan_for_volume(cloud, spec, current, predict=True)
    try:
        ensure.require_volume_attachable(cloud, spec.name, plan, current, attach_id, fix=_ATTACH_FIX)
    except errors.Conflict as exc:
        return f"attach_to: {exc.message}"
    return None


# --- ssh keys -------------------------------------------------------------------------------------------
class SshKeyKind(Kind):
    name = "ssh_key"
    inputs: ClassVar[Mapping[str, Field]] = {
        "provider": Field(_STR, required=True),
        "name": Field(_STR, required=True),
        "public_key": Field(_STR, required=True),
        "adopt": Field(_BOOL),
    }

    @staticmethod
    def spec(props: Props) -> SshKeySpec:
        return SshKeySpec(name=props["name"], public_key=props["public_key"])

    def validate(self, adapter: type[gpucloud.Provider], known: Props, olds: Props, unknown: set[str]) -> None:
        if "public_key" not in unknown:  # nothing to validate a key by until its text is known
            adapter.validate_ssh_key_spec(self.spec(known))

    def in_place(self, capabilities: frozenset[Capability]) -> frozenset[str]:
        return reconcile.ssh_key_in_place(capabilities)

    def plan(self, cloud: Cloud, id_: str, olds: Props, news: Props, unknown: set[str]) -> Plan:
        current = SshKey(id=id_, provider=news["provider"], name=olds["name"], public_key=olds["public_key"])
        return reconcile.plan_ssh_key(self.spec(news), current)  # no API call: keys are compared as stored

    def find(self, cloud: gpucloud.Provider, name: str) -> Any:
        return cloud.find_ssh_key(name)

    def create(self, cloud: gpucloud.Provider, inputs: Props) -> tuple[str, dict[str, Any]]:
        key = ensure.ensure_ssh_key(cloud, self.spec(inputs)).after
        assert key is not None
        return key.id, _public(key)

    def update(self, cloud: gpucloud.Provider, id_: str, inputs: Props) -> dict[str, Any]:
        return self.create(cloud, inputs)[1]

    def read(self, cloud: gpucloud.Provider, id_: str) -> dict[str, Any]:
        try:
            return _public(cloud.get_ssh_key(id_))
        except errors.NotFound:
            return {}

    def delete(self, cloud: gpucloud.Provider, id_: str, props: Props) -> None:
        ensure.ensure_ssh_key_absent(cloud, key_id=id_)


KINDS: Final[dict[str, Kind]] = {kind.name: kind for kind in (InstanceKind(), VolumeKind(), SshKeyKind())}

"""Desired state in, one outcome out: the operations both front-ends run.

Ansible's ``state=present|absent|started|stopped|restarted`` and Pulumi's create/update/delete call these, so
finding by name, planning, check mode, replacing, waiting and adopting behave the same from either tool.
Each function returns an :class:`Outcome` with what was there before, what is there after (predicted in
check mode) and the plan; nothing is sent to the provider in check mode except reads.

Under faults: a named resource is looked up and created under a per-name lock (:mod:`gpucloud.namelock`), so two
runs at once make one resource; a create whose answer was lost is adopted by name, and sent again only when
nothing arrived under the name (:func:`gpucloud.engine.create_adopting`); power actions that fail transiently
are checked against the instance's state before they are sent again; every instance operation, retries
included, ends within its ``wait_timeout``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from gpucloud import errors, namelock, presentation, waiters
from gpucloud.capabilities import Capability
from gpucloud.catalogue import validate_instance_catalogue, validate_volume_catalogue
from gpucloud.engine import CREATE_ATTEMPTS, unique_by_name
from gpucloud.models import (
    CreatedInstance,
    Instance,
    InstanceKind,
    InstanceSpec,
    SshKey,
    SshKeySpec,
    Status,
    Volume,
    VolumeSpec,
)
from gpucloud.providers.base import Provider
from gpucloud.reconcile import Action, Change, Plan, plan_instance, plan_ssh_key, plan_volume
from gpucloud.transport import is_transient

R = TypeVar("R", bound=BaseModel)
# "stopped_disassociated": stopped with the compute released, billed for storage only (Voltage Park VMs).
PowerState = Literal["started", "stopped", "restarted", "stopped_disassociated"]
PowerAction = Literal["start", "stop", "restart", "stop_disassociated"]
DEFAULT_TIMEOUT = 600.0
# How long a volume or key create waits for another run creating the same name (instances use wait_timeout).
LOCK_TIMEOUT = 120.0
# Sends of one power action that failed transiently; every further attempt first checks whether the earlier one
# took effect (creates: engine.CREATE_ATTEMPTS, looked up by name in between).
ACTION_ATTEMPTS = 4
_POWER_ACTIONS: dict[PowerState, PowerAction] = {
    "started": "start",
    "stopped": "stop",
    "restarted": "restart",
    "stopped_disassociated": "stop_disassociated",
}


@dataclass(frozen=True)
class Outcome(Generic[R]):
    changed: bool
    action: Action | Literal["delete", "detach+delete"] | PowerAction
    before: R | None
    after: R | None
    plan: Plan = field(default_factory=lambda: Plan(Action.NONE))
    # Shown once by some providers (e.g. a root password); callers must treat them as secrets.
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    def diff(self) -> dict[str, dict[str, Any]]:
        """Before/after as plain dicts, without provider payloads (Ansible's diff mode)."""
        return {"before": _public(self.before), "after": _public(self.after)}


def time_limit(cloud: Provider, seconds: float) -> contextlib.AbstractContextManager[None]:
    """Every request in the block (retries included) ends within ``seconds``. The limit belongs to this thread's
    context only: operations running at once on other threads against the same adapter keep their own."""
    transport = getattr(cloud, "transport", None)
    return transport.deadline(seconds) if transport is not None else contextlib.nullcontext()


def _remaining(cloud: Provider, timeout: float) -> float:
    """What is left of ``timeout`` under the operation's time limit, if one is running."""
    transport = getattr(cloud, "transport", None)
    left = transport.time_left() if transport is not None else None
    return timeout if left is None else max(min(timeout, left), 0.0)


def _creating(cloud: Provider, kind: str, name: str, *, enabled: bool, timeout: float) -> Any:
    """The per-name lock around find-then-create (nothing to lock in check mode: nothing is created)."""
    if not enabled:
        return contextlib.nullcontext()
    return namelock.name_lock(
        namelock.canonical_scope(cloud.name, str(cloud.config.base_url)), kind, name, timeout=timeout
    )


_TO_BE_CREATED = "(to be created: "


def to_be_created(ref: str) -> str:
    """How a plan names a resource that does not exist yet and is taken to be created earlier in the same run."""
    return f"{_TO_BE_CREATED}{ref})"


def _public(resource: BaseModel | None) -> dict[str, Any]:
    return {} if resource is None else presentation.public(resource)


def _unchanged(current: R, plan: Plan | None = None) -> Outcome[R]:
    return Outcome(False, Action.NONE, current, current, plan or Plan(Action.NONE))


def _replace_refused(kind: str, plan: Plan, provider: str) -> errors.Conflict:
    fields = ", ".join(f"{c.field} ({c.current!r} -> {c.desired!r})" for c in plan.replacements)
    return errors.Conflict(
        f"{kind} must be replaced to change {fields}; set force_replace to allow deleting and recreating it",
        provider=provider,
        code="replace_required",
        details={"fields": plan.replace_fields},
    )


def _converge(
    kind: str,
    cloud: Provider,
    current: R | None,
    plan: Plan,
    *,
    check_mode: bool,
    force_replace: bool,
    update: Callable[[R], R],
    delete: Callable[[R], None],
    create: Callable[[], tuple[R, Mapping[str, str]]],
) -> Outcome[R]:
    """Carry out a plan the same way for every resource kind: no-op, in-place update, create or replace."""
    if plan.action is Action.NONE and current is not None:
        return _unchanged(current, plan)
    if plan.action is Action.REPLACE and not force_replace:
        raise _replace_refused(kind, plan, cloud.name)
    if check_mode:
        return Outcome(True, plan.action, current, current if plan.action is Action.UPDATE else None, plan)
    if plan.action is Action.UPDATE and current is not None:
        return Outcome(True, plan.action, current, update(current), plan)
    if plan.action is Action.REPLACE and current is not None:
        delete(current)
    created, secrets = create()
    return Outcome(True, plan.action, current, created, plan, secrets)


def select(
    get: Callable[[str], R],
    find: Callable[[str], R | None],
    list_all: Callable[[], list[R]],
    *,
    name: str | None = None,
    resource_id: str | None = None,
) -> list[R]:
    """One resource by id, one by name, or all of them: the lookup every ``*_info`` query makes."""
    if resource_id:
        try:
            return [get(resource_id)]
        except errors.NotFound:
            return []
    if name:
        found = find(name)
        return [found] if found is not None else []
    return list_all()


# --- instances --------------------------------------------------------------------------------------
def find_instance(
    cloud: Provider, *, name: str | None = None, instance_id: str | None = None, kind: InstanceKind | None = None
) -> Instance | None:
    """By id, else by name; ``kind`` (the spec's, when there is one) lets a provider look in that kind's list first."""
    if instance_id:
        try:
            return cloud.get_instance(instance_id)
        except errors.NotFound:
            return None
    if not name:
        raise errors.ValidationError("name or id is required to find an instance", field="name")
    return cloud.find_instance(name, kind=kind)


def plan_for_instance(
    cloud: Provider,
    spec: InstanceSpec,
    current: Instance | None,
    *,
    predict: bool = False,
    recreate_discontinued: bool = False,
) -> Plan:
    """Reconcile with the spec translated into the provider's own spelling of types and key ids.

    ``predict`` (check mode, previews): a volume that does not exist yet is taken to be created earlier in
    the same run, so the plan says it will be attached instead of failing. ``recreate_discontinued``: a spot
    instance the provider discontinued is to be replaced (otherwise it is reported as it is).
    """
    if current is None:
        return Plan(Action.CREATE)
    key_ids: list[str] | None = None
    if spec.ssh_keys and cloud.supports(Capability.SSH_KEYS):
        key_ids, _ = cloud.resolve_ssh_keys(spec.ssh_keys)
    desired_type = spec.instance_type
    # A type that names the instance's own (as the provider reports it, or a spelling the adapter can match
    # locally) needs no catalogue lookup (an API call on some providers): the common no-op run stays one list.
    if cloud.names_instance_type(desired_type, current):
        desired_type = current.instance_type or desired_type
    else:
        desired_type = cloud.canonical_instance_type(desired_type)
    return plan_instance(
        spec,
        current,
        cloud.capabilities,
        desired_instance_type=desired_type,
        desired_ssh_key_ids=key_ids,
        volume_attachments=_volume_attachments(cloud, spec, current, predict=predict),
        current_os_disk_gb=os_disk_to_compare(cloud, spec, current),
        recreate_discontinued=recreate_discontinued,
    )


def os_disk_to_compare(cloud: Provider, spec: InstanceSpec, current: Instance) -> int | None:
    """The OS disk size of ``current`` to compare with the spec's. One more read, only where the spec asks for a
    size: the common no-op run stays one list call."""
    return cloud.os_disk_size_gb(current) if spec.os_disk_size_gb is not None else None


def _volume_attachments(
    cloud: Provider, spec: InstanceSpec, current: Instance, *, predict: bool
) -> tuple[list[str], list[str]] | None:
    """(ids of the spec's volumes attached to ``current``, ids of all of them) where volumes attach in place."""
    if not spec.volumes or not cloud.supports(Capability.VOLUME_ATTACH):
        return None
    volumes = cloud.list_volumes()
    attached: list[str] = []
    wanted: list[str] = []
    for index, ref in enumerate(spec.volumes):
        found = next((v for v in volumes if v.id == ref), None) or unique_by_name(volumes, ref, "volume", cloud.name)
        if found is None and not predict:
            raise errors.ValidationError(
                f"volumes[{index}]: no {cloud.name} volume with name or id {ref!r}",
                field="volumes",
                provider=cloud.name,
            )
        wanted.append(found.id if found else to_be_created(ref))
        if found is not None and current.id in found.attached_to:
            attached.append(found.id)
    return attached, wanted


def _require_volumes_free(cloud: Provider, spec: InstanceSpec, current: Instance | None) -> None:
    """An instance's ``volumes`` attached to another instance cannot be attached to this one (APIs refuse it):
    said before any write, in check mode too. Volumes not created yet are free."""
    if not spec.volumes or not cloud.supports(Capability.VOLUMES):
        return
    volumes = cloud.list_volumes()
    own = current.id if current is not None else None
    for index, ref in enumerate(spec.volumes):
        found = next((v for v in volumes if v.id == ref), None) or unique_by_name(volumes, ref, "volume", cloud.name)
        others = [i for i in (found.attached_to if found else ()) if i != own]
        if others:
            raise errors.Conflict(
                f"volumes[{index}]: {cloud.name} volume {ref!r} is attached to instance {others[0]}; "
                "detach it first (its volume task without attach_to, or delete that instance)",
                provider=cloud.name,
                code="volume_attached",
                details={"field": "volumes", "volume": ref, "instance": others[0]},
            )


def wait_until_ready(
    cloud: Provider, instance: Instance, *, timeout: float = DEFAULT_TIMEOUT, wait_for_ssh: bool = False
) -> Instance:
    running = cloud.wait_for_instance(instance.id, [Status.RUNNING], timeout=timeout)
    if wait_for_ssh:
        cloud.wait_for_ssh(running, timeout=timeout)
    return running


def _create(cloud: Provider, spec: InstanceSpec) -> CreatedInstance:
    return cloud.create_instance(spec, attempts=CREATE_ATTEMPTS)


def apply_instance_updates(cloud: Provider, current: Instance, plan: Plan) -> Instance:
    """Carry out the in-place part of a plan (resize, attach volumes, rename, tags)."""
    changes: dict[str, Change] = {c.field: c for c in plan.updates}
    if not changes:
        return current
    unknown = set(changes) - {"name", "tags", "volumes", "instance_type"}
    if unknown:
        raise errors.GpuCloudError(f"no in-place update for {sorted(unknown)}", provider=cloud.name)
    resize = changes.pop("instance_type", None)
    if resize is not None:
        _resize(cloud, current, str(resize.desired))
    volumes = changes.pop("volumes", None)
    if volumes is not None:
        for volume_id in sorted(set(volumes.desired) - set(volumes.current)):
            cloud.attach_volume(volume_id, current.id)
    if not changes:
        return cloud.get_instance(current.id)
    return cloud.update_instance(
        current.id,
        name=changes["name"].desired if "name" in changes else None,
        tags=changes["tags"].desired if "tags" in changes else None,
    )


def _resize(cloud: Provider, current: Instance, instance_type: str) -> None:
    """Resize in place and wait until the instance reports the new type and has settled (APIs resize async)."""
    cloud.resize_instance(current.id, instance_type)
    waiters.poll(
        lambda: cloud.get_instance(current.id),
        done=lambda inst: inst.instance_type == instance_type and inst.status is not Status.PENDING,
        failed=lambda inst: inst.status in cloud.terminal_statuses,
        describe=lambda inst: f"{inst.instance_type}, {inst.status.value} ({inst.raw_status})",
        timeout=_remaining(cloud, DEFAULT_TIMEOUT),
        interval=cloud.config.poll_interval,
        what=f"{cloud.name} instance {current.id} to be resized to {instance_type}",
        transient=is_transient,
    )


def ensure_instance(
    cloud: Provider,
    spec: InstanceSpec,
    *,
    check_mode: bool = False,
    wait: bool = True,
    wait_timeout: float = DEFAULT_TIMEOUT,
    wait_for_ssh: bool = False,
    force_replace: bool = False,
    instance_id: str | None = None,
    keep_os_volume: bool = False,
    recreate_discontinued: bool = False,
) -> Outcome[Instance]:
    """Make an instance named ``spec.name`` (or with ``instance_id``) match ``spec``, all within ``wait_timeout``.

    A replaced instance goes with what was made for it; ``keep_os_volume`` keeps its OS volume (where separate).
    A spot instance the provider discontinued is left as it is (its status says so) unless
    ``recreate_discontinued``: then its remains are deleted and it is created again (no force_replace needed:
    nothing runs there any more).

    The name lock covers the lookup and the create call, not the boot: a concurrent run for the same name
    waits for the create, then finds the new instance and waits for it to boot instead of creating another.
    """
    cloud.validate_instance_spec(spec)
    cloud.validate_delete_options(keep_os_volume=keep_os_volume)
    started = time.monotonic()

    def left() -> float:
        return max(wait_timeout - (time.monotonic() - started), 0.0)

    def create() -> tuple[Instance, Mapping[str, str]]:
        made = _create(cloud, spec)
        return made.instance, made.secrets

    with time_limit(cloud, wait_timeout):
        with _creating(cloud, "instance", spec.name, enabled=not check_mode, timeout=wait_timeout):
            current = find_instance(cloud, name=spec.name, instance_id=instance_id, kind=spec.kind)
            plan = plan_for_instance(
                cloud, spec, current, predict=check_mode, recreate_discontinued=recreate_discontinued
            )
            discontinued = current is not None and current.status is Status.DISCONTINUED
            if plan.action in (Action.CREATE, Action.REPLACE) or "instance_type" in plan.update_fields:
                validate_instance_catalogue(cloud, spec)  # catalogue reads only: a bad name never reaches the API
            if plan.action in (Action.CREATE, Action.REPLACE) or "volumes" in plan.update_fields:
                _require_volumes_free(cloud, spec, current)
            if current is not None and "volumes" in plan.update_fields and plan.action is Action.UPDATE:
                require_attachable(cloud, ", ".join(spec.volumes), [current.id], "attach")
            outcome = _converge(
                "instance",
                cloud,
                current,
                plan,
                check_mode=check_mode,
                force_replace=force_replace or (recreate_discontinued and discontinued),
                update=lambda have: apply_instance_updates(cloud, have, plan),
                delete=lambda have: _delete_instance(
                    cloud, have.id, wait=True, timeout=left(), keep_os_volume=keep_os_volume
                ),
                create=create,
            )
        if not wait or check_mode or outcome.after is None:
            return outcome
        if outcome.action in (Action.CREATE, Action.REPLACE):
            ready = wait_until_ready(cloud, outcome.after, timeout=left(), wait_for_ssh=wait_for_ssh)
            return dataclasses.replace(outcome, after=ready)
        if plan.action is Action.NONE and outcome.after.status is Status.PENDING:
            # An earlier run created it but stopped waiting (or was killed): finish the wait this run promises.
            ready = wait_until_ready(cloud, outcome.after, timeout=left(), wait_for_ssh=wait_for_ssh)
            return _unchanged(ready, plan)
        return outcome


def _delete_instance(
    cloud: Provider, instance_id: str, *, wait: bool, timeout: float, keep_os_volume: bool = False
) -> None:
    cloud.delete_instance(instance_id, keep_os_volume=keep_os_volume)
    if wait:
        cloud.wait_for_instance_gone(instance_id, timeout=_remaining(cloud, timeout))


def ensure_instance_absent(
    cloud: Provider,
    *,
    name: str | None = None,
    instance_id: str | None = None,
    check_mode: bool = False,
    wait: bool = True,
    wait_timeout: float = DEFAULT_TIMEOUT,
    keep_os_volume: bool = False,
) -> Outcome[Instance]:
    """Delete the instance with what was made for it (see :meth:`Provider.delete_instance`)."""
    cloud.validate_delete_options(keep_os_volume=keep_os_volume)
    with time_limit(cloud, wait_timeout):
        current = find_instance(cloud, name=name, instance_id=instance_id)
        if current is None or current.status is Status.DELETED:
            return Outcome(False, Action.NONE, current, None)
        if not check_mode:
            _delete_instance(cloud, current.id, wait=wait, timeout=wait_timeout, keep_os_volume=keep_os_volume)
    return Outcome(True, "delete", current, None)


def ensure_instance_power(
    cloud: Provider,
    state: PowerState | Literal["hibernated"],
    *,
    name: str | None = None,
    instance_id: str | None = None,
    check_mode: bool = False,
    wait: bool = True,
    wait_timeout: float = DEFAULT_TIMEOUT,
    wait_for_ssh: bool = False,
) -> Outcome[Instance]:
    """Start, stop or restart an existing instance. A provider without a reboot call is stopped then started."""
    if state == "hibernated":
        # Documented by no provider's captured API docs (see docs/providers/datacrunch.md): always refused.
        cloud.require(Capability.INSTANCE_HIBERNATE, "use state=stopped")
        raise errors.Unsupported(cloud.name, Capability.INSTANCE_HIBERNATE.value, "use state=stopped")
    cloud.require(Capability.INSTANCE_START_STOP)
    if state == "stopped_disassociated":
        cloud.require(
            Capability.INSTANCE_STOP_RELEASED, "use state: stopped (the machine stays reserved and billed as running)"
        )
    with time_limit(cloud, wait_timeout):
        return _ensure_power(cloud, state, name, instance_id, check_mode, wait, wait_timeout, wait_for_ssh)


def _ensure_power(
    cloud: Provider,
    state: PowerState,
    name: str | None,
    instance_id: str | None,
    check_mode: bool,
    wait: bool,
    wait_timeout: float,
    wait_for_ssh: bool,
) -> Outcome[Instance]:
    current = find_instance(cloud, name=name, instance_id=instance_id)
    if current is None:
        raise errors.NotFound(
            f"no {cloud.name} instance {instance_id or name!r} to {_POWER_ACTIONS[state].replace('_', ' ')}",
            provider=cloud.name,
        )
    if current.status is Status.DISCONTINUED:
        raise errors.Conflict(
            f"{cloud.name} discontinued spot instance {current.name!r} ({current.id}); it cannot be powered on "
            "again: recreate it with state=present and recreate_discontinued=true, or delete it with state=absent",
            provider=cloud.name,
            code="discontinued",
        )
    if state == "started" and current.status in (Status.RUNNING, Status.PENDING):
        return _unchanged(current)
    if state == "stopped" and current.status in (Status.STOPPED, Status.STOPPING):
        return _unchanged(current)
    if state == "stopped_disassociated" and not cloud.can_release(current):
        raise errors.Unsupported(
            cloud.name, f"state stopped_disassociated for {current.kind} instances", "use state: stopped"
        )
    if state == "stopped_disassociated" and current.status is Status.STOPPED and current.compute_released:
        return _unchanged(current)
    action = _POWER_ACTIONS[state]
    if check_mode:
        return Outcome(True, action, current, None)
    after = _power(cloud, current, state, wait=wait, timeout=wait_timeout, wait_for_ssh=wait_for_ssh)
    return Outcome(True, action, current, after)


def _power(
    cloud: Provider, current: Instance, state: PowerState, *, wait: bool, timeout: float, wait_for_ssh: bool
) -> Instance:
    if state == "stopped_disassociated":
        _act(cloud, cloud.stop_instance_released, current.id, lambda inst: inst.compute_released)
        if not wait:
            return current
        return cloud.wait_for_instance(current.id, [Status.STOPPED], timeout=_remaining(cloud, timeout))
    if state == "stopped":
        _act(cloud, cloud.stop_instance, current.id, (Status.STOPPING, Status.STOPPED))
        if not wait:
            return current
        return cloud.wait_for_instance(current.id, [Status.STOPPED], timeout=_remaining(cloud, timeout))
    if state == "restarted" and current.status is Status.STOPPED:
        state = "started"  # restarting a stopped machine is starting it
    if state == "restarted":
        if cloud.reboots(current):
            _act(cloud, cloud.reboot_instance, current.id, ())  # a second reboot is harmless: no state check
        else:
            _act(cloud, cloud.stop_instance, current.id, (Status.STOPPING, Status.STOPPED))
            cloud.wait_for_instance(current.id, [Status.STOPPED], timeout=_remaining(cloud, timeout))
            _act(cloud, cloud.start_instance, current.id, (Status.PENDING, Status.RUNNING))
    else:
        _act(cloud, cloud.start_instance, current.id, (Status.PENDING, Status.RUNNING))
    if not wait:
        return current
    return wait_until_ready(cloud, current, timeout=_remaining(cloud, timeout), wait_for_ssh=wait_for_ssh)


def _act(
    cloud: Provider,
    action: Callable[[str], None],
    instance_id: str,
    took_effect: tuple[Status, ...] | Callable[[Instance], bool],
) -> None:
    """Send a power action; after a transient failure, send it again unless the instance shows it took effect
    (one of the ``took_effect`` statuses, or the predicate holds).

    A 5xx or lost answer does not say whether the provider acted; sending "stop" to a stopping machine would
    be refused, so the state decides.
    """
    for attempt in range(1, ACTION_ATTEMPTS + 1):
        try:
            action(instance_id)
            return
        except errors.GpuCloudError as exc:
            if attempt == ACTION_ATTEMPTS or not is_transient(exc):
                raise
        if not took_effect:
            continue
        now = cloud.get_instance(instance_id)
        if now.status in took_effect if isinstance(took_effect, tuple) else took_effect(now):
            return


# --- volumes ----------------------------------------------------------------------------------------
def require_attachable(
    cloud: Provider, volume: str, instance_refs: Sequence[str], doing: str, *, fix: str = "state: stopped"
) -> None:
    """Refuse, before any write and in check mode too, an attach or detach the API refuses in an instance's state.

    ``instance_refs`` are instance ids or plan placeholders (an instance created earlier in the same run is
    running once its create has waited). DataCrunch, for one, attaches and detaches only offline instances.
    ``fix`` is how the calling front-end spells stopping the instance.
    """
    allowed = cloud.volume_attach_statuses
    if allowed is None:
        return
    for ref in instance_refs:
        new = ref.startswith(_TO_BE_CREATED)
        status = Status.RUNNING if new else cloud.get_instance(ref).status
        if status not in allowed:
            wanted = " or ".join(sorted(s.value for s in allowed))
            raise errors.Conflict(
                f"{cloud.name} can {doing} volume {volume!r} only while the instance is {wanted}, and instance "
                f"{ref} {'will be' if new else 'is'} {status.value}; stop it first ({fix})",
                provider=cloud.name,
                code="instance_state",
                details={"volume": volume, "instance": ref, "status": status.value},
            )


def require_volume_attachable(
    cloud: Provider,
    volume: str,
    plan: Plan,
    current: Volume | None,
    attach_id: str | None,
    *,
    fix: str = "state: stopped",
) -> None:
    """The attaches and detaches a volume plan makes, refused where the instance's state forbids them: the one
    rule behind Ansible's check mode and run and Pulumi's preview (Check for a create, Diff for an update)."""
    for doing, refs in _attachments_touched(plan, current, attach_id).items():
        require_attachable(cloud, volume, refs, doing, fix=fix)


def _attachments_touched(plan: Plan, current: Volume | None, attach_id: str | None) -> dict[str, list[str]]:
    """Instances a volume plan detaches from and attaches to."""
    desired = [attach_id] if attach_id else []
    if plan.action is Action.CREATE:
        return {"attach": desired}
    if plan.action is Action.REPLACE and current is not None:
        return {"detach": list(current.attached_to), "attach": desired}
    change = next((c for c in plan.updates if c.field == "attached_to"), None)
    return {} if change is None else {"detach": list(change.current), "attach": list(change.desired)}


def attach_target(cloud: Provider, ref: str | None, *, predict: bool = False) -> str | None:
    """The id of the instance ``ref`` names, by name first, then as an id.

    ``predict`` (check mode, previews): an instance that does not exist yet is taken to be created earlier in
    the same run; the plan then names it instead of an id.
    """
    if not ref:
        return None
    found = cloud.find_instance(ref)
    if found is None:
        try:
            found = cloud.get_instance(ref)
        except (errors.NotFound, errors.ValidationError):
            found = None
    if found is None and predict:
        return to_be_created(ref)
    if found is None:
        raise errors.ValidationError(f"attach_to: no {cloud.name} instance with name or id {ref!r}", field="attach_to")
    return found.id


def plan_for_volume(
    cloud: Provider, spec: VolumeSpec, current: Volume | None, *, predict: bool = False
) -> tuple[Plan, str | None]:
    """Reconcile, with ``attach_to`` resolved to the id of the instance it names (the plan and that id).

    ``predict`` (check mode, previews): an instance that does not exist yet is taken to be created earlier in
    the same run.
    """
    attach_id = attach_target(cloud, spec.attach_to, predict=predict)
    return plan_volume(spec, current, cloud.capabilities, desired_attach_id=attach_id), attach_id


def ensure_volume(
    cloud: Provider,
    spec: VolumeSpec,
    *,
    check_mode: bool = False,
    force_replace: bool = False,
    volume_id: str | None = None,
) -> Outcome[Volume]:
    if volume_id is None:
        cloud.validate_volume_spec(spec)
    else:
        cloud.require(Capability.VOLUMES)
    with _creating(cloud, "volume", spec.name, enabled=not check_mode, timeout=LOCK_TIMEOUT):
        current = find_volume(cloud, name=spec.name, volume_id=volume_id)
        plan, attach_id = plan_for_volume(cloud, spec, current, predict=check_mode)
        if plan.action in (Action.CREATE, Action.REPLACE):
            validate_volume_catalogue(cloud, spec)
        if plan.action is not Action.REPLACE or force_replace:
            require_volume_attachable(cloud, spec.name, plan, current, attach_id)
        return _converge(
            "volume",
            cloud,
            current,
            plan,
            check_mode=check_mode,
            force_replace=force_replace,
            update=lambda have: _apply_volume_updates(cloud, have, plan),
            delete=lambda have: cloud.delete_volume(have.id),
            create=lambda: (cloud.create_volume(spec, attempts=CREATE_ATTEMPTS), {}),
        )


def find_volume(cloud: Provider, *, name: str | None = None, volume_id: str | None = None) -> Volume | None:
    """By id, else by name (None: not there, e.g. deleted along with its instance)."""
    if volume_id:
        try:
            return cloud.get_volume(volume_id)
        except errors.NotFound:
            return None
    return cloud.find_volume(name) if name else None


def _apply_volume_updates(cloud: Provider, current: Volume, plan: Plan) -> Volume:
    for change in plan.updates:
        if change.field == "size_gb":
            cloud.resize_volume(current.id, int(change.desired))
        elif change.field == "name":
            cloud.rename_volume(current.id, str(change.desired))
        elif change.field == "attached_to":
            for instance_id in change.current:
                cloud.detach_volume(current.id, instance_id)
            for instance_id in change.desired:
                cloud.attach_volume(current.id, instance_id)
    return cloud.get_volume(current.id)


def ensure_volume_absent(
    cloud: Provider, *, name: str | None = None, volume_id: str | None = None, check_mode: bool = False
) -> Outcome[Volume]:
    cloud.require(Capability.VOLUME_DELETE)
    current = find_volume(cloud, name=name, volume_id=volume_id)
    if current is None:
        return Outcome(False, Action.NONE, None, None)
    require_attachable(cloud, current.name, current.attached_to, "detach")
    if not check_mode:
        cloud.delete_volume(current.id)  # detaches it first
    if current.attached_to:
        detach = Change("attached_to", sorted(current.attached_to), [])
        return Outcome(True, "detach+delete", current, None, Plan(Action.NONE, (detach,)))
    return Outcome(True, "delete", current, None)


# --- ssh keys ---------------------------------------------------------------------------------------
def ensure_ssh_key(cloud: Provider, spec: SshKeySpec, *, check_mode: bool = False) -> Outcome[SshKey]:
    """A key with this name and content. Keys cannot be edited in place, so new content replaces the key."""
    cloud.validate_ssh_key_spec(spec)
    with _creating(cloud, "ssh_key", spec.name, enabled=not check_mode, timeout=LOCK_TIMEOUT):
        current = cloud.find_ssh_key(spec.name)
        return _converge(
            "ssh key",
            cloud,
            current,
            plan_ssh_key(spec, current),
            check_mode=check_mode,
            force_replace=True,  # a key holds no data: replacing it is always safe
            update=lambda have: have,
            delete=lambda have: cloud.delete_ssh_key(have.id),
            create=lambda: (cloud.create_ssh_key(spec, attempts=CREATE_ATTEMPTS), {}),
        )


def ensure_ssh_key_absent(
    cloud: Provider, *, name: str | None = None, key_id: str | None = None, check_mode: bool = False
) -> Outcome[SshKey]:
    cloud.require(Capability.SSH_KEYS, "pass public keys on the instance instead")
    current: SshKey | None
    if key_id:
        try:
            current = cloud.get_ssh_key(key_id)
        except errors.NotFound:
            current = None
    else:
        current = cloud.find_ssh_key(name or "")
    if current is None:
        return Outcome(False, Action.NONE, None, None)
    if not check_mode:
        cloud.delete_ssh_key(current.id)
    return Outcome(True, "delete", current, None)


# --- the engine's building blocks, for callers that run their own flow (gpucloud.placement) ---------------------
def unchanged(current: R, plan: Plan | None = None) -> Outcome[R]:
    """The outcome of a resource found as wanted and left as it is."""
    return _unchanged(current, plan)


def create_lock(cloud: Provider, kind: str, name: str, *, timeout: float) -> contextlib.AbstractContextManager[None]:
    """The per-name lock every create of a ``kind`` named ``name`` on ``cloud`` holds around find-then-create,
    so two runs at once make one resource."""
    lock: contextlib.AbstractContextManager[None] = _creating(cloud, kind, name, enabled=True, timeout=timeout)
    return lock


def create_instance(cloud: Provider, spec: InstanceSpec) -> CreatedInstance:
    """One instance create as the engine sends it: a create whose answer was lost is adopted or sent again
    (see :func:`_create_once`); call it under :func:`create_lock`."""
    return _create(cloud, spec)

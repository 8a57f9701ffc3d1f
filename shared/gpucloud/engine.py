"""The generic half of every adapter: the rules around the wire operations, written once for all providers.

An adapter (``gpucloud.providers.<name>``) speaks its provider's API: a small set of wire operations, each
declared once with the capability it implements (:func:`gpucloud.providers.base.wire_operation`). What is a
rule rather than a request lives here: a create whose answer was lost is adopted by name, and sent again only
when nothing turned up and the failure says it may not have been applied; waits for an instance's status, its
deletion and its SSH banner; the resolution of SSH-key references into ids and texts; the one-match-by-name
rule. The adapter base class exposes these as its public methods, and :mod:`gpucloud.ensure` (find, plan,
converge) builds on them.

Nothing here imports an adapter: an adapter is whatever has the few members :class:`Adapter` names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from gpucloud import errors, waiters
from gpucloud.capabilities import Capability
from gpucloud.config import ProviderConfig
from gpucloud.models import Instance, SshKey, Status
from gpucloud.transport import ResponseLost, is_server_failure, is_transient
from gpucloud.validation import looks_like_public_key, public_key_identity

R = TypeVar("R")

# Lookups by name after a create whose outcome is unknown (a list may lag the create for a moment).
ADOPT_ATTEMPTS = 5
# Sends of one create (by the reconcile engine) while its answer is lost and nothing turns up under its name.
CREATE_ATTEMPTS = 3


class _Named(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


class Adapter(Protocol):
    """What the engine reads of an adapter."""

    @property
    def name(self) -> str: ...
    @property
    def config(self) -> ProviderConfig: ...
    @property
    def terminal_statuses(self) -> frozenset[Status]: ...
    def supports(self, capability: Capability) -> bool: ...
    def get_instance(self, instance_id: str) -> Instance: ...
    def list_ssh_keys(self) -> list[SshKey]: ...


def unique_by_name(items: Iterable[N], name: str, kind: str, provider: str) -> N | None:
    """The one item called ``name``; several is an error naming their ids, because we must not guess."""
    matches = [item for item in items if item.name == name]
    if len(matches) > 1:
        ids = ", ".join(item.id for item in matches)
        raise errors.Conflict(
            f"{len(matches)} {kind}s named {name!r} exist on {provider} ({ids}); "
            "delete the extras or address one by id",
            provider=provider,
            code="duplicate_name",
            details={"ids": [item.id for item in matches]},
        )
    return matches[0] if matches else None


# --- creates whose answer was lost ------------------------------------------------------------------
def create_adopting(provider: str, send: Callable[[], R], find: Callable[[], R | None], *, attempts: int = 1) -> R:
    """``send`` a create; when its outcome is unknown, adopt what ``find`` finds under the name.

    A lost answer or a 5xx says nothing about whether the create was applied: what is found by name is
    adopted, and when nothing is, the create is sent again (up to ``attempts`` sends in all). A malformed 2xx
    says it was applied without telling what was made: found by name, or an error (never sent again).
    """
    for attempt in range(1, attempts + 1):
        try:
            return send()
        except errors.ProviderError as failure:
            unapplied = isinstance(failure, ResponseLost) or is_server_failure(failure)
            if not (unapplied or isinstance(failure, errors.MalformedResponse)):
                raise
            found = _look_up(find)
            if found is not None:
                return found
            if attempt == attempts or not unapplied:
                raise errors.ProviderError(
                    f"{failure.message}; nothing was found under that name afterwards, so it is safe to run again",
                    provider=provider,
                ) from failure
    raise AssertionError("unreachable: attempts < 1")


def _look_up(find: Callable[[], R | None]) -> R | None:
    for _ in range(ADOPT_ATTEMPTS):
        found = find()
        if found is not None:
            return found
    return None


# --- waits --------------------------------------------------------------------------------------------
def wait_for_instance(
    cloud: Adapter, instance_id: str, statuses: Sequence[Status], *, timeout: float, interval: float | None = None
) -> Instance:
    """Poll until the instance is in one of ``statuses``; one of the adapter's terminal statuses fails the wait."""
    wanted = frozenset(statuses)
    return waiters.poll(
        lambda: cloud.get_instance(instance_id),
        done=lambda inst: inst.status in wanted,
        failed=lambda inst: inst.status in cloud.terminal_statuses and inst.status not in wanted,
        describe=_describe,
        timeout=timeout,
        interval=interval or cloud.config.poll_interval,
        what=f"{cloud.name} instance {instance_id} to be {'/'.join(s.value for s in wanted)}",
        transient=is_transient,
    )


def wait_for_instance_gone(cloud: Adapter, instance_id: str, *, timeout: float, interval: float | None = None) -> None:
    """Poll until the instance answers 404 or reports itself deleted."""

    def fetch() -> Instance | None:
        try:
            return cloud.get_instance(instance_id)
        except errors.NotFound:
            return None

    waiters.poll(
        fetch,
        done=lambda inst: inst is None or inst.status is Status.DELETED,
        describe=lambda inst: "gone" if inst is None else _describe(inst),
        timeout=timeout,
        interval=interval or cloud.config.poll_interval,
        what=f"{cloud.name} instance {instance_id} to be deleted",
        transient=is_transient,
    )


def _describe(instance: Instance) -> str:
    return f"{instance.status.value} ({instance.raw_status})"


def wait_for_ssh(cloud: Adapter, instance: Instance, *, timeout: float) -> str:
    """The SSH banner of ``instance`` once its address greets with one."""
    address = instance.ssh_ready_address
    if address is None:
        raise errors.ProviderError(
            f"{cloud.name} instance {instance.id} reports no SSH address yet", provider=cloud.name
        )
    return waiters.wait_for_ssh(*address, timeout=timeout)


# --- SSH-key references -------------------------------------------------------------------------------
def resolve_ssh_keys(cloud: Adapter, refs: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split key references into (registered key ids, raw public keys to pass by content).

    A reference may be an id, a name or a public key text. Key texts that are already registered resolve
    to their id; unregistered texts stay texts, which only providers that take keys by content accept.
    """
    if not refs:
        return [], []
    registered = cloud.list_ssh_keys() if cloud.supports(Capability.SSH_KEYS) else []
    by_identity = {public_key_identity(k.public_key): k.id for k in registered}
    ids: list[str] = []
    texts: list[str] = []
    for index, ref in enumerate(refs):
        if not looks_like_public_key(ref):
            ids.append(_registered_key(cloud, registered, index, ref))
        elif known := by_identity.get(public_key_identity(ref)):
            ids.append(known)
        elif cloud.supports(Capability.SSH_KEYS_BY_CONTENT):
            texts.append(ref.strip())
        else:
            raise errors.ValidationError(
                f"ssh_keys[{index}] is a public key that is not registered on {cloud.name}; "
                "create it with an ssh_key resource first and refer to it by name",
                field=f"ssh_keys[{index}]",
                provider=cloud.name,
            )
    return ids, texts


def _registered_key(cloud: Adapter, registered: list[SshKey], index: int, ref: str) -> str:
    """The id of the registered key ``ref`` names by id or by name."""
    key = next((k for k in registered if k.id == ref), None) or unique_by_name(registered, ref, "ssh key", cloud.name)
    if key is None:
        raise errors.ValidationError(
            f"ssh_keys[{index}] {ref!r} matches no SSH key id or name on {cloud.name}",
            field=f"ssh_keys[{index}]",
            provider=cloud.name,
        )
    return key.id

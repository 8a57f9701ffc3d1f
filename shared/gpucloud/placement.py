"""Placement: an instance asked for by requirement ("an H100 under $3/h, wherever there is one"), not by provider.

- :class:`Requirement` is what the user asks for; :func:`candidates` ranks every matching offer at every allowed
  location (price first, then the user's provider preference, then names, so the order is stable).
- :func:`place` makes the named instance exist somewhere the requirement allows: a rerun finds it by name on
  whatever provider it went to and changes nothing (a cheaper offer appearing later does not move it); when
  none exists it tries the candidates in order, moving on when a provider says it has no capacity (or quota),
  deleting whatever a failed attempt left under the name, until one succeeds, the list ends or the deadline
  passes; then one :class:`PlacementFailed` lists every attempt and why it failed.
- An instance that no longer meets a changed requirement is replaced (with ``force_replace``, as for any
  replace), and check mode says so with the offer it would move to.

Capacity is known only at create time: offers say what a provider sells and, where its API says so, where it
has stock now; check mode names the offer that would be tried first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from gpucloud import ensure, errors, presentation
from gpucloud.capabilities import Capability
from gpucloud.config import PROVIDERS
from gpucloud.gpus import normalise_gpu_model
from gpucloud.models import Instance, InstanceSpec, Number, Offer, ResourceName, Status, WholeNumber
from gpucloud.providers.base import Provider
from gpucloud.reconcile import Action

M = TypeVar("M", bound=BaseModel)
# Error codes (besides NoCapacity and InsufficientFunds) that say "not here, not now" rather than "wrong request":
# CloudNexus's failed create job (capacity_unavailable); a ComputeStacks order that ended failed, whose API gives
# no reason (the project's event log does), is taken to be the same.
FAILOVER_CODES = frozenset({"no_capacity", "capacity_unavailable", "out_of_stock", "quota_exceeded", "order_failed"})


def _gpu(value: str | None) -> str | None:
    if value is None:
        return None
    normalised = normalise_gpu_model(value)
    if normalised is None:
        raise ValueError("must name a GPU model such as h100 or a100-80gb")
    return normalised


# Spot instances: never (the default: on-demand only), allowed (spot prices ranked beside on-demand ones, the
# cheapest wins) or required (spot offers only).
SpotChoice = Literal["never", "allowed", "required"]
# What kind of instance may be placed: a VM (the default: what "an H100 under $3/h" means everywhere, with the
# image chosen), a bare-metal rental (Voltage Park: whole 8-GPU nodes, the provider installs the OS) or either.
KindChoice = Literal["vm", "bare_metal", "any"]


def _spot(value: Any) -> Any:
    """``spot: true`` asks for a spot instance, ``spot: false`` for on-demand: the two booleans users write."""
    if isinstance(value, bool):
        return "required" if value else "never"
    return value


def _providers(value: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [p for p in value if p not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown provider(s) {', '.join(unknown)}; choose from {', '.join(PROVIDERS)} or 'auto'")
    if len(set(value)) != len(value):
        raise ValueError("lists a provider twice; the order is the preference, so name each once")
    return value


class Requirement(BaseModel):
    """What an instance must be, whoever provides it. Every field left out allows anything."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    gpu: Annotated[str | None, AfterValidator(_gpu)] = Field(
        default=None, description="GPU model, any spelling or part of one (h100, a100-80gb), compared normalised"
    )
    gpu_count: WholeNumber | None = Field(default=None, ge=0, description="exact number of GPUs; default 1 with a gpu")
    min_vcpus: WholeNumber | None = Field(default=None, ge=1)
    min_memory_gb: Number | None = Field(default=None, gt=0)
    # Met by an offer whose catalogue states a disk this large or, where the OS disk is chosen at create
    # (DataCrunch), by creating it this large; an offer with neither is left out, never placed on a guess.
    min_disk_gb: Number | None = Field(default=None, gt=0, description="OS disk of at least this many GB")
    spot: Annotated[SpotChoice, BeforeValidator(_spot)] = Field(
        default="never", description="never (on-demand only), allowed (the cheaper wins) or required"
    )
    kind: KindChoice = Field(default="vm", description="vm (the default), bare_metal (whole rented nodes) or any")
    locations: tuple[str, ...] = Field(default=(), description="location ids or names allowed; empty: any")
    max_price_per_hour: Number | None = Field(
        default=None, gt=0, description="USD per hour, at the price it is bought (spot or on-demand)"
    )
    # Also the preference order among offers at the same price; empty: every provider, in PROVIDERS order.
    providers: Annotated[tuple[str, ...], AfterValidator(_providers)] = ()

    @field_validator("gpu_count")
    @classmethod
    def _count_needs_gpu(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and info.data.get("gpu") is None:
            raise ValueError("needs gpu (the model to count); set gpu: h100, for example")
        return value

    @property
    def wanted_gpus(self) -> int | None:
        return self.gpu_count if self.gpu_count is not None else (1 if self.gpu else None)

    @property
    def allowed_providers(self) -> tuple[str, ...]:
        return self.providers or PROVIDERS

    def as_facts(self) -> dict[str, Any]:
        """The requirement as plain data (Ansible host vars, Pulumi outputs), without the fields left out."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def unmet_by(
        self, offer: Offer, location: str | None, *, spot: bool = False, sizes_disk: bool = False
    ) -> list[str]:
        """Why ``offer`` at ``location`` (as a spot instance with ``spot``) does not meet the requirement (empty: it
        does). ``sizes_disk``: the provider takes the OS disk size at create, so any offer can meet a disk minimum."""
        reasons = []
        if self.kind != "any" and offer.kind != self.kind:
            reasons.append(f"a {offer.kind.replace('_', '-')} offer, and kind is {self.kind} (kind: any allows both)")
        wanted = self.wanted_gpus
        if self.gpu and (offer.gpu_model is None or self.gpu not in (normalise_gpu_model(offer.gpu_model) or "")):
            reasons.append(f"gpu {offer.gpu_model or 'none'} is not {self.gpu}")
        if wanted is not None and offer.gpu_count != wanted:
            reasons.append(f"{offer.gpu_count} GPUs, not {wanted}")
        if self.min_vcpus and (offer.vcpus or 0) < self.min_vcpus:
            reasons.append(f"{offer.vcpus or 'unknown'} vCPUs < {self.min_vcpus}")
        if self.min_memory_gb and (offer.memory_gb or 0) < self.min_memory_gb:
            reasons.append(f"{offer.memory_gb or 'unknown'} GB memory < {self.min_memory_gb}")
        if self.min_disk_gb and not sizes_disk and (offer.disk_gb or 0) < self.min_disk_gb:
            stated = f"{offer.disk_gb:g} GB" if offer.disk_gb else "no stated size and none chosen at create"
            reasons.append(f"disk {stated} < {self.min_disk_gb:g} GB")
        price = offer.spot_price_per_hour if spot else offer.price_per_hour
        if self.max_price_per_hour is not None and (price is None or price > self.max_price_per_hour):
            reasons.append(f"{'spot ' if spot else ''}price {price} > {self.max_price_per_hour}/h")
        if self.locations and location is not None and not self._location_allowed(offer, location):
            reasons.append(f"location {location} is not one of {', '.join(self.locations)}")
        return reasons

    def disk_at_create(self, offer: Offer) -> int | None:
        """The OS disk size to ask for at create (providers that take one): the minimum, where the offer's own
        disk does not already meet it; None: the provider's default."""
        if self.min_disk_gb is None or (offer.disk_gb or 0) >= self.min_disk_gb:
            return None
        return math.ceil(self.min_disk_gb)

    def spot_modes(self, offer: Offer, sells_spot: bool) -> tuple[bool, ...]:
        """How ``offer`` may be bought under the requirement: on-demand (False), spot (True) or both."""
        if self.spot == "never":
            return (False,)
        if not (sells_spot and offer.spot_price_per_hour is not None):
            return (False,) if self.spot == "allowed" else ()
        return (False, True) if self.spot == "allowed" else (True,)

    def _location_allowed(self, offer: Offer, location: str) -> bool:
        names = {loc.location: loc.name for loc in offer.locations}
        allowed = {value.casefold() for value in self.locations}
        return location.casefold() in allowed or (names.get(location) or "").casefold() in allowed


class Template(BaseModel):
    """Everything of the instance that is not chosen by placement: the name and how to set it up."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: ResourceName
    image: str | None = None
    # Image names differ per provider: these win over ``image`` for their provider.
    images: dict[str, str] = Field(default_factory=dict)
    ssh_keys: tuple[str, ...] = ()
    tags: dict[str, str] | None = None
    startup_script: str | None = None

    def spec(self, candidate: Candidate, cloud: Provider, requirement: Requirement) -> InstanceSpec:
        bare_metal = candidate.offer.kind == "bare_metal"
        return InstanceSpec(
            name=self.name,
            kind=candidate.offer.kind,
            instance_type=candidate.offer.instance_type,
            # A bare-metal rental comes with the provider's OS: no image is taken (kind: any accepts that).
            image=None if bare_metal else self.images.get(candidate.provider, self.image),
            location=candidate.location if cloud.chooses_location(candidate.offer.kind) else None,
            ssh_keys=self.ssh_keys,
            tags=self._tags(cloud, requirement),
            startup_script=self.startup_script,
            spot=True if candidate.spot else None,
            os_disk_size_gb=requirement.disk_at_create(candidate.offer)
            if cloud.supports(Capability.INSTANCE_OS_DISK_SIZE)
            else None,
        )

    def _tags(self, cloud: Provider, requirement: Requirement) -> dict[str, str] | None:
        """The user's tags and, where the provider keeps tags, the requirement the instance is placed for (read
        back by inventories and reruns); DataCrunch, dcdncloud and ComputeStacks keep none."""
        if not cloud.supports(Capability.INSTANCE_TAGS):
            return self.tags
        placed_for = presentation.placement_tag_value(requirement.as_facts())
        return {**(self.tags or {}), presentation.PLACEMENT_TAG: placed_for}


@dataclass(frozen=True)
class Candidate:
    offer: Offer
    location: str | None  # None: the provider places it (no location choice or no listed locations)
    preference: int
    spot: bool = False  # bought as a spot instance, at the offer's spot price

    @property
    def provider(self) -> str:
        return self.offer.provider

    @property
    def price(self) -> float | None:
        return self.offer.spot_price_per_hour if self.spot else self.offer.price_per_hour

    def sort_key(self) -> tuple[float, int, str, str, bool]:
        price = self.price if self.price is not None else float("inf")
        # At one price, on-demand (False) before spot: it is not taken back.
        return (price, self.preference, self.offer.instance_type, self.location or "", self.spot)

    def describe(self) -> str:
        where = f" at {self.location}" if self.location else ""
        price = f"${self.price:.4g}/h" if self.price is not None else "price unknown"
        return f"{self.provider} {'spot ' if self.spot else ''}{self.offer.instance_type}{where} ({price})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "instance_type": self.offer.instance_type,
            "location": self.location,
            "price_per_hour": self.price,
            "gpu_model": normalise_gpu_model(self.offer.gpu_model),
            "gpu_count": self.offer.gpu_count,
            "spot": self.spot,
            "kind": self.offer.kind,
        }


@dataclass(frozen=True)
class Attempt:
    candidate: Candidate | None  # None: the provider failed before any offer (its catalogue could not be read)
    provider: str
    error: str
    error_class: str
    seconds: float = 0.0
    cleaned_up: str | None = None  # what a failed attempt left and was deleted

    def to_dict(self) -> dict[str, Any]:
        offer = self.candidate.to_dict() if self.candidate else {"provider": self.provider}
        return {**offer, "error": self.error, "error_class": self.error_class, "cleaned_up": self.cleaned_up}


class PlacementFailed(errors.GpuCloudError):
    """No candidate could be placed: every attempt, in order, with why it failed."""

    def __init__(self, message: str, attempts: Sequence[Attempt], *, code: str = "placement_failed") -> None:
        lines = [
            f"  {i}. {a.candidate.describe() if a.candidate else a.provider}: {a.error}"
            for i, a in enumerate(attempts, 1)
        ]
        text = message + (":\n" + "\n".join(lines) if lines else "")
        super().__init__(text, code=code, details={"attempts": [a.to_dict() for a in attempts]})
        self.attempts = tuple(attempts)


@dataclass(frozen=True)
class Placement:
    """What :func:`place` did: the outcome as for any instance, the offer chosen and the attempts before it."""

    outcome: ensure.Outcome[Instance]
    chosen: Candidate | None  # None: an existing instance kept where it is
    provider: str | None
    attempts: tuple[Attempt, ...] = ()
    requirement: Requirement = field(default_factory=Requirement)
    note: str = ""
    # Check mode: every candidate in the order a run would try them now.
    ranked: tuple[Candidate, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The record both front-ends report (Ansible result and host facts, Pulumi outputs)."""
        after = self.outcome.after
        return {
            "provider": self.provider,
            "instance_type": after.instance_type
            if after
            else (self.chosen.offer.instance_type if self.chosen else None),
            "location": after.location if after else (self.chosen.location if self.chosen else None),
            "price_per_hour": self.chosen.price if self.chosen else (after.price_per_hour if after else None),
            "offer": self.chosen.to_dict() if self.chosen else None,
            "attempts": [a.to_dict() for a in self.attempts],
            "requirement": self.requirement.as_facts(),
            "note": self.note,
            **({"candidates": [c.to_dict() for c in self.ranked]} if self.ranked else {}),
        }


Clouds = Mapping[str, Provider]


def parse(model: type[M], values: Mapping[str, Any], prefix: str = "") -> M:
    """``model`` from user input, or a ValidationError naming the first bad field and what it takes."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or model.__name__.lower()
        message = str(first["msg"]).removeprefix("Value error, ")
        raise errors.ValidationError(f"{prefix}{where}: {message}", field=f"{prefix}{where}") from None


def gather_offers(
    clouds: Clouds, requirement: Requirement, left: Callable[[], float] | None = None
) -> tuple[list[Offer], list[Attempt]]:
    """One catalogue read per allowed provider; a provider whose catalogue fails is an attempt, not the end.

    ``left``: what is left of the placement's deadline; each read ends within it."""
    offers: list[Offer] = []
    failed: list[Attempt] = []
    for name in requirement.allowed_providers:
        cloud = clouds.get(name)
        if cloud is None or not cloud.supports(Capability.OFFERS):
            continue
        try:
            with ensure.time_limit(cloud, left() if left else ensure.DEFAULT_TIMEOUT):
                offers.extend(cloud.list_offers())
        except errors.GpuCloudError as exc:
            failed.append(Attempt(None, name, f"offers could not be read: {exc}", type(exc).__name__))
    return offers, failed


def candidates(offers: Sequence[Offer], requirement: Requirement, clouds: Clouds) -> list[Candidate]:
    """Every (offer, location) that meets the requirement and the catalogue shows in stock, best first."""
    preference = {name: index for index, name in enumerate(requirement.allowed_providers)}
    found: list[Candidate] = []
    for offer in offers:
        if offer.provider not in preference:
            continue
        cloud = clouds.get(offer.provider)
        if cloud is None:
            continue
        if cloud.chooses_location(offer.kind) and offer.locations:
            places: list[str | None] = [loc.location for loc in offer.locations if loc.available]
        elif requirement.locations:
            continue  # the provider places it where it likes: a location requirement cannot be met
        else:
            places = [None] if (offer.available or not offer.locations) else []
        sizes_disk = cloud.supports(Capability.INSTANCE_OS_DISK_SIZE)
        for spot in requirement.spot_modes(offer, cloud.supports(Capability.INSTANCE_SPOT)):
            for place_ in places:
                if not requirement.unmet_by(offer, place_, spot=spot, sizes_disk=sizes_disk):
                    found.append(Candidate(offer, place_, preference[offer.provider], spot))
    return sorted(found, key=Candidate.sort_key)


def _nearest(offers: Sequence[Offer], requirement: Requirement, clouds: Clouds, shown: int = 3) -> str:
    """Why the offers with the wanted GPU (any offer, without one) fall short, those nearest first, for the
    no-offer error: a requirement no catalogue can meet (a disk none states, spot where none is sold) says so."""
    near: list[tuple[int, str]] = []
    for offer in offers:
        cloud = clouds.get(offer.provider)
        if cloud is None or offer.provider not in requirement.allowed_providers:
            continue
        modes = requirement.spot_modes(offer, cloud.supports(Capability.INSTANCE_SPOT))
        sizes_disk = cloud.supports(Capability.INSTANCE_OS_DISK_SIZE)
        reasons = requirement.unmet_by(offer, None, spot=bool(modes and modes[0]), sizes_disk=sizes_disk)
        if not modes:
            reasons.append("no spot price (spot: required)")
        if reasons and not any(r.startswith("gpu ") for r in reasons):
            near.append((len(reasons), f"{offer.provider} {offer.instance_type}: {'; '.join(reasons)}"))
    near.sort(key=lambda item: item[0])  # fewest shortfalls first (stable: catalogue order among equals)
    return f" (nearest: {' | '.join(line for _, line in near[:shown])})" if near else ""


def is_failover(exc: errors.GpuCloudError) -> bool:
    """Whether another offer may succeed where this one failed: no capacity, stock or quota here right now."""
    return isinstance(exc, errors.NoCapacity | errors.InsufficientFunds) or (exc.code or "") in FAILOVER_CODES


def find_placed(clouds: Clouds, name: str) -> Instance | None:
    """The instance called ``name`` on whichever given provider has it, allowed now or not (a provider dropped
    from the requirement still holds what was placed there); on two it is an error (no guessing)."""
    found = [
        i for cloud in clouds.values() if cloud.supports(Capability.INSTANCES) and (i := cloud.find_instance(name))
    ]
    found = [i for i in found if i.status is not Status.DELETED]
    if len(found) > 1:
        where = ", ".join(f"{i.provider} ({i.id})" for i in found)
        raise errors.Conflict(f"instances named {name!r} exist on {where}; delete all but one", code="duplicate")
    return found[0] if found else None


def place(
    clouds: Clouds,
    requirement: Requirement,
    template: Template,
    *,
    check_mode: bool = False,
    wait: bool = True,
    wait_timeout: float = ensure.DEFAULT_TIMEOUT,
    wait_for_ssh: bool = False,
    force_replace: bool = False,
) -> Placement:
    """Make ``template.name`` exist on the best offer with capacity; see the module docstring."""
    started = time.monotonic()
    missing = [p for p in requirement.providers if p not in clouds]
    if missing:
        raise errors.ValidationError(
            f"providers: {', '.join(missing)} not configured; configure them or remove them from providers",
            field="providers",
        )
    current = find_placed(clouds, template.name)
    if current is not None:
        unmet = _unmet_by_instance(clouds[current.provider], requirement, current)
        if not unmet:
            note = "placed earlier; kept where it is (placement never moves an instance that meets the requirement)"
            return Placement(ensure.unchanged(current), None, current.provider, (), requirement, note)
        return _replace(
            clouds,
            requirement,
            template,
            current,
            unmet,
            check_mode=check_mode,
            force_replace=force_replace,
            run=_Run(started, wait, wait_timeout, wait_for_ssh),
        )
    return _place_new(
        clouds, requirement, template, check_mode=check_mode, run=_Run(started, wait, wait_timeout, wait_for_ssh)
    )


@dataclass(frozen=True)
class _Run:
    started: float
    wait: bool
    timeout: float
    wait_for_ssh: bool

    def left(self) -> float:
        return max(self.timeout - (time.monotonic() - self.started), 0.0)


def _unmet_by_instance(cloud: Provider, requirement: Requirement, instance: Instance) -> list[str]:
    """Why a placed instance no longer meets the requirement, judged by its provider's offer for its type."""
    if instance.provider not in requirement.allowed_providers:
        return [f"provider {instance.provider} is not one of {', '.join(requirement.allowed_providers)}"]
    offer = next((o for o in cloud.list_offers() if o.instance_type == instance.instance_type), None)
    if offer is None:
        return [f"{instance.provider} no longer offers its type {instance.instance_type}"]
    # Price and stock of the running instance's own offer do not count: it was placed at the price it pays. Its
    # disk, where chosen at create, is its own (one more read, only when a minimum is asked for).
    kept = requirement.model_copy(update={"max_price_per_hour": None})
    sizes_disk = cloud.supports(Capability.INSTANCE_OS_DISK_SIZE)
    reasons = kept.unmet_by(offer, instance.location, spot=instance.spot, sizes_disk=sizes_disk)
    if requirement.min_disk_gb and sizes_disk:
        disk = cloud.os_disk_size_gb(instance)
        if disk is not None and disk < requirement.min_disk_gb:
            reasons.append(f"OS disk {disk} GB < {requirement.min_disk_gb:g} GB")
    if requirement.spot == "never" and instance.spot:
        reasons.append("a spot instance, and spot is not allowed (spot: allowed or required)")
    if requirement.spot == "required" and not instance.spot:
        reasons.append("an on-demand instance, and spot is required")
    if requirement.locations and instance.location is None and not _placed_within(instance, requirement):
        reasons.append("its location is unknown")
    return reasons


def _placed_within(instance: Instance, requirement: Requirement) -> bool:
    """An instance whose API does not report its location (Voltage Park bare metal) still meets a location
    requirement when it was placed for one allowing no location the current one refuses: its tag says which."""
    placed_for = presentation.placement_facts(instance.tags) or {}
    earlier = placed_for.get("locations")
    if not isinstance(earlier, list) or not earlier:
        return False
    allowed = {value.casefold() for value in requirement.locations}
    return all(str(value).casefold() in allowed for value in earlier)


def _replace(
    clouds: Clouds,
    requirement: Requirement,
    template: Template,
    current: Instance,
    unmet: list[str],
    *,
    check_mode: bool,
    force_replace: bool,
    run: _Run,
) -> Placement:
    offers, failed = gather_offers(clouds, requirement, run.left)
    ranked = candidates(offers, requirement, clouds)
    target = ranked[0].describe() if ranked else "no offer meets it now"
    if not force_replace:
        raise errors.Conflict(
            f"instance {current.name!r} on {current.provider} ({current.instance_type}) no longer meets the "
            f"requirement ({'; '.join(unmet)}) and must be replaced, on {target}; set force_replace to allow "
            "deleting and recreating it",
            provider=current.provider,
            code="replace_required",
            details={"unmet": unmet, "target": ranked[0].to_dict() if ranked else None},
        )
    plan_note = f"replace: {'; '.join(unmet)}"
    if check_mode:
        note = f"{plan_note}; would move to {target} (capacity is known only at create time)"
        return Placement(
            ensure.Outcome(True, Action.REPLACE, current, None),
            ranked[0] if ranked else None,
            ranked[0].provider if ranked else None,
            tuple(failed),
            requirement,
            note,
            tuple(ranked),
        )
    cloud = clouds[current.provider]
    cloud.delete_instance(current.id)
    cloud.wait_for_instance_gone(current.id, timeout=run.left())
    placed = _try_in_order(clouds, ranked, failed, template, requirement, run)
    outcome = ensure.Outcome(True, Action.REPLACE, current, placed.outcome.after, secrets=placed.outcome.secrets)
    return Placement(outcome, placed.chosen, placed.provider, placed.attempts, requirement, plan_note)


def _place_new(
    clouds: Clouds, requirement: Requirement, template: Template, *, check_mode: bool, run: _Run
) -> Placement:
    offers, failed = gather_offers(clouds, requirement, run.left)
    ranked = candidates(offers, requirement, clouds)
    if not ranked and (check_mode or run.left() > 0):
        why = _nearest(offers, requirement, clouds)
        raise PlacementFailed(f"no offer meets the requirement{why}", failed, code="no_offer")
    if check_mode:
        note = f"would try {ranked[0].describe()} first (capacity is known only at create time)"
        return Placement(
            ensure.Outcome(True, Action.CREATE, None, None),
            ranked[0],
            ranked[0].provider,
            tuple(failed),
            requirement,
            note,
            tuple(ranked),
        )
    placed = _try_in_order(clouds, ranked, failed, template, requirement, run)
    return Placement(placed.outcome, placed.chosen, placed.provider, placed.attempts, requirement, placed.note)


def _try_in_order(
    clouds: Clouds,
    ranked: Sequence[Candidate],
    failed: Sequence[Attempt],
    template: Template,
    requirement: Requirement,
    run: _Run,
) -> Placement:
    attempts = list(failed)
    if not ranked and run.left() > 0:
        raise PlacementFailed("no offer meets the requirement", attempts, code="no_offer")
    cleanups = _Cleanups()
    try:
        chosen, outcome, stopped = _first_to_take(clouds, ranked, attempts, template, requirement, run, cleanups)
    finally:
        done = cleanups.finish(attempts)  # every clean-up has ended: the placement returns or fails leaving nothing
    if stopped is not None:
        raise PlacementFailed(
            "placement stopped at an error another offer would not fix", done, code="attempt_failed"
        ) from stopped
    if chosen is not None and outcome is not None:
        note = f"placed on {chosen.describe()}" + (f" after {len(done)} failed attempt(s)" if done else "")
        return Placement(outcome, chosen, chosen.provider, done, note=note)
    if run.left() <= 0:
        passed = f"deadline of {run.timeout:g}s passed before a placement succeeded"
        raise PlacementFailed(passed, done, code="deadline")
    raise PlacementFailed("no offer could be placed", done, code="exhausted")


def _first_to_take(
    clouds: Clouds,
    ranked: Sequence[Candidate],
    attempts: list[Attempt],
    template: Template,
    requirement: Requirement,
    run: _Run,
    cleanups: _Cleanups,
) -> tuple[Candidate | None, ensure.Outcome[Instance] | None, errors.GpuCloudError | None]:
    """The candidates in order until one takes (its outcome), one fails in a way no other offer fixes (that
    error), or none is left or the deadline passes; every failed attempt is added to ``attempts``."""
    for candidate in ranked:
        if run.left() <= 0:
            break
        cloud = clouds[candidate.provider]
        spec = template.spec(candidate, cloud, requirement)
        try:
            cloud.validate_instance_spec(spec)  # no request: e.g. this provider needs an image none was given for
        except errors.ValidationError as exc:
            attempts.append(Attempt(candidate, candidate.provider, f"skipped: {exc.message}", type(exc).__name__))
            continue
        cleanups.before_attempt(candidate.provider)
        began = time.monotonic()
        try:
            return candidate, _attempt(cloud, spec, run), None
        except errors.GpuCloudError as exc:
            seconds = time.monotonic() - began
            attempts.append(Attempt(candidate, candidate.provider, exc.message, type(exc).__name__, seconds))
            # A create request the provider refused outright (an HTTP answer saying no capacity) made nothing; a
            # failure found later (a failed job or order, a wait that ended in error or ran out) may have.
            refused = is_failover(exc) and exc.status_code is not None
            if exc.settle is not None or not refused:
                cleanups.start(len(attempts) - 1, cloud, template.name, exc.settle, look_up=not refused)
            if not is_failover(exc) and not isinstance(exc, errors.Timeout):
                return None, None, exc
    return None, None, None


class _Cleanups:
    """The clean-ups of failed attempts, run beside the next attempts, so the next create is sent as soon as a
    provider said no rather than after a look-up, a delete and a wait there. A provider's clean-up ends before
    another attempt on it starts (it looks the name up, and must not find that attempt's instance), and every
    clean-up ends before the placement returns or fails."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=len(PROVIDERS), thread_name_prefix="gpucloud-placement-cleanup")
        self._by_provider: dict[str, Future[str | None]] = {}
        self._by_attempt: dict[int, Future[str | None]] = {}

    def start(
        self, attempt: int, cloud: Provider, name: str, settle: Callable[[], None] | None, *, look_up: bool
    ) -> None:
        """Undo what the failed ``attempt`` left: what its adapter left to settle (errors.settling_deferred),
        then, with ``look_up``, whatever is found under ``name``."""
        future = self._pool.submit(_clean_up, cloud, name, settle, look_up)
        self._by_provider[cloud.name] = self._by_attempt[attempt] = future

    def before_attempt(self, provider: str) -> None:
        pending = self._by_provider.pop(provider, None)
        if pending is not None:
            pending.result()

    def finish(self, attempts: Sequence[Attempt]) -> tuple[Attempt, ...]:
        """``attempts`` with what each clean-up deleted, once all have ended."""
        self._pool.shutdown(wait=True)
        return tuple(
            replace(a, cleaned_up=self._by_attempt[i].result()) if i in self._by_attempt else a
            for i, a in enumerate(attempts)
        )


def _attempt(cloud: Provider, spec: InstanceSpec, run: _Run) -> ensure.Outcome[Instance]:
    """One create (under the provider's name lock) and its wait, within what is left of the deadline. What a
    failed create leaves to undo is left to the clean-up (settling deferred), beside the next attempt."""
    with ensure.time_limit(cloud, run.left()):
        with ensure.create_lock(cloud, "instance", spec.name, timeout=run.left()), errors.settling_deferred():
            made = ensure.create_instance(cloud, spec)
        after = made.instance
        if run.wait:
            after = ensure.wait_until_ready(cloud, after, timeout=run.left(), wait_for_ssh=run.wait_for_ssh)
    return ensure.Outcome(True, Action.CREATE, None, after, secrets=made.secrets)


def _clean_up(cloud: Provider, name: str, settle: Callable[[], None] | None, look_up: bool) -> str | None:
    """Finish undoing a failed attempt (``settle``: e.g. delete a failed order's project and wait until it is
    gone), then, with ``look_up``, delete whatever it left under ``name`` (an instance in error)."""
    try:
        if settle is not None:
            settle()
        left = cloud.find_instance(name) if look_up else None
        if left is None:
            return None
        cloud.delete_instance(left.id)
        cloud.wait_for_instance_gone(left.id, timeout=ensure.DEFAULT_TIMEOUT)
        return left.id
    except errors.GpuCloudError as exc:
        return f"cleanup failed: {exc.message}"


def connect_configured(
    overrides: Mapping[str, Mapping[str, Any]] | None = None, connect: Callable[..., Provider] | None = None
) -> dict[str, Provider]:
    """An adapter for every provider with credentials (``overrides`` > environment > config file): placement
    looks for a placed instance on all of them and places on the allowed ones. ``connect(name, **options)``
    makes the adapter (default :func:`gpucloud.connect`; Pulumi's provider passes its cached ones)."""
    from gpucloud import connect as default_connect
    from gpucloud.config import load_config

    clouds: dict[str, Provider] = {}
    for name in PROVIDERS:
        options = {k: v for k, v in (overrides or {}).get(name, {}).items() if v is not None}
        config = load_config(name, options)
        if config.is_configured() and (config.base_url or name != "computestacks"):
            clouds[name] = (connect or default_connect)(name, **options)
    return clouds

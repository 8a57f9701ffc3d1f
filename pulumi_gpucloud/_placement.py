"""``Instance(provider="auto", gpu=..., max_price=...)``: an instance placed by requirement (gpucloud.placement).

A dynamic provider of its own kind (``placed_instance``) beside the per-provider one: its inputs are a requirement
and the instance's set-up instead of a provider and a type, and what it placed is recorded in the outputs
``placed_provider`` and ``placement`` (the offer, the failed attempts, the requirement).

- Check validates the requirement without a request and, for a create or a changed requirement, names the offer
  a create would try first in ``planned_offer`` (shown by ``pulumi preview --diff``; capacity is only known at
  create).
- Diff: a changed requirement the instance still meets is an update that calls no API (the instance is not
  moved to a cheaper offer); one it no longer meets is a replace. A changed set-up (name, image, keys, script,
  tags) is a replace.
- Create places with failover (adopting an instance of the name placed earlier); Read, Update and Delete act on
  the provider it was placed on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import pydantic
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult
from pulumi.runtime import rpc

from gpucloud import ensure, errors, placement
from gpucloud.config import PROVIDERS
from gpucloud.models import Status
from pulumi_gpucloud._inputs import _NUM, _STR, Field, clean, is_unknown, schema_inputs
from pulumi_gpucloud._kinds import instance_outputs
from pulumi_gpucloud._provider import GpuCloudProvider, GpuCloudResourceError, _adapter

KIND: Final = "placed_instance"
# Requirement inputs (max_price is Requirement.max_price_per_hour).
REQUIREMENT_INPUTS: Final[dict[str, Field]] = {
    "gpu": Field(_STR),
    "gpu_count": Field(int),
    "min_vcpus": Field(int),
    "min_memory_gb": Field(_NUM),
    "min_disk_gb": Field(_NUM),
    "spot": Field((str, bool)),  # never / allowed / required (True: required, False: never)
    # vm / bare_metal / any: the kinds of offer placement may choose. The default is filled in so the kind output
    # (an echo of this input, as the diff compares it) reads "vm" as it did before the requirement existed.
    "kind": Field(_STR, default="vm"),
    "locations": Field(list, item=str),
    "max_price": Field(_NUM),
    "providers": Field(list, item=str),
}
# The instance's set-up: a change replaces it (all of it takes effect at create).
SETUP_INPUTS: Final[dict[str, Field]] = {
    "name": Field(_STR, required=True),
    "image": Field(_STR),
    "images": Field(dict, item=str),
    "ssh_keys": Field(list, item=str),
    "tags": Field(dict, item=str),
    "startup_script": Field(_STR),
}
LOCAL_INPUTS: Final[dict[str, Field]] = {
    "provider": Field(_STR, required=True),  # "auto"
    "wait_for_ssh": Field(bool, default=False),
    "wait_timeout": Field(_NUM, default=ensure.DEFAULT_TIMEOUT),
    "force_replace": Field(bool, default=False),
    "planned_offer": Field(_STR),  # set by Check, never by the program
}
PLACED_INPUTS: Final[dict[str, Field]] = {**LOCAL_INPUTS, **SETUP_INPUTS, **REQUIREMENT_INPUTS}
PLACED_OUTPUTS: Final = ("placed_provider", "placement", "instance_type", "location")


def requirement_of(props: Mapping[str, Any]) -> placement.Requirement:
    values = {name: props.get(name) for name in REQUIREMENT_INPUTS if name != "max_price"}
    return placement.parse(placement.Requirement, {**values, "max_price_per_hour": props.get("max_price")})


def template_of(props: Mapping[str, Any]) -> placement.Template:
    return placement.parse(
        placement.Template,
        {
            "name": props["name"],
            "image": props.get("image"),
            "images": dict(props.get("images") or {}),
            "ssh_keys": tuple(props.get("ssh_keys") or ()),
            "tags": None if props.get("tags") is None else dict(props["tags"]),
            "startup_script": props.get("startup_script"),
        },
    )


def _property(field: str | None) -> str:
    name = (field or "provider").split(".", 1)[0]
    return "max_price" if name == "max_price_per_hour" else name


class PlacementProvider(GpuCloudProvider):
    """CRUD for instances placed by requirement; configuration (stack config) as for every gpucloud kind."""

    def __init__(self) -> None:
        super().__init__("instance")
        self.kind = KIND

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.kind = KIND

    def _clouds(self) -> dict[str, Any]:
        return placement.connect_configured(
            {name: self._settings.get(name, {}) for name in PROVIDERS},
            lambda name, **options: _adapter(name, options),
        )

    # --- check -------------------------------------------------------------------------------------------
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        olds = clean(_olds)
        # The placement module judges the requirement's values (its messages name them); no coercion here.
        inputs, failures = schema_inputs(
            PLACED_INPUTS, clean(news), lambda n: f"{n}: not an input of an instance with provider='auto'", coerce=False
        )
        inputs.pop("planned_offer", None)  # set below, never by the program
        if failures or any(is_unknown(v) for v in inputs.values()):
            return CheckResult(inputs, failures)
        try:
            requirement = requirement_of(inputs)
            template_of(inputs)
        except errors.ValidationError as exc:
            return CheckResult(inputs, [CheckFailure(_property(exc.field), exc.message)])
        if not olds or requirement != _known_requirement(olds):
            inputs["planned_offer"] = self._planned_offer(requirement)
        return CheckResult(inputs, [])

    def _planned_offer(self, requirement: placement.Requirement) -> str:
        offers, _ = placement.gather_offers(self._clouds(), requirement)
        ranked = placement.candidates(offers, requirement, self._clouds())
        if not ranked:
            return "no offer meets the requirement now"
        return f"{ranked[0].describe()} first (capacity is known only at create time)"

    # --- diff --------------------------------------------------------------------------------------------
    def diff(self, id_: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        olds, news = clean(_olds), clean(_news)

        def changed(names: Iterable[str]) -> list[str]:
            return [n for n in names if news.get(n) != olds.get(n)]

        replaces = changed(SETUP_INPUTS)
        changes = changed(("wait_for_ssh", "wait_timeout", "force_replace"))
        moved = changed(REQUIREMENT_INPUTS)
        # Unknown (preview) or no longer met: a replace; still met: kept where it is, the new requirement recorded.
        if moved and (replaces or any(is_unknown(news.get(n)) for n in moved) or self._unmet(id_, olds, news)):
            replaces += moved
        else:
            changes += moved
        return DiffResult(
            changes=bool(replaces or changes),
            replaces=sorted(replaces),
            delete_before_replace=bool(replaces) and news.get("name") == olds.get("name"),
        )

    def _unmet(self, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        provider = olds["placed_provider"]
        with self._cloud(provider, "diff", repr(olds.get("name"))) as cloud:
            current = cloud.get_instance(id_)
            return placement._unmet_by_instance(cloud, requirement_of(news), current)

    # --- create / update ---------------------------------------------------------------------------------
    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = clean(props)
        try:
            result = placement.place(
                self._clouds(),
                requirement_of(inputs),
                template_of(inputs),
                wait_for_ssh=bool(inputs.get("wait_for_ssh")),
                wait_timeout=float(inputs.get("wait_timeout") or ensure.DEFAULT_TIMEOUT),
                force_replace=bool(inputs.get("force_replace")),
            )
        except errors.GpuCloudError as exc:
            raise GpuCloudResourceError(f"create instance {inputs['name']!r} by placement: {exc}") from None
        after = result.outcome.after
        assert after is not None
        root_password = result.outcome.secrets.get("root_password") or result.outcome.secrets.get("password")
        outs = self._placed_outputs(inputs, after, result.to_dict(), root_password)
        return CreateResult(after.id, outs)

    def update(self, id_: str, _olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        olds, inputs = clean(_olds), clean(_news)
        provider = olds["placed_provider"]
        with self._cloud(provider, "update", repr(inputs["name"])) as cloud:
            current = cloud.get_instance(id_)
        record = dict(olds.get("placement") or {}, requirement=requirement_of(inputs).as_facts())
        return UpdateResult(self._placed_outputs(inputs, current, record, olds.get("root_password")))

    def _placed_outputs(self, inputs: Mapping[str, Any], live: Any, record: Any, root_password: Any) -> dict[str, Any]:
        """Inputs echoed, what the API reports, and the choice; a root password shown once stays a secret."""
        # The inputs win over what the API reports under the same name (image, tags, gpu_count): the diff compares
        # them; what was placed is in ``placement`` (its offer) and the other outputs.
        outs = instance_outputs(live)
        outs.update({k: inputs.get(k) for k in PLACED_INPUTS})
        secret = rpc.unwrap_rpc_secret(root_password) if root_password else None
        outs.update(
            provider="auto",
            placed_provider=live.provider,
            placement=record,
            root_password=rpc.wrap_rpc_secret(secret) if secret else None,
        )
        return outs

    # --- read / delete -----------------------------------------------------------------------------------
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state = clean(props)
        provider = state.get("placed_provider")
        if not isinstance(provider, str):
            raise GpuCloudResourceError(f"read instance {id_!r}: the state records no placed_provider")
        with self._cloud(provider, "read", repr(id_)) as cloud:
            try:
                live = cloud.get_instance(id_)
            except errors.NotFound:
                return ReadResult("", {})
        if live.status is Status.DELETED:
            return ReadResult("", {})
        outs = self._placed_outputs(state, live, state.get("placement"), state.get("root_password"))
        result = ReadResult(id_, outs)
        result.inputs = {k: v for k, v in outs.items() if k in PLACED_INPUTS and v is not None}
        return result

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        props = clean(_props)
        provider = props["placed_provider"]
        with self._cloud(provider, "delete", repr(props.get("name", id_))) as cloud:
            timeout = float(props.get("wait_timeout") or ensure.DEFAULT_TIMEOUT)
            ensure.ensure_instance_absent(cloud, instance_id=id_, wait=True, wait_timeout=timeout)


def _known_requirement(olds: Mapping[str, Any]) -> placement.Requirement | None:
    try:
        return requirement_of(olds)
    except (errors.ValidationError, pydantic.ValidationError):
        return None

"""Placement by requirement over the real emulator: ranking, failover, exhaustion, deadline, stability, replace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import gpucloud
from gpucloud import errors, placement
from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import client_overrides
from gpucloud.models import LocationAvailability, Offer
from gpucloud.placement import PlacementFailed, Requirement, Template
from gpucloud.reconcile import Action
from tests import ledger
from tests.conftest import connect

H100_VP = "1x-h100-sxm5-80gb-26vcpu-120gb"  # Voltage Park's one-GPU H100 shape, $1.99/h in the emulator
H100_DC = "1H100.80S.30V"  # DataCrunch's, $2.29/h at four locations
IMAGES = {
    "datacrunch": "ubuntu-24.04-cuda-12.8-open-docker",
    "dcdncloud": "ubuntu-22.04",
    "computestacks": "Nginx",
    "cloudnexus": "ubuntu-22.04-lts",
}
H100 = Requirement(gpu="h100", max_price_per_hour=3, providers=("voltagepark", "datacrunch"))
# Four vCPUs and 8 GB under $1/h at two locations: ComputeStacks' large, dcdncloud's s-large and d-large.
FOUR_VCPUS = Requirement(
    min_vcpus=4,
    min_memory_gb=8,
    max_price_per_hour=1,
    locations=("1", "eu-central"),
    providers=("computestacks", "dcdncloud"),
)


@pytest.fixture
def clouds(emulator: EmulatorServer, overrides: dict[str, dict[str, object]]) -> Iterator[dict[str, gpucloud.Provider]]:
    adapters = {name: connect(overrides, name) for name in overrides}
    yield adapters
    emulator.world.clear_stock()
    for adapter in adapters.values():
        adapter.close()


@pytest.fixture
def account(emulator: EmulatorServer) -> Iterator[dict[str, list[ledger.Item]]]:
    """Every provider's holdings before the test; after it, nothing new may be left."""
    before = {p: ledger.holdings(emulator, p) for p in ("voltagepark", "datacrunch", "dcdncloud", "computestacks")}
    yield before
    left = {p: ledger.settle(emulator, p, items) for p, items in before.items()}
    assert left == {p: [] for p in before}


def _template(name: str) -> Template:
    return Template(name=name, images=IMAGES)


def _teardown(clouds: dict[str, gpucloud.Provider], name: str) -> None:
    for cloud in clouds.values():
        found = cloud.find_instance(name) if cloud.name != "cloudnexus" else None
        if found is not None:
            cloud.delete_instance(found.id)
            cloud.wait_for_instance_gone(found.id, timeout=60)


def _offer(provider: str, itype: str, price: float | None, *, gpus: int = 1, locations: tuple[str, ...] = ()) -> Offer:
    return Offer(
        provider=provider,
        instance_type=itype,
        gpu_model="H100 SXM5 80GB",
        gpu_count=gpus,
        vcpus=16,
        memory_gb=64,
        price_per_hour=price,
        locations=tuple(LocationAvailability(location=loc, available=loc != "FULL") for loc in locations),
    )


# --- ranking (no request: the offers are given) ------------------------------------------------------
def test_ranking_is_price_then_preference_and_filters_by_the_requirement(clouds: dict[str, gpucloud.Provider]) -> None:
    offers = [
        _offer("datacrunch", "dc-cheap", 2.0, locations=("FIN-01", "FULL")),
        _offer("dcdncloud", "dcdn-same-price", 2.0, locations=("eu-central",)),
        _offer("datacrunch", "dc-dear", 3.5, locations=("FIN-01",)),
        _offer("datacrunch", "dc-eight", 1.0, gpus=8, locations=("FIN-01",)),
        _offer("voltagepark", "vp-no-price", None, locations=("anywhere",)),
        _offer("computestacks", "not-allowed", 0.5, locations=("1",)),
    ]
    requirement = Requirement(
        gpu="H100-SXM5", max_price_per_hour=3, providers=("dcdncloud", "datacrunch", "voltagepark")
    )
    ranked = placement.candidates(offers, requirement, clouds)
    # Same price: the preference order decides (dcdncloud before datacrunch); FULL shows no stock; too dear,
    # 8 GPUs, no price under a price cap and a provider not allowed are all out.
    assert [(c.provider, c.offer.instance_type, c.location) for c in ranked] == [
        ("dcdncloud", "dcdn-same-price", "eu-central"),
        ("datacrunch", "dc-cheap", "FIN-01"),
    ]
    by_location = placement.candidates(offers, requirement.model_copy(update={"locations": ("fin-01",)}), clouds)
    assert [c.offer.instance_type for c in by_location] == ["dc-cheap"]


def test_bad_requirements_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="providers"):
        Requirement(providers=("aws",))
    with pytest.raises(ValueError, match=r"gpu_count\n.*needs gpu"):
        Requirement(gpu_count=2)
    with pytest.raises(ValueError, match="max_price_per_hour"):
        Requirement(max_price_per_hour=-1)


# --- check mode ----------------------------------------------------------------------------------------
def test_check_mode_names_the_offer_and_sends_only_reads(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider]
) -> None:
    emulator.world.clear_requests()
    result = placement.place(clouds, H100, _template("place-check"), check_mode=True)
    assert result.outcome.changed and result.outcome.action is Action.CREATE and result.outcome.after is None
    assert (result.provider, result.chosen and result.chosen.offer.instance_type) == ("voltagepark", H100_VP)
    assert "capacity is known only at create time" in result.note
    assert {r.method for r in emulator.world.requests if r.provider in ("voltagepark", "datacrunch")} <= {"GET", "POST"}
    assert not [r for r in emulator.world.requests if r.method != "GET" and "token" not in r.path]


# --- failover ------------------------------------------------------------------------------------------
def test_failover_moves_to_the_next_offer_and_records_every_attempt(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    # The catalogue still shows Voltage Park's H100 (capacity is known only at create time); DataCrunch's first
    # location refuses once, then takes creates again.
    emulator.world.set_stock("voltagepark", H100_VP, left=0, stale_catalogue=True)
    emulator.world.set_stock("datacrunch", H100_DC, flap=True)
    try:
        result = placement.place(clouds, H100, _template("place-failover"), wait_timeout=120)
        assert result.outcome.action is Action.CREATE and result.outcome.after is not None
        assert result.provider == "datacrunch" and result.outcome.after.instance_type == H100_DC
        assert [(a.provider, a.error_class) for a in result.attempts] == [
            ("voltagepark", "NoCapacity"),
            ("datacrunch", "NoCapacity"),
        ]
        assert result.chosen is not None and result.chosen.location == result.outcome.after.location
        stock = emulator.world.stock()
        assert (stock["voltagepark"][H100_VP].refused, stock["datacrunch"][H100_DC].taken) == (1, 1)
        record = result.to_dict()
        assert record["provider"] == "datacrunch" and len(record["attempts"]) == 2
        assert record["requirement"] == {
            "gpu": "h100",
            "max_price_per_hour": 3.0,
            "providers": ["voltagepark", "datacrunch"],
        }
    finally:
        _teardown(clouds, "place-failover")


def test_exhausted_everywhere_is_one_error_listing_every_attempt_and_leaves_nothing(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    # ComputeStacks' large: an order that fails, leaving a project the adapter must delete; dcdncloud's s-large
    # and d-large: 503 no_capacity.
    for provider, itype in (("computestacks", "large"), ("dcdncloud", "s-large"), ("dcdncloud", "d-large")):
        emulator.world.set_stock(provider, itype, left=0, stale_catalogue=True)
    with pytest.raises(PlacementFailed) as failed:
        placement.place(clouds, FOUR_VCPUS, _template("place-nowhere"), wait_timeout=120)
    attempts = failed.value.attempts
    assert failed.value.code == "exhausted"
    assert [(a.provider, a.candidate and a.candidate.offer.instance_type) for a in attempts] == [
        ("dcdncloud", "s-large"),
        ("computestacks", "large"),
        ("dcdncloud", "d-large"),
    ]
    assert [a.error_class for a in attempts] == ["NoCapacity", "ProviderError", "NoCapacity"]
    for attempt in attempts:
        assert attempt.error in str(failed.value)


def test_an_error_no_other_offer_fixes_stops_the_placement(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    template = Template(name="place-badimage", images={**IMAGES, "datacrunch": "no-such-image"})
    emulator.world.set_stock("voltagepark", H100_VP, left=0, stale_catalogue=True)
    with pytest.raises(PlacementFailed) as failed:
        placement.place(clouds, H100, template, wait_timeout=60)
    assert failed.value.code == "attempt_failed"
    assert [a.provider for a in failed.value.attempts] == ["voltagepark", "datacrunch"]  # not DataCrunch's 3 others


def test_the_deadline_ends_the_placement_with_what_was_tried(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    # Every request takes 0.4 s: reading two catalogues alone takes longer than the 1.5 s allowed.
    emulator.world.set_faults(latency_ms=400)
    with pytest.raises(PlacementFailed) as failed:
        placement.place(clouds, H100, _template("place-deadline"), wait_timeout=1.5)
    assert failed.value.code == "deadline"
    assert "deadline of 1.5s passed" in str(failed.value)


# --- stable once placed, replace on a requirement change --------------------------------------------
def test_a_rerun_keeps_the_instance_where_it_went_even_when_a_cheaper_offer_appears(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    emulator.world.set_stock("voltagepark", H100_VP, left=0)
    try:
        first = placement.place(clouds, H100, _template("place-stable"), wait_timeout=120)
        assert first.provider == "datacrunch" and first.outcome.after is not None
        emulator.world.clear_stock()  # the cheaper Voltage Park H100 is back
        emulator.world.clear_requests()
        again = placement.place(clouds, H100, _template("place-stable"), wait_timeout=120)
        assert not again.outcome.changed and again.outcome.action is Action.NONE
        assert again.provider == "datacrunch" and again.outcome.after == first.outcome.after
        assert not [
            r for r in emulator.world.requests if r.method in ("POST", "PUT", "DELETE") and "token" not in r.path
        ]
    finally:
        _teardown(clouds, "place-stable")


def test_a_requirement_the_instance_no_longer_meets_is_a_replace_shown_in_check_mode(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    try:
        first = placement.place(clouds, H100, _template("place-change"), wait_timeout=120)
        assert first.provider == "voltagepark" and first.outcome.after is not None
        only_dc = H100.model_copy(update={"providers": ("datacrunch",)})
        with pytest.raises(gpucloud.Conflict, match=r"no longer meets.*force_replace") as refused:
            placement.place(clouds, only_dc, _template("place-change"), check_mode=True)
        assert refused.value.details["target"]["provider"] == "datacrunch"
        preview = placement.place(clouds, only_dc, _template("place-change"), check_mode=True, force_replace=True)
        assert preview.outcome.action is Action.REPLACE and preview.outcome.before == first.outcome.after
        assert preview.chosen is not None and preview.chosen.offer.instance_type == H100_DC
        assert "would move to datacrunch" in preview.note
        assert clouds["voltagepark"].find_instance("place-change") is not None  # check mode changed nothing
        moved = placement.place(clouds, only_dc, _template("place-change"), force_replace=True, wait_timeout=120)
        assert moved.outcome.action is Action.REPLACE and moved.provider == "datacrunch"
        assert clouds["voltagepark"].find_instance("place-change") is None
    finally:
        _teardown(clouds, "place-change")


# --- rate limits while failing over -------------------------------------------------------------------
def test_failover_paces_requests_under_the_published_limit() -> None:
    """dcdncloud publishes 60 requests a minute; a placement that fails over twice there gets no 429."""
    with EmulatorServer(provision_seconds=0.3, ssh=False) as server:
        assert server.settings.rate_limits["dcdncloud"] == 60
        options = client_overrides(server.url, server.settings)
        requirement = Requirement(min_vcpus=4, locations=("eu-central", "eu-west"), providers=("dcdncloud",))
        server.world.set_stock("dcdncloud", "s-large", left=0, stale_catalogue=True)
        with gpucloud.connect("dcdncloud", **options["dcdncloud"]) as cloud:
            result = placement.place({"dcdncloud": cloud}, requirement, _template("place-paced"), wait_timeout=120)
            assert [a.error_class for a in result.attempts] == ["NoCapacity", "NoCapacity"]
            assert result.outcome.after is not None and result.outcome.after.instance_type == "d-large"
            assert not [r for r in server.world.requests if r.fault in ("rate_limit", "rate_limit_burst")]
            assert [r.status for r in server.world.requests if r.method == "POST"] == [503, 503, 201]


# --- disk: stated by the offer, or chosen at create; neither: left out ----------------------------------------
def test_offers_state_their_disk_where_the_catalogue_does(clouds: dict[str, gpucloud.Provider]) -> None:
    disks = {
        name: {o.instance_type: o.disk_gb for o in clouds[name].list_offers()}
        for name in ("voltagepark", "dcdncloud", "computestacks", "datacrunch")
    }
    assert disks["voltagepark"][H100_VP] == 1500  # the instant-deploy preset's storage_gb
    assert disks["dcdncloud"]["s-large"] == 160  # the plan's disk_gb
    assert all(d is not None and d > 0 for d in disks["computestacks"].values())  # the package's storage
    assert disks["datacrunch"][H100_DC] is None  # the type's storage has a description only


def test_a_disk_minimum_skips_smaller_offers_and_sizes_the_os_disk_where_created(
    clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    big = H100.model_copy(update={"min_disk_gb": 2000.5})
    ranked = placement.candidates(placement.gather_offers(clouds, big)[0], big, clouds)
    # Voltage Park's H100 comes with 1500 GB: out. DataCrunch takes the OS disk size at create: in, at 2001 GB.
    assert {c.provider for c in ranked} == {"datacrunch"}
    try:
        placed = placement.place(clouds, big, _template("place-disk"), wait_timeout=120)
        assert placed.provider == "datacrunch" and placed.outcome.after is not None
        assert clouds["datacrunch"].os_disk_size_gb(placed.outcome.after) == 2001
        assert placed.to_dict()["requirement"]["min_disk_gb"] == 2000.5
        bigger = big.model_copy(update={"min_disk_gb": 4000})
        with pytest.raises(gpucloud.Conflict, match=r"OS disk 2001 GB < 4000 GB"):
            placement.place(clouds, bigger, _template("place-disk"), check_mode=True)
    finally:
        _teardown(clouds, "place-disk")


def test_a_disk_no_offer_states_or_takes_is_refused_saying_why(clouds: dict[str, gpucloud.Provider]) -> None:
    # dcdncloud plans state at most 200 GB and its OS disk cannot be chosen: nothing is placed on a guess.
    requirement = Requirement(min_vcpus=4, min_disk_gb=500, providers=("dcdncloud",))
    nearest = r"no offer meets the requirement \(nearest: dcdncloud .*disk 160 GB < 500"
    with pytest.raises(PlacementFailed, match=nearest):
        placement.place(clouds, requirement, _template("place-nodisk"), check_mode=True)
    with pytest.raises(ValueError, match="min_disk_gb"):
        Requirement(min_disk_gb=0)


# --- spot: never by default, allowed (ranked by its price), required -------------------------------------------
def test_spot_is_ranked_only_when_allowed_and_the_instance_is_created_as_spot(
    clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    offers = placement.gather_offers(clouds, H100)[0]
    assert not [c for c in placement.candidates(offers, H100, clouds) if c.spot]  # default: on-demand only
    allowed = H100.model_copy(update={"spot": "allowed"})
    ranked = placement.candidates(offers, allowed, clouds)
    # DataCrunch's H100 spot price ($0.80/h) beats Voltage Park's $1.99 on-demand one; DataCrunch on-demand stays.
    assert (ranked[0].provider, ranked[0].spot, ranked[0].price) == ("datacrunch", True, 0.8)
    assert ("voltagepark", False) in {(c.provider, c.spot) for c in ranked}
    try:
        placed = placement.place(clouds, allowed, _template("place-spot"), wait_timeout=120)
        after = placed.outcome.after
        assert after is not None and (placed.provider, after.spot) == ("datacrunch", True)
        assert placed.to_dict()["offer"]["spot"] is True and "spot" in placed.note
        with pytest.raises(gpucloud.Conflict, match="spot is not allowed"):
            placement.place(clouds, H100, _template("place-spot"), check_mode=True)
    finally:
        _teardown(clouds, "place-spot")


def test_spot_required_takes_spot_offers_only_and_refuses_where_none_is_sold(
    clouds: dict[str, gpucloud.Provider],
) -> None:
    required = Requirement.model_validate({"gpu": "h100", "spot": True, "providers": ["voltagepark", "datacrunch"]})
    assert required.spot == "required"
    ranked = placement.candidates(placement.gather_offers(clouds, required)[0], required, clouds)
    assert ranked and all(c.spot and c.provider == "datacrunch" for c in ranked)
    only_vp = required.model_copy(update={"providers": ("voltagepark",)})
    with pytest.raises(PlacementFailed, match=r"nearest: voltagepark .*no spot price \(spot: required\)"):
        placement.place(clouds, only_vp, _template("place-nospot"), check_mode=True)
    with pytest.raises(ValueError, match="spot"):
        Requirement(spot="sometimes")  # type: ignore[arg-type]


# --- the clean-up of a failed attempt runs beside the next attempt --------------------------------------------
def test_a_failed_order_leaves_its_project_to_the_caller_only_when_it_defers_settling(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    cloud = clouds["computestacks"]
    spec = placement.Template(name="place-settle", image="Nginx").spec(
        placement.Candidate(next(o for o in cloud.list_offers() if o.instance_type == "large"), "1", 0),
        cloud,
        Requirement(),
    )
    emulator.world.set_stock("computestacks", "large", left=0)

    def projects() -> list[str]:
        return [i["id"] for i in ledger.holdings(emulator, "computestacks") if i["kind"] == "project"]

    before = projects()
    with pytest.raises(gpucloud.ProviderError) as waited:
        cloud.create_instance(spec)
    assert waited.value.code == "order_failed" and waited.value.settle is None
    assert projects() == before  # undone before it raised
    with errors.settling_deferred(), pytest.raises(gpucloud.ProviderError) as deferred:
        cloud.create_instance(spec)
    assert deferred.value.settle is not None
    assert len(projects()) == len(before) + 1  # the failed order's project, left for the caller to settle
    deferred.value.settle()
    assert projects() == before


def test_failover_past_a_failed_order_leaves_nothing_once_it_returns(
    emulator: EmulatorServer, clouds: dict[str, gpucloud.Provider], account: dict[str, list[ledger.Item]]
) -> None:
    # dcdncloud's s-large refuses, ComputeStacks' "large" order fails (its project is deleted beside the next
    # attempt), dcdncloud's d-large takes it.
    emulator.world.set_stock("computestacks", "large", left=0)
    emulator.world.set_stock("dcdncloud", "s-large", left=0, stale_catalogue=True)
    try:
        result = placement.place(clouds, FOUR_VCPUS, _template("place-beside"), wait_timeout=120)
        assert result.outcome.after is not None and result.outcome.after.instance_type == "d-large"
        assert [(a.provider, a.error_class) for a in result.attempts] == [
            ("dcdncloud", "NoCapacity"),
            ("computestacks", "ProviderError"),
        ]
        # Returned only once the failed order's project was gone.
        assert ledger.leftovers(account["computestacks"], ledger.holdings(emulator, "computestacks")) == []
    finally:
        _teardown(clouds, "place-beside")


# --- kind: VMs by default; Voltage Park bare-metal nodes only when asked for -------------------------------------
def test_bare_metal_offers_are_placed_only_when_the_kind_allows_them_and_created_as_bare_metal(
    clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    eight = Requirement(gpu="h100", gpu_count=8, providers=("voltagepark",))
    offers = placement.gather_offers(clouds, eight)[0]
    assert {o.kind for o in offers} == {"vm", "bare_metal"}
    assert {c.offer.kind for c in placement.candidates(offers, eight, clouds)} == {"vm"}  # default: kind vm
    both = eight.model_copy(update={"kind": "any"})
    assert {c.offer.kind for c in placement.candidates(offers, both, clouds)} == {"vm", "bare_metal"}
    metal = eight.model_copy(update={"kind": "bare_metal"})
    ranked = placement.candidates(offers, metal, clouds)
    assert ranked and {c.offer.kind for c in ranked} == {"bare_metal"}
    try:
        # The template's image is for VMs: a bare-metal rental takes none (the provider installs the OS).
        placed = placement.place(clouds, metal, Template(name="place-metal", image="ubuntu"), wait_timeout=120)
        after = placed.outcome.after
        assert after is not None and (placed.provider, after.kind) == ("voltagepark", "bare_metal")
        assert after.instance_type == ranked[0].offer.instance_type
        assert placed.to_dict()["offer"]["kind"] == "bare_metal"
        with pytest.raises(gpucloud.Conflict, match=r"a bare-metal offer, and kind is vm"):
            placement.place(clouds, eight, _template("place-metal"), check_mode=True)
    finally:
        _teardown(clouds, "place-metal")
    with pytest.raises(ValueError, match="kind"):
        Requirement(kind="container")  # type: ignore[arg-type]


def test_a_location_requirement_places_voltage_park_bare_metal_and_keeps_it(
    clouds: dict[str, gpucloud.Provider], account: object
) -> None:
    """Voltage Park places VMs itself but rents bare metal where asked: a location requirement can be met by a
    node, and the rerun keeps it although the rental list does not report its location (its tag records the
    locations it was placed for)."""
    metal = Requirement(gpu="h100", gpu_count=8, kind="bare_metal", providers=("voltagepark",))
    offers = placement.gather_offers(clouds, metal)[0]
    ranked = placement.candidates(offers, metal, clouds)
    assert ranked and all(c.location is not None for c in ranked)
    where = ranked[-1].location
    assert where is not None
    name = ranked[-1].offer.locations[[loc.location for loc in ranked[-1].offer.locations].index(where)].name
    there = metal.model_copy(update={"locations": (name,)})
    chosen = placement.candidates(offers, there, clouds)
    assert chosen and {c.location for c in chosen} == {where}
    vms = Requirement(gpu="h100", locations=(name,), providers=("voltagepark",))
    assert placement.candidates(offers, vms, clouds) == []  # VMs: the provider places them, never "there"
    try:
        placed = placement.place(clouds, there, Template(name="place-metal-at"), wait_timeout=120)
        after = placed.outcome.after
        assert after is not None and after.kind == "bare_metal" and after.location is None
        rerun = placement.place(clouds, there, Template(name="place-metal-at"), wait_timeout=120)
        assert rerun.outcome.action is Action.NONE and rerun.outcome.after is not None
        assert rerun.outcome.after.id == after.id
        wider = there.model_copy(update={"locations": (name, "somewhere-else")})
        assert placement.place(clouds, wider, Template(name="place-metal-at"), check_mode=True).outcome.action is (
            Action.NONE
        )
        with pytest.raises(gpucloud.Conflict, match="its location is unknown"):
            other = there.model_copy(update={"locations": ("somewhere-else",)})
            placement.place(clouds, other, Template(name="place-metal-at"), check_mode=True)
    finally:
        _teardown(clouds, "place-metal-at")

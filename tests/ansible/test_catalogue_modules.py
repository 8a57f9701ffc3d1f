"""Finding valid values from a playbook alone: offer_info, image_info and location_info feed an instance that
the provider then creates (real ansible-playbook against the emulator, one play for all five providers)."""

from __future__ import annotations

from typing import Any

from gpucloud.capabilities import Capability
from gpucloud.emulator import EmulatorServer
from gpucloud.providers import implemented, provider_class

from .conftest import Ansible
from .test_modules import lookup, task

# CloudNexus documents no listing of instance types; these are the ones its API docs name for create.
CLOUDNEXUS_DOCUMENTED_TYPE = "standard-2x4"


def _discover(provider: str) -> list[dict[str, Any]]:
    tasks = [task("image_info", f"images_{provider}", provider=provider)]
    tasks.append(task("location_info", f"locations_{provider}", provider=provider))
    if Capability.OFFERS in provider_class(provider).capabilities:
        tasks.append(task("offer_info", f"offers_{provider}", provider=provider, min_gpus=0))
        # The cheapest available offer with the memory the first image needs (ComputeStacks images state a
        # minimum; elsewhere there is none and the cheapest offer is taken).
        need = f"images_{provider}.images[0].min_memory_gb or 0"
        pick = f"offers_{provider}.offers | selectattr('memory_gb', 'ge', {need}) | first"
        if provider != "computestacks":
            pick = f"offers_{provider}.offers | first"
        tasks.append(
            {"name": f"choose {provider}", "ansible.builtin.set_fact": {f"offer_{provider}": f"{{{{ {pick} }}}}"}}
        )
    return tasks


def _create_from_discovery(provider: str, name: str) -> dict[str, Any]:
    """An instance task whose type, image and location all come from the registered lookups."""
    caps = provider_class(provider).capabilities
    args: dict[str, Any] = {"provider": provider, "name": name, "wait": False}
    if Capability.OFFERS in caps:
        args["instance_type"] = f"{{{{ offer_{provider}.instance_type }}}}"
    else:
        args["instance_type"] = CLOUDNEXUS_DOCUMENTED_TYPE
    if Capability.INSTANCE_LOCATION_CHOICE in caps:
        # Where the chosen offer has capacity; without offers, the first listed location.
        args["location"] = (
            f"{{{{ offer_{provider}.available_locations[0] }}}}"
            if Capability.OFFERS in caps
            else f"{{{{ locations_{provider}.locations[0].id }}}}"
        )
    if provider != "voltagepark":  # Voltage Park presets fix the OS: its images are what a preset boots
        args["image"] = f"{{{{ images_{provider}.images[0].id }}}}"
    return task("instance", f"made_{provider}", **args)


def test_a_playbook_finds_a_valid_type_image_and_location_for_every_provider(
    ansible: Ansible, emulator: EmulatorServer
) -> None:
    providers = implemented()
    discover = [t for p in providers for t in _discover(p)]
    create = [_create_from_discovery(p, f"found-{p}") for p in providers]
    remove = [task("instance", f"gone_{p}", provider=p, name=f"found-{p}", state="absent") for p in providers]

    checked = ansible.play(discover, check=True)  # the lookups change nothing and run in check mode
    assert checked.rc == 0, checked.output
    for provider in providers:
        images, places = checked[f"images_{provider}"], checked[f"locations_{provider}"]
        assert images["changed"] is False and images["providers"] == [provider]
        assert images["images"] and all(i["provider"] == provider and i["id"] for i in images["images"])
        assert places["locations"] and all(loc["id"] and loc["name"] for loc in places["locations"])
        complete = provider != "cloudnexus"  # the only provider without catalogue endpoints
        assert {i["complete"] for i in images["images"]} == {complete}
        assert {loc["complete"] for loc in places["locations"]} == {complete}

    made = ansible.play([*discover, *create])
    try:
        assert made.rc == 0, made.output
        for provider in providers:
            result = made[f"made_{provider}"]
            assert result["changed"] is True and result["action"] == "create", result
            found = lookup(emulator, provider, "instance", f"found-{provider}")
            assert found is not None and found.id == result["instance"]["id"]
    finally:
        cleaned = ansible.play(remove)
    assert cleaned.rc == 0, cleaned.output
    for provider in providers:
        assert lookup(emulator, provider, "instance", f"found-{provider}") is None


def test_filters_and_provider_lists(ansible: Ansible) -> None:
    result = ansible.play(
        [
            task("image_info", "ubuntu", providers=["datacrunch", "dcdncloud"], name="UBUNTU-24.04"),
            task("location_info", "fin", provider="datacrunch", name="fin"),
            task("location_info", "everywhere"),
            task("image_info", "nothing", provider="dcdncloud", name="no-such-image-anywhere"),
        ]
    )
    assert result.rc == 0, result.output
    ubuntu = result["ubuntu"]["images"]
    assert {i["provider"] for i in ubuntu} == {"datacrunch", "dcdncloud"}
    assert all("ubuntu-24.04" in (i["id"] + i["name"]).lower() for i in ubuntu)
    assert [i["provider"] for i in ubuntu] == sorted(i["provider"] for i in ubuntu)
    assert result["fin"]["locations"] and all("fin" in loc["id"].lower() for loc in result["fin"]["locations"])
    assert sorted(result["everywhere"]["providers"]) == sorted(
        p for p in implemented() if Capability.LOCATIONS in provider_class(p).capabilities
    )
    assert result["nothing"]["images"] == []


def test_unknown_provider_in_the_list_fails_naming_the_option(ansible: Ansible) -> None:
    result = ansible.play([task("location_info", "bad", providers=["nocloud"], ignore_errors=True)])
    assert result["bad"]["failed"] is True
    assert result["bad"]["option"] == "providers" and "nocloud" in result["bad"]["msg"]

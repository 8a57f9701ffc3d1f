"""Host facts, names and groups shared by the inventory plugin and the Pulumi export (gpucloud.presentation)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpucloud import errors, presentation
from gpucloud.gpus import KNOWN, gpu_model_matches, normalise_gpu_model


@pytest.mark.parametrize(
    ("spelling", "neutral"),
    [
        ("H100 SXM5 80GB", "h100-sxm5-80gb"),  # DataCrunch
        ("h100-sxm5-80gb", "h100-sxm5-80gb"),  # Voltage Park
        ("NVIDIA H100 SXM5 80 GB", "h100-sxm5-80gb"),  # a spelling no table lists: the rules
        ("Tesla V100 16GB", "v100-16gb"),
        ("RTX A6000 48GB", "rtx-a6000-48gb"),
        ("  ", None),
        (None, None),
    ],
)
def test_one_spelling_per_gpu_model(spelling: str | None, neutral: str | None) -> None:
    assert normalise_gpu_model(spelling) == neutral


def test_the_table_agrees_with_the_rules_and_is_already_neutral() -> None:
    for neutral in KNOWN.values():
        assert normalise_gpu_model(neutral) == neutral
    assert gpu_model_matches("H100 SXM5 80GB", "h100-sxm5") and gpu_model_matches("h100-sxm5-80gb", "H100 SXM5")
    assert not gpu_model_matches("A100 SXM4 80GB", "h100") and not gpu_model_matches(None, "h100")


BOX = {"id": "i-1", "provider": "voltagepark", "name": "box", "status": "running", "raw_status": "Running"}


def test_facts_from_a_mapping_fill_every_field_and_name_the_location() -> None:
    facts = presentation.instance_facts(
        {**BOX, "gpu_model": "H100 SXM5 80GB", "gpu_count": 8.0, "ssh_port": 22.0, "location": "u-1"},
        {"u-1": "Ashburn"},
    )
    assert set(facts) == {*presentation.instance_fields(), "location_name", "placement"}
    assert facts["placement"] is None  # not placed by requirement
    assert (facts["gpu_model"], facts["gpu_count"], facts["ssh_port"]) == ("h100-sxm5-80gb", 8, 22)
    assert (facts["location"], facts["location_name"]) == ("u-1", "Ashburn")
    labels = presentation.group_labels(facts)
    assert [presentation.group_name(label) for label in labels] == [
        "gpucloud_voltagepark",
        "gpucloud_location_ashburn",
        "gpucloud_gpu_h100_sxm5_80gb",
        "gpucloud_status_running",
        "gpucloud_kind_vm",  # no kind in the mapping (Pulumi state from before kinds): a VM
    ]
    assert presentation.instance_facts({**BOX, "location": "u-2"})["location_name"] == "u-2"


def test_a_placed_host_carries_its_requirement_from_the_tag_or_the_pulumi_record() -> None:
    requirement = {"gpu": "h100", "max_price_per_hour": 3.0, "providers": ["voltagepark", "datacrunch"]}
    tag = {presentation.PLACEMENT_TAG: presentation.placement_tag_value(requirement), "team": "ml"}
    tagged = presentation.instance_facts({**BOX, "tags": tag})
    assert tagged["placement"] == requirement and tagged["tags"] == tag
    group = "gpucloud_placement_gpu_h100_max_price_per_hour_3_0_providers_voltagepark_datacrunch"
    assert presentation.group_name(presentation.group_labels(tagged)[-1]) == group
    # Pulumi outputs of a placed instance: provider "auto", where it went in placed_provider, the requirement in
    # the placement record (DataCrunch keeps no tags); the same facts and group as the plugin's from a tag.
    outputs = {**BOX, "provider": "auto", "placed_provider": "datacrunch", "placement": {"requirement": requirement}}
    pulumi_facts = presentation.instance_facts(outputs)
    assert (pulumi_facts["provider"], pulumi_facts["placement"]) == ("datacrunch", requirement)
    assert presentation.group_name(presentation.group_labels(pulumi_facts)[-1]) == group
    assert presentation.instance_facts({**BOX, "tags": {presentation.PLACEMENT_TAG: "by hand"}})["placement"] is None
    assert presentation.placement_label({}) == "placement_any"


def test_hostnames_take_the_first_entry_that_fits_and_never_drop_a_host() -> None:
    with_ip = presentation.instance_facts({**BOX, "public_ip": "10.0.0.9"})
    without = presentation.instance_facts({**BOX, "id": "i-2", "name": ""})
    names, warnings = presentation.hostnames([with_ip, without], ["public_ip", "name"])
    assert names == ["10.0.0.9", "voltagepark-i-2"] and warnings == []
    twins, warnings = presentation.hostnames([with_ip, {**with_ip, "id": "i-3"}], ["{provider}-{name}"])
    assert twins == ["voltagepark-box-i-1", "voltagepark-box-i-3"] and len(warnings) == 2


def test_a_hostnames_entry_naming_no_field_is_refused_with_the_valid_ones() -> None:
    fields = presentation.instance_fields()
    presentation.check_hostnames(["name", "{provider}-{id}"], fields)
    with pytest.raises(ValueError, match=r"'ip_address'.*public_ip"):
        presentation.check_hostnames(["name", "ip_address"], fields)
    with pytest.raises(ValueError, match="at least one"):
        presentation.check_hostnames([], fields)


def test_gather_returns_what_answered_and_names_what_failed() -> None:
    def fetch(name: str) -> list[str]:
        if name == "bad":
            raise errors.AuthError("token refused", provider=name, status_code=401)
        return [f"{name}-1", f"{name}-2"]

    items, failures = presentation.gather(["a", "bad", "b"], fetch)
    assert items == ["a-1", "a-2", "b-1", "b-2"]
    assert [f.as_dict() for f in failures] == [
        {"provider": "bad", "error_class": "AuthError", "message": "token refused (provider=bad, http=401)"}
    ]
    # The line starts with the provider: the error's context does not name it again.
    assert [str(f) for f in failures] == ["bad: AuthError: token refused (http=401)"]


def test_the_public_dict_of_a_resource_is_its_json_form_without_the_raw_payload() -> None:
    from datetime import UTC, datetime

    from gpucloud.models import Instance, Status

    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    raw = {"secret_field": "provider payload"}
    box = Instance(**{**BOX, "status": Status.RUNNING}, public_ip="10.0.0.9", ssh_port=22, created_at=created, raw=raw)
    data = presentation.public(box)
    assert "raw" not in data and "provider payload" not in json.dumps(data)
    assert data["status"] == "running" and data["created_at"] == "2026-01-02T03:04:05Z"
    assert json.loads(json.dumps(data)) == data  # plain JSON: tuples are lists, enums and datetimes strings
    shown = presentation.public_instance(box)
    assert shown == {**data, "ssh_host": "10.0.0.9"}
    no_ip = presentation.public_instance(box.model_copy(update={"public_ip": None}))
    assert no_ip["ssh_host"] is None
    variables = presentation.host_vars(presentation.instance_facts(box), "box")
    assert variables["gpucloud_ssh_host"] == shown["ssh_host"]


def test_presentation_loads_no_pydantic_or_httpx() -> None:
    # A cached inventory run uses this module; it must not pay for the models or the HTTP client.
    code = "import json, sys\nimport gpucloud.presentation\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert "gpucloud.presentation" in loaded
    assert not {"pydantic", "httpx", "gpucloud.models"} & loaded


@pytest.mark.parametrize(
    "created_at",
    [
        None,
        "2026-01-02T03:04:05.678Z",  # UTC: pydantic writes Z
        "2026-01-02T03:04:05+02:00",
        "2026-01-02T03:04:05",  # naive
        "2026-01-02T03:04:05.000001-07:30",
    ],
)
def test_facts_read_off_a_model_equal_its_json_dump(created_at: str | None) -> None:
    from gpucloud.models import Instance

    instance = Instance(
        **BOX,
        gpu_model="H100 SXM5 80GB",
        gpu_count=2,
        location="u-1",
        ssh_port=2222,
        ssh_key_ids=("k1", "k2"),
        tags={"team": "ml"},
        price_per_hour=1.5,
        created_at=created_at,
        raw={"secret": "not a fact"},
    )
    dumped = presentation.instance_facts(instance.model_dump(mode="json", exclude={"raw"}), {"u-1": "Utah 1"})
    facts = presentation.instance_facts(instance, {"u-1": "Utah 1"})
    assert facts == dumped and list(facts) == list(dumped)
    assert facts["status"] == "running" and type(facts["status"]) is str
    assert facts["ssh_key_ids"] == ["k1", "k2"] and facts["location_name"] == "Utah 1"
    # The model's own containers are never handed out: changing the facts leaves the instance as it was.
    facts["tags"]["team"] = "other"
    assert instance.tags == {"team": "ml"}

from __future__ import annotations

from ansible_collections.gpucloud.cloud.plugins.inventory.gpucloud import InventoryModule, _matches

INSTANCE = {
    "id": "i-1",
    "provider": "datacrunch",
    "name": "trainer",
    "status": "running",
    "location": "FIN-01",
    "gpu_model": "Tesla V100 16GB",
    "tags": {"team": "ml"},
}


def test_filters_all_have_to_match():
    assert _matches(INSTANCE, {})
    assert _matches(INSTANCE, {"status": ["running"], "gpu_model": ["v100"], "tags": {"team": "ml"}, "name": "^tr"})
    assert not _matches(INSTANCE, {"status": ["stopped"]})
    assert not _matches(INSTANCE, {"location": ["US-01"]})
    assert not _matches(INSTANCE, {"gpu_model": ["h100"]})
    assert not _matches(INSTANCE, {"tags": {"team": "web"}})
    assert not _matches(INSTANCE, {"name": "^x"})


class _Display:
    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)


class _Plugin(InventoryModule):
    def __init__(self, template):
        super().__init__()
        self._options = {"hostname": template}
        self.display = _Display()

    def get_option(self, option, hostvars=None):
        return self._options[option]


def test_clashing_hostnames_get_their_ids_appended():
    twin = dict(INSTANCE, id="i-2")
    other = dict(INSTANCE, id="i-3", provider="voltagepark")
    plugin = _Plugin("{provider}-{name}")
    assert plugin._hostnames([INSTANCE, twin, other]) == [
        "datacrunch-trainer-i-1",
        "datacrunch-trainer-i-2",
        "voltagepark-trainer",
    ]
    assert len(plugin.display.warnings) == 2


def test_verify_file_wants_the_plugin_suffix(tmp_path):
    good = tmp_path / "inventory.gpucloud.yml"
    bad = tmp_path / "inventory.yml"
    good.write_text("plugin: gpucloud.cloud.gpucloud\n")
    bad.write_text("plugin: gpucloud.cloud.gpucloud\n")
    plugin = InventoryModule()
    assert plugin.verify_file(str(good)) and not plugin.verify_file(str(bad))

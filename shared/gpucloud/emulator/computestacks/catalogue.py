"""ComputeStacks' fixed catalogue: locations and their zones, products, container images with variants and
volume params, and the csrn names the controller computes for them.
"""

from __future__ import annotations

import re

from gpucloud.emulator.world import JSONDict

# ------------------------------------------------------------------------------------------ catalogue
# Locations with their availability zones ("regions" in JSON).
LOCATIONS: list[JSONDict] = [
    {"id": 1, "name": "Emulator East", "regions": [{"id": 11, "name": "east-a"}]},
    {"id": 2, "name": "Emulator West", "regions": [{"id": 21, "name": "west-a"}, {"id": 22, "name": "west-b"}]},
]


ZONES = {zone["id"]: loc for loc in LOCATIONS for zone in loc["regions"]}


# (product id, name, cpu, memory MB, storage GB, price, term, zones where it is sold)
_PRODUCT_ROWS: list[tuple[int, str, str, int, int, str, str, tuple[int, ...]]] = [
    (1, "micro", "0.5", 512, 5, "0.005", "hour", (11, 21, 22)),
    (2, "small", "1.0", 1024, 10, "0.01", "hour", (11, 21, 22)),
    (3, "medium", "2.0", 4096, 20, "15.0", "month", (11, 21, 22)),
    (4, "large", "4.0", 8192, 40, "0.06", "hour", (11, 21, 22)),
    (5, "xlarge", "8.0", 16384, 80, "0.12", "hour", (21, 22)),  # only in the west
]


PRODUCTS: dict[int, JSONDict] = {
    pid: {
        "id": pid,
        "name": name,
        "cpu": cpu,  # BigDecimal renders as a string
        "memory": memory,
        "storage": storage,
        "bandwidth": 1000,
        "local_disk": storage,
        "backup": storage,
        "memory_swap": memory,
        "memory_swappiness": 60,
        "price": price,
        "term": term,
        "zones": zones,
    }
    for pid, name, cpu, memory, storage, price, term, zones in _PRODUCT_ROWS
}


def _variant(vid: int, label: str, default: bool) -> JSONDict:
    return {
        "id": vid,
        "label": label,
        "is_default": default,
        "version": 0 if default else 1,
        "registry_image_tag": label,
        "before_migrate": None,
        "after_migrate": None,
        "rollback_migrate": None,
        "validated_tag": True,
        "validated_tag_updated": "2024-01-01T00:00:00.000Z",
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
    }


def _volume_param(pid: int, label: str, path: str, sftp: bool) -> JSONDict:
    return {
        "id": pid,
        "label": label,
        "mount_path": path,
        "enable_sftp": sftp,
        "borg_enabled": True,
        "borg_freq": "@daily",
        "borg_strategy": "file",
        "borg_keep_hourly": 1,
        "borg_keep_daily": 5,
        "borg_keep_weekly": 2,
        "borg_keep_monthly": 3,
        "borg_keep_annually": 0,
        "borg_pre_backup": [],
        "borg_pre_restore": [],
        "borg_post_restore": [],
        "borg_rollback": [],
        "mount_ro": False,
        "source_volume_id": None,
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
    }


def _image(
    iid: int, label: str, role: str, category: str, min_cpu: str, min_memory: int, variants: list[JSONDict]
) -> JSONDict:
    return {
        "id": iid,
        "active": True,
        "can_scale": True,
        "command": None,
        "container_image_provider_id": 1,
        "description": f"{label} (emulated)",
        "is_free": False,
        "label": label,
        "min_cpu": min_cpu,
        "min_memory": min_memory,
        "registry_custom": False,
        "registry_image_path": f"cmptstks/{role}",
        "registry_auth": False,
        "is_load_balancer": False,
        "role": role,
        "category": category,
        "labels": {},
        "validated_tag": True,
        "validated_tag_updated": "2024-01-01T00:00:00.000Z",
        "shm_size": 0,
        "docker_init": False,
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
        "icon_url": f"/assets/icons/{role}.png",
        "system_image": True,
        "available_vars": [],
        "env_params": [],
        "host_entries": [],
        "setting_params": [],
        "ingress_params": [],
        "image_variants": variants,
        "links": {"container_image_provider": "/api/container_image_providers/1"},
    }


IMAGES: dict[int, JSONDict] = {
    1: _image(1, "Nginx", "nginx", "web", "0.5", 256, [_variant(101, "latest", True), _variant(102, "1.25", False)]),
    2: _image(2, "MariaDB", "mysql", "database", "1.0", 768, [_variant(201, "10.11", True)]),
    3: _image(3, "WordPress", "wordpress", "web", "1.0", 512, [_variant(301, "latest", True)]),
}


VOLUME_PARAMS: dict[int, list[JSONDict]] = {
    1: [
        _volume_param(1001, "html", "/usr/share/nginx/html", True),
        _volume_param(1002, "Config Files", "/etc/nginx/conf.d", True),
    ],
    2: [_volume_param(2001, "data", "/var/lib/mysql", False)],
    3: [_volume_param(3001, "wordpress", "/var/www/html", True)],
}


DEPENDENCIES: dict[int, list[int]] = {3: [2]}  # WordPress needs a MariaDB in the same project
VARIANTS = {v["id"]: (iid, v) for iid, image in IMAGES.items() for v in image["image_variants"]}


def resource_name(label: str | None) -> str:
    """The csrn friendly name, as ``ContainerImage::VolumeParam#resource_name`` computes it."""
    if not label or not label.strip():
        return "null"
    lowered = re.sub(r"[^a-z0-9 \t\r\n\f\v]", "", label.strip().lower())
    return lowered.replace(" ", "_")[:11]


def volume_param_csrn(param: JSONDict) -> str:
    return f"csrn:caas:template:vol:{resource_name(param['label'])}:{param['id']}"


def image_json(image: JSONDict) -> JSONDict:
    return {**image, "volumes": VOLUME_PARAMS[image["id"]], "required_containers": DEPENDENCIES.get(image["id"], [])}

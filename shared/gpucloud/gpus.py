"""One vendor-neutral spelling per GPU model, whatever a provider calls it.

The form is Voltage Park's, the only API that names models as keys: lower case, words joined by ``-``,
``<model>-<form factor>-<memory>`` (``h100-sxm5-80gb``). Other providers' spellings are mapped by the table
below where they are known and by the same rules otherwise, so a model no table lists yet still comes out in
the one form (and both spellings of it come out the same).
"""

from __future__ import annotations

import re

# Provider spellings seen in the API docs (/work/shared/api-docs) and the emulator catalogues, with the
# vendor-neutral name they stand for. Only spellings the rules below would get wrong need to be here.
KNOWN: dict[str, str] = {
    # Voltage Park: resources.gpus keys and bare-metal specs_per_node.gpu_model (already neutral).
    "h100-sxm5-80gb": "h100-sxm5-80gb",
    # DataCrunch/Verda: instance-types gpu.description, "<n>x " stripped by the adapter.
    "H100 SXM5 80GB": "h100-sxm5-80gb",
    "A100 SXM4 80GB": "a100-sxm4-80gb",
    "L40S 48GB": "l40s-48gb",
    "Tesla V100 16GB": "v100-16gb",
    # dcdncloud and CloudNexus document no GPU field; ComputeStacks products carry no GPU model.
}
# Brand words that carry no information about the model (every model here is one vendor's).
_BRANDS = ("nvidia", "tesla", "geforce")
_NORMALISED = {key.lower(): value for key, value in KNOWN.items()}


def normalise_gpu_model(spelling: str | None) -> str | None:
    """``"H100 SXM5 80GB"`` / ``"NVIDIA H100-SXM5-80GB"`` / ``"h100-sxm5-80gb"`` -> ``"h100-sxm5-80gb"``."""
    if spelling is None or not spelling.strip():
        return None
    known = _NORMALISED.get(spelling.strip().lower())
    if known is not None:
        return known
    words = re.split(r"[^a-z0-9.]+", spelling.lower())
    kept = [w for w in words if w and w not in _BRANDS]
    # "80 GB" -> "80gb": memory written apart from its unit is still one word.
    joined = "-".join(kept)
    return re.sub(r"(\d)-(gb|tb)\b", r"\1\2", joined) or None


def gpu_model_matches(model: str | None, wanted: str) -> bool:
    """Whether ``wanted`` (any spelling, or a part such as ``h100``) names ``model``, compared normalised."""
    have = normalise_gpu_model(model) or ""
    want = normalise_gpu_model(wanted) or ""
    return bool(want) and want in have

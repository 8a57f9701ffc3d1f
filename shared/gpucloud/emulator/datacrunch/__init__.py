"""DataCrunch, emulated (the whole module, as moved; split into state and wire next)."""

from gpucloud.emulator.datacrunch.responses import SPEC

__all__ = ["SPEC"]

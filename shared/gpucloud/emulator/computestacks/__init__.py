"""ComputeStacks, emulated (the whole module, as moved; split into state and wire next)."""

from gpucloud.emulator.computestacks.responses import SPEC, volume_param_csrn

__all__ = ["SPEC", "volume_param_csrn"]

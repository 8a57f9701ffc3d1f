"""Voltage Park, emulated (the whole module, as moved; split into state and wire next)."""

from gpucloud.emulator.voltagepark.responses import PRESETS, SPEC  # tests switch capacity per preset id

__all__ = ["PRESETS", "SPEC"]

"""Built-in emulator of GPU cloud provider APIs: a real HTTP server (FastAPI + uvicorn), real sshd per
running instance, injectable faults. Needs the ``emulator`` extra (fastapi, uvicorn).

    with EmulatorServer(provision_seconds=0.3) as emu:
        client = verda.VerdaClient(**emu.credentials["datacrunch"], base_url=emu.base_url("datacrunch"))

Credentials are random per run (``emu.credentials``); the control API needs ``emu.control_headers``.
"""

from gpucloud.emulator.server import EmulatorServer, serve
from gpucloud.emulator.world import EmulatorSettings, Faults, World

__all__ = ["EmulatorServer", "EmulatorSettings", "Faults", "World", "serve"]

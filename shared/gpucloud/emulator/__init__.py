"""Built-in emulator of GPU cloud provider APIs: a real HTTP server (FastAPI + uvicorn), real sshd per
running instance, injectable faults. Needs the ``emulator`` extra (fastapi, uvicorn).

    with EmulatorServer(provision_seconds=0.3) as emu:
        client = verda.VerdaClient(**EMULATOR_CREDENTIALS["datacrunch"], base_url=emu.base_url("datacrunch"))
"""

from gpucloud.emulator.server import EmulatorServer, serve
from gpucloud.emulator.world import EMULATOR_CREDENTIALS, EmulatorSettings, Faults, World

__all__ = ["EMULATOR_CREDENTIALS", "EmulatorServer", "EmulatorSettings", "Faults", "World", "serve"]

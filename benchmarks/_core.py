"""What every benchmark scenario shares: results with ratios, a registry, and an emulator in its own process.

The emulator runs as a separate ``gpucloud emulator`` process so its event loop never competes with the
code being measured for this process's GIL; scenarios talk to it over HTTP only (its ``/_emulator`` control API).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gpucloud.emulator.client import control_headers, read_env_file, wait_until_healthy

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """One measured figure against its baseline from the same run."""

    name: str
    measured_s: float
    baseline_s: float
    api_calls: int | None = None
    target: float | None = None  # the largest acceptable ratio; None: reported, not judged
    detail: str = ""

    @property
    def ratio(self) -> float:
        return self.measured_s / self.baseline_s if self.baseline_s > 0 else float("inf")

    @property
    def held(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target

    def to_json(self, scenario: str) -> str:
        """One machine-readable line; ``scenario`` names the registered scenario that produced it."""
        return json.dumps(
            {
                "scenario": scenario,
                "name": self.name,
                "measured": round(self.measured_s, 6),
                "baseline": round(self.baseline_s, 6),
                "ratio": round(self.ratio, 4),
                "api_calls": self.api_calls,
                "target": self.target,
                "held": self.held,
                "detail": self.detail,
            }
        )


@dataclass
class Context:
    """Sizes for one run: ``smoke`` shrinks everything so CI can check the benchmark still works."""

    smoke: bool
    rtt_ms: float = 50.0
    hosts: int = 10_000
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gpucloud-bench-")))

    @classmethod
    def create(cls, smoke: bool) -> Context:
        return cls(smoke=True, rtt_ms=5.0, hosts=60) if smoke else cls(smoke=False)

    def target(self, value: float) -> float | None:
        """Targets are judged on full runs only; smoke sizes are too small to mean anything."""
        return None if self.smoke else value


Scenario = Callable[[Context], list[Result]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return register


@dataclass
class Emulator:
    """A running ``gpucloud emulator`` process and the env that points gpucloud clients at it."""

    url: str
    env: dict[str, str]
    env_file: Path
    pid: int | None = None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the emulator process has used so far; None where /proc cannot tell."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5))

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = control_headers(self.env)  # the control API's own token, from the run's env file
        response = httpx.request(method, f"{self.url}/_emulator{path}", headers=headers, timeout=60, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def requests(self, provider: str | None = None) -> list[dict[str, Any]]:
        params = {"provider": provider} if provider else None
        result: list[dict[str, Any]] = self.control("GET", "/requests", params=params)
        return result

    def clear_requests(self) -> None:
        self.control("DELETE", "/requests")

    def set_faults(self, **changes: Any) -> None:
        self.control("POST", "/faults", json=changes)

    def child_env(self, **extra: str) -> dict[str, str]:
        """os.environ plus the emulator's client settings, for subprocesses such as ansible-inventory."""
        return {**os.environ, **self.env, **extra}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def emulator(ctx: Context, *args: str) -> Iterator[Emulator]:
    """Start ``gpucloud emulator`` with extra CLI ``args`` (e.g. ``--latency-ms 25``); stop it afterwards."""
    port = free_port()
    env_file = ctx.workdir / f"emulator-{port}.env"
    log_file = ctx.workdir / f"emulator-{port}.log"
    command = [sys.executable, "-m", "gpucloud.cli", "emulator", "--port", str(port), "--env-file", str(env_file)]
    with open(log_file, "wb") as log:
        proc = subprocess.Popen([*command, *args], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, timeout=120)
        yield Emulator(url=url, env=read_env_file(env_file), env_file=env_file, pid=proc.pid)
    except Exception:
        sys.stderr.write(log_file.read_text(errors="replace")[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# An Ansible callback that times every task from its start to its result and writes the records as JSON to
# $GPUCLOUD_BENCH_TIMINGS at the end of the play; playbook start-up is thus never part of a measurement.
_TASK_TIMER_NAME = "gpucloud_bench_timer"
_TASK_TIMER = """
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

KEPT = ("created", "removed", "instances")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "gpucloud_bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = {}
        self._records = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = time.perf_counter()

    def _record(self, result, outcome):
        task = result._task
        self._records.append(
            {
                "task": task.get_name(),
                "seconds": time.perf_counter() - self._started[task._uuid],
                "outcome": outcome,
                "changed": bool(result._result.get("changed")),
                "msg": str(result._result.get("msg", ""))[:500],
                **{key: result._result.get(key) for key in KEPT},
            }
        )

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["GPUCLOUD_BENCH_TIMINGS"], "w") as handle:
            json.dump(self._records, handle)
"""


def run_timed_playbook(
    workdir: Path, emu: Emulator, tasks: list[dict[str, Any]], drop_env_suffixes: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Run ``tasks`` on localhost with ansible-playbook against ``emu``; one timing record per task, in order.

    Each record has task, seconds, outcome (ok/failed/unreachable), changed, msg and the module's created/
    removed/instances. Variables of the emulator env ending in one of ``drop_env_suffixes`` are left out.
    """
    import yaml

    plugins = workdir / "callback_plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / f"{_TASK_TIMER_NAME}.py").write_text(_TASK_TIMER)
    playbook = workdir / "playbook.yml"
    play = {"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    timings = workdir / "timings.json"
    env = emu.child_env(
        ANSIBLE_COLLECTIONS_PATH=str(REPO),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False",
        ANSIBLE_CALLBACK_PLUGINS=str(plugins),
        ANSIBLE_CALLBACKS_ENABLED=_TASK_TIMER_NAME,
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCAL_TEMP=str(workdir / "tmp"),
        ANSIBLE_HOME=str(workdir / "ansible-home"),
        GPUCLOUD_CONFIG=str(workdir / "no-config.toml"),
        GPUCLOUD_BENCH_TIMINGS=str(timings),
    )
    env = {k: v for k, v in env.items() if not k.endswith(drop_env_suffixes)} if drop_env_suffixes else env
    playbook_bin = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(playbook_bin), "-i", "localhost,", str(playbook)], env=env, capture_output=True, text=True, cwd=workdir
    )
    if proc.returncode != 0 or not timings.exists():
        raise RuntimeError(
            f"ansible-playbook failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    records: list[dict[str, Any]] = json.loads(timings.read_text())
    return records

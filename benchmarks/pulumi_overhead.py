"""Scenario 6: what the Pulumi dynamic provider adds on top of the HTTP call a no-change Diff / a Read makes.

Driven through ``tests/pulumi/harness.py``: the SDK's own provider server (``python -m pulumi.dynamic``) over
gRPC, properties marshalled as the engine does. The resource is an instance with one SSH key by name, so:

- a no-change Diff makes exactly one API call (it lists the account's SSH keys to resolve the name to an id;
  the other fields are compared with the state, offline);
- a Read (refresh) makes exactly one API call (get the instance by id).

Both counts are checked from the emulator's request log before timing. The baseline is that same call made
directly with a gpucloud adapter in this process (``list_ssh_keys()`` / ``get_instance(id)``: request, JSON,
models), warm, against the same emulator with the same injected latency. Each round times, in rotating order,
the Diff RPC, its HTTP call, the Read RPC and its HTTP call; medians over the rounds are reported after two
warm-up rounds (the provider process imports gpucloud and builds its adapter on first use).

``measured`` is the RPC as the engine sees it (marshal, gRPC, unmarshal, provider work, the HTTP call),
``baseline`` the bare HTTP call; the goal "≤ 10 ms above the HTTP call" becomes the ratio target
``(baseline + 10 ms) / baseline``, computed from this run's baseline, and the overhead in ms is in ``detail``.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from benchmarks._core import Context, Emulator, Result, emulator, scenario

PROVIDER = "cloudnexus"  # bearer token, SSH keys by name: one call per Diff and per Read
SPEC = {"instance_type": "standard-2x4", "image": "ubuntu-22.04-lts", "location": "us-east-1"}
TYPES = {
    "instance": "pulumi-python:dynamic/gpucloud:Instance",
    "ssh_key": "pulumi-python:dynamic/gpucloud:SshKey",
}
OVERHEAD_LIMIT_S = 0.010


def _client_env(emu: Emulator) -> dict[str, str]:
    """The emulator's client settings, unpaced: the client's own pacing under the provider's published limit
    (120 requests a minute for CloudNexus, bursts of 20) would otherwise add its waits to the RPCs measured."""
    from gpucloud.config import env_var
    from gpucloud.emulator.client import UNPACED_PER_MINUTE

    return {**emu.env, env_var(PROVIDER, "requests_per_minute"): str(UNPACED_PER_MINUTE)}


def _overrides(emu: Emulator) -> dict[str, str]:
    from gpucloud.config import ProviderConfig, env_var

    env = _client_env(emu)
    return {
        field: env[env_var(PROVIDER, field)]
        for field in ProviderConfig.model_fields
        if field != "provider" and env_var(PROVIDER, field) in env
    }


def _public_key(ctx: Context) -> str:
    private = ctx.workdir / "pulumi-bench-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(private)], check=True)
    return private.with_suffix(".pub").read_text().strip()


def _calls(emu: Emulator, action: Callable[[], Any]) -> list[str]:
    emu.clear_requests()
    action()
    return [f"{r['method']} {r['path']}" for r in emu.requests(PROVIDER)]


def _result(ctx: Context, name: str, rpc: list[float], http: list[float], calls: list[str]) -> Result:
    measured, baseline = statistics.median(rpc), statistics.median(http)
    overhead_ms = (measured - baseline) * 1000
    return Result(
        name=f"pulumi_overhead[{name}]",
        measured_s=measured,
        baseline_s=baseline,
        api_calls=len(calls),
        target=ctx.target((baseline + OVERHEAD_LIMIT_S) / baseline),
        detail=(
            f"overhead {overhead_ms:+.1f} ms (limit +{OVERHEAD_LIMIT_S * 1000:g} ms); medians of {len(rpc)} rounds, "
            f"{ctx.rtt_ms:g} ms RTT, {PROVIDER}; calls: {', '.join(calls)}"
        ),
    )


@scenario("pulumi_overhead")
def pulumi_overhead(ctx: Context) -> list[Result]:
    import gpucloud
    from pulumi_gpucloud import GpuCloudProvider
    from tests.pulumi.harness import DynamicProviderHarness, program_inputs

    warmup, rounds = 2, (4 if ctx.smoke else 40)
    project = ctx.workdir / "pulumi-project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "Pulumi.yaml").write_text("name: gpucloud-bench\nruntime: python\n")
    with emulator(ctx, "--latency-ms", f"{ctx.rtt_ms:g}", "--provision-seconds", "0.2") as emu:
        # Neither the emulator's enforcement of the published limit nor the client's pacing is under test here.
        emu.control("POST", "/rate-limit", json={"provider": PROVIDER, "per_minute": None})
        env = {**emu.child_env(GPUCLOUD_CONFIG=str(ctx.workdir / "no-config.toml")), **_client_env(emu)}
        with DynamicProviderHarness(project, project="gpucloud-bench", env=env) as harness:
            key_props = {"provider": PROVIDER, "name": "bench-key", "public_key": _public_key(ctx)}
            harness.up("bench-key", GpuCloudProvider("ssh_key"), key_props, TYPES["ssh_key"])
            instance = GpuCloudProvider("instance")
            props = {"provider": PROVIDER, "name": "bench-instance", "ssh_keys": ["bench-key"], **SPEC}
            state = harness.up("bench-instance", instance, props, TYPES["instance"]).state
            # What the engine sends a Diff on the next `pulumi up` with an unchanged program.
            news, failures = harness.check(
                TYPES["instance"], "bench-instance", state.inputs, program_inputs(instance, props)
            )
            if failures:
                raise RuntimeError(f"Check failed: {failures}")

            def diff() -> None:
                outcome = harness.diff(state, news)
                if outcome.kind != "none":
                    raise RuntimeError(f"expected a no-change Diff, got {outcome}")

            def read() -> None:
                if harness.read(state) is None:
                    raise RuntimeError("Read lost the instance")

            diff_calls, read_calls = _calls(emu, diff), _calls(emu, read)
            with gpucloud.connect(PROVIDER, **_overrides(emu)) as cloud:

                def http_diff() -> None:
                    cloud.list_ssh_keys()

                def http_read() -> None:
                    cloud.get_instance(state.id)

                direct = {"diff": _calls(emu, http_diff), "read": _calls(emu, http_read)}
                if direct != {"diff": diff_calls, "read": read_calls}:
                    raise RuntimeError(f"baseline calls {direct} differ from the RPCs' {diff_calls} / {read_calls}")
                steps: list[tuple[str, Callable[[], None]]] = [
                    ("diff", diff),
                    ("http_diff", http_diff),
                    ("read", read),
                    ("http_read", http_read),
                ]
                times: dict[str, list[float]] = {name: [] for name, _ in steps}
                for index in range(warmup + rounds):
                    shift = index % len(steps)
                    for name, step in steps[shift:] + steps[:shift]:
                        start = time.perf_counter()
                        step()
                        elapsed = time.perf_counter() - start
                        if index >= warmup:
                            times[name].append(elapsed)
    return [
        _result(ctx, "diff", times["diff"], times["http_diff"], diff_calls),
        _result(ctx, "read", times["read"], times["http_read"], read_calls),
    ]

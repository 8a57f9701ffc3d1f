"""Scenario 3: an idempotent ``gpucloud.cloud.instance state=present`` run against an existing instance.

The module task is the default path users get: on localhost with the controller's own Python, gpucloud's
action plugin runs the module's ``main()`` in the task's worker, no module process (the collection's
plugins/plugin_utils/in_process.py). The same task through a module process (the path remote hosts, become
or another interpreter take; here forced with ``gpucloud_in_process: false``) is reported next to it as
``module_noop[<provider>+module_process]``, and the one-off cost of loading gpucloud into ``ansible-playbook``
(paid once per playbook, before its first gpucloud task) as ``module_noop_preload``.

Baseline: an ``ansible.builtin.uri`` task doing one GET (the list request the headline provider's module
makes, same bearer token) against the same emulator with the same injected latency, in the same playbook.
Both task kinds pay the same Ansible costs for the worker fork; the uri task and a module-process task also
start a fresh Python interpreter from an AnsiballZ payload, which the in-process path does not. What differs
otherwise is what the module adds on top of one GET: (importing gpucloud,) building its config and client, and
any extra API calls.

Fairness: one playbook holds ``reps`` rounds of one uri task and one module task per provider, rotating which
runs first, so drift in machine load hits every kind alike; a small callback plugin times every task from its
start to its result, and each kind is reported as the median over the rounds (the first round, which builds
and caches the AnsiballZ payloads, is a warm-up and not counted). API calls are counted from the emulator's
request log in a separate, untimed run of the module alone; the timed run is checked to make exactly the
calls that predicts.

The OAuth providers (DataCrunch, ComputeStacks) are also run with the opt-in token cache on
(``module_noop[<provider>+token_cache]``, reported, not judged: the target is for the default configuration);
their calls are counted on a second run, once the first has filled the cache.

On a busy machine wall times mostly measure the wait for a CPU, so one more, load-independent figure is
reported (no target): the CPU time (user + system, from ``wait4``) of the module process against that of the
uri module process, each run directly on the same arguments outside Ansible. ``module_noop_preload`` is CPU
too: a fresh interpreter loading the ``gpucloud.cloud.instance`` action class through Ansible's plugin loader
(which preloads gpucloud), against one loading ``ansible.builtin.debug``'s.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._core import REPO, Context, Emulator, Result, emulator, run_timed_playbook, scenario

# Headline provider: a static API token, so its no-op is one GET, like the baseline (whose request it is).
# The others are judged against the same baseline and target (issue 18: every provider): those whose API
# needs more than one round trip (an OAuth token first; ComputeStacks' per-project bastion) pay each in full
# at the emulator's latency.
HEADLINE = "dcdncloud"
OTHERS = ("cloudnexus", "datacrunch", "voltagepark", "computestacks")
# The OAuth providers again with the opt-in token cache (gpucloud.tokencache) on: a task reuses the token an
# earlier task obtained, so its no-op makes one round trip less. Kind names are ``<provider>+token_cache``.
CACHED = ("datacrunch", "computestacks")
CACHE_SUFFIX = "+token_cache"
# The same task through a module process (gpucloud_in_process: false), for every provider: reported.
PROCESS_SUFFIX = "+module_process"
TARGET_RATIO = 1.2
MODULE = "gpucloud.cloud.instance"

# Instance shapes the emulator offers (as in tests/contract/specs.py).
SPECS: dict[str, dict[str, str]] = {
    "datacrunch": {"instance_type": "1V100.6V", "image": "ubuntu-24.04-cuda-12.8-open-docker", "location": "FIN-01"},
    "voltagepark": {"instance_type": "1x-h100-sxm5-80gb"},
    "dcdncloud": {"instance_type": "s-small", "image": "ubuntu-22.04", "location": "eu-central"},
    "cloudnexus": {"instance_type": "standard-2x4", "image": "ubuntu-22.04-lts", "location": "us-east-1"},
    "computestacks": {"instance_type": "small", "image": "Nginx", "location": "1"},
}


# Times each task from its start to its result and writes them all to $GPUCLOUD_BENCH_TIMINGS at the end.
def _overrides(emu: Emulator, provider: str) -> dict[str, str]:
    """``gpucloud.connect`` keywords for ``provider`` from the emulator's env file."""
    from gpucloud.config import ProviderConfig, env_var

    return {
        field: emu.env[env_var(provider, field)]
        for field in ProviderConfig.model_fields
        if field != "provider" and env_var(provider, field) in emu.env
    }


def _seed(emu: Emulator, provider: str) -> None:
    """Create the instance the module will find (and wait until it runs, so the no-op has nothing to wait for)."""
    import gpucloud
    from gpucloud import ensure

    spec = gpucloud.InstanceSpec(name=f"bench-noop-{provider}", **SPECS[provider])
    with gpucloud.connect(provider, **_overrides(emu, provider)) as cloud:
        ensure.ensure_instance(cloud, spec, wait=True, wait_timeout=120)


def _bearer(emu: Emulator, provider: str) -> str:
    """The Authorization header value the module's list call sends, so the baseline GET is the same request."""
    import gpucloud

    with gpucloud.connect(provider, **_overrides(emu, provider)) as cloud:
        seen: dict[str, str] = {}

        def capture(request: Any) -> None:
            seen.setdefault("authorization", request.headers.get("authorization", ""))

        cloud.transport._client.event_hooks["request"].append(capture)
        cloud.list_instances()
    return seen["authorization"]


def _provider(kind: str) -> str:
    return kind.removesuffix(CACHE_SUFFIX).removesuffix(PROCESS_SUFFIX)


def _instance_task(kind: str, label: str, cache_dir: Path | None = None) -> dict[str, Any]:
    """The module task for ``kind``; a ``+token_cache`` kind turns the token cache on (in ``cache_dir``), a
    ``+module_process`` kind opts out of the in-process path."""
    provider = _provider(kind)
    args = {"provider": provider, "name": f"bench-noop-{provider}", "state": "present", **SPECS[provider]}
    task: dict[str, Any] = {"name": label, MODULE: args}
    if kind.endswith(PROCESS_SUFFIX):
        task["vars"] = {"gpucloud_in_process": False}
    elif kind != provider:
        if cache_dir is None:
            raise ValueError(f"{kind} needs a cache directory")
        task["environment"] = {f"GPUCLOUD_{provider.upper()}_TOKEN_CACHE": "true", "XDG_CACHE_HOME": str(cache_dir)}
    return task


def _uri_task(url: str, authorization: str, label: str) -> dict[str, Any]:
    return {
        "name": label,
        "ansible.builtin.uri": {"url": url, "method": "GET", "headers": {"Authorization": authorization}},
        "no_log": True,  # the header holds the emulator's (fake) credential; keep even that out of output
    }


def _run_playbook(ctx: Context, emu: Emulator, tasks: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    records = run_timed_playbook(ctx.workdir / f"module-noop-{tag}", emu, tasks)
    bad = [r for r in records if r["outcome"] != "ok" or (r["task"].startswith("module") and r["changed"])]
    if bad:
        raise RuntimeError(f"a benchmark task failed or was not a no-op: {bad[:3]}")
    return records


def _process_cpu(command: list[str], env: dict[str, str], output: Path) -> float:
    """CPU seconds (user + system) one process used: its cost to the machine, however busy the machine is.
    Its output goes to ``output``; a non-zero exit is a RuntimeError showing it."""
    with open(output, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait for it again
    if proc.returncode != 0:
        raise RuntimeError(f"{command[1:]} failed: {output.read_text()[-2000:]}")
    return usage.ru_utime + usage.ru_stime


def _noop_cpu(command: list[str], env: dict[str, str], output: Path) -> float:
    """:func:`_process_cpu` of a module process that must report neither a failure nor a change."""
    cpu = _process_cpu(command, env, output)
    result = json.loads(output.read_text().strip().splitlines()[-1])
    if result.get("failed") or result.get("changed"):
        raise RuntimeError(f"{command[1:]} did not run as a no-op: {output.read_text()[-2000:]}")
    return cpu


def _cpu_medians(
    ctx: Context, emu: Emulator, provider: str, url: str, authorization: str, reps: int
) -> tuple[float, float]:
    """Median CPU of the module process and of the uri module process, each run directly on the same args."""
    workdir = ctx.workdir / "module-noop-cpu"
    workdir.mkdir(parents=True, exist_ok=True)
    module_args, uri_args = workdir / "module.json", workdir / "uri.json"
    module_args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": _instance_task(provider, "")[MODULE]}))
    uri_args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"url": url, "headers": {"Authorization": authorization}}}))
    env = emu.child_env(PYTHONPATH=str(REPO), GPUCLOUD_CONFIG=str(workdir / "no-config.toml"))
    module_file = REPO / "ansible_collections" / "gpucloud" / "cloud" / "plugins" / "modules" / "instance.py"
    commands = {
        "module": [sys.executable, str(module_file), str(module_args)],
        "uri": [sys.executable, "-m", "ansible.modules.uri", str(uri_args)],
    }
    cpu: dict[str, list[float]] = {"module": [], "uri": []}
    for rep in range(reps):
        for kind in ("module", "uri") if rep % 2 == 0 else ("uri", "module"):
            cpu[kind].append(_noop_cpu(commands[kind], env, workdir / f"{kind}.out"))
    return statistics.median(cpu["module"]), statistics.median(cpu["uri"])


# Loads one action class through Ansible's plugin loader, as a strategy does before forking a task's worker.
_LOAD_ACTION = """
import sys
from ansible.plugins.loader import action_loader, init_plugin_loader
init_plugin_loader([sys.argv[2]])
assert action_loader.get(sys.argv[1], class_only=True) is not None
"""


def _preload_cpu(env: dict[str, str], workdir: Path, reps: int) -> tuple[float, float]:
    """Median CPU of loading the gpucloud.cloud.instance action class (gpucloud preloaded) and the debug one."""
    cpu: dict[str, list[float]] = {MODULE: [], "ansible.builtin.debug": []}
    for rep in range(reps):
        for action in sorted(cpu, reverse=rep % 2 == 1):
            command = [sys.executable, "-c", _LOAD_ACTION, action, str(REPO)]
            cpu[action].append(_process_cpu(command, env, workdir / "preload.out"))
    return statistics.median(cpu[MODULE]), statistics.median(cpu["ansible.builtin.debug"])


def _module_calls(ctx: Context, emu: Emulator, kind: str) -> list[dict[str, Any]]:
    """The requests one no-op module run makes, from the emulator's log (an untimed run of its own). A cached
    kind runs twice and counts the second run: the first fills the cache, as the warm-up round does."""
    cache_dir = ctx.workdir / "token-cache"
    if kind.endswith(CACHE_SUFFIX):
        _run_playbook(ctx, emu, [_instance_task(kind, f"module {kind} fill", cache_dir)], f"fill-{kind}")
    emu.clear_requests()
    _run_playbook(ctx, emu, [_instance_task(kind, f"module {kind} count", cache_dir)], f"count-{kind}")
    return emu.requests(_provider(kind))


def _byte_compile() -> None:
    """Byte-compile gpucloud as ``pip install`` does for a regular install. A checkout installed editable under
    PYTHONDONTWRITEBYTECODE (as on the project machine) would otherwise recompile every module it imports on
    every task, while the baseline's ansible modules come with their .pyc from pip: that measured the
    checkout, not gpucloud."""
    compileall.compile_dir(REPO / "shared" / "gpucloud", quiet=1)


def _timed_tasks(ctx: Context, kinds: list[str], baseline: tuple[str, str], reps: int) -> list[dict[str, Any]]:
    """``reps`` rounds of one task per kind, rotating who goes first so no kind always runs right after another."""
    tasks: list[dict[str, Any]] = []
    for rep in range(reps):
        shift = rep % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            label = f"{'uri' if kind == 'uri' else 'module ' + kind} {rep}"
            cache_dir = ctx.workdir / "token-cache"
            tasks.append(_uri_task(*baseline, label) if kind == "uri" else _instance_task(kind, label, cache_dir))
    return tasks


def _check_calls(logged: list[dict[str, Any]], calls: dict[str, list[dict[str, Any]]], reps: int) -> None:
    """The timed run made exactly the calls the counting runs predict (plus the baseline's GETs)."""
    for provider in {_provider(kind) for kind in calls}:
        expected = reps * sum(len(c) for kind, c in calls.items() if _provider(kind) == provider)
        expected += reps if provider == HEADLINE else 0
        made = sum(1 for r in logged if r["provider"] == provider)
        if made != expected:
            raise RuntimeError(f"{provider}: the timed run made {made} API calls, expected {expected}")


@scenario("module_noop")
def module_noop(ctx: Context) -> list[Result]:
    _byte_compile()
    reps = 3 if ctx.smoke else 20
    providers = (HEADLINE,) if ctx.smoke else (HEADLINE, *OTHERS)
    kinds = [*providers, *(p + CACHE_SUFFIX for p in CACHED if p in providers)]
    kinds += [p + PROCESS_SUFFIX for p in providers]
    results: list[Result] = []
    with emulator(ctx, "--latency-ms", f"{ctx.rtt_ms:g}", "--provision-seconds", "0.2") as emu:
        calls: dict[str, list[dict[str, Any]]] = {}
        for provider in providers:
            # The published per-minute limits would make a long benchmark wait on 429s; that is not under test.
            emu.control("POST", "/rate-limit", json={"provider": provider, "per_minute": None})
            _seed(emu, provider)
        for kind in kinds:
            calls[kind] = _module_calls(ctx, emu, kind)
        # The baseline GET is the headline module's own list request, with the same bearer token.
        listing = next(r for r in calls[HEADLINE] if r["method"] == "GET")
        baseline = (emu.url + listing["full_path"], _bearer(emu, HEADLINE))
        emu.clear_requests()
        records = _run_playbook(ctx, emu, _timed_tasks(ctx, ["uri", *kinds], baseline, reps), "timed")
        _check_calls(emu.requests(), calls, reps)
        cpu_module, cpu_uri = _cpu_medians(ctx, emu, HEADLINE, *baseline, reps)
        preload_env = emu.child_env(ANSIBLE_COLLECTIONS_PATH=str(REPO), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False")
        cpu_preload, cpu_plain_load = _preload_cpu(preload_env, ctx.workdir / "module-noop-cpu", reps)

    def median(prefix: str) -> float:
        # Round 0 builds and caches each module's AnsiballZ payload: a warm-up, not counted.
        return statistics.median(
            float(r["seconds"]) for r in records if r["task"].startswith(prefix + " ") and not r["task"].endswith(" 0")
        )

    uri_s = median("uri")
    for kind in kinds:
        module_s = median(f"module {kind}")
        shown = ", ".join(f"{r['method']} {r['path']}" for r in calls[kind])
        results.append(
            Result(
                name=f"module_noop[{kind}]",
                measured_s=module_s,
                baseline_s=uri_s,
                api_calls=len(calls[kind]),
                # The target is for the default configuration (the in-process path on localhost); the
                # opt-in token cache and the module process path are reported.
                target=ctx.target(TARGET_RATIO) if kind in providers else None,
                detail=(
                    f"medians of {reps - 1} interleaved runs, {ctx.rtt_ms:g} ms RTT; module "
                    f"{(module_s - uri_s) * 1000:+.0f} ms vs one uri GET ({HEADLINE}); calls: {shown}"
                ),
            )
        )
    results.append(
        Result(
            name=f"module_noop_cpu[{HEADLINE}]",
            measured_s=cpu_module,
            baseline_s=cpu_uri,
            api_calls=len(calls[HEADLINE]),
            detail=(
                f"CPU (user+sys) of the module process vs the uri module process, each run directly on the same "
                f"args (no Ansible around it), medians of {reps} interleaved runs: load-independent"
            ),
        )
    )
    results.append(
        Result(
            name="module_noop_preload",
            measured_s=cpu_preload,
            baseline_s=cpu_plain_load,
            detail=(
                f"CPU of a fresh interpreter loading the {MODULE} action class (gpucloud preloaded) vs the "
                f"ansible.builtin.debug one, medians of {reps}: {(cpu_preload - cpu_plain_load) * 1000:+.0f} ms, "
                "paid once per playbook in ansible-playbook"
            ),
        )
    )
    return results

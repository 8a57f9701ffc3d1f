"""The emulator's world: everything every emulated provider shares, and nothing about any one provider.

Every store is keyed by provider name and kind; what differs per provider (credentials, published rate limits,
starting balances) comes from :mod:`gpucloud.registry`, and what a provider does with it from its own part.

- an in-memory store of raw resource dicts (already in each provider's wire shape), per provider and
  kind (``instances``, ``volumes``, ``ssh_keys``, ...), plus private per-resource data the API never shows
  (e.g. the SSH keys a machine's sshd must accept);
- one lock (``World.lock``, re-entrant) guarding all of it; router handlers hold it while they read-modify-write;
- a lifecycle clock: a single background thread running scheduled :class:`Step` chains
  (e.g. ``provisioning`` -> ``running``); sshd processes are started and stopped only from that thread;
- the request log, fault decisions (seeded ``random.Random``), per-provider rate limiting;
- OAuth-style token bookkeeping, capacity switches, balances, id / loopback IP / port allocation.
"""

from __future__ import annotations

import copy
import functools
import heapq
import itertools
import logging
import math
import os
import random
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal

from gpucloud.emulator.sshd import (
    AccountError,
    SshdManager,
    SshSpec,
    ensure_login_user,
    login_user,
    port_is_free,
    sshd_available,
)
from gpucloud.registry import REGISTRY

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]
# High range for per-instance SSH port forwards; below the usual ephemeral range.
_PORT_RANGE = (20000, 30000)


def _default_ssh_port() -> int:
    return 22 if os.geteuid() == 0 else 2222


@dataclass(frozen=True)
class FaultRule:
    """Fail chosen requests by their count, not by dice: of the provider requests that match ``methods`` (empty:
    any) and ``path`` (a prefix of the path relative to the provider's base URL), the ``nth`` ones (1-based) and
    every ``every``-th one get ``fault``: a 500 as ``error_rate`` gives, or a 429 with ``Retry-After: 1`` as
    ``rate_limit_burst`` gives (logged under those names). So "the 2nd power action fails" holds in every run,
    however many status polls came in between, and no other fault's dice move. Auth requests never match (clients
    can always log in); the counting restarts whenever the rules are set.
    """

    fault: Literal["error", "rate_limit_burst"]
    methods: tuple[str, ...] = ()
    path: str = ""
    nth: tuple[int, ...] = ()
    every: int = 0
    provider: str | None = None  # None: every provider

    def __post_init__(self) -> None:
        # Also what the control API's body is validated by (pydantic runs this for ``FaultsPatch.rules``).
        if not self.nth and self.every <= 0:
            raise ValueError("a fault rule needs nth (which matching requests) or every (> 0)")
        if any(n < 1 for n in self.nth):
            raise ValueError("nth counts matching requests from 1")
        if self.every < 0:
            raise ValueError("every counts matching requests from 1 (0: not used)")
        object.__setattr__(self, "methods", tuple(method.upper() for method in self.methods))

    def matches(self, provider: str, method: str, path: str) -> bool:
        return (
            (self.provider is None or self.provider == provider)
            and (not self.methods or method in self.methods)
            and path.startswith(self.path)
        )

    def fires(self, count: int) -> bool:
        """Whether the ``count``-th matching request (from 1) gets the fault."""
        return count in self.nth or (self.every > 0 and count % self.every == 0)


@dataclass
class Faults:
    """Injected misbehaviour; change it at runtime with :meth:`World.set_faults` or ``POST /_emulator/faults``."""

    latency_ms: float = 0  # added to every provider request
    error_rate: float = 0.0  # probability of a 500 (provider error body); never on the auth endpoint
    rate_limit_burst: int = 0  # the next N provider requests get 429 with Retry-After: 1
    drop_create_rate: float = 0.0  # probability that a create is committed but its response is cut off
    seed: int | None = None  # makes the fault dice (and generated ids) reproducible
    error_on_create: bool = True  # False: error_rate spares creates (only reads and actions fail)
    reject_auth: bool = False  # the auth endpoint refuses every grant with 401 (credentials revoked)
    create_error_burst: int = 0  # the next N creates get a 500 before the handler runs (nothing is committed)
    # Faults by request count (FaultRule), checked after the bursts and before the error_rate dice.
    rules: tuple[FaultRule, ...] = ()


# Published per-user request limits, enforced by default (tests may raise them with World.set_rate_limit).
PUBLISHED_RATE_LIMITS: dict[str, int] = {
    entry.name: entry.published_rate_limit for entry in REGISTRY if entry.published_rate_limit
}


def starting_balances() -> dict[str, float]:
    """USD each account starts with, for the providers that keep a balance (``Registration.emulator_balance``)."""
    return {entry.name: entry.emulator_balance for entry in REGISTRY if entry.emulator_balance is not None}


def random_credentials() -> dict[str, dict[str, str]]:
    """Fresh API credentials per provider (the options ``gpucloud.connect`` takes); new for every emulator run.

    Never constants: anyone on the machine can reach the emulator's port, so whoever holds these (the env
    file, mode 0600, or the in-process :class:`EmulatorSettings`) is whoever may create machines on it.
    """
    return {entry.name: entry.random_credentials() for entry in REGISTRY}


@dataclass
class EmulatorSettings:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    provision_seconds: float = 1.0  # pending -> running (also start); stop and delete take half of it
    token_ttl_seconds: int = 3600  # access-token lifetime (expires_in) where a provider issues tokens
    ssh: bool = True  # real sshd per running instance (skipped with a warning if sshd is not installed)
    ssh_port: int = field(default_factory=_default_ssh_port)  # for APIs that report no SSH port (DataCrunch)
    faults: Faults = field(default_factory=Faults)
    state_dir: str | None = None  # sshd configs and host key; default: a temp dir removed on stop
    # provider -> USD its account starts with (World.set_balance changes it until the next reset)
    balances: dict[str, float] = field(default_factory=starting_balances)
    # provider -> requests per minute (429 beyond); by default the limits the providers publish
    rate_limits: dict[str, int] = field(default_factory=lambda: dict(PUBLISHED_RATE_LIMITS))
    # Running instances spread over every provider at startup (World.seed_hosts), for demos and benchmarks.
    seed_hosts: int = 0
    # Random per run (see random_credentials); repr=False keeps them out of logs and tracebacks.
    credentials: dict[str, dict[str, str]] = field(default_factory=random_credentials, repr=False)
    # Needed (header X-Emulator-Token) by every control API call except /_emulator/health.
    control_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    # Binding anything but loopback exposes every emulated API to the network: refused unless this is set.
    allow_remote: bool = False


@dataclass
class Stock:
    """A capacity control for one provider's type (see :meth:`World.set_stock`), with what creates met."""

    left: int | None = None
    flap: bool = False
    stale_catalogue: bool = False
    flap_refuse_next: bool = True  # flips on every create while flapping
    taken: int = 0
    # Creates this control refused; one a provider refuses by its own catalogue check first (Voltage Park finds
    # no hostnode for exhausted stock) is not counted here.
    refused: int = 0


# Adds ``count`` running instances of one provider, named from index ``first`` on (see World.seed_hosts).
Seeder = Callable[["World", int, int], None]


@dataclass(frozen=True)
class RequestRecord:
    provider: str | None  # None for paths outside every provider prefix (control API, /docs)
    method: str
    path: str  # relative to the provider's base URL, e.g. "/instances"
    full_path: str  # as received, e.g. "/datacrunch/v1/instances"
    status: int  # what the handler produced (for a dropped create: the status that never arrived)
    time: float  # wall clock, request start
    was_fault: bool
    fault: str | None = None  # "rate_limit_burst" | "rate_limit" | "error" | "drop"
    duration_ms: float = 0.0

    def to_json(self) -> JSONDict:
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    latency_s: float = 0.0
    reject: Literal["rate_limit_burst", "rate_limit", "error", "auth"] | None = None
    retry_after: int = 0
    drop: bool = False


@dataclass(frozen=True)
class Step:
    """One scheduled lifecycle change: ``apply`` runs under the world lock ``at`` seconds from scheduling.

    ``ssh="up"`` starts the resource's sshd (from its :class:`SshSpec`) *before* ``apply``, so a status set
    by ``apply`` (e.g. "running") implies SSH already answers. ``ssh="down"`` stops it first.
    """

    at: float
    apply: Callable[[], None]
    ssh: Literal["up", "down"] | None = None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class _Clock:
    """A single thread running callbacks at given monotonic times, in order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="gpucloud-emulator-clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._seq), fn))
            self._cond.notify()

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("emulator lifecycle step failed")


class _Tokens:
    """Access / refresh tokens per provider. Access tokens expire; refresh tokens live until revoked."""

    def __init__(self) -> None:
        self.access: dict[str, tuple[str, float]] = {}  # token -> (provider, monotonic expiry)
        self.refresh: dict[str, str] = {}  # token -> provider
        self.grants: Counter[tuple[str, str]] = Counter()  # (provider, grant_type) -> count
        self.issued: list[str] = []  # every token ever handed out, revoked or not (for leak scans)

    def issue(self, provider: str, ttl: int, grant: str) -> TokenPair:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access[access] = (provider, time.monotonic() + ttl)
        self.refresh[refresh] = provider
        self.grants[(provider, grant)] += 1
        self.issued += [access, refresh]
        return TokenPair(access, refresh, ttl)


class _Allocator:
    """Loopback addresses and ports, shared by every World in the process.

    Process-wide so that two emulators in one test session never hand out the same address; a bind test
    skips anything another process already listens on.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Each process starts in its own 127.N.0.0/16, so parallel test workers never race for an address.
        self._next_ip = int(IPv4Address(f"127.{os.getpid() % 250 + 1}.1.1"))
        self._next_port = _PORT_RANGE[0]

    def ip(self, port: int | None) -> str:
        with self._lock:
            for _ in range(64):
                ip = str(self._next_address())
                if port is None or port_is_free(ip, port):
                    return ip
            # Port taken everywhere (e.g. a system sshd on 0.0.0.0:22): hand out an address anyway;
            # the instance runs, its sshd cannot start, and that is logged.
            log.warning("port %s is taken on every loopback address tried; instance will lack SSH", port)
            return str(self._next_address())

    def _next_address(self) -> IPv4Address:
        while True:
            ip = IPv4Address(self._next_ip)
            self._next_ip += 1
            if ip.packed[3] not in (0, 255):  # skip network/broadcast-looking addresses
                return ip

    def port(self, ip: str) -> int:
        with self._lock:
            for _ in range(_PORT_RANGE[1] - _PORT_RANGE[0]):
                port = self._next_port
                self._next_port = port + 1 if port + 1 < _PORT_RANGE[1] else _PORT_RANGE[0]
                if port_is_free(ip, port):
                    return port
        raise RuntimeError(f"no free port on {ip}")


_ALLOCATOR = _Allocator()


class World:
    """All emulator state. Router handlers take ``with world.lock:`` around each read-modify-write."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        self.lock = threading.RLock()
        self.sshd: SshdManager | None = None
        self.ssh_user = login_user()
        self._clock = _Clock()
        self._started = False
        self._own_state_dir = False
        self.state_dir = Path(self.settings.state_dir) if self.settings.state_dir else None
        # Lifecycle chain tokens stay unique across reset(), so a step in flight during a reset can
        # never be mistaken for the chain of a new resource that reuses a seeded id.
        self._chain_tokens = itertools.count(1)
        self._init_state()

    # ----------------------------------------------------------------------------- lifecycle
    def _init_state(self) -> None:
        self._collections: dict[str, dict[str, dict[str, JSONDict]]] = defaultdict(lambda: defaultdict(dict))
        self._private: dict[tuple[str, str], JSONDict] = {}
        self._generations: dict[tuple[str, str], int] = {}
        self._requests: list[RequestRecord] = []
        self._tokens = _Tokens()
        self._capacity: dict[tuple[str, str, str], bool] = {}
        self._stock: dict[tuple[str, str], Stock] = {}
        self._balances: dict[str, float] = dict(self.settings.balances)
        self._rate_limits: dict[str, int] = dict(self.settings.rate_limits)
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._faults = replace(self.settings.faults)
        seed = self._faults.seed
        self._fault_rng = random.Random(seed)
        self._rule_counts = [0] * len(self._faults.rules)  # matching requests seen, per rule
        # Ids come from their own generator so fault settings never shift the ids a seeded run produces.
        self._id_rng = random.Random(None if seed is None else seed + 1)

    def start(self) -> None:
        """Create the state dir, start the lifecycle clock and (if enabled and installed) the sshd manager."""
        if self._started:
            return
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="gpucloud-emulator-"))
            self._own_state_dir = True
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.ssh:
            self._start_sshd_manager()
        self._clock.start()
        self._started = True

    def _start_sshd_manager(self) -> None:
        assert self.state_dir is not None
        if not sshd_available():
            log.warning("sshd or ssh-keygen not found: the emulator runs without SSH access to instances")
            return
        try:
            self.ssh_user = ensure_login_user()
        except AccountError as exc:
            log.warning("%s: the emulator runs without SSH access to instances", exc)
            return
        self.sshd = SshdManager(self.state_dir)
        self.sshd.host_key()
        # Probe an address no emulator hands out: failure there means the port is taken on 0.0.0.0.
        if not port_is_free("127.254.254.254", self.settings.ssh_port):
            log.warning("port %s is taken on loopback; instances may come up without sshd", self.settings.ssh_port)

    def shutdown(self) -> None:
        """Stop the clock and every sshd; remove the state dir if the world created it."""
        self._clock.stop()
        if self.sshd is not None:
            self.sshd.close()
        if self._own_state_dir and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir, self._own_state_dir = None, False
        # Fresh parts, so a stopped world can be started again (threads cannot be restarted).
        self._clock, self.sshd, self._started = _Clock(), None, False

    def reset(self) -> None:
        """Forget every resource, token, request, capacity/balance override and fault change."""
        self._clock.clear()
        if self.sshd is not None:
            self.sshd.stop_all()
        with self.lock:
            self._init_state()

    # ----------------------------------------------------------------------------- store
    def collection(self, provider: str, kind: str) -> dict[str, JSONDict]:
        """The live ``id -> wire dict`` mapping; hold ``world.lock`` while using it."""
        return self._collections[provider][kind]

    def private(self, provider: str, rid: str) -> JSONDict:
        """Live per-resource data that is not part of the wire shape; hold ``world.lock``."""
        return self._private.setdefault((provider, rid), {})

    def forget(self, provider: str, kind: str, rid: str) -> None:
        """Remove a resource for good, with its private data and any pending lifecycle steps."""
        with self.lock:
            self.collection(provider, kind).pop(rid, None)
            self._private.pop((provider, rid), None)
            self._generations.pop((provider, rid), None)

    def snapshot(self, provider: str, kind: str) -> list[JSONDict]:
        with self.lock:
            return copy.deepcopy(list(self.collection(provider, kind).values()))

    def instances(self, provider: str) -> list[JSONDict]:
        return self.snapshot(provider, "instances")

    def volumes(self, provider: str) -> list[JSONDict]:
        return self.snapshot(provider, "volumes")

    def ssh_keys(self, provider: str) -> list[JSONDict]:
        return self.snapshot(provider, "ssh_keys")

    def state(self) -> dict[str, dict[str, list[JSONDict]]]:
        with self.lock:
            return {
                provider: {kind: copy.deepcopy(list(items.values())) for kind, items in kinds.items()}
                for provider, kinds in self._collections.items()
            }

    def new_id(self) -> str:
        with self.lock:
            return str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4))

    def random_token(self, nbytes: int = 8) -> str:
        with self.lock:
            return self._id_rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def seed_hosts(self, count: int, seeders: Mapping[str, Seeder]) -> dict[str, int]:
        """Add ``count`` running instances spread evenly over ``seeders`` (provider -> seeder), in one go.

        For demos and benchmarks: a seeded instance is running at once, with a loopback address but no sshd
        and no pending lifecycle step, so ten thousand take seconds. Names run ``seed-00000`` upwards across
        providers, so every seeded host is unique. Returns how many each provider got.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        if not seeders:
            raise ValueError("no provider can seed instances")
        share, extra = divmod(count, len(seeders))
        placed: dict[str, int] = {}
        first = 0
        with self.lock:
            for index, (provider, seed) in enumerate(seeders.items()):
                placed[provider] = share + (1 if index < extra else 0)
                if placed[provider]:
                    seed(self, placed[provider], first)
                first += placed[provider]
        return placed

    # ----------------------------------------------------------------------------- allocation
    def allocate_ip(self, port: int | None = None) -> str:
        """Next unused 127.x.y.z (from 127.0.1.1); with ``port``, one where that port is free (when SSH is on)."""
        return _ALLOCATOR.ip(port if self.sshd is not None else None)

    def allocate_port(self, ip: str) -> int:
        """Next port of the high range that is free on ``ip``; never handed out twice in one process."""
        return _ALLOCATOR.port(ip)

    # ----------------------------------------------------------------------------- lifecycle steps
    def run_steps(self, provider: str, rid: str, steps: Sequence[Step]) -> None:
        """Replace the resource's pending lifecycle with ``steps`` (earlier chains become no-ops)."""
        key = (provider, rid)
        with self.lock:
            token = next(self._chain_tokens)
            self._generations[key] = token
        for step in steps:
            self._clock.call_later(step.at, functools.partial(self._run_step, key, token, step))

    def cancel_steps(self, provider: str, rid: str) -> None:
        with self.lock:
            self._generations[(provider, rid)] = next(self._chain_tokens)

    def _current(self, key: tuple[str, str], token: int) -> bool:
        return self._generations.get(key) == token

    def _run_step(self, key: tuple[str, str], token: int, step: Step) -> None:
        name = self.ssh_name(*key)
        if step.ssh == "up" and not self._ssh_up(key, token, name):
            return
        if step.ssh == "down" and self.sshd is not None:
            with self.lock:
                if not self._current(key, token):
                    return
            self.sshd.stop(name)
        with self.lock:
            if self._current(key, token):
                step.apply()
                return
        if step.ssh == "up" and self.sshd is not None:
            self.sshd.stop(name)  # superseded while sshd was starting

    def _ssh_up(self, key: tuple[str, str], token: int, name: str) -> bool:
        """Start sshd outside the lock (it takes tens of ms); False if the chain went stale meanwhile."""
        with self.lock:
            if not self._current(key, token):
                return False
            spec = self._private.get(key, {}).get("ssh")
        if self.sshd is not None and isinstance(spec, SshSpec) and not self.sshd.start(name, spec):
            log.warning("instance %s is running without SSH (sshd did not start)", name)
        return True

    def ssh_name(self, provider: str, rid: str) -> str:
        return f"{provider}-{rid}"

    # ----------------------------------------------------------------------------- request log
    @property
    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._requests)

    def record_request(self, record: RequestRecord) -> None:
        with self.lock:
            self._requests.append(record)

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    def request_count(
        self, provider: str | None = None, method: str | None = None, path_prefix: str | None = None
    ) -> int:
        """Count logged requests; ``path_prefix`` matches the provider-relative or the full path."""
        return sum(
            1
            for r in self.requests
            if (provider is None or r.provider == provider)
            and (method is None or r.method == method.upper())
            and (path_prefix is None or r.path.startswith(path_prefix) or r.full_path.startswith(path_prefix))
        )

    # ----------------------------------------------------------------------------- faults
    @property
    def faults(self) -> Faults:
        with self.lock:
            return replace(self._faults)

    def set_faults(self, **changes: Any) -> Faults:
        """Change some :class:`Faults` fields; a new ``seed`` restarts the fault dice, new ``rules`` their counts."""
        known = {f.name for f in fields(Faults)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        if "rules" in changes:
            changes["rules"] = tuple(changes["rules"])
        with self.lock:
            self._faults = replace(self._faults, **changes)
            if "seed" in changes:
                self._fault_rng = random.Random(changes["seed"])
            if "rules" in changes:
                self._rule_counts = [0] * len(self._faults.rules)
            return replace(self._faults)

    def set_rate_limit(self, provider: str, per_minute: int | None) -> None:
        with self.lock:
            if per_minute:
                self._rate_limits[provider] = per_minute
            else:
                self._rate_limits.pop(provider, None)
            self._windows.pop(provider, None)

    def decide_fault(
        self, provider: str, *, is_auth: bool, is_create: bool, method: str = "", path: str = ""
    ) -> FaultDecision:
        """Decide one provider request's fault, in a fixed order so a seed reproduces a run; ``method`` and
        ``path`` (relative to the provider's base URL) are what fault rules match."""
        with self.lock:
            f = self._faults
            latency = max(f.latency_ms, 0) / 1000
            if f.rate_limit_burst > 0:
                self._faults = replace(f, rate_limit_burst=f.rate_limit_burst - 1)
                return FaultDecision(latency, "rate_limit_burst", retry_after=1)
            retry_after = self._rate_limited(provider)
            if retry_after:
                return FaultDecision(latency, "rate_limit", retry_after=retry_after)
            if is_auth and f.reject_auth:
                return FaultDecision(latency, "auth")
            if is_create and f.create_error_burst > 0:
                self._faults = replace(f, create_error_burst=f.create_error_burst - 1)
                return FaultDecision(latency, "error")
            ruled = None if is_auth else self._apply_rules(provider, method, path)
            if ruled is not None:
                return FaultDecision(latency, ruled, retry_after=1 if ruled == "rate_limit_burst" else 0)
            may_fail = not is_auth and (f.error_on_create or not is_create)
            if may_fail and f.error_rate > 0 and self._fault_rng.random() < f.error_rate:
                return FaultDecision(latency, "error")
            drop = is_create and f.drop_create_rate > 0 and self._fault_rng.random() < f.drop_create_rate
            return FaultDecision(latency, drop=drop)

    def _apply_rules(self, provider: str, method: str, path: str) -> Literal["error", "rate_limit_burst"] | None:
        """Count the request against every rule it matches; the first rule that fires decides. Hold the lock."""
        fault = None
        for index, rule in enumerate(self._faults.rules):
            if rule.matches(provider, method, path):
                self._rule_counts[index] += 1
                if fault is None and rule.fires(self._rule_counts[index]):
                    fault = rule.fault
        return fault

    def _rate_limited(self, provider: str) -> int:
        """Sliding one-minute window; returns Retry-After seconds, or 0 when the request may pass."""
        limit = self._rate_limits.get(provider)
        if not limit:
            return 0
        now = time.monotonic()
        window = self._windows[provider]
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + 60 - now))
        window.append(now)
        return 0

    # ----------------------------------------------------------------------------- tokens
    def issue_tokens(self, provider: str, grant: str = "client_credentials") -> TokenPair:
        with self.lock:
            return self._tokens.issue(provider, self.settings.token_ttl_seconds, grant)

    def refresh_tokens(self, provider: str, refresh_token: str) -> TokenPair | None:
        """New access token for a valid refresh token (which stays valid), else None."""
        with self.lock:
            if self._tokens.refresh.get(refresh_token) != provider:
                return None
            return self._tokens.issue(provider, self.settings.token_ttl_seconds, "refresh_token")

    def check_access(self, provider: str, token: str) -> Literal["ok", "expired", "invalid"]:
        with self.lock:
            entry = self._tokens.access.get(token)
        if entry is None or entry[0] != provider:
            return "invalid"
        return "ok" if time.monotonic() < entry[1] else "expired"

    def expire_tokens(self, provider: str) -> None:
        """Every current access token of ``provider`` is expired from now on; refresh tokens still work."""
        with self.lock:
            for token, (prov, _) in list(self._tokens.access.items()):
                if prov == provider:
                    self._tokens.access[token] = (prov, 0.0)

    def revoke_access_tokens(self, provider: str) -> None:
        """Every current access token of ``provider`` is invalid from now on (revoked, not expired)."""
        with self.lock:
            for token, (prov, _) in list(self._tokens.access.items()):
                if prov == provider:
                    del self._tokens.access[token]

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token handed out since the last reset (for leak scans)."""
        with self.lock:
            return list(self._tokens.issued)

    def revoke_refresh_tokens(self, provider: str | None = None) -> None:
        with self.lock:
            for token, prov in list(self._tokens.refresh.items()):
                if provider is None or prov == provider:
                    del self._tokens.refresh[token]

    def token_grants(self, provider: str) -> dict[str, int]:
        """How many tokens were issued per grant type (``client_credentials``, ``refresh_token``)."""
        with self.lock:
            return {grant: n for (prov, grant), n in self._tokens.grants.items() if prov == provider}

    # ----------------------------------------------------------------------------- capacity, balance
    def set_capacity(self, provider: str, instance_type: str, location: str | None, available: bool) -> None:
        """Switch capacity for a type at one location, or at every location when ``location`` is None."""
        with self.lock:
            if location is None:
                for key in [k for k in self._capacity if k[:2] == (provider, instance_type)]:
                    del self._capacity[key]
                location = "*"
            self._capacity[(provider, instance_type, location)] = available

    def has_capacity(self, provider: str, instance_type: str, location: str, stock_type: str | None = None) -> bool:
        """What the provider's catalogue shows: the location switch, then the type's stock (unless stale).

        ``stock_type``: the name stock is set under when it differs from ``instance_type`` (the type users see,
        where the API's create names something finer, such as Voltage Park's per-OS presets of one shape)."""
        with self.lock:
            stock = self._stock.get((provider, stock_type or instance_type))
            if stock is not None and stock.left == 0 and not stock.stale_catalogue:
                return False
            return self._switched_on(provider, instance_type, location)

    def _switched_on(self, provider: str, instance_type: str, location: str) -> bool:
        specific = self._capacity.get((provider, instance_type, location))
        if specific is not None:
            return specific
        return self._capacity.get((provider, instance_type, "*"), True)

    def take_capacity(self, provider: str, instance_type: str, location: str, stock_type: str | None = None) -> bool:
        """A create's check (each provider's create path calls it once): True takes one unit of stock."""
        with self.lock:
            stock = self._stock.get((provider, stock_type or instance_type))
            if not self._switched_on(provider, instance_type, location):
                return self._count_take(stock, False)
            if stock is None:
                return True
            if stock.flap:
                refuse, stock.flap_refuse_next = stock.flap_refuse_next, not stock.flap_refuse_next
                if refuse:
                    return self._count_take(stock, False)
            if stock.left == 0:
                return self._count_take(stock, False)
            if stock.left is not None:
                stock.left -= 1
            return self._count_take(stock, True)

    @staticmethod
    def _count_take(stock: Stock | None, taken: bool) -> bool:
        if stock is not None:
            if taken:
                stock.taken += 1
            else:
                stock.refused += 1
        return taken

    def set_stock(
        self,
        provider: str,
        instance_type: str,
        *,
        left: int | None = None,
        flap: bool = False,
        stale_catalogue: bool = False,
    ) -> Stock:
        """Stock of one type at every location: ``left`` creates succeed, then it is exhausted (None: unlimited;
        0: none now). ``flap``: creates alternate refused / accepted, the first refused. ``stale_catalogue``:
        the catalogue keeps showing it available when creates are refused (capacity known only at create)."""
        with self.lock:
            stock = Stock(left=left, flap=flap, stale_catalogue=stale_catalogue)
            self._stock[(provider, instance_type)] = stock
            return replace(stock)

    def clear_stock(self, provider: str | None = None) -> None:
        with self.lock:
            for key in [k for k in self._stock if provider in (None, k[0])]:
                del self._stock[key]

    def stock(self) -> dict[str, dict[str, Stock]]:
        """Every stock control set, per provider and type (copies)."""
        with self.lock:
            found: dict[str, dict[str, Stock]] = defaultdict(dict)
            for (provider, instance_type), stock in self._stock.items():
                found[provider][instance_type] = replace(stock)
            return dict(found)

    def set_balance(self, provider: str, amount: float) -> None:
        with self.lock:
            self._balances[provider] = float(amount)

    def balance(self, provider: str) -> float:
        with self.lock:
            return self._balances.get(provider, 0.0)

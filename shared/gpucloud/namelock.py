"""One creator per resource name on this machine: an advisory file lock around find-then-create.

Cloud APIs do not refuse a second resource with the same name, so two runs (two ``ansible-playbook`` processes,
a playbook and a ``pulumi up``) that both look a name up and find nothing would both create it. Before looking
the name up, ``gpucloud.ensure`` takes an exclusive ``flock`` on a file named after the API URL, the resource
kind and the name, and keeps it until the create call has returned. The run that waited then finds the
resource by name and adopts it instead of creating another.

Lock files live in ``$GPUCLOUD_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/gpucloud-locks``, else
``~/.cache/gpucloud/locks``; the lock is released by the kernel when its process dies, so a killed run never
leaves a stale lock. Runs on different machines are not serialised by this: point them at one controller.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from gpucloud import errors

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no cross-process serialisation
    fcntl = None  # type: ignore[assignment]

ENV = "GPUCLOUD_LOCK_DIR"


def lock_dir() -> Path:
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "gpucloud-locks"
    return Path.home() / ".cache" / "gpucloud" / "locks"


def lock_path(scope: str, kind: str, name: str) -> Path:
    digest = hashlib.sha256(f"{scope}\0{kind}\0{name}".encode()).hexdigest()[:32]
    return lock_dir() / f"{kind}-{digest}.lock"


@contextlib.contextmanager
def name_lock(scope: str, kind: str, name: str, *, timeout: float, poll: float = 0.05) -> Iterator[None]:
    """Hold the lock for ``kind`` ``name`` at ``scope`` (an API URL); wait at most ``timeout`` seconds for it."""
    if fcntl is None:
        yield
        return
    path = lock_path(scope, kind, name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + timeout
    fd = _acquire(path, deadline, poll)
    if fd is None:
        raise errors.Conflict(
            f"another run is creating {kind} {name!r} and did not finish within {timeout:.0f}s; "
            f"run again when it is done (lock file {path})",
            code="name_locked",
        )
    try:
        yield
    finally:
        # Unlink while still holding the lock, so lock files do not pile up; _acquire detects the race.
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(path: Path, deadline: float, poll: float) -> int | None:
    """An fd holding the lock on the file now at ``path``, or None at the deadline."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll)
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder unlinked this file as we locked it: lock the file that is there now

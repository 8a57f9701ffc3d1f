"""One creator per resource name on this machine: an advisory file lock around find-then-create.

Cloud APIs do not refuse a second resource with the same name, so two runs (two ``ansible-playbook`` processes,
a playbook and a ``pulumi up``) that both look a name up and find nothing would both create it. Before looking
the name up, ``gpucloud.ensure`` takes an exclusive ``flock`` on a file named after the API URL, the resource
kind and the name, and keeps it until the create call has returned. The run that waited then finds the
resource by name and adopts it instead of creating another.

Two runs must land on the same file whenever they talk to the same API, however it is spelled and whatever
their environment: the URL is canonicalised (:func:`canonical_scope`: scheme and host case, default port, trailing and
doubled slashes, ``localhost`` = ``127.0.0.1`` = ``::1``), and the directory depends only on the user, never on
``$HOME``, ``$XDG_RUNTIME_DIR`` or ``$TMPDIR`` (a login shell and a cron job see different ones): it is
``$GPUCLOUD_LOCK_DIR`` if set, else ``.cache/gpucloud/locks`` in the user's home directory from the password
database, else ``/tmp/gpucloud-locks-<uid>`` (mode 0700, refused if another user owns it). The lock is released
by the kernel when its process dies, so a killed run never leaves a stale lock. Runs on different machines are
not serialised by this: point them at one controller.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from gpucloud import errors

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no cross-process serialisation
    fcntl = None  # type: ignore[assignment]

try:
    import pwd
except ImportError:  # pragma: no cover - Windows: no password database
    pwd = None  # type: ignore[assignment]

ENV = "GPUCLOUD_LOCK_DIR"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# One machine, three spellings: any of these hosts names the same listener set for a URL's purposes.
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})


def canonical_scope(provider: str, base_url: str) -> str:
    """The lock scope of an API: ``provider`` plus ``base_url`` in one canonical spelling.

    ``HTTP://LocalHost:80/api//v1/`` and ``http://127.0.0.1/api/v1`` are one API, so they get one lock.
    """
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")  # .hostname is lower-cased and drops [] and user info
    host = "localhost" if host in _LOOPBACK_NAMES else host
    try:
        port = parts.port
    except ValueError:
        port = None  # a malformed port: keep the URL's own text so distinct bad URLs stay distinct
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    path = posixpath.normpath("/" + parts.path) if parts.path.strip("/") else ""
    path = "" if path == "/" else path.rstrip("/").replace("//", "/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{provider}:{scheme}://{netloc}{path}{query}"


def lock_dir() -> Path:
    """Where lock files go: the same for every run of this user (see the module docstring)."""
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit).expanduser()
    home = _home_from_passwd()
    if home is not None:
        return home / ".cache" / "gpucloud" / "locks"
    return _shared_tmp_dir()


def _shared_tmp_dir() -> Path:
    return Path("/tmp") / f"gpucloud-locks-{os.getuid()}"


def _home_from_passwd() -> Path | None:
    """The user's home directory as the system records it, if it exists and is the user's own."""
    if pwd is None:  # pragma: no cover - Windows
        return Path.home()
    try:
        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
        info = home.stat()
    except (KeyError, OSError):
        return None
    return home if info.st_uid == os.getuid() and os.access(home, os.W_OK) else None


def lock_path(scope: str, kind: str, name: str) -> Path:
    digest = hashlib.sha256(f"{scope}\0{kind}\0{name}".encode()).hexdigest()[:32]
    return lock_dir() / f"{kind}-{digest}.lock"


def _prepare(directory: Path) -> None:
    """Create the lock directory; in /tmp, refuse one another user planted there (they could hold our locks)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if directory != _shared_tmp_dir():
        return
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise errors.ValidationError(
            f"lock directory {directory} belongs to another user or is writable by others; "
            f"set {ENV} to a directory of your own",
            field=ENV,
        )


@contextlib.contextmanager
def name_lock(scope: str, kind: str, name: str, *, timeout: float, poll: float = 0.05) -> Iterator[None]:
    """Hold the lock for ``kind`` ``name`` at ``scope`` (an API URL); wait at most ``timeout`` seconds for it."""
    if fcntl is None:
        yield
        return
    path = lock_path(scope, kind, name)
    _prepare(path.parent)
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

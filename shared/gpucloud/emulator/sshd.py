"""Real OpenSSH servers for emulated instances: one ``sshd -D`` per running instance, on loopback.

Each instance gets its own config directory (``<state_dir>/sshd/<name>/``) holding ``sshd_config``,
``authorized_keys``, the pid file and sshd's stderr log. One ed25519 host key is generated per emulator
run and shared by every sshd, because generating a key per instance costs more than starting sshd.

sshd re-reads ``AuthorizedKeysFile`` on every login, so :meth:`SshdManager.set_keys` takes effect
without a restart.

Who can log in (see :func:`login_user`): exactly one account, never a privileged one. Run by an ordinary user,
sshd can only authenticate that same user. Run as root, sshd could log anyone in as anyone, and the key of
whoever creates an instance through the API would be a root login on this machine; so as root the emulator
logs hosts in as the unprivileged system account :data:`EMULATOR_ACCOUNT` (created on first use with
``useradd``), every sshd_config says ``AllowUsers`` that account and ``PermitRootLogin no``.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SSHD_PATH = "/usr/sbin/sshd"
# The login account of emulated hosts when the emulator runs as root.
EMULATOR_ACCOUNT = "gpucloud-emu"
_ACCOUNT_HOME = "/var/lib/gpucloud-emu"


class AccountError(RuntimeError):
    """The unprivileged login account cannot be used or created."""


def login_user() -> str:
    """The only user emulated hosts let in: the emulator's own user, or :data:`EMULATOR_ACCOUNT` under root."""
    return EMULATOR_ACCOUNT if os.geteuid() == 0 else getpass.getuser()


@functools.cache
def ensure_login_user() -> str:
    """:func:`login_user`, creating the unprivileged account first when running as root.

    Raises :class:`AccountError` when the account cannot be created or exists with uid 0.
    """
    user = login_user()
    if os.geteuid() == 0:
        _ensure_account(user)
    return user


def _ensure_account(user: str) -> None:
    for _ in range(20):  # parallel emulators race on /etc/passwd's lock; the loser retries or finds the account
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            _useradd(user)
            time.sleep(0.1)
            continue
        if entry.pw_uid == 0 or entry.pw_gid == 0:
            raise AccountError(f"account {user!r} exists with uid/gid 0; emulated hosts never log in as root")
        return
    raise AccountError(f"could not create the account {user!r} for emulated hosts (useradd failed)")


def _useradd(user: str) -> None:
    # A root shell's PATH usually has /usr/sbin, a service's or container's may not.
    useradd = shutil.which("useradd") or next(
        (p for p in ("/usr/sbin/useradd", "/sbin/useradd") if os.access(p, os.X_OK)), None
    )
    if useradd is None:
        raise AccountError(f"running as root needs the unprivileged account {user!r}, and useradd is not installed")
    # "*" is a password nobody can use, but unlike useradd's default "!" it does not lock the account, which
    # would make sshd (without PAM) refuse key logins too. A home directory gives Ansible its remote tmp.
    command = [useradd, "--system", "--user-group", "--create-home", "--home-dir", _ACCOUNT_HOME]
    command += ["--shell", "/bin/sh", "--password", "*", user]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 9):  # 9: created meanwhile by another emulator
        log.warning("useradd %s failed (rc=%s): %s", user, result.returncode, result.stderr.strip())


@dataclass(frozen=True)
class SshSpec:
    """Where one instance's sshd listens and which public keys it accepts."""

    ip: str
    port: int
    authorized_keys: tuple[str, ...] = ()


def sshd_available(path: str = SSHD_PATH) -> bool:
    return os.access(path, os.X_OK) and shutil.which("ssh-keygen") is not None


def port_is_free(ip: str, port: int) -> bool:
    """True when ``ip:port`` can be bound the way sshd binds it (SO_REUSEADDR, so TIME_WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def wait_for_port(ip: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)
    return False


def _parent_death_prefix() -> list[str]:
    """Command prefix that makes sshd get SIGTERM when the emulator dies hard (SIGKILL, crash).

    setpriv sets the parent-death signal and execs sshd, so the pid is still sshd's. A ``preexec_fn``
    would do the same but forces a plain fork() of a process running gRPC/uvicorn threads, whose
    atfork handlers have been seen to abort the child before exec. Without setpriv: no such guard.
    """
    setpriv = shutil.which("setpriv")
    if sys.platform.startswith("linux") and setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--"]
    return []


class SshdManager:
    """Starts, re-keys and stops the sshd processes of one emulator run. Thread-safe."""

    def __init__(self, state_dir: Path, sshd_path: str = SSHD_PATH, start_timeout: float = 5.0) -> None:
        self.state_dir = state_dir
        self.sshd_path = sshd_path
        self.start_timeout = start_timeout
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._host_key: Path | None = None
        self._keys_root = self._make_keys_root()

    def _make_keys_root(self) -> Path:
        """Where ``authorized_keys`` files live: beside each sshd_config, or under root a directory of their own.

        sshd reads ``authorized_keys`` with the privileges of the user logging in, so under root the login
        account must be able to reach the file: a fresh directory the account may pass through (0711, no
        listing) holds only public keys, while the state dir (host key, configs) keeps its own permissions.
        """
        if os.geteuid() != 0:
            return self.config_root
        root = Path(tempfile.mkdtemp(prefix="gpucloud-emulator-keys-"))
        root.chmod(0o711)
        return root

    @property
    def config_root(self) -> Path:
        """Every sshd_config lives under this directory (handy for ``pgrep -f``)."""
        return self.state_dir / "sshd"

    def host_key(self) -> Path:
        """Generate the shared ed25519 host key on first use."""
        with self._lock:
            if self._host_key is None:
                key_dir = self.state_dir / "host_keys"
                key_dir.mkdir(parents=True, exist_ok=True)
                key = key_dir / "ssh_host_ed25519_key"
                if not key.exists():
                    subprocess.run(
                        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gpucloud-emulator", "-f", str(key)],
                        check=True,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                self._host_key = key
            return self._host_key

    def start(self, name: str, spec: SshSpec) -> bool:
        """Start (or restart) the sshd called ``name``; True once its port accepts TCP connections."""
        self.stop(name)
        inst_dir = self.config_root / name
        inst_dir.mkdir(parents=True, exist_ok=True)
        self._write_keys(name, spec.authorized_keys)
        config = self._write_config(inst_dir, spec)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        with open(inst_dir / "sshd.log", "ab") as err:
            proc = subprocess.Popen(
                [*_parent_death_prefix(), self.sshd_path, "-D", "-e", "-f", str(config.resolve())],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        with self._lock:
            self._procs[name] = proc
        return self._await_ready(name, proc, spec)

    def _await_ready(self, name: str, proc: subprocess.Popen[bytes], spec: SshSpec) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log_text = (self.config_root / name / "sshd.log").read_text(errors="replace").strip()
                log.warning("sshd for %s exited (rc=%s): %s", name, proc.returncode, log_text[-500:])
                self.stop(name)
                return False
            if wait_for_port(spec.ip, spec.port, timeout=0.2):
                return True
        log.warning("sshd for %s did not listen on %s:%s in time", name, spec.ip, spec.port)
        self.stop(name)
        return False

    def set_keys(self, name: str, keys: Iterable[str]) -> None:
        """Replace the authorized keys; sshd reads the file at each login, so no restart is needed."""
        self._write_keys(name, tuple(keys))

    def stop(self, name: str) -> None:
        with self._lock:
            proc = self._procs.pop(name, None)
        if proc is not None:
            _terminate(proc)

    def stop_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
            self._procs.clear()
        for proc in procs:
            _terminate(proc)

    def close(self) -> None:
        """Stop every sshd and remove the keys directory this manager made (the state dir is not its own)."""
        self.stop_all()
        if self._keys_root != self.config_root:
            shutil.rmtree(self._keys_root, ignore_errors=True)

    def is_running(self, name: str) -> bool:
        with self._lock:
            proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._procs)

    def _keys_file(self, name: str) -> Path:
        return self._keys_root / name / "authorized_keys"

    def _write_keys(self, name: str, keys: tuple[str, ...]) -> None:
        keys_dir = self._keys_file(name).parent
        keys_dir.mkdir(parents=True, exist_ok=True)
        keys_dir.chmod(0o711)
        tmp = keys_dir / "authorized_keys.tmp"
        tmp.write_text("".join(k.strip() + "\n" for k in keys if k.strip()))
        tmp.chmod(0o644)  # public keys only; readable by the login account, writable by the emulator alone
        tmp.replace(keys_dir / "authorized_keys")  # atomic: a login never sees a half-written file

    def _write_config(self, inst_dir: Path, spec: SshSpec) -> Path:
        lines = [
            f"ListenAddress {spec.ip}:{spec.port}",
            f'HostKey "{self.host_key().resolve()}"',
            f'PidFile "{(inst_dir / "sshd.pid").resolve()}"',
            f'AuthorizedKeysFile "{self._keys_file(inst_dir.name).resolve()}"',
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            # Exactly one account may log in, and never root (see the module docstring).
            f"AllowUsers {login_user()}",
            "PermitRootLogin no",
            "PrintMotd no",
            # Ansible opens several sessions at once; the defaults would throttle forks.
            "MaxStartups 100",
            "MaxSessions 50",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
        ]
        config = inst_dir / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        return config


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc (empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process exited while we looked
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    # sshd leaves open sessions alive when the listener stops, and each session calls setsid(), so a
    # process-group kill misses them. A stopped machine has no sessions (nor ControlPersist sockets),
    # so end the listener's descendants first.
    sessions = _descendants(proc.pid) if proc.poll() is None else []
    for pid in sessions:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    _wait_gone(sessions, timeout=5)
    # Always wait() after terminate(): nothing else reaps children here, so skipping it leaves zombies.
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _alive(pid: int) -> bool:
    """Still running: present in /proc and not a zombie (a zombie has exited; only its parent's wait is due)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Return once every pid has exited, so "stopped" means no session of that machine still runs;
    SIGKILL what SIGTERM did not end in time."""
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)

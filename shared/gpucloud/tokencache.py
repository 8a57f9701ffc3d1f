"""An opt-in cache of OAuth access tokens on disk: one round trip less for every short-lived process.

Every Ansible task is a new process, so without a cache each task of a DataCrunch or ComputeStacks (OAuth)
playbook asks the token endpoint for a new token before its first real call, although an earlier task obtained
one minutes ago that is valid for an hour: one round trip of two on a no-op run.

Off by default, because it writes a bearer token to disk; turned on per provider with ``token_cache = true`` in
the profile file or ``GPUCLOUD_<PROVIDER>_TOKEN_CACHE=true``. Then:

- the file is ``$XDG_CACHE_HOME/gpucloud/tokens/<provider>-<hash>.json`` (default ``~/.cache/...``), one per token
  endpoint, client id and user; the directory is created 0700, each file is written 0600 (atomically). A file
  that is a symlink, belongs to another user or is readable by others is never read;
- it holds the access token and when it expires, nothing else: no refresh token, no credential. A salted hash of
  the credentials is kept next to it, so a changed secret never reuses a token obtained with the old one;
- a token is used until its expiry minus the flow's early-refresh margin; one the API refuses (revoked, a new
  API key generated) is replaced by a new grant, and the file with it;
- any problem reading or writing it is ignored: the flow then asks for a token as it does without a cache. The
  token is never logged (the transport redacts it like every token the flow holds).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gpucloud.namelock import canonical_scope

if TYPE_CHECKING:
    from gpucloud.config import ProviderConfig

_MAX_BYTES = 64 * 1024  # a cache file is a few hundred bytes; anything larger is not ours


def cache_dir() -> Path:
    """The user's cache directory for tokens (XDG base directory spec)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gpucloud" / "tokens"


class TokenCache:
    """One identity's cached access token (see the module docstring)."""

    def __init__(self, path: Path, credentials: Sequence[str | None], *, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self._credentials = "\0".join(c or "" for c in credentials)
        self._wall = wall

    @classmethod
    def for_identity(
        cls,
        provider: str,
        token_url: str,
        identity: Sequence[str | None],
        credentials: Sequence[str | None],
        *,
        directory: Path | None = None,
        wall: Callable[[], float] = time.time,
    ) -> TokenCache:
        """The cache of ``identity`` (client id, user: not secret) at ``token_url``; ``credentials`` (the
        secrets) only go into a salted hash that tells whether a cached token was obtained with them."""
        name = "\0".join([canonical_scope(provider, token_url), *(i or "" for i in identity)])
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        return cls((directory or cache_dir()) / f"{provider}-{digest}.json", credentials, wall=wall)

    def _proof(self, salt: str) -> str:
        return hashlib.sha256(f"{salt}\0{self._credentials}".encode()).hexdigest()

    def load(self) -> tuple[str, float] | None:
        """The cached token and its seconds left, if the file is ours, the token was obtained with these
        credentials and has not expired; else None."""
        try:
            data = json.loads(self._read_private())
            token, expires_at, salt = data["access_token"], float(data["expires_at"]), data["salt"]
            if not isinstance(token, str) or not token or data.get("proof") != self._proof(str(salt)):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        left = expires_at - self._wall()
        return (token, left) if left > 0 else None

    def _read_private(self) -> bytes:
        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            info = os.fstat(fd)
            if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise PermissionError("not a private file of this user")
            return os.read(fd, _MAX_BYTES)
        finally:
            os.close(fd)

    def save(self, access_token: str, lifetime: float) -> None:
        """Keep ``access_token`` until ``lifetime`` seconds from now; a failure to write is ignored."""
        salt = secrets.token_hex(16)
        entry = {"access_token": access_token, "expires_at": self._wall() + lifetime, "salt": salt}
        entry["proof"] = self._proof(salt)
        with contextlib.suppress(OSError):
            self._write_private(json.dumps(entry))

    def _write_private(self, text: str) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise PermissionError(f"{directory} is not a directory of this user")
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            directory.chmod(0o700)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".token-")  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def token_cache_for(config: ProviderConfig, token_url: str) -> TokenCache | None:
    """The token cache for ``config`` when it turns one on (``token_cache``), else None."""
    if not config.token_cache:
        return None
    return TokenCache.for_identity(
        config.provider,
        token_url,
        identity=(config.client_id, config.username),
        credentials=(config.secret("client_secret"), config.secret("password")),
    )

"""Input checks that need no API call; each error names the field and says how to fix it."""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable

from gpucloud import errors

_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


def public_key_identity(text: str) -> str:
    """``type base64`` without the comment: two keys that differ only in comment are the same key."""
    return " ".join(text.split()[:2])


def looks_like_public_key(text: str) -> bool:
    return text.split(" ", 1)[0] in _KEY_TYPES


def validate_public_key(text: str, field: str = "public_key") -> str:
    """Return the key stripped of surrounding whitespace, or raise naming ``field``."""
    parts = text.strip().split()
    hint = "paste one line of an OpenSSH .pub file, e.g. 'ssh-ed25519 AAAAC3... you@host'"
    if "PRIVATE KEY" in text:  # first: a pasted private key must be named as such (and so never echoed back)
        raise errors.ValidationError(f"{field} looks like a private key; never pass private keys", field=field)
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise errors.ValidationError(f"{field} is not an OpenSSH public key; {hint}", field=field)
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise errors.ValidationError(f"{field} has a corrupt base64 body; {hint}", field=field) from None
    if embedded != parts[0]:
        raise errors.ValidationError(f"{field} says {parts[0]} but its body is a {embedded} key; {hint}", field=field)
    return text.strip()


# Display names (Voltage Park's "My Instant Virtual Machine", ComputeStacks labels): printable ASCII, no space at
# either end. Their APIs document nothing wider, and the inventory makes names host names unchanged.
DISPLAY_NAME_PATTERN = r"[!-~]([ -~]*[!-~])?"
DISPLAY_NAME_RULE = (
    "printable ASCII letters, digits, spaces and punctuation, not starting or ending with a space "
    "(no line breaks, control characters or emoji)"
)


def validate_name(value: str, field: str, *, pattern: str, rule: str, min_len: int, max_len: int) -> str:
    if not (min_len <= len(value) <= max_len) or not re.fullmatch(pattern, value):
        raise errors.ValidationError(
            f"{field} {value!r} is invalid: {rule} ({min_len}-{max_len} characters)", field=field
        )
    return value


# --- catalogue names ----------------------------------------------------------------------------------
# Where a user (at a shell or in a playbook) sees every valid value of a field: a CLI command and an info module.
_LISTINGS = {
    "instance_type": ("offers --all", "offer_info"),
    "image": ("images", "image_info"),
    "location": ("locations", "location_info"),
}


def choose_from(provider: str, field: str, names: Iterable[str]) -> str:
    """ "choose one of: <the first dozen valid values>; all of them: <command> or <module>", for error messages."""
    listed = sorted(set(names))
    shown = ", ".join(listed[:12])
    more = f" (and {len(listed) - 12} more)" if len(listed) > 12 else ""
    command, module = _LISTINGS[field]
    where = f"`gpucloud {command} --provider {provider}` or the gpucloud.cloud.{module} module"
    return f"choose one of: {shown}{more}; all of them: {where}"

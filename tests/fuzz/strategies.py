"""Hypothesis strategies for inputs that must be refused, and the rules (from the providers' docs) they break.

The rules here are written down independently of the adapters so a test compares two statements of the same
documented rule: an adapter that forgets or loosens one fails the property.
"""

from __future__ import annotations

import base64
import re
import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Deterministic runs (CI must not flake on a new random example); no example database; fixtures are reused
# across examples on purpose (the emulator is one per session).
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


@dataclass(frozen=True)
class NameRule:
    """A documented name rule: characters (a full-match regex) and length."""

    pattern: str
    min_len: int
    max_len: int

    def allows(self, value: str) -> bool:
        return self.min_len <= len(value) <= self.max_len and re.fullmatch(self.pattern, value) is not None


# Display names: Voltage Park documents a free "name string" ("My Instant Virtual Machine"), ComputeStacks a label
# that is also the project name. Both show printable ASCII only, and a name becomes an inventory host name as is:
# no line breaks, control characters, emoji, blank names or spaces at either end.
DISPLAY_NAME = NameRule(r"[!-~]([ -~]*[!-~])?", 1, 255)

# (provider, kind) -> the rule its docs give for names; providers missing here document none.
NAME_RULES: dict[tuple[str, str], NameRule] = {
    # DataCrunch: the hostname of the machine.
    ("datacrunch", "instance"): NameRule(r"[A-Za-z0-9][A-Za-z0-9.-]*", 1, 63),
    # DCDN Cloud: the name becomes the hostname label.
    ("dcdncloud", "instance"): NameRule(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?", 1, 63),
    # Voltage Park: "name string · min: 3 · max: 64", letters, digits, hyphens and spaces.
    ("voltagepark", "ssh_key"): NameRule(r"[A-Za-z0-9 -]+", 3, 64),
    ("voltagepark", "instance"): DISPLAY_NAME,
    ("voltagepark", "volume"): DISPLAY_NAME,
    ("computestacks", "instance"): DISPLAY_NAME,
}


def unusable_names() -> st.SearchStrategy[str]:
    """Names no provider takes, whatever its own rule: blank, or with a control or invisible character."""
    blank = st.text(alphabet=" \t\u00a0\u2003", min_size=1, max_size=8)
    odd = st.sampled_from(["\n", "\r", "\x00", "\t", "\x1b", "\x7f", "\u200b", "\u202e", "\ufeff"])
    marked = st.tuples(st.text(alphabet="abc1", max_size=6), odd, st.text(alphabet="abc1", max_size=6)).map("".join)
    return st.one_of(blank, marked)


def bad_names(rule: NameRule) -> st.SearchStrategy[str]:
    """Names the rule refuses: wrong length, or a character outside its set (incl. unicode and controls)."""
    too_long = st.text(alphabet="abcdefghij0123456789-", min_size=rule.max_len + 1, max_size=rule.max_len + 40)
    too_short = st.text(alphabet="abc", min_size=1, max_size=max(rule.min_len - 1, 1))
    anything = st.text(min_size=1, max_size=rule.max_len + 5)
    punctuated = st.tuples(
        st.text(alphabet="abc123", min_size=1, max_size=10),
        st.sampled_from(list("_/\\:;!@#$%^&*()+=[]{}|<>?,'\"`~\t\né日ü")),
        st.text(alphabet="abc123", min_size=0, max_size=10),
    ).map("".join)
    return st.one_of(too_long, too_short, anything, punctuated).filter(lambda v: bool(v) and not rule.allows(v))


def _blob(key_type: str, body: bytes = b"\x00" * 32) -> str:
    raw = key_type.encode()
    return base64.b64encode(struct.pack(">I", len(raw)) + raw + body).decode()


@st.composite
def bad_public_keys(draw: st.DrawFn) -> str:
    """Text that is not one line of an OpenSSH public key, in the ways people get it wrong."""
    key_type = draw(st.sampled_from(KEY_TYPES))
    choice = draw(st.integers(0, 5))
    if choice == 0:  # not a key at all (random text, possibly a key type without a body)
        text = draw(st.text(max_size=80))
        return text if text.strip().split(" ")[0] not in KEY_TYPES or len(text.split()) < 2 else "not-a-key " + text
    if choice == 1:  # a key type with a body that is not base64
        junk = draw(st.text(alphabet="!$%&*?#@~<>{}[]", min_size=1, max_size=40))
        return f"{key_type} AAAA{junk} user@host"
    if choice == 2:  # a body of another key type (copy/paste mix-up)
        other = draw(st.sampled_from([t for t in KEY_TYPES if t != key_type]))
        return f"{key_type} {_blob(other)} user@host"
    if choice == 3:  # truncated body: fewer than the 4 length bytes, or random bytes
        body = draw(st.binary(max_size=24))
        encoded = base64.b64encode(body).decode()
        return f"{key_type} {encoded}" if encoded else key_type
    if choice == 4:  # a private key pasted where the public one belongs
        return "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
    # an unknown key type with an otherwise valid-looking body
    prefix = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20))
    return f"{prefix}-key {_blob(prefix)}"


def valid_public_key(key_type: str = "ssh-ed25519") -> str:
    return f"{key_type} {_blob(key_type)} fuzz@example"


def unknown_names(known: set[str]) -> st.SearchStrategy[str]:
    """Catalogue-looking names (slugs) that the catalogue does not have (compared case-insensitively)."""
    folded = {k.casefold() for k in known}
    return st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-._", min_size=1, max_size=40).filter(
        lambda v: v.casefold() not in folded
    )


def not_an_integer() -> st.SearchStrategy[Any]:
    """Values no reading of "a whole number" accepts."""
    return st.one_of(
        st.text(alphabet="abcxyz ,;", min_size=1, max_size=10),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )


def non_positive_sizes() -> st.SearchStrategy[int]:
    return st.integers(max_value=0)

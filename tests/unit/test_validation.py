import base64
import struct

import pytest

from gpucloud import errors
from gpucloud.validation import public_key_identity, validate_name, validate_public_key


def make_key(kind: str, body_kind: str | None = None) -> str:
    inner = (body_kind or kind).encode()
    blob = struct.pack(">I", len(inner)) + inner + b"\x00" * 32
    return f"{kind} {base64.b64encode(blob).decode()} me@host"


def test_valid_key_is_returned_stripped() -> None:
    key = make_key("ssh-ed25519")
    assert validate_public_key(f"  {key}\n") == key
    assert public_key_identity(key) == " ".join(key.split()[:2])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not an OpenSSH public key"),
        ("hello world", "not an OpenSSH public key"),
        ("ssh-ed25519 !!!notbase64", "corrupt base64"),
        (make_key("ssh-rsa", body_kind="ssh-ed25519"), "says ssh-rsa but its body is a ssh-ed25519"),
    ],
)
def test_bad_keys_name_the_field(text: str, message: str) -> None:
    with pytest.raises(errors.ValidationError, match=message) as info:
        validate_public_key(text, field="ssh_keys[0]")
    assert info.value.field == "ssh_keys[0]"
    assert "ssh_keys[0]" in str(info.value)


def test_name_rules() -> None:
    rule = {"pattern": r"[A-Za-z0-9 -]+", "rule": "letters, digits, hyphens, spaces", "min_len": 3, "max_len": 64}
    assert validate_name("My key-1", "name", **rule) == "My key-1"  # type: ignore[arg-type]
    for bad in ("ab", "x" * 65, "bad_name!"):
        with pytest.raises(errors.ValidationError, match="name"):
            validate_name(bad, "name", **rule)  # type: ignore[arg-type]

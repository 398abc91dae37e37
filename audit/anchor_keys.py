"""The Ed25519 keys of the audit anchor (audit.anchoring). The signing key
comes from the environment or a file, never from the database: whoever can
rewrite the tables must not also be able to sign. Verifying needs only
public keys, so an auditor's machine can check checkpoints without it.

Accepted forms: PEM (PKCS#8 private, SubjectPublicKeyInfo public), or base64
of the raw 32-byte key; a public key may also be base64 of its DER
SubjectPublicKeyInfo (the body of its PEM)."""

import base64
import binascii
import hashlib
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from audit.errors import AnchorKeyError, AnchorKeyMissing


def _b64(text: str) -> bytes:
    return base64.b64decode("".join(text.split()), validate=True)


def anchor_private_key_parse(text: str, *, source: str) -> Ed25519PrivateKey:
    """Raises AnchorKeyError naming source (a setting or a file)."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(_b64(text))
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
        raise AnchorKeyError(f"{source} is not an Ed25519 private key (PEM, or base64 of the 32 raw bytes).") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorKeyError(f"{source} is not an Ed25519 private key (PEM, or base64 of the 32 raw bytes).")
    return key


def anchor_public_key_parse(text: str, *, source: str) -> Ed25519PublicKey:
    """Raises AnchorKeyError naming source."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            raw = _b64(text)
            key = Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32 else serialization.load_der_public_key(raw)
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
        raise AnchorKeyError(f"{source} is not an Ed25519 public key (PEM or base64).") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AnchorKeyError(f"{source} is not an Ed25519 public key (PEM or base64).")
    return key


def anchor_public_key_text(key: Ed25519PublicKey) -> str:
    """The form AUDIT_ANCHOR_PUBLIC_KEYS takes: base64 of the raw 32 bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def anchor_key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def anchor_key_file_write(path: Path, key: Ed25519PrivateKey) -> None:
    """Write key as PEM, readable by its owner only. Refuses (FileExistsError)
    to replace an existing file: that key may have signed checkpoints. The
    file appears whole or not at all, so a racing process reads a full key."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".anchor-key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # fails if path exists, unlike rename
    finally:
        os.unlink(tmp)


def _key_from_file(path: Path) -> Ed25519PrivateKey:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnchorKeyError(f"AUDIT_ANCHOR_KEY_FILE {path} cannot be read ({exc.__class__.__name__}).") from None
    return anchor_private_key_parse(text, source=f"AUDIT_ANCHOR_KEY_FILE {path}")


def anchor_signing_key(*, create: bool = False) -> Ed25519PrivateKey:
    """The signing key: AUDIT_ANCHOR_SIGNING_KEY, else the key file. With
    create and AUDIT_ANCHOR_GENERATE_KEY (the demo), a missing key file is
    made. Raises AnchorKeyMissing when there is no key, AnchorKeyError when
    it is unreadable."""
    if settings.AUDIT_ANCHOR_SIGNING_KEY:
        return anchor_private_key_parse(settings.AUDIT_ANCHOR_SIGNING_KEY, source="AUDIT_ANCHOR_SIGNING_KEY")
    path = Path(settings.AUDIT_ANCHOR_KEY_FILE) if settings.AUDIT_ANCHOR_KEY_FILE else None
    if path is not None and path.exists():
        return _key_from_file(path)
    if path is not None and create and settings.AUDIT_ANCHOR_GENERATE_KEY:
        try:
            anchor_key_file_write(path, Ed25519PrivateKey.generate())
        except FileExistsError:
            pass  # another process made it first: use theirs
        return _key_from_file(path)
    raise AnchorKeyMissing(
        "No audit anchor signing key: set AUDIT_ANCHOR_SIGNING_KEY or AUDIT_ANCHOR_KEY_FILE "
        "(docs/deployment.md, 'Audit chain anchoring')."
    )


def anchor_public_keys() -> dict[str, Ed25519PublicKey]:
    """Every key a checkpoint may be signed with, by key id: those listed in
    AUDIT_ANCHOR_PUBLIC_KEYS and the signing key's own, if it is at hand
    (never made up here)."""
    keys = {}
    for n, text in enumerate(settings.AUDIT_ANCHOR_PUBLIC_KEYS, start=1):
        key = anchor_public_key_parse(text, source=f"AUDIT_ANCHOR_PUBLIC_KEYS item {n}")
        keys[anchor_key_id(key)] = key
    try:
        public = anchor_signing_key().public_key()
    except AnchorKeyMissing:
        return keys
    keys[anchor_key_id(public)] = public
    return keys


def anchor_settings_check() -> None:
    """What start-up checks: the keys given in the environment parse.
    Raises AnchorKeyError naming the setting."""
    if settings.AUDIT_ANCHOR_SIGNING_KEY:
        anchor_private_key_parse(settings.AUDIT_ANCHOR_SIGNING_KEY, source="AUDIT_ANCHOR_SIGNING_KEY")
    for n, text in enumerate(settings.AUDIT_ANCHOR_PUBLIC_KEYS, start=1):
        anchor_public_key_parse(text, source=f"AUDIT_ANCHOR_PUBLIC_KEYS item {n}")

"""Credentials and private keys at rest: Fernet tokens under keys from the
environment (settings.PSYFI_CREDENTIALS_KEYS, newest first). MultiFernet
decrypts with any listed key and encrypts with the first, so a key rotates by
prepending the new one and re-encrypting (`integrations_reencrypt`)."""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from integrations.errors import CredentialsUnreadable


def _fernet() -> MultiFernet:
    keys = list(settings.PSYFI_CREDENTIALS_KEYS)
    if not keys:
        # Demo only: a key derived from SECRET_KEY; settings_production sets real keys.
        keys = [base64.urlsafe_b64encode(hashlib.sha256(settings.SECRET_KEY.encode()).digest()).decode()]
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def secret_encrypt(data: dict) -> str:
    return _fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def secret_decrypt(token: str) -> dict:
    """Raises CredentialsUnreadable when no configured key opens the token."""
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise CredentialsUnreadable("Stored credentials cannot be decrypted with the configured keys.") from exc


def secret_rotate(token: str) -> str:
    """Re-encrypt under the newest key (keeps the plaintext)."""
    if not token:
        return token
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialsUnreadable("Stored credentials cannot be decrypted with the configured keys.") from exc

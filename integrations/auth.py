"""Authentication to EHRs: SMART Backend Services (a client assertion signed
by us, RS384 or ES384, exp at most 5 minutes ahead, a fresh jti each time,
the access token cached until shortly before it expires), OAuth2 client
secret, static bearer and basic. Signing keys live encrypted in SigningKey
and are published by the JWKS view (we publish keys; nothing here fetches
one).

The token request goes through the egress-guarded session like every EHR
call, and never follows a redirect: the client secret or the assertion would
go to an address nobody configured (a 307 keeps the POST body)."""

import base64
import json
import threading
import time
import uuid

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.db import transaction

from integrations.crypto import secret_decrypt, secret_encrypt
from integrations.errors import ConnectionInvalid, RedirectRefused
from integrations.models import EHRConnection, SigningKey
from integrations.transports.base import http_session, redirect_reason

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds; SMART: exp no more than 5 minutes ahead
TOKEN_MARGIN = 30  # seconds before expiry when a new token is fetched

_tokens: dict[int, tuple[str, float]] = {}
_tokens_lock = threading.Lock()


@transaction.atomic
def signingkey_create(*, alg: str = SigningKey.Alg.ES384, make_signing: bool = True) -> SigningKey:
    """A new key pair. The old signing key stays published until removed, so
    EHRs that cached our JWKS still verify during the overlap."""
    if alg == SigningKey.Alg.ES384:
        private = ec.generate_private_key(ec.SECP384R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    elif alg == SigningKey.Alg.RS384:
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    else:
        raise ConnectionInvalid(f"Unsupported signing algorithm {alg!r}; use RS384 or ES384.", field="alg")
    kid = uuid.uuid4().hex
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    if make_signing:
        SigningKey.objects.filter(is_signing=True).update(is_signing=False)
    return SigningKey.objects.create(
        kid=kid, alg=alg, private_key_encrypted=secret_encrypt({"pem": pem}), public_jwk=jwk, is_signing=make_signing
    )


def jwks_document() -> dict:
    return {"keys": [k.public_jwk for k in SigningKey.objects.filter(removed_at__isnull=True).order_by("created_at")]}


def smart_assertion(*, client_id: str, token_url: str, key: SigningKey, now: float | None = None) -> str:
    """The signed client assertion. A new jti every call (servers reject a
    replayed one), exp 5 minutes ahead at most."""
    now = time.time() if now is None else now
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": int(now),
        "exp": int(now) + ASSERTION_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    pem = secret_decrypt(key.private_key_encrypted)["pem"]
    return jwt.encode(claims, pem, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"})


def _token_fetch(connection: EHRConnection, timeout: float) -> tuple[str, float]:
    """Raises RedirectRefused for a 3xx, EgressRefused for a refused address,
    requests.RequestException when the endpoint cannot be asked or refuses."""
    creds = secret_decrypt(connection.credentials_encrypted)
    data = {"grant_type": "client_credentials"}
    if connection.scope:
        data["scope"] = connection.scope
    auth = None
    if connection.auth == EHRConnection.Auth.SMART:
        key = SigningKey.objects.filter(is_signing=True, removed_at__isnull=True).first()
        if key is None:
            raise ConnectionInvalid("No signing key; create one before using SMART Backend Services.")
        data["client_assertion_type"] = ASSERTION_TYPE
        data["client_assertion"] = smart_assertion(
            client_id=connection.client_id, token_url=connection.token_url, key=key
        )
    else:
        auth = (connection.client_id, creds.get("client_secret", ""))
    response = http_session().post(connection.token_url, data=data, auth=auth, timeout=timeout, allow_redirects=False)
    reason = redirect_reason(response, who="The token endpoint")
    if reason is not None:
        raise RedirectRefused(reason, http_status=response.status_code, field="token_url")
    if response.status_code != 200:
        raise requests.HTTPError(f"Token endpoint answered {response.status_code}", response=response)
    body = response.json()
    expires_in = float(body.get("expires_in", 300))
    return body["access_token"], time.time() + expires_in


def auth_headers(connection: EHRConnection, *, timeout: float, force: bool = False) -> dict:
    """Headers for one request. force=True drops a cached token (after a 401)."""
    kind = connection.auth
    if kind == EHRConnection.Auth.NONE:
        return {}
    if kind == EHRConnection.Auth.BEARER:
        return {"Authorization": f"Bearer {secret_decrypt(connection.credentials_encrypted).get('token', '')}"}
    if kind == EHRConnection.Auth.BASIC:
        password = secret_decrypt(connection.credentials_encrypted).get("password", "")
        raw = base64.b64encode(f"{connection.username}:{password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}
    with _tokens_lock:
        cached = _tokens.get(connection.pk)
        if force or cached is None or cached[1] - TOKEN_MARGIN <= time.time():
            cached = _token_fetch(connection, timeout)
            _tokens[connection.pk] = cached
    return {"Authorization": f"Bearer {cached[0]}"}


def token_cache_clear() -> None:
    with _tokens_lock:
        _tokens.clear()

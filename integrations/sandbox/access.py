"""Who may talk to the built-in sandbox EHR: a request must carry the bearer
token of a usable sandbox connection (kind "sandbox", active, not revoked),
as the delivery worker sends it (integrations.auth). Everything the request
reads or writes is then scoped to that connection's practice.

The sandbox issues the token itself when the connection is made (random,
256 bits): a token chosen by an admin could be weak, or the same as another
practice's, and then one practice could read another's sandbox."""

import hmac
import secrets

from integrations.crypto import secret_decrypt
from integrations.errors import ConnectionInvalid, CredentialsUnreadable
from integrations.models import EHRConnection


def sandbox_credentials_issue(*, auth_kind: str, secrets_given: dict | None) -> tuple[str, dict]:
    """(auth kind, secrets) for a new sandbox connection: a fresh bearer token.
    Raises ConnectionInvalid for any other kind of authentication, or a
    secret of the admin's own."""
    if auth_kind not in (EHRConnection.Auth.NONE, EHRConnection.Auth.BEARER):
        raise ConnectionInvalid(
            "The built-in sandbox takes the bearer token it issues itself; choose None or Static bearer token.",
            field="auth_kind",
        )
    if secrets_given:
        raise ConnectionInvalid("The built-in sandbox issues its own token; leave the secret blank.", field="secret")
    return EHRConnection.Auth.BEARER, {"token": secrets.token_urlsafe(32)}


def sandbox_connection_authenticate(*, authorization: str) -> EHRConnection | None:
    """The usable sandbox connection whose bearer token the Authorization
    header carries, or None. One active connection per practice, so this
    reads at most one row per practice; tokens are compared in constant time."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    candidates = EHRConnection.objects.filter(
        kind=EHRConnection.Kind.SANDBOX, auth=EHRConnection.Auth.BEARER, is_active=True, revoked_at__isnull=True
    ).exclude(credentials_encrypted="")
    for connection in candidates.select_related("practice").order_by("pk"):
        try:
            expected = str(secret_decrypt(connection.credentials_encrypted).get("token") or "")
        except CredentialsUnreadable:
            continue  # a key was dropped too early; that connection cannot be vouched for
        if expected and hmac.compare_digest(expected.encode(), token.encode()):
            return connection
    return None

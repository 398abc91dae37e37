"""API keys of AI sources: create (the plain key is returned once), rotate with
an overlap window, revoke; and the DRF authentication that checks them.

A key looks like ``psk_<prefix>_<secret>``. The prefix is public and finds the
row; only a SHA-256 of the whole key is stored. The secret is 256 random bits
from `secrets`, so a fast hash is the right tool here (a slow password hash
protects low-entropy secrets and would cost every request tens of
milliseconds); comparison is constant-time.

Every use of a key, accepted or refused, is an AuditEvent with the AI source
as actor and the key's prefix in detail["api_key"]: api_key.use (reads,
repeats, rejected payloads), api_key.refused (revoked, expired, wrong secret),
or, for a stored draft, its note.draft event(s), written in the same
transaction as the draft. The audit log answers "what did this scribe do".
"""

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from audit.services import Actor, actor_ai, actor_person, actor_system, audit_record
from notes.errors import DomainError
from notes.models import AISource, AISourceKey, Practice

KEY_SCHEME = "psk"
_PREFIX = re.compile(r"[0-9a-f]{12}")  # secrets.token_hex(6)
# last_used_at is a convenience for the admin ("is this key still in use?");
# the audit log has every use, so the column is refreshed at most this often.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _key_hash(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def _actor(actor) -> Actor:
    if actor is None:
        return actor_system("api-keys")
    if isinstance(actor, Actor):
        return actor
    return actor_person(actor)


def _new_key(ai_source: AISource) -> tuple[AISourceKey, str]:
    prefix = secrets.token_hex(6)
    plain = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    key = AISourceKey(ai_source=ai_source, prefix=prefix, key_hash=_key_hash(plain))
    key.full_clean()
    key.save()
    return key, plain


@transaction.atomic
def ai_source_key_create(*, ai_source: AISource, actor=None) -> tuple[AISourceKey, str]:
    """A new key for the source. The plain key is in the return value and
    nowhere else: show it once, it cannot be recovered."""
    key, plain = _new_key(ai_source)
    audit_record(
        practice=ai_source.practice,
        actor=_actor(actor),
        action="api_key.create",
        obj=key,
        after={"ai_source": ai_source.pk, "prefix": key.prefix},
    )
    return key, plain


@transaction.atomic
def ai_source_key_rotate(
    *, key: AISourceKey, actor=None, overlap: timedelta | None = None, now: datetime | None = None
) -> tuple[AISourceKey, str]:
    """A new key for the same source; the old one keeps working until the
    overlap window ends, so the scribe can switch without dropping drafts.

    Raises DomainError if the old key is already revoked or expired.
    """
    now = now or timezone.now()
    overlap = settings.INTAKE_KEY_ROTATION_OVERLAP if overlap is None else overlap
    key = AISourceKey.objects.select_for_update().select_related("ai_source__practice").get(pk=key.pk)
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise DomainError("This key is revoked or expired; create a new key instead of rotating it.", field="key")
    new_key, plain = _new_key(key.ai_source)
    expires_at = now + overlap
    if key.expires_at is None or key.expires_at > expires_at:
        key.expires_at = expires_at
        key.save(update_fields=["expires_at"])
    audit_record(
        practice=key.ai_source.practice,
        actor=_actor(actor),
        action="api_key.rotate",
        obj=new_key,
        before={"prefix": key.prefix},
        after={"prefix": new_key.prefix, "old_key_expires_at": key.expires_at},
    )
    return new_key, plain


@transaction.atomic
def ai_source_key_revoke(*, key: AISourceKey, actor=None) -> AISourceKey:
    """Refuse the key from now on. Idempotent: revoking twice keeps the first time."""
    key = AISourceKey.objects.select_for_update().select_related("ai_source__practice").get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            practice=key.ai_source.practice,
            actor=_actor(actor),
            action="api_key.revoke",
            obj=key,
            after={"prefix": key.prefix, "revoked_at": key.revoked_at},
        )
    return key


def _key_with_source(prefix: str) -> AISourceKey | None:
    """The key with its AI source and practice, in one raw SQL join: this runs
    on every request, and the ORM's compilation of the same join cost more
    than the query. Rows become model instances through Model.from_db with the
    backend's converters, as the ORM itself would."""
    models = ((AISourceKey, "k"), (AISource, "s"), (Practice, "p"))
    qn = connection.ops.quote_name
    columns = [f"{alias}.{qn(f.column)}" for model, alias in models for f in model._meta.concrete_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {qn(AISourceKey._meta.db_table)} k"  # noqa: S608 - names only
        f" JOIN {qn(AISource._meta.db_table)} s ON s.id = k.ai_source_id"
        f" JOIN {qn(Practice._meta.db_table)} p ON p.id = s.practice_id WHERE k.prefix = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    values = iter(row)
    key, source, practice = (_from_row(model, values) for model, _ in models)
    source.practice = practice
    key.ai_source = source
    return key


def _from_row(model, values):
    fields = model._meta.concrete_fields
    converted = []
    for field in fields:
        value = next(values)
        column = field.get_col(model._meta.db_table)
        for converter in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def ai_source_key_check(plain: str, *, now: datetime | None = None) -> tuple[AISourceKey | None, str]:
    """(key, "") when plain is a usable key; (key or None, reason) when not.
    The key is returned with a reason when the prefix matched, so the refusal
    can be logged against its source."""
    now = now or timezone.now()
    parts = plain.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not _PREFIX.fullmatch(parts[1]):
        return None, "Malformed API key."
    key = _key_with_source(parts[1])
    if key is None:
        return None, "Invalid API key."
    if not hmac.compare_digest(key.key_hash, _key_hash(plain)):
        return key, "Invalid API key."  # a real prefix with a wrong secret: worth logging
    if key.revoked_at is not None:
        return key, "This API key has been revoked."
    if key.expires_at is not None and key.expires_at <= now:
        return key, "This API key has expired."
    if not key.ai_source.is_active:
        return key, "This AI source is deactivated."
    return key, ""


@transaction.atomic
def ai_source_key_use_record(
    *, key: AISourceKey, method: str, path: str, refused: str = "", status: int | None = None
) -> None:
    """Log one use of a key (accepted or refused) with the AI source as actor."""
    detail = {"method": method, "path": path[:200], "api_key": key.prefix}
    if refused:
        detail["reason"] = refused
    if status is not None:
        detail["status"] = status
    audit_record(
        practice=key.ai_source.practice,
        actor=actor_ai(key.ai_source),
        action="api_key.refused" if refused else "api_key.use",
        obj=key,
        detail=detail,
    )
    if not refused:
        ai_source_key_touch(key=key)


def ai_source_key_touch(*, key: AISourceKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        AISourceKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


class AISourceKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer psk_...`. Sets request.auth to the AISourceKey;
    request.user stays anonymous (an AI source is not a person, and the
    history and audit records must not mistake it for one)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, plain = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not plain.strip():
            raise exceptions.AuthenticationFailed("Send the API key as `Authorization: Bearer <key>`.")
        key, reason = ai_source_key_check(plain.strip())
        if reason:
            if key is not None:
                ai_source_key_use_record(key=key, method=request.method, path=request.path, refused=reason)
            raise exceptions.AuthenticationFailed(reason)
        # An accepted use is logged by the view (IntakeApiView), in the same
        # transaction as what the request writes.
        return AnonymousUser(), key

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="psyfi-review intake"'


class IsAISource(permissions.BasePermission):
    message = "Authenticate with your AI source's API key: `Authorization: Bearer <key>`."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, AISourceKey)


class AISourceKeyScheme(OpenApiAuthenticationExtension):
    target_class = AISourceKeyAuthentication
    name = "aiSourceKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The AI source's API key (`psk_...`), shown once when created.",
        }

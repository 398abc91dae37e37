"""API keys of AI sources: create (the plain key is returned once), rotate with
an overlap window, revoke; and the DRF authentication that checks them.

A key looks like ``psk_<prefix>_<secret>``. The prefix is public and finds the
row; only a SHA-256 of the whole key is stored. The secret is 256 random bits
from `secrets`, so a fast hash is the right tool here (a slow password hash
protects low-entropy secrets and would cost every request tens of
milliseconds); comparison is constant-time.

Every accepted use of a key is an AuditEvent with the AI source as actor and
the key's prefix in detail["api_key"]: api_key.use (reads, repeats, rejected
payloads) or, for a stored draft, its note.draft event(s), written in the
same transaction as the draft. The audit log answers "what did this scribe do".
Refusals of a known prefix (revoked, expired, wrong secret) are logged per
minute: the minute's first as api_key.refused, the rest as one count
(ai_source_key_refusal_record), so a flood cannot grow the permanent log
without bound.

An unknown prefix and a real prefix with a wrong secret take the same path:
the key is hashed and looked up by prefix and hash together, so neither the
code run nor the query tells an attacker whether a prefix exists
(bench/api_key_refusal.py measures it).
"""

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
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


def _key_lock(key: AISourceKey) -> AISourceKey:
    # The key row only (of=self), FOR NO KEY UPDATE: the join's practice row
    # stays unlocked, since every audit insert refers to it while holding the
    # chain head (the deadlock notes.services' lock order rules out).
    return (
        AISourceKey.objects.select_for_update(of=("self",), no_key=True)
        .select_related("ai_source__practice")
        .get(pk=key.pk)
    )


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
    key = _key_lock(key)
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
    key = _key_lock(key)
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


def _key_with_source(prefix: str, *, key_hash: str | None = None) -> AISourceKey | None:
    """The key with its AI source and practice (only if its hash is key_hash,
    when given), in one raw SQL join: this runs on every request, and the
    ORM's compilation of the same join cost more than the query. Rows become
    model instances through Model.from_db with the backend's converters, as
    the ORM itself would."""
    models = ((AISourceKey, "k"), (AISource, "s"), (Practice, "p"))
    qn = connection.ops.quote_name
    columns = [f"{alias}.{qn(f.column)}" for model, alias in models for f in model._meta.concrete_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {qn(AISourceKey._meta.db_table)} k"  # noqa: S608 - names only
        f" JOIN {qn(AISource._meta.db_table)} s ON s.id = k.ai_source_id"
        f" JOIN {qn(Practice._meta.db_table)} p ON p.id = s.practice_id WHERE k.prefix = %s"
    )
    params = [prefix]
    if key_hash is not None:
        sql += f" AND k.{qn('key_hash')} = %s"
        params.append(key_hash)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
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


def api_key_prefix(plain: str) -> str | None:
    """The prefix of a well-formed key (no database involved), else None."""
    parts = plain.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not _PREFIX.fullmatch(parts[1]):
        return None
    return parts[1]


def ai_source_key_check(plain: str, *, now: datetime | None = None) -> tuple[AISourceKey | None, str]:
    """(key, "") when plain is a usable key; (key, reason) when it is the
    right secret of a key that may no longer be used; (None, reason) when it
    is malformed or no key has this prefix and secret."""
    now = now or timezone.now()
    prefix = api_key_prefix(plain)
    if prefix is None:
        return None, "Malformed API key."
    # Prefix and hash in one lookup: an unknown prefix and a wrong secret are
    # the same query with no row, not an early return against a late one.
    key_hash = _key_hash(plain)
    key = _key_with_source(prefix, key_hash=key_hash)
    if key is None or not hmac.compare_digest(key.key_hash, key_hash):
        return None, "Invalid API key."
    if key.revoked_at is not None:
        return key, "This API key has been revoked."
    if key.expires_at is not None and key.expires_at <= now:
        return key, "This API key has expired."
    if not key.ai_source.is_active:
        return key, "This AI source is deactivated."
    return key, ""


@transaction.atomic
def ai_source_key_use_record(*, key: AISourceKey, method: str, path: str, status: int | None = None) -> None:
    """Log one accepted use of a key with the AI source as actor."""
    detail = {"method": method, "path": path[:200], "api_key": key.prefix}
    if status is not None:
        detail["status"] = status
    audit_record(
        practice=key.ai_source.practice, actor=actor_ai(key.ai_source), action="api_key.use", obj=key, detail=detail
    )
    ai_source_key_touch(key=key)


# Refusal counters live this long in the cache: the flush must run (Celery
# beat, every minute) within this time or a minute's count is lost.
_REFUSALS_KEPT = timedelta(days=1)
_REFUSALS = "api_key_refused"


def _minute(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(second=0, microsecond=0)


def _minute_key(minute: datetime) -> str:
    return f"{_REFUSALS}:{minute:%Y%m%d%H%M}"


def _cache_incr(key: str) -> int:
    cache.add(key, 0, _REFUSALS_KEPT.total_seconds())
    return cache.incr(key)


def ai_source_key_refusal_record(
    *, prefix: str, reason: str, method: str, path: str, now: datetime | None = None
) -> None:
    """Count one refused call naming this key prefix (throttled ones too).

    The minute's first refusal of a prefix that exists is written at once as
    an api_key.refused event with count 1; the others of that minute are only
    counted in the cache, and ai_source_key_refusals_flush writes them as one
    api_key.refused_summary event once the minute is over. So a flood adds at
    most two events per prefix and minute, and the counts of a prefix's
    refusal events add up to its refusals. An unknown prefix has no practice
    to log it in: it is counted (and throttled) but not logged."""
    minute = _minute(now or timezone.now())
    if _cache_incr(f"{_minute_key(minute)}:{prefix}") != 1:
        return
    key = _key_with_source(prefix)
    if key is None:
        return
    # The minute's prefixes, one slot each (incr is atomic in Redis, so two
    # web processes never take the same slot), for the flush to find.
    slots = f"{_minute_key(minute)}:slots"
    cache.set(f"{slots}:{_cache_incr(slots)}", prefix, _REFUSALS_KEPT.total_seconds())
    with transaction.atomic():
        audit_record(
            practice=key.ai_source.practice,
            actor=actor_ai(key.ai_source),
            action="api_key.refused",
            obj=key,
            detail={
                "method": method,
                "path": path[:200],
                "api_key": prefix,
                "reason": reason,
                "minute": minute.isoformat(),
                "count": 1,
            },
        )


def ai_source_key_refusals_flush(*, now: datetime | None = None) -> int:
    """Write, for every minute that is over and not yet flushed, one
    api_key.refused_summary event per prefix refused more than once in it,
    with the count after the first. Returns the number of events written.

    Safe to run twice at once: each minute is claimed in the cache first.
    Looks back at most as far as the counters are kept."""
    current = _minute(now or timezone.now())
    timeout = _REFUSALS_KEPT.total_seconds()
    done_mark = f"{_REFUSALS}:flushed_through"
    done = cache.get(done_mark)
    minute = current - _REFUSALS_KEPT
    if done:
        minute = max(minute, datetime.fromisoformat(done) + timedelta(minutes=1))
    minutes = []
    while minute < current:
        minutes.append(minute)
        minute += timedelta(minutes=1)
    slot_counts = cache.get_many([f"{_minute_key(m)}:slots" for m in minutes])
    written = 0
    for minute in minutes:
        base = _minute_key(minute)
        slot_count = slot_counts.get(f"{base}:slots", 0)
        if not slot_count or not cache.add(f"{base}:flushed", 1, timeout):
            continue
        prefixes = list(cache.get_many([f"{base}:slots:{i}" for i in range(1, slot_count + 1)]).values())
        counts = cache.get_many([f"{base}:{prefix}" for prefix in prefixes])
        for prefix in prefixes:
            rest = counts.get(f"{base}:{prefix}", 1) - 1
            key = _key_with_source(prefix) if rest > 0 else None
            if key is None:
                continue
            with transaction.atomic():
                audit_record(
                    practice=key.ai_source.practice,
                    actor=actor_ai(key.ai_source),
                    action="api_key.refused_summary",
                    obj=key,
                    detail={"api_key": prefix, "minute": minute.isoformat(), "count": rest},
                )
            written += 1
    if minutes:
        cache.set(done_mark, minutes[-1].isoformat(), timeout)
    return written


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
            # Counted and logged by the view (notes.api_throttles.RefusalThrottledMixin).
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

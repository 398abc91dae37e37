"""Writing the audit log. audit_record is the only writer of AuditEvent; call
it inside the transaction of the change it records, so the event and the
change commit or roll back together."""

import hashlib
import ipaddress
import json
import uuid
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from audit.context import current_request
from audit.models import AuditChainHead, AuditEvent, AuditSession
from psyfi_review.compiled_reads import prepared_cursor


@dataclass(frozen=True)
class Actor:
    """A person, an AI source, or the system. Build with the helpers below."""

    type: str
    user: object | None = None
    ai_source: object | None = None
    label: str = ""


def actor_person(user) -> Actor:
    return Actor(type=AuditEvent.ActorType.PERSON, user=user, label=user.get_full_name() or user.get_username())


def actor_ai(ai_source, *, model_name: str = "", model_version: str = "") -> Actor:
    model = " ".join(part for part in (model_name, model_version) if part)
    label = f"{ai_source.name} ({model})" if model else ai_source.name
    return Actor(type=AuditEvent.ActorType.AI, ai_source=ai_source, label=label)


def actor_system(label: str = "system") -> Actor:
    return Actor(type=AuditEvent.ActorType.SYSTEM, label=label)


# The chain hash covers these columns. The canonical text of an event is the
# JSON array of their values in this order, as PostgreSQL's json_build_array
# prints it: ", " between items, strings JSON-escaped with non-ASCII left as
# it is, NULL as null, created_at as datetime.isoformat() gives it in UTC,
# and each JSON column as PostgreSQL prints jsonb. So PostgreSQL can rebuild
# the text, and the hash, of millions of events without sending them to
# Python (audit.verify), and anyone can re-derive it from a row. This module
# builds the same text in Python, for writing and for other databases. The
# chain hash is SHA-256 (hex) of the previous event's hash followed by the
# canonical text, in UTF-8.
HASHED_COLUMNS = (
    "action",
    "actor_ai_source_id",
    "actor_label",
    "actor_type",
    "actor_user_id",
    "after",
    "before",
    "client_id",
    "created_at",
    "detail",
    "ip_address",
    "note_id",
    "object_id",
    "object_type",
    "practice_id",
    "request_id",
    "seq",
    "user_agent",
)
# json's string encoder that leaves non-ASCII as it is: it escapes exactly
# what PostgreSQL's escape_json does (quote, backslash, control characters).
_json_str = json.encoder.encode_basestring


def _jsonb_key(item) -> tuple:
    key = item[0].encode()
    return len(key), key


def jsonb_text(value) -> str:
    """value as PostgreSQL prints it after storing it as jsonb: object keys
    shortest first then by bytes, ", " and ": " between items, numbers as
    numeric prints them (no exponent, no negative zero)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _json_str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        number = Decimal(repr(value))
        return format(number, "f").lstrip("-") if number == 0 else format(number, "f")
    if isinstance(value, dict):
        items = sorted(((str(k), v) for k, v in value.items()), key=_jsonb_key)
        return "{" + ", ".join(f"{_json_str(k)}: {jsonb_text(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    return _json_str(str(value))


def _int(value) -> str:
    return "null" if value is None else str(int(value))


def audit_canonical(values: tuple) -> str:
    """The canonical text of one event, from its HASHED_COLUMNS values (JSON
    columns as Python values, created_at an aware datetime)."""
    (action, ai_source, label, actor_type, user, after, before, client, created_at, detail, ip, note) = values[:12]
    (object_id, object_type, practice, request_id, seq, user_agent) = values[12:]
    parts = (
        _json_str(action),
        _int(ai_source),
        _json_str(label),
        _json_str(actor_type),
        _int(user),
        jsonb_text(after),
        jsonb_text(before),
        _int(client),
        _json_str(created_at.astimezone(UTC).isoformat()),
        jsonb_text(detail),
        "null" if ip is None else _json_str(ip),
        _int(note),
        _json_str(object_id),
        _json_str(object_type),
        _int(practice),
        _json_str(request_id),
        _int(seq),
        _json_str(user_agent),
    )
    return "[" + ", ".join(parts) + "]"


def audit_digest(prev_hash: str, values: tuple) -> str:
    return hashlib.sha256((prev_hash + audit_canonical(values)).encode()).hexdigest()


def audit_event_hash_fields(event: AuditEvent) -> dict:
    """The fields the chain hash covers, by name (for people and exports)."""
    return {column.removesuffix("_id"): getattr(event, column) for column in HASHED_COLUMNS}


def audit_event_digest(event: AuditEvent, *, prev_hash: str) -> str:
    return audit_digest(prev_hash, tuple(getattr(event, column) for column in HASHED_COLUMNS))


def _normalise_ip(address: str | None) -> str | None:
    """The address as PostgreSQL's inet prints it back, so the hash computed
    now matches the one audit_verify computes from the stored row."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


# The canonical text of an event as PostgreSQL builds it from the columns
# (audit_canonical is its Python twin; a test holds the two together).
PG_CANONICAL = """json_build_array(
    action, actor_ai_source_id, actor_label, actor_type, actor_user_id, after, before, client_id,
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_trunc('second', created_at) = created_at
            THEN '' ELSE to_char(created_at AT TIME ZONE 'UTC', '.US') END || '+00:00',
    detail, ip_address, note_id, object_id, object_type, practice_id, request_id, seq, user_agent
)::text"""

# On PostgreSQL one statement locks the chain head, inserts the event with
# its hash computed by the database (with PG_CANONICAL, as audit_verify
# checks it, so the two cannot drift) and moves the head: one round trip per
# event instead of three. audit_pg_append_sql also gives it as the tail of a
# caller's own statement (integrations.services.outbox_statements), so a
# change and its event commit together in one round trip.
_COLUMNS = ", ".join(HASHED_COLUMNS)


def audit_pg_append_sql(
    *, ctes: str = "", when: str = "", select: str = "SELECT id, seq, prev_hash, hash FROM ins"
) -> str:
    """The append statement. `ctes`: the caller's own CTEs, run first (each
    followed by a comma); `when`: an SQL condition over them, the event is
    appended only when it holds; `select`: the final SELECT, which may read
    `ins` (the appended event's id, seq, prev_hash, hash). Parameters: the
    event's (audit_pg_append_params) and the caller's."""
    head_when = f"AND ({when})" if when else ""
    return f"""
WITH {ctes} head AS (
    SELECT seq, hash FROM {AuditChainHead._meta.db_table}
    WHERE practice_id = %(practice_id)s {head_when}
    FOR UPDATE
), ev AS (
    SELECT %(action)s::text AS action, %(actor_ai_source_id)s::bigint AS actor_ai_source_id,
        %(actor_label)s::text AS actor_label, %(actor_type)s::text AS actor_type,
        %(actor_user_id)s::bigint AS actor_user_id, %(after)s::jsonb AS after, %(before)s::jsonb AS before,
        %(client_id)s::bigint AS client_id, %(created_at)s::timestamptz AS created_at,
        %(detail)s::jsonb AS detail, %(ip_address)s::inet AS ip_address, %(note_id)s::bigint AS note_id,
        %(object_id)s::text AS object_id, %(object_type)s::text AS object_type,
        %(practice_id)s::bigint AS practice_id, %(request_id)s::text AS request_id,
        head.seq + 1 AS seq, %(user_agent)s::text AS user_agent, head.hash AS prev_hash
    FROM head
), ins AS (
    INSERT INTO {AuditEvent._meta.db_table} ({_COLUMNS}, prev_hash, hash)
    SELECT {_COLUMNS}, prev_hash, encode(sha256(convert_to(prev_hash || {PG_CANONICAL}, 'UTF8')), 'hex')
    FROM ev
    RETURNING id, seq, prev_hash, hash
), head_moved AS (
    UPDATE {AuditChainHead._meta.db_table} SET seq = ins.seq, hash = ins.hash FROM ins
    WHERE practice_id = %(practice_id)s
)
{select}
"""  # noqa: S608 - table and column names from the models, values are parameters


_PG_APPEND = audit_pg_append_sql()


def audit_pg_append_params(event: AuditEvent) -> dict:
    """The event's values as audit_pg_append_sql's parameters."""
    params = {column: getattr(event, column) for column in HASHED_COLUMNS if column != "seq"}
    for column in ("after", "before", "detail"):
        params[column] = None if params[column] is None else json.dumps(params[column], ensure_ascii=False)
    return params


def audit_event_appended(event: AuditEvent, row: tuple) -> AuditEvent:
    """The event as stored, from the appended row (id, seq, prev_hash, hash)."""
    event.pk, event.seq, event.prev_hash, event.hash = row
    event._state.adding = False
    event._state.db = connection.alias
    return event


def _jsonable(value):
    """value as it is stored: JSON round trip, anything else as its str()."""
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def _append_postgresql(event: AuditEvent) -> bool:
    """Append on PostgreSQL; False when the practice has no chain head yet."""
    # Prepared (psyfi_review.compiled_reads): every signing, edit and
    # delivery attempt appends, and the statement is the same each time.
    with prepared_cursor(connection) as cursor:
        cursor.execute(_PG_APPEND, audit_pg_append_params(event))
        row = cursor.fetchone()
    if row is None:
        return False
    audit_event_appended(event, row)
    return True


def _append_python(event: AuditEvent) -> None:
    """Append through the ORM, hashing in Python (other databases)."""
    head = AuditChainHead.objects.select_for_update().filter(practice_id=event.practice_id).first()
    if head is None:
        AuditChainHead.objects.get_or_create(practice_id=event.practice_id)
        head = AuditChainHead.objects.select_for_update().get(practice_id=event.practice_id)
    event.seq = head.seq + 1
    event.prev_hash = head.hash
    event.hash = audit_event_digest(event, prev_hash=head.hash)
    event.save()
    head.seq = event.seq
    head.hash = event.hash
    head.save(update_fields=["seq", "hash"])


# Where an event names its audit session (AuditSession.key), and where the
# login session keeps that key with a digest of the user agent it was opened for.
AUDIT_SESSION_DETAIL = "audit_session"
AUDIT_SESSION_KEY = "audit_session"


def _audit_session(ctx, *, practice, user, now) -> tuple[str, str]:
    """(the user agent to store on the event, the audit session's key). In a
    login session the user agent is stored once, on the session's first event
    and in its AuditSession; later events store only the key. Outside one (no
    session, or no user) every event carries the user agent as before. The
    AuditSession row is written in the caller's transaction, so a rolled-back
    first event leaves no session without its user agent in the chain."""
    session = ctx.session
    if session is None or user is None or not ctx.user_agent:
        return ctx.user_agent, ""
    digest = hashlib.sha256(ctx.user_agent.encode()).hexdigest()[:16]
    mark = session.get(AUDIT_SESSION_KEY)
    if not isinstance(mark, dict) or mark.get("ua") != digest or mark.get("user") != user.pk:
        mark = {"key": uuid.uuid4().hex, "ua": digest, "user": user.pk}
        session[AUDIT_SESSION_KEY] = mark
    _, created = AuditSession.objects.get_or_create(
        key=mark["key"],
        defaults={"practice": practice, "user": user, "user_agent": ctx.user_agent, "started_at": now},
    )
    return (ctx.user_agent if created else ""), mark["key"]


def audit_event_build(
    *,
    practice,
    actor: Actor,
    action: str,
    obj=None,
    object_type: str = "",
    object_id: str = "",
    note=None,
    client=None,
    before=None,
    after=None,
    detail: dict | None = None,
) -> AuditEvent:
    """The event audit_record appends, not yet in the chain (no seq, no
    hash). A person's first event in a login session opens its AuditSession
    (in the caller's transaction)."""
    ctx = current_request.get()
    person = actor.type == AuditEvent.ActorType.PERSON
    event = AuditEvent(
        practice=practice,
        created_at=timezone.now(),
        actor_type=actor.type,
        actor_user=actor.user,
        actor_ai_source=actor.ai_source,
        actor_label=actor.label[:200],
        action=action,
        object_type=object_type or (obj._meta.label_lower if obj is not None else ""),
        object_id=object_id or (str(obj.pk) if obj is not None else ""),
        note=note,
        client=client,
        # Round-tripped through JSON so the hash covers exactly what is stored.
        before=_jsonable(before),
        after=_jsonable(after),
        detail=_jsonable(detail or {}),
        request_id=ctx.request_id,
        ip_address=_normalise_ip(ctx.ip_address) if person else None,
        user_agent="",
    )
    if person:
        event.user_agent, session_key = _audit_session(ctx, practice=practice, user=actor.user, now=event.created_at)
        if session_key:
            event.detail = {**event.detail, AUDIT_SESSION_DETAIL: session_key}
    return event


# No savepoint: callers record inside the transaction of the change, and an
# error here must roll that change back anyway; alone it is its own transaction.
@transaction.atomic(savepoint=False)
def audit_record(*, practice, actor: Actor, action: str, **fields) -> AuditEvent:
    """Append one event to the practice's chain. The chain head is locked for
    the rest of the caller's transaction, which keeps seq and hashes gap-free
    under concurrent writers. `fields`: audit_event_build's others (obj,
    object_type, object_id, note, client, before, after, detail)."""
    event = audit_event_build(practice=practice, actor=actor, action=action, **fields)
    if connection.vendor == "postgresql":
        if not _append_postgresql(event):  # the practice's first event
            AuditChainHead.objects.get_or_create(practice_id=event.practice_id)
            if not _append_postgresql(event):
                raise RuntimeError(f"No audit chain head for practice {event.practice_id}; nothing was recorded.")
    else:
        _append_python(event)
    return event


def audit_phi_access(*, user, note=None, client=None) -> AuditEvent:
    """Log that a person viewed a note or a client (the PHI access log)."""
    client = client or (note.client if note is not None else None)
    obj = note if note is not None else client
    return audit_record(
        practice=obj.practice,
        actor=actor_person(user),
        action="phi.view",
        obj=obj,
        note=note,
        client=client,
    )

"""Writing the audit log. audit_record is the only writer of AuditEvent; call
it inside the transaction of the change it records, so the event and the
change commit or roll back together."""

import hashlib
import json
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit.context import current_request
from audit.models import AuditChainHead, AuditEvent


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


def _event_digest(*, prev_hash: str, fields: dict) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def audit_event_hash_fields(event: AuditEvent) -> dict:
    """The fields the chain hash covers; audit_verify recomputes from these."""
    return {
        "practice": event.practice_id,
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor_type": event.actor_type,
        "actor_user": event.actor_user_id,
        "actor_ai_source": event.actor_ai_source_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "note": event.note_id,
        "client": event.client_id,
        "before": event.before,
        "after": event.after,
        "detail": event.detail,
        "request_id": event.request_id,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
    }


def audit_event_digest(event: AuditEvent, *, prev_hash: str) -> str:
    return _event_digest(prev_hash=prev_hash, fields=audit_event_hash_fields(event))


@transaction.atomic
def audit_record(
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
    """Append one event to the practice's chain. The chain head is locked for
    the rest of the caller's transaction, which keeps seq and hashes gap-free
    under concurrent writers."""
    head, _ = AuditChainHead.objects.get_or_create(practice=practice)
    head = AuditChainHead.objects.select_for_update().get(pk=head.pk)
    ctx = current_request.get()
    event = AuditEvent(
        practice=practice,
        seq=head.seq + 1,
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
        before=before,
        after=after,
        detail=detail or {},
        request_id=ctx.request_id,
        ip_address=ctx.ip_address if actor.type == AuditEvent.ActorType.PERSON else None,
        user_agent=ctx.user_agent if actor.type == AuditEvent.ActorType.PERSON else "",
        prev_hash=head.hash,
    )
    # Round-trip JSON so the hash is computed over exactly what is stored.
    event.before = json.loads(json.dumps(before, default=str)) if before is not None else None
    event.after = json.loads(json.dumps(after, default=str)) if after is not None else None
    event.detail = json.loads(json.dumps(event.detail, default=str))
    event.hash = audit_event_digest(event, prev_hash=head.hash)
    event.save()
    head.seq = event.seq
    head.hash = event.hash
    head.save(update_fields=["seq", "hash"])
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

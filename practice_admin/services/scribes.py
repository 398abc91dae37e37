"""AI scribe sources and their API keys, as a practice admin manages them.
Key create, rotate and revoke are notes.api_keys' services (they write the
audit events); this module checks the admin first."""

from datetime import timedelta

from django.db import transaction

from audit.services import actor_person, audit_record
from notes import api_keys
from notes.errors import DomainError
from notes.models import AISource, AISourceKey
from practice_admin.access import admin_membership


@transaction.atomic
def ai_source_register(*, actor, name: str, vendor: str, model_name: str, model_version: str = "") -> AISource:
    membership = admin_membership(actor)
    name, vendor, model_name = name.strip(), vendor.strip(), model_name.strip()
    if not name:
        raise DomainError("Enter a name for the scribe.", field="name")
    if not vendor:
        raise DomainError("Enter the vendor.", field="vendor")
    if not model_name:
        raise DomainError("Enter the model.", field="model_name")
    if AISource.objects.filter(practice=membership.practice, name__iexact=name).exists():
        raise DomainError(f"The practice already has a scribe named “{name}”.", field="name")
    source = AISource(
        practice=membership.practice,
        name=name,
        vendor=vendor,
        model_name=model_name,
        model_version=model_version.strip(),
    )
    source.full_clean()
    source.save()
    audit_record(
        practice=membership.practice,
        actor=actor_person(actor),
        action="ai_source.create",
        obj=source,
        after={"name": name, "vendor": vendor, "model_name": model_name, "model_version": source.model_version},
    )
    return source


def admin_key_create(*, actor, ai_source: AISource) -> tuple[AISourceKey, str]:
    """A new key; the plain key is returned once and never stored."""
    admin_membership(actor, practice_id=ai_source.practice_id)
    if not ai_source.is_active:
        raise DomainError("This scribe is deactivated; it cannot get a key.")
    return api_keys.ai_source_key_create(ai_source=ai_source, actor=actor)


def admin_key_rotate(*, actor, key: AISourceKey, overlap: timedelta | None = None) -> tuple[AISourceKey, str]:
    """A new key; the old one works until the overlap window ends."""
    admin_membership(actor, practice_id=key.ai_source.practice_id)
    return api_keys.ai_source_key_rotate(key=key, actor=actor, overlap=overlap)


def admin_key_revoke(*, actor, key: AISourceKey) -> AISourceKey:
    admin_membership(actor, practice_id=key.ai_source.practice_id)
    return api_keys.ai_source_key_revoke(key=key, actor=actor)

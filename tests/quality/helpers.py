"""Shared set-up of the quality tests: signed notes with a chosen review
time, edits and risk, and a practice policy with chosen rates."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from notes import services
from notes.models import Note
from quality.services import sampling_policy_for
from tests.factories import ai_output, note_factory, note_resolve_all_flags


def policy_set(practice, **fields):
    policy = sampling_policy_for(practice=practice)
    defaults = {"first_notes_always": 0}
    for name, value in {**defaults, **fields}.items():
        setattr(policy, name, Decimal(str(value)) if name.endswith("percent") else value)
    policy.save()
    return policy


def signed_note(
    world,
    *,
    clinician=None,
    review_seconds: int = 600,
    edit: str | None = None,
    high_risk: bool = False,
    signed_at: datetime | None = None,
    payload: dict | None = None,
) -> Note:
    clinician = clinician or world.clinician
    if high_risk:
        payload = ai_output(risk_assessment={"level": "high", "text": "Active plan; safety plan reviewed."})
    note = note_factory(practice=world.practice, clinician=clinician, payload=payload)
    services.note_open(note=note, actor=clinician)
    if edit is not None:
        services.note_edit_section(note=note, section_key="plan", text=edit, actor=clinician)
    note_resolve_all_flags(note, clinician)
    Note.objects.filter(pk=note.pk).update(review_seconds=review_seconds)
    now = signed_at or timezone.now()
    return services.note_sign(note=note, actor=clinician, step_up_at=now - timedelta(seconds=1), now=now)

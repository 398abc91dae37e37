"""Invariants 1, 10 and 11: what may be delivered, and to which connection.
Checked whatever the caller, so no UI, API or admin path can get around them."""

from integrations.errors import (
    DeliveryRefused,
)
from integrations.models import EHRConnection
from notes.models import Note

# ---------------------------------------------------------------- invariants


def delivery_check_deliverable(note: Note) -> None:
    """Invariants 1 and 10: only a signed note version, and never a
    psychotherapy (process) note, may produce or perform a delivery. A version
    superseded by a signed amendment is still a signed version: it goes to the
    EHR first, and the amendment replaces it there."""
    if note.state not in (Note.State.SIGNED, Note.State.AMENDED) or note.signed_at is None or not note.content_hash:
        raise DeliveryRefused(f"Only a signed note can be delivered; this one is {note.get_state_display().lower()}.")
    if note.template_version.template.is_psychotherapy_notes:
        raise DeliveryRefused("Psychotherapy notes stay in psyfi-review and are never delivered.")


def delivery_check_target(*, note: Note, connection: EHRConnection) -> None:
    """Invariant 11: a sandbox connection takes synthetic clients only; a
    production connection never receives one."""
    if connection.is_sandbox and not note.client.synthetic:
        raise DeliveryRefused("A sandbox connection accepts synthetic clients only; this client is real.")
    if not connection.is_sandbox and note.client.synthetic:
        raise DeliveryRefused("A production connection never receives a synthetic client.")
    if not note.client.ehr_patient_id:
        raise DeliveryRefused("The client has no EHR patient id; add it before delivering.")

"""Supervisor co-signature (issue 15, point 5).

A pre-licensed clinician's signature does not finish a note: note_sign moves
it to AWAITING_COSIGN (its content fixed and hashed) and writes no delivery.
The clinician's supervisor then co-signs it with the same OTP step-up as any
signature (note_cosign: SIGNED, and only now the Delivery row), or returns it
with a comment (note_cosign_return: back to IN_REVIEW, the signature undone,
so the clinician edits and signs again).

Who supervises is read from the clinician's membership when the supervisor
acts, so a supervisor named later (or replaced) sees the notes already
waiting. Lock order as in notes.services: the note row first, the audit chain
head last.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audit.services import actor_person, audit_record
from notes.errors import DomainError, NotPermitted, SignBlocked
from notes.models import Membership, Note
from notes.roles import Role, membership_of
from notes.services import (
    _consent_active,
    _lock,
    _next_state,
    _note_supersede,
    _require_step_up,
    note_content_hash,
)
from psyfi_review.db_retry import retry_on_conflict

S = Note.State

NO_SUPERVISOR = (
    "You are pre-licensed and no supervisor is on record for you, so nobody could co-sign this note. "
    "Ask your practice admin to name your supervisor, then sign again."
)


def supervisor_check(*, practice_id: int, supervisor, clinician_user_id: int | None = None) -> None:
    """Who may supervise a clinician of the practice (and co-sign a
    pre-licensed one's notes): an active, fully licensed clinician of the same
    practice, and not the clinician themself. The one rule for every place
    that names a supervisor (invitations, the admin's clinician form,
    membership_supervision_set, signing). Raises DomainError (field
    "supervisor") saying which rule is broken."""
    if supervisor is None:
        raise DomainError("Name the supervisor who co-signs this clinician's notes.", field="supervisor")
    if clinician_user_id is not None and supervisor.pk == clinician_user_id:
        raise DomainError("A clinician cannot supervise themself.", field="supervisor")
    theirs = Membership.objects.filter(user=supervisor).first()
    if theirs is None or theirs.practice_id != practice_id or not theirs.is_active:
        raise DomainError("The supervisor must be an active member of this practice.", field="supervisor")
    if theirs.role != Role.CLINICIAN:
        raise DomainError(
            f"The supervisor must be a clinician, not a {theirs.get_role_display().lower()}.", field="supervisor"
        )
    if theirs.pre_licensed:
        raise DomainError("The supervisor must be fully licensed, not pre-licensed.", field="supervisor")


@retry_on_conflict
@transaction.atomic
def membership_supervision_set(*, membership: Membership, pre_licensed: bool, supervisor, actor) -> Membership:
    """Mark a clinician pre-licensed (with their supervisor) or licensed.
    Used by whoever sets it (practice admin pages, invitations); a practice
    admin of the same practice only."""
    acting = membership_of(actor)
    if acting is None or acting.practice_id != membership.practice_id or acting.role != Role.PRACTICE_ADMIN:
        raise NotPermitted("Only a practice admin of this practice can set who supervises a clinician.")
    membership = Membership.objects.select_for_update(no_key=True).get(pk=membership.pk)
    if membership.role != Role.CLINICIAN:
        raise DomainError("Only a clinician can be pre-licensed.", field="pre_licensed")
    if pre_licensed:
        supervisor_check(
            practice_id=membership.practice_id, supervisor=supervisor, clinician_user_id=membership.user_id
        )
    elif supervisor is not None:
        raise DomainError("A licensed clinician has no supervisor on record.", field="supervisor")
    # A pre-licensed clinician cannot co-sign, so they cannot stay anyone's supervisor.
    if pre_licensed and Membership.objects.filter(supervisor=membership.user).exists():
        raise DomainError(
            "This clinician supervises others; name another supervisor for them first.", field="pre_licensed"
        )
    if not pre_licensed:
        # Notes signed while pre-licensed still need a co-signature; without a
        # supervisor on record nobody could give it, and they would never leave.
        waiting = Note.objects.filter(clinician_id=membership.user_id, state=S.AWAITING_COSIGN).count()
        if waiting:
            raise DomainError(
                f"{waiting} note{'s' if waiting > 1 else ''} of this clinician still await{'' if waiting > 1 else 's'} "
                "co-signature; keep a supervisor on record until they are co-signed or returned.",
                field="pre_licensed",
            )
    before = {"pre_licensed": membership.pre_licensed, "supervisor": membership.supervisor_id}
    membership.pre_licensed = pre_licensed
    membership.supervisor = supervisor if pre_licensed else None
    membership.full_clean()
    membership.save(update_fields=["pre_licensed", "supervisor"])
    audit_record(
        practice=membership.practice,
        actor=actor_person(actor),
        action="membership.supervision",
        obj=membership,
        before=before,
        after={"pre_licensed": membership.pre_licensed, "supervisor": membership.supervisor_id},
    )
    return membership


def cosigner_for_signing(*, actor):
    """Called by note_sign: the supervisor who must co-sign the actor's notes,
    or None for a licensed clinician. Raises SignBlocked (nothing is signed)
    when the actor is pre-licensed and has no supervisor who can co-sign."""
    # Read afresh, not from the user's cached membership: the supervision may
    # have changed since the login, and the signature must follow the record.
    membership = Membership.objects.filter(user_id=actor.pk, is_active=True).select_related("supervisor").first()
    if membership is None or not membership.pre_licensed:
        return None
    supervisor = membership.supervisor
    if supervisor is None:
        raise SignBlocked(NO_SUPERVISOR)
    try:
        supervisor_check(
            practice_id=membership.practice_id, supervisor=supervisor, clinician_user_id=membership.user_id
        )
    except DomainError as exc:
        raise SignBlocked(f"Your supervisor on record cannot co-sign: {exc.message} Ask your practice admin.") from None
    return supervisor


def _require_supervisor(note: Note, actor) -> None:
    """Only the clinician's supervisor on record, themself a licensed
    clinician of the practice, co-signs or returns the note."""
    acting = membership_of(actor)
    if acting is None or acting.practice_id != note.practice_id:
        raise NotPermitted("You are not a member of this note's practice.")
    clinician = Membership.objects.filter(user_id=note.clinician_id).first()
    if clinician is None or clinician.supervisor_id != actor.pk:
        raise NotPermitted("Only the clinician's supervisor can co-sign or return this note.")
    if acting.role != Role.CLINICIAN or acting.pre_licensed:
        raise NotPermitted("Only a licensed clinician can co-sign notes.")


@retry_on_conflict
@transaction.atomic
def note_cosign(*, note: Note, actor, step_up_at: datetime | None, now: datetime | None = None) -> Note:
    """The supervisor co-signs: AWAITING_COSIGN -> SIGNED, and in the same
    transaction the Delivery row (the first one this note gets).

    Raises NotPermitted, IllegalTransition, StepUpRequired (as note_sign) and
    SignBlocked if the content no longer matches the hash signed."""
    from integrations.services import delivery_create_for_note

    now = now or timezone.now()
    note = _lock(note)
    _require_supervisor(note, actor)
    new_state = _next_state(note, "cosign")
    _require_step_up(note, step_up_at=step_up_at, now=now, message="Enter a code from your authenticator to co-sign.")
    # The note is final only when co-signed: a revocation since the clinician
    # signed stops it here, as it would have stopped the signature.
    if not _consent_active(note.client):
        raise SignBlocked(
            "The client has no active consent to AI-assisted documentation (it was revoked after this note "
            "was signed), so it cannot be co-signed. Return it to the clinician."
        )
    if note_content_hash(note) != note.content_hash:
        # Cannot happen through the services (edits are refused in this state);
        # if it ever does, the supervisor must not attest to other content.
        raise SignBlocked("The note's content changed after it was signed; it cannot be co-signed.")
    note.state = new_state
    note.cosigned_at = now
    note.cosigned_by = actor
    note.save(update_fields=["state", "cosigned_at", "cosigned_by", "updated_at"])
    if note.amends_id:
        _note_supersede(note=note.amends, by=note, actor=actor)
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="note.cosign",
        obj=note,
        note=note,
        client=note.client,
        before={"state": S.AWAITING_COSIGN},
        after={"state": new_state, "cosigned_at": now, "content_hash": note.content_hash},
        detail={"signed_by": note.signed_by_id, "version": note.version, "step_up_at": step_up_at},
    )
    delivery_create_for_note(note=note)
    return note


@retry_on_conflict
@transaction.atomic
def note_cosign_return(*, note: Note, comment: str, actor) -> Note:
    """The supervisor returns the note for edits: AWAITING_COSIGN ->
    IN_REVIEW with the comment. The clinician's signature is withdrawn (the
    note.cosign_return event keeps what was signed, and its hash); they edit
    and sign again. Nothing was delivered, so nothing needs replacing."""
    note = _lock(note)
    _require_supervisor(note, actor)
    new_state = _next_state(note, "return_cosign")
    comment = comment.strip()
    if not comment:
        raise DomainError("Say what the clinician should change.", field="comment")
    before = {
        "state": note.state,
        "signed_at": note.signed_at,
        "signed_by": note.signed_by_id,
        "content_hash": note.content_hash,
    }
    note.state = new_state
    note.signed_at = None
    note.signed_by = None
    note.content_hash = ""
    note.cosign_returned_comment = comment
    note.save(
        update_fields=["state", "signed_at", "signed_by", "content_hash", "cosign_returned_comment", "updated_at"]
    )
    # The attribution described the withdrawn signature; signing again computes it anew.
    from audit.models import NoteAttribution

    NoteAttribution.objects.filter(note=note).delete()
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="note.cosign_return",
        obj=note,
        note=note,
        client=note.client,
        before=before,
        after={"state": new_state, "comment": comment},
    )
    return note

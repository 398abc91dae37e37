"""The note state machine and the other writes of the clinical domain.

One function per transition. Each takes keyword-only arguments and the actor,
runs in one transaction, checks the note's state against TRANSITIONS, raises a
domain error a clinician can read, and writes its AuditEvent in the same
transaction. Nothing else changes a note's state.

Lock order, everywhere: the note rows (FOR NO KEY UPDATE, of the note only; in
id order when there are several), then the client's consent row, then section
and flag rows, and the practice's audit chain head last (audit_record is a
transaction's last write, or followed only by rows nobody else locks). A
transaction PostgreSQL still aborts for a deadlock or serialization failure
runs again after a jittered pause (psyfi_review.db_retry).
"""

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from audit.history_writes import create_with_history
from audit.services import Actor, actor_ai, actor_person, audit_record
from notes import default_templates
from notes.errors import (
    DomainError,
    IllegalTransition,
    NotPermitted,
    SectionConflict,
    SignBlocked,
    StepUpRequired,
)
from notes.mapping import SectionSpec, TemplateSpec, map_ai_output, shared_text_scans
from notes.models import (
    DEFAULT_DISCLOSURE_TEXT,
    AISource,
    Client,
    ClientConsent,
    DisclosureText,
    Draft,
    Flag,
    InterventionTerm,
    Membership,
    Note,
    NoteSection,
    NoteTemplate,
    NoteTemplateVersion,
    Practice,
    TemplateSection,
)
from notes.payer_checks import payer_findings
from notes.risk_services import note_section_risk_rescan
from notes.roles import Role, membership_of
from notes.vocabulary import InterventionVocabulary
from psyfi_review.db_retry import retry_on_conflict

S = Note.State

# action -> {from state: to state}. The single source of what may happen when.
TRANSITIONS: dict[str, dict[str, str]] = {
    "open": {S.DRAFT: S.IN_REVIEW, S.IN_REVIEW: S.IN_REVIEW},
    "edit": {S.DRAFT: S.IN_REVIEW, S.IN_REVIEW: S.IN_REVIEW},
    "resolve_flag": {S.DRAFT: S.IN_REVIEW, S.IN_REVIEW: S.IN_REVIEW},
    "sign": {S.IN_REVIEW: S.SIGNED},
    "discard": {S.DRAFT: S.DISCARDED, S.IN_REVIEW: S.DISCARDED},
    # Amending leaves the signed note as it is until the amendment is signed.
    "amend": {S.SIGNED: S.SIGNED},
    "supersede": {S.SIGNED: S.AMENDED},
    # Co-signature (notes.cosign_services): a pre-licensed clinician's "sign"
    # goes IN_REVIEW -> AWAITING_COSIGN instead of SIGNED.
    "cosign": {S.AWAITING_COSIGN: S.SIGNED},
    "return_cosign": {S.AWAITING_COSIGN: S.IN_REVIEW},
}

_ACTION_WORDS = {
    "open": "opened",
    "edit": "edited",
    "resolve_flag": "changed",
    "sign": "signed",
    "discard": "discarded",
    "amend": "amended",
    "supersede": "superseded",
    "cosign": "co-signed",
    "return_cosign": "returned",
}


def _next_state(note: Note, action: str) -> str:
    allowed = TRANSITIONS[action]
    if note.state not in allowed:
        raise IllegalTransition(
            f"This note is {note.get_state_display().lower()} and cannot be {_ACTION_WORDS[action]}."
            + (" Signed notes change only by amendment." if note.is_signed and action != "amend" else "")
        )
    return allowed[note.state]


def _require_step_up(note: Note, *, step_up_at: datetime | None, now: datetime, message: str) -> None:
    """A signature (or co-signature) needs an OTP step-up within the
    practice's step-up window; StepUpRequired with message otherwise."""
    if step_up_at is None or now - step_up_at > note.practice.step_up_window:
        raise StepUpRequired(message)


def _consent_active(client: Client) -> bool:
    return client.consents.filter(revoked_at__isnull=True).exists()


def _require_note_clinician(note: Note, actor) -> None:
    """Only the clinician who held the session edits, signs or discards it."""
    membership = membership_of(actor)
    if membership is None or membership.practice_id != note.practice_id:
        raise NotPermitted("You are not a member of this note's practice.")
    if membership.role != Role.CLINICIAN:
        raise NotPermitted(f"A {membership.get_role_display().lower()} cannot change or sign clinical notes.")
    if note.clinician_id != actor.pk:
        raise NotPermitted("Only the clinician who held the session can change or sign this note.")


def _lock(note: Note) -> Note:
    # The note row only (of=self), not the client and template rows the join
    # reads; and FOR NO KEY UPDATE, which lets others insert rows that refer to
    # the note or client meanwhile (the worker's audit events do, while holding
    # the chain head: a FOR UPDATE here deadlocked with it). Lock order: module docstring.
    return (
        Note.objects.select_for_update(of=("self",), no_key=True)
        .select_related("client", "template_version__template")
        .get(pk=note.pk)
    )


# --- practice set-up -------------------------------------------------------------------------------


@transaction.atomic
def practice_create(*, name: str, slug: str, timezone_name: str = "America/New_York") -> Practice:
    """A practice with the default SOAP and DAP templates and intervention vocabulary."""
    practice = Practice(name=name, slug=slug, timezone=timezone_name)
    practice.full_clean()
    practice.save()
    for spec in default_templates.DEFAULT_TEMPLATES:
        template_create(practice=practice, spec=spec)
    bulk_create_with_history(
        [
            InterventionTerm(practice=practice, term=term, synonyms=synonyms)
            for term, synonyms in default_templates.DEFAULT_INTERVENTIONS.items()
        ],
        InterventionTerm,
    )
    # The consent disclosure starts from the plain default; the practice adds versions.
    DisclosureText.objects.create(practice=practice, version=1, text=DEFAULT_DISCLOSURE_TEXT)
    audit_record(practice=practice, actor=Actor(type="system", label="setup"), action="practice.create", obj=practice)
    return practice


@transaction.atomic
def template_create(*, practice: Practice, spec: dict, created_by=None) -> NoteTemplateVersion:
    """Create a template, or a new active version of an existing one."""
    template, _ = NoteTemplate.objects.get_or_create(
        practice=practice,
        key=spec["key"],
        defaults={
            "name": spec["name"],
            "kind": spec.get("kind", NoteTemplate.Kind.CUSTOM),
            "is_psychotherapy_notes": spec.get("is_psychotherapy_notes", False),
        },
    )
    section_keys = {s["key"] for s in spec["sections"]}
    for field_name, key in spec["field_map"].items():
        if key not in section_keys:
            raise DomainError(f"Field “{field_name}” maps to unknown section “{key}”.", field="field_map")
    fallback = spec.get("fallback_section_key", "")
    if fallback and fallback not in section_keys:
        raise DomainError(f"Fallback section “{fallback}” is not a section of the template.", field="fallback")
    last = template.versions.order_by("-version").first()
    template.versions.filter(is_active=True).update(is_active=False)
    version = NoteTemplateVersion.objects.create(
        template=template,
        version=(last.version + 1) if last else 1,
        is_active=True,
        fallback_section_key=fallback,
        unplaced_policy=spec.get("unplaced_policy", NoteTemplateVersion.UnplacedPolicy.FLAG),
        field_map=spec["field_map"],
        created_by=created_by,
    )
    bulk_create_with_history(
        [
            TemplateSection(
                template_version=version,
                key=s["key"],
                label=s["label"],
                order=i,
                required=s.get("required", False),
                kind=s.get("kind", TemplateSection.Kind.TEXT),
                loinc_code=s.get("loinc_code", ""),
            )
            for i, s in enumerate(spec["sections"], start=1)
        ],
        TemplateSection,
    )
    return version


@transaction.atomic
def member_create(
    *,
    practice: Practice,
    username: str,
    password: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    credentials: str = "",
) -> Membership:
    user = get_user_model().objects.create_user(
        username=username, password=password, first_name=first_name, last_name=last_name, email=email
    )
    membership = Membership(user=user, practice=practice, role=role, credentials=credentials)
    membership.full_clean()
    membership.save()
    return membership


@transaction.atomic
def client_create(
    *,
    practice: Practice,
    clinician,
    given_name: str,
    family_name: str,
    date_of_birth: date,
    ehr_patient_id: str = "",
    synthetic: bool = False,
    actor,
) -> Client:
    client = Client(
        practice=practice,
        clinician=clinician,
        given_name=given_name,
        family_name=family_name,
        date_of_birth=date_of_birth,
        ehr_patient_id=ehr_patient_id,
        synthetic=synthetic,
    )
    client.full_clean()
    client.save()
    audit_record(practice=practice, actor=actor_person(actor), action="client.create", obj=client, client=client)
    return client


ADULT_AGE = 18


def client_is_minor(*, client: Client, on: date) -> bool:
    born = client.date_of_birth
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return age < ADULT_AGE


NO_CONSENT_REASON = "The client has no active consent to AI-assisted documentation."
OPEN_STATES = (S.DRAFT, S.IN_REVIEW)


def _consent_revoked_reason(*, client: Client, revoked_at: datetime) -> str:
    local = timezone.localtime(revoked_at, ZoneInfo(client.practice.timezone))
    return (
        f"The client revoked consent to AI-assisted documentation on {local:%Y-%m-%d %H:%M %Z}. "
        "This draft cannot be signed unless consent is recorded again."
    )


def _open_notes_lock(*, client: Client, causes: tuple[str, ...] | None = None) -> list[Note]:
    """Lock the client's open notes, in id order. Lock order, shared by every
    consent change and by note_sign: the note rows first, then the consent row.
    A signing that already holds its note finishes first; one that comes later
    waits, then reads the block."""
    notes = (
        Note.objects.select_for_update(of=("self",), no_key=True)
        .select_related("draft")
        .filter(client=client, state__in=OPEN_STATES)
    )
    if causes is not None:
        notes = notes.filter(blocked_cause__in=causes)
    return list(notes.order_by("pk"))


def _note_block_set(*, note: Note, reason: str, cause: str, actor) -> None:
    before = {"blocked_reason": note.blocked_reason, "blocked_cause": note.blocked_cause}
    note.blocked_reason, note.blocked_cause = reason, cause
    note.save(update_fields=["blocked_reason", "blocked_cause", "updated_at"])
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="note.block" if cause else "note.unblock",
        obj=note,
        note=note,
        client=note.client,
        before=before,
        after={"blocked_reason": reason, "blocked_cause": cause},
    )


@retry_on_conflict
@transaction.atomic
def consent_record(
    *,
    client: Client,
    consented_on: date,
    disclosure_version: str,
    actor,
    method: str = "",
    guardian_name: str = "",
    guardian_relationship: str = "",
) -> ClientConsent:
    """Record the client's consent, and lift the consent blocks it answers:
    every open note blocked by a revocation, and a note blocked at intake for
    want of consent when the consent is dated on or before its session (the
    form was signed in time and entered late). A draft of a session held
    before the client consented stays blocked: consent is not retroactive.

    A client under 18 on the consent date consents through a parent or
    guardian: their name is required (DomainError on guardian_name)."""
    notes = _open_notes_lock(client=client, causes=(Note.BlockedCause.CONSENT_REVOKED, Note.BlockedCause.NO_CONSENT))
    if _consent_active(client):
        raise DomainError("This client already has an active consent.", field="consented_on")
    if client_is_minor(client=client, on=consented_on) and not guardian_name.strip():
        raise DomainError(
            "This client was a minor on the consent date: enter the parent or guardian who consented.",
            field="guardian_name",
        )
    consent = ClientConsent(
        client=client,
        consented_on=consented_on,
        disclosure_version=disclosure_version,
        recorded_by=actor,
        method=method,
        guardian_name=guardian_name.strip(),
        guardian_relationship=guardian_relationship.strip(),
    )
    consent.full_clean()
    try:
        with transaction.atomic():
            consent.save()
    except IntegrityError:  # a second tab recorded one a moment ago (consent_one_active_per_client)
        raise DomainError("This client already has an active consent.", field="consented_on") from None
    audit_record(
        practice=client.practice,
        actor=actor_person(actor),
        action="consent.record",
        obj=consent,
        client=client,
        after={
            "consented_on": consented_on,
            "disclosure_version": disclosure_version,
            "method": method,
            "guardian": bool(consent.guardian_name),
        },
    )
    practice_zone = ZoneInfo(client.practice.timezone)
    for note in notes:
        session_day = timezone.localtime(note.draft.session_start, practice_zone).date()
        if note.blocked_cause == Note.BlockedCause.NO_CONSENT and consented_on > session_day:
            continue
        _note_block_set(note=note, reason="", cause="", actor=actor)
    return consent


@retry_on_conflict
@transaction.atomic
def consent_revoke(*, client: Client, actor) -> ClientConsent:
    """Revoke the client's consent and block every open AI note of theirs in
    the same transaction (invariant 9). Signed notes stay signed: a signed
    note is a legal record, and revocation does not undo it."""
    _open_notes_lock(client=client)
    consent = client.consents.select_for_update(no_key=True).filter(revoked_at__isnull=True).first()
    if consent is None:
        raise DomainError("This client has no active consent to revoke.")
    now = timezone.now()
    consent.revoked_at = now
    consent.revoked_by = actor
    consent.save(update_fields=["revoked_at", "revoked_by"])
    # Read the open notes again: an intake that read the consent before us held
    # it FOR SHARE (draft_ingest), so our update waited for it to commit, and
    # only now are its notes visible.
    notes = _open_notes_lock(client=client)
    to_block = [note for note in notes if not note.blocked_cause]
    audit_record(
        practice=client.practice,
        actor=actor_person(actor),
        action="consent.revoke",
        obj=consent,
        client=client,
        after={"revoked_at": now},
        detail={"blocked_notes": [note.pk for note in to_block]},
    )
    reason = _consent_revoked_reason(client=client, revoked_at=now)
    for note in to_block:
        _note_block_set(note=note, reason=reason, cause=Note.BlockedCause.CONSENT_REVOKED, actor=actor)
    consent.blocked_notes = to_block
    return consent


# --- intake ----------------------------------------------------------------------------------------


def template_spec(version: NoteTemplateVersion) -> TemplateSpec:
    return TemplateSpec(
        sections=[
            SectionSpec(key=s.key, label=s.label, order=s.order, kind=s.kind, required=s.required)
            for s in version.sections.all()
        ],
        field_map=version.field_map,
        fallback_section_key=version.fallback_section_key,
        unplaced_policy=version.unplaced_policy,
    )


def practice_vocabulary_sql() -> str:
    """A scalar subquery: the practice's active intervention terms and their
    synonyms as JSON text ([[term, [synonym, ...]], ...]). The intake reads it
    beside the clinician look-up (one round trip); practice_vocabulary reads
    it alone; it takes the practice id as its one parameter. PostgreSQL, or
    SQLite for the single-box demo."""
    table = InterventionTerm._meta.db_table
    where = f"FROM {table} t WHERE t.practice_id = %s AND t.is_active"
    if connection.vendor == "sqlite":
        # Ordered as on PostgreSQL: a synonym shared by two terms resolves alike on both.
        return (
            f"(SELECT json_group_array(json_array(o.term, json(o.synonyms))) "  # noqa: S608
            f"FROM (SELECT t.term, t.synonyms {where} ORDER BY t.term) o)"
        )
    return f"(SELECT json_agg(json_build_array(t.term, t.synonyms) ORDER BY t.term)::text {where})"  # noqa: S608


def practice_vocabulary(*, practice_id: int) -> InterventionVocabulary:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {practice_vocabulary_sql()}", [practice_id])
        return vocabulary_from_json(cursor.fetchone()[0])


@functools.lru_cache(maxsize=256)
def vocabulary_from_json(text: str | None) -> InterventionVocabulary:
    """The lookup built from the terms as read (practice_vocabulary_sql); an
    unchanged vocabulary, the usual case, is not rebuilt for every draft.
    InterventionVocabulary never changes once built, so sharing it is safe."""
    rows = json.loads(text) if text else []
    return InterventionVocabulary({term: list(synonyms or []) for term, synonyms in rows})


def _consent_holds(*, client_ids: list[int]) -> set[int]:
    """Which of the clients have an active consent, read inside the intake's
    transaction (one query for a whole group). On PostgreSQL the consent rows
    are held FOR SHARE until the drafts commit, so a revocation racing this
    intake waits for the notes and then blocks them (consent_revoke); it
    cannot slip in between our read and our commit. (SQLite, the demo's
    database, lets one writer in at a time.)"""
    if not client_ids:
        return set()
    if connection.vendor != "postgresql":
        return set(
            ClientConsent.objects.filter(client_id__in=client_ids, revoked_at__isnull=True).values_list(
                "client_id", flat=True
            )
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT client_id FROM {ClientConsent._meta.db_table} "  # noqa: S608
            "WHERE client_id = ANY(%s) AND revoked_at IS NULL ORDER BY client_id FOR SHARE",
            [list(client_ids)],
        )
        return {row[0] for row in cursor.fetchall()}


# Rows per INSERT: a group's flags (up to a few thousand) stay well under
# PostgreSQL's 65,535 parameters per statement.
_INSERT_CHUNK = 1000


def _create_all_with_history(model, objs: list) -> list:
    for i in range(0, len(objs), _INSERT_CHUNK):
        create_with_history(model, objs[i : i + _INSERT_CHUNK])
    return objs


@dataclass(frozen=True)
class DraftIn:
    """One draft of an intake: whose it is, the payload kept verbatim for them,
    and what only the intake knows about them (see draft_ingest)."""

    client: Client
    payload: dict
    idempotency_key: str = ""
    other_participant_names: tuple[str, ...] = ()
    has_consent: bool | None = None


def draft_ingest(
    *,
    ai_source: AISource,
    client: Client,
    clinician,
    template_version: NoteTemplateVersion,
    payload: dict,
    session_start: datetime,
    session_duration_minutes: int,
    session_type: str = Draft.SessionType.INDIVIDUAL,
    model_name: str,
    model_version: str = "",
    external_id: str = "",
    idempotency_key: str = "",
    other_participant_names: list[str] = (),
    has_consent: bool | None = None,
    vocabulary: InterventionVocabulary | None = None,
    audit_detail: dict | None = None,
    cpt_code: str = "",
    cpt_add_on_codes: list[str] = (),
) -> Note:
    """Store the AI payload verbatim and map it onto a note awaiting review.

    A client without active consent still gets the draft stored (nothing is
    lost), but the note is blocked and cannot be signed (invariant 9).
    has_consent=False (the caller has just read that there is none) saves the
    locking re-read; vocabulary may be passed when the caller has just read it
    (the intake API, to save a query); audit_detail is added to the note.draft event
    (the intake API records the API key used there). One transaction
    (drafts_ingest's).
    """
    [note] = drafts_ingest(
        ai_source=ai_source,
        drafts=[
            DraftIn(
                client=client,
                payload=payload,
                idempotency_key=idempotency_key,
                other_participant_names=tuple(other_participant_names),
                has_consent=has_consent,
            )
        ],
        clinician=clinician,
        template_version=template_version,
        session_start=session_start,
        session_duration_minutes=session_duration_minutes,
        session_type=session_type,
        model_name=model_name,
        model_version=model_version,
        external_id=external_id,
        vocabulary=vocabulary,
        audit_detail=audit_detail,
        cpt_code=cpt_code,
        cpt_add_on_codes=cpt_add_on_codes,
    )
    return note


@transaction.atomic
def drafts_ingest(
    *,
    ai_source: AISource,
    drafts: list[DraftIn],
    clinician,
    template_version: NoteTemplateVersion,
    session_start: datetime,
    session_duration_minutes: int,
    session_type: str = Draft.SessionType.INDIVIDUAL,
    model_name: str,
    model_version: str = "",
    external_id: str = "",
    vocabulary: InterventionVocabulary | None = None,
    audit_detail: dict | None = None,
    cpt_code: str = "",
    cpt_add_on_codes: list[str] = (),
) -> list[Note]:
    """draft_ingest for the drafts of one session at once (a group session:
    one per participant), all or none, in the order given.

    Each table is written in one statement for all the drafts, not one per
    draft, and the session-wide text the notes share is risk-scanned once
    (notes.mapping.shared_text_scans), as is its search for other members'
    names; each draft still gets its own
    mapping, consent check and note.draft audit event. Raises IntegrityError
    when an idempotency key was used before. A CPT code (session-wide) is kept
    on each draft and checked by notes.payer_checks, in memory.
    """
    # Each row is written with its history row in one statement (audit.history_writes).
    stored = _create_all_with_history(
        Draft,
        [
            Draft(
                practice=ai_source.practice,
                ai_source=ai_source,
                client=d.client,
                clinician=clinician,
                payload=d.payload,
                model_name=model_name,
                model_version=model_version,
                session_start=session_start,
                session_duration_minutes=session_duration_minutes,
                session_type=session_type,
                external_id=external_id,
                idempotency_key=d.idempotency_key,
                cpt_code=cpt_code,
                cpt_add_on_codes=list(cpt_add_on_codes),
            )
            for d in drafts
        ],
    )
    spec = template_spec(template_version)
    if vocabulary is None:
        vocabulary = practice_vocabulary(practice_id=ai_source.practice_id)
    with shared_text_scans():
        mapped = [
            map_ai_output(
                d.payload,
                spec,
                vocabulary=vocabulary,
                other_participant_names=list(d.other_participant_names),
            )
            for d in drafts
        ]
    consenting = _consent_holds(client_ids=[d.client.pk for d in drafts if d.has_consent is not False])
    consents = [d.has_consent is not False and d.client.pk in consenting for d in drafts]
    notes = _create_all_with_history(
        Note,
        [
            Note(
                practice=ai_source.practice,
                draft=draft,
                client=d.client,
                clinician=clinician,
                template_version=template_version,
                high_risk=m.high_risk,
                blocked_reason="" if has_consent else NO_CONSENT_REASON,
                blocked_cause="" if has_consent else Note.BlockedCause.NO_CONSENT,
            )
            for d, draft, m, has_consent in zip(drafts, stored, mapped, consents, strict=True)
        ],
    )
    _create_all_with_history(
        NoteSection,
        [
            NoteSection(
                note=note,
                key=s.key,
                label=s.label,
                order=s.order,
                kind=s.kind,
                required=s.required,
                text=s.text,
                ai_text=s.text,
                codes=s.codes,
                ai_codes=list(s.codes),
                origin=s.origin,
            )
            for note, m in zip(notes, mapped, strict=True)
            for s in m.sections
        ],
    )
    for note, m in zip(notes, mapped, strict=True):
        # Kept on the returned note so the intake API answers with them without a query.
        note.new_flags = [
            Flag(
                note=note,
                kind=f.kind,
                section_key=f.section_key,
                field=f.field,
                value=f.value,
                message=f.message,
                suggestions=f.suggestions,
            )
            for f in m.flags
        ]
        # --- payer checks (issue 15): pure, no query, so a group adds none per member.
        note.new_flags += [
            Flag(note=note, kind=f.kind, field=f.field, value=f.value, message=f.message, suggestions=f.suggestions)
            for f in payer_findings(
                payload=note.draft.payload,
                cpt_code=cpt_code,
                add_on_codes=list(cpt_add_on_codes),
                minutes=session_duration_minutes,
                session_type=session_type,
            )
        ]
    _create_all_with_history(Flag, [flag for note in notes for flag in note.new_flags])
    actor = actor_ai(ai_source, model_name=model_name, model_version=model_version)
    # One event per draft, as the audit design asks; the chain head, locked
    # by the first, is the last lock taken (lock order: module docstring).
    for d, draft, note, m, has_consent in zip(drafts, stored, notes, mapped, consents, strict=True):
        audit_record(
            practice=note.practice,
            actor=actor,
            action="note.draft",
            obj=note,
            note=note,
            client=d.client,
            after={"draft": draft.pk, "sections": {s.key: s.text for s in m.sections}},
            detail={
                "flags": len(note.new_flags),
                "high_risk": m.high_risk,
                "blocked": not has_consent,
                **(audit_detail or {}),
            },
        )
    return notes


# --- review transitions ----------------------------------------------------------------------------


@retry_on_conflict
@transaction.atomic
def note_open(*, note: Note, actor) -> Note:
    """The clinician opens a draft: it is now in review. Viewing by others is
    logged by the PHI access log, not here."""
    note = _lock(note)
    _require_note_clinician(note, actor)
    new_state = _next_state(note, "open")
    if new_state != note.state:
        before = note.state
        note.state = new_state
        note.save(update_fields=["state", "updated_at"])
        audit_record(
            practice=note.practice,
            actor=actor_person(actor),
            action="note.open",
            obj=note,
            note=note,
            client=note.client,
            before={"state": before},
            after={"state": new_state},
        )
    return note


@retry_on_conflict
@transaction.atomic
def note_edit_section(
    *,
    note: Note,
    section_key: str,
    text: str,
    codes: list | None = None,
    expected_version: int | None = None,
    actor,
) -> NoteSection:
    """Save a section's text (and codes). With expected_version (the version
    the editor started from), raises SectionConflict if the section was saved
    since: the later save must not silently overwrite the earlier one."""
    note = _lock(note)
    _require_note_clinician(note, actor)
    new_state = _next_state(note, "edit")
    section = note.sections.select_for_update(no_key=True).filter(key=section_key).first()
    if section is None:
        raise DomainError(f"This note has no section “{section_key}”.", field="section")
    before = {"text": section.text, "codes": section.codes}
    if before == {"text": text, "codes": section.codes if codes is None else codes}:
        return section  # an autosave of unchanged text is not an edit (nor a conflict: both say the same)
    if expected_version is not None and expected_version != section.version:
        raise SectionConflict(
            f"“{section.label}” was saved elsewhere (another tab or device) while you were editing. "
            "Compare both texts and choose which to keep.",
            section=section,
        )
    section.text = text
    if codes is not None:
        section.codes = codes
    if section.text != section.ai_text:
        section.origin = NoteSection.Origin.CLINICIAN
    section.version += 1  # under the section's row lock
    section.save(update_fields=["text", "codes", "origin", "version"])
    note.state = new_state
    note.save(update_fields=["state", "updated_at"])
    # Risk language the edit (or a placement) adds is flagged before signing.
    note_section_risk_rescan(note=note, section=section, actor=actor)
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="note.edit",
        obj=section,
        note=note,
        client=note.client,
        before=before,
        after={"text": section.text, "codes": section.codes},
        detail={"section": section_key},
    )
    return section


@retry_on_conflict
@transaction.atomic
def flag_resolve(*, flag: Flag, resolution: str, actor) -> Flag:
    note = _lock(flag.note)
    _require_note_clinician(note, actor)
    new_state = _next_state(note, "resolve_flag")
    flag = Flag.objects.select_for_update(no_key=True).get(pk=flag.pk)
    if flag.resolved_at is not None:
        raise DomainError("This flag is already resolved.")
    if not resolution.strip():
        raise DomainError("Say how the flag was resolved.", field="resolution")
    flag.resolved_at = timezone.now()
    flag.resolved_by = actor
    flag.resolution = resolution.strip()
    flag.save(update_fields=["resolved_at", "resolved_by", "resolution"])
    if note.state != new_state:
        note.state = new_state
        note.save(update_fields=["state", "updated_at"])
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="flag.resolve",
        obj=flag,
        note=note,
        client=note.client,
        after={"kind": flag.kind, "resolution": flag.resolution},
    )
    return flag


def note_content(note: Note) -> dict:
    """The signed content: what the hash covers and what the EHR receives."""
    return {
        "lineage": str(note.lineage),
        "version": note.version,
        "client": note.client_id,
        "ehr_patient_id": note.client.ehr_patient_id,
        "template_version": note.template_version_id,
        "sections": [
            {"key": s.key, "label": s.label, "text": s.text, "codes": s.codes} for s in note.sections.order_by("order")
        ],
    }


def note_content_hash(note: Note) -> str:
    canonical = json.dumps(note_content(note), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@retry_on_conflict
@transaction.atomic
def note_sign(*, note: Note, actor, step_up_at: datetime | None, now: datetime | None = None) -> Note:
    """Sign the note, and in the same transaction write its Delivery row.

    Raises SignBlocked when flags are open, the client has no active consent or
    the note is blocked, or the signer is pre-licensed without a supervisor;
    StepUpRequired when the last OTP step-up is older than the practice's
    step-up window (Practice.step_up_window). A pre-licensed clinician's note
    goes to AWAITING_COSIGN instead, with no delivery and no supersede:
    notes.cosign_services.note_cosign does both.
    """
    from audit.attribution import note_attribution_record
    from integrations.services import delivery_create_for_note
    from notes.cosign_services import cosigner_for_signing
    from quality.services import qa_draw_at_signing

    now = now or timezone.now()
    note = _lock(note)
    _require_note_clinician(note, actor)
    new_state = _next_state(note, "sign")
    _require_step_up(note, step_up_at=step_up_at, now=now, message="Enter a code from your authenticator to sign.")
    if note.blocked_reason:
        raise SignBlocked(note.blocked_reason)
    # Checked again at the moment of signing, not only through the block: a
    # draft stored while a revocation committed may not carry one.
    if not _consent_active(note.client):
        raise SignBlocked(NO_CONSENT_REASON)
    open_flags = note.flags.filter(resolved_at__isnull=True).count()
    if open_flags:
        raise SignBlocked(f"Resolve the {open_flags} open flag{'s' if open_flags > 1 else ''} before signing.")
    # --- co-signature: a pre-licensed signer's note waits for the supervisor.
    cosigner = cosigner_for_signing(actor=actor)
    if cosigner is not None:
        new_state = S.AWAITING_COSIGN
    # ---
    note.state = new_state
    note.signed_at = now
    note.signed_by = actor
    note.content_hash = note_content_hash(note)
    note.cosign_returned_comment = ""
    note_attribution_record(note=note)  # AI vs clinician share of the text, kept with the signature
    note.save(
        update_fields=["state", "signed_at", "signed_by", "content_hash", "cosign_returned_comment", "updated_at"]
    )
    if note.amends_id and cosigner is None:
        _note_supersede(note=note.amends, by=note, actor=actor)
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="note.sign",
        obj=note,
        note=note,
        client=note.client,
        before={"state": S.IN_REVIEW},
        after={"state": new_state, "content_hash": note.content_hash, "signed_at": now},
        detail={
            "version": note.version,
            "template_version": note.template_version_id,
            "step_up_at": step_up_at,
            **({"awaiting_cosign_by": cosigner.pk} if cosigner is not None else {}),
        },
    )
    if cosigner is None:  # a co-signed note's delivery is written by note_cosign
        delivery_create_for_note(note=note)
    # QA sampling (quality app): reads, then inserts only its own rows; never blocks a signature.
    # A pre-licensed clinician's note is drawn at their signature, as every note is.
    qa_draw_at_signing(note=note, now=now)
    return note


def _note_supersede(*, note: Note, by: Note, actor) -> None:
    note = _lock(note)
    note.state = _next_state(note, "supersede")
    note.save(update_fields=["state", "updated_at"])
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="note.supersede",
        obj=note,
        note=note,
        client=note.client,
        before={"state": S.SIGNED},
        after={"state": S.AMENDED, "superseded_by": by.pk},
    )


@retry_on_conflict
@transaction.atomic
def note_discard(*, note: Note, reason: str, actor) -> Note:
    note = _lock(note)
    _require_note_clinician(note, actor)
    new_state = _next_state(note, "discard")
    if not reason.strip():
        raise DomainError("Give a reason for discarding the note.", field="reason")
    before = note.state
    note.state = new_state
    note.discarded_reason = reason.strip()
    note.save(update_fields=["state", "discarded_reason", "updated_at"])
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="note.discard",
        obj=note,
        note=note,
        client=note.client,
        before={"state": before},
        after={"state": new_state, "reason": note.discarded_reason},
    )
    return note


@retry_on_conflict
@transaction.atomic
def note_amend(*, note: Note, reason: str, actor) -> Note:
    """Start an amendment: a new version in review, copied from the signed one.
    The signed note stays signed (and is delivered as it is) until the
    amendment is signed; then it becomes AMENDED."""
    note = _lock(note)
    _require_note_clinician(note, actor)
    _next_state(note, "amend")
    if not reason.strip():
        raise DomainError("Give a reason for the amendment.", field="reason")
    earlier_try = Note.objects.select_for_update(of=("self",)).filter(amends=note).first()
    if earlier_try is not None and earlier_try.state != S.DISCARDED:
        raise IllegalTransition("An amendment of this note is already open.")
    if earlier_try is not None:
        # A discarded amendment never left psyfi-review, so it frees the
        # lineage: it keeps its row and version (the audit log and its history
        # say what it amended) and lets go of the one-to-one link.
        earlier_try.amends = None
        earlier_try.save(update_fields=["amends", "updated_at"])
        audit_record(
            practice=note.practice,
            actor=actor_person(actor),
            action="note.amendment_detach",
            obj=earlier_try,
            note=earlier_try,
            client=note.client,
            before={"amends": note.pk},
            after={"amends": None},
        )
    # The next free version: a discarded amendment keeps the number it had.
    last_version = Note.objects.filter(lineage=note.lineage).order_by("-version").values_list("version", flat=True)[0]
    amendment = Note.objects.create(
        practice=note.practice,
        draft=note.draft,
        client=note.client,
        clinician=note.clinician,
        template_version=note.template_version,
        lineage=note.lineage,
        version=last_version + 1,
        amends=note,
        amendment_reason=reason.strip(),
        state=S.IN_REVIEW,
        high_risk=note.high_risk,
    )
    bulk_create_with_history(
        [
            NoteSection(
                note=amendment,
                key=s.key,
                label=s.label,
                order=s.order,
                kind=s.kind,
                required=s.required,
                text=s.text,
                ai_text=s.ai_text,
                codes=s.codes,
                ai_codes=s.ai_codes,
                origin=s.origin,
            )
            for s in note.sections.all()
        ],
        NoteSection,
        default_user=actor,
    )
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="note.amend",
        obj=amendment,
        note=amendment,
        client=note.client,
        before={"version": note.version},
        after={"version": amendment.version, "reason": amendment.amendment_reason},
    )
    return amendment
